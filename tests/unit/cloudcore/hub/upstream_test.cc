#include "cloudcore/hub/upstream.h"

#include <catch2/catch.hpp>
#include <map>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"

namespace gantry::cloud {
namespace {

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<Registry> registry;
  std::map<std::string, v1::StoredStatus> stored;
  StatusLookup lookup = [this](const std::string& key) -> std::optional<v1::StoredStatus> {
    auto it = stored.find(key);
    if (it == stored.end()) return std::nullopt;
    return it->second;
  };

  Fixture() {
    RocksStoreOptions opts;
    opts.path = dir.str();
    store = std::move(open_rocks_store(opts)).value();
    for (auto [pod, node] : {std::pair{"web", "n1"}, std::pair{"db", "n2"}}) {
      auto obj = decode_object(v1::OBJECT_KIND_POD,
                               fmt::format(R"({{"metadata": {{"name": "{}", "uid": "uid-{}"}},
                                 "spec": {{"nodeName": "{}", "containers": [{{"name": "c", "image": "i"}}]}}}})",
                                           pod, pod, node));
      REQUIRE(
          store
              ->put(keys::object_key(v1::OBJECT_KIND_POD, "default", pod), obj->SerializeAsString())
              .ok());
    }
    registry = std::move(Registry::start(*store)).value();
  }

  void commit(const UpstreamPlan& plan) {
    for (const auto& [key, value] : plan.writes) {
      if (value)
        stored[key].ParseFromString(*value);
      else
        stored.erase(key);
    }
  }
};

v1::StatusEntry pod_entry(const std::string& name, uint64_t base, bool full, v1::PodPhase phase) {
  v1::StatusEntry e;
  e.set_kind(v1::OBJECT_KIND_POD);
  e.set_namespace_("default");
  e.set_name(name);
  e.set_base_generation(base);
  e.set_full(full);
  e.mutable_pod()->set_phase(phase);
  if (full) e.set_uid("uid-" + name);
  return e;
}

TEST_CASE_METHOD(Fixture, "a delta on the stored generation is merged and bumps the generation") {
  v1::StatusDelta batch;
  batch.set_sequence(1);
  *batch.add_entries() = pod_entry("web", 0, true, v1::POD_PHASE_PENDING);
  auto plan = plan_status_delta("n1", batch, 0, *registry, lookup, 1000);
  REQUIRE(plan.violation.ok());
  commit(plan);
  auto key = keys::status_key(v1::OBJECT_KIND_POD, "default", "web");
  CHECK(stored[key].generation() == 1);

  v1::StatusDelta next;
  next.set_sequence(2);
  *next.add_entries() = pod_entry("web", 1, false, v1::POD_PHASE_RUNNING);
  plan = plan_status_delta("n1", next, 1, *registry, lookup, 2000);
  REQUIRE(plan.violation.ok());
  CHECK(plan.ack.resync_size() == 0);
  commit(plan);
  CHECK(stored[key].generation() == 2);
  CHECK(stored[key].pod().phase() == v1::POD_PHASE_RUNNING);
  CHECK(stored[key].uid() == "uid-web");
}

TEST_CASE_METHOD(Fixture,
                 "a delta on another generation asks for a full resync and changes nothing") {
  auto key = keys::status_key(v1::OBJECT_KIND_POD, "default", "web");
  stored[key].set_generation(5);
  stored[key].mutable_pod()->set_phase(v1::POD_PHASE_PENDING);
  v1::StatusDelta batch;
  batch.set_sequence(3);
  *batch.add_entries() = pod_entry("web", 4, false, v1::POD_PHASE_RUNNING);
  auto plan = plan_status_delta("n1", batch, 2, *registry, lookup, 0);
  REQUIRE(plan.violation.ok());
  REQUIRE(plan.ack.resync_size() == 1);
  CHECK(plan.ack.resync(0).generation() == 5);
  CHECK(plan.writes.empty());
  // The full status the edge sends back is based on the named generation.
  v1::StatusDelta full;
  full.set_sequence(4);
  *full.add_entries() = pod_entry("web", 5, true, v1::POD_PHASE_RUNNING);
  plan = plan_status_delta("n1", full, 3, *registry, lookup, 0);
  commit(plan);
  CHECK(stored[key].generation() == 6);
  CHECK(stored[key].pod().phase() == v1::POD_PHASE_RUNNING);
}

TEST_CASE_METHOD(Fixture, "a node cannot write another node's pod or node status") {
  v1::StatusDelta batch;
  batch.set_sequence(1);
  *batch.add_entries() = pod_entry("db", 0, true, v1::POD_PHASE_RUNNING);  // db is on n2
  auto plan = plan_status_delta("n1", batch, 0, *registry, lookup, 0);
  CHECK(plan.violation.code() == common::Code::kPermissionDenied);
  CHECK_THAT(plan.violation.message(), Catch::Contains("bound to node 'n2'"));
  CHECK(plan.writes.empty());

  v1::StatusDelta node_batch;
  node_batch.set_sequence(1);
  auto* e = node_batch.add_entries();
  e->set_kind(v1::OBJECT_KIND_NODE);
  e->set_name("n2");
  e->set_full(true);
  e->mutable_node()->mutable_capacity()->set_pods(110);
  plan = plan_status_delta("n1", node_batch, 0, *registry, lookup, 0);
  CHECK(plan.violation.code() == common::Code::kPermissionDenied);
}

TEST_CASE_METHOD(Fixture, "a batch already applied is acknowledged again without writing") {
  v1::StatusDelta batch;
  batch.set_sequence(7);
  *batch.add_entries() = pod_entry("web", 0, true, v1::POD_PHASE_RUNNING);
  auto plan = plan_status_delta("n1", batch, 7, *registry, lookup, 0);
  CHECK(plan.duplicate);
  CHECK(plan.writes.empty());
  CHECK(plan.ack.sequence() == 7);
}

TEST_CASE_METHOD(Fixture, "the cloud's unreachable mark survives the edge's status writes") {
  auto key = keys::status_key(v1::OBJECT_KIND_NODE, "", "n1");
  stored[key].set_unreachable(true);
  v1::StatusDelta batch;
  batch.set_sequence(1);
  auto* e = batch.add_entries();
  e->set_kind(v1::OBJECT_KIND_NODE);
  e->set_name("n1");
  e->set_full(true);
  e->mutable_node()->mutable_capacity()->set_pods(110);
  auto plan = plan_status_delta("n1", batch, 0, *registry, lookup, 0);
  commit(plan);
  CHECK(stored[key].unreachable());
  CHECK(stored[key].node().capacity().pods() == 110);
}

}  // namespace
}  // namespace gantry::cloud

namespace gantry::cloud {
namespace {

v1::EdgeEvent edge_event(v1::ObjectKind kind, const std::string& name, const std::string& uid,
                         const std::string& reason = "BackOff") {
  v1::EdgeEvent e;
  e.set_kind(kind);
  e.set_namespace_(kind == v1::OBJECT_KIND_POD ? "default" : "");
  e.set_name(name);
  e.set_uid(uid);
  e.set_container("c");
  e.set_reason(reason);
  e.set_warning(true);
  e.set_message("Back-off restarting failed container c");
  e.set_count(4);
  e.set_first_time(1000);
  e.set_last_time(1060);
  return e;
}

TEST_CASE_METHOD(Fixture, "a node's events about its own pods become kubelet events") {
  v1::StatusDelta batch;
  batch.set_sequence(1);
  *batch.add_events() = edge_event(v1::OBJECT_KIND_POD, "web", "uid-web");
  size_t refused = 9;
  auto records = plan_edge_events("n1", "uid-n1", batch, *registry, &refused);
  CHECK(refused == 0);
  REQUIRE(records.size() == 1);
  const auto& r = records[0];
  CHECK(r.object.kind == "Pod");
  CHECK(r.object.ns == "default");
  CHECK(r.object.name == "web");
  CHECK(r.object.uid == "uid-web");
  CHECK(r.object.field_path == "spec.containers{c}");
  CHECK(r.type == controllers::KubeEventType::kWarning);
  CHECK(r.reason == "BackOff");
  CHECK(r.component == "kubelet");
  CHECK(r.host == "n1");
  CHECK(r.count == 4);
  CHECK(r.first_ms == 1'000'000);
  CHECK(r.last_ms == 1'060'000);
}

TEST_CASE_METHOD(Fixture, "events about other nodes' objects or an earlier pod are dropped") {
  v1::StatusDelta batch;
  batch.set_sequence(1);
  *batch.add_events() = edge_event(v1::OBJECT_KIND_POD, "db", "uid-db");     // bound to n2
  *batch.add_events() = edge_event(v1::OBJECT_KIND_POD, "web", "uid-old");   // another web
  *batch.add_events() = edge_event(v1::OBJECT_KIND_POD, "absent", "uid-x");  // not in the cloud
  *batch.add_events() = edge_event(v1::OBJECT_KIND_NODE, "n2", "");          // another node
  *batch.add_events() = edge_event(v1::OBJECT_KIND_POD, "web", "uid-web", "Bad Reason\n");
  *batch.add_events() = edge_event(v1::OBJECT_KIND_NODE, "n1", "");  // itself: fine
  batch.set_events_dropped(12);
  size_t refused = 0;
  auto records = plan_edge_events("n1", "uid-n1", batch, *registry, &refused);
  CHECK(refused == 5);
  REQUIRE(records.size() == 2);
  CHECK(records[0].object.kind == "Node");
  CHECK(records[0].object.name == "n1");
  CHECK(records[0].object.uid == "uid-n1");
  CHECK(records[1].reason == "EventsDropped");
  CHECK_THAT(records[1].message, Catch::Contains("dropped 12 events"));
}

}  // namespace
}  // namespace gantry::cloud
