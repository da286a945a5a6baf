#include "edgecore/status/status_tracker.h"

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

namespace gantry::edge {
namespace {

v1::PodStatus pod_status(v1::PodPhase phase, int restarts = 0) {
  v1::PodStatus s;
  s.set_phase(phase);
  s.set_pod_ip("10.0.0.9");
  auto* c = s.add_containers();
  c->set_name("app");
  c->set_restart_count(restarts);
  c->set_ready(phase == v1::POD_PHASE_RUNNING);
  return s;
}

v1::ResyncRequest resync(const std::string& name, uint64_t generation) {
  v1::ResyncRequest r;
  r.set_kind(v1::OBJECT_KIND_POD);
  r.set_namespace_("default");
  r.set_name(name);
  r.set_generation(generation);
  return r;
}

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<MetaStore> meta;
  std::unique_ptr<StatusTracker> tracker;

  Fixture() { reopen(); }
  void reopen() {
    tracker.reset();
    meta.reset();
    auto m = MetaStore::open(dir / "meta");
    REQUIRE(m.ok());
    meta = std::move(m).value();
    auto t = StatusTracker::load(*meta, {.node_name = "edge-1"});
    REQUIRE(t.ok());
    tracker = std::move(t).value();
  }
  void report(const std::string& name, v1::PodPhase phase, int restarts = 0) {
    REQUIRE(tracker->report_pod("default", name, "uid-" + name, pod_status(phase, restarts)).ok());
  }
};

TEST_CASE_METHOD(Fixture, "tracker: ten reports while offline produce one entry") {
  for (int i = 0; i < 10; ++i) report("web", v1::POD_PHASE_RUNNING, i);
  CHECK(tracker->outbox_size() == 1);
  auto batch = tracker->take_batch(1);
  REQUIRE(batch);
  REQUIRE(batch->entries_size() == 1);
  CHECK(batch->entries(0).pod().containers(0).restart_count() == 9);
}

TEST_CASE_METHOD(Fixture, "tracker: the first report is full, the next one a delta on base+1") {
  report("web", v1::POD_PHASE_PENDING);
  auto first = tracker->take_batch(1);
  REQUIRE(first);
  const auto& e = first->entries(0);
  CHECK(e.full());
  CHECK(e.uid() == "uid-web");
  CHECK(e.base_generation() == 0);
  REQUIRE(tracker->on_ack(1, {}).ok());
  CHECK(tracker->outbox_size() == 0);

  report("web", v1::POD_PHASE_RUNNING);
  auto second = tracker->take_batch(2);
  REQUIRE(second);
  const auto& d = second->entries(0);
  CHECK_FALSE(d.full());
  CHECK(d.base_generation() == 1);
  CHECK(d.pod().phase() == v1::POD_PHASE_RUNNING);
  CHECK_FALSE(d.pod().has_pod_ip());
  CHECK(meta->acked_sequence() == 1);
}

TEST_CASE_METHOD(Fixture, "tracker: a report equal to the acked status sends nothing") {
  report("web", v1::POD_PHASE_RUNNING);
  REQUIRE(tracker->take_batch(1));
  REQUIRE(tracker->on_ack(1, {}).ok());
  report("web", v1::POD_PHASE_RUNNING);
  CHECK_FALSE(tracker->has_pending());
  CHECK_FALSE(tracker->take_batch(2));
}

TEST_CASE_METHOD(Fixture,
                 "tracker: one entry per object in flight, later changes wait for the ack") {
  report("web", v1::POD_PHASE_PENDING);
  REQUIRE(tracker->take_batch(1));
  report("web", v1::POD_PHASE_RUNNING);
  CHECK_FALSE(tracker->take_batch(2));
  CHECK(tracker->in_flight_count() == 1);
  REQUIRE(tracker->on_ack(1, {}).ok());
  auto next = tracker->take_batch(2);
  REQUIRE(next);
  CHECK_FALSE(next->entries(0).full());
  CHECK(next->entries(0).pod().phase() == v1::POD_PHASE_RUNNING);
  CHECK(next->entries(0).base_generation() == 1);
}

TEST_CASE_METHOD(Fixture, "tracker: a resync makes the next send full on the named generation") {
  report("web", v1::POD_PHASE_PENDING);
  REQUIRE(tracker->take_batch(1));
  REQUIRE(tracker->on_ack(1, {}).ok());
  report("web", v1::POD_PHASE_RUNNING);
  REQUIRE(tracker->take_batch(2));
  REQUIRE(tracker->on_ack(2, {resync("web", 7)}).ok());
  auto next = tracker->take_batch(3);
  REQUIRE(next);
  CHECK(next->entries(0).full());
  CHECK(next->entries(0).base_generation() == 7);
  CHECK(next->entries(0).pod().phase() == v1::POD_PHASE_RUNNING);
  REQUIRE(tracker->on_ack(3, {}).ok());
  CHECK(tracker->outbox_size() == 0);
}

TEST_CASE_METHOD(Fixture,
                 "tracker: Welcome settles in-flight batches it names and resends others") {
  report("a", v1::POD_PHASE_RUNNING);
  REQUIRE(tracker->take_batch(1));
  report("b", v1::POD_PHASE_RUNNING);
  REQUIRE(tracker->take_batch(2));
  // The connection dropped; the cloud made batch 1 durable but not batch 2.
  REQUIRE(tracker->on_welcome(1, false).ok());
  CHECK(tracker->in_flight_count() == 0);
  auto next = tracker->take_batch(3);
  REQUIRE(next);
  REQUIRE(next->entries_size() == 1);
  CHECK(next->entries(0).name() == "b");
  CHECK(next->entries(0).full());
  report("a", v1::POD_PHASE_FAILED);
  auto a = tracker->take_batch(4);
  REQUIRE(a);
  CHECK_FALSE(a->entries(0).full());
  CHECK(a->entries(0).base_generation() == 1);
}

TEST_CASE_METHOD(Fixture,
                 "tracker: resend_status sends every status in full, even unchanged ones") {
  report("a", v1::POD_PHASE_RUNNING);
  REQUIRE(tracker->report_node(v1::NodeStatus()).ok());
  REQUIRE(tracker->take_batch(1));
  REQUIRE(tracker->on_ack(1, {}).ok());
  CHECK(tracker->outbox_size() == 0);
  REQUIRE(tracker->on_welcome(1, true).ok());
  auto next = tracker->take_batch(2);
  REQUIRE(next);
  REQUIRE(next->entries_size() == 2);
  for (const auto& e : next->entries()) {
    CHECK(e.full());
    CHECK(e.base_generation() == 0);
  }
}

TEST_CASE_METHOD(Fixture, "tracker: a restarted edge still sends deltas against the acked status") {
  report("web", v1::POD_PHASE_PENDING);
  REQUIRE(tracker->take_batch(1));
  REQUIRE(tracker->on_ack(1, {}).ok());
  report("web", v1::POD_PHASE_RUNNING);  // in the outbox, not yet sent
  reopen();
  CHECK(meta->acked_sequence() == 1);
  auto next = tracker->take_batch(2);
  REQUIRE(next);
  CHECK_FALSE(next->entries(0).full());
  CHECK(next->entries(0).base_generation() == 1);
  CHECK(next->entries(0).pod().phase() == v1::POD_PHASE_RUNNING);
}

TEST_CASE_METHOD(Fixture,
                 "tracker: a deleted pod is reported once with deleted set, then forgotten") {
  report("web", v1::POD_PHASE_RUNNING);
  REQUIRE(tracker->take_batch(1));
  REQUIRE(tracker->on_ack(1, {}).ok());
  REQUIRE(tracker->pod_deleted("default", "web").ok());
  auto next = tracker->take_batch(2);
  REQUIRE(next);
  CHECK(next->entries(0).deleted());
  CHECK_FALSE(next->entries(0).full());
  REQUIRE(tracker->on_ack(2, {}).ok());
  CHECK(tracker->outbox_size() == 0);
  reopen();
  CHECK(tracker->outbox_size() == 0);
  auto acked = meta->list_acked();
  REQUIRE(acked.ok());
  CHECK(acked->empty());
}

TEST_CASE_METHOD(Fixture, "tracker: a batch stays under the byte bound and the rest follows") {
  auto t = StatusTracker::load(*meta, {.node_name = "edge-1", .max_batch_bytes = 1024});
  REQUIRE(t.ok());
  tracker = std::move(t).value();
  for (int i = 0; i < 50; ++i) report("pod-" + std::to_string(i), v1::POD_PHASE_RUNNING);
  size_t sent = 0;
  uint64_t sequence = 0;
  while (auto batch = tracker->take_batch(++sequence)) {
    CHECK(batch->ByteSizeLong() <= 1024);
    sent += batch->entries_size();
  }
  CHECK(sent == 50);
  CHECK(sequence > 2);
}

TEST_CASE_METHOD(Fixture, "tracker: the pending callback fires when a report leaves work") {
  int calls = 0;
  tracker->set_on_pending([&] { ++calls; });
  report("web", v1::POD_PHASE_RUNNING);
  CHECK(calls == 1);
  report("web", v1::POD_PHASE_RUNNING);  // unchanged
  CHECK(calls == 1);
}

}  // namespace
}  // namespace gantry::edge
