// The pods of deleted nodes: the index alone (a fake clock, no I/O), then the collector against a
// real RocksStore with a manual clock, driven pass by pass.
#include "cloudcore/controllers/node_gc.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"

namespace gantry::cloud::controllers {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using test::eventually;

TEST_CASE(
    "OrphanIndex: a node's pods are due once its node object has been missing for the "
    "quarantine",
    "[controllers][node_gc]") {
  OrphanIndex index;
  common::ManualClock clock;
  auto now = [&] { return clock.steady_now(); };
  index.node_added("a");
  index.node_added("b");
  index.pod_bound("/pods/default/p1", "a", now());
  index.pod_bound("/pods/default/p2", "a", now());
  index.pod_bound("/pods/default/p3", "b", now());
  index.pod_bound("/pods/default/unbound", "", now());
  CHECK(index.due(now(), 40s).empty());
  CHECK_FALSE(index.next_due(40s));

  index.node_removed("a", now());
  CHECK(index.missing_nodes() == 1);
  clock.advance(39s);
  CHECK(index.due(now(), 40s).empty());
  CHECK(index.next_due(40s) == now() + 1s);
  clock.advance(1s);
  CHECK(index.due(now(), 40s) == std::vector<std::string>{"a"});
  CHECK(index.pods_of("a") == std::vector<std::string>{"/pods/default/p1", "/pods/default/p2"});

  // Back within the quarantine: nothing is due.
  index.node_added("a");
  CHECK(index.due(now() + 1h, 40s).empty());

  // A node without pods is not waited on; a pod bound to a name that never had a node is.
  index.node_removed("empty", now());
  CHECK(index.missing_nodes() == 0);
  index.pod_bound("/pods/default/p4", "never", now());
  CHECK(index.missing_nodes() == 1);
  // Its last pod gone (or rebound), the name is forgotten.
  index.pod_bound("/pods/default/p4", "b", now());
  CHECK(index.missing_nodes() == 0);
  CHECK(index.pods_of("b") == std::vector<std::string>{"/pods/default/p3", "/pods/default/p4"});
  index.node_removed("b", now());
  index.pod_removed("/pods/default/p3");
  index.pod_removed("/pods/default/p4");
  CHECK(index.missing_nodes() == 0);
}

class GcFixture {
 public:
  GcFixture() {
    RocksStoreOptions options;
    options.path = (dir_ / "store").string();
    store_ = open_rocks_store(options).value();
  }

  void start() {
    NodeGcOptions options;
    options.run_thread = false;
    gc_ = NodeGc::start(*store_, clock_, options).value();
  }

  void put_node(const std::string& name) {
    json node = {{"kind", "Node"}, {"apiVersion", "v1"}, {"metadata", {{"name", name}}}};
    auto stored = decode_object(v1::OBJECT_KIND_NODE, node.dump());
    REQUIRE(stored.ok());
    REQUIRE(
        store_->put(keys::object_key(v1::OBJECT_KIND_NODE, "", name), stored->SerializeAsString())
            .ok());
  }

  // The node's Ready condition as the hub writes it when the node stops answering.
  void mark_unreachable(const std::string& name) {
    v1::StoredStatus st;
    st.set_generation(1);
    st.set_unreachable(true);
    auto* c = st.mutable_node()->add_conditions();
    c->set_type(v1::NODE_CONDITION_READY);
    c->set_status(v1::CONDITION_STATUS_UNKNOWN);
    REQUIRE(
        store_->put(keys::status_key(v1::OBJECT_KIND_NODE, "", name), st.SerializeAsString()).ok());
  }

  void put_pod(const std::string& name, const std::string& node) {
    json pod = {
        {"kind", "Pod"},
        {"apiVersion", "v1"},
        {"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "u-" + name}}},
        {"spec", {{"nodeName", node}, {"containers", {{{"name", "main"}, {"image", "nginx"}}}}}}};
    auto stored = decode_object(v1::OBJECT_KIND_POD, pod.dump());
    REQUIRE(stored.ok());
    REQUIRE(store_
                ->put(keys::object_key(v1::OBJECT_KIND_POD, "default", name),
                      stored->SerializeAsString())
                .ok());
    v1::StoredStatus st;
    st.set_generation(1);
    st.set_uid("u-" + name);
    st.mutable_pod()->set_phase(v1::POD_PHASE_RUNNING);
    REQUIRE(
        store_->put(keys::status_key(v1::OBJECT_KIND_POD, "default", name), st.SerializeAsString())
            .ok());
  }

  bool pod_exists(const std::string& name) {
    auto kv = store_->get(keys::object_key(v1::OBJECT_KIND_POD, "default", name));
    REQUIRE(kv.ok());
    return kv->has_value();
  }
  bool status_exists(const std::string& name) {
    auto kv = store_->get(keys::status_key(v1::OBJECT_KIND_POD, "default", name));
    REQUIRE(kv.ok());
    return kv->has_value();
  }
  void remove_node(const std::string& name) {
    REQUIRE(store_->remove(keys::object_key(v1::OBJECT_KIND_NODE, "", name)).ok());
  }

  test::TempDir dir_;
  std::unique_ptr<Store> store_;
  common::ManualClock clock_;
  std::unique_ptr<NodeGc> gc_;
};

TEST_CASE_METHOD(
    GcFixture,
    "pods of a deleted node are deleted after the quarantine, while an offline node keeps "
    "its pods however long it is gone",
    "[controllers][node_gc]") {
  put_node("gone");
  put_node("offline");
  put_pod("a1", "gone");
  put_pod("a2", "gone");
  put_pod("b1", "offline");
  start();
  mark_unreachable("offline");
  remove_node("gone");
  REQUIRE(eventually([&] { return gc_->missing_nodes() == 1; }));

  CHECK(gc_->run_once() == 0);
  clock_.advance(39s);
  CHECK(gc_->run_once() == 0);
  CHECK(pod_exists("a1"));
  clock_.advance(1s);
  CHECK(gc_->run_once() == 2);
  CHECK_FALSE(pod_exists("a1"));
  CHECK_FALSE(pod_exists("a2"));
  CHECK_FALSE(status_exists("a1"));
  REQUIRE(eventually([&] { return gc_->missing_nodes() == 0; }));

  // The offline (Ready=Unknown) node keeps its pod for a day and more.
  clock_.advance(24h * 30);
  CHECK(gc_->run_once() == 0);
  CHECK(pod_exists("b1"));
  CHECK(status_exists("b1"));
  CHECK(gc_->stats().pods_deleted == 2);
}

TEST_CASE_METHOD(GcFixture,
                 "a node deleted and back within the quarantine keeps its pods, and a pod found "
                 "rebound is left alone",
                 "[controllers][node_gc]") {
  put_node("n1");
  put_node("n2");
  put_pod("p1", "n1");
  put_pod("p2", "n2");
  start();
  remove_node("n1");
  REQUIRE(eventually([&] { return gc_->missing_nodes() == 1; }));
  clock_.advance(20s);
  put_node("n1");
  REQUIRE(eventually([&] { return gc_->missing_nodes() == 0; }));
  clock_.advance(1h);
  CHECK(gc_->run_once() == 0);
  CHECK(pod_exists("p1"));

  // Level-triggered: what counts is the store when the node is due, not the event that made it so.
  remove_node("n2");
  REQUIRE(eventually([&] { return gc_->missing_nodes() == 1; }));
  clock_.advance(41s);
  put_node("n2");  // back just now: the index may not know yet, the store does
  CHECK(gc_->run_once() == 0);
  CHECK(pod_exists("p2"));
}

TEST_CASE_METHOD(GcFixture, "pods bound to a node name that never existed are collected too",
                 "[controllers][node_gc]") {
  start();
  put_pod("stray", "no-such-node");
  REQUIRE(eventually([&] { return gc_->missing_nodes() == 1; }));
  clock_.advance(40s);
  CHECK(gc_->run_once() == 1);
  CHECK_FALSE(pod_exists("stray"));
}

TEST_CASE_METHOD(GcFixture, "after a restart the quarantine starts again from the load",
                 "[controllers][node_gc]") {
  put_pod("left", "deleted-before-start");
  start();
  CHECK(gc_->missing_nodes() == 1);
  CHECK(gc_->run_once() == 0);
  clock_.advance(40s);
  CHECK(gc_->run_once() == 1);
}

}  // namespace
}  // namespace gantry::cloud::controllers
