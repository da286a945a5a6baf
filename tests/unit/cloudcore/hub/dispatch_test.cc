#include "cloudcore/hub/dispatch.h"

#include <catch2/catch.hpp>

namespace gantry::cloud {
namespace {

ObjectPtr config(const std::string& name, size_t bytes, Revision rev) {
  auto obj = std::make_shared<v1::Object>();
  obj->set_kind(v1::OBJECT_KIND_CONFIG_MAP);
  obj->set_namespace_("default");
  obj->set_name(name);
  obj->set_revision(rev);
  (*obj->mutable_config_map()->mutable_data())["k"] = std::string(bytes, 'x');
  return obj;
}

TEST_CASE("a snapshot larger than one frame is split, only the last frame ends it") {
  NodeDispatch d(10'000);
  Resume r;
  r.mode = v1::RESUME_MODE_SNAPSHOT;
  r.changes.revision = 42;
  for (int i = 0; i < 10; ++i) r.changes.upserts.push_back(config(fmt::format("c{}", i), 3000, 40));
  auto frames = d.resume(r);
  REQUIRE(frames.size() >= 4);
  size_t objects = 0;
  for (size_t i = 0; i < frames.size(); ++i) {
    const auto& delta = frames[i].object_delta();
    CHECK(delta.snapshot());
    CHECK(delta.revision() == 42);
    CHECK(delta.more() == (i + 1 < frames.size()));
    CHECK(frames[i].ByteSizeLong() <= 10'000);
    objects += delta.upserts_size();
  }
  CHECK(objects == 10);
  CHECK_FALSE(d.caught_up());
  CHECK(d.on_ack(42));
  CHECK(d.caught_up());
}

TEST_CASE("an ack past the last revision sent changes nothing") {
  // Found by fuzz_cloud_frames: such an ack made a node look caught up (its resync slot released,
  // its acked revision recorded) before it had applied anything. An edge ahead of the cloud (a
  // store restored from an older backup) sends one while it buffers the snapshot: ignored, not a
  // reason to close.
  NodeDispatch d(1 << 20);
  Resume snap;
  snap.mode = v1::RESUME_MODE_SNAPSHOT;
  snap.changes.revision = 7;
  REQUIRE(d.resume(snap).size() == 1);
  CHECK_FALSE(d.on_ack(8));
  CHECK(d.acked() == 0);
  CHECK_FALSE(d.caught_up());
  CHECK(d.on_ack(7));
  CHECK(d.caught_up());
  CHECK(d.on_ack(3));  // an old ack again: harmless, the cursor never goes back
  CHECK(d.acked() == 7);
}

TEST_CASE("an empty snapshot is still sent, an empty incremental resume is not") {
  NodeDispatch d(1 << 20);
  Resume snap;
  snap.mode = v1::RESUME_MODE_SNAPSHOT;
  snap.changes.revision = 7;
  CHECK(d.resume(snap).size() == 1);
  NodeDispatch d2(1 << 20);
  Resume inc;
  inc.mode = v1::RESUME_MODE_INCREMENTAL;
  inc.changes.revision = 7;
  CHECK(d2.resume(inc).empty());
  CHECK(d2.caught_up());
}

TEST_CASE("live changes at or below the resume revision are not sent twice") {
  NodeDispatch d(1 << 20);
  Resume r;
  r.mode = v1::RESUME_MODE_INCREMENTAL;
  r.changes.revision = 10;
  r.changes.upserts.push_back(config("a", 10, 9));
  REQUIRE(d.resume(r).size() == 1);
  NodeChanges old;
  old.revision = 10;
  old.upserts.push_back(config("a", 10, 10));
  CHECK(d.live(old).empty());
  NodeChanges next = old;
  next.revision = 11;
  auto frames = d.live(next);
  REQUIRE(frames.size() == 1);
  CHECK_FALSE(frames[0].object_delta().snapshot());
  CHECK(frames[0].object_delta().revision() == 11);
}

TEST_CASE("an object larger than the frame limit is dropped and counted, not sent") {
  NodeDispatch d(4096);
  NodeChanges c;
  c.revision = 3;
  c.upserts.push_back(config("huge", 8000, 3));
  c.upserts.push_back(config("small", 10, 3));
  auto frames = d.live(c);
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].object_delta().upserts_size() == 1);
  CHECK(d.oversized() == 1);
}

}  // namespace
}  // namespace gantry::cloud
