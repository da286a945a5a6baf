#include "cloudcore/api/admission.h"

#include <fmt/format.h>

#include <algorithm>
#include <set>

#include "cloudcore/registry/registry.h"  // kProvinceLabel

namespace gantry::cloud::api {
namespace {

using nlohmann::json;

// Written by a join on the node objects it creates (cloudcore/join).
constexpr const char* kJoinedAtAnnotation = "gantry.io/joined-at";

const json* child(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}
const json* child(const json* obj, const char* key) {
  return obj ? child(*obj, key) : nullptr;
}

bool is_true(const json* v) {
  return v && v->is_boolean() && v->get<bool>();
}

std::string string_of(const json* v) {
  return v && v->is_string() ? v->get<std::string>() : "";
}

const json& spec_of(const json& pod) {
  static const json kEmpty = json::object();
  const json* spec = child(pod, "spec");
  return spec && spec->is_object() ? *spec : kEmpty;
}

struct Container {
  const char* list;  // "containers", "initContainers", "ephemeralContainers"
  size_t index;
  std::string name;
  const json* object;
  const json* security;  // securityContext or nullptr
};

std::vector<Container> containers_of(const json& spec) {
  std::vector<Container> out;
  for (const char* list : {"initContainers", "containers", "ephemeralContainers"}) {
    const json* items = child(spec, list);
    if (!items || !items->is_array()) continue;
    for (size_t i = 0; i < items->size(); ++i) {
      const json& c = (*items)[i];
      if (!c.is_object()) continue;
      const json* sc = child(c, "securityContext");
      out.push_back(
          {list, i, string_of(child(c, "name")), &c, sc && sc->is_object() ? sc : nullptr});
    }
  }
  return out;
}

std::string quoted_list(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "\"" : ", \"") + s + "\"";
  return out;
}

std::string containers_phrase(const std::vector<std::string>& names) {
  return fmt::format("{} {}", names.size() == 1 ? "container" : "containers", quoted_list(names));
}

// Collects "control (detail)" entries; one entry per control, naming every offender.
class Findings {
 public:
  void add(std::string control, std::string detail) {
    for (auto& [c, details] : items_)
      if (c == control) {
        details.push_back(std::move(detail));
        return;
      }
    items_.push_back({std::move(control), {std::move(detail)}});
  }
  std::vector<std::string> done() const {
    std::vector<std::string> out;
    for (const auto& [c, details] : items_) {
      std::string d;
      for (const auto& x : details) d += (d.empty() ? "" : "; ") + x;
      out.push_back(fmt::format("{} ({})", c, d));
    }
    return out;
  }

 private:
  std::vector<std::pair<std::string, std::vector<std::string>>> items_;
};

// The capabilities baseline lets a container add (the container runtimes' default set).
const std::set<std::string>& baseline_capabilities() {
  static const std::set<std::string> kCaps = {
      "AUDIT_WRITE",      "CHOWN",   "DAC_OVERRIDE", "FOWNER",  "FSETID", "KILL",      "MKNOD",
      "NET_BIND_SERVICE", "SETFCAP", "SETGID",       "SETPCAP", "SETUID", "SYS_CHROOT"};
  return kCaps;
}

const std::set<std::string>& safe_sysctls() {
  static const std::set<std::string> kSafe = {"kernel.shm_rmid_forced",
                                              "net.ipv4.ip_local_port_range",
                                              "net.ipv4.ip_unprivileged_port_start",
                                              "net.ipv4.tcp_syncookies",
                                              "net.ipv4.ping_group_range",
                                              "net.ipv4.ip_local_reserved_ports",
                                              "net.ipv4.tcp_keepalive_time",
                                              "net.ipv4.tcp_fin_timeout",
                                              "net.ipv4.tcp_keepalive_intvl",
                                              "net.ipv4.tcp_keepalive_probes"};
  return kSafe;
}

void check_baseline(const json& pod, const json& spec, const std::vector<Container>& containers,
                    Findings& f) {
  const json* pod_sc = child(spec, "securityContext");
  if (pod_sc && !pod_sc->is_object()) pod_sc = nullptr;

  // HostProcess (Windows): a host-privileged container.
  {
    std::vector<std::string> names;
    bool pod_level = is_true(child(child(pod_sc, "windowsOptions"), "hostProcess"));
    for (const auto& c : containers) {
      const json* w = c.security ? child(*c.security, "windowsOptions") : nullptr;
      if (w && is_true(child(*w, "hostProcess"))) names.push_back(c.name);
    }
    if (pod_level)
      f.add("hostProcess", "pod must not set securityContext.windowsOptions.hostProcess=true");
    if (!names.empty())
      f.add("hostProcess",
            fmt::format("{} must not set securityContext.windowsOptions.hostProcess=true",
                        containers_phrase(names)));
  }
  // Host namespaces.
  {
    std::vector<std::string> set;
    for (const char* field : {"hostNetwork", "hostPID", "hostIPC"})
      if (is_true(child(spec, field))) set.push_back(std::string(field) + "=true");
    if (!set.empty()) {
      std::string d;
      for (const auto& s : set) d += (d.empty() ? "" : ", ") + s;
      f.add("host namespaces", d);
    }
  }
  // Privileged containers.
  {
    std::vector<std::string> names;
    for (const auto& c : containers)
      if (c.security && is_true(child(*c.security, "privileged"))) names.push_back(c.name);
    if (!names.empty())
      f.add("privileged", fmt::format("{} must not set securityContext.privileged=true",
                                      containers_phrase(names)));
  }
  // Capabilities beyond the default set.
  for (const auto& c : containers) {
    const json* caps = c.security ? child(*c.security, "capabilities") : nullptr;
    const json* add = caps ? child(*caps, "add") : nullptr;
    if (!add || !add->is_array()) continue;
    std::vector<std::string> extra;
    for (const auto& cap : *add) {
      std::string name = cap.is_string() ? cap.get<std::string>() : cap.dump();
      if (!baseline_capabilities().count(name)) extra.push_back(name);
    }
    if (!extra.empty())
      f.add("non-default capabilities",
            fmt::format("container \"{}\" must not include {} in securityContext.capabilities.add",
                        c.name, quoted_list(extra)));
  }
  // hostPath volumes.
  if (const json* volumes = child(spec, "volumes"); volumes && volumes->is_array()) {
    std::vector<std::string> names;
    for (const auto& v : *volumes)
      if (child(v, "hostPath")) names.push_back(string_of(child(v, "name")));
    if (!names.empty())
      f.add("hostPath volumes",
            fmt::format("{} {}", names.size() == 1 ? "volume" : "volumes", quoted_list(names)));
  }
  // Host ports.
  for (const auto& c : containers) {
    const json* ports = child(*c.object, "ports");
    if (!ports || !ports->is_array()) continue;
    std::vector<std::string> used;
    for (const auto& p : *ports) {
      const json* hp = child(p, "hostPort");
      if (hp && !(hp->is_number_integer() && hp->get<int64_t>() == 0)) used.push_back(hp->dump());
    }
    if (!used.empty()) {
      std::string list;
      for (const auto& u : used) list += (list.empty() ? "" : ", ") + u;
      f.add("hostPort", fmt::format("container \"{}\" uses {} {}", c.name,
                                    used.size() == 1 ? "hostPort" : "hostPorts", list));
    }
  }
  // AppArmor: never unconfined (annotations of old, fields of new).
  {
    std::vector<std::string> offenders;
    if (const json* ann = child(child(pod, "metadata"), "annotations"); ann && ann->is_object()) {
      constexpr std::string_view kPrefix = "container.apparmor.security.beta.kubernetes.io/";
      for (auto it = ann->begin(); it != ann->end(); ++it)
        if (std::string_view(it.key()).starts_with(kPrefix) && it->is_string() &&
            it->get<std::string>() != "runtime/default" &&
            !it->get<std::string>().starts_with("localhost/"))
          offenders.push_back(
              fmt::format("annotation {}=\"{}\"", it.key(), it->get<std::string>()));
    }
    auto unconfined = [](const json* sc) {
      const json* p = sc ? child(*sc, "appArmorProfile") : nullptr;
      return p && string_of(child(*p, "type")) == "Unconfined";
    };
    if (unconfined(pod_sc))
      offenders.push_back("pod must not set securityContext.appArmorProfile.type=\"Unconfined\"");
    for (const auto& c : containers)
      if (unconfined(c.security))
        offenders.push_back(fmt::format(
            "container \"{}\" must not set securityContext.appArmorProfile.type=\"Unconfined\"",
            c.name));
    for (auto& o : offenders) f.add("forbidden AppArmor profile", std::move(o));
  }
  // SELinux: only the container types, no user or role.
  {
    static const std::set<std::string> kTypes = {"", "container_t", "container_init_t",
                                                 "container_kvm_t", "container_engine_t"};
    auto check = [&](const json* sc, const std::string& who) {
      const json* se = sc ? child(*sc, "seLinuxOptions") : nullptr;
      if (!se || !se->is_object()) return;
      if (!kTypes.count(string_of(child(*se, "type"))))
        f.add("seLinuxOptions", fmt::format("{} set forbidden securityContext.seLinuxOptions type "
                                            "\"{}\"",
                                            who, string_of(child(*se, "type"))));
      if (!string_of(child(*se, "user")).empty() || !string_of(child(*se, "role")).empty())
        f.add("seLinuxOptions",
              fmt::format("{} set forbidden securityContext.seLinuxOptions user or role", who));
    };
    check(pod_sc, "pod");
    for (const auto& c : containers) check(c.security, fmt::format("container \"{}\"", c.name));
  }
  // /proc mount type.
  {
    std::vector<std::string> names;
    for (const auto& c : containers) {
      const json* pm = c.security ? child(*c.security, "procMount") : nullptr;
      if (pm && string_of(pm) != "Default") names.push_back(c.name);
    }
    if (!names.empty())
      f.add("procMount", fmt::format("{} must not set securityContext.procMount to anything but "
                                     "\"Default\"",
                                     containers_phrase(names)));
  }
  // seccomp: never Unconfined.
  {
    auto unconfined = [](const json* sc) {
      const json* p = sc ? child(*sc, "seccompProfile") : nullptr;
      return p && string_of(child(*p, "type")) == "Unconfined";
    };
    if (unconfined(pod_sc))
      f.add("seccompProfile",
            "pod must not set securityContext.seccompProfile.type=\"Unconfined\"");
    std::vector<std::string> names;
    for (const auto& c : containers)
      if (unconfined(c.security)) names.push_back(c.name);
    if (!names.empty())
      f.add("seccompProfile",
            fmt::format("{} must not set securityContext.seccompProfile.type=\"Unconfined\"",
                        containers_phrase(names)));
  }
  // sysctls: only the namespaced, safe ones.
  if (const json* sysctls = pod_sc ? child(*pod_sc, "sysctls") : nullptr;
      sysctls && sysctls->is_array()) {
    std::vector<std::string> bad;
    for (const auto& s : *sysctls) {
      std::string name = string_of(child(s, "name"));
      if (!safe_sysctls().count(name)) bad.push_back(name);
    }
    if (!bad.empty()) f.add("forbidden sysctls", quoted_list(bad));
  }
}

void check_restricted(const json& spec, const std::vector<Container>& containers, Findings& f) {
  const json* pod_sc = child(spec, "securityContext");
  if (pod_sc && !pod_sc->is_object()) pod_sc = nullptr;
  // Volume types.
  if (const json* volumes = child(spec, "volumes"); volumes && volumes->is_array()) {
    static const std::set<std::string> kAllowed = {
        "configMap", "csi",   "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
        "projected", "secret"};
    for (const auto& v : *volumes) {
      if (!v.is_object()) continue;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (it.key() == "name" || it->is_null() || kAllowed.count(it.key())) continue;
        if (it.key() == "hostPath") continue;  // already a baseline finding
        f.add("restricted volume types", fmt::format("volume \"{}\" uses restricted volume type "
                                                     "\"{}\"",
                                                     string_of(child(v, "name")), it.key()));
      }
    }
  }
  // Privilege escalation must be turned off explicitly.
  {
    std::vector<std::string> names;
    for (const auto& c : containers) {
      const json* ape = c.security ? child(*c.security, "allowPrivilegeEscalation") : nullptr;
      if (!(ape && ape->is_boolean() && !ape->get<bool>())) names.push_back(c.name);
    }
    if (!names.empty())
      f.add("allowPrivilegeEscalation != false",
            fmt::format("{} must set securityContext.allowPrivilegeEscalation=false",
                        containers_phrase(names)));
  }
  // Capabilities: drop ALL, add at most NET_BIND_SERVICE.
  {
    std::vector<std::string> no_drop;
    for (const auto& c : containers) {
      const json* caps = c.security ? child(*c.security, "capabilities") : nullptr;
      const json* drop = caps ? child(*caps, "drop") : nullptr;
      bool all = drop && drop->is_array() &&
                 std::any_of(drop->begin(), drop->end(), [](const json& d) { return d == "ALL"; });
      if (!all) no_drop.push_back(c.name);
      const json* add = caps ? child(*caps, "add") : nullptr;
      if (add && add->is_array()) {
        std::vector<std::string> extra;
        for (const auto& a : *add)
          if (a != "NET_BIND_SERVICE" &&
              baseline_capabilities().count(a.is_string() ? a.get<std::string>() : ""))
            extra.push_back(a.get<std::string>());  // beyond baseline: already a finding
        if (!extra.empty())
          f.add("unrestricted capabilities", fmt::format("container \"{}\" must not include {} in "
                                                         "securityContext.capabilities.add",
                                                         c.name, quoted_list(extra)));
      }
    }
    if (!no_drop.empty())
      f.add("unrestricted capabilities",
            fmt::format("{} must set securityContext.capabilities.drop=[\"ALL\"]",
                        containers_phrase(no_drop)));
  }
  // runAsNonRoot: true at the pod level (no container says false) or in every container.
  {
    const json* pod_v = pod_sc ? child(*pod_sc, "runAsNonRoot") : nullptr;
    bool pod_true = is_true(pod_v);
    std::vector<std::string> names;
    for (const auto& c : containers) {
      const json* v = c.security ? child(*c.security, "runAsNonRoot") : nullptr;
      bool ok = v ? is_true(v) : pod_true;
      if (!ok) names.push_back(c.name);
    }
    if (!names.empty())
      f.add("runAsNonRoot != true",
            fmt::format("pod or {} must set securityContext.runAsNonRoot=true",
                        containers_phrase(names)));
  }
  // runAsUser: never 0.
  {
    auto root = [](const json* sc) {
      const json* v = sc ? child(*sc, "runAsUser") : nullptr;
      return v && v->is_number_integer() && v->get<int64_t>() == 0;
    };
    if (root(pod_sc)) f.add("runAsUser=0", "pod must not set runAsUser=0");
    std::vector<std::string> names;
    for (const auto& c : containers)
      if (root(c.security)) names.push_back(c.name);
    if (!names.empty())
      f.add("runAsUser=0", fmt::format("{} must not set runAsUser=0", containers_phrase(names)));
  }
  // seccomp: RuntimeDefault or Localhost, at the pod level or in every container.
  {
    auto good = [](const json* sc) -> std::optional<bool> {
      const json* p = sc ? child(*sc, "seccompProfile") : nullptr;
      if (!p) return std::nullopt;
      std::string type = string_of(child(*p, "type"));
      return type == "RuntimeDefault" || type == "Localhost";
    };
    bool pod_good = good(pod_sc).value_or(false);
    std::vector<std::string> names;
    for (const auto& c : containers) {
      auto mine = good(c.security);
      if (!(mine ? *mine : pod_good)) names.push_back(c.name);
    }
    if (!names.empty())
      f.add("seccompProfile",
            fmt::format("pod or {} must set securityContext.seccompProfile.type to "
                        "\"RuntimeDefault\" or \"Localhost\"",
                        containers_phrase(names)));
  }
}

std::string pod_name(const json& pod) {
  const json* meta = child(pod, "metadata");
  return meta ? string_of(child(*meta, "name")) : "";
}

Denial forbidden(const json& pod, const PodAdmission& in, std::string why) {
  return {403, "Forbidden",
          fmt::format("{} \"{}\" is forbidden: {}", in.resource, pod_name(pod), why)};
}

// A field path of config_references() ("spec.volumes[0]...") under the admitted spec.
std::string field_at(const PodAdmission& in, const std::string& field) {
  if (in.spec_path == "spec" || !field.starts_with("spec")) return field;
  return in.spec_path + field.substr(4);
}

}  // namespace

std::string_view to_string(PodSecurityLevel level) {
  switch (level) {
    case PodSecurityLevel::kPrivileged:
      return "privileged";
    case PodSecurityLevel::kBaseline:
      return "baseline";
    case PodSecurityLevel::kRestricted:
      return "restricted";
  }
  return "restricted";
}

PodSecurityLevel enforced_level(const std::map<std::string, std::string>& namespace_labels) {
  auto it = namespace_labels.find(kPodSecurityEnforceLabel);
  if (it == namespace_labels.end()) return PodSecurityLevel::kBaseline;
  if (it->second == "privileged") return PodSecurityLevel::kPrivileged;
  if (it->second == "baseline") return PodSecurityLevel::kBaseline;
  return PodSecurityLevel::kRestricted;
}

std::vector<std::string> pod_security_violations(const json& pod, PodSecurityLevel level) {
  if (level == PodSecurityLevel::kPrivileged) return {};
  const json& spec = spec_of(pod);
  auto containers = containers_of(spec);
  Findings f;
  check_baseline(pod, spec, containers, f);
  if (level == PodSecurityLevel::kRestricted) check_restricted(spec, containers, f);
  return f.done();
}

std::vector<ConfigReference> config_references(const json& pod) {
  std::vector<ConfigReference> out;
  const json& spec = spec_of(pod);
  if (const json* volumes = child(spec, "volumes"); volumes && volumes->is_array()) {
    for (size_t i = 0; i < volumes->size(); ++i) {
      const json& v = (*volumes)[i];
      if (const json* s = child(v, "secret"))
        out.push_back({"secrets", string_of(child(*s, "secretName")),
                       fmt::format("spec.volumes[{}].secret.secretName", i)});
      if (const json* c = child(v, "configMap"))
        out.push_back({"configmaps", string_of(child(*c, "name")),
                       fmt::format("spec.volumes[{}].configMap.name", i)});
      const json* projected = child(v, "projected");
      const json* sources = projected ? child(*projected, "sources") : nullptr;
      if (sources && sources->is_array()) {
        for (size_t j = 0; j < sources->size(); ++j) {
          const json& src = (*sources)[j];
          if (const json* s = child(src, "secret"))
            out.push_back(
                {"secrets", string_of(child(*s, "name")),
                 fmt::format("spec.volumes[{}].projected.sources[{}].secret.name", i, j)});
          if (const json* c = child(src, "configMap"))
            out.push_back(
                {"configmaps", string_of(child(*c, "name")),
                 fmt::format("spec.volumes[{}].projected.sources[{}].configMap.name", i, j)});
        }
      }
    }
  }
  for (const auto& c : containers_of(spec)) {
    std::string at = fmt::format("spec.{}[{}]", c.list, c.index);
    if (const json* env = child(*c.object, "env"); env && env->is_array()) {
      for (size_t k = 0; k < env->size(); ++k) {
        const json* from = child((*env)[k], "valueFrom");
        if (!from) continue;
        if (const json* s = child(*from, "secretKeyRef"))
          out.push_back({"secrets", string_of(child(*s, "name")),
                         fmt::format("{}.env[{}].valueFrom.secretKeyRef.name", at, k)});
        if (const json* m = child(*from, "configMapKeyRef"))
          out.push_back({"configmaps", string_of(child(*m, "name")),
                         fmt::format("{}.env[{}].valueFrom.configMapKeyRef.name", at, k)});
      }
    }
    if (const json* env_from = child(*c.object, "envFrom"); env_from && env_from->is_array()) {
      for (size_t k = 0; k < env_from->size(); ++k) {
        if (const json* s = child((*env_from)[k], "secretRef"))
          out.push_back({"secrets", string_of(child(*s, "name")),
                         fmt::format("{}.envFrom[{}].secretRef.name", at, k)});
        if (const json* m = child((*env_from)[k], "configMapRef"))
          out.push_back({"configmaps", string_of(child(*m, "name")),
                         fmt::format("{}.envFrom[{}].configMapRef.name", at, k)});
      }
    }
  }
  if (const json* pull = child(spec, "imagePullSecrets"); pull && pull->is_array()) {
    for (size_t i = 0; i < pull->size(); ++i)
      out.push_back({"secrets", string_of(child((*pull)[i], "name")),
                     fmt::format("spec.imagePullSecrets[{}].name", i)});
  }
  return out;
}

std::optional<Denial> admit_pod(json& pod, const json* old, const PodAdmission& in) {
  const bool admin = in.permissions && in.permissions->admin;
  if (!pod.is_object()) return std::nullopt;  // the caller's decoding refuses it
  json& spec = pod["spec"];
  if (!spec.is_object()) return std::nullopt;
  std::string node = spec.contains("nodeName") && spec["nodeName"].is_string()
                         ? spec["nodeName"].get<std::string>()
                         : "";

  // Judged before the node selector below is added (the stored pod may predate it).
  const bool spec_unchanged = old && old->is_object() && old->value("spec", json::object()) == spec;
  // The namespace's province keeps its unbound pods among its nodes.
  if (!in.namespace_province.empty() && node.empty()) {
    json& selector = spec["nodeSelector"];
    if (!selector.is_object()) selector = json::object();
    auto it = selector.find(kProvinceLabel);
    if (it == selector.end()) {
      selector[kProvinceLabel] = in.namespace_province;
    } else if (!admin && *it != in.namespace_province) {
      return forbidden(
          pod, in,
          fmt::format("namespace \"{}\" belongs to province \"{}\": its pods may "
                      "not select nodes of province {} ({}.nodeSelector)",
                      in.namespace_name, in.namespace_province, it->dump(), in.spec_path));
    }
  }
  if (admin) return std::nullopt;
  if (spec_unchanged) return std::nullopt;

  PodSecurityLevel level = enforced_level(in.namespace_labels);
  auto violations = pod_security_violations(pod, level);
  if (!violations.empty()) {
    std::string list;
    for (const auto& v : violations) list += (list.empty() ? "" : ", ") + v;
    auto label = in.namespace_labels.find(kPodSecurityEnforceLabel);
    std::string why = label == in.namespace_labels.end()
                          ? fmt::format(
                                "namespace \"{}\" has no {} label, so province roles get "
                                "\"baseline\"",
                                in.namespace_name, kPodSecurityEnforceLabel)
                          : fmt::format("namespace \"{}\" enforces {}={}", in.namespace_name,
                                        kPodSecurityEnforceLabel, label->second);
    return forbidden(
        pod, in,
        fmt::format("violates PodSecurity \"{}:latest\": {} ({}; an administrator may run "
                    "such pods, or label the namespace {}=privileged)",
                    to_string(level), list, why, kPodSecurityEnforceLabel));
  }

  for (const auto& ref : config_references(pod)) {
    if (in.may_read && in.may_read(ref.resource)) continue;
    return forbidden(
        pod, in,
        fmt::format("{} refers to {} \"{}\", but user \"{}\" may not read {} in namespace "
                    "\"{}\", so neither may a pod they create",
                    field_at(in, ref.field), ref.resource == "secrets" ? "secret" : "configmap",
                    ref.name, in.user, ref.resource, in.namespace_name));
  }

  if (!node.empty() && !in.namespace_province.empty()) {
    auto province = in.node_province ? in.node_province(node) : std::nullopt;
    if (!province)
      return forbidden(pod, in,
                       fmt::format("{}.nodeName: there is no node \"{}\"; pods of "
                                   "namespace \"{}\" may only be bound to existing nodes of "
                                   "province \"{}\"",
                                   in.spec_path, node, in.namespace_name, in.namespace_province));
    if (*province != in.namespace_province)
      return forbidden(
          pod, in,
          fmt::format("{}.nodeName: node \"{}\" is in province \"{}\"; pods of namespace "
                      "\"{}\" may only be bound to nodes of province \"{}\"",
                      in.spec_path, node, province->empty() ? "<none>" : *province,
                      in.namespace_name, in.namespace_province));
  }
  return std::nullopt;
}

std::optional<Denial> admit_node(const json& node, const json* old, const Permissions& permissions,
                                 const std::string& user) {
  if (permissions.admin) return std::nullopt;
  auto annotation = [](const json* obj) -> std::optional<json> {
    if (!obj) return std::nullopt;
    const json* meta = child(*obj, "metadata");
    const json* ann = meta ? child(*meta, "annotations") : nullptr;
    const json* v = ann ? child(*ann, kJoinedAtAnnotation) : nullptr;
    if (!v) return std::nullopt;
    return *v;
  };
  if (annotation(&node) == annotation(old)) return std::nullopt;
  const json* meta = child(node, "metadata");
  return Denial{
      403, "Forbidden",
      fmt::format("nodes \"{}\" is forbidden: user \"{}\" may not set, change or remove "
                  "the annotation {}: cloudcore writes it when a node registers itself "
                  "(gantryadm join), and it decides who may take the node's name",
                  meta ? string_of(child(*meta, "name")) : "", user, kJoinedAtAnnotation)};
}

}  // namespace gantry::cloud::api
