#include "proto/gantry/v1/status_delta.h"

#include <google/protobuf/util/message_differencer.h>

#include <set>
#include <type_traits>

namespace gantry::v1 {
namespace {

using google::protobuf::Message;
using google::protobuf::util::MessageDifferencer;

template <typename T>
bool same(const T& a, const T& b) {
  if constexpr (std::is_base_of_v<Message, T>) {
    return MessageDifferencer::Equals(a, b);
  } else {
    return a == b;
  }
}

// Optional scalar fields: present in `latest` and new or different -> in the delta.
#define GANTRY_DIFF_SCALAR(field)                                                             \
  if (latest.has_##field() && (!acked.has_##field() || !same(acked.field(), latest.field()))) \
  delta.set_##field(latest.field())
// Message fields: present in `latest` and new or different -> in the delta, whole.
#define GANTRY_DIFF_MESSAGE(field)                                                            \
  if (latest.has_##field() && (!acked.has_##field() || !same(acked.field(), latest.field()))) \
  *delta.mutable_##field() = latest.field()
#define GANTRY_CLEARED(field) (acked.has_##field() && !latest.has_##field())
#define GANTRY_MERGE_SCALAR(field) \
  if (delta.has_##field()) out.set_##field(delta.field())
#define GANTRY_MERGE_MESSAGE(field) \
  if (delta.has_##field()) *out.mutable_##field() = delta.field()

bool container_cleared(const ContainerStatus& acked, const ContainerStatus& latest) {
  return GANTRY_CLEARED(state) || GANTRY_CLEARED(ready) || GANTRY_CLEARED(restart_count) ||
         GANTRY_CLEARED(image_id) || GANTRY_CLEARED(image) || GANTRY_CLEARED(last_state);
}

ContainerStatus diff_container(const ContainerStatus& acked, const ContainerStatus& latest) {
  ContainerStatus delta;
  GANTRY_DIFF_MESSAGE(state);
  GANTRY_DIFF_SCALAR(ready);
  GANTRY_DIFF_SCALAR(restart_count);
  GANTRY_DIFF_SCALAR(image_id);
  GANTRY_DIFF_SCALAR(image);
  GANTRY_DIFF_MESSAGE(last_state);
  return delta;
}

void merge_container(ContainerStatus& out, const ContainerStatus& delta) {
  GANTRY_MERGE_MESSAGE(state);
  GANTRY_MERGE_SCALAR(ready);
  GANTRY_MERGE_SCALAR(restart_count);
  GANTRY_MERGE_SCALAR(image_id);
  GANTRY_MERGE_SCALAR(image);
  GANTRY_MERGE_MESSAGE(last_state);
}

// The keyed lists (containers by name, conditions by type) must keep the acked entries first, in
// the same order, with no duplicates: merging appends new keys, so anything else would not
// round-trip.
template <typename List, typename Key>
bool keyed_prefix(const List& acked, const List& latest, Key key) {
  if (latest.size() < acked.size()) return false;
  std::set<std::decay_t<decltype(key(latest[0]))>> seen;
  for (int i = 0; i < latest.size(); ++i) {
    if (i < acked.size() && key(acked[i]) != key(latest[i])) return false;
    if (!seen.insert(key(latest[i])).second) return false;
  }
  return true;
}

const std::string& container_name(const ContainerStatus& c) {
  return c.name();
}
NodeConditionType condition_type(const NodeCondition& c) {
  return c.type();
}

}  // namespace

bool can_diff(const PodStatus& acked, const PodStatus& latest) {
  if (GANTRY_CLEARED(phase) || GANTRY_CLEARED(ready) || GANTRY_CLEARED(pod_ip) ||
      GANTRY_CLEARED(start_time) || GANTRY_CLEARED(reason) || GANTRY_CLEARED(message) ||
      GANTRY_CLEARED(ready_since)) {
    return false;
  }
  if (!keyed_prefix(acked.containers(), latest.containers(), container_name)) return false;
  for (int i = 0; i < acked.containers_size(); ++i) {
    if (container_cleared(acked.containers(i), latest.containers(i))) return false;
  }
  return true;
}

bool can_diff(const NodeStatus& acked, const NodeStatus& latest) {
  if (GANTRY_CLEARED(capacity) || GANTRY_CLEARED(allocatable) || GANTRY_CLEARED(addresses) ||
      GANTRY_CLEARED(node_info)) {
    return false;
  }
  return keyed_prefix(acked.conditions(), latest.conditions(), condition_type);
}

PodStatus diff(const PodStatus& acked, const PodStatus& latest) {
  PodStatus delta;
  GANTRY_DIFF_SCALAR(phase);
  GANTRY_DIFF_SCALAR(ready);
  GANTRY_DIFF_SCALAR(pod_ip);
  GANTRY_DIFF_SCALAR(start_time);
  GANTRY_DIFF_SCALAR(reason);
  GANTRY_DIFF_SCALAR(message);
  GANTRY_DIFF_SCALAR(ready_since);
  for (const auto& container : latest.containers()) {
    const ContainerStatus* old = nullptr;
    for (const auto& candidate : acked.containers()) {
      if (candidate.name() == container.name()) {
        old = &candidate;
        break;
      }
    }
    if (!old) {
      *delta.add_containers() = container;
      continue;
    }
    ContainerStatus changed = diff_container(*old, container);
    if (changed.ByteSizeLong() > 0) {
      changed.set_name(container.name());
      *delta.add_containers() = std::move(changed);
    }
  }
  return delta;
}

NodeStatus diff(const NodeStatus& acked, const NodeStatus& latest) {
  NodeStatus delta;
  GANTRY_DIFF_MESSAGE(capacity);
  GANTRY_DIFF_MESSAGE(allocatable);
  GANTRY_DIFF_MESSAGE(addresses);
  GANTRY_DIFF_MESSAGE(node_info);
  for (const auto& condition : latest.conditions()) {
    bool unchanged = false;
    for (const auto& old : acked.conditions()) {
      if (old.type() == condition.type()) {
        unchanged = same(old, condition);
        break;
      }
    }
    if (!unchanged) *delta.add_conditions() = condition;
  }
  return delta;
}

bool is_empty(const PodStatus& delta) {
  return delta.ByteSizeLong() == 0;
}
bool is_empty(const NodeStatus& delta) {
  return delta.ByteSizeLong() == 0;
}

PodStatus apply_delta(const PodStatus& base, const PodStatus& delta) {
  PodStatus out = base;
  GANTRY_MERGE_SCALAR(phase);
  GANTRY_MERGE_SCALAR(ready);
  GANTRY_MERGE_SCALAR(pod_ip);
  GANTRY_MERGE_SCALAR(start_time);
  GANTRY_MERGE_SCALAR(reason);
  GANTRY_MERGE_SCALAR(message);
  GANTRY_MERGE_SCALAR(ready_since);
  for (const auto& change : delta.containers()) {
    ContainerStatus* target = nullptr;
    for (auto& candidate : *out.mutable_containers()) {
      if (candidate.name() == change.name()) {
        target = &candidate;
        break;
      }
    }
    if (target) {
      merge_container(*target, change);
    } else {
      *out.add_containers() = change;
    }
  }
  return out;
}

NodeStatus apply_delta(const NodeStatus& base, const NodeStatus& delta) {
  NodeStatus out = base;
  GANTRY_MERGE_MESSAGE(capacity);
  GANTRY_MERGE_MESSAGE(allocatable);
  GANTRY_MERGE_MESSAGE(addresses);
  GANTRY_MERGE_MESSAGE(node_info);
  for (const auto& change : delta.conditions()) {
    NodeCondition* target = nullptr;
    for (auto& candidate : *out.mutable_conditions()) {
      if (candidate.type() == change.type()) {
        target = &candidate;
        break;
      }
    }
    if (target) {
      *target = change;
    } else {
      *out.add_conditions() = change;
    }
  }
  return out;
}

}  // namespace gantry::v1
