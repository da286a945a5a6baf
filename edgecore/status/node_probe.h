// A minimal, honest probe of this node for its NodeStatus: identity from uname and /etc, CPU count,
// memory from /proc/meminfo. The runtime issue adds the container runtime's view; until then the
// node says plainly that it runs no containers (RuntimeUnavailable=True).
#pragma once

#include <cstdint>
#include <string>

#include "gantry/v1/objects.pb.h"

namespace gantry::edge {

struct NodeProbeOptions {
  std::string edgecore_version;
  int64_t max_pods = 110;
  int64_t started_at = 0;  // Unix seconds: the Ready condition's transition time
};

// Reads the node's trimmed status from the system. Values that cannot be read are left unset.
v1::NodeStatus probe_node(const NodeProbeOptions& options);

}  // namespace gantry::edge
