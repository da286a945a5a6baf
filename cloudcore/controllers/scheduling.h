// The scheduler's decision: plain structs in, a node name or the reason there is none out. No
// store, no threads, no clock: the Scheduler (scheduler.h) builds these from the store and acts on
// the result.
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "gantry/v1/objects.pb.h"

namespace gantry::cloud::controllers {

enum class TaintEffect { kNoSchedule, kPreferNoSchedule, kNoExecute };

struct Taint {
  std::string key;
  std::string value;
  TaintEffect effect = TaintEffect::kNoSchedule;
};

struct Toleration {
  std::string key;  // "" with kExists tolerates every taint
  enum class Operator { kEqual, kExists } op = Operator::kEqual;
  std::string value;
  std::optional<TaintEffect> effect;  // nullopt: every effect
};

struct MatchExpression {
  std::string key;
  enum class Operator { kIn, kNotIn, kExists, kDoesNotExist } op = Operator::kIn;
  std::vector<std::string> values;
};

// A node matches a term when it matches every expression of it; it matches the affinity when it
// matches any term (Kubernetes' nodeSelectorTerms are ORed).
struct NodeSelectorTerm {
  std::vector<MatchExpression> match_expressions;
};

struct PodRequest {
  std::string owner;  // spreading key: ownerReferences[0].uid, else "app=<label>", else ""
  std::map<std::string, std::string> node_selector;
  std::vector<NodeSelectorTerm> required_affinity;  // empty: no required node affinity
  std::vector<Toleration> tolerations;
  int64_t cpu_millis = 0;
  int64_t memory_bytes = 0;
};

enum class NodeReadiness { kReady, kUnknown, kNotReady };

struct NodeState {
  std::string name;
  std::map<std::string, std::string> labels;
  std::vector<Taint> taints;
  bool cordoned = false;     // spec.unschedulable
  bool reported = false;     // a status exists (allocatable known)
  bool unreachable = false;  // the hub's liveness timeout fired
  NodeReadiness readiness = NodeReadiness::kUnknown;
  // Allocatable; 0 means the edge did not report that resource, which then does not limit.
  int64_t allocatable_cpu_millis = 0;
  int64_t allocatable_memory_bytes = 0;
  int64_t allocatable_pods = 0;
  // Sums over the pods bound to this node.
  int64_t requested_cpu_millis = 0;
  int64_t requested_memory_bytes = 0;
  int64_t pod_count = 0;
  std::map<std::string, int64_t> pods_by_owner;
};

struct Decision {
  std::optional<std::string> node;  // the chosen node, or nullopt with `message` saying why
  std::string message;  // "0/3 nodes are available: 2 node(s) didn't match node selector, ..."
};

// Filters the nodes the pod fits on (cordon, readiness, selector, affinity, taints, resources)
// and picks, among them, Ready before Unknown, then the fewest pods of the pod's owner, then the
// fewest pods, then the smallest name (deterministic).
Decision schedule(const PodRequest& pod, const std::vector<NodeState>& nodes);

// The filters on their own (tests, and reasons an operator can read).
bool matches_node_selector(const std::map<std::string, std::string>& selector,
                           const std::map<std::string, std::string>& labels);
bool matches_affinity(const std::vector<NodeSelectorTerm>& terms,
                      const std::map<std::string, std::string>& labels);
bool tolerates(const std::vector<Toleration>& tolerations, const Taint& taint);

// From Kubernetes JSON. Malformed or unknown parts are skipped (the API validated what it
// stores); an unknown affinity operator makes the term match nothing, as Kubernetes would refuse
// such a pod.
PodRequest pod_request_from_json(const nlohmann::json& pod, const v1::PodManifest& manifest);
void node_spec_from_json(const nlohmann::json& node, NodeState& state);
void node_status_into(const v1::StoredStatus& status, NodeState& state);

}  // namespace gantry::cloud::controllers
