// The request semantics clients rely on: dryRun on every write, deletecollection, what DELETE
// answers, resourceVersion/resourceVersionMatch on lists, watches from a future revision, the
// status subresources of pods and nodes, and pod eviction.
#include <catch2/catch.hpp>

#include "cloudcore/registry/keys.h"
#include "tests/unit/cloudcore/api/api_fixture.h"

using namespace gantry;
using namespace gantry::test;
using nlohmann::json;

namespace {

const char* kPods = "/api/v1/namespaces/default/pods";
const char* kConfigMaps = "/api/v1/namespaces/default/configmaps";

std::string config_map(const std::string& name, const std::string& app) {
  return json({{"apiVersion", "v1"},
               {"kind", "ConfigMap"},
               {"metadata", {{"name", name}, {"labels", {{"app", app}}}}},
               {"data", {{"k", "v"}}}})
      .dump();
}

std::string pod_body(const std::string& name, const std::string& node) {
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}, {"labels", {{"app", "web"}}}}},
              {"spec", {{"containers", {{{"name", "main"}, {"image", "nginx:1.25"}}}}}}};
  if (!node.empty()) pod["spec"]["nodeName"] = node;
  return pod.dump();
}

}  // namespace

TEST_CASE_METHOD(ApiFixture, "dryRun=All validates every write and stores nothing",
                 "[api][semantics]") {
  put_node("n1", "zhejiang");
  REQUIRE(call("POST", kPods, kAdminToken, pod_body("web", "n1")).code == 201);
  auto rev = store().current_revision();

  auto created =
      call("POST", std::string(kPods) + "?dryRun=All", kAdminToken, pod_body("new", "n1"));
  CHECK(created.code == 201);
  CHECK(created.json()["metadata"]["name"] == "new");
  CHECK_FALSE(created.json()["metadata"].contains("resourceVersion"));
  // Dry runs are validated like real writes: an existing name, a bad object.
  CHECK(call("POST", std::string(kPods) + "?dryRun=All", kAdminToken, pod_body("web", "n1"))
            .json()["reason"] == "AlreadyExists");
  CHECK(
      call(
          "POST", std::string(kPods) + "?dryRun=All", kAdminToken,
          R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"x"},"spec":{"containers":[{"name":"a"}]}})")
          .code == 422);

  auto got = call("GET", std::string(kPods) + "/web", kAdminToken).json();
  got["spec"]["containers"][0]["image"] = "nginx:1.26";
  auto updated = call("PUT", std::string(kPods) + "/web?dryRun=All", kAdminToken, got.dump());
  CHECK(updated.code == 200);
  CHECK(updated.json()["spec"]["containers"][0]["image"] == "nginx:1.26");

  auto patched =
      call("PATCH", std::string(kPods) + "/web?dryRun=All", kAdminToken,
           R"({"metadata":{"labels":{"tier":"front"}}})", "application/merge-patch+json");
  CHECK(patched.code == 200);
  CHECK(patched.json()["metadata"]["labels"]["tier"] == "front");

  auto deleted =
      call("DELETE", std::string(kPods) + "/web?dryRun=All&gracePeriodSeconds=0", kAdminToken);
  CHECK(deleted.code == 200);
  // kubectl delete --dry-run=server sends it in the DeleteOptions body.
  CHECK(
      call("DELETE", std::string(kPods) + "/web", kAdminToken,
           R"({"kind":"DeleteOptions","apiVersion":"v1","dryRun":["All"],"gracePeriodSeconds":0})")
          .code == 200);
  CHECK(store().current_revision() == rev);
  auto after = call("GET", std::string(kPods) + "/web", kAdminToken).json();
  CHECK(after["spec"]["containers"][0]["image"] == "nginx:1.25");
  CHECK_FALSE(after["metadata"].contains("deletionTimestamp"));
  CHECK_FALSE(after["metadata"]["labels"].contains("tier"));
  CHECK(call("GET", std::string(kPods) + "/new", kAdminToken).code == 404);
}

TEST_CASE_METHOD(ApiFixture, "dryRun values other than All are refused with 422 and change nothing",
                 "[api][semantics]") {
  put_node("n1", "zhejiang");
  REQUIRE(call("POST", kPods, kAdminToken, pod_body("web", "n1")).code == 201);
  auto rev = store().current_revision();
  struct Case {
    std::string method, path, body, options;
  };
  auto c = GENERATE(values<Case>({
      {"POST", "/api/v1/namespaces/default/pods?dryRun=true", pod_body("x", "n1"), "CreateOptions"},
      {"PUT", "/api/v1/namespaces/default/pods/web?dryRun=yes", pod_body("web", "n1"),
       "UpdateOptions"},
      {"PATCH", "/api/v1/namespaces/default/pods/web?dryRun=all", "{}", "PatchOptions"},
      {"DELETE", "/api/v1/namespaces/default/pods/web?dryRun=1", "", "DeleteOptions"},
      {"DELETE", "/api/v1/namespaces/default/pods/web", R"({"dryRun":["Everything"]})",
       "DeleteOptions"},
  }));
  INFO(c.method << " " << c.path);
  auto r = call(c.method, c.path, kAdminToken, c.body, "application/merge-patch+json");
  CHECK(r.code == 422);
  CHECK(r.json()["reason"] == "Invalid");
  CHECK(r.json()["message"].get<std::string>().starts_with(c.options + ".meta.k8s.io"));
  CHECK(store().current_revision() == rev);
}

TEST_CASE_METHOD(ApiFixture, "DELETE answers a Status for most kinds and the object for pods",
                 "[api][semantics]") {
  REQUIRE(call("POST", kConfigMaps, kAdminToken, config_map("c1", "a")).code == 201);
  auto status = call("DELETE", std::string(kConfigMaps) + "/c1", kAdminToken);
  REQUIRE(status.code == 200);
  CHECK(status.json()["kind"] == "Status");
  CHECK(status.json()["status"] == "Success");
  CHECK(status.json()["details"]["name"] == "c1");
  CHECK(status.json()["details"]["kind"] == "configmaps");
  CHECK_FALSE(status.json()["details"]["uid"].get<std::string>().empty());

  REQUIRE(call("POST", kPods, kAdminToken, pod_body("unbound", "")).code == 201);
  auto pod = call("DELETE", std::string(kPods) + "/unbound", kAdminToken);
  REQUIRE(pod.code == 200);
  CHECK(pod.json()["kind"] == "Pod");
  CHECK(call("GET", std::string(kPods) + "/unbound", kAdminToken).code == 404);
}

TEST_CASE_METHOD(ApiFixture, "a bad gracePeriodSeconds is a 400 and does not force-delete",
                 "[api][semantics]") {
  put_node("n1", "zhejiang");
  REQUIRE(call("POST", kPods, kAdminToken, pod_body("web", "n1")).code == 201);
  auto r = call("DELETE", std::string(kPods) + "/web?gracePeriodSeconds=soon", kAdminToken);
  CHECK(r.code == 400);
  CHECK(r.json()["message"].get<std::string>().find("gracePeriodSeconds") != std::string::npos);
  auto pod = call("GET", std::string(kPods) + "/web", kAdminToken).json();
  CHECK_FALSE(pod["metadata"].contains("deletionTimestamp"));
}

TEST_CASE_METHOD(ApiFixture,
                 "every query parameter is parsed strictly: a bad value is a 400 naming it",
                 "[api][semantics][params]") {
  put_node("n1", "zhejiang");
  REQUIRE(call("POST", kPods, kAdminToken, pod_body("web", "n1")).code == 201);
  REQUIRE(call("POST", kConfigMaps, kAdminToken, config_map("cm", "web")).code == 201);
  const std::string pod = std::string(kPods) + "/web";
  struct Case {
    const char* method;
    std::string path;
    const char* names;  // the parameter the message must name
  };
  const std::vector<Case> cases = {
      {"GET", std::string(kPods) + "?limit=ten", "limit"},
      {"GET", std::string(kPods) + "?limit=-1", "limit"},
      {"GET", std::string(kPods) + "?limit=1e3", "limit"},
      {"GET", std::string(kPods) + "?watch=maybe", "watch"},
      {"GET", std::string(kPods) + "?resourceVersion=abc", "resourceVersion"},
      {"GET", std::string(kPods) + "?watch=1&timeoutSeconds=soon", "timeoutSeconds"},
      {"GET", std::string(kPods) + "?watch=true&allowWatchBookmarks=yes", "allowWatchBookmarks"},
      {"DELETE", pod + "?gracePeriodSeconds=0x10", "gracePeriodSeconds"},
      {"DELETE", pod + "?orphanDependents=perhaps", "orphanDependents"},
      {"GET", pod + "/log?follow=sometimes", "follow"},
      {"GET", pod + "/log?timestamps=2", "timestamps"},
      {"GET", pod + "/log?previous=no", "previous"},
      {"GET", pod + "/log?tailLines=-1", "tailLines"},
      {"GET", pod + "/log?tailLines=10lines", "tailLines"},
      {"GET", pod + "/log?limitBytes=0", "limitBytes"},
      {"GET", pod + "/log?sinceSeconds=a", "sinceSeconds"},
      {"GET", pod + "/log?sinceTime=yesterday", "sinceTime"},
  };
  for (const auto& c : cases) {
    INFO(c.method << " " << c.path);
    auto r = call(c.method, c.path, kAdminToken);
    CHECK(r.code == 400);
    CHECK(r.json()["kind"] == "Status");
    CHECK(r.json()["reason"] == "BadRequest");
    CHECK_THAT(r.json()["message"].get<std::string>(), Catch::Matchers::Contains(c.names));
  }
  // Nothing was deleted by the refused DELETEs.
  CHECK_FALSE(call("GET", pod, kAdminToken).json()["metadata"].contains("deletionTimestamp"));
  // The values Go's strconv.ParseBool takes are all accepted (watch=1 streams: not tried here).
  for (const char* yes_no : {"0", "f", "F", "false", "FALSE", "False"})
    CHECK(call("GET", std::string(kPods) + "?watch=" + yes_no, kAdminToken).code == 200);
  // A resourceVersion in a body that is not a revision is a 400 naming the field.
  auto cm = call("GET", std::string(kConfigMaps) + "/cm", kAdminToken).json();
  cm["metadata"]["resourceVersion"] = "12abc";
  auto put = call("PUT", std::string(kConfigMaps) + "/cm", kAdminToken, cm.dump());
  CHECK(put.code == 400);
  CHECK_THAT(put.json()["message"].get<std::string>(),
             Catch::Matchers::Contains("metadata.resourceVersion"));
  auto patched = call("PATCH", std::string(kConfigMaps) + "/cm", kAdminToken,
                      R"({"metadata":{"resourceVersion":"-3"}})", "application/merge-patch+json");
  CHECK(patched.code == 400);
}

TEST_CASE_METHOD(ApiFixture, "deletecollection deletes what the selectors match",
                 "[api][semantics]") {
  for (auto [name, app] : {std::pair{"a1", "a"}, {"a2", "a"}, {"b1", "b"}})
    REQUIRE(call("POST", kConfigMaps, kAdminToken, config_map(name, app)).code == 201);
  auto rev = store().current_revision();
  auto dry =
      call("DELETE", std::string(kConfigMaps) + "?labelSelector=app%3Da&dryRun=All", kAdminToken);
  CHECK(dry.code == 200);
  CHECK(dry.json()["items"].size() == 2);
  CHECK(store().current_revision() == rev);

  auto r = call("DELETE", std::string(kConfigMaps) + "?labelSelector=app%3Da", kAdminToken);
  REQUIRE(r.code == 200);
  CHECK(r.json()["kind"] == "ConfigMapList");
  CHECK(r.json()["items"].size() == 2);
  auto left = call("GET", kConfigMaps, kAdminToken).json()["items"];
  REQUIRE(left.size() == 1);
  CHECK(left[0]["metadata"]["name"] == "b1");

  auto by_field =
      call("DELETE", std::string(kConfigMaps) + "?fieldSelector=metadata.name%3Db1", kAdminToken);
  CHECK(by_field.json()["items"].size() == 1);
  CHECK(call("GET", kConfigMaps, kAdminToken).json()["items"].empty());
  // Namespaces have no deletecollection (as in Kubernetes).
  CHECK(call("DELETE", "/api/v1/namespaces", kAdminToken).code == 405);
  // A viewer may not.
  CHECK(call("DELETE", "/api/v1/pods", kZhejiangViewerToken).code == 403);
}

TEST_CASE_METHOD(ApiFixture, "lists honour resourceVersion and resourceVersionMatch",
                 "[api][semantics]") {
  REQUIRE(call("POST", kConfigMaps, kAdminToken, config_map("c1", "a")).code == 201);
  auto rv1 = store().current_revision();
  REQUIRE(call("POST", kConfigMaps, kAdminToken, config_map("c2", "a")).code == 201);
  auto current = store().current_revision();

  auto exact = call("GET",
                    std::string(kConfigMaps) + "?resourceVersion=" + std::to_string(rv1) +
                        "&resourceVersionMatch=Exact",
                    kAdminToken);
  REQUIRE(exact.code == 200);
  CHECK(exact.json()["items"].size() == 1);
  CHECK(exact.json()["metadata"]["resourceVersion"] == std::to_string(rv1));

  for (std::string q : std::vector<std::string>{
           "?resourceVersion=0", "", "?resourceVersion=" + std::to_string(rv1),
           "?resourceVersion=" + std::to_string(rv1) + "&resourceVersionMatch=NotOlderThan"}) {
    INFO(q);
    auto r = call("GET", std::string(kConfigMaps) + q, kAdminToken);
    REQUIRE(r.code == 200);
    CHECK(r.json()["items"].size() == 2);
    CHECK(r.json()["metadata"]["resourceVersion"] == std::to_string(current));
  }

  auto future =
      call("GET", std::string(kConfigMaps) + "?resourceVersion=" + std::to_string(current + 100),
           kAdminToken);
  CHECK(future.code == 504);
  CHECK(future.json()["reason"] == "Timeout");
  CHECK(future.json()["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge");
  CHECK(call("GET",
             std::string(kConfigMaps) +
                 "?resourceVersionMatch=Exact&resourceVersion=" + std::to_string(current + 1),
             kAdminToken)
            .code == 504);

  struct Bad {
    std::string query;
    int code;
  };
  auto bad = GENERATE(values<Bad>({{"?resourceVersion=abc", 400},
                                   {"?resourceVersion=-1", 400},
                                   {"?resourceVersionMatch=Exact", 422},
                                   {"?resourceVersionMatch=Latest&resourceVersion=1", 422},
                                   {"?resourceVersionMatch=Exact&resourceVersion=0", 422}}));
  INFO(bad.query);
  CHECK(call("GET", std::string(kConfigMaps) + bad.query, kAdminToken).code == bad.code);

  REQUIRE(store().compact(store().current_revision()).ok());
  auto gone = call("GET",
                   std::string(kConfigMaps) +
                       "?resourceVersionMatch=Exact&resourceVersion=" + std::to_string(rv1),
                   kAdminToken);
  CHECK(gone.code == 410);
  CHECK(gone.json()["reason"] == "Expired");
}

TEST_CASE_METHOD(ApiFixture, "a watch from a revision not reached yet is answered, not left empty",
                 "[api][semantics][watch]") {
  auto future = std::to_string(store().current_revision() + 50);
  auto w =
      call("GET", std::string(kConfigMaps) + "?watch=1&timeoutSeconds=5&resourceVersion=" + future,
           kAdminToken);
  CHECK(w.code == 504);
  CHECK(w.json()["details"]["causes"][0]["reason"] == "ResourceVersionTooLarge");
  CHECK(call("GET", std::string(kConfigMaps) + "?watch=1&timeoutSeconds=x", kAdminToken).code ==
        400);
}

TEST_CASE_METHOD(ApiFixture, "pods/status changes only the status, and pod writes ignore status",
                 "[api][semantics][status]") {
  put_node("n1", "zhejiang");
  REQUIRE(call("POST", kPods, kAdminToken, pod_body("web", "n1")).code == 201);
  auto s = call("GET", std::string(kPods) + "/web/status", kAdminToken);
  REQUIRE(s.code == 200);
  CHECK(s.json()["kind"] == "Pod");

  auto patched = call(
      "PATCH", std::string(kPods) + "/web/status", kAdminToken,
      R"({"status":{"phase":"Running","podIP":"10.1.2.3","conditions":[{"type":"Ready","status":"True"}]},
          "spec":{"containers":[{"name":"main","image":"evil:1"}]},"metadata":{"labels":{"x":"y"}}})",
      "application/merge-patch+json");
  REQUIRE(patched.code == 200);
  CHECK(patched.json()["status"]["phase"] == "Running");
  auto pod = call("GET", std::string(kPods) + "/web", kAdminToken).json();
  CHECK(pod["status"]["phase"] == "Running");
  CHECK(pod["status"]["podIP"] == "10.1.2.3");
  CHECK(pod["spec"]["containers"][0]["image"] == "nginx:1.25");
  CHECK_FALSE(pod["metadata"]["labels"].contains("x"));

  // A main-resource write's status is ignored.
  pod["status"]["phase"] = "Failed";
  pod["metadata"]["labels"]["tier"] = "front";
  auto put = call("PUT", std::string(kPods) + "/web", kAdminToken, pod.dump());
  REQUIRE(put.code == 200);
  CHECK(put.json()["status"]["phase"] == "Running");
  CHECK(put.json()["metadata"]["labels"]["tier"] == "front");

  // PUT of /status with a stale resourceVersion conflicts; a bad phase is 422; neither writes.
  auto rev = store().current_revision();
  json stale = pod;
  stale["metadata"]["resourceVersion"] = "1";
  CHECK(call("PUT", std::string(kPods) + "/web/status", kAdminToken, stale.dump()).code == 409);
  CHECK(call("PATCH", std::string(kPods) + "/web/status", kAdminToken,
             R"({"status":{"phase":"Sleeping"}})", "application/merge-patch+json")
            .code == 422);
  CHECK(store().current_revision() == rev);
  CHECK(call("DELETE", std::string(kPods) + "/web/status", kAdminToken).code == 405);
}

TEST_CASE_METHOD(ApiFixture, "nodes/status sets the node's conditions",
                 "[api][semantics][status]") {
  put_node("n1", "zhejiang");
  put_node_status("n1", true);
  auto r = call(
      "PATCH", "/api/v1/nodes/n1/status", kAdminToken,
      R"({"status":{"conditions":[{"type":"Ready","status":"False","reason":"Maintenance"}]}})",
      "application/merge-patch+json");
  REQUIRE(r.code == 200);
  auto table = call("GET", "/api/v1/nodes/n1", kAdminToken, "", "application/json",
                    {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io"})
                   .json();
  CHECK(table["rows"][0]["cells"][1] == "NotReady");
  CHECK(call("PATCH", "/api/v1/nodes/n1/status", kAdminToken,
             R"({"status":{"conditions":[{"type":"Sunny","status":"True"}]}})",
             "application/merge-patch+json")
            .code == 422);
  CHECK(call("PATCH", "/api/v1/nodes/n1/status", kZhejiangViewerToken, R"({"status":{}})",
             "application/merge-patch+json")
            .code == 403);
}

TEST_CASE_METHOD(ApiFixture, "pods/eviction deletes the pod as kubectl drain expects",
                 "[api][semantics][eviction]") {
  put_node("n1", "zhejiang");
  REQUIRE(call("POST", kPods, kAdminToken, pod_body("web", "n1")).code == 201);
  REQUIRE(call("POST", kPods, kAdminToken, pod_body("loose", "")).code == 201);
  auto eviction = [](const std::string& name, const std::string& extra = "") {
    return R"({"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":")" + name +
           R"(","namespace":"default"})" + extra + "}";
  };
  auto rev = store().current_revision();
  CHECK(call("POST", std::string(kPods) + "/web/eviction?dryRun=All", kAdminToken, eviction("web"))
            .code == 201);
  CHECK(store().current_revision() == rev);
  CHECK(call("POST", std::string(kPods) + "/web/eviction", kAdminToken, eviction("other")).code ==
        400);
  CHECK(call("POST", std::string(kPods) + "/nope/eviction", kAdminToken, eviction("nope")).code ==
        404);
  CHECK(call("POST", std::string(kPods) + "/web/eviction", kZhejiangViewerToken, eviction("web"))
            .code == 403);

  auto r = call("POST", std::string(kPods) + "/web/eviction", kAdminToken, eviction("web"));
  REQUIRE(r.code == 201);
  CHECK(r.json()["status"] == "Success");
  // Bound: graceful, as a DELETE (the edge stops it, then the hub removes it).
  CHECK(call("GET", std::string(kPods) + "/web", kAdminToken)
            .json()["metadata"]
            .contains("deletionTimestamp"));
  // With deleteOptions.gracePeriodSeconds=0, or unbound: gone at once.
  REQUIRE(call("POST", std::string(kPods) + "/web/eviction", kAdminToken,
               eviction("web", R"(,"deleteOptions":{"gracePeriodSeconds":0})"))
              .code == 201);
  CHECK(call("GET", std::string(kPods) + "/web", kAdminToken).code == 404);
  REQUIRE(
      call("POST", std::string(kPods) + "/loose/eviction", kAdminToken, eviction("loose")).code ==
      201);
  CHECK(call("GET", std::string(kPods) + "/loose", kAdminToken).code == 404);

  // Discovery says where eviction lives, which kubectl drain checks first.
  auto v1 = call("GET", "/api/v1", kAdminToken).json();
  bool found = false;
  for (const auto& res : v1["resources"])
    if (res["name"] == "pods/eviction") {
      found = true;
      CHECK(res["kind"] == "Eviction");
      CHECK(res["group"] == "policy");
      CHECK(res["version"] == "v1");
    }
  CHECK(found);
}
