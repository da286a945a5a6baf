#include "cloudcore/hub/upstream.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>

#include "cloudcore/registry/keys.h"
#include "proto/gantry/v1/status_delta.h"

namespace gantry::cloud {

using common::make_error;

UpstreamPlan plan_status_delta(const std::string& node, const v1::StatusDelta& delta,
                               uint64_t stored_sequence, const Registry& registry,
                               const StatusLookup& lookup, int64_t now_ms) {
  UpstreamPlan plan;
  plan.ack.set_sequence(delta.sequence());
  if (delta.sequence() == 0) {
    plan.violation = make_error(Code::kInvalidArgument, "status batch without a sequence number");
    return plan;
  }
  if (delta.sequence() <= stored_sequence) {
    plan.duplicate = true;
    return plan;
  }
  // Values written earlier in this batch, so two entries for one object apply in order.
  std::map<std::string, std::optional<v1::StoredStatus>> updated;
  auto current = [&](const std::string& key) -> std::optional<v1::StoredStatus> {
    if (auto it = updated.find(key); it != updated.end()) return it->second;
    return lookup(key);
  };
  auto resync = [&](const v1::StatusEntry& e, uint64_t generation, std::string reason) {
    auto* r = plan.ack.add_resync();
    r->set_kind(e.kind());
    r->set_namespace_(e.namespace_());
    r->set_name(e.name());
    r->set_generation(generation);
    r->set_reason(std::move(reason));
  };

  for (const auto& e : delta.entries()) {
    std::string key;
    std::string uid;
    if (e.kind() == v1::OBJECT_KIND_NODE) {
      if (e.name() != node) {
        plan.violation = make_error(Code::kPermissionDenied,
                                    "status for node '{}' sent by node '{}'", e.name(), node);
        return plan;
      }
      if (e.status_case() != v1::StatusEntry::kNode || e.deleted()) {
        plan.violation =
            make_error(Code::kInvalidArgument, "node status entry without a node status");
        return plan;
      }
      key = keys::status_key(v1::OBJECT_KIND_NODE, "", node);
    } else if (e.kind() == v1::OBJECT_KIND_POD) {
      auto pod = registry.pod(e.namespace_(), e.name());
      if (!pod) continue;  // deleted in the cloud meanwhile; the edge will hear of it
      if (pod->node != node) {
        plan.violation =
            make_error(Code::kPermissionDenied, "pod {}/{} is bound to node '{}', not '{}'",
                       e.namespace_(), e.name(), pod->node, node);
        return plan;
      }
      if (!e.deleted() && e.status_case() != v1::StatusEntry::kPod) {
        plan.violation =
            make_error(Code::kInvalidArgument, "pod status entry {}/{} without a pod status",
                       e.namespace_(), e.name());
        return plan;
      }
      if (e.full() && !e.uid().empty() && e.uid() != pod->uid) continue;  // an older incarnation
      key = keys::status_key(v1::OBJECT_KIND_POD, e.namespace_(), e.name());
      uid = pod->uid;
      if (e.deleted()) {
        if (pod->terminating)
          plan.finished_pods.push_back(
              keys::object_key(v1::OBJECT_KIND_POD, e.namespace_(), e.name()));
        if (current(key)) updated[key] = std::nullopt;
        ++plan.applied;
        continue;
      }
    } else {
      plan.violation =
          make_error(Code::kInvalidArgument, "status entries are for pods and nodes, not kind {}",
                     static_cast<int>(e.kind()));
      return plan;
    }

    auto stored = current(key);
    uint64_t generation = stored ? stored->generation() : 0;
    v1::StoredStatus next;
    if (stored) {
      next.set_unreachable(stored->unreachable());
      next.set_unreachable_since(stored->unreachable_since());
    }
    if (e.full()) {
      if (e.kind() == v1::OBJECT_KIND_NODE)
        *next.mutable_node() = e.node();
      else
        *next.mutable_pod() = e.pod();
    } else if (generation != e.base_generation()) {
      resync(e, generation,
             fmt::format("generation {} does not match the stored {}", e.base_generation(),
                         generation));
      continue;
    } else if (e.kind() == v1::OBJECT_KIND_NODE) {
      *next.mutable_node() = v1::apply_delta(stored ? stored->node() : v1::NodeStatus(), e.node());
    } else {
      *next.mutable_pod() = v1::apply_delta(stored ? stored->pod() : v1::PodStatus(), e.pod());
    }
    next.set_generation(e.base_generation() + 1);
    next.set_uid(uid);
    next.set_changed_at(now_ms);
    updated[key] = std::move(next);
    ++plan.applied;
  }
  for (auto& [key, value] : updated) {
    if (value)
      plan.writes.emplace_back(key, value->SerializeAsString());
    else
      plan.writes.emplace_back(key, std::nullopt);
  }
  return plan;
}

std::vector<controllers::EventRecord> plan_edge_events(const std::string& node,
                                                       const std::string& node_uid,
                                                       const v1::StatusDelta& delta,
                                                       const Registry& registry, size_t* refused) {
  std::vector<controllers::EventRecord> out;
  size_t bad = 0;
  auto base = [&](const v1::EdgeEvent& e) {
    controllers::EventRecord r;
    r.type =
        e.warning() ? controllers::KubeEventType::kWarning : controllers::KubeEventType::kNormal;
    r.reason = e.reason();
    r.message = e.message();
    r.component = "kubelet";
    r.host = node;
    r.count = std::max<int64_t>(1, e.count());
    r.first_ms = e.first_time() * 1000;
    r.last_ms = e.last_time() * 1000;
    return r;
  };
  for (const auto& e : delta.events()) {
    // A reason is a short CamelCase word (the kubelet's); anything else is not an event.
    bool reason_ok = !e.reason().empty() && e.reason().size() <= 128 &&
                     std::all_of(e.reason().begin(), e.reason().end(), [](char c) {
                       return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == ':';
                     });
    if (!reason_ok) {
      ++bad;
      continue;
    }
    controllers::EventRecord r = base(e);
    if (e.kind() == v1::OBJECT_KIND_NODE) {
      if (e.name() != node) {
        ++bad;
        continue;
      }
      r.object = controllers::node_reference(node, node_uid);
    } else if (e.kind() == v1::OBJECT_KIND_POD) {
      auto pod = registry.pod(e.namespace_(), e.name());
      // Another node's pod, or an earlier pod of the same name: not this node's to speak about.
      if (!pod || pod->node != node || (!pod->uid.empty() && pod->uid != e.uid())) {
        ++bad;
        continue;
      }
      r.object = controllers::pod_reference(e.namespace_(), e.name(), e.uid(), e.container());
    } else {
      ++bad;
      continue;
    }
    out.push_back(std::move(r));
  }
  if (delta.events_dropped() > 0) {
    controllers::EventRecord r;
    r.object = controllers::node_reference(node, node_uid);
    r.type = controllers::KubeEventType::kWarning;
    r.reason = "EventsDropped";
    r.message = fmt::format(
        "edgecore dropped {} events: its event buffer was full (a long time offline, or very "
        "many failing pods)",
        delta.events_dropped());
    r.component = "kubelet";
    r.host = node;
    out.push_back(std::move(r));
  }
  if (refused) *refused = bad;
  return out;
}

}  // namespace gantry::cloud
