#include "edgecore/status/node_probe.h"

#include <catch2/catch.hpp>

// Designated initializers leave the other members at their defaults, which is the point here.
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#include "tests/support/test_support.h"

namespace gantry::edge {
namespace {

const v1::NodeCondition* condition(const v1::NodeStatus& status, v1::NodeConditionType type) {
  for (const auto& c : status.conditions()) {
    if (c.type() == type) return &c;
  }
  return nullptr;
}

NodeReadings healthy() {
  NodeReadings r;
  r.cpu_millis = 4000;
  r.memory_total_bytes = int64_t{1} << 30;
  r.memory_available_bytes = 600 << 20;
  r.disk_total_bytes = int64_t{32} << 30;
  r.disk_available_bytes = int64_t{20} << 30;
  r.hostname = "gantry-17";
  r.internal_ips = {"10.1.2.3"};
  r.architecture = "arm64";
  r.kernel_version = "5.10.0";
  return r;
}

TEST_CASE("node probe: reads this machine's CPUs, memory, data dir filesystem and kernel") {
  test::TempDir dir;
  NodeReadings r = read_node(dir.path());
  CHECK(r.cpu_millis >= 1000);
  CHECK(r.memory_total_bytes > 0);
  CHECK(r.memory_available_bytes > 0);
  CHECK(r.disk_total_bytes > 0);
  CHECK(r.disk_available_bytes <= r.disk_total_bytes);
  CHECK_FALSE(r.kernel_version.empty());
  CHECK_FALSE(r.architecture.empty());
}

TEST_CASE("node probe: capacity, allocatable, addresses and versions in the status") {
  NodeProber prober({.edgecore_version = "9.9.9", .started_at = 1700000000, .data_dir = "/data"});
  v1::NodeStatus s =
      prober.status(healthy(), {.ready = true, .version = "containerd://1.6.20"}, 1700000100);
  CHECK(s.capacity().cpu_millis() == 4000);
  CHECK(s.capacity().memory_bytes() == int64_t{1} << 30);
  CHECK(s.capacity().ephemeral_storage_bytes() == int64_t{32} << 30);
  CHECK(s.allocatable().memory_bytes() == (int64_t{1} << 30) - (100 << 20));
  CHECK(s.allocatable().ephemeral_storage_bytes() < s.capacity().ephemeral_storage_bytes());
  CHECK(s.capacity().pods() == 110);
  REQUIRE(s.addresses().items_size() == 2);
  CHECK(s.addresses().items(0).type() == v1::ADDRESS_TYPE_INTERNAL_IP);
  CHECK(s.addresses().items(0).address() == "10.1.2.3");
  CHECK(s.addresses().items(1).address() == "gantry-17");
  CHECK(s.node_info().container_runtime_version() == "containerd://1.6.20");
  CHECK(s.node_info().edgecore_version() == "9.9.9");
  CHECK(s.node_info().architecture() == "arm64");
  for (auto type : {v1::NODE_CONDITION_MEMORY_PRESSURE, v1::NODE_CONDITION_DISK_PRESSURE,
                    v1::NODE_CONDITION_RUNTIME_UNAVAILABLE}) {
    REQUIRE(condition(s, type));
    CHECK(condition(s, type)->status() == v1::CONDITION_STATUS_FALSE);
  }
  CHECK(condition(s, v1::NODE_CONDITION_READY)->status() == v1::CONDITION_STATUS_TRUE);
  CHECK(condition(s, v1::NODE_CONDITION_READY)->last_transition_time() == 1700000000);
}

TEST_CASE("node probe: low memory and a full data disk show as pressure with the threshold") {
  NodeProber prober({.started_at = 10, .data_dir = "/data"});
  NodeReadings r = healthy();
  r.memory_available_bytes = 50 << 20;
  r.disk_available_bytes = int64_t{1} << 30;  // 1 of 32 GiB
  v1::NodeStatus s = prober.status(r, {.ready = true}, 20);
  const auto* memory = condition(s, v1::NODE_CONDITION_MEMORY_PRESSURE);
  CHECK(memory->status() == v1::CONDITION_STATUS_TRUE);
  CHECK(memory->message() == "memory available is below 100 MiB");
  const auto* disk = condition(s, v1::NODE_CONDITION_DISK_PRESSURE);
  CHECK(disk->status() == v1::CONDITION_STATUS_TRUE);
  CHECK(disk->message() == "space available on the filesystem of /data is below 10%");
}

TEST_CASE("node probe: a runtime that does not answer is RuntimeUnavailable with its reason") {
  NodeProber prober({.started_at = 10});
  v1::NodeStatus s = prober.status(healthy(),
                                   {.ready = false,
                                    .version = "",
                                    .message = "containerd at unix:///x.sock: connection refused"},
                                   20);
  const auto* runtime = condition(s, v1::NODE_CONDITION_RUNTIME_UNAVAILABLE);
  CHECK(runtime->status() == v1::CONDITION_STATUS_TRUE);
  CHECK(runtime->message() == "containerd at unix:///x.sock: connection refused");
  CHECK(condition(s, v1::NODE_CONDITION_READY)->status() == v1::CONDITION_STATUS_TRUE);
}

TEST_CASE("node probe: transition times move only when a condition's status changes") {
  NodeProber prober({.started_at = 10});
  NodeReadings r = healthy();
  v1::NodeStatus first = prober.status(r, {.ready = true}, 20);
  r.memory_available_bytes = 500 << 20;  // still no pressure: the status is unchanged
  CHECK(prober.status(r, {.ready = true}, 30).SerializeAsString() == first.SerializeAsString());
  v1::NodeStatus lost = prober.status(r, {.ready = false, .version = "", .message = "gone"}, 40);
  CHECK(condition(lost, v1::NODE_CONDITION_RUNTIME_UNAVAILABLE)->last_transition_time() == 40);
  CHECK(condition(lost, v1::NODE_CONDITION_MEMORY_PRESSURE)->last_transition_time() == 10);
  v1::NodeStatus back = prober.status(r, {.ready = true}, 50);
  CHECK(condition(back, v1::NODE_CONDITION_RUNTIME_UNAVAILABLE)->last_transition_time() == 50);
}

}  // namespace
}  // namespace gantry::edge
