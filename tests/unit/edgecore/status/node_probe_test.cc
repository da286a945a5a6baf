#include "edgecore/status/node_probe.h"

#include <catch2/catch.hpp>

namespace gantry::edge {
namespace {

TEST_CASE("node probe: reports this machine's CPUs, memory, kernel and the missing runtime") {
  v1::NodeStatus status = probe_node({.edgecore_version = "9.9.9", .started_at = 1700000000});
  CHECK(status.capacity().cpu_millis() >= 1000);
  CHECK(status.capacity().memory_bytes() > 0);
  CHECK_FALSE(status.node_info().kernel_version().empty());
  CHECK_FALSE(status.node_info().architecture().empty());
  CHECK(status.node_info().edgecore_version() == "9.9.9");
  REQUIRE(status.conditions_size() == 2);
  CHECK(status.conditions(1).type() == v1::NODE_CONDITION_RUNTIME_UNAVAILABLE);
  CHECK(status.conditions(1).status() == v1::CONDITION_STATUS_TRUE);
}

TEST_CASE("node probe: two probes of an idle node are equal, so reporting them costs nothing") {
  NodeProbeOptions options{.edgecore_version = "1", .started_at = 5};
  CHECK(probe_node(options).SerializeAsString() == probe_node(options).SerializeAsString());
}

}  // namespace
}  // namespace gantry::edge
