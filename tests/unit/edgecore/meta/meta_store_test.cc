#include "edgecore/meta/meta_store.h"

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

namespace gantry::edge {
namespace {

v1::Object pod(const std::string& name, uint64_t revision, const std::string& image = "nginx") {
  v1::Object o;
  o.set_kind(v1::OBJECT_KIND_POD);
  o.set_namespace_("default");
  o.set_name(name);
  o.set_uid("uid-" + name);
  o.set_revision(revision);
  o.mutable_pod()->add_containers()->set_image(image);
  return o;
}

v1::ObjectRef pod_ref(const std::string& name) {
  v1::ObjectRef r;
  r.set_kind(v1::OBJECT_KIND_POD);
  r.set_namespace_("default");
  r.set_name(name);
  return r;
}

std::unique_ptr<MetaStore> open_store(const test::TempDir& dir) {
  auto store = MetaStore::open(dir / "meta");
  REQUIRE(store.ok());
  return std::move(store).value();
}

TEST_CASE("meta: objects and the applied revision survive a reopen together") {
  test::TempDir dir;
  {
    auto store = open_store(dir);
    CHECK(store->applied_revision() == 0);
    auto r = store->apply_delta({pod("a", 5), pod("b", 7)}, {}, 7, true);
    REQUIRE(r.ok());
    CHECK(r->upserted == 2);
    CHECK(r->applied_revision == 7);
  }
  auto store = open_store(dir);
  CHECK(store->applied_revision() == 7);
  auto objects = store->list_objects(v1::OBJECT_KIND_POD);
  REQUIRE(objects.ok());
  REQUIRE(objects->size() == 2);
  CHECK(objects->at(0).name() == "a");
  auto b = store->get_object(v1::OBJECT_KIND_POD, "default", "b");
  REQUIRE(b.ok());
  REQUIRE(b->has_value());
  CHECK((*b)->revision() == 7);
}

TEST_CASE("meta: an upsert older than or equal to the cached copy is dropped") {
  test::TempDir dir;
  auto store = open_store(dir);
  REQUIRE(store->apply_delta({pod("a", 10, "new")}, {}, 10, true).ok());
  auto r = store->apply_delta({pod("a", 9, "old"), pod("a", 10, "same")}, {}, 11, true);
  REQUIRE(r.ok());
  CHECK(r->dropped == 2);
  CHECK(r->upserted == 0);
  auto a = store->get_object(v1::OBJECT_KIND_POD, "default", "a");
  REQUIRE(a.ok());
  CHECK((*a)->pod().containers(0).image() == "new");
  CHECK(store->applied_revision() == 11);
}

TEST_CASE("meta: a delete older than the cached copy is ignored, a newer one removes it") {
  test::TempDir dir;
  auto store = open_store(dir);
  REQUIRE(store->apply_delta({pod("a", 10)}, {}, 10, true).ok());
  auto r = store->apply_delta({}, {pod_ref("a")}, 9, true);
  REQUIRE(r.ok());
  CHECK(r->deleted == 0);
  CHECK(store->get_object(v1::OBJECT_KIND_POD, "default", "a")->has_value());
  r = store->apply_delta({}, {pod_ref("a")}, 12, true);
  REQUIRE(r.ok());
  CHECK(r->deleted == 1);
  CHECK_FALSE(store->get_object(v1::OBJECT_KIND_POD, "default", "a")->has_value());
}

TEST_CASE("meta: a batch with more set is applied but does not move the revision") {
  test::TempDir dir;
  auto store = open_store(dir);
  REQUIRE(store->apply_delta({pod("a", 3)}, {}, 3, false).ok());
  CHECK(store->applied_revision() == 0);
  CHECK(store->get_object(v1::OBJECT_KIND_POD, "default", "a")->has_value());
  REQUIRE(store->apply_delta({}, {}, 4, true).ok());
  CHECK(store->applied_revision() == 4);
}

TEST_CASE("meta: replace_all leaves exactly the snapshot and may lower the revision") {
  test::TempDir dir;
  auto store = open_store(dir);
  REQUIRE(store->apply_delta({pod("a", 50), pod("b", 60)}, {}, 60, true).ok());
  REQUIRE(store->replace_all({pod("b", 3), pod("c", 4)}, 4).ok());
  CHECK(store->applied_revision() == 4);
  auto objects = store->list_objects();
  REQUIRE(objects.ok());
  REQUIRE(objects->size() == 2);
  CHECK(objects->at(0).name() == "b");
  CHECK(objects->at(0).revision() == 3);
  CHECK(objects->at(1).name() == "c");
}

TEST_CASE("meta: observers hear which objects changed until their handle is dropped") {
  test::TempDir dir;
  auto store = open_store(dir);
  std::vector<ObjectChange> seen;
  auto handle = store->add_observer([&](const ObjectChange& c) { seen.push_back(c); });
  REQUIRE(store->apply_delta({pod("a", 1), pod("b", 2)}, {}, 2, true).ok());
  REQUIRE(seen.size() == 1);
  CHECK(seen[0].changed.size() == 2);
  CHECK_FALSE(seen[0].replaced_all);
  // Nothing changed: no notification.
  REQUIRE(store->apply_delta({pod("a", 1)}, {}, 2, true).ok());
  CHECK(seen.size() == 1);
  REQUIRE(store->replace_all({pod("c", 3)}, 3).ok());
  REQUIRE(seen.size() == 2);
  CHECK(seen[1].replaced_all);
  CHECK(seen[1].changed.size() == 3);  // c added, a and b removed
  handle.reset();
  REQUIRE(store->apply_delta({pod("d", 4)}, {}, 4, true).ok());
  CHECK(seen.size() == 2);
}

TEST_CASE("meta: acked statuses, the outbox and the acked sequence persist") {
  test::TempDir dir;
  {
    auto store = open_store(dir);
    v1::StatusEntry acked;
    acked.set_kind(v1::OBJECT_KIND_POD);
    acked.set_namespace_("default");
    acked.set_name("web");
    acked.set_base_generation(3);
    acked.mutable_pod()->set_phase(v1::POD_PHASE_RUNNING);
    v1::StatusEntry latest = acked;
    latest.mutable_pod()->set_phase(v1::POD_PHASE_FAILED);
    StatusWrites writes;
    writes.put_acked(acked);
    writes.put_outbox(latest);
    writes.set_acked_sequence(42);
    REQUIRE(store->write_status(writes).ok());
    StatusWrites more;
    more.delete_outbox(object_key(v1::OBJECT_KIND_POD, "default", "web"));
    REQUIRE(store->write_status(more).ok());
    REQUIRE(store->write_status(writes).ok());
  }
  auto store = open_store(dir);
  CHECK(store->acked_sequence() == 42);
  auto acked = store->list_acked();
  REQUIRE(acked.ok());
  REQUIRE(acked->size() == 1);
  CHECK(acked->at(0).base_generation() == 3);
  auto outbox = store->list_outbox();
  REQUIRE(outbox.ok());
  REQUIRE(outbox->size() == 1);
  CHECK(outbox->at(0).pod().phase() == v1::POD_PHASE_FAILED);
}

TEST_CASE("meta: pod records are stored opaquely per key") {
  test::TempDir dir;
  auto store = open_store(dir);
  REQUIRE(store->put_pod_record("default/web", std::string("\0\1x", 3)).ok());
  REQUIRE(store->put_pod_record("default/db", "y").ok());
  auto web = store->get_pod_record("default/web");
  REQUIRE(web.ok());
  CHECK(**web == std::string("\0\1x", 3));
  REQUIRE(store->delete_pod_record("default/db").ok());
  auto all = store->list_pod_records();
  REQUIRE(all.ok());
  CHECK(all->size() == 1);
  CHECK_FALSE(store->get_pod_record("default/db")->has_value());
}

}  // namespace
}  // namespace gantry::edge
