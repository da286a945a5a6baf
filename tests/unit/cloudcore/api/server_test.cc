#include <catch2/catch.hpp>
#include <set>

#include "cloudcore/registry/keys.h"
#include "tests/unit/cloudcore/api/api_fixture.h"

using namespace gantry;
using namespace gantry::test;
using nlohmann::json;

namespace {
const char* kPodBody =
    R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","labels":{"app":"web"}},
  "spec":{"nodeName":"n1","containers":[{"name":"main","image":"nginx:1.25"}]}})";

std::vector<json> events_of(const std::string& body) {
  std::vector<json> out;
  size_t start = 0;
  while (start < body.size()) {
    size_t nl = body.find('\n', start);
    std::string line = body.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (!line.empty()) out.push_back(json::parse(line));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}
}  // namespace

TEST_CASE_METHOD(ApiFixture, "discovery answers and health needs no token", "[api][server]") {
  CHECK(call("GET", "/healthz", "").body == "ok");
  auto version = call("GET", "/version", "");
  CHECK(version.json()["minor"] == "28");
  CHECK(call("GET", "/api", "").code == 401);
  auto api = call("GET", "/api", kAdminToken);
  CHECK(api.json()["versions"] == json({"v1"}));
  auto v1 = call("GET", "/api/v1", kAdminToken).json();
  std::set<std::string> names;
  for (const auto& r : v1["resources"]) names.insert(r["name"]);
  CHECK(names.count("pods"));
  CHECK(names.count("pods/log"));
  CHECK(call("GET", "/apis", kAdminToken).json()["groups"][0]["name"] == "gantry.io");
  auto openapi = call("GET", "/openapi/v2", kAdminToken).json();
  CHECK(openapi["swagger"] == "2.0");
  // What kubectl < 1.27 reads to allow diff and --dry-run=server: the PATCH of each kind's item
  // path with its group/version/kind and a dryRun query parameter.
  const auto& patch =
      openapi["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
  CHECK(patch["x-kubernetes-group-version-kind"] ==
        nlohmann::json({{"group", "apps"}, {"version", "v1"}, {"kind", "Deployment"}}));
  CHECK(patch["parameters"][0]["name"] == "dryRun");
  CHECK(openapi["paths"]["/api/v1/nodes"]["post"]["operationId"] == "createCoreV1Node");
  auto bad = call("GET", "/api/v1/pods", "wrong-token");
  CHECK(bad.code == 401);
  CHECK(bad.json()["kind"] == "Status");
  CHECK(bad.json()["reason"] == "Unauthorized");
}

TEST_CASE_METHOD(ApiFixture, "create, get, conflicting update and delete of a pod",
                 "[api][server]") {
  put_node("n1", "zhejiang");
  auto created = call("POST", "/api/v1/namespaces/default/pods", kAdminToken, kPodBody);
  REQUIRE(created.code == 201);
  json pod = created.json();
  CHECK_FALSE(pod["metadata"]["uid"].get<std::string>().empty());
  CHECK(pod["metadata"]["namespace"] == "default");
  CHECK(pod["status"]["phase"] == "Pending");
  CHECK(call("POST", "/api/v1/namespaces/default/pods", kAdminToken, kPodBody).json()["reason"] ==
        "AlreadyExists");

  // A status change moves the resourceVersion: an update based on the old one conflicts.
  std::string old_rv = pod["metadata"]["resourceVersion"];
  put_pod_status("default", "web", v1::POD_PHASE_RUNNING, true);
  auto got = call("GET", "/api/v1/namespaces/default/pods/web", kAdminToken).json();
  CHECK(got["status"]["phase"] == "Running");
  CHECK(got["metadata"]["resourceVersion"] != old_rv);
  pod["spec"]["containers"][0]["image"] = "nginx:1.26";
  auto conflict = call("PUT", "/api/v1/namespaces/default/pods/web", kAdminToken, pod.dump());
  CHECK(conflict.code == 409);
  CHECK(conflict.json()["reason"] == "Conflict");
  pod["metadata"]["resourceVersion"] = got["metadata"]["resourceVersion"];
  auto updated = call("PUT", "/api/v1/namespaces/default/pods/web", kAdminToken, pod.dump());
  REQUIRE(updated.code == 200);
  CHECK(updated.json()["spec"]["containers"][0]["image"] == "nginx:1.26");
  CHECK(updated.json()["metadata"]["uid"] == got["metadata"]["uid"]);
  // Beyond images (and a few fields), a pod's spec is immutable, as in Kubernetes.
  json changed = updated.json();
  changed["spec"]["containers"][0]["command"] = json::array({"sh"});
  auto refused = call("PUT", "/api/v1/namespaces/default/pods/web", kAdminToken, changed.dump());
  CHECK(refused.code == 422);
  CHECK_THAT(refused.json()["message"].get<std::string>(),
             Catch::Contains("pod updates may not change fields other than"));

  // Bound pod: graceful delete leaves it Terminating.
  auto deleting = call("DELETE", "/api/v1/namespaces/default/pods/web", kAdminToken);
  REQUIRE(deleting.code == 200);
  CHECK(deleting.json()["metadata"].contains("deletionTimestamp"));
  CHECK(call("GET", "/api/v1/namespaces/default/pods/web", kAdminToken).code == 200);
  auto now =
      call("DELETE", "/api/v1/namespaces/default/pods/web?gracePeriodSeconds=0", kAdminToken);
  CHECK(now.code == 200);
  CHECK(call("GET", "/api/v1/namespaces/default/pods/web", kAdminToken).code == 404);
  auto status_gone = store().get(cloud::keys::status_key(v1::OBJECT_KIND_POD, "default", "web"));
  REQUIRE(status_gone.ok());
  CHECK_FALSE(status_gone->has_value());
}

TEST_CASE_METHOD(ApiFixture, "bad requests get the right Status and change nothing",
                 "[api][server]") {
  put_node("n1", "zhejiang");
  auto rev = store().current_revision();
  struct Case {
    std::string method, path, body;
    int code;
    std::string reason;
  };
  auto c = GENERATE(values<Case>({
      {"POST", "/api/v1/namespaces/default/pods", "{not json", 400, "BadRequest"},
      {"POST", "/api/v1/namespaces/default/pods",
       R"({"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"x"}})", 400, "BadRequest"},
      {"POST", "/api/v1/namespaces/default/pods",
       R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"x","namespace":"other"},"spec":{"containers":[{"name":"a","image":"b"}]}})",
       400, "BadRequest"},
      {"POST", "/api/v1/namespaces/default/pods",
       R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"x"},"spec":{"containers":[{"name":"a"}]}})",
       422, "Invalid"},
      {"POST", "/api/v1/namespaces/default/pods",
       R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"a","image":"b"}]}})",
       422, "Invalid"},
      {"POST", "/api/v1/namespaces/nowhere/pods", kPodBody, 404, "NotFound"},
      {"GET", "/api/v1/pods?labelSelector=app%20in%20(web", "", 400, "BadRequest"},
      {"GET", "/api/v1/pods?fieldSelector=spec.host%3Dx", "", 400, "BadRequest"},
      {"GET", "/api/v1/widgets", "", 404, "NotFound"},
  }));
  INFO(c.method << " " << c.path << " " << c.body);
  auto r = call(c.method, c.path, kAdminToken, c.body);
  CHECK(r.code == c.code);
  CHECK(r.json()["kind"] == "Status");
  CHECK(r.json()["reason"] == c.reason);
  CHECK_FALSE(r.json()["message"].get<std::string>().empty());
  CHECK(store().current_revision() == rev);
}

TEST_CASE_METHOD(ApiFixture, "a body past the limit is refused with 413", "[api][server]") {
  std::string huge =
      std::string(
          R"({"kind":"ConfigMap","apiVersion":"v1","metadata":{"name":"big"},"data":{"a":")") +
      std::string(4 * 1024 * 1024, 'x') + "\"}}";
  auto rev = store().current_revision();
  auto r = call("POST", "/api/v1/namespaces/default/configmaps", kAdminToken, huge);
  CHECK(r.code == 413);
  CHECK(store().current_revision() == rev);
}

TEST_CASE_METHOD(ApiFixture, "lists page consistently and an expired continue is 410",
                 "[api][server]") {
  put_node("n1", "zhejiang");
  for (int i = 0; i < 5; ++i) put_pod("default", "p" + std::to_string(i), "n1");
  auto first = call("GET", "/api/v1/namespaces/default/pods?limit=2", kAdminToken).json();
  REQUIRE(first["items"].size() == 2);
  std::string token = first["metadata"]["continue"];
  std::string rv = first["metadata"]["resourceVersion"];
  put_pod("default", "p10", "n1");  // after the first page: not in this list
  std::vector<std::string> seen = {first["items"][0]["metadata"]["name"],
                                   first["items"][1]["metadata"]["name"]};
  while (!token.empty()) {
    auto page =
        call("GET", "/api/v1/namespaces/default/pods?limit=2&continue=" + token, kAdminToken)
            .json();
    CHECK(page["metadata"]["resourceVersion"] == rv);
    for (const auto& p : page["items"]) seen.push_back(p["metadata"]["name"]);
    token = page["metadata"].value("continue", "");
  }
  CHECK(seen == std::vector<std::string>{"p0", "p1", "p2", "p3", "p4"});

  auto again = call("GET", "/api/v1/namespaces/default/pods?limit=2", kAdminToken).json();
  std::string stale = again["metadata"]["continue"];
  put_pod("default", "p11", "n1");
  REQUIRE(store().compact(store().current_revision()).ok());
  auto expired =
      call("GET", "/api/v1/namespaces/default/pods?limit=2&continue=" + stale, kAdminToken);
  CHECK(expired.code == 410);
  CHECK(expired.json()["reason"] == "Expired");
}

TEST_CASE_METHOD(ApiFixture,
                 "a list without a limit returns every object once, past the store's page size",
                 "[api][server]") {
  constexpr int kNodes = 1234;  // more than the 500 the server reads from the store at a time
  for (int i = 0; i < kNodes; ++i) put_node(fmt::format("n{:04}", i), "zhejiang");
  auto list = call("GET", "/api/v1/nodes", kAdminToken);
  REQUIRE(list.code == 200);
  auto items = list.json()["items"];
  REQUIRE(items.size() == kNodes);
  std::set<std::string> names;
  for (const auto& n : items) names.insert(n["metadata"]["name"].get<std::string>());
  CHECK(names.size() == kNodes);
  auto table = call("GET", "/api/v1/nodes", kAdminToken, "", "application/json",
                    {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io"});
  REQUIRE(table.code == 200);
  CHECK(table.json()["rows"].size() == kNodes);
}

TEST_CASE("/metrics serves the exporter's text, without a token unless health is closed",
          "[api][server]") {
  bool open = GENERATE(true, false);
  cloud::api::ApiServerOptions options;
  options.anonymous_health = open;
  options.metrics = [] {
    return std::string("# HELP x_total X.\n# TYPE x_total counter\nx_total 3\n");
  };
  ApiFixture f(options);
  auto anonymous = f.call("GET", "/metrics", "");
  auto with_token = f.call("GET", "/metrics", kAdminToken);
  CHECK(with_token.code == 200);
  CHECK(with_token.body.find("x_total 3") != std::string::npos);
  CHECK(with_token.headers.find("version=0.0.4") != std::string::npos);
  CHECK(anonymous.code == (open ? 200 : 401));
  // The other open paths answer the same way with a token when they are closed.
  CHECK(f.call("GET", "/healthz", kAdminToken).code == 200);
}

TEST_CASE_METHOD(ApiFixture, "label and field selectors filter lists", "[api][server]") {
  put_node("n1", "zhejiang");
  put_node("n2", "jiangsu");
  put_pod("default", "a", "n1");
  put_pod("default", "b", "n2");
  put_pod_status("default", "a", v1::POD_PHASE_RUNNING, true);
  auto names = [&](const std::string& path) {
    std::vector<std::string> out;
    json list = call("GET", path, kAdminToken).json();
    for (const auto& i : list["items"]) out.push_back(i["metadata"]["name"]);
    return out;
  };
  CHECK(names("/api/v1/nodes?labelSelector=topology.gantry.io/province%3Dzhejiang") ==
        std::vector<std::string>{"n1"});
  CHECK(names("/api/v1/nodes?labelSelector=topology.gantry.io/province%20notin%20(zhejiang)") ==
        std::vector<std::string>{"n2"});
  CHECK(names("/api/v1/pods?fieldSelector=spec.nodeName%3Dn2") == std::vector<std::string>{"b"});
  CHECK(names("/api/v1/pods?fieldSelector=status.phase%3DRunning") ==
        std::vector<std::string>{"a"});
  CHECK(names("/api/v1/pods?fieldSelector=status.phase!%3DRunning,metadata.namespace%3Ddefault") ==
        std::vector<std::string>{"b"});
  CHECK(names("/api/v1/pods?labelSelector=app%3Da") == std::vector<std::string>{"a"});
}

TEST_CASE_METHOD(ApiFixture, "province tokens see and change only their province",
                 "[api][server][auth]") {
  put_node("zj1", "zhejiang");
  put_node("js1", "jiangsu");
  put_pod("default", "zj-pod", "zj1");
  put_pod("default", "js-pod", "js1");
  auto nodes = call("GET", "/api/v1/nodes", kZhejiangViewerToken).json();
  REQUIRE(nodes["items"].size() == 1);
  CHECK(nodes["items"][0]["metadata"]["name"] == "zj1");
  auto forbidden = call("GET", "/api/v1/namespaces/default/pods/js-pod", kZhejiangViewerToken);
  CHECK(forbidden.code == 403);
  CHECK(forbidden.json()["message"].get<std::string>().find("jiangsu") != std::string::npos);
  CHECK(call("DELETE", "/api/v1/namespaces/default/pods/zj-pod", kZhejiangViewerToken).code == 403);
  CHECK(call("GET", "/api/v1/namespaces/default/configmaps", kZhejiangViewerToken).code == 403);
  // The jiangsu operator may create pods on its own nodes only.
  std::string on_js =
      R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"new"},"spec":{"nodeName":"js1","containers":[{"name":"a","image":"b"}]}})";
  std::string on_zj =
      R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"new2"},"spec":{"nodeName":"zj1","containers":[{"name":"a","image":"b"}]}})";
  CHECK(call("POST", "/api/v1/namespaces/default/pods", kJiangsuOperatorToken, on_js).code == 201);
  CHECK(call("POST", "/api/v1/namespaces/default/pods", kJiangsuOperatorToken, on_zj).code == 403);
  auto provinces = call("GET", "/apis/gantry.io/v1/provinces", kZhejiangViewerToken).json();
  REQUIRE(provinces["items"].size() == 1);
  CHECK(provinces["items"][0]["metadata"]["name"] == "zhejiang");
}

TEST_CASE_METHOD(ApiFixture, "province aggregates count nodes by readiness and pods by phase",
                 "[api][server]") {
  put_node("a", "zhejiang");
  put_node("b", "zhejiang");
  put_node("c", "zhejiang");
  put_node_status("a", true);
  put_node_status("b", false);
  put_pod("default", "p1", "a");
  put_pod("default", "p2", "a");
  put_pod_status("default", "p1", v1::POD_PHASE_RUNNING, true);
  auto p = call("GET", "/apis/gantry.io/v1/provinces/zhejiang", kAdminToken).json();
  CHECK(p["status"]["nodes"] ==
        json({{"total", 3}, {"ready", 1}, {"notReady", 1}, {"unknown", 1}}));
  CHECK(p["status"]["pods"]["total"] == 2);
  CHECK(p["status"]["pods"]["byPhase"] == json({{"Pending", 1}, {"Running", 1}}));
  CHECK(p["status"].contains("lastChange"));
  CHECK(call("GET", "/apis/gantry.io/v1/provinces/nowhere", kAdminToken).code == 404);
}

TEST_CASE_METHOD(ApiFixture, "a watch resumes from a resourceVersion and sees status changes",
                 "[api][server][watch]") {
  put_node("n1", "zhejiang");
  put_pod("default", "web", "n1");
  auto list = call("GET", "/api/v1/namespaces/default/pods", kAdminToken).json();
  std::string rv = list["metadata"]["resourceVersion"];
  put_pod_status("default", "web", v1::POD_PHASE_RUNNING, true);
  put_pod("default", "db", "n1");
  REQUIRE(store().remove(cloud::keys::object_key(v1::OBJECT_KIND_POD, "default", "db")).ok());
  auto w =
      call("GET", "/api/v1/namespaces/default/pods?watch=1&timeoutSeconds=2&resourceVersion=" + rv,
           kAdminToken);
  REQUIRE(w.code == 200);
  auto events = events_of(w.body);
  REQUIRE(events.size() == 3);
  CHECK(events[0]["type"] == "MODIFIED");
  CHECK(events[0]["object"]["status"]["phase"] == "Running");
  CHECK(events[1]["type"] == "ADDED");
  CHECK(events[1]["object"]["metadata"]["name"] == "db");
  CHECK(events[2]["type"] == "DELETED");
  // With a selector, only matching objects.
  auto sel = call("GET",
                  "/api/v1/namespaces/default/"
                  "pods?watch=1&timeoutSeconds=2&labelSelector=app%3Ddb&resourceVersion=" +
                      rv,
                  kAdminToken);
  CHECK(events_of(sel.body).size() == 2);
}

TEST_CASE_METHOD(ApiFixture, "a watch from a compacted revision ends with a 410 ERROR event",
                 "[api][server][watch]") {
  put_node("n1", "zhejiang");
  put_pod("default", "web", "n1");
  auto old_rv = store().current_revision() - 1;
  put_pod_status("default", "web", v1::POD_PHASE_RUNNING, true);
  put_pod_status("default", "web", v1::POD_PHASE_RUNNING, false);
  REQUIRE(store().compact(store().current_revision()).ok());
  auto w =
      call("GET", "/api/v1/pods?watch=1&resourceVersion=" + std::to_string(old_rv), kAdminToken);
  auto events = events_of(w.body);
  REQUIRE(events.size() == 1);
  CHECK(events[0]["type"] == "ERROR");
  CHECK(events[0]["object"]["code"] == 410);
  CHECK(events[0]["object"]["reason"] == "Expired");
}

TEST_CASE_METHOD(ApiFixture, "pod logs without a tunnel answer a clear error, never fake output",
                 "[api][server]") {
  put_node("n1", "zhejiang");
  put_pod("default", "web", "n1");
  auto r = call("GET", "/api/v1/namespaces/default/pods/web/log", kAdminToken);
  CHECK(r.code == 501);
  CHECK(r.json()["message"].get<std::string>().find("serves no container logs") !=
        std::string::npos);
}

TEST_CASE_METHOD(ApiFixture, "unsupported pod fields come back as Warning headers",
                 "[api][server]") {
  put_node("n1", "zhejiang");
  std::string body =
      R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"probe"},"spec":{"nodeName":"n1",
    "containers":[{"name":"a","image":"b","livenessProbe":{"exec":{"command":["true"]}}}],
    "volumes":[{"name":"data","persistentVolumeClaim":{"claimName":"x"}}]}})";
  auto r = call("POST", "/api/v1/namespaces/default/pods", kAdminToken, body);
  INFO(r.body);
  CHECK(r.code == 201);
  CHECK(r.headers.find("Warning: 299 - \"spec.containers[a].livenessProbe") != std::string::npos);
  CHECK(r.headers.find("persistentVolumeClaim") != std::string::npos);
}
