// Nodes per province by their Ready state, as `kubectl get nodes` and the provinces API show it:
// for the monitoring gauges (gantry_province_nodes), computed when scraped.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "cloudcore/registry/registry.h"
#include "cloudcore/store/store.h"

namespace gantry::cloud {

struct NodeStateCounts {
  uint64_t ready = 0;
  uint64_t not_ready = 0;
  uint64_t unknown = 0;  // silent past the node timeout (offline), or no status reported yet
};

// Keyed by province ("" for nodes without the topology.gantry.io/province label). Reads the node
// statuses in pages, so its memory stays bounded at any fleet size.
std::map<std::string, NodeStateCounts> count_nodes_by_province(const Registry& registry,
                                                               const Store& store);

}  // namespace gantry::cloud
