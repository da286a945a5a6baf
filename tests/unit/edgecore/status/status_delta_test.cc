#include "proto/gantry/v1/status_delta.h"

#include <google/protobuf/util/message_differencer.h>

#include <catch2/catch.hpp>

#include "gantry/v1/tunnel.pb.h"

namespace gantry::v1 {
namespace {

using google::protobuf::util::MessageDifferencer;

ContainerStatus running(const std::string& name, int restarts) {
  ContainerStatus c;
  c.set_name(name);
  c.mutable_state()->mutable_running()->set_started_at(1700000000 + restarts);
  c.set_ready(true);
  c.set_restart_count(restarts);
  c.set_image_id("sha256:abc");
  c.set_image("nginx:1.25");
  return c;
}

PodStatus running_pod() {
  PodStatus s;
  s.set_phase(POD_PHASE_RUNNING);
  s.set_ready(true);
  s.set_pod_ip("10.0.0.7");
  s.set_start_time(1700000000);
  s.set_ready_since(1700000005);
  *s.add_containers() = running("app", 0);
  *s.add_containers() = running("sidecar", 0);
  return s;
}

NodeStatus ready_node() {
  NodeStatus n;
  n.mutable_capacity()->set_cpu_millis(4000);
  n.mutable_capacity()->set_memory_bytes(1LL << 30);
  n.mutable_capacity()->set_pods(20);
  *n.mutable_allocatable() = n.capacity();
  auto* ready = n.add_conditions();
  ready->set_type(NODE_CONDITION_READY);
  ready->set_status(CONDITION_STATUS_TRUE);
  ready->set_last_transition_time(1700000000);
  auto* memory = n.add_conditions();
  memory->set_type(NODE_CONDITION_MEMORY_PRESSURE);
  memory->set_status(CONDITION_STATUS_FALSE);
  auto* address = n.mutable_addresses()->add_items();
  address->set_address("192.168.1.20");
  n.mutable_node_info()->set_architecture("arm64");
  n.mutable_node_info()->set_kernel_version("6.1.0");
  return n;
}

TEST_CASE("status delta: one pod's phase change encodes to a StatusDelta frame under 60 bytes") {
  PodStatus acked = running_pod();
  PodStatus latest = acked;
  latest.set_phase(POD_PHASE_FAILED);
  REQUIRE(can_diff(acked, latest));
  PodStatus delta = diff(acked, latest);
  CHECK_FALSE(is_empty(delta));
  CHECK(delta.containers_size() == 0);

  Frame frame;
  auto* batch = frame.mutable_status_delta();
  batch->set_sequence(1234);
  auto* entry = batch->add_entries();
  entry->set_kind(OBJECT_KIND_POD);
  entry->set_namespace_("default");
  entry->set_name("web-7d9f");
  entry->set_base_generation(17);
  *entry->mutable_pod() = delta;
  INFO("serialized frame: " << frame.ByteSizeLong() << " bytes");
  CHECK(frame.ByteSizeLong() < 60);
}

TEST_CASE("status delta: a container restart carries only that container's changed fields") {
  PodStatus acked = running_pod();
  PodStatus latest = acked;
  *latest.mutable_containers(1) = running("sidecar", 1);
  PodStatus delta = diff(acked, latest);
  REQUIRE(delta.containers_size() == 1);
  CHECK(delta.containers(0).name() == "sidecar");
  CHECK(delta.containers(0).has_restart_count());
  CHECK(delta.containers(0).has_state());
  CHECK_FALSE(delta.containers(0).has_image());
  CHECK_FALSE(delta.has_phase());
}

TEST_CASE("status delta: identical statuses give an empty delta") {
  CHECK(is_empty(diff(running_pod(), running_pod())));
  CHECK(is_empty(diff(ready_node(), ready_node())));
}

TEST_CASE("status delta: pod diff then apply gives back latest") {
  PodStatus acked = running_pod();
  auto shape = GENERATE(range(0, 8));
  PodStatus latest = acked;
  switch (shape) {
    case 0:
      latest.set_phase(POD_PHASE_SUCCEEDED);
      break;
    case 1:
      latest.set_pod_ip("10.0.0.8");
      latest.set_ready(false);
      break;
    case 2:
      *latest.mutable_containers(0) = running("app", 3);
      break;
    case 3:
      *latest.add_containers() = running("new", 0);
      break;
    case 4:
      latest.mutable_containers(0)->mutable_state()->mutable_terminated()->set_exit_code(137);
      latest.mutable_containers(0)->mutable_state()->mutable_terminated()->set_reason("OOMKilled");
      *latest.mutable_containers(0)->mutable_last_state() = acked.containers(0).state();
      latest.set_reason("Evicted");
      break;
    case 5:
      latest.set_message("back-off pulling image");
      latest.set_ready_since(1700009999);
      break;
    case 6:
      break;  // unchanged
    case 7:
      acked = PodStatus();  // from nothing: every field is new
      break;
  }
  INFO("shape " << shape);
  REQUIRE(can_diff(acked, latest));
  PodStatus merged = apply_delta(acked, diff(acked, latest));
  CHECK(MessageDifferencer::Equals(merged, latest));
}

TEST_CASE("status delta: node diff then apply gives back latest") {
  NodeStatus acked = ready_node();
  auto shape = GENERATE(range(0, 6));
  NodeStatus latest = acked;
  switch (shape) {
    case 0:
      latest.mutable_conditions(0)->set_status(CONDITION_STATUS_FALSE);
      break;
    case 1:
      latest.mutable_allocatable()->set_memory_bytes(900 << 20);
      break;
    case 2: {
      auto* disk = latest.add_conditions();
      disk->set_type(NODE_CONDITION_DISK_PRESSURE);
      disk->set_status(CONDITION_STATUS_TRUE);
      break;
    }
    case 3:
      latest.mutable_addresses()->add_items()->set_address("10.1.1.1");
      break;
    case 4:
      latest.mutable_node_info()->set_edgecore_version("0.2.0");
      break;
    case 5:
      acked = NodeStatus();
      break;
  }
  INFO("shape " << shape);
  REQUIRE(can_diff(acked, latest));
  NodeStatus delta = diff(acked, latest);
  if (shape == 0) {
    CHECK(delta.conditions_size() == 1);
    CHECK_FALSE(delta.has_capacity());
  }
  CHECK(MessageDifferencer::Equals(apply_delta(acked, delta), latest));
}

TEST_CASE("status delta: changes a delta cannot express must be sent in full") {
  PodStatus acked = running_pod();
  SECTION("a cleared field") {
    PodStatus latest = acked;
    latest.clear_pod_ip();
    CHECK_FALSE(can_diff(acked, latest));
  }
  SECTION("a container gone") {
    PodStatus latest = acked;
    latest.mutable_containers()->RemoveLast();
    CHECK_FALSE(can_diff(acked, latest));
  }
  SECTION("containers reordered") {
    PodStatus latest = acked;
    latest.mutable_containers()->SwapElements(0, 1);
    CHECK_FALSE(can_diff(acked, latest));
  }
  SECTION("a node condition gone") {
    NodeStatus node = ready_node();
    NodeStatus latest = node;
    latest.mutable_conditions()->RemoveLast();
    CHECK_FALSE(can_diff(node, latest));
  }
}

}  // namespace
}  // namespace gantry::v1
