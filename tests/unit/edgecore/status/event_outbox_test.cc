// The edge's event outbox with a manual clock: what a crash-looping pod costs the link, what is
// resent after a lost connection, and what a long offline spell leaves.
#include "edgecore/status/event_outbox.h"

#include <catch2/catch.hpp>

namespace gantry::edge {
namespace {

using namespace std::chrono_literals;

EdgeEventRecord backoff(const std::string& pod = "web") {
  EdgeEventRecord e;
  e.ns = "default";
  e.name = pod;
  e.uid = "uid-" + pod;
  e.container = "main";
  e.reason = "BackOff";
  e.warning = true;
  e.message =
      "Back-off restarting failed container main in pod " + pod + "_default(uid-" + pod + ")";
  return e;
}

EdgeEventRecord with_reason(EdgeEventRecord e, const std::string& reason, bool warning = false) {
  e.reason = reason;
  e.warning = warning;
  e.message = reason + " container main";
  return e;
}

v1::StatusDelta take(EventOutbox& box, uint64_t sequence) {
  v1::StatusDelta d;
  d.set_sequence(sequence);
  box.take(d);
  return d;
}

TEST_CASE("The first occurrence goes at once, repeats wait for the interval and go as a count",
          "[events]") {
  common::ManualClock clock;
  EventOutbox box(clock, {.update_interval = 60s});
  int notified = 0;
  box.set_on_pending([&] { ++notified; });
  box.record(backoff());
  CHECK(notified == 1);
  CHECK(box.has_due());
  auto d = take(box, 1);
  REQUIRE(d.events_size() == 1);
  const auto& e = d.events(0);
  CHECK(e.kind() == v1::OBJECT_KIND_POD);
  CHECK(e.namespace_() == "default");
  CHECK(e.name() == "web");
  CHECK(e.uid() == "uid-web");
  CHECK(e.container() == "main");
  CHECK(e.reason() == "BackOff");
  CHECK(e.warning());
  CHECK(e.count() == 1);
  CHECK(e.first_time() == 1704067200);  // the clock's start, 2024-01-01T00:00:00Z

  // Ten more within the minute: nothing due; the first of them tells the hub when it will be.
  for (int i = 0; i < 10; ++i) {
    clock.advance(5s);
    box.record(backoff());
  }
  CHECK(notified == 2);
  CHECK_FALSE(box.has_due());
  CHECK(take(box, 2).events_size() == 0);
  REQUIRE(box.next_due());
  CHECK(*box.next_due() - clock.steady_now() == 10s);
  clock.advance(10s);
  d = take(box, 2);
  REQUIRE(d.events_size() == 1);
  CHECK(d.events(0).count() == 10);
  CHECK(d.events(0).first_time() == 1704067200 + 5);
  CHECK(d.events(0).last_time() == 1704067200 + 50);
}

TEST_CASE("A crash-looping pod costs the link a few hundred bytes a minute", "[events]") {
  common::ManualClock clock;
  EventOutbox box(clock);  // defaults: one update per minute per (pod, container, reason)
  size_t bytes = 0;
  uint64_t seq = 0;
  // Ten minutes of a container restarting every 10 s, as the kubelet reports it each time.
  auto pod = backoff();
  pod.uid = "3f1c9a52-8d7e-4b6a-9c1f-2e5d7a8b9c0d";  // as long as a real pod uid
  pod.message = "Back-off restarting failed container main in pod web_default(" + pod.uid + ")";
  for (int tick = 0; tick < 60; ++tick) {
    box.record(with_reason(pod, "Pulled"));
    box.record(with_reason(pod, "Created"));
    box.record(with_reason(pod, "Started"));
    box.record(pod);  // BackOff
    auto d = take(box, ++seq);
    if (d.events_size() > 0) bytes += d.ByteSizeLong();
    box.on_ack(seq);
    clock.advance(10s);
  }
  double per_minute = static_cast<double>(bytes) / 10.0;
  // Four entries a minute (~100 bytes each with a pod uid and the kubelet's message), against
  // 24 occurrences: printed for docs/edge.md.
  WARN("bytes per crash-looping pod per minute: " << per_minute);
  CHECK(per_minute < 600);
  CHECK(box.size() == 4);
}

TEST_CASE("Counts of a batch never acknowledged are sent again after the Welcome, once",
          "[events]") {
  common::ManualClock clock;
  EventOutbox box(clock, {.update_interval = 60s});
  box.record(backoff());
  box.record(backoff());
  auto d = take(box, 7);
  REQUIRE(d.events_size() == 1);
  CHECK(d.events(0).count() == 2);
  // The connection dies before the ack; one more occurrence meanwhile.
  box.record(backoff());
  box.on_welcome(6);  // the cloud made batch 6 durable, not 7
  CHECK(box.has_due());
  d = take(box, 8);
  REQUIRE(d.events_size() == 1);
  CHECK(d.events(0).count() == 3);
  box.on_ack(8);
  box.on_welcome(8);
  CHECK_FALSE(box.has_due());

  // Batch 9 was durable although its ack was lost: nothing is counted twice.
  clock.advance(61s);
  box.record(backoff());
  d = take(box, 9);
  REQUIRE(d.events_size() == 1);
  box.on_welcome(9);
  CHECK_FALSE(box.has_due());
}

TEST_CASE("A long offline spell keeps the outbox bounded and says how much was dropped",
          "[events]") {
  common::ManualClock clock;
  EventOutbox box(clock, {.max_entries = 8, .max_batch_events = 64});
  // 20 failing pods, each failing many times while offline.
  for (int round = 0; round < 50; ++round) {
    for (int p = 0; p < 20; ++p) box.record(backoff("pod-" + std::to_string(p)));
    clock.advance(1s);
  }
  CHECK(box.size() == 8);
  CHECK(box.stats().dropped > 0);
  auto d = take(box, 1);
  CHECK(d.events_size() == 8);  // the ones seen last
  CHECK(d.events_dropped() > 0);
  size_t counted = d.events_dropped();
  for (const auto& e : d.events()) counted += e.count();
  CHECK(counted == 20 * 50);
  // The drop count goes once.
  box.on_ack(1);
  CHECK(take(box, 2).events_dropped() == 0);
}

TEST_CASE("Reasons, containers and pods are kept apart", "[events]") {
  common::ManualClock clock;
  EventOutbox box(clock);
  auto e = backoff();
  box.record(e);
  box.record(with_reason(e, "Started"));
  auto other = e;
  other.container = "sidecar";
  box.record(other);
  box.record(backoff("db"));
  auto d = take(box, 1);
  CHECK(d.events_size() == 4);
}

}  // namespace
}  // namespace gantry::edge
