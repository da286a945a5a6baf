#include "edgecore/hub/edge_sync.h"

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

namespace gantry::edge {
namespace {

v1::Object pod(const std::string& name, uint64_t revision) {
  v1::Object o;
  o.set_kind(v1::OBJECT_KIND_POD);
  o.set_namespace_("default");
  o.set_name(name);
  o.set_revision(revision);
  o.mutable_pod()->add_containers()->set_image("nginx");
  return o;
}

v1::Frame welcome(v1::ResumeMode mode, uint64_t acked_sequence = 0, bool resend = false) {
  v1::Frame f;
  f.mutable_welcome()->set_heartbeat_interval_seconds(15);
  f.mutable_welcome()->set_resume(mode);
  f.mutable_welcome()->set_acked_sequence(acked_sequence);
  f.mutable_welcome()->set_resend_status(resend);
  return f;
}

v1::Frame delta(uint64_t revision, std::vector<v1::Object> upserts, bool snapshot = false,
                bool more = false) {
  v1::Frame f;
  auto* d = f.mutable_object_delta();
  d->set_revision(revision);
  d->set_snapshot(snapshot);
  d->set_more(more);
  for (auto& o : upserts) *d->add_upserts() = std::move(o);
  return f;
}

v1::Frame status_ack(uint64_t sequence) {
  v1::Frame f;
  f.mutable_status_ack()->set_sequence(sequence);
  return f;
}

v1::PodStatus phase(v1::PodPhase p) {
  v1::PodStatus s;
  s.set_phase(p);
  return s;
}

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<MetaStore> meta;
  std::unique_ptr<StatusTracker> tracker;
  std::unique_ptr<EdgeSync> sync;

  Fixture() { reopen(); }
  void reopen() {
    sync.reset();
    tracker.reset();
    meta.reset();
    meta = std::move(MetaStore::open(dir / "meta")).value();
    tracker = std::move(StatusTracker::load(*meta, {.node_name = "edge-1"})).value();
    sync = std::make_unique<EdgeSync>(*meta, *tracker, EdgeSyncOptions{.edgecore_version = "t"});
  }
  std::vector<v1::Frame> feed(const v1::Frame& frame) {
    auto out = sync->on_frame(frame);
    INFO(out.status().to_string());
    REQUIRE(out.ok());
    return std::move(out).value();
  }
  void connect(v1::ResumeMode mode = v1::RESUME_MODE_INCREMENTAL, uint64_t acked = 0,
               bool resend = false) {
    sync->hello();
    REQUIRE(feed(welcome(mode, acked, resend)).empty());
  }
  std::vector<std::string> cached_names() {
    std::vector<std::string> names;
    auto objects = meta->list_objects();
    REQUIRE(objects.ok());
    for (const auto& o : *objects) names.push_back(o.name());
    return names;
  }
};

TEST_CASE_METHOD(Fixture, "sync: Hello names the applied revision and the acked sequence") {
  connect();
  feed(delta(12, {pod("a", 12)}));
  REQUIRE(tracker->report_pod("default", "a", "u", phase(v1::POD_PHASE_RUNNING)).ok());
  auto batch = sync->next_status_batch();
  REQUIRE(batch);
  feed(status_ack(batch->status_delta().sequence()));
  reopen();
  v1::Frame hello = sync->hello();
  REQUIRE(hello.has_hello());
  CHECK(hello.hello().protocol_version() == 1);
  CHECK(hello.hello().applied_revision() == 12);
  CHECK(hello.hello().acked_sequence() == 1);
  CHECK(hello.hello().edgecore_version() == "t");
}

TEST_CASE_METHOD(Fixture, "sync: an incremental delta is written and acknowledged by revision") {
  connect();
  auto out = feed(delta(5, {pod("a", 4), pod("b", 5)}));
  REQUIRE(out.size() == 1);
  REQUIRE(out[0].has_object_ack());
  CHECK(out[0].object_ack().revision() == 5);
  CHECK(cached_names() == std::vector<std::string>{"a", "b"});
  // A resume frame with more set is applied but does not move the cursor.
  out = feed(delta(9, {pod("c", 9)}, false, true));
  CHECK(out[0].object_ack().revision() == 5);
  CHECK(cached_names().size() == 3);
  CHECK(sync->counters().objects_applied == 3);
}

TEST_CASE_METHOD(Fixture, "sync: a snapshot replaces the cache only when its last frame arrives") {
  connect();
  feed(delta(100, {pod("old", 100)}));
  sync->hello();
  feed(welcome(v1::RESUME_MODE_SNAPSHOT));
  CHECK(feed(delta(40, {pod("x", 30)}, true, true)).empty());
  CHECK(cached_names() == std::vector<std::string>{"old"});
  auto out = feed(delta(40, {pod("y", 40)}, true, false));
  REQUIRE(out.size() == 1);
  CHECK(out[0].object_ack().revision() == 40);  // lower than before: the cloud was rebuilt
  CHECK(cached_names() == std::vector<std::string>{"x", "y"});
  CHECK(meta->applied_revision() == 40);
}

TEST_CASE_METHOD(Fixture, "sync: a connection lost mid-snapshot discards the buffered frames") {
  connect(v1::RESUME_MODE_SNAPSHOT);
  feed(delta(7, {pod("lost", 7)}, true, true));
  sync->on_disconnect();
  connect(v1::RESUME_MODE_SNAPSHOT);
  feed(delta(8, {pod("kept", 8)}, true, false));
  CHECK(cached_names() == std::vector<std::string>{"kept"});
}

TEST_CASE_METHOD(Fixture, "sync: frames out of order or malformed are refused") {
  sync->hello();
  CHECK_FALSE(sync->on_frame(delta(1, {pod("a", 1)})).ok());  // before Welcome
  CHECK_FALSE(sync->on_message("\xff\xff\xff garbage").ok());
  feed(welcome(v1::RESUME_MODE_INCREMENTAL));
  CHECK_FALSE(sync->on_frame(welcome(v1::RESUME_MODE_INCREMENTAL)).ok());
  v1::Frame hello;
  hello.mutable_hello();
  CHECK_FALSE(sync->on_frame(hello).ok());
  CHECK(meta->list_objects()->empty());
}

TEST_CASE_METHOD(Fixture, "sync: status batches wait for Welcome and continue its sequence") {
  REQUIRE(tracker->report_pod("default", "a", "u", phase(v1::POD_PHASE_RUNNING)).ok());
  sync->hello();
  CHECK_FALSE(sync->next_status_batch());
  feed(welcome(v1::RESUME_MODE_INCREMENTAL, 41));
  auto batch = sync->next_status_batch();
  REQUIRE(batch);
  CHECK(batch->status_delta().sequence() == 42);
  CHECK(batch->status_delta().entries(0).full());
  CHECK_FALSE(sync->next_status_batch());  // nothing else to send
  feed(status_ack(42));
  REQUIRE(tracker->report_pod("default", "a", "u", phase(v1::POD_PHASE_FAILED)).ok());
  auto next = sync->next_status_batch();
  REQUIRE(next);
  CHECK(next->status_delta().sequence() == 43);
  CHECK_FALSE(next->status_delta().entries(0).full());
  CHECK(next->status_delta().entries(0).base_generation() == 1);
}

TEST_CASE_METHOD(Fixture, "sync: a resync in the StatusAck makes the next entry full") {
  connect();
  REQUIRE(tracker->report_pod("default", "a", "u", phase(v1::POD_PHASE_RUNNING)).ok());
  REQUIRE(sync->next_status_batch());
  feed(status_ack(1));
  REQUIRE(tracker->report_pod("default", "a", "u", phase(v1::POD_PHASE_FAILED)).ok());
  auto batch = sync->next_status_batch();
  REQUIRE(batch);
  v1::Frame ack = status_ack(batch->status_delta().sequence());
  auto* r = ack.mutable_status_ack()->add_resync();
  r->set_kind(v1::OBJECT_KIND_POD);
  r->set_namespace_("default");
  r->set_name("a");
  r->set_generation(9);
  feed(ack);
  auto full = sync->next_status_batch();
  REQUIRE(full);
  CHECK(full->status_delta().entries(0).full());
  CHECK(full->status_delta().entries(0).base_generation() == 9);
  CHECK(sync->counters().resyncs == 1);
}

TEST_CASE_METHOD(Fixture, "sync: batches acked in a lost ack count as acked on the next Welcome") {
  connect();
  REQUIRE(tracker->report_pod("default", "a", "u", phase(v1::POD_PHASE_RUNNING)).ok());
  auto batch = sync->next_status_batch();
  REQUIRE(batch);
  sync->on_disconnect();
  connect(v1::RESUME_MODE_INCREMENTAL, batch->status_delta().sequence());
  CHECK_FALSE(sync->next_status_batch());  // nothing to resend
  REQUIRE(tracker->report_pod("default", "a", "u", phase(v1::POD_PHASE_FAILED)).ok());
  auto next = sync->next_status_batch();
  REQUIRE(next);
  CHECK_FALSE(next->status_delta().entries(0).full());
  CHECK(next->status_delta().sequence() == batch->status_delta().sequence() + 1);
}

TEST_CASE_METHOD(Fixture, "sync: unacknowledged batches from a lost connection are resent") {
  connect();
  REQUIRE(tracker->report_pod("default", "a", "u", phase(v1::POD_PHASE_RUNNING)).ok());
  REQUIRE(sync->next_status_batch());
  sync->on_disconnect();
  connect(v1::RESUME_MODE_INCREMENTAL, 0);
  auto again = sync->next_status_batch();
  REQUIRE(again);
  CHECK(again->status_delta().sequence() == 2);
  CHECK(again->status_delta().entries(0).full());
}

TEST_CASE_METHOD(Fixture, "sync: the number of unacknowledged batches is bounded") {
  connect();
  for (int i = 0; i < 10; ++i) {
    REQUIRE(
        tracker->report_pod("default", "p" + std::to_string(i), "u", phase(v1::POD_PHASE_RUNNING))
            .ok());
    (void)sync->next_status_batch();
  }
  CHECK(sync->last_sequence() == 4);
  feed(status_ack(4));
  auto batch = sync->next_status_batch();
  REQUIRE(batch);
  CHECK(batch->status_delta().entries_size() == 6);
}

TEST_CASE_METHOD(Fixture, "sync: a log stream request is refused when no stream handler is set") {
  connect();
  v1::Frame open;
  open.mutable_stream_open()->set_id(3);
  auto out = feed(open);
  REQUIRE(out.size() == 1);
  REQUIRE(out[0].has_stream_close());
  CHECK(out[0].stream_close().id() == 3);
  CHECK(out[0].stream_close().code() == 501);
}

// Records what EdgeSync hands it and answers every frame with a StreamWindow echo.
struct RecordingStreams : StreamHandler {
  std::vector<v1::Frame> seen;
  int disconnects = 0;
  std::vector<v1::Frame> on_stream_frame(const v1::Frame& frame) override {
    seen.push_back(frame);
    v1::Frame reply;
    reply.mutable_stream_window()->set_id(static_cast<uint32_t>(seen.size()));
    return {reply};
  }
  std::vector<v1::Frame> poll() override { return {}; }
  bool wants_poll() const override { return false; }
  std::chrono::milliseconds poll_interval() const override { return std::chrono::milliseconds(1); }
  void on_disconnect() override { ++disconnects; }
};

TEST_CASE_METHOD(Fixture,
                 "sync: stream frames go to the stream handler, which hears of disconnects") {
  RecordingStreams streams;
  sync = std::make_unique<EdgeSync>(*meta, *tracker, EdgeSyncOptions{.streams = &streams});
  connect();
  int disconnects = streams.disconnects;
  v1::Frame open;
  open.mutable_stream_open()->set_id(3);
  open.mutable_stream_open()->mutable_logs()->set_pod("p");
  v1::Frame window;
  window.mutable_stream_window()->set_id(3);
  v1::Frame close;
  close.mutable_stream_close()->set_id(3);
  v1::Frame data;
  data.mutable_stream_data()->set_id(3);
  for (const auto* f : {&open, &window, &data, &close}) {
    auto out = feed(*f);
    REQUIRE(out.size() == 1);
    CHECK(out[0].stream_window().id() == streams.seen.size());
  }
  REQUIRE(streams.seen.size() == 4);
  CHECK(streams.seen[0].stream_open().logs().pod() == "p");
  CHECK(streams.seen[3].has_stream_close());
  CHECK(sync->counters().stream_frames == 4);
  CHECK(sync->counters().streams_refused == 0);
  sync->on_disconnect();
  CHECK(streams.disconnects == disconnects + 1);
}

}  // namespace
}  // namespace gantry::edge
