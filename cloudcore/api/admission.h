// Admission for writes by province roles: what a pod may ask of the edge host (Pod Security
// Standards levels chosen per namespace by the label pod-security.kubernetes.io/enforce, as
// Kubernetes' PodSecurity admission does), which configmaps and secrets it may reference, which
// nodes it may be bound to, and which node annotations only cloudcore writes. Pure functions over
// the object's JSON, the namespace's labels and the caller's permissions; admins are not limited.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloudcore/api/auth.h"

namespace gantry::cloud::api {

inline constexpr const char* kPodSecurityEnforceLabel = "pod-security.kubernetes.io/enforce";

enum class PodSecurityLevel { kPrivileged, kBaseline, kRestricted };
std::string_view to_string(PodSecurityLevel level);

// The level a namespace enforces on province roles: its enforce label; baseline without one;
// restricted when the label holds anything else (failing closed, as PodSecurity admission does).
PodSecurityLevel enforced_level(const std::map<std::string, std::string>& namespace_labels);

// The controls of `level` the pod breaks, each as "control (detail)", in the standard's order;
// empty when the pod meets the level.
std::vector<std::string> pod_security_violations(const nlohmann::json& pod, PodSecurityLevel level);

// A configmap or secret a pod refers to (always in the pod's own namespace).
struct ConfigReference {
  std::string resource;  // "configmaps" or "secrets"
  std::string name;
  std::string field;  // where: "spec.volumes[0].secret.secretName"
  friend bool operator==(const ConfigReference&, const ConfigReference&) = default;
};
// Volumes (configMap, secret, projected sources), env valueFrom, envFrom of every container kind,
// and imagePullSecrets.
std::vector<ConfigReference> config_references(const nlohmann::json& pod);

struct Denial {
  int code = 403;
  std::string reason = "Forbidden";
  std::string message;
};

struct PodAdmission {
  const Permissions* permissions = nullptr;
  std::string user;
  std::string namespace_name;
  std::map<std::string, std::string> namespace_labels;  // of the pod's namespace
  // The namespace's province ("" when it belongs to none).
  std::string namespace_province;
  // Whether the caller may read `resource` ("configmaps", "secrets") in the pod's namespace.
  std::function<bool(std::string_view resource)> may_read;
  // The province of a node; nullopt when there is no such node.
  std::function<std::optional<std::string>(const std::string& node)> node_province;
  // What is admitted: a pod ("pods", "spec") or the pod template of a workload
  // ("deployments", "spec.template.spec"); names the object and the field paths in a denial.
  std::string resource = "pods";
  std::string spec_path = "spec";
};

// A create (old == nullptr) or update of a pod (or of a workload's pod template, given as a pod:
// {metadata: {name, namespace}, spec: template.spec}). May add the namespace's province to an
// unbound pod's nodeSelector (so the scheduler keeps it in the province), for every caller. For
// province roles, refuses a pod that breaks its namespace's Pod Security level, references a
// configmap or secret the caller may not read, or is bound to a node outside the namespace's
// province (or to no existing node). An update that leaves the spec alone (labels, deletion) is not
// re-judged.
std::optional<Denial> admit_pod(nlohmann::json& pod, const nlohmann::json* old,
                                const PodAdmission& in);

// Annotations only cloudcore writes on nodes: the join's mark that the node registered the
// object itself (what lets it keep its name). Province roles may not add, change or remove them.
std::optional<Denial> admit_node(const nlohmann::json& node, const nlohmann::json* old,
                                 const Permissions& permissions, const std::string& user);

}  // namespace gantry::cloud::api
