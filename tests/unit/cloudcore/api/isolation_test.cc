// Province isolation through the real API server: who may do what to which object (a table of
// role x object province x kind x verb -> HTTP code), and each side door of issue 12 tried.
#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include "cloudcore/api/auth.h"
#include "tests/unit/cloudcore/api/api_fixture.h"

using namespace gantry;
using namespace gantry::test;
using nlohmann::json;

namespace {

struct Role {
  const char* name;
  const char* token;
};
const Role kAdmin{"admin", kAdminToken};
const Role kViewerA{"zhejiang viewer", kZhejiangViewerToken};
const Role kOperatorA{"zhejiang operator", kZhejiangOperatorToken};
const Role kOperatorB{"jiangsu operator", kJiangsuOperatorToken};

// Namespaces of province A (zhejiang), of province B (jiangsu) and of none (default); nodes zj1 in
// A and js1 in B. Each namespace holds a pod, a configmap, a secret and an event; the pods of
// zj-apps and js-apps run in their province, the pod of default on js1.
struct Isolation : ApiFixture {
  Isolation() {
    put_node("zj1", "zhejiang");
    put_node("js1", "jiangsu");
    make_namespace("zj-apps", {{"topology.gantry.io/province", "zhejiang"}});
    make_namespace("js-apps", {{"topology.gantry.io/province", "jiangsu"}});
    for (const char* ns : {"zj-apps", "js-apps", "default"})
      for (const char* kind : {"pods", "configmaps", "secrets", "events"})
        REQUIRE(admin_create(ns, kind, "seed").code == 201);
  }

  void make_namespace(const std::string& name, const json& labels) {
    json ns = {{"apiVersion", "v1"},
               {"kind", "Namespace"},
               {"metadata", {{"name", name}, {"labels", labels}}}};
    REQUIRE(call("POST", "/api/v1/namespaces", kAdminToken, ns.dump()).code == 201);
  }

  static std::string node_for(const std::string& ns) { return ns == "zj-apps" ? "zj1" : "js1"; }

  static json body(const std::string& ns, const std::string& kind, const std::string& name) {
    json meta = {{"name", name}};
    if (kind == "pods")
      return {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", meta},
              {"spec",
               {{"nodeName", node_for(ns)},
                {"containers", {{{"name", "main"}, {"image", "nginx:1.25"}}}}}}};
    if (kind == "configmaps")
      return {
          {"apiVersion", "v1"}, {"kind", "ConfigMap"}, {"metadata", meta}, {"data", {{"k", "v"}}}};
    if (kind == "secrets")
      return {{"apiVersion", "v1"},
              {"kind", "Secret"},
              {"metadata", meta},
              {"data", {{"password", "aHVudGVyMg=="}}}};
    return {{"apiVersion", "v1"},
            {"kind", "Event"},
            {"metadata", meta},
            {"involvedObject", {{"kind", "Pod"}, {"name", "seed"}, {"namespace", ns}}},
            {"reason", "Started"},
            {"message", "started"},
            {"type", "Normal"}};
  }

  HttpResult admin_create(const std::string& ns, const std::string& kind, const std::string& name) {
    return call("POST", "/api/v1/namespaces/" + ns + "/" + kind, kAdminToken,
                body(ns, kind, name).dump());
  }

  // One verb by `role` on the object "seed" of the collection at `base`; the HTTP code. `make`
  // gives the body of an object named so; `seed_victim` creates one as an administrator would.
  int attempt_at(const Role& role, const std::string& base,
                 const std::function<json(const std::string&)>& make,
                 const std::function<void(const std::string&)>& seed_victim, char verb,
                 int serial) {
    switch (verb) {
      case 'g':
        return call("GET", base + "/seed", role.token).code;
      case 'l':
        return call("GET", base, role.token).code;
      case 'c':
        return call("POST", base, role.token, make("new-" + std::to_string(serial)).dump()).code;
      case 'u':
        return call("PATCH", base + "/seed", role.token,
                    R"({"metadata":{"labels":{"touched":")" + std::to_string(serial) + R"("}}})",
                    "application/merge-patch+json")
            .code;
      case 'd': {
        std::string victim = "victim-" + std::to_string(serial);
        seed_victim(victim);
        return call("DELETE", base + "/" + victim, role.token).code;
      }
    }
    FAIL("unknown verb");
    return 0;
  }

  // One verb by `role` on an object of `kind` in `ns`; the HTTP code.
  int attempt(const Role& role, const std::string& ns, const std::string& kind, char verb,
              int serial) {
    return attempt_at(
        role, "/api/v1/namespaces/" + ns + "/" + kind,
        [&](const std::string& name) { return body(ns, kind, name); },
        [&](const std::string& name) { REQUIRE(admin_create(ns, kind, name).code == 201); }, verb,
        serial);
  }
};

int success_code(char verb) {
  return verb == 'c' ? 201 : 200;
}

json with_node(json spec) {
  spec["nodeName"] = "js1";
  return spec;
}

}  // namespace

TEST_CASE_METHOD(Isolation,
                 "province isolation: role x namespace province x kind x verb gives the expected "
                 "code",
                 "[api][isolation]") {
  // Per row: the verbs get, list, create, update (patch), delete; Y = allowed (200, or 201 for a
  // create), N = 403 Forbidden.
  struct Row {
    const Role* role;
    const char* ns;
    const char* kind;
    const char* verbs;  // "glcud"
  };
  const std::vector<Row> rows = {
      // The administrator may do everything everywhere.
      {&kAdmin, "zj-apps", "pods", "YYYYY"},
      {&kAdmin, "zj-apps", "configmaps", "YYYYY"},
      {&kAdmin, "zj-apps", "secrets", "YYYYY"},
      {&kAdmin, "zj-apps", "events", "YYYYY"},
      {&kAdmin, "default", "pods", "YYYYY"},
      {&kAdmin, "default", "secrets", "YYYYY"},
      // A's viewer reads A's namespaces, but not their secrets; nothing of B's; in default only the
      // pods bound to A's nodes (the list answers, filtered: the seed pod runs on js1).
      {&kViewerA, "zj-apps", "pods", "YYNNN"},
      {&kViewerA, "zj-apps", "configmaps", "YYNNN"},
      {&kViewerA, "zj-apps", "secrets", "NNNNN"},
      {&kViewerA, "zj-apps", "events", "YYNNN"},
      {&kViewerA, "js-apps", "pods", "NNNNN"},
      {&kViewerA, "js-apps", "configmaps", "NNNNN"},
      {&kViewerA, "js-apps", "secrets", "NNNNN"},
      {&kViewerA, "js-apps", "events", "NNNNN"},
      {&kViewerA, "default", "pods", "NYNNN"},
      {&kViewerA, "default", "configmaps", "NNNNN"},
      {&kViewerA, "default", "secrets", "NNNNN"},
      {&kViewerA, "default", "events", "NNNNN"},
      // A's operator manages A's namespaces, secrets included; nothing of B's.
      {&kOperatorA, "zj-apps", "pods", "YYYYY"},
      {&kOperatorA, "zj-apps", "configmaps", "YYYYY"},
      {&kOperatorA, "zj-apps", "secrets", "YYYYY"},
      {&kOperatorA, "zj-apps", "events", "YYYYY"},
      {&kOperatorA, "js-apps", "pods", "NNNNN"},
      {&kOperatorA, "js-apps", "configmaps", "NNNNN"},
      {&kOperatorA, "js-apps", "secrets", "NNNNN"},
      {&kOperatorA, "js-apps", "events", "NNNNN"},
      {&kOperatorA, "default", "pods", "NYNNN"},
      {&kOperatorA, "default", "configmaps", "NNNNN"},
      {&kOperatorA, "default", "secrets", "NNNNN"},
      {&kOperatorA, "default", "events", "NNNNN"},
      // B's operator: the mirror image; in default it manages the pods on its node js1, but not
      // default's configmaps, secrets or events.
      {&kOperatorB, "js-apps", "pods", "YYYYY"},
      {&kOperatorB, "js-apps", "configmaps", "YYYYY"},
      {&kOperatorB, "js-apps", "secrets", "YYYYY"},
      {&kOperatorB, "js-apps", "events", "YYYYY"},
      {&kOperatorB, "zj-apps", "pods", "NNNNN"},
      {&kOperatorB, "zj-apps", "configmaps", "NNNNN"},
      {&kOperatorB, "zj-apps", "secrets", "NNNNN"},
      {&kOperatorB, "zj-apps", "events", "NNNNN"},
      {&kOperatorB, "default", "pods", "YYYYY"},
      {&kOperatorB, "default", "configmaps", "NNNNN"},
      {&kOperatorB, "default", "secrets", "NNNNN"},
      {&kOperatorB, "default", "events", "NNNNN"},
  };
  int serial = 0;
  for (const auto& row : rows) {
    for (size_t i = 0; i < 5; ++i) {
      char verb = "glcud"[i];
      int expected = row.verbs[i] == 'Y' ? success_code(verb) : 403;
      INFO(row.role->name << " " << verb << " " << row.kind << " in " << row.ns);
      CHECK(attempt(*row.role, row.ns, row.kind, verb, ++serial) == expected);
    }
  }
}

TEST_CASE_METHOD(Isolation, "lists show a province role only its province's objects",
                 "[api][isolation]") {
  auto names = [&](const char* token, const std::string& path) {
    std::set<std::string> out;
    auto r = call("GET", path, token);
    REQUIRE(r.code == 200);
    json list = r.json();
    for (const auto& item : list["items"])
      out.insert(item["metadata"]["namespace"].get<std::string>() + "/" +
                 item["metadata"]["name"].get<std::string>());
    return out;
  };
  using Set = std::set<std::string>;
  CHECK(names(kZhejiangViewerToken, "/api/v1/pods") == Set{"zj-apps/seed"});
  CHECK(names(kZhejiangViewerToken, "/api/v1/configmaps") == Set{"zj-apps/seed"});
  CHECK(names(kJiangsuOperatorToken, "/api/v1/pods") == Set{"default/seed", "js-apps/seed"});
  CHECK(names(kJiangsuOperatorToken, "/api/v1/secrets") == Set{"js-apps/seed"});
  CHECK(names(kZhejiangOperatorToken, "/api/v1/namespaces/default/pods").empty());
  // Viewers never list secrets.
  CHECK(call("GET", "/api/v1/secrets", kZhejiangViewerToken).code == 403);
}

TEST_CASE_METHOD(Isolation, "nodes: province roles see and change their own, none creates one",
                 "[api][isolation]") {
  put_node("zj-spare", "zhejiang");
  put_node("js-spare", "jiangsu");
  const std::string label = R"({"metadata":{"labels":{"lane":"3"}}})";
  const std::string node =
      R"({"apiVersion":"v1","kind":"Node","metadata":{"name":"squat","labels":{"topology.gantry.io/province":"zhejiang"}}})";
  struct Case {
    const Role* role;
    int get_a, get_b, patch_a, patch_b, create, delete_b, delete_a;
  };
  const std::vector<Case> cases = {
      {&kViewerA, 200, 403, 403, 403, 403, 403, 403},
      {&kOperatorB, 403, 200, 403, 200, 403, 200, 403},
      {&kOperatorA, 200, 403, 200, 403, 403, 403, 200},
  };
  for (const auto& c : cases) {
    INFO(c.role->name);
    CHECK(call("GET", "/api/v1/nodes/zj1", c.role->token).code == c.get_a);
    CHECK(call("GET", "/api/v1/nodes/js1", c.role->token).code == c.get_b);
    CHECK(call("PATCH", "/api/v1/nodes/zj1", c.role->token, label, "application/merge-patch+json")
              .code == c.patch_a);
    CHECK(call("PATCH", "/api/v1/nodes/js1", c.role->token, label, "application/merge-patch+json")
              .code == c.patch_b);
    auto created = call("POST", "/api/v1/nodes", c.role->token, node);
    CHECK(created.code == c.create);
    if (c.role != &kViewerA)
      CHECK_THAT(created.json()["message"].get<std::string>(),
                 Catch::Matchers::Contains("gantryadm join"));
    CHECK(call("DELETE", "/api/v1/nodes/js-spare", c.role->token).code == c.delete_b);
    CHECK(call("DELETE", "/api/v1/nodes/zj-spare", c.role->token).code == c.delete_a);
    if (c.delete_b == 200) put_node("js-spare", "jiangsu");
    if (c.delete_a == 200) put_node("zj-spare", "zhejiang");
  }
  // A province operator cannot move a node out of its province.
  CHECK(call("PATCH", "/api/v1/nodes/zj1", kZhejiangOperatorToken,
             R"({"metadata":{"labels":{"topology.gantry.io/province":"jiangsu"}}})",
             "application/merge-patch+json")
            .code == 403);
  // ... nor mark it as joined (the annotation a join writes).
  CHECK(call("PATCH", "/api/v1/nodes/zj1", kZhejiangOperatorToken,
             R"({"metadata":{"annotations":{"gantry.io/joined-at":"2026-01-01T00:00:00Z"}}})",
             "application/merge-patch+json")
            .code == 403);
  CHECK(call("POST", "/api/v1/nodes", kAdminToken, node).code == 201);
}

TEST_CASE_METHOD(Isolation, "namespaces: every role reads them, only administrators write them",
                 "[api][isolation]") {
  const std::string ns = R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":"mine"}})";
  const std::string relabel =
      R"({"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"privileged"}}})";
  for (const Role* role : {&kViewerA, &kOperatorA, &kOperatorB}) {
    INFO(role->name);
    CHECK(call("GET", "/api/v1/namespaces/zj-apps", role->token).code == 200);
    CHECK(call("GET", "/api/v1/namespaces", role->token).code == 200);
    CHECK(call("POST", "/api/v1/namespaces", role->token, ns).code == 403);
    // In particular no operator lifts its namespace's Pod Security level, or moves it.
    CHECK(call("PATCH", "/api/v1/namespaces/zj-apps", role->token, relabel,
               "application/merge-patch+json")
              .code == 403);
    CHECK(call("DELETE", "/api/v1/namespaces/zj-apps", role->token).code == 403);
  }
  CHECK(call("POST", "/api/v1/namespaces", kAdminToken, ns).code == 201);
}

TEST_CASE_METHOD(Isolation,
                 "side door: a pod may not mount a secret its creator may not read, so its logs "
                 "cannot leak it",
                 "[api][isolation]") {
  REQUIRE(call("POST", "/api/v1/namespaces/default/secrets", kAdminToken,
               R"({"metadata":{"name":"db"},"data":{"password":"aHVudGVyMg=="}})")
              .code == 201);
  auto pod = [](const std::string& name, const json& spec_patch) {
    json p = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}}},
              {"spec",
               {{"nodeName", "js1"},
                {"containers", {{{"name", "main"}, {"image", "busybox"}, {"command", {"cat"}}}}}}}};
    p["spec"].merge_patch(spec_patch);
    return p.dump();
  };
  struct Try {
    const char* what;
    json spec;
    const char* field;
  };
  const std::vector<Try> tries = {
      {"a secret volume",
       {{"volumes", {{{"name", "s"}, {"secret", {{"secretName", "db"}}}}}}},
       "spec.volumes[0].secret.secretName"},
      {"a projected secret",
       {{"volumes",
         {{{"name", "s"}, {"projected", {{"sources", {{{"secret", {{"name", "db"}}}}}}}}}}}},
       "spec.volumes[0].projected.sources[0].secret.name"},
      {"an env secretKeyRef",
       {{"containers",
         {{{"name", "main"},
           {"image", "busybox"},
           {"env",
            {{{"name", "P"},
              {"valueFrom", {{"secretKeyRef", {{"name", "db"}, {"key", "password"}}}}}}}}}}}},
       "spec.containers[0].env[0].valueFrom.secretKeyRef.name"},
      {"envFrom a secret",
       {{"containers",
         {{{"name", "main"},
           {"image", "busybox"},
           {"envFrom", {{{"secretRef", {{"name", "db"}}}}}}}}}},
       "spec.containers[0].envFrom[0].secretRef.name"},
      {"a configmap of a namespace without province",
       {{"volumes", {{{"name", "c"}, {"configMap", {{"name", "seed"}}}}}}},
       "spec.volumes[0].configMap.name"},
  };
  int n = 0;
  for (const auto& t : tries) {
    INFO(t.what);
    // B's operator may run pods on its node js1 in default, but not with default's secrets.
    auto r = call("POST", "/api/v1/namespaces/default/pods", kJiangsuOperatorToken,
                  pod("leak-" + std::to_string(++n), t.spec));
    CHECK(r.code == 403);
    CHECK_THAT(r.json()["message"].get<std::string>(), Catch::Matchers::Contains(t.field));
  }
  // Nor by changing a pod it was allowed to create.
  REQUIRE(call("POST", "/api/v1/namespaces/default/pods", kJiangsuOperatorToken,
               pod("harmless", json::object()))
              .code == 201);
  auto patched = call("PATCH", "/api/v1/namespaces/default/pods/harmless", kJiangsuOperatorToken,
                      R"({"spec":{"volumes":[{"name":"s","secret":{"secretName":"db"}}]}})",
                      "application/merge-patch+json");
  // Refused either way: a pod's volumes are immutable (422, as Kubernetes), and the secret is not
  // the operator's to mount (403).
  CHECK((patched.code == 422 || patched.code == 403));
  CHECK_FALSE(call("GET", "/api/v1/namespaces/default/pods/harmless", kAdminToken)
                  .json()["spec"]
                  .contains("volumes"));
  // A's operator cannot put a pod into B's namespace to mount B's secret, nor read B's pods' logs.
  auto into_b =
      call("POST", "/api/v1/namespaces/js-apps/pods", kZhejiangOperatorToken,
           pod("leak-b", {{"nodeName", "zj1"},
                          {"volumes", {{{"name", "s"}, {"secret", {{"secretName", "seed"}}}}}}}));
  CHECK(into_b.code == 403);
  CHECK(call("GET", "/api/v1/namespaces/js-apps/pods/seed/log", kZhejiangOperatorToken).code ==
        403);
  // In its own namespace the operator reads the secrets, so its pods may mount them.
  CHECK(call("POST", "/api/v1/namespaces/js-apps/pods", kJiangsuOperatorToken,
             pod("mine", {{"volumes", {{{"name", "s"}, {"secret", {{"secretName", "seed"}}}}}}}))
            .code == 201);
  // A pod of a province namespace may not be bound to another province's node.
  auto elsewhere = call("POST", "/api/v1/namespaces/js-apps/pods", kJiangsuOperatorToken,
                        pod("away", {{"nodeName", "zj1"}}));
  CHECK(elsewhere.code == 403);
  CHECK_THAT(elsewhere.json()["message"].get<std::string>(),
             Catch::Matchers::Contains("province \"zhejiang\""));
}

TEST_CASE_METHOD(Isolation,
                 "side door: privileged pods, host namespaces and hostPath only where the "
                 "namespace's Pod Security label allows them",
                 "[api][isolation]") {
  auto pod = [](const std::string& name, const json& spec) {
    json p = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}}},
              {"spec", {{"containers", {{{"name", "main"}, {"image", "busybox"}}}}}}};
    p["spec"].merge_patch(spec);
    return p.dump();
  };
  const json privileged = {
      {"containers",
       {{{"name", "main"}, {"image", "busybox"}, {"securityContext", {{"privileged", true}}}}}}};
  const json host_network = {{"hostNetwork", true}};
  const json host_path = {{"volumes", {{{"name", "root"}, {"hostPath", {{"path", "/"}}}}}},
                          {"containers",
                           {{{"name", "main"},
                             {"image", "busybox"},
                             {"volumeMounts", {{{"name", "root"}, {"mountPath", "/host"}}}}}}}};
  int n = 0;
  for (const auto& [what, spec, control] : std::vector<std::tuple<const char*, json, const char*>>{
           {"privileged", privileged, "privileged"},
           {"hostNetwork", host_network, "host namespaces"},
           {"hostPath", host_path, "hostPath volumes"}}) {
    INFO(what);
    auto r = call("POST", "/api/v1/namespaces/js-apps/pods", kJiangsuOperatorToken,
                  pod("p" + std::to_string(++n), spec));
    CHECK(r.code == 403);
    std::string message = r.json()["message"].get<std::string>();
    CHECK_THAT(message, Catch::Matchers::Contains("PodSecurity \"baseline:latest\"") &&
                            Catch::Matchers::Contains(control));
    // In default too (no province, baseline).
    CHECK(call("POST", "/api/v1/namespaces/default/pods", kJiangsuOperatorToken,
               pod("d" + std::to_string(n), with_node(spec)))
              .code == 403);
    // An administrator may.
    CHECK(call("POST", "/api/v1/namespaces/js-apps/pods", kAdminToken,
               pod("a" + std::to_string(n), spec))
              .code == 201);
  }
  // Once an administrator labels the namespace privileged, its operator may too.
  REQUIRE(call("PATCH", "/api/v1/namespaces/js-apps", kAdminToken,
               R"({"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"privileged"}}})",
               "application/merge-patch+json")
              .code == 200);
  CHECK(call("POST", "/api/v1/namespaces/js-apps/pods", kJiangsuOperatorToken,
             pod("now-allowed", privileged))
            .code == 201);
  // restricted: a plain pod is refused, naming what to set.
  REQUIRE(call("PATCH", "/api/v1/namespaces/js-apps", kAdminToken,
               R"({"metadata":{"labels":{"pod-security.kubernetes.io/enforce":"restricted"}}})",
               "application/merge-patch+json")
              .code == 200);
  auto plain = call("POST", "/api/v1/namespaces/js-apps/pods", kJiangsuOperatorToken,
                    pod("plain", json::object()));
  CHECK(plain.code == 403);
  CHECK_THAT(plain.json()["message"].get<std::string>(),
             Catch::Matchers::Contains("allowPrivilegeEscalation"));
}

TEST_CASE_METHOD(Isolation,
                 "SelfSubjectAccessReview answers what the request would meet, for each role",
                 "[api][isolation][reviews]") {
  auto can_i = [&](const Role& role, const json& attributes) {
    json review = {{"kind", "SelfSubjectAccessReview"},
                   {"apiVersion", "authorization.k8s.io/v1"},
                   {"spec", {{"resourceAttributes", attributes}}}};
    auto r = call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", role.token,
                  review.dump());
    REQUIRE(r.code == 201);
    CHECK(r.json()["kind"] == "SelfSubjectAccessReview");
    return r.json()["status"]["allowed"].get<bool>();
  };
  struct Case {
    json attributes;
    bool admin, viewer_a, operator_a, operator_b;
  };
  const std::vector<Case> cases = {
      {{{"verb", "create"}, {"resource", "pods"}, {"namespace", "zj-apps"}},
       true,
       false,
       true,
       false},
      {{{"verb", "list"}, {"resource", "pods"}, {"namespace", "zj-apps"}}, true, true, true, false},
      {{{"verb", "get"}, {"resource", "secrets"}, {"namespace", "zj-apps"}},
       true,
       false,
       true,
       false},
      {{{"verb", "delete"}, {"resource", "configmaps"}, {"namespace", "js-apps"}, {"name", "seed"}},
       true,
       false,
       false,
       true},
      {{{"verb", "get"}, {"resource", "pods"}, {"namespace", "default"}, {"name", "seed"}},
       true,
       false,
       false,
       true},
      {{{"verb", "get"}, {"resource", "secrets"}, {"namespace", "default"}},
       true,
       false,
       false,
       false},
      {{{"verb", "create"}, {"resource", "nodes"}}, true, false, false, false},
      {{{"verb", "patch"}, {"resource", "nodes"}, {"name", "zj1"}}, true, false, true, false},
      {{{"verb", "get"},
        {"resource", "pods"},
        {"subresource", "log"},
        {"namespace", "zj-apps"},
        {"name", "seed"}},
       true,
       true,
       true,
       false},
      {{{"verb", "create"}, {"resource", "namespaces"}}, true, false, false, false},
      // Workloads as configmaps: across namespaces, filtered; in another province's namespace no.
      {{{"verb", "list"}, {"resource", "deployments"}, {"group", "apps"}}, true, true, true, true},
      {{{"verb", "create"},
        {"resource", "deployments"},
        {"group", "apps"},
        {"namespace", "zj-apps"}},
       true,
       false,
       true,
       false},
      {{{"verb", "list"}, {"resource", "deployments"}, {"group", "apps"}, {"namespace", "default"}},
       true,
       false,
       false,
       false},
      {{{"verb", "list"}, {"resource", "statefulsets"}, {"group", "apps"}},
       true,
       false,
       false,
       false},
  };
  for (const auto& c : cases) {
    INFO(c.attributes.dump());
    CHECK(can_i(kAdmin, c.attributes) == c.admin);
    CHECK(can_i(kViewerA, c.attributes) == c.viewer_a);
    CHECK(can_i(kOperatorA, c.attributes) == c.operator_a);
    CHECK(can_i(kOperatorB, c.attributes) == c.operator_b);
  }
  // The review and the request agree.
  CHECK(call("POST", "/api/v1/namespaces/zj-apps/pods", kZhejiangViewerToken,
             body("zj-apps", "pods", "x").dump())
            .code == 403);
  auto bad = call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                  kZhejiangViewerToken, R"({"spec":{}})");
  CHECK(bad.code == 400);
  CHECK(bad.json()["kind"] == "Status");
  // A deeply nested body is refused by the bounded decoder, not a stack overflow.
  auto deep = call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
                   kZhejiangViewerToken, std::string(100000, '[') + std::string(100000, ']'));
  CHECK(deep.code == 400);
  CHECK(call("GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", kAdminToken).code ==
        405);
  CHECK(call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", "", "{}").code ==
        401);
}

TEST_CASE_METHOD(Isolation, "SelfSubjectRulesReview and SelfSubjectReview through the server",
                 "[api][isolation][reviews]") {
  auto rules = [&](const char* token, const std::string& ns) {
    json review = {{"kind", "SelfSubjectRulesReview"},
                   {"apiVersion", "authorization.k8s.io/v1"},
                   {"spec", {{"namespace", ns}}}};
    auto r =
        call("POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", token, review.dump());
    REQUIRE(r.code == 201);
    std::map<std::string, std::set<std::string>> verbs;  // resource -> verbs
    json answer = r.json();
    for (const auto& rule : answer["status"]["resourceRules"])
      for (const auto& res : rule["resources"])
        for (const auto& v : rule["verbs"]) verbs[res].insert(v);
    return verbs;
  };
  auto operator_rules = rules(kZhejiangOperatorToken, "zj-apps");
  CHECK(operator_rules["secrets"].count("create"));
  CHECK(operator_rules["pods"].count("delete"));
  auto viewer_rules = rules(kZhejiangViewerToken, "zj-apps");
  CHECK(viewer_rules["pods"] == std::set<std::string>{"get", "list", "watch"});
  CHECK_FALSE(viewer_rules.count("secrets"));
  auto other = rules(kZhejiangOperatorToken, "js-apps");
  CHECK_FALSE(other.count("configmaps"));
  CHECK_FALSE(other.count("pods"));
  CHECK(rules(kAdminToken, "default")["*"].count("*"));

  for (const char* version : {"v1", "v1beta1"}) {
    auto who =
        call("POST", std::string("/apis/authentication.k8s.io/") + version + "/selfsubjectreviews",
             kJiangsuOperatorToken,
             json{{"kind", "SelfSubjectReview"},
                  {"apiVersion", std::string("authentication.k8s.io/") + version}}
                 .dump());
    REQUIRE(who.code == 201);
    CHECK(who.json()["status"]["userInfo"]["username"] == "js-operator");
    CHECK(who.json()["status"]["userInfo"]["groups"][0] == "gantry:province:jiangsu:operator");
  }
}

namespace {

// apps/v1 workloads of the isolation fixture: one of each kind per namespace, named "seed".
struct Workloads : Isolation {
  Workloads() {
    for (const char* ns : {"zj-apps", "js-apps", "default"})
      for (const char* kind : {"deployments", "replicasets", "daemonsets"})
        REQUIRE(admin_create_workload(ns, kind, "seed").code == 201);
  }

  static json workload(const std::string& kind, const std::string& name, const json& pod_spec) {
    static const std::map<std::string, std::string> kKinds = {
        {"deployments", "Deployment"}, {"replicasets", "ReplicaSet"}, {"daemonsets", "DaemonSet"}};
    json spec = {{"selector", {{"matchLabels", {{"app", name}}}}},
                 {"template", {{"metadata", {{"labels", {{"app", name}}}}}, {"spec", pod_spec}}}};
    if (kind != "daemonsets") spec["replicas"] = 1;
    return {{"apiVersion", "apps/v1"},
            {"kind", kKinds.at(kind)},
            {"metadata", {{"name", name}}},
            {"spec", spec}};
  }
  static json plain_pod_spec() {
    return {{"containers", {{{"name", "main"}, {"image", "nginx:1.25"}}}}};
  }

  static std::string path(const std::string& ns, const std::string& kind) {
    return "/apis/apps/v1/namespaces/" + ns + "/" + kind;
  }

  HttpResult admin_create_workload(const std::string& ns, const std::string& kind,
                                   const std::string& name) {
    return call("POST", path(ns, kind), kAdminToken, workload(kind, name, plain_pod_spec()).dump());
  }

  int attempt_workload(const Role& role, const std::string& ns, const std::string& kind, char verb,
                       int serial) {
    return attempt_at(
        role, path(ns, kind),
        [&](const std::string& name) { return workload(kind, name, plain_pod_spec()); },
        [&](const std::string& name) {
          REQUIRE(admin_create_workload(ns, kind, name).code == 201);
        },
        verb, serial);
  }
};

}  // namespace

TEST_CASE_METHOD(Workloads,
                 "province isolation of apps/v1 workloads: role x namespace province x kind x verb",
                 "[api][isolation][workloads]") {
  // As configmaps: a province's viewers read the workloads of its namespaces, its operators manage
  // them; nobody but an administrator touches those of a namespace without province (a workload
  // there has no node to follow, unlike a bound pod).
  struct Row {
    const Role* role;
    const char* ns;
    const char* verbs;  // get, list, create, update (patch), delete
  };
  const std::vector<Row> rows = {
      {&kAdmin, "zj-apps", "YYYYY"},     {&kAdmin, "default", "YYYYY"},
      {&kViewerA, "zj-apps", "YYNNN"},   {&kViewerA, "js-apps", "NNNNN"},
      {&kViewerA, "default", "NNNNN"},   {&kOperatorA, "zj-apps", "YYYYY"},
      {&kOperatorA, "js-apps", "NNNNN"}, {&kOperatorA, "default", "NNNNN"},
      {&kOperatorB, "js-apps", "YYYYY"}, {&kOperatorB, "zj-apps", "NNNNN"},
      {&kOperatorB, "default", "NNNNN"},
  };
  int serial = 0;
  for (const char* kind : {"deployments", "replicasets", "daemonsets"}) {
    for (const auto& row : rows) {
      for (size_t i = 0; i < 5; ++i) {
        char verb = "glcud"[i];
        int expected = row.verbs[i] == 'Y' ? success_code(verb) : 403;
        INFO(row.role->name << " " << verb << " " << kind << " in " << row.ns);
        CHECK(attempt_workload(*row.role, row.ns, kind, verb, ++serial) == expected);
      }
    }
  }
  // Lists across namespaces show only the caller's province.
  auto listed = call("GET", "/apis/apps/v1/deployments", kZhejiangViewerToken);
  REQUIRE(listed.code == 200);
  std::set<std::string> namespaces;
  const json items = listed.json()["items"];
  for (const auto& item : items)
    namespaces.insert(item["metadata"]["namespace"].get<std::string>());
  CHECK(namespaces == std::set<std::string>{"zj-apps"});
  // scale as the object.
  const std::string two = R"({"spec":{"replicas":2}})";
  CHECK(call("PATCH", path("zj-apps", "deployments") + "/seed/scale", kZhejiangOperatorToken, two,
             "application/merge-patch+json")
            .code == 200);
  CHECK(call("PATCH", path("js-apps", "deployments") + "/seed/scale", kZhejiangOperatorToken, two,
             "application/merge-patch+json")
            .code == 403);
  CHECK(call("GET", path("js-apps", "deployments") + "/seed/scale", kZhejiangViewerToken).code ==
        403);
  CHECK(call("PATCH", path("zj-apps", "replicasets") + "/seed/scale", kZhejiangViewerToken, two,
             "application/merge-patch+json")
            .code == 403);
  // controllerrevisions: read as workloads, written by the controllers (and administrators) only.
  json revision = {{"apiVersion", "apps/v1"},
                   {"kind", "ControllerRevision"},
                   {"metadata", {{"name", "seed-1"}}},
                   {"data", json::object()},
                   {"revision", 1}};
  REQUIRE(call("POST", path("zj-apps", "controllerrevisions"), kAdminToken, revision.dump()).code ==
          201);
  CHECK(
      call("GET", path("zj-apps", "controllerrevisions") + "/seed-1", kZhejiangViewerToken).code ==
      200);
  CHECK(
      call("GET", path("zj-apps", "controllerrevisions") + "/seed-1", kJiangsuOperatorToken).code ==
      403);
  revision["metadata"]["name"] = "forged-1";
  CHECK(
      call("POST", path("zj-apps", "controllerrevisions"), kZhejiangOperatorToken, revision.dump())
          .code == 403);
  CHECK(call("DELETE", path("zj-apps", "controllerrevisions") + "/seed-1", kZhejiangOperatorToken)
            .code == 403);
}

TEST_CASE_METHOD(Workloads, "batch/v1 jobs are a province's workloads like the apps/v1 ones",
                 "[api][isolation][workloads][job]") {
  json job = {{"apiVersion", "batch/v1"},
              {"kind", "Job"},
              {"metadata", {{"name", "export"}}},
              {"spec",
               {{"template",
                 {{"spec",
                   {{"restartPolicy", "Never"},
                    {"containers", {{{"name", "main"}, {"image", "busybox:1.36"}}}}}}}}}}};
  auto jobs = [](const std::string& ns) { return "/apis/batch/v1/namespaces/" + ns + "/jobs"; };
  CHECK(call("POST", jobs("zj-apps"), kJiangsuOperatorToken, job.dump()).code == 403);
  CHECK(call("POST", jobs("zj-apps"), kZhejiangViewerToken, job.dump()).code == 403);
  CHECK(call("POST", jobs("zj-apps"), kZhejiangOperatorToken, job.dump()).code == 201);
  CHECK(call("GET", jobs("zj-apps") + "/export", kZhejiangViewerToken).code == 200);
  CHECK(call("GET", jobs("zj-apps") + "/export", kJiangsuOperatorToken).code == 403);
  CHECK(call("DELETE", jobs("zj-apps") + "/export", kJiangsuOperatorToken).code == 403);
  CHECK(call("DELETE", jobs("zj-apps") + "/export", kZhejiangOperatorToken).code == 200);

  // Their pod templates (a CronJob's in its jobTemplate) are admitted as pods: no side door.
  json cron = {{"apiVersion", "batch/v1"},
               {"kind", "CronJob"},
               {"metadata", {{"name", "nightly"}}},
               {"spec", {{"schedule", "@daily"}, {"jobTemplate", {{"spec", job["spec"]}}}}}};
  auto cronjobs = [](const std::string& ns) {
    return "/apis/batch/v1/namespaces/" + ns + "/cronjobs";
  };
  json moved_job = job;
  moved_job["spec"]["template"]["spec"]["nodeName"] = "zj1";
  auto r = call("POST", jobs("js-apps"), kJiangsuOperatorToken, moved_job.dump());
  CHECK(r.code == 403);
  CHECK_THAT(r.json()["message"].get<std::string>(),
             Catch::Matchers::Contains("spec.template.spec.nodeName"));
  json moved_cron = cron;
  moved_cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["nodeName"] = "zj1";
  r = call("POST", cronjobs("js-apps"), kJiangsuOperatorToken, moved_cron.dump());
  CHECK(r.code == 403);
  CHECK_THAT(r.json()["message"].get<std::string>(),
             Catch::Matchers::Contains("spec.jobTemplate.spec.template.spec.nodeName"));
  r = call("POST", cronjobs("js-apps"), kJiangsuOperatorToken, cron.dump());
  REQUIRE(r.code == 201);
  CHECK(r.json()["spec"]["jobTemplate"]["spec"]["template"]["spec"]["nodeSelector"]
                ["topology.gantry.io/province"] == "jiangsu");
  CHECK(call("GET", cronjobs("js-apps") + "/nightly", kZhejiangViewerToken).code == 403);
}

TEST_CASE_METHOD(Workloads,
                 "side door: a workload's pod template is admitted as its pods would be "
                 "(nodeName, nodeSelector, Pod Security, secret references)",
                 "[api][isolation][workloads]") {
  struct Try {
    const char* what;
    json pod_spec;
    const char* says;
  };
  json privileged = plain_pod_spec();
  privileged["containers"][0]["securityContext"] = {{"privileged", true}};
  json host_path = plain_pod_spec();
  host_path["volumes"] = {{{"name", "root"}, {"hostPath", {{"path", "/"}}}}};
  const std::vector<Try> tries = {
      {"nodeName in another province",
       {{"nodeName", "zj1"}, {"containers", plain_pod_spec()["containers"]}},
       "spec.template.spec.nodeName: node \"zj1\" is in province \"zhejiang\""},
      {"nodeName of no node",
       {{"nodeName", "ghost"}, {"containers", plain_pod_spec()["containers"]}},
       "spec.template.spec.nodeName: there is no node \"ghost\""},
      {"nodeSelector of another province",
       {{"nodeSelector", {{"topology.gantry.io/province", "zhejiang"}}},
        {"containers", plain_pod_spec()["containers"]}},
       "spec.template.spec.nodeSelector"},
      {"a privileged container", privileged, "PodSecurity \"baseline:latest\""},
      {"a hostPath volume", host_path, "hostPath volumes"},
  };
  int n = 0;
  for (const char* kind : {"deployments", "replicasets", "daemonsets"}) {
    for (const auto& t : tries) {
      INFO(kind << ": " << t.what);
      auto r = call("POST", path("js-apps", kind), kJiangsuOperatorToken,
                    workload(kind, "w" + std::to_string(++n), t.pod_spec).dump());
      CHECK(r.code == 403);
      CHECK_THAT(r.json()["message"].get<std::string>(),
                 Catch::Matchers::Contains(std::string(kind) + " \"w") &&
                     Catch::Matchers::Contains(t.says));
    }
    // Nor by changing an admitted template afterwards.
    INFO(kind);
    auto moved = call("PATCH", path("js-apps", kind) + "/seed", kJiangsuOperatorToken,
                      R"({"spec":{"template":{"spec":{"nodeName":"zj1"}}}})",
                      "application/merge-patch+json");
    CHECK(moved.code == 403);
    // An unbound template is kept among its province's nodes: the namespace's province is added
    // to its nodeSelector, as for pods.
    auto ok = call("POST", path("js-apps", kind), kJiangsuOperatorToken,
                   workload(kind, "fine-" + std::to_string(n), plain_pod_spec()).dump());
    REQUIRE(ok.code == 201);
    CHECK(ok.json()["spec"]["template"]["spec"]["nodeSelector"]["topology.gantry.io/province"] ==
          "jiangsu");
    // Its own namespace's secrets it may mount (it reads them).
    json mounts = plain_pod_spec();
    mounts["volumes"] = {{{"name", "s"}, {"secret", {{"secretName", "seed"}}}}};
    CHECK(call("POST", path("js-apps", kind), kJiangsuOperatorToken,
               workload(kind, "mounts-" + std::to_string(n), mounts).dump())
              .code == 201);
  }
  // The review agrees with the requests.
  auto can_i = [&](const char* token, const json& attributes) {
    json review = {{"kind", "SelfSubjectAccessReview"},
                   {"apiVersion", "authorization.k8s.io/v1"},
                   {"spec", {{"resourceAttributes", attributes}}}};
    auto r = call("POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", token,
                  review.dump());
    REQUIRE(r.code == 201);
    return r.json()["status"]["allowed"].get<bool>();
  };
  const json create_in_js = {
      {"verb", "create"}, {"group", "apps"}, {"resource", "deployments"}, {"namespace", "js-apps"}};
  CHECK(can_i(kJiangsuOperatorToken, create_in_js));
  CHECK_FALSE(can_i(kZhejiangOperatorToken, create_in_js));
  CHECK_FALSE(can_i(kJiangsuOperatorToken, {{"verb", "create"},
                                            {"group", "apps"},
                                            {"resource", "controllerrevisions"},
                                            {"namespace", "js-apps"}}));
  CHECK(can_i(kJiangsuOperatorToken, {{"verb", "update"},
                                      {"group", "apps"},
                                      {"resource", "deployments"},
                                      {"subresource", "scale"},
                                      {"namespace", "js-apps"},
                                      {"name", "seed"}}));
}
