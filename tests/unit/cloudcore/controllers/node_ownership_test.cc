// Node ownership records (node_ownership.h) and the leader's node lifecycle (node_lifecycle.h)
// between replicas in one process: LocalLeases on a RocksStore, a ManualClock, step()/sweep()
// driven by the test.
#include "cloudcore/controllers/node_ownership.h"

#include <catch2/catch.hpp>

#include "cloudcore/controllers/leader.h"
#include "cloudcore/controllers/node_lifecycle.h"
#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/registry.h"
#include "cloudcore/store/lease.h"
#include "cloudcore/store/rocks_store.h"
#include "gantry/v1/objects.pb.h"
#include "tests/support/test_support.h"

namespace gantry::cloud::controllers {
namespace {

using namespace std::chrono_literals;

struct Fixture {
  test::TempDir dir;
  common::ManualClock clock;
  std::unique_ptr<Store> store;
  std::unique_ptr<LocalLeases> leases;

  Fixture() {
    RocksStoreOptions o;
    o.path = (dir / "store").string();
    auto s = open_rocks_store(o);
    REQUIRE(s.ok());
    store = std::move(s).value();
    auto l = LocalLeases::open(*store, clock, {std::string(kCoordinationPrefix)});
    REQUIRE(l.ok());
    leases = std::move(l).value();
  }

  std::unique_ptr<NodeOwnership> replica(const std::string& name,
                                         std::vector<std::string>* recorded = nullptr) {
    NodeOwnershipOptions o;
    o.replica = name;
    o.ttl = 15s;
    o.retry_interval = 1s;
    if (recorded) o.on_recorded = [recorded](const std::string& n) { recorded->push_back(n); };
    return std::make_unique<NodeOwnership>(*leases, *store, clock, o);
  }

  std::string owner(const std::string& node) {
    auto kv = store->get(node_ownership_key(node));
    REQUIRE(kv.ok());
    return kv->has_value() ? node_owner((*kv)->value) : "";
  }

  void advance(std::chrono::seconds d) {
    clock.advance(d);
    leases->expire();
  }

  void add_node(const std::string& name) {
    v1::StoredObject stored;
    stored.set_json(R"({"apiVersion":"v1","kind":"Node","metadata":{"name":")" + name +
                    R"(","uid":"uid-)" + name + R"("}})");
    stored.mutable_edge()->set_kind(v1::OBJECT_KIND_NODE);
    stored.mutable_edge()->set_name(name);
    REQUIRE(store->put(keys::object_key(v1::OBJECT_KIND_NODE, "", name), stored.SerializeAsString())
                .ok());
  }

  std::optional<v1::StoredStatus> status(const std::string& node) {
    auto kv = store->get(keys::status_key(v1::OBJECT_KIND_NODE, "", node));
    REQUIRE(kv.ok());
    if (!kv->has_value()) return std::nullopt;
    v1::StoredStatus st;
    REQUIRE(st.ParseFromString((*kv)->value));
    return st;
  }
};

TEST_CASE("a replica records the nodes it holds and removes only its own records") {
  Fixture f;
  std::vector<std::string> recorded;
  auto a = f.replica("a", &recorded);
  auto b = f.replica("b");
  a->held("n1");
  a->held("n2");
  a->step();
  CHECK(f.owner("n1") == "a");
  CHECK(f.owner("n2") == "a");
  CHECK(a->recorded("n1"));
  CHECK(recorded == std::vector<std::string>{"n1", "n2"});
  CHECK(a->held_count() == 2);

  // n1 moves to b (reconnected there before a noticed its session was gone).
  b->held("n1");
  b->step();
  CHECK(f.owner("n1") == "b");
  a->released("n1");
  a->step();
  CHECK(f.owner("n1") == "b");  // a's release does not remove b's record
  a->released("n2");
  a->step();
  CHECK(f.owner("n2") == "");
  CHECK(a->held_count() == 0);

  // A held-then-released node before any write leaves nothing behind.
  a->held("n3");
  a->released("n3");
  a->step();
  CHECK(f.owner("n3") == "");
}

TEST_CASE("the records of a replica that stops renewing go with its lease, and come back") {
  Fixture f;
  auto a = f.replica("a");
  a->held("n1");
  a->step();
  REQUIRE(f.owner("n1") == "a");
  // Renewed: still there after several TTLs.
  for (int i = 0; i < 12; ++i) {
    f.advance(5s);
    a->step();
  }
  CHECK(f.owner("n1") == "a");
  // a hangs past the TTL: the records go.
  f.advance(16s);
  CHECK(f.owner("n1") == "");
  // a wakes: a new lease, its nodes written again.
  a->step();
  f.advance(1s);
  a->step();
  CHECK(f.owner("n1") == "a");
  CHECK(a->stats().leases_granted == 2);
  // stop() revokes: the records go at once.
  a->stop();
  CHECK(f.owner("n1") == "");
}

struct Leader {
  std::unique_ptr<LeaderElector> elector;
  explicit Leader(Fixture& f) {
    LeaderOptions o;
    o.identity = "leader";
    o.ttl = 15s;
    elector = std::make_unique<LeaderElector>(*f.leases, *f.store, f.clock, o);
    elector->step();
    REQUIRE(elector->leader());
  }
  // Keeps the leader's lease renewed while time passes.
  void advance(Fixture& f, std::chrono::seconds d) {
    for (auto t = 0s; t < d; t += 1s) {
      f.advance(1s);
      elector->step();
    }
  }
};

TEST_CASE("the leader marks a node Unknown only when no replica has held it for the timeout") {
  Fixture f;
  auto registry = Registry::start(*f.store);
  REQUIRE(registry.ok());
  for (const char* n : {"n1", "n2", "n3"}) f.add_node(n);
  REQUIRE(test::eventually([&] { return (*registry)->node_count() == 3; }));
  Leader leader(f);
  auto a = f.replica("a");
  auto b = f.replica("b");
  a->held("n1");
  a->step();
  b->held("n3");
  b->step();
  std::vector<EventRecord> events;
  NodeLifecycleOptions o;
  o.node_timeout = 40s;
  o.sweep_interval = 0ms;  // the test runs the sweeps
  o.events = [&](EventRecord e) { events.push_back(std::move(e)); };
  auto lifecycle =
      NodeLifecycle::start(*f.store, *f.leases, **registry, *leader.elector, f.clock, o);
  REQUIRE(lifecycle.ok());
  auto& lc = **lifecycle;
  // Time passes in 1 s steps with every replica renewing; before each sweep the lifecycle's
  // watch has caught up with the records in the store.
  auto tick = [&](std::chrono::seconds d) {
    for (auto t = 0s; t < d; t += 1s) {
      f.advance(1s);
      leader.elector->step();
      a->step();
      if (b) b->step();
      for (const char* n : {"n1", "n2", "n3"}) {
        const bool recorded = !f.owner(n).empty();
        REQUIRE(test::eventually([&] { return lc.held(n) == recorded; }));
      }
      lc.sweep();
    }
  };
  // Every node gets its full timeout from the leader's start.
  tick(39s);
  CHECK_FALSE(f.status("n2").has_value());
  tick(2s);
  // n2: held by nobody since the leader started -> Unknown; n1 and n3 are held.
  auto n2 = f.status("n2");
  REQUIRE(n2.has_value());
  CHECK(n2->unreachable());
  CHECK_FALSE(f.status("n1").has_value());
  CHECK_FALSE(f.status("n3").has_value());
  REQUIRE(events.size() == 1);
  CHECK(events[0].reason == "NodeNotReady");
  CHECK(events[0].object.uid == "uid-n2");
  CHECK(lc.stats().marked == 1);

  // n3's replica dies (stop() revokes, as an expiry would delete its records): n3 is held by
  // nobody from then on, and is marked only a full timeout later.
  REQUIRE(f.store->put(keys::status_key(v1::OBJECT_KIND_NODE, "", "n3"), "").ok());
  b.reset();
  REQUIRE(test::eventually([&] { return !lc.held("n3"); }));
  tick(39s);
  CHECK_FALSE(f.status("n3")->unreachable());
  tick(2s);
  CHECK(f.status("n3")->unreachable());
  CHECK_FALSE(f.status("n1").has_value());
  CHECK(lc.stats().marked == 2);
}

TEST_CASE("a mark is refused when the node is held again or the leader lost its lease") {
  Fixture f;
  auto registry = Registry::start(*f.store);
  REQUIRE(registry.ok());
  f.add_node("n1");
  f.add_node("n2");
  REQUIRE(test::eventually([&] { return (*registry)->node_count() == 2; }));
  Leader leader(f);
  NodeLifecycleOptions o;
  o.node_timeout = 40s;
  o.sweep_interval = 0ms;
  auto lifecycle =
      NodeLifecycle::start(*f.store, *f.leases, **registry, *leader.elector, f.clock, o);
  REQUIRE(lifecycle.ok());
  auto& lc = **lifecycle;
  leader.advance(f, 41s);
  // n1's record is written just before the sweep: whether or not the watch has delivered it,
  // n1 is not marked (the mark's txn is guarded by "no record").
  auto a = f.replica("a");
  a->held("n1");
  a->step();
  lc.sweep();
  CHECK_FALSE(f.status("n1").has_value());
  CHECK(f.status("n2")->unreachable());
  // A demoted leader writes nothing.
  f.add_node("n3");
  REQUIRE(test::eventually([&] { return (*registry)->node_count() == 3; }));
  leader.elector->stop();
  f.advance(60s);
  lc.sweep();
  CHECK_FALSE(f.status("n3").has_value());
}

}  // namespace
}  // namespace gantry::cloud::controllers
