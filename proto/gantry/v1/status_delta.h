// Status deltas: what the edge sends instead of a whole status, and how the cloud merges it.
// Both ends use these pure functions; the rules are the protocol's (docs/protocol.md):
//  - PodStatus: a present scalar field means "changed to this value"; `containers` lists only
//    containers whose fields changed, by name, each carrying only the changed fields.
//  - NodeStatus: a present message field (capacity, allocatable, addresses, node_info) replaces
//    the stored one whole; `conditions` lists only the conditions that changed, by type.
// A change that a delta cannot express (a field or a container cleared, containers reordered)
// has to be sent in full: can_diff() says so.
#pragma once

#include "gantry/v1/objects.pb.h"

namespace gantry::v1 {

// Whether `latest` can be expressed as a delta against `acked`. When false, send it in full.
bool can_diff(const PodStatus& acked, const PodStatus& latest);
bool can_diff(const NodeStatus& acked, const NodeStatus& latest);

// The fields of `latest` that differ from `acked`. Only meaningful when can_diff() holds; then
// apply_delta(acked, diff(acked, latest)) equals `latest`.
PodStatus diff(const PodStatus& acked, const PodStatus& latest);
NodeStatus diff(const NodeStatus& acked, const NodeStatus& latest);

// Nothing changed.
bool is_empty(const PodStatus& delta);
bool is_empty(const NodeStatus& delta);

// Merges `delta` into `base` (the inverse of diff). Containers and conditions the base does not
// have are appended in the delta's order.
PodStatus apply_delta(const PodStatus& base, const PodStatus& delta);
NodeStatus apply_delta(const NodeStatus& base, const NodeStatus& delta);

}  // namespace gantry::v1
