// gantry.io/v1 Rollout through the API with the workload controllers on the same store: a
// DaemonSet over fake nodes (two provinces, some offline), a stand-in for the edge that reports
// pods Ready (or crash-looping for a bad image) and removes the pods it was told to stop, and the
// commands an operator uses — kubectl set image, patch approvedStep / paused / abort, undo — with
// the counts `kubectl get rollouts` prints. Bad input is refused with nothing written.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cloudcore/controllers/imagepull.h"
#include "tests/unit/cloudcore/controllers/pull_reports.h"
#include "tests/unit/cloudcore/controllers/rollout_fleet.h"

namespace gantry::cloud::controllers {
namespace {

using json = nlohmann::json;
using gantry::test::kAdminToken;
using namespace std::chrono_literals;

const std::string kDaemonSets = "/apis/apps/v1/namespaces/default/daemonsets";
const std::string kRollouts = "/apis/gantry.io/v1/namespaces/default/rollouts";
const std::string kProvinceLabel = "topology.gantry.io/province";

json daemonset(const std::string& image) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "DaemonSet"},
          {"metadata", {{"name", "gw"}}},
          {"spec",
           {{"selector", {{"matchLabels", {{"app", "gw"}}}}},
            {"updateStrategy", {{"rollingUpdate", {{"maxUnavailable", "50%"}}}}},
            {"template",
             {{"metadata", {{"labels", {{"app", "gw"}}}}},
              {"spec", {{"containers", {{{"name", "gw"}, {"image", image}}}}}}}}}}};
}

json rollout_obj(const std::string& name, json steps) {
  return {{"apiVersion", "gantry.io/v1"},
          {"kind", "Rollout"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"targetRef", {{"apiVersion", "apps/v1"}, {"kind", "DaemonSet"}, {"name", "gw"}}},
            {"steps", std::move(steps)}}}};
}

json province_first() {
  return json::array({{{"nodeSelector", {{kProvinceLabel, "zhejiang"}}}, {"pause", json::object()}},
                      {{"percent", 50}, {"pause", json::object()}},
                      {{"percent", 100}}});
}

class RolloutApi : public test::RolloutFleet {
 public:
  RolloutApi() {
    REQUIRE(started());
    mark_bad("registry/gw:bad");
  }

  json status() { return get(kRollouts + "/gw")["status"]; }

  bool phase_is(const std::string& phase, int step) {
    json s = status();
    return s.value("phase", "") == phase && s.value("currentStep", -1) == step;
  }

  void set_image(const std::string& image) {
    auto r = call(
        "PATCH", kDaemonSets + "/gw", kAdminToken,
        json{{"spec",
              {{"template", {{"spec", {{"containers", {{{"name", "gw"}, {"image", image}}}}}}}}}}}
            .dump(),
        "application/strategic-merge-patch+json");
    REQUIRE(r.code == 200);
  }

  gantry::test::HttpResult patch_rollout(const std::string& body) {
    return call("PATCH", kRollouts + "/gw", kAdminToken, body, "application/merge-patch+json");
  }
};

TEST_CASE_METHOD(RolloutApi, "a DaemonSet update staged province first, approved step by step",
                 "[controllers][rollout][api]") {
  REQUIRE(call("POST", kDaemonSets, kAdminToken, daemonset("registry/gw:1").dump()).code == 201);
  REQUIRE(until([&] { return running("registry/gw:1") == 10; }));
  auto created = call("POST", kRollouts, kAdminToken, rollout_obj("gw", province_first()).dump());
  REQUIRE(created.code == 201);
  CHECK(created.json()["spec"]["failureThreshold"] == 0);  // defaults
  CHECK(created.json()["spec"]["progressDeadlineSeconds"] == 600);
  REQUIRE(until([&] { return status().value("phase", "") == "Completed"; }));
  std::string stable = status()["stableRevision"];

  set_image("registry/gw:2");
  REQUIRE(
      until([&] { return phase_is("WaitingApproval", 1) && status().value("ready", -1) == 4; }));
  for (const auto& [node, image] : images())
    CHECK((image == "registry/gw:2") ==
          (node == "n0" || node == "n1" || node == "n2" || node == "n3"));
  json s = status();
  CHECK(s["stableRevision"] == stable);
  CHECK(s["updateRevision"] != stable);
  CHECK(s["updated"] == 4);
  CHECK(s["nodes"] == 10);
  CHECK(s["waitingOffline"] == 0);

  // kubectl get rollouts: the step and the counts.
  auto table = call("GET", kRollouts, kAdminToken, "", "application/json",
                    {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io"});
  json t = table.json();
  std::vector<std::string> names;
  for (const auto& c : t["columnDefinitions"])
    if (c["priority"] == 0) names.push_back(c["name"]);
  CHECK(names == std::vector<std::string>{"Name", "Target", "Step", "Phase", "Updated", "Ready",
                                          "Failed", "Waiting-Offline", "Age"});
  CHECK(t["rows"][0]["cells"][1] == "ds/gw");
  CHECK(t["rows"][0]["cells"][2] == "1/3");
  CHECK(t["rows"][0]["cells"][3] == "WaitingApproval");
  CHECK(t["rows"][0]["cells"][4] == 4);

  // Nothing moves without an approval.
  CHECK(running("registry/gw:2") == 4);
  REQUIRE(patch_rollout(R"({"spec":{"approvedStep":1}})").code == 200);
  REQUIRE(until([&] { return phase_is("WaitingApproval", 2); }));
  size_t second = running("registry/gw:2");
  CHECK(second >= 5);
  CHECK(second < 10);

  REQUIRE(patch_rollout(R"({"spec":{"approvedStep":2}})").code == 200);
  REQUIRE(until([&] { return status().value("phase", "") == "Completed"; }));
  CHECK(running("registry/gw:2") == 10);
  CHECK(status()["stableRevision"] == status()["updateRevision"]);
  json ds = get(kDaemonSets + "/gw")["status"];
  CHECK(ds["updatedNumberScheduled"] == 10);

  // Approving a finished rollout: 409, nothing changed.
  auto r = patch_rollout(R"({"spec":{"approvedStep":3}})");
  CHECK(r.code == 409);
  CHECK_THAT(r.json()["message"].get<std::string>(), Catch::Contains("nothing to approve"));
  CHECK(get(kRollouts + "/gw")["spec"]["approvedStep"] == 2);  // (cleared when a new run starts)
}

TEST_CASE_METHOD(
    RolloutApi, "offline nodes wait, a crash-looping image pauses it, undo brings the old one back",
    "[controllers][rollout][api]") {
  REQUIRE(call("POST", kDaemonSets, kAdminToken, daemonset("registry/gw:1").dump()).code == 201);
  REQUIRE(until([&] { return running("registry/gw:1") == 10; }));
  json steps =
      json::array({{{"nodeSelector", {{kProvinceLabel, "zhejiang"}}}, {"pause", json::object()}},
                   {{"percent", 100}}});
  REQUIRE(call("POST", kRollouts, kAdminToken, rollout_obj("gw", steps).dump()).code == 201);
  REQUIRE(until([&] { return status().value("phase", "") == "Completed"; }));

  // n1 (Zhejiang) and n7 (Jiangsu) lose their uplink.
  set_offline("n1", true);
  set_offline("n7", true);
  set_image("registry/gw:2");
  REQUIRE(until([&] { return phase_is("WaitingApproval", 1); }));  // not held up by n1
  CHECK(running("registry/gw:2") == 3);
  CHECK(status()["waitingOffline"] == 1);  // n1 should run :2; n7 rightly keeps :1
  CHECK(images()["n1"] == "registry/gw:1");

  // n1 returns during the step: it gets the step's revision.
  set_offline("n1", false);
  REQUIRE(
      until([&] { return images()["n1"] == "registry/gw:2" && status()["waitingOffline"] == 0; }));

  // Approve: every reachable node; n7 waits offline and is updated when it returns.
  REQUIRE(patch_rollout(R"({"spec":{"approvedStep":1}})").code == 200);
  REQUIRE(until([&] { return status().value("phase", "") == "Completed"; }));
  CHECK(running("registry/gw:2") == 9);
  CHECK(status()["waitingOffline"] == 1);
  CHECK(images()["n7"] == "registry/gw:1");
  set_offline("n7", false);
  REQUIRE(until([&] { return running("registry/gw:2") == 10 && status()["waitingOffline"] == 0; }));

  // A bad image: Zhejiang's pods crash-loop, the rollout pauses by itself at step 1.
  set_image("registry/gw:bad");
  REQUIRE(until([&] {
    json s = status();
    return s.value("phase", "") == "Paused" && s.value("reason", "") == "FailureThresholdExceeded";
  }));
  json ro = get(kRollouts + "/gw");
  CHECK(ro["spec"]["paused"] == true);
  CHECK_THAT(ro["status"]["message"].get<std::string>(), Catch::Contains("CrashLoopBackOff"));
  CHECK(ro["status"]["failed"].get<int>() >= 1);
  CHECK(running("registry/gw:bad") <= 4);  // never past Zhejiang
  for (const auto& [node, image] : images())
    if (node >= "n4") CHECK(image == "registry/gw:2");

  // Undo (what kubectl rollout undo does: the old template back): every node back to :2.
  set_image("registry/gw:2");
  REQUIRE(until([&] {
    return status().value("phase", "") == "RolledBack" && running("registry/gw:2") == 10;
  }));
  CHECK(get(kRollouts + "/gw")["spec"]["paused"] == false);  // the failure pause was cleared
}

TEST_CASE_METHOD(RolloutApi, "abort returns the updated nodes to the stable revision",
                 "[controllers][rollout][api]") {
  REQUIRE(call("POST", kDaemonSets, kAdminToken, daemonset("registry/gw:1").dump()).code == 201);
  REQUIRE(until([&] { return running("registry/gw:1") == 10; }));
  REQUIRE(call("POST", kRollouts, kAdminToken, rollout_obj("gw", province_first()).dump()).code ==
          201);
  REQUIRE(until([&] { return status().value("phase", "") == "Completed"; }));
  set_image("registry/gw:2");
  REQUIRE(until([&] { return phase_is("WaitingApproval", 1); }));
  REQUIRE(patch_rollout(R"({"spec":{"abort":true}})").code == 200);
  REQUIRE(until(
      [&] { return status().value("phase", "") == "Aborted" && running("registry/gw:1") == 10; }));
  // Nothing left to abort or approve.
  CHECK(patch_rollout(R"({"spec":{"approvedStep":1}})").code == 409);
}

TEST_CASE_METHOD(RolloutApi, "bad rollouts are refused with causes and write nothing",
                 "[controllers][rollout][api]") {
  // No such DaemonSet.
  auto r = call("POST", kRollouts, kAdminToken, rollout_obj("gw", province_first()).dump());
  CHECK(r.code == 422);
  CHECK_THAT(r.json()["message"].get<std::string>(),
             Catch::Contains("spec.targetRef.name: Not found: \"gw\""));
  CHECK(r.json()["details"]["causes"][0]["field"] == "spec.targetRef.name");

  REQUIRE(call("POST", kDaemonSets, kAdminToken, daemonset("registry/gw:1").dump()).code == 201);
  struct Row {
    json steps;
    std::string field;
    std::string says;
  };
  auto row =
      GENERATE(Row{json::array({{{"percent", 30}}, {{"percent", 10}}, {{"percent", 100}}}),
                   "spec.steps[1].percent", "the steps do not add up"},
               Row{json::array({{{"percent", 150}}}), "spec.steps[0].percent", "between 1 and 100"},
               Row{json::array({{{"percent", 10}}, {{"percent", 30}}}), "spec.steps[1]",
                   "the last step must update every node"},
               Row{json::array(), "spec.steps", "Required value"},
               Row{json::array({{{"pause", {{"duration", "soon"}}}}}), "spec.steps[0].percent",
                   "Required value"},
               Row{json::array({{{"percent", 100}, {"pause", {{"duration", "-1m"}}}}}),
                   "spec.steps[0].pause.duration", "positive duration"});
  r = call("POST", kRollouts, kAdminToken, rollout_obj("gw", row.steps).dump());
  CHECK(r.code == 422);
  json causes = r.json()["details"]["causes"];
  REQUIRE(causes.is_array());
  bool named = false;
  for (const auto& c : causes) named = named || c["field"] == row.field;
  CHECK(named);
  CHECK_THAT(r.json()["message"].get<std::string>(), Catch::Contains(row.says));

  json ss = rollout_obj("gw", province_first());
  ss["spec"]["targetRef"]["kind"] = "StatefulSet";
  r = call("POST", kRollouts, kAdminToken, ss.dump());
  CHECK(r.code == 422);
  CHECK_THAT(r.json()["message"].get<std::string>(), Catch::Contains("spec.targetRef.kind"));
  CHECK(get(kRollouts)["items"].empty());

  // One Rollout per workload.
  REQUIRE(call("POST", kRollouts, kAdminToken, rollout_obj("gw", province_first()).dump()).code ==
          201);
  r = call("POST", kRollouts, kAdminToken, rollout_obj("gw-again", province_first()).dump());
  CHECK(r.code == 409);
  CHECK_THAT(r.json()["message"].get<std::string>(), Catch::Contains("already rolls out"));
  CHECK(get(kRollouts)["items"].size() == 1);
  // The target cannot be changed, approvedStep stays within the steps.
  r = patch_rollout(R"({"spec":{"targetRef":{"name":"other"}}})");
  CHECK(r.code == 422);
  r = patch_rollout(R"({"spec":{"approvedStep":7}})");
  CHECK(r.code == 422);
}

// ----- Deployments: the update split by percent of the replicas

const std::string kDeployments = "/apis/apps/v1/namespaces/default/deployments";

json deployment(const std::string& image) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"name", "web"}}},
          {"spec",
           {{"replicas", 10},
            {"selector", {{"matchLabels", {{"app", "web"}}}}},
            {"template",
             {{"metadata", {{"labels", {{"app", "web"}}}}},
              {"spec", {{"containers", {{{"name", "web"}, {"image", image}}}}}}}}}}};
}

json deployment_rollout(json steps) {
  json r = rollout_obj("web", std::move(steps));
  r["spec"]["targetRef"] = {{"apiVersion", "apps/v1"}, {"kind", "Deployment"}, {"name", "web"}};
  return r;
}

class DeploymentRollout : public RolloutApi {
 public:
  json web() { return get(kRollouts + "/web")["status"]; }
  bool web_is(const std::string& phase, int step) {
    json s = web();
    return s.value("phase", "") == phase && s.value("currentStep", -1) == step;
  }
  void set_web_image(const std::string& image) {
    auto r = call(
        "PATCH", kDeployments + "/web", kAdminToken,
        json{{"spec",
              {{"template", {{"spec", {{"containers", {{{"name", "web"}, {"image", image}}}}}}}}}}}
            .dump(),
        "application/strategic-merge-patch+json");
    REQUIRE(r.code == 200);
  }
  gantry::test::HttpResult patch_web(const std::string& body) {
    return call("PATCH", kRollouts + "/web", kAdminToken, body, "application/merge-patch+json");
  }
  // Replicas of each image, once every ReplicaSet has as many pods as it wants.
  bool split(size_t one, const std::string& a, size_t two, const std::string& b) {
    return pods_running(a) == one && pods_running(b) == two;
  }
};

TEST_CASE_METHOD(DeploymentRollout,
                 "a Deployment update staged by percent of its replicas: approvals, a failure "
                 "pause, undo and abort",
                 "[controllers][rollout][api]") {
  REQUIRE(call("POST", kDeployments, kAdminToken, deployment("registry/web:1").dump()).code == 201);
  REQUIRE(until([&] { return pods_running("registry/web:1") == 10; }));
  json steps = json::array({{{"percent", 10}, {"pause", json::object()}},
                            {{"percent", 50}, {"pause", json::object()}},
                            {{"percent", 100}}});
  REQUIRE(call("POST", kRollouts, kAdminToken, deployment_rollout(steps).dump()).code == 201);
  REQUIRE(until([&] { return web().value("phase", "") == "Completed"; }));
  CHECK(web()["nodes"] == 10);  // replicas

  set_web_image("registry/web:2");
  REQUIRE(until([&] {
    return web_is("WaitingApproval", 1) && split(9, "registry/web:1", 1, "registry/web:2");
  }));
  CHECK(web()["updated"] == 1);
  CHECK(web()["ready"] == 1);
  auto table = call("GET", kRollouts + "/web", kAdminToken, "", "application/json",
                    {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io"});
  CHECK(table.json()["rows"][0]["cells"][1] == "deploy/web");
  CHECK(table.json()["rows"][0]["cells"][2] == "1/3");
  json d = get(kDeployments + "/web")["status"];
  CHECK(d["updatedReplicas"] == 1);
  CHECK(d["conditions"].dump().find("RolloutStaged") != std::string::npos);

  REQUIRE(patch_web(R"({"spec":{"approvedStep":1}})").code == 200);
  REQUIRE(until([&] {
    return web_is("WaitingApproval", 2) && split(5, "registry/web:1", 5, "registry/web:2");
  }));
  REQUIRE(patch_web(R"({"spec":{"approvedStep":2}})").code == 200);
  REQUIRE(until([&] {
    return web().value("phase", "") == "Completed" &&
           split(0, "registry/web:1", 10, "registry/web:2");
  }));
  REQUIRE(until(
      [&] { return get(kDeployments + "/web")["status"].value("updatedReplicas", 0) == 10; }));

  // A crash-looping image: one replica gets it, the rollout pauses by itself.
  mark_bad("registry/web:bad");
  set_web_image("registry/web:bad");
  REQUIRE(until([&] {
    json s = web();
    return s.value("phase", "") == "Paused" &&
           s.value("reason", "") == "FailureThresholdExceeded" &&
           split(9, "registry/web:2", 1, "registry/web:bad");
  }));
  CHECK(get(kRollouts + "/web")["spec"]["paused"] == true);

  // Undo (the old template back, as kubectl's JSON patch does): its ReplicaSet takes all 10.
  set_web_image("registry/web:2");
  REQUIRE(until([&] {
    return web().value("phase", "") == "RolledBack" &&
           split(10, "registry/web:2", 0, "registry/web:bad");
  }));

  // Abort: a new run stops at step 1 and gives every replica back to the stable ReplicaSet.
  set_web_image("registry/web:3");
  REQUIRE(
      until([&] { return web_is("WaitingApproval", 1) && pods_running("registry/web:3") == 1; }));
  REQUIRE(patch_web(R"({"spec":{"abort":true}})").code == 200);
  REQUIRE(until([&] {
    return web().value("phase", "") == "Aborted" &&
           split(10, "registry/web:2", 0, "registry/web:3");
  }));
}

TEST_CASE_METHOD(DeploymentRollout, "a Deployment's steps cannot select nodes",
                 "[controllers][rollout][api]") {
  REQUIRE(call("POST", kDeployments, kAdminToken, deployment("registry/web:1").dump()).code == 201);
  auto r = call("POST", kRollouts, kAdminToken, deployment_rollout(province_first()).dump());
  CHECK(r.code == 422);
  CHECK(r.json()["details"]["causes"][0]["field"] == "spec.steps[0].nodeSelector");
  CHECK_THAT(r.json()["message"].get<std::string>(), Catch::Contains("percent of its replicas"));
  CHECK(get(kRollouts)["items"].empty());
  // Nor pre-pull: a Deployment's new pods go where the scheduler puts them.
  r = call("POST", kRollouts, kAdminToken,
           deployment_rollout(json::array({{{"percent", 100}, {"prePull", true}}})).dump());
  CHECK(r.code == 422);
  CHECK(r.json()["details"]["causes"][0]["field"] == "spec.steps[0].prePull");
  CHECK(get(kRollouts)["items"].empty());
}

// ----- pre-pull (steps[].prePull): the ImagePullJob controller on the same store, with a stand-in
// for the nodes' tunnels that takes a pull request and reports the images pulled when told to.
class PullEdge : public PullTransport {
 public:
  bool connected(const std::string& node) const override {
    std::lock_guard lock(mu_);
    return !offline_.count(node);
  }
  bool send(const std::string& node, const v1::ImagePullRequest& request) override {
    std::lock_guard lock(mu_);
    if (offline_.count(node)) return false;
    asked_.insert(node);
    queued_.emplace_back(node, request);
    return true;
  }
  void set_offline(const std::string& node, bool offline) {
    std::lock_guard lock(mu_);
    if (offline)
      offline_.insert(node);
    else
      offline_.erase(node);
  }
  // The nodes' reports: every request taken so far is done.
  void finish(ImagePullController& c) {
    std::vector<std::pair<std::string, v1::ImagePullRequest>> q;
    {
      std::lock_guard lock(mu_);
      q.swap(queued_);
    }
    for (const auto& [node, req] : q) c.on_report(node, gantry::test::pulled_report(req));
  }
  std::set<std::string> asked() const {
    std::lock_guard lock(mu_);
    return asked_;
  }

 private:
  mutable std::mutex mu_;
  std::set<std::string> offline_;
  std::set<std::string> asked_;
  std::vector<std::pair<std::string, v1::ImagePullRequest>> queued_;
};

const std::string kPullJobs = "/apis/gantry.io/v1/namespaces/default/imagepulljobs";

TEST_CASE_METHOD(RolloutApi,
                 "prePull: a step's new nodes pull the update's images before their pods are "
                 "replaced, offline ones skipped and caught up later",
                 "[controllers][rollout][api]") {
  PullEdge edge;
  ImagePullOptions po;
  po.clock = &clock_;
  po.tick = 5ms;
  po.status_interval = 0ms;
  auto pulls = ImagePullController::start(store(), edge, po);
  REQUIRE(pulls.ok());
  REQUIRE(call("POST", kDaemonSets, kAdminToken, daemonset("registry/gw:1").dump()).code == 201);
  REQUIRE(until([&] { return running("registry/gw:1") == 10; }));
  json steps = json::array({{{"nodeSelector", {{kProvinceLabel, "zhejiang"}}},
                             {"prePull", true},
                             {"pause", json::object()}},
                            {{"percent", 100}, {"prePull", true}}});
  REQUIRE(call("POST", kRollouts, kAdminToken, rollout_obj("gw", steps).dump()).code == 201);
  REQUIRE(until([&] { return status().value("phase", "") == "Completed"; }));
  CHECK(get(kPullJobs)["items"].empty());  // nothing to pull before a run

  // n1 (Zhejiang) is offline when the run starts.
  set_offline("n1", true);
  edge.set_offline("n1", true);
  set_image("registry/gw:2");
  // Step 1 pre-pulls on Zhejiang's reachable nodes, two at a time (perProvince 2), and replaces
  // nothing meanwhile.
  REQUIRE(until([&] {
    json items = get(kPullJobs)["items"];
    return status().value("reason", "") == "PrePulling" && items.size() == 1 &&
           items[0].value("status", json::object()).value("pulling", 0) == 2;
  }));
  json job = get(kPullJobs)["items"][0];
  CHECK(job["spec"]["images"] == json::array({"registry/gw:2"}));
  CHECK(job["spec"]["nodeNames"] == json::array({"n0", "n2", "n3"}));
  CHECK(job["metadata"]["ownerReferences"][0]["kind"] == "Rollout");
  CHECK(job["metadata"]["labels"]["rollout.gantry.io/step"] == "1");
  CHECK(job["status"]["desired"] == 3);
  CHECK(job["status"]["pending"] == 1);
  CHECK(running("registry/gw:2") == 0);
  CHECK_THAT(status()["message"].get<std::string>(), Catch::Contains("pre-pulling"));

  // The nodes report the images pulled: the step goes on and waits for approval.
  REQUIRE(until([&] {
    edge.finish(**pulls);
    return phase_is("WaitingApproval", 1) && running("registry/gw:2") == 3;
  }));
  json s = status();
  CHECK(s["prePulled"] == 3);
  CHECK(s["prePullResult"] == "step 1: 3 of 3 node(s) pre-pulled");
  CHECK(get(kPullJobs + "/" + job["metadata"]["name"].get<std::string>())["status"]["phase"] ==
        "Succeeded");
  for (const auto& n : {"n0", "n2", "n3"}) CHECK(edge.asked().count(n));
  CHECK_FALSE(edge.asked().count("n1"));
  CHECK(images()["n1"] == "registry/gw:1");
  // While step 1 waits for its approval, step 2's job pulls on the six Jiangsu nodes already.
  CHECK_THAT(s["message"].get<std::string>(),
             Catch::Contains("step 2's images are pre-pulled meanwhile"));
  REQUIRE(until([&] { return get(kPullJobs)["items"].size() == 2; }));
  for (const auto& j : get(kPullJobs)["items"])
    if (j["metadata"]["labels"]["rollout.gantry.io/step"] == "2")
      CHECK(j["spec"]["nodeNames"] == json::array({"n4", "n5", "n6", "n7", "n8", "n9"}));
  CHECK(running("registry/gw:2") == 3);

  // n1 returns: it takes the step's revision (it pulls the image itself, as any pod does).
  set_offline("n1", false);
  edge.set_offline("n1", false);
  REQUIRE(until([&] { return images()["n1"] == "registry/gw:2"; }));

  // Step 2: a second job for the six Jiangsu nodes, then every node runs the update.
  REQUIRE(patch_rollout(R"({"spec":{"approvedStep":1}})").code == 200);
  REQUIRE(until([&] {
    edge.finish(**pulls);
    return status().value("phase", "") == "Completed" && running("registry/gw:2") == 10;
  }));
  CHECK(get(kPullJobs)["items"].size() == 2);
  CHECK(status()["prePullResult"] == "step 2: 6 of 6 node(s) pre-pulled");
  CHECK(edge.asked().size() == 9);

  // `kubectl get ipj`: the job's columns.
  auto table = call("GET", kPullJobs, kAdminToken, "", "application/json",
                    {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io"});
  json t = table.json();
  std::vector<std::string> names;
  for (const auto& c : t["columnDefinitions"])
    if (c["priority"] == 0) names.push_back(c["name"]);
  CHECK(names == std::vector<std::string>{"Name", "Phase", "Desired", "Succeeded", "Failed",
                                          "Pulling", "Pending", "Waiting-Offline", "Age"});

  // The jobs go with the Rollout.
  REQUIRE(call("DELETE", kRollouts + "/gw", kAdminToken).code == 200);
  REQUIRE(until([&] { return get(kPullJobs)["items"].empty(); }));
}

TEST_CASE_METHOD(RolloutApi, "prePull: a job refused (several replicas) lets the step go on",
                 "[controllers][rollout][api]") {
  PullEdge edge;
  ImagePullOptions po;
  po.clock = &clock_;
  po.tick = 5ms;
  po.status_interval = 0ms;
  po.refuse_message = "ImagePullJobs are not supported with several cloudcore replicas (ha) yet";
  auto pulls = ImagePullController::start(store(), edge, po);
  REQUIRE(pulls.ok());
  REQUIRE(call("POST", kDaemonSets, kAdminToken, daemonset("registry/gw:1").dump()).code == 201);
  REQUIRE(until([&] { return running("registry/gw:1") == 10; }));
  json steps = json::array({{{"percent", 100}, {"prePull", true}}});
  REQUIRE(call("POST", kRollouts, kAdminToken, rollout_obj("gw", steps).dump()).code == 201);
  REQUIRE(until([&] { return status().value("phase", "") == "Completed"; }));
  set_image("registry/gw:2");
  REQUIRE(until([&] {
    return status().value("phase", "") == "Completed" && running("registry/gw:2") == 10;
  }));
  CHECK(status()["prePullResult"] ==
        "step 1: no pre-pull (ImagePullJobs are not supported with several cloudcore replicas "
        "(ha) yet); the step went on without it");
  json job = get(kPullJobs)["items"][0];
  CHECK(job["status"]["phase"] == "Failed");
  CHECK_THAT(job["status"]["conditions"].dump(), Catch::Contains("NotSupported"));
  CHECK(edge.asked().empty());
}

// ----- the fleet figure (not part of ctest: run by hand, docs/benchmarks.md "Staged rollout")
//   GANTRY_ROLLOUT_BENCH_NODES=2000
//   build/tests/unit/cloudcore/controllers/unit_cloudcore_rollout_api "[.bench]"

int bench_nodes() {
  const char* n = std::getenv("GANTRY_ROLLOUT_BENCH_NODES");
  return n ? std::max(10, std::atoi(n)) : 2000;
}

// CPU seconds of this process's thread named `name` (user + system).
double thread_cpu_s(const std::string& name) {
  double total = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream comm(task.path() / "comm");
    std::string c;
    std::getline(comm, c);
    if (c != name) continue;
    std::ifstream stat(task.path() / "stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    std::istringstream in(text.substr(text.rfind(')') + 2));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int i = 3; i <= 15 && in >> field; ++i) {
      if (i == 14) utime = std::stoull(field);
      if (i == 15) stime = std::stoull(field);
    }
    total += static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
  }
  return total;
}

class FleetBench : public test::RolloutFleet {
 public:
  FleetBench() : RolloutFleet(bench_nodes()) {}
};

TEST_CASE_METHOD(FleetBench, "a staged DaemonSet update over a simulated fleet, step by step",
                 "[.bench][rollout]") {
  REQUIRE(started());
  const int nodes = bench_nodes();
  json ds = daemonset("registry/gw:1");
  ds["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] = "10%";
  REQUIRE(call("POST", kDaemonSets, kAdminToken, ds.dump()).code == 201);
  start_edge();
  REQUIRE(gantry::test::eventually(
      [&] { return running("registry/gw:1") == static_cast<size_t>(nodes); }, 600s, 50ms));
  json steps = json::array({{{"percent", 10}, {"pause", json::object()}},
                            {{"percent", 30}, {"pause", json::object()}},
                            {{"percent", 100}}});
  REQUIRE(call("POST", kRollouts, kAdminToken, rollout_obj("gw", steps).dump()).code == 201);
  auto phase_of = [&] {
    json s = get(kRollouts + "/gw").value("status", json::object());
    return s.is_object() ? s : json::object();
  };
  REQUIRE(gantry::test::eventually([&] { return phase_of().value("phase", "") == "Completed"; },
                                   600s, 50ms));

  using Clock = std::chrono::steady_clock;
  auto wait_for = [&](const std::string& phase, int step) {
    return gantry::test::eventually(
        [&] {
          json s = phase_of();
          return s.value("phase", "") == phase && s.value("currentStep", -1) == step;
        },
        1200s, 20ms);
  };
  double cpu0 = thread_cpu_s("gantry-workload");
  uint64_t in_place0 = controllers_->stats().pods_updated_in_place;
  auto t0 = Clock::now();
  auto r = call(
      "PATCH", kDaemonSets + "/gw", kAdminToken,
      R"({"spec":{"template":{"spec":{"containers":[{"name":"gw","image":"registry/gw:2"}]}}}})",
      "application/strategic-merge-patch+json");
  REQUIRE(r.code == 200);
  std::vector<std::pair<double, double>> per_step;  // seconds, controller CPU seconds
  auto mark = [&, last = t0, last_cpu = cpu0]() mutable {
    auto now = Clock::now();
    double cpu = thread_cpu_s("gantry-workload");
    per_step.emplace_back(std::chrono::duration<double>(now - last).count(), cpu - last_cpu);
    last = now;
    last_cpu = cpu;
  };
  REQUIRE(wait_for("WaitingApproval", 1));
  mark();
  REQUIRE(call("PATCH", kRollouts + "/gw", kAdminToken, R"({"spec":{"approvedStep":1}})",
               "application/merge-patch+json")
              .code == 200);
  REQUIRE(wait_for("WaitingApproval", 2));
  mark();
  REQUIRE(call("PATCH", kRollouts + "/gw", kAdminToken, R"({"spec":{"approvedStep":2}})",
               "application/merge-patch+json")
              .code == 200);
  REQUIRE(gantry::test::eventually([&] { return phase_of().value("phase", "") == "Completed"; },
                                   1200s, 20ms));
  mark();
  double total = std::chrono::duration<double>(Clock::now() - t0).count();
  json s = phase_of();
  CHECK(s["updated"] == nodes);
  CHECK(running("registry/gw:2") == static_cast<size_t>(nodes));
  json report = {
      {"nodes", nodes},
      {"steps", json::array()},
      {"total_s", total},
      {"controller_cpu_s", thread_cpu_s("gantry-workload") - cpu0},
      {"pods_updated_in_place", controllers_->stats().pods_updated_in_place - in_place0}};
  for (const auto& [secs, cpu] : per_step)
    report["steps"].push_back({{"seconds", secs}, {"controller_cpu_s", cpu}});
  std::printf("rollout bench: %s\n", report.dump().c_str());
}

}  // namespace
}  // namespace gantry::cloud::controllers
