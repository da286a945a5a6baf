// core/v1 Pod: the spec is stored as given (encoded for the edge); the status is what the pod's
// node reports through the hub (a StoredStatus), rendered on every read. Bound pods are deleted
// gracefully (the edge stops them first). Fields the edge does not honour come back as warnings.
#include <fmt/format.h>

#include <set>

#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/api/validation.h"
#include "cloudcore/registry/keys.h"
#include "common/base/json.h"

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

// The parts of a Kubernetes pod status a StoredStatus holds: phase, reason, message, podIP,
// startTime and the Ready condition. Container statuses stay as the node reported them.
common::Status write_pod_status(const json& status, v1::StoredStatus& observed) {
  using common::Code;
  if (!status.is_object())
    return common::make_error(Code::kInvalidArgument, "status: must be an object");
  v1::PodStatus& ps = *observed.mutable_pod();
  if (status.contains("phase")) {
    static const std::pair<const char*, v1::PodPhase> kPhases[] = {
        {"Pending", v1::POD_PHASE_PENDING},
        {"Running", v1::POD_PHASE_RUNNING},
        {"Succeeded", v1::POD_PHASE_SUCCEEDED},
        {"Failed", v1::POD_PHASE_FAILED},
        {"Unknown", v1::POD_PHASE_UNKNOWN}};
    std::string phase = status["phase"].is_string() ? status["phase"].get<std::string>() : "";
    bool known = false;
    for (const auto& [name, value] : kPhases) {
      if (phase != name) continue;
      ps.set_phase(value);
      known = true;
    }
    if (!known)
      return common::make_error(Code::kInvalidArgument,
                                "status.phase: Unsupported value: {}: supported values: "
                                "\"Pending\", \"Running\", \"Succeeded\", \"Failed\", \"Unknown\"",
                                status["phase"].dump());
  }
  for (const char* field : {"reason", "message", "podIP", "startTime"}) {
    if (!status.contains(field) || status[field].is_null()) continue;
    if (!status[field].is_string())
      return common::make_error(Code::kInvalidArgument, "status.{}: must be a string", field);
    const std::string& v = status[field].get_ref<const std::string&>();
    std::string_view f = field;
    if (f == "reason") ps.set_reason(v);
    if (f == "message") ps.set_message(v);
    if (f == "podIP") ps.set_pod_ip(v);
    if (f == "startTime") {
      auto at = parse_rfc3339(v);
      if (!at)
        return common::make_error(Code::kInvalidArgument,
                                  "status.startTime: \"{}\" is not an RFC 3339 time", v);
      ps.set_start_time(*at);
    }
  }
  if (status.contains("conditions") && status["conditions"].is_array()) {
    for (const auto& c : status["conditions"]) {
      if (!c.is_object() || c.value("type", "") != "Ready") continue;
      std::string value = c.value("status", "");
      if (value != "True" && value != "False" && value != "Unknown")
        return common::make_error(Code::kInvalidArgument,
                                  "status.conditions[Ready].status: Unsupported value: \"{}\"",
                                  value);
      ps.set_ready(value == "True");
      if (c.contains("lastTransitionTime") && c["lastTransitionTime"].is_string())
        if (auto at = parse_rfc3339(c["lastTransitionTime"].get<std::string>()))
          ps.set_ready_since(*at);
    }
  }
  return common::ok_status();
}

// Kubernetes' rule for updates of a pod's spec: only images (containers and init containers, by
// position and name), activeDeadlineSeconds, added tolerations, and a negative grace period set
// to 1 may change; binding an unbound pod (nodeName) is checked apart. Images are what in-place
// updates change (docs/workloads.md).
common::Status check_pod_spec_update(const json& old_obj, const json& new_obj) {
  json a = old_obj, b = new_obj;
  default_object("Pod", a);
  default_object("Pod", b);
  // An invalid spec is reported field by field by the validation that follows.
  if (!validate_object("Pod", b, &a).empty()) return common::ok_status();
  json sa = a.value("spec", json::object()), sb = b.value("spec", json::object());
  if (!sa.is_object() || !sb.is_object()) return common::ok_status();
  auto forbidden = [&] {
    return common::make_error(
        common::Code::kInvalidArgument,
        "Pod \"{}\" is invalid: spec: Forbidden: pod updates may not change fields other than "
        "`spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,"
        "`spec.tolerations` (only additions to existing tolerations),"
        "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously "
        "negative)",
        common::json_string_at(new_obj, {"metadata", "name"}));
  };
  for (const char* list : {"containers", "initContainers"}) {
    if (!sa.contains(list) || !sb.contains(list)) continue;
    json& ca = sa[list];
    json& cb = sb[list];
    if (!ca.is_array() || !cb.is_array() || ca.size() != cb.size()) return forbidden();
    for (size_t i = 0; i < ca.size(); ++i) {
      if (ca[i].is_object()) ca[i].erase("image");
      if (cb[i].is_object()) cb[i].erase("image");
    }
  }
  if (sa.contains("tolerations") && sa["tolerations"].is_array()) {
    if (!sb.contains("tolerations") || !sb["tolerations"].is_array()) return forbidden();
    for (const auto& t : sa["tolerations"]) {
      bool kept = false;
      for (const auto& u : sb["tolerations"]) kept = kept || u == t;
      if (!kept) return forbidden();
    }
  }
  for (json* s : {&sa, &sb}) {
    s->erase("tolerations");
    s->erase("activeDeadlineSeconds");
    s->erase("nodeName");
  }
  if (sa.value("terminationGracePeriodSeconds", json(0)).is_number_integer() &&
      sa.value("terminationGracePeriodSeconds", 0) < 0 &&
      sb.value("terminationGracePeriodSeconds", json(0)) == json(1)) {
    sa.erase("terminationGracePeriodSeconds");
    sb.erase("terminationGracePeriodSeconds");
  }
  if (sa != sb) return forbidden();
  return common::ok_status();
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
  k.delete_returns_object = true;
  k.subresources = {{"attach", "", "v1", "PodAttachOptions", kGet | kCreate},
                    {"eviction", "policy", "v1", "Eviction", kCreate},
                    {"exec", "", "v1", "PodExecOptions", kGet | kCreate},
                    {"log", "", "v1", "Pod", kGet},
                    {"status", "", "v1", "Pod", kGet | kPatch | kUpdate}};
  k.write_status = write_pod_status;
  k.selectable_fields = {"spec.nodeName", "status.phase"};
  k.render_status = [](json& obj, const v1::StoredStatus* observed) {
    obj["status"] = render_pod_status(obj, observed);
  };
  k.validate_update = [](const json& old_obj, const json& new_obj) -> common::Status {
    std::string old_node = common::json_string_at(old_obj, {"spec", "nodeName"});
    if (!old_node.empty() && common::json_string_at(new_obj, {"spec", "nodeName"}) != old_node)
      return common::make_error(
          common::Code::kInvalidArgument,
          "Pod \"{}\" is invalid: spec.nodeName: cannot be changed once the pod is bound (bound "
          "to \"{}\"); delete and re-create the pod to move it",
          common::json_string_at(new_obj, {"metadata", "name"}), old_node);
    return check_pod_spec_update(old_obj, new_obj);
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
