#include "cloudcore/api/admission.h"

#include <catch2/catch.hpp>

#include "cloudcore/registry/registry.h"

using namespace gantry::cloud::api;
using gantry::cloud::kProvinceLabel;
using nlohmann::json;
constexpr const char* kJoinedAtAnnotation = "gantry.io/joined-at";

namespace {

json pod_with(const json& spec_patch) {
  json pod = {{"kind", "Pod"},
              {"apiVersion", "v1"},
              {"metadata", {{"name", "p"}, {"namespace", "zj-apps"}}},
              {"spec", {{"containers", {{{"name", "app"}, {"image", "nginx"}}}}}}};
  pod["spec"].merge_patch(spec_patch);
  return pod;
}

// A container "app" with `security` as its securityContext.
json container_sc(const json& security) {
  return {{"containers", {{{"name", "app"}, {"image", "nginx"}, {"securityContext", security}}}}};
}

json with(json base, const json& patch) {
  base.merge_patch(patch);
  return base;
}

const json kRestrictedContainer = {{"allowPrivilegeEscalation", false},
                                   {"runAsNonRoot", true},
                                   {"capabilities", {{"drop", {"ALL"}}}},
                                   {"seccompProfile", {{"type", "RuntimeDefault"}}}};

}  // namespace

TEST_CASE("Pod Security levels: each control of the standard, by level", "[api][admission]") {
  struct Case {
    const char* what;
    json spec;
    const char* control;  // "" : allowed at that level
    PodSecurityLevel level;
  };
  const std::vector<Case> cases = {
      {"a plain pod meets baseline", json::object(), "", PodSecurityLevel::kBaseline},
      {"hostNetwork", {{"hostNetwork", true}}, "host namespaces", PodSecurityLevel::kBaseline},
      {"hostPID", {{"hostPID", true}}, "host namespaces", PodSecurityLevel::kBaseline},
      {"hostIPC", {{"hostIPC", true}}, "host namespaces", PodSecurityLevel::kBaseline},
      {"hostNetwork=false is fine", {{"hostNetwork", false}}, "", PodSecurityLevel::kBaseline},
      {"privileged container", container_sc({{"privileged", true}}), "privileged",
       PodSecurityLevel::kBaseline},
      {"privileged=false is fine", container_sc({{"privileged", false}}), "",
       PodSecurityLevel::kBaseline},
      {"privileged init container",
       {{"initContainers", {{{"name", "init"}, {"securityContext", {{"privileged", true}}}}}}},
       "privileged",
       PodSecurityLevel::kBaseline},
      {"SYS_ADMIN added", container_sc({{"capabilities", {{"add", {"SYS_ADMIN"}}}}}),
       "non-default capabilities", PodSecurityLevel::kBaseline},
      {"a default capability added", container_sc({{"capabilities", {{"add", {"CHOWN"}}}}}), "",
       PodSecurityLevel::kBaseline},
      {"hostPath volume",
       {{"volumes", {{{"name", "root"}, {"hostPath", {{"path", "/"}}}}}}},
       "hostPath volumes",
       PodSecurityLevel::kBaseline},
      {"emptyDir volume",
       {{"volumes", {{{"name", "tmp"}, {"emptyDir", json::object()}}}}},
       "",
       PodSecurityLevel::kBaseline},
      {"hostPort",
       {{"containers",
         {{{"name", "app"}, {"ports", {{{"containerPort", 80}, {"hostPort", 8080}}}}}}}},
       "hostPort",
       PodSecurityLevel::kBaseline},
      {"hostPort 0 is fine",
       {{"containers", {{{"name", "app"}, {"ports", {{{"containerPort", 80}, {"hostPort", 0}}}}}}}},
       "",
       PodSecurityLevel::kBaseline},
      {"seccomp Unconfined",
       {{"securityContext", {{"seccompProfile", {{"type", "Unconfined"}}}}}},
       "seccompProfile",
       PodSecurityLevel::kBaseline},
      {"unmasked /proc", container_sc({{"procMount", "Unmasked"}}), "procMount",
       PodSecurityLevel::kBaseline},
      {"unsafe sysctl",
       {{"securityContext", {{"sysctls", {{{"name", "kernel.msgmax"}, {"value", "1"}}}}}}},
       "forbidden sysctls",
       PodSecurityLevel::kBaseline},
      {"safe sysctl",
       {{"securityContext",
         {{"sysctls", {{{"name", "net.ipv4.ip_local_port_range"}, {"value", "1024 2048"}}}}}}},
       "",
       PodSecurityLevel::kBaseline},
      {"SELinux user", container_sc({{"seLinuxOptions", {{"user", "root"}}}}), "seLinuxOptions",
       PodSecurityLevel::kBaseline},
      {"AppArmor unconfined", container_sc({{"appArmorProfile", {{"type", "Unconfined"}}}}),
       "forbidden AppArmor profile", PodSecurityLevel::kBaseline},
      {"Windows hostProcess", container_sc({{"windowsOptions", {{"hostProcess", true}}}}),
       "hostProcess", PodSecurityLevel::kBaseline},
      {"privileged level allows everything",
       {{"hostNetwork", true}, {"volumes", {{{"name", "root"}, {"hostPath", {{"path", "/"}}}}}}},
       "",
       PodSecurityLevel::kPrivileged},
      {"restricted: a plain pod may escalate", json::object(), "allowPrivilegeEscalation != false",
       PodSecurityLevel::kRestricted},
      {"restricted: a plain pod keeps its capabilities", json::object(),
       "unrestricted capabilities", PodSecurityLevel::kRestricted},
      {"restricted: a plain pod may run as root", json::object(), "runAsNonRoot != true",
       PodSecurityLevel::kRestricted},
      {"restricted: a plain pod has no seccomp profile", json::object(), "seccompProfile",
       PodSecurityLevel::kRestricted},
      {"restricted: a hardened container passes", container_sc(kRestrictedContainer), "",
       PodSecurityLevel::kRestricted},
      {"restricted: runAsUser 0", container_sc(with(kRestrictedContainer, {{"runAsUser", 0}})),
       "runAsUser=0", PodSecurityLevel::kRestricted},
      {"restricted: adding CHOWN",
       container_sc(
           with(kRestrictedContainer, {{"capabilities", {{"drop", {"ALL"}}, {"add", {"CHOWN"}}}}})),
       "unrestricted capabilities", PodSecurityLevel::kRestricted},
      {"restricted: NET_BIND_SERVICE may be added",
       container_sc(with(kRestrictedContainer,
                         {{"capabilities", {{"drop", {"ALL"}}, {"add", {"NET_BIND_SERVICE"}}}}})),
       "", PodSecurityLevel::kRestricted},
      {"restricted: an nfs volume",
       with(container_sc(kRestrictedContainer),
            {{"volumes", {{{"name", "n"}, {"nfs", {{"server", "x"}, {"path", "/"}}}}}}}),
       "restricted volume types", PodSecurityLevel::kRestricted},
      {"restricted: pod-level runAsNonRoot and seccomp count for every container",
       {{"securityContext",
         {{"runAsNonRoot", true}, {"seccompProfile", {{"type", "RuntimeDefault"}}}}},
        {"containers",
         {{{"name", "app"},
           {"securityContext",
            {{"allowPrivilegeEscalation", false}, {"capabilities", {{"drop", {"ALL"}}}}}}}}}},
       "",
       PodSecurityLevel::kRestricted},
  };
  for (const auto& c : cases) {
    SECTION(c.what) {
      auto found = pod_security_violations(pod_with(c.spec), c.level);
      if (std::string(c.control).empty()) {
        CHECK(found.empty());
        for (const auto& f : found) UNSCOPED_INFO(f);
      } else {
        bool hit = false;
        for (const auto& f : found) hit = hit || f.starts_with(std::string(c.control) + " (");
        INFO("violations: " << json(found).dump());
        CHECK(hit);
      }
    }
  }
}

TEST_CASE("the enforce label picks the level, none is baseline and garbage is restricted",
          "[api][admission]") {
  CHECK(enforced_level({}) == PodSecurityLevel::kBaseline);
  CHECK(enforced_level({{kPodSecurityEnforceLabel, "privileged"}}) ==
        PodSecurityLevel::kPrivileged);
  CHECK(enforced_level({{kPodSecurityEnforceLabel, "baseline"}}) == PodSecurityLevel::kBaseline);
  CHECK(enforced_level({{kPodSecurityEnforceLabel, "restricted"}}) ==
        PodSecurityLevel::kRestricted);
  CHECK(enforced_level({{kPodSecurityEnforceLabel, "Privileged"}}) ==
        PodSecurityLevel::kRestricted);
}

TEST_CASE("every way a pod names a configmap or secret is found", "[api][admission]") {
  json pod = pod_with(
      {{"volumes",
        {{{"name", "a"}, {"secret", {{"secretName", "s1"}}}},
         {{"name", "b"}, {"configMap", {{"name", "c1"}}}},
         {{"name", "c"},
          {"projected",
           {{"sources", {{{"secret", {{"name", "s2"}}}}, {{"configMap", {{"name", "c2"}}}}}}}}}}},
       {"imagePullSecrets", {{{"name", "s3"}}}},
       {"initContainers",
        {{{"name", "i"},
          {"envFrom", {{{"secretRef", {{"name", "s4"}}}}, {{"configMapRef", {{"name", "c3"}}}}}}}}},
       {"containers",
        {{{"name", "app"},
          {"env",
           {{{"name", "X"}, {"value", "1"}},
            {{"name", "Y"}, {"valueFrom", {{"secretKeyRef", {{"name", "s5"}, {"key", "k"}}}}}},
            {{"name", "Z"},
             {"valueFrom", {{"configMapKeyRef", {{"name", "c4"}, {"key", "k"}}}}}}}}}}}});
  auto refs = config_references(pod);
  std::vector<ConfigReference> expected = {
      {"secrets", "s1", "spec.volumes[0].secret.secretName"},
      {"configmaps", "c1", "spec.volumes[1].configMap.name"},
      {"secrets", "s2", "spec.volumes[2].projected.sources[0].secret.name"},
      {"configmaps", "c2", "spec.volumes[2].projected.sources[1].configMap.name"},
      {"secrets", "s4", "spec.initContainers[0].envFrom[0].secretRef.name"},
      {"configmaps", "c3", "spec.initContainers[0].envFrom[1].configMapRef.name"},
      {"secrets", "s5", "spec.containers[0].env[1].valueFrom.secretKeyRef.name"},
      {"configmaps", "c4", "spec.containers[0].env[2].valueFrom.configMapKeyRef.name"},
      {"secrets", "s3", "spec.imagePullSecrets[0].name"},
  };
  CHECK(refs == expected);
}

namespace {

struct Caller {
  Permissions permissions;
  PodAdmission admission(const std::string& ns_province,
                         std::map<std::string, std::string> ns_labels = {}) const {
    PodAdmission in;
    in.permissions = &permissions;
    in.user = "someone";
    in.namespace_name = "zj-apps";
    in.namespace_labels = std::move(ns_labels);
    in.namespace_province = ns_province;
    in.may_read = [this, ns_province](std::string_view) {
      return permissions.can_read(ns_province) && !ns_province.empty();
    };
    in.node_province = [](const std::string& node) -> std::optional<std::string> {
      if (node == "zj1") return "zhejiang";
      if (node == "js1") return "jiangsu";
      return std::nullopt;
    };
    return in;
  }
};

Caller admin() {
  Caller c;
  c.permissions.admin = true;
  return c;
}
Caller operator_of(const std::string& p) {
  Caller c;
  c.permissions.read_provinces = {p};
  c.permissions.write_provinces = {p};
  return c;
}

}  // namespace

TEST_CASE("pod admission: who may do what, by caller and namespace", "[api][admission]") {
  struct Case {
    const char* what;
    Caller caller;
    std::string ns_province;
    std::map<std::string, std::string> ns_labels;
    json spec;
    int code;                // 0: admitted
    const char* in_message;  // part of the refusal
  };
  json privileged = container_sc({{"privileged", true}});
  json host_path = {{"nodeName", "zj1"},
                    {"volumes", {{{"name", "etc"}, {"hostPath", {{"path", "/etc"}}}}}}};
  json secret = {{"nodeName", "zj1"},
                 {"volumes", {{{"name", "s"}, {"secret", {{"secretName", "db"}}}}}}};
  const std::vector<Case> cases = {
      {"operator, plain pod on its node",
       operator_of("zhejiang"),
       "zhejiang",
       {},
       {{"nodeName", "zj1"}},
       0,
       ""},
      {"operator, privileged pod",
       operator_of("zhejiang"),
       "zhejiang",
       {},
       privileged,
       403,
       "violates PodSecurity \"baseline:latest\": privileged (container \"app\""},
      {"operator, privileged pod where the namespace allows it",
       operator_of("zhejiang"),
       "zhejiang",
       {{kPodSecurityEnforceLabel, "privileged"}},
       privileged,
       0,
       ""},
      {"admin, privileged pod", admin(), "zhejiang", {}, privileged, 0, ""},
      {"operator, hostPath",
       operator_of("zhejiang"),
       "zhejiang",
       {},
       host_path,
       403,
       "hostPath volumes (volume \"etc\")"},
      {"operator, hostPath in a restricted namespace",
       operator_of("zhejiang"),
       "zhejiang",
       {{kPodSecurityEnforceLabel, "restricted"}},
       host_path,
       403,
       "restricted:latest"},
      {"operator, secret of its own namespace",
       operator_of("zhejiang"),
       "zhejiang",
       {},
       secret,
       0,
       ""},
      {"operator, secret of a namespace without province",
       operator_of("zhejiang"),
       "",
       {},
       secret,
       403,
       "spec.volumes[0].secret.secretName refers to secret \"db\", but user \"someone\" may not "
       "read secrets"},
      {"admin, secret anywhere", admin(), "", {}, secret, 0, ""},
      {"operator, bound to a node of another province",
       operator_of("zhejiang"),
       "zhejiang",
       {},
       {{"nodeName", "js1"}},
       403,
       "node \"js1\" is in province \"jiangsu\""},
      {"operator, bound to no existing node",
       operator_of("zhejiang"),
       "zhejiang",
       {},
       {{"nodeName", "ghost"}},
       403,
       "there is no node \"ghost\""},
      {"admin, bound across provinces", admin(), "zhejiang", {}, {{"nodeName", "js1"}}, 0, ""},
      {"operator, unbound pod selecting another province",
       operator_of("zhejiang"),
       "zhejiang",
       {},
       {{"nodeSelector", {{kProvinceLabel, "jiangsu"}}}},
       403,
       "may not select nodes of province \"jiangsu\""},
  };
  for (const auto& c : cases) {
    SECTION(c.what) {
      json pod = pod_with(c.spec);
      auto denial = admit_pod(pod, nullptr, c.caller.admission(c.ns_province, c.ns_labels));
      if (c.code == 0) {
        CHECK_FALSE(denial);
        if (denial) UNSCOPED_INFO(denial->message);
      } else {
        REQUIRE(denial);
        CHECK(denial->code == c.code);
        CHECK(denial->reason == "Forbidden");
        INFO(denial->message);
        CHECK(denial->message.starts_with("pods \"p\" is forbidden: "));
        CHECK(denial->message.find(c.in_message) != std::string::npos);
      }
    }
  }
}

TEST_CASE("an unbound pod of a province namespace is kept to that province's nodes",
          "[api][admission]") {
  for (const Caller& caller : {operator_of("zhejiang"), admin()}) {
    json pod = pod_with(json::object());
    REQUIRE_FALSE(admit_pod(pod, nullptr, caller.admission("zhejiang")));
    CHECK(pod["spec"]["nodeSelector"][kProvinceLabel] == "zhejiang");
  }
  json elsewhere = pod_with({{"nodeSelector", {{"lane", "3"}}}});
  Caller none = operator_of("zhejiang");
  REQUIRE_FALSE(admit_pod(elsewhere, nullptr, none.admission("")));
  CHECK_FALSE(elsewhere["spec"]["nodeSelector"].contains(kProvinceLabel));
}

TEST_CASE("an update that leaves the spec alone is not judged again", "[api][admission]") {
  // An admin's privileged pod in the operator's namespace: the operator may still label or
  // delete it (deletion writes metadata), but not change its spec.
  json old = pod_with(container_sc({{"privileged", true}}));
  json relabelled = old;
  relabelled["metadata"]["labels"] = {{"tier", "edge"}};
  Caller op = operator_of("zhejiang");
  CHECK_FALSE(admit_pod(relabelled, &old, op.admission("zhejiang")));
  json changed = old;
  changed["spec"]["containers"][0]["image"] = "nginx:2";
  CHECK(admit_pod(changed, &old, op.admission("zhejiang")));
}

TEST_CASE("only admins set the node annotation that marks a self-registered node",
          "[api][admission]") {
  json plain = {{"metadata", {{"name", "n1"}}}};
  json marked = {{"metadata", {{"name", "n1"}, {"annotations", {{kJoinedAtAnnotation, "t1"}}}}}};
  json remarked = {{"metadata", {{"name", "n1"}, {"annotations", {{kJoinedAtAnnotation, "t2"}}}}}};
  Permissions op = operator_of("zhejiang").permissions;
  Permissions adm = admin().permissions;
  CHECK_FALSE(admit_node(plain, nullptr, op, "u"));
  auto forged = admit_node(marked, nullptr, op, "u");
  REQUIRE(forged);
  CHECK(forged->code == 403);
  CHECK(forged->message.find(kJoinedAtAnnotation) != std::string::npos);
  CHECK_FALSE(admit_node(marked, &marked, op, "u"));  // kept as it was
  CHECK(admit_node(remarked, &marked, op, "u"));      // changed
  CHECK(admit_node(plain, &marked, op, "u"));         // removed
  CHECK_FALSE(admit_node(marked, nullptr, adm, "u"));
}
