#include "cloudcore/controllers/scheduling.h"

#include <fmt/format.h>

#include <algorithm>
#include <tuple>

namespace gantry::cloud::controllers {

using json = nlohmann::json;

namespace {

std::optional<TaintEffect> parse_effect(const std::string& text) {
  if (text == "NoSchedule") return TaintEffect::kNoSchedule;
  if (text == "PreferNoSchedule") return TaintEffect::kPreferNoSchedule;
  if (text == "NoExecute") return TaintEffect::kNoExecute;
  return std::nullopt;
}

std::string string_at(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

const json* child(const json& object, const char* key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

std::map<std::string, std::string> string_map(const json* object) {
  std::map<std::string, std::string> out;
  if (!object || !object->is_object()) return out;
  for (auto it = object->begin(); it != object->end(); ++it)
    if (it->is_string()) out[it.key()] = it->get<std::string>();
  return out;
}

bool matches_expression(const MatchExpression& e,
                        const std::map<std::string, std::string>& labels) {
  auto it = labels.find(e.key);
  bool has = it != labels.end();
  auto in_values = [&] {
    return has && std::find(e.values.begin(), e.values.end(), it->second) != e.values.end();
  };
  switch (e.op) {
    case MatchExpression::Operator::kIn:
      return in_values();
    case MatchExpression::Operator::kNotIn:
      return !in_values();
    case MatchExpression::Operator::kExists:
      return has;
    case MatchExpression::Operator::kDoesNotExist:
      return !has;
  }
  return false;
}

// Why one node was filtered out, as Kubernetes words it (one entry per reason).
enum class Reason {
  kCordoned,
  kNotReported,
  kUnreachable,
  kNotReady,
  kSelector,
  kAffinity,
  kTaint,
  kCpu,
  kMemory,
  kPods,
};

std::string reason_text(Reason r) {
  switch (r) {
    case Reason::kCordoned:
      return "node(s) were unschedulable";
    case Reason::kNotReported:
      return "node(s) had not reported their status";
    case Reason::kUnreachable:
      return "node(s) were unreachable";
    case Reason::kNotReady:
      return "node(s) were not ready";
    case Reason::kSelector:
      return "node(s) didn't match node selector";
    case Reason::kAffinity:
      return "node(s) didn't match Pod's node affinity";
    case Reason::kTaint:
      return "node(s) had untolerated taint";
    case Reason::kCpu:
      return "Insufficient cpu";
    case Reason::kMemory:
      return "Insufficient memory";
    case Reason::kPods:
      return "Too many pods";
  }
  return "";
}

}  // namespace

bool matches_node_selector(const std::map<std::string, std::string>& selector,
                           const std::map<std::string, std::string>& labels) {
  for (const auto& [key, value] : selector) {
    auto it = labels.find(key);
    if (it == labels.end() || it->second != value) return false;
  }
  return true;
}

bool matches_affinity(const std::vector<NodeSelectorTerm>& terms,
                      const std::map<std::string, std::string>& labels) {
  if (terms.empty()) return true;
  for (const auto& term : terms) {
    // An empty term matches nothing (Kubernetes: "an empty term matches no objects").
    if (term.match_expressions.empty()) continue;
    bool all = std::all_of(term.match_expressions.begin(), term.match_expressions.end(),
                           [&](const MatchExpression& e) { return matches_expression(e, labels); });
    if (all) return true;
  }
  return false;
}

bool tolerates(const std::vector<Toleration>& tolerations, const Taint& taint) {
  for (const auto& t : tolerations) {
    if (t.effect && *t.effect != taint.effect) continue;
    if (t.op == Toleration::Operator::kExists) {
      if (t.key.empty() || t.key == taint.key) return true;
    } else if (t.key == taint.key && t.value == taint.value) {
      return true;
    }
  }
  return false;
}

Decision schedule(const PodRequest& pod, const std::vector<NodeState>& nodes) {
  const NodeState* best = nullptr;
  auto rank = [&](const NodeState& n) {
    int64_t owner_pods = 0;
    if (!pod.owner.empty())
      if (auto it = n.pods_by_owner.find(pod.owner); it != n.pods_by_owner.end())
        owner_pods = it->second;
    return std::make_tuple(n.readiness == NodeReadiness::kReady ? 0 : 1, owner_pods, n.pod_count,
                           std::string_view(n.name));
  };
  std::map<Reason, int> counts;
  std::map<std::string, int> taint_counts;  // "{key: value}" of the first untolerated taint
  for (const auto& n : nodes) {
    std::optional<Reason> why;
    if (n.cordoned) {
      why = Reason::kCordoned;
    } else if (n.unreachable) {
      why = Reason::kUnreachable;
    } else if (!n.reported) {
      why = Reason::kNotReported;
    } else if (n.readiness == NodeReadiness::kNotReady) {
      why = Reason::kNotReady;
    } else if (!matches_node_selector(pod.node_selector, n.labels)) {
      why = Reason::kSelector;
    } else if (!matches_affinity(pod.required_affinity, n.labels)) {
      why = Reason::kAffinity;
    }
    if (!why) {
      for (const auto& taint : n.taints) {
        if (taint.effect == TaintEffect::kPreferNoSchedule || tolerates(pod.tolerations, taint))
          continue;
        why = Reason::kTaint;
        ++taint_counts[taint.value.empty() ? fmt::format("{{{}}}", taint.key)
                                           : fmt::format("{{{}: {}}}", taint.key, taint.value)];
        break;
      }
    }
    if (why) {
      ++counts[*why];
      continue;
    }
    // Resources: every shortage counts, as Kubernetes reports them.
    bool fits = true;
    if (n.allocatable_pods > 0 && n.pod_count + 1 > n.allocatable_pods) {
      ++counts[Reason::kPods];
      fits = false;
    }
    if (n.allocatable_cpu_millis > 0 &&
        n.requested_cpu_millis + pod.cpu_millis > n.allocatable_cpu_millis) {
      ++counts[Reason::kCpu];
      fits = false;
    }
    if (n.allocatable_memory_bytes > 0 &&
        n.requested_memory_bytes + pod.memory_bytes > n.allocatable_memory_bytes) {
      ++counts[Reason::kMemory];
      fits = false;
    }
    if (!fits) continue;
    if (!best || rank(n) < rank(*best)) best = &n;
  }
  Decision d;
  if (best) {
    d.node = best->name;
    return d;
  }
  std::vector<std::string> parts;
  for (const auto& [reason, count] : counts) {
    if (reason == Reason::kTaint) {
      for (const auto& [taint, c] : taint_counts)
        parts.push_back(fmt::format("{} {} {}", c, reason_text(reason), taint));
    } else {
      parts.push_back(fmt::format("{} {}", count, reason_text(reason)));
    }
  }
  d.message = fmt::format("0/{} nodes are available", nodes.size());
  if (!parts.empty()) d.message += fmt::format(": {}", fmt::join(parts, ", "));
  d.message += ".";
  return d;
}

PodRequest pod_request_from_json(const json& pod, const v1::PodManifest& manifest) {
  PodRequest r;
  const json* meta = child(pod, "metadata");
  const json* spec = child(pod, "spec");
  if (meta) {
    if (const json* owners = child(*meta, "ownerReferences");
        owners && owners->is_array() && !owners->empty())
      r.owner = string_at((*owners)[0], "uid");
    if (r.owner.empty()) {
      auto labels = string_map(child(*meta, "labels"));
      if (auto it = labels.find("app"); it != labels.end()) r.owner = "app=" + it->second;
    }
  }
  if (spec) {
    r.node_selector = string_map(child(*spec, "nodeSelector"));
    const json* terms = nullptr;
    if (const json* aff = child(*spec, "affinity"))
      if (const json* na = child(*aff, "nodeAffinity"))
        if (const json* req = child(*na, "requiredDuringSchedulingIgnoredDuringExecution"))
          terms = child(*req, "nodeSelectorTerms");
    if (terms && terms->is_array()) {
      for (const auto& t : *terms) {
        NodeSelectorTerm term;
        bool unknown_operator = false;
        const json* exprs = child(t, "matchExpressions");
        if (exprs && exprs->is_array()) {
          for (const auto& e : *exprs) {
            MatchExpression m;
            m.key = string_at(e, "key");
            std::string op = string_at(e, "operator");
            if (op == "In")
              m.op = MatchExpression::Operator::kIn;
            else if (op == "NotIn")
              m.op = MatchExpression::Operator::kNotIn;
            else if (op == "Exists")
              m.op = MatchExpression::Operator::kExists;
            else if (op == "DoesNotExist")
              m.op = MatchExpression::Operator::kDoesNotExist;
            else
              unknown_operator = true;
            if (const json* values = child(e, "values"); values && values->is_array())
              for (const auto& v : *values)
                if (v.is_string()) m.values.push_back(v.get<std::string>());
            term.match_expressions.push_back(std::move(m));
          }
        }
        // An empty term matches nothing: what a term with an operator we cannot honour deserves.
        if (unknown_operator) term.match_expressions.clear();
        r.required_affinity.push_back(std::move(term));
      }
    }
    if (const json* tols = child(*spec, "tolerations"); tols && tols->is_array()) {
      for (const auto& t : *tols) {
        Toleration tol;
        tol.key = string_at(t, "key");
        tol.op = string_at(t, "operator") == "Exists" ? Toleration::Operator::kExists
                                                      : Toleration::Operator::kEqual;
        tol.value = string_at(t, "value");
        std::string effect = string_at(t, "effect");
        if (!effect.empty()) {
          tol.effect = parse_effect(effect);
          if (!tol.effect) continue;  // tolerates nothing we know
        }
        r.tolerations.push_back(std::move(tol));
      }
    }
  }
  // Kubernetes: the pod's request is the larger of its containers' sum and any init container.
  auto request = [](const v1::Resources& res, bool cpu) {
    // A limit without a request defaults the request to the limit.
    if (cpu)
      return res.cpu_request_millis() > 0 ? res.cpu_request_millis() : res.cpu_limit_millis();
    return res.memory_request_bytes() > 0 ? res.memory_request_bytes() : res.memory_limit_bytes();
  };
  for (bool cpu : {true, false}) {
    int64_t sum = 0;
    int64_t init_max = 0;
    for (const auto& c : manifest.containers()) sum += request(c.resources(), cpu);
    for (const auto& c : manifest.init_containers())
      init_max = std::max(init_max, request(c.resources(), cpu));
    (cpu ? r.cpu_millis : r.memory_bytes) = std::max(sum, init_max);
  }
  return r;
}

void node_spec_from_json(const json& node, NodeState& state) {
  state.labels.clear();
  state.taints.clear();
  state.cordoned = false;
  if (const json* meta = child(node, "metadata")) state.labels = string_map(child(*meta, "labels"));
  if (const json* spec = child(node, "spec")) {
    if (const json* u = child(*spec, "unschedulable"); u && u->is_boolean()) state.cordoned = *u;
    if (const json* taints = child(*spec, "taints"); taints && taints->is_array()) {
      for (const auto& t : *taints) {
        auto effect = parse_effect(string_at(t, "effect"));
        if (!effect) continue;
        state.taints.push_back({string_at(t, "key"), string_at(t, "value"), *effect});
      }
    }
  }
}

void node_status_into(const v1::StoredStatus& status, NodeState& state) {
  state.reported = status.has_node();
  state.unreachable = status.unreachable();
  state.readiness = NodeReadiness::kUnknown;
  state.allocatable_cpu_millis = 0;
  state.allocatable_memory_bytes = 0;
  state.allocatable_pods = 0;
  if (!status.has_node()) return;
  const auto& ns = status.node();
  state.allocatable_cpu_millis = ns.allocatable().cpu_millis();
  state.allocatable_memory_bytes = ns.allocatable().memory_bytes();
  state.allocatable_pods = ns.allocatable().pods();
  for (const auto& c : ns.conditions()) {
    if (c.type() != v1::NODE_CONDITION_READY) continue;
    state.readiness = c.status() == v1::CONDITION_STATUS_TRUE    ? NodeReadiness::kReady
                      : c.status() == v1::CONDITION_STATUS_FALSE ? NodeReadiness::kNotReady
                                                                 : NodeReadiness::kUnknown;
  }
}

}  // namespace gantry::cloud::controllers
