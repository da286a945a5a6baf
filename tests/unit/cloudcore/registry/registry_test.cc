#include "cloudcore/registry/registry.h"

#include <catch2/catch.hpp>
#include <mutex>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"

namespace gantry::cloud {
namespace {

std::string pod_json(const std::string& name, const std::string& node, const std::string& cm = "") {
  std::string volumes =
      cm.empty()
          ? ""
          : fmt::format(R"(, "volumes": [{{"name": "v", "configMap": {{"name": "{}"}}}}])", cm);
  return fmt::format(R"({{"metadata": {{"name": "{}", "namespace": "default", "uid": "uid-{}"}},
    "spec": {{"nodeName": "{}", "containers": [{{"name": "c", "image": "busybox"}}]{}}}}})",
                     name, name, node, volumes);
}

Revision put_object(Store& store, v1::ObjectKind kind, const std::string& name,
                    const std::string& json) {
  auto stored = decode_object(kind, json);
  REQUIRE(stored.ok());
  auto rev = store.put(keys::object_key(kind, "default", name), stored->SerializeAsString());
  REQUIRE(rev.ok());
  return *rev;
}

struct Recorder : NodeListener {
  std::mutex mu;
  std::vector<NodeChanges> changes;
  void on_node_changes(const NodeChanges& c) override {
    std::lock_guard lock(mu);
    changes.push_back(c);
  }
  size_t count() {
    std::lock_guard lock(mu);
    return changes.size();
  }
};

std::set<std::string> names(const std::vector<ObjectPtr>& objs) {
  std::set<std::string> out;
  for (const auto& o : objs) out.insert(o->name());
  return out;
}

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<Store> store;
  Fixture() {
    RocksStoreOptions opts;
    opts.path = dir.str();
    opts.auto_compact_interval = std::chrono::milliseconds(0);
    auto s = open_rocks_store(opts);
    REQUIRE(s.ok());
    store = std::move(s).value();
  }
};

TEST_CASE_METHOD(
    Fixture,
    "a node's snapshot holds its pods and the configmaps they use, nothing of other nodes") {
  put_object(*store, v1::OBJECT_KIND_CONFIG_MAP, "conf",
             R"({"metadata": {"name": "conf"}, "data": {"a": "1"}})");
  put_object(*store, v1::OBJECT_KIND_POD, "a1", pod_json("a1", "node-a", "conf"));
  put_object(*store, v1::OBJECT_KIND_POD, "b1", pod_json("b1", "node-b"));
  auto registry = Registry::start(*store);
  REQUIRE(registry.ok());
  Recorder rec;
  auto [resume, sub] = (*registry)->subscribe("node-a", 0, &rec);
  CHECK(resume.mode == v1::RESUME_MODE_SNAPSHOT);
  CHECK(names(resume.changes.upserts) == std::set<std::string>{"a1", "conf"});
  CHECK(resume.changes.revision == store->current_revision());
}

TEST_CASE_METHOD(Fixture, "live changes reach the subscribed node only, deletions included") {
  auto registry = Registry::start(*store);
  REQUIRE(registry.ok());
  Recorder a, b;
  auto [ra, sa] = (*registry)->subscribe("node-a", 0, &a);
  auto [rb, sb] = (*registry)->subscribe("node-b", 0, &b);
  put_object(*store, v1::OBJECT_KIND_POD, "a1", pod_json("a1", "node-a"));
  REQUIRE(test::eventually([&] { return a.count() == 1; }));
  auto rev = store->remove(keys::object_key(v1::OBJECT_KIND_POD, "default", "a1"));
  REQUIRE(rev.ok());
  REQUIRE(test::eventually([&] { return a.count() == 2; }));
  std::lock_guard lock(a.mu);
  CHECK(a.changes[0].upserts.size() == 1);
  CHECK(a.changes[1].deletes.size() == 1);
  CHECK(a.changes[1].revision == *rev);
  CHECK(b.count() == 0);
}

TEST_CASE_METHOD(Fixture,
                 "an incremental resume carries only what changed since the node's revision") {
  for (int i = 0; i < 5; ++i)
    put_object(*store, v1::OBJECT_KIND_POD, fmt::format("p{}", i),
               pod_json(fmt::format("p{}", i), "n"));
  Revision seen = store->current_revision();
  put_object(*store, v1::OBJECT_KIND_POD, "p1", pod_json("p1", "n"));
  REQUIRE(store->remove(keys::object_key(v1::OBJECT_KIND_POD, "default", "p2")).ok());
  put_object(*store, v1::OBJECT_KIND_POD, "p9", pod_json("p9", "n"));
  // Restart the registry: the deletion must be rebuilt from the store's history.
  auto registry = Registry::start(*store);
  REQUIRE(registry.ok());
  Recorder rec;
  auto [resume, sub] = (*registry)->subscribe("n", seen, &rec);
  CHECK(resume.mode == v1::RESUME_MODE_INCREMENTAL);
  CHECK(names(resume.changes.upserts) == std::set<std::string>{"p1", "p9"});
  REQUIRE(resume.changes.deletes.size() == 1);
  CHECK(resume.changes.deletes[0].name() == "p2");

  SECTION("after the history is compacted the resume is a snapshot") {
    REQUIRE(store->compact(store->current_revision()).ok());
    Recorder rec2;
    auto [again, sub2] = (*registry)->subscribe("n", seen, &rec2);
    CHECK(again.mode == v1::RESUME_MODE_SNAPSHOT);
    CHECK(names(again.changes.upserts) == std::set<std::string>{"p0", "p1", "p3", "p4", "p9"});
  }
  SECTION("a node ahead of the store gets a snapshot") {
    Recorder rec2;
    auto [again, sub2] = (*registry)->subscribe("n", store->current_revision() + 100, &rec2);
    CHECK(again.mode == v1::RESUME_MODE_SNAPSHOT);
  }
}

TEST_CASE_METHOD(Fixture, "a configmap change goes to every node whose pods use it") {
  put_object(*store, v1::OBJECT_KIND_POD, "a1", pod_json("a1", "node-a", "shared"));
  put_object(*store, v1::OBJECT_KIND_POD, "b1", pod_json("b1", "node-b", "shared"));
  put_object(*store, v1::OBJECT_KIND_POD, "c1", pod_json("c1", "node-c"));
  auto registry = Registry::start(*store);
  REQUIRE(registry.ok());
  Recorder a, b, c;
  auto s1 = (*registry)->subscribe("node-a", 0, &a);
  auto s2 = (*registry)->subscribe("node-b", 0, &b);
  auto s3 = (*registry)->subscribe("node-c", 0, &c);
  put_object(*store, v1::OBJECT_KIND_CONFIG_MAP, "shared",
             R"({"metadata": {"name": "shared"}, "data": {"k": "v"}})");
  REQUIRE(test::eventually([&] { return a.count() == 1 && b.count() == 1; }));
  CHECK(c.count() == 0);
  CHECK((*registry)->pods_on_node("node-a") == 1);
}

}  // namespace
}  // namespace gantry::cloud
