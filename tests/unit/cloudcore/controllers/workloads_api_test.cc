// apps/v1 through the API with the workload controllers running on the same store, as kubectl
// uses them: create a Deployment, read its Table, scale it through the scale subresource, change
// its image with a strategic merge patch, see the ReplicaSets' revisions, delete with each
// propagation policy; bad input is 422 with the field path and writes nothing.
#include <catch2/catch.hpp>
#include <functional>
#include <set>

#include "cloudcore/controllers/workloads.h"
#include "cloudcore/registry/keys.h"
#include "tests/unit/cloudcore/api/api_fixture.h"

namespace gantry::cloud::controllers {
namespace {

using json = nlohmann::json;
using test::ApiFixture;
using test::eventually;
using test::kAdminToken;

const char* kDeployments = "/apis/apps/v1/namespaces/default/deployments";

json deployment(const std::string& name, int replicas) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"replicas", replicas},
            {"selector", {{"matchLabels", {{"app", name}}}}},
            {"template",
             {{"metadata", {{"labels", {{"app", name}}}}},
              {"spec", {{"containers", {{{"name", "main"}, {"image", "nginx:1.25"}}}}}}}}}}};
}

class WorkloadsApi : public ApiFixture {
 public:
  WorkloadsApi() {
    auto c = WorkloadControllers::start(store());
    REQUIRE(c.ok());
    controllers_ = std::move(c).value();
  }
  ~WorkloadsApi() { controllers_->stop(); }

  json get(const std::string& path) { return call("GET", path, kAdminToken).json(); }
  size_t items(const std::string& path) {
    json l = get(path);
    return l.contains("items") ? l["items"].size() : 0;
  }

  std::unique_ptr<WorkloadControllers> controllers_;
};

TEST_CASE_METHOD(WorkloadsApi, "a Deployment created through the API gets its ReplicaSet and pods",
                 "[controllers][workloads][api]") {
  auto r = call("POST", kDeployments, kAdminToken, deployment("web", 2).dump());
  REQUIRE(r.code == 201);
  json d = r.json();
  // Defaults as Kubernetes fills them.
  CHECK(d["spec"]["strategy"]["type"] == "RollingUpdate");
  CHECK(d["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == "25%");
  CHECK(d["spec"]["revisionHistoryLimit"] == 10);
  CHECK(d["spec"]["progressDeadlineSeconds"] == 600);
  CHECK(d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent");
  CHECK(d["metadata"]["generation"] == 1);
  CHECK_FALSE(d.contains("status"));

  REQUIRE(eventually([&] { return items("/api/v1/namespaces/default/pods") == 2; }));
  json sets = get("/apis/apps/v1/namespaces/default/replicasets");
  REQUIRE(sets["items"].size() == 1);
  CHECK(sets["items"][0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1");
  CHECK(eventually([&] {
    json s = get(std::string(kDeployments) + "/web")["status"];
    return s.value("replicas", -1) == 2 && s.value("observedGeneration", -1) == 1;
  }));

  // kubectl get deployments: NAME READY UP-TO-DATE AVAILABLE AGE.
  auto table = call("GET", kDeployments, kAdminToken, "", "application/json",
                    {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io"});
  json t = table.json();
  std::vector<std::string> names;
  for (const auto& c : t["columnDefinitions"])
    if (c["priority"] == 0) names.push_back(c["name"]);
  CHECK(names == std::vector<std::string>{"Name", "Ready", "Up-to-date", "Available", "Age"});
  CHECK(t["rows"][0]["cells"][1] == "0/2");

  // kubectl scale: PATCH on the scale subresource.
  auto s = call("PATCH", std::string(kDeployments) + "/web/scale", kAdminToken,
                R"({"spec":{"replicas":3}})", "application/merge-patch+json");
  REQUIRE(s.code == 200);
  CHECK(s.json()["kind"] == "Scale");
  CHECK(s.json()["spec"]["replicas"] == 3);
  CHECK(s.json()["status"]["selector"] == "app=web");
  REQUIRE(eventually([&] { return items("/api/v1/namespaces/default/pods") == 3; }));

  // A user's write never replaces the status the controller wrote.
  json body = get(std::string(kDeployments) + "/web");
  body["status"] = {{"replicas", 99}};
  body["metadata"].erase("resourceVersion");
  REQUIRE(call("PUT", std::string(kDeployments) + "/web", kAdminToken, body.dump()).code == 200);
  CHECK(get(std::string(kDeployments) + "/web")["status"].value("replicas", -1) != 99);

  // kubectl set image: a strategic merge patch of the template's containers, by name.
  auto p = call(
      "PATCH", std::string(kDeployments) + "/web", kAdminToken,
      R"({"spec":{"template":{"spec":{"containers":[{"name":"main","image":"nginx:1.26"}]}}}})",
      "application/strategic-merge-patch+json");
  REQUIRE(p.code == 200);
  CHECK(p.json()["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent");
  CHECK(eventually(
      [&] { return get("/apis/apps/v1/namespaces/default/replicasets")["items"].size() == 2; }));
}

TEST_CASE_METHOD(WorkloadsApi, "bad workloads are 422 with the field path and write nothing",
                 "[controllers][workloads][api]") {
  json d = deployment("web", 1);
  d["spec"]["selector"]["matchLabels"]["app"] = "other";
  auto r = call("POST", kDeployments, kAdminToken, d.dump());
  CHECK(r.code == 422);
  CHECK(r.json()["message"].get<std::string>().find(
            "`selector` does not match template `labels`") != std::string::npos);

  d = deployment("web", -1);
  r = call("POST", kDeployments, kAdminToken, d.dump());
  CHECK(r.code == 422);
  CHECK(r.json()["message"].get<std::string>().find("spec.replicas: Invalid value: -1") !=
        std::string::npos);

  d = deployment("web", 1);
  d["spec"]["strategy"] = {{"type", "BlueGreen"}};
  r = call("POST", kDeployments, kAdminToken, d.dump());
  CHECK(r.code == 422);
  CHECK(r.json()["message"].get<std::string>().find("spec.strategy.type: Unsupported value") !=
        std::string::npos);

  d = deployment("web", 1);
  d["spec"]["template"]["spec"]["containers"][0].erase("image");
  r = call("POST", kDeployments, kAdminToken, d.dump());
  CHECK(r.code == 422);
  CHECK(r.json()["message"].get<std::string>().find("spec.template.spec.containers") !=
        std::string::npos);
  CHECK(items(kDeployments) == 0);

  // The selector is immutable.
  REQUIRE(call("POST", kDeployments, kAdminToken, deployment("web", 1).dump()).code == 201);
  d = get(std::string(kDeployments) + "/web");
  d["spec"]["selector"]["matchLabels"]["app"] = "web2";
  d["spec"]["template"]["metadata"]["labels"]["app"] = "web2";
  d["metadata"].erase("resourceVersion");  // the controller may write status meanwhile
  r = call("PUT", std::string(kDeployments) + "/web", kAdminToken, d.dump());
  CHECK(r.code == 422);
  CHECK(r.json()["message"].get<std::string>().find("spec.selector") != std::string::npos);
  CHECK(r.json()["message"].get<std::string>().find("field is immutable") != std::string::npos);
  // Scale refuses negative replicas.
  r = call("PATCH", std::string(kDeployments) + "/web/scale", kAdminToken,
           R"({"spec":{"replicas":-2}})", "application/merge-patch+json");
  CHECK(r.code == 422);
  CHECK(get(std::string(kDeployments) + "/web")["spec"]["replicas"] == 1);
}

TEST_CASE_METHOD(WorkloadsApi, "delete cascades: background takes the pods, orphan keeps them",
                 "[controllers][workloads][api]") {
  REQUIRE(call("POST", kDeployments, kAdminToken, deployment("keep", 2).dump()).code == 201);
  REQUIRE(call("POST", kDeployments, kAdminToken, deployment("drop", 2).dump()).code == 201);
  REQUIRE(eventually([&] { return items("/api/v1/namespaces/default/pods") == 4; }));

  // kubectl delete --cascade=orphan
  auto r = call("DELETE", std::string(kDeployments) + "/keep", kAdminToken,
                R"({"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Orphan"})");
  CHECK(r.code == 200);
  CHECK(eventually(
      [&] { return call("GET", std::string(kDeployments) + "/keep", kAdminToken).code == 404; }));
  // Its ReplicaSet stays, without an owner, and so do the pods.
  CHECK(eventually([&] {
    json sets = get("/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Dkeep");
    return sets["items"].size() == 1 && !sets["items"][0]["metadata"].contains("ownerReferences");
  }));

  // kubectl delete (background): the ReplicaSet and its pods go.
  r = call("DELETE", std::string(kDeployments) + "/drop", kAdminToken,
           R"({"kind":"DeleteOptions","apiVersion":"v1","propagationPolicy":"Background"})");
  CHECK(r.code == 200);
  CHECK(eventually([&] {
    return items("/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3Ddrop") == 0 &&
           items("/api/v1/namespaces/default/pods?labelSelector=app%3Ddrop") == 0;
  }));
  CHECK(items("/api/v1/namespaces/default/pods?labelSelector=app%3Dkeep") == 2);
  r = call("DELETE", std::string(kDeployments) + "/x", kAdminToken,
           R"({"propagationPolicy":"Sideways"})");
  CHECK(r.code == 422);  // the options are checked first, as Kubernetes does
}

const char* kJobs = "/apis/batch/v1/namespaces/default/jobs";

json job(const std::string& name) {
  return {{"apiVersion", "batch/v1"},
          {"kind", "Job"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"template",
             {{"spec",
               {{"restartPolicy", "Never"},
                {"containers", {{{"name", "main"}, {"image", "busybox:1.36"}}}}}}}}}}};
}

TEST_CASE_METHOD(WorkloadsApi, "a Job created through the API gets Kubernetes' defaults and a pod",
                 "[controllers][workloads][api][job]") {
  // Discovery: the batch group, jobs with their status subresource.
  json groups = get("/apis");
  bool batch = false;
  for (const auto& g : groups["groups"])
    if (g["name"] == "batch") batch = g["preferredVersion"]["groupVersion"] == "batch/v1";
  CHECK(batch);
  json resources = get("/apis/batch/v1");
  std::set<std::string> names;
  for (const auto& r : resources["resources"]) names.insert(r["name"].get<std::string>());
  CHECK(names == std::set<std::string>{"jobs", "jobs/status", "cronjobs", "cronjobs/status"});

  auto r = call("POST", kJobs, kAdminToken, job("pi").dump());
  REQUIRE(r.code == 201);
  json j = r.json();
  std::string uid = j["metadata"]["uid"];
  CHECK(j["spec"]["completions"] == 1);
  CHECK(j["spec"]["parallelism"] == 1);
  CHECK(j["spec"]["backoffLimit"] == 6);
  CHECK(j["spec"]["completionMode"] == "NonIndexed");
  CHECK(j["spec"]["suspend"] == false);
  CHECK(j["spec"]["selector"] ==
        json{{"matchLabels", {{"batch.kubernetes.io/controller-uid", uid}}}});
  CHECK(j["spec"]["template"]["metadata"]["labels"] ==
        json{{"batch.kubernetes.io/controller-uid", uid},
             {"batch.kubernetes.io/job-name", "pi"},
             {"controller-uid", uid},
             {"job-name", "pi"}});
  CHECK(j["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] == "IfNotPresent");

  REQUIRE(eventually([&] { return items("/api/v1/namespaces/default/pods") == 1; }));
  json pod = get("/api/v1/namespaces/default/pods")["items"][0];
  CHECK(pod["metadata"]["labels"]["job-name"] == "pi");
  CHECK(pod["metadata"]["ownerReferences"][0]["kind"] == "Job");
  CHECK(pod["metadata"]["ownerReferences"][0]["uid"] == uid);
  CHECK(eventually([&] {
    json s = get(std::string(kJobs) + "/pi")["status"];
    return s.value("active", 0) == 1 && s.contains("startTime");
  }));

  // kubectl get jobs: NAME STATUS COMPLETIONS DURATION AGE.
  auto table = call("GET", kJobs, kAdminToken, "", "application/json",
                    {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io"});
  json t = table.json();
  std::vector<std::string> columns;
  for (const auto& c : t["columnDefinitions"])
    if (c["priority"] == 0) columns.push_back(c["name"]);
  CHECK(columns == std::vector<std::string>{"Name", "Status", "Completions", "Duration", "Age"});
  CHECK(t["rows"][0]["cells"][1] == "Running");
  CHECK(t["rows"][0]["cells"][2] == "0/1");

  // The pod succeeds: the Job completes.
  put_pod_status("default", pod["metadata"]["name"], v1::POD_PHASE_SUCCEEDED, false);
  CHECK(eventually([&] {
    json s = get(std::string(kJobs) + "/pi")["status"];
    return s.value("succeeded", 0) == 1 && s.contains("completionTime");
  }));
  t = call("GET", kJobs, kAdminToken, "", "application/json",
           {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io"})
          .json();
  CHECK(t["rows"][0]["cells"][1] == "Complete");
  CHECK(t["rows"][0]["cells"][2] == "1/1");

  // kubectl delete job (background): its pods go too.
  REQUIRE(call("DELETE", std::string(kJobs) + "/pi", kAdminToken).code == 200);
  CHECK(eventually([&] { return items("/api/v1/namespaces/default/pods") == 0; }));
}

TEST_CASE_METHOD(WorkloadsApi, "bad Jobs are 422 with the field path and write nothing",
                 "[controllers][workloads][api][job]") {
  struct Case {
    std::function<void(json&)> edit;
    std::string message;
  };
  std::vector<Case> cases = {
      {[](json& j) { j["spec"]["template"]["spec"].erase("restartPolicy"); },
       "spec.template.spec.restartPolicy: Unsupported value: \"Always\""},
      {[](json& j) { j["spec"]["template"]["spec"]["restartPolicy"] = "Always"; },
       "spec.template.spec.restartPolicy: Unsupported value: \"Always\""},
      {[](json& j) { j["spec"]["completions"] = -1; }, "spec.completions: Invalid value: -1"},
      {[](json& j) { j["spec"]["parallelism"] = -2; }, "spec.parallelism: Invalid value: -2"},
      {[](json& j) { j["spec"]["backoffLimit"] = -1; }, "spec.backoffLimit: Invalid value: -1"},
      {[](json& j) {
         j["spec"]["manualSelector"] = true;
         j["spec"]["selector"] = {{"matchLabels", {{"app", "other"}}}};
         j["spec"]["template"]["metadata"]["labels"] = {{"app", "pi"}};
       },
       "`selector` does not match template `labels`"},
      {[](json& j) { j["spec"]["manualSelector"] = true; }, "spec.selector: Required value"},
      {[](json& j) {
         j["spec"]["selector"] = {{"matchLabels", {{"batch.kubernetes.io/controller-uid", "x"}}}};
       },
       "spec.selector: Invalid value"},
      {[](json& j) { j["spec"]["completionMode"] = "Indexed"; },
       "spec.completionMode: Unsupported value: \"Indexed\""},
      {[](json& j) { j["spec"]["template"]["spec"]["containers"][0].erase("image"); },
       "spec.template.spec.containers"},
  };
  for (const auto& c : cases) {
    json j = job("pi");
    c.edit(j);
    INFO(j.dump());
    auto r = call("POST", kJobs, kAdminToken, j.dump());
    CHECK(r.code == 422);
    CHECK(r.json()["message"].get<std::string>().find(c.message) != std::string::npos);
  }
  CHECK(items(kJobs) == 0);
  CHECK(items("/api/v1/namespaces/default/pods") == 0);

  // Immutable after create: template, selector, completions. Parallelism may change.
  REQUIRE(call("POST", kJobs, kAdminToken, job("pi").dump()).code == 201);
  auto put = [&](const std::function<void(json&)>& edit) {
    json j = get(std::string(kJobs) + "/pi");
    j["metadata"].erase("resourceVersion");  // the controller writes status meanwhile
    edit(j);
    return call("PUT", std::string(kJobs) + "/pi", kAdminToken, j.dump());
  };
  for (auto [edit, field] : std::vector<std::pair<std::function<void(json&)>, std::string>>{
           {[](json& j) { j["spec"]["template"]["spec"]["containers"][0]["image"] = "busybox:2"; },
            "spec.template"},
           {[](json& j) { j["spec"]["completions"] = 3; }, "spec.completions"},
           {[](json& j) { j["spec"]["selector"]["matchLabels"]["x"] = "y"; }, "spec.selector"}}) {
    auto r = put(edit);
    CHECK(r.code == 422);
    std::string m = r.json()["message"];
    INFO(m);
    CHECK(m.find(field + ": Invalid value") != std::string::npos);
    CHECK(m.find("field is immutable") != std::string::npos);
  }
  CHECK(get(std::string(kJobs) + "/pi")["spec"]["template"]["spec"]["containers"][0]["image"] ==
        "busybox:1.36");
  auto r = put([](json& j) { j["spec"]["parallelism"] = 2; });
  CHECK(r.code == 200);
  CHECK(r.json()["spec"]["parallelism"] == 2);
}

const char* kCronJobs = "/apis/batch/v1/namespaces/default/cronjobs";

json cron_job(const std::string& name, const std::string& schedule) {
  return {{"apiVersion", "batch/v1"},
          {"kind", "CronJob"},
          {"metadata", {{"name", name}}},
          {"spec", {{"schedule", schedule}, {"jobTemplate", {{"spec", job(name)["spec"]}}}}}};
}

TEST_CASE_METHOD(WorkloadsApi, "a CronJob through the API: defaults, table, and 422s",
                 "[controllers][workloads][api][cronjob]") {
  auto r = call("POST", kCronJobs, kAdminToken, cron_job("nightly", "0 2 * * *").dump());
  REQUIRE(r.code == 201);
  json c = r.json();
  CHECK(c["spec"]["concurrencyPolicy"] == "Allow");
  CHECK(c["spec"]["suspend"] == false);
  CHECK(c["spec"]["successfulJobsHistoryLimit"] == 3);
  CHECK(c["spec"]["failedJobsHistoryLimit"] == 1);
  // The pod template gets its defaults; the Job's own defaults come when a run is made.
  CHECK(c["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"] == "ClusterFirst");
  CHECK_FALSE(c["spec"]["jobTemplate"]["spec"].contains("selector"));

  auto t = call("GET", kCronJobs, kAdminToken, "", "application/json",
                {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io"})
               .json();
  std::vector<std::string> columns;
  for (const auto& col : t["columnDefinitions"])
    if (col["priority"] == 0) columns.push_back(col["name"]);
  CHECK(columns == std::vector<std::string>{"Name", "Schedule", "Timezone", "Suspend", "Active",
                                            "Last Schedule", "Age"});
  CHECK(t["rows"][0]["cells"][1] == "0 2 * * *");
  CHECK(t["rows"][0]["cells"][2] == "<none>");
  CHECK(t["rows"][0]["cells"][3] == "False");
  CHECK(t["rows"][0]["cells"][4] == 0);
  CHECK(t["rows"][0]["cells"][5] == "<none>");

  struct Case {
    std::function<void(json&)> edit;
    std::string message;
  };
  std::vector<Case> cases = {
      {[](json& j) { j["spec"]["schedule"] = "61 * * * *"; },
       "spec.schedule: Invalid value: \"61 * * * *\": minute out of range"},
      {[](json& j) { j["spec"].erase("schedule"); }, "spec.schedule: Required value"},
      {[](json& j) { j["spec"]["schedule"] = "CRON_TZ=UTC 0 2 * * *"; }, "use timeZone field"},
      {[](json& j) { j["spec"]["timeZone"] = "Asia/Shanghai"; }, "spec.timeZone: Invalid value"},
      {[](json& j) { j["spec"]["concurrencyPolicy"] = "Sometimes"; },
       "spec.concurrencyPolicy: Unsupported value"},
      {[](json& j) { j["spec"]["successfulJobsHistoryLimit"] = -1; },
       "spec.successfulJobsHistoryLimit: Invalid value: -1"},
      {[](json& j) {
         j["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = "Always";
       },
       "spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: \"Always\""},
      {[](json& j) { j["spec"]["jobTemplate"]["spec"]["backoffLimit"] = -3; },
       "spec.jobTemplate.spec.backoffLimit: Invalid value: -3"},
      {[](json& j) { j["metadata"]["name"] = std::string(53, 'a'); },
       "must be no more than 52 characters"},
  };
  for (const auto& cs : cases) {
    json j = cron_job("bad", "0 2 * * *");
    cs.edit(j);
    INFO(j.dump());
    auto bad = call("POST", kCronJobs, kAdminToken, j.dump());
    CHECK(bad.code == 422);
    CHECK(bad.json()["message"].get<std::string>().find(cs.message) != std::string::npos);
  }
  CHECK(items(kCronJobs) == 1);
  // kubectl < 1.21 speaks batch/v1beta1: the same CronJobs, in either version.
  json old = cron_job("legacy", "@hourly");
  old["apiVersion"] = "batch/v1beta1";
  auto legacy =
      call("POST", "/apis/batch/v1beta1/namespaces/default/cronjobs", kAdminToken, old.dump());
  REQUIRE(legacy.code == 201);
  CHECK(legacy.json()["apiVersion"] == "batch/v1beta1");
  CHECK(get(std::string(kCronJobs) + "/legacy")["apiVersion"] == "batch/v1");
  CHECK(items("/apis/batch/v1beta1/namespaces/default/cronjobs") == 2);
  REQUIRE(call("DELETE", std::string(kCronJobs) + "/legacy", kAdminToken).code == 200);
  // Deleting it takes its Jobs (none yet) with it.
  CHECK(call("DELETE", std::string(kCronJobs) + "/nightly", kAdminToken).code == 200);
  CHECK(items(kCronJobs) == 0);
}

}  // namespace
}  // namespace gantry::cloud::controllers
