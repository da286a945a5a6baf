#include "cloudcore/registry/province_counts.h"

#include <unordered_map>

#include "cloudcore/registry/keys.h"
#include "gantry/v1/objects.pb.h"

namespace gantry::cloud {
namespace {

enum class NodeState : uint8_t { kReady, kNotReady, kUnknown };

NodeState state_of(const v1::StoredStatus& st) {
  if (st.unreachable()) return NodeState::kUnknown;
  for (const auto& c : st.node().conditions()) {
    if (c.type() != v1::NODE_CONDITION_READY) continue;
    if (c.status() == v1::CONDITION_STATUS_TRUE) return NodeState::kReady;
    if (c.status() == v1::CONDITION_STATUS_FALSE) return NodeState::kNotReady;
  }
  return NodeState::kUnknown;
}

}  // namespace

std::map<std::string, NodeStateCounts> count_nodes_by_province(const Registry& registry,
                                                               const Store& store) {
  std::unordered_map<std::string, NodeState> states;
  ListOptions page;
  page.prefix = std::string(keys::kNodeStatus);
  page.limit = 5000;
  while (true) {
    auto list = store.list(page);
    if (!list.ok()) break;  // what was read so far counts; the rest shows as unknown
    for (const auto& kv : list->items) {
      v1::StoredStatus st;
      if (!st.ParseFromString(kv.value)) continue;
      states[kv.key.substr(keys::kNodeStatus.size())] = state_of(st);
    }
    if (!list->more || list->items.empty()) break;
    page.start_after = list->items.back().key;
    page.at = list->revision;
  }
  std::map<std::string, NodeStateCounts> out;
  for (const auto& name : registry.node_names()) {
    auto info = registry.node(name);
    if (!info) continue;  // removed meanwhile
    NodeStateCounts& c = out[info->province];
    auto it = states.find(name);
    switch (it == states.end() ? NodeState::kUnknown : it->second) {
      case NodeState::kReady:
        ++c.ready;
        break;
      case NodeState::kNotReady:
        ++c.not_ready;
        break;
      case NodeState::kUnknown:
        ++c.unknown;
        break;
    }
  }
  return out;
}

}  // namespace gantry::cloud
