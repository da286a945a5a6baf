// The cloud's side of status deltas, with no I/O: given one StatusDelta from a node and what is
// stored, decide what to write and what to acknowledge (DESIGN.md section 4, docs/protocol.md).
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cloudcore/controllers/events.h"
#include "cloudcore/registry/registry.h"
#include "cloudcore/store/store.h"
#include "gantry/v1/tunnel.pb.h"

namespace gantry::cloud {

// Reads the stored status under a key (nullopt: none).
using StatusLookup = std::function<std::optional<v1::StoredStatus>(const std::string& key)>;

struct UpstreamPlan {
  // Status keys to write (value: a serialized StoredStatus) or delete (nullopt).
  std::vector<std::pair<std::string, std::optional<std::string>>> writes;
  // Pods whose graceful delete the edge finished: their objects go.
  std::vector<std::string> finished_pods;  // object keys
  v1::StatusAck ack;
  bool duplicate = false;  // sequence already applied: acknowledge, write nothing
  size_t applied = 0;      // entries applied
  // Not ok: the node broke the protocol (another node's object, a bad kind, ...). Nothing of the
  // batch is written; the connection is closed with this message.
  Status violation;
};

UpstreamPlan plan_status_delta(const std::string& node, const v1::StatusDelta& delta,
                               uint64_t stored_sequence, const Registry& registry,
                               const StatusLookup& lookup, int64_t now_ms);

// The events of a batch from `node` as the recorder takes them: about the node itself or about
// pods bound to it (anything else is dropped and counted in `refused`), source kubelet@node. A
// non-zero events_dropped becomes a Warning EventsDropped on the node.
std::vector<controllers::EventRecord> plan_edge_events(const std::string& node,
                                                       const std::string& node_uid,
                                                       const v1::StatusDelta& delta,
                                                       const Registry& registry, size_t* refused);

}  // namespace gantry::cloud
