// core/v1 Pod: the spec is stored as given (encoded for the edge); the status is what the pod's
// node reports through the hub (a StoredStatus), rendered on every read. Bound pods are deleted
// gracefully (the edge stops them first). Fields the edge does not honour come back as warnings.
#include <fmt/format.h>

#include <set>

#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/registry/keys.h"

namespace gantry::cloud::api::kinds {
namespace {

using nlohmann::json;

std::vector<std::string> pod_warnings(const json& pod) {
  std::vector<std::string> out;
  if (!pod.contains("spec") || !pod["spec"].is_object()) return out;
  const json& spec = pod["spec"];
  static const std::set<std::string> kVolumeKinds = {"emptyDir", "hostPath", "configMap", "secret"};
  if (spec.contains("volumes") && spec["volumes"].is_array()) {
    for (const auto& v : spec["volumes"]) {
      if (!v.is_object()) continue;
      for (auto it = v.begin(); it != v.end(); ++it) {
        if (it.key() == "name" || kVolumeKinds.count(it.key())) continue;
        out.push_back(
            fmt::format("spec.volumes[{}].{}: the edge supports only emptyDir, hostPath, configMap "
                        "and secret volumes; this volume will not be mounted",
                        v.value("name", "?"), it.key()));
      }
    }
  }
  static const std::vector<std::pair<std::string, std::string>> kPodFields = {
      {"securityContext", "pod securityContext is not applied by the edge runtime"},
      {"dnsConfig", "dnsConfig is not applied by the edge runtime"},
      {"serviceAccountName", "service accounts are not mounted on edge nodes"},
      {"hostPID", "hostPID is not applied by the edge runtime"},
      {"hostIPC", "hostIPC is not applied by the edge runtime"},
      {"runtimeClassName", "runtimeClassName is not applied by the edge runtime"},
      {"priorityClassName", "priorityClassName has no effect on edge nodes"},
      {"ephemeralContainers", "ephemeral containers are not supported on edge nodes"},
  };
  for (const auto& [field, why] : kPodFields)
    if (spec.contains(field) && !spec[field].is_null())
      out.push_back(fmt::format("spec.{}: {}", field, why));
  // The scheduler (cloudcore/controllers) honours tolerations and required node affinity only.
  if (spec.contains("affinity") && spec["affinity"].is_object()) {
    for (auto it = spec["affinity"].begin(); it != spec["affinity"].end(); ++it) {
      if (it.key() != "nodeAffinity") {
        out.push_back(fmt::format("spec.affinity.{}: not evaluated by the scheduler", it.key()));
      } else if (it->is_object()) {
        for (auto na = it->begin(); na != it->end(); ++na)
          if (na.key() != "requiredDuringSchedulingIgnoredDuringExecution")
            out.push_back(fmt::format(
                "spec.affinity.nodeAffinity.{}: not evaluated by the scheduler", na.key()));
      }
    }
  }
  static const std::vector<std::string> kContainerFields = {
      "livenessProbe", "readinessProbe", "startupProbe", "lifecycle", "securityContext"};
  for (const char* list : {"containers", "initContainers"}) {
    if (!spec.contains(list) || !spec[list].is_array()) continue;
    for (const auto& c : spec[list]) {
      if (!c.is_object()) continue;
      for (const auto& f : kContainerFields)
        if (c.contains(f) && !c[f].is_null())
          out.push_back(fmt::format("spec.{}[{}].{}: not honoured by the edge runtime", list,
                                    c.value("name", "?"), f));
    }
  }
  return out;
}

}  // namespace

Kind pod() {
  Kind k;
  k.version = "v1";
  k.kind = "Pod";
  k.plural = "pods";
  k.singular = "pod";
  k.short_names = {"po"};
  k.categories = {"all"};
  k.scope = ProvinceScope::kBoundNode;
  k.prefix = std::string(keys::kPods);
  k.status_prefix = std::string(keys::kPodStatus);
  k.status = StatusSource::kObserved;
  k.edge_kind = v1::OBJECT_KIND_POD;
  k.tracks_generation = true;
  k.graceful_delete = true;
  k.subresources = {{"log", "", "v1", "Pod", kGet}};
  k.selectable_fields = {"spec.nodeName", "status.phase"};
  k.render_status = [](json& obj, const v1::StoredStatus* observed) {
    obj["status"] = render_pod_status(obj, observed);
  };
  k.validate_update = [](const json& old_obj, const json& new_obj) -> common::Status {
    std::string old_node = string_at(old_obj, {"spec", "nodeName"});
    if (!old_node.empty() && string_at(new_obj, {"spec", "nodeName"}) != old_node)
      return common::make_error(
          common::Code::kInvalidArgument,
          "Pod \"{}\" is invalid: spec.nodeName: cannot be changed once the pod is bound (bound "
          "to \"{}\"); delete and re-create the pod to move it",
          string_at(new_obj, {"metadata", "name"}), old_node);
    return common::ok_status();
  };
  k.warnings = pod_warnings;
  auto text = [](std::initializer_list<const char*> path, bool none) {
    std::vector<const char*> p(path);
    return [p, none](const json& obj, SystemTime) {
      const json* cur = &obj;
      for (const char* part : p) {
        if (!cur->is_object() || !cur->contains(part)) return json(none ? "<none>" : "");
        cur = &(*cur)[part];
      }
      std::string s = cur->is_string() ? cur->get<std::string>() : "";
      return json(none ? or_none(s) : s);
    };
  };
  auto none = [](const json&, SystemTime) { return json("<none>"); };
  k.columns = {
      name_column(),
      {"Ready", "string", "The number of containers ready / in the pod.", 0, "",
       [](const json& obj, SystemTime) { return json(summarize_pod(obj).ready); }},
      {"Status", "string", "The pod's phase, or why it is not running.", 0, "",
       [](const json& obj, SystemTime) { return json(summarize_pod(obj).status); }},
      {"Restarts", "string", "Container restarts in the pod.", 0, "",
       [](const json& obj, SystemTime) { return json(summarize_pod(obj).restarts); }},
      age_column(),
      {"IP", "string", "The pod's IP address.", 1, "", text({"status", "podIP"}, true)},
      {"Node", "string", "The edge node the pod is bound to.", 1, "",
       text({"spec", "nodeName"}, true)},
      {"Nominated Node", "string", "Not used by Gantry.", 1, "", none},
      {"Readiness Gates", "string", "Not used by Gantry.", 1, "", none},
  };
  return k;
}

}  // namespace gantry::cloud::api::kinds
