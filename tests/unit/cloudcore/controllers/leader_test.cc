// Leader election (cloudcore/controllers/leader.h) between electors in one process: LocalLeases
// on a RocksStore, time from a ManualClock, every round driven by step().
#include "cloudcore/controllers/leader.h"

#include <catch2/catch.hpp>

#include "cloudcore/store/lease.h"
#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"

namespace gantry::cloud::controllers {
namespace {

using namespace std::chrono_literals;

// Leases whose calls can be made to fail as if the store were unreachable.
class FlakyLeases final : public Leases {
 public:
  explicit FlakyLeases(Leases& inner) : inner_(inner) {}
  bool down = false;
  Result<LeaseGrant> grant(std::chrono::seconds ttl) override {
    if (down) return unreachable();
    return inner_.grant(ttl);
  }
  Result<std::chrono::seconds> keep_alive(LeaseId id) override {
    if (down) return unreachable();
    return inner_.keep_alive(id);
  }
  Status revoke(LeaseId id) override { return down ? unreachable() : inner_.revoke(id); }
  Result<TxnResult> txn(std::vector<Op> ops, const std::vector<LeaseGuard>& guards,
                        LeaseId lease) override {
    if (down) return unreachable();
    return inner_.txn(std::move(ops), guards, lease);
  }
  bool single_process() const override { return true; }

 private:
  static Status unreachable() { return common::make_error(Code::kUnavailable, "unreachable"); }
  Leases& inner_;
};

struct Replica {
  std::string name;
  int elected = 0, demoted = 0;
  Revision fence = 0;
  std::unique_ptr<FlakyLeases> flaky;
  std::unique_ptr<LeaderElector> elector;
  std::unique_ptr<FencedStore> fenced;
};

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

  std::unique_ptr<Replica> replica(const std::string& name) {
    auto r = std::make_unique<Replica>();
    r->name = name;
    r->flaky = std::make_unique<FlakyLeases>(*leases);
    LeaderOptions o;
    o.identity = name;
    o.ttl = 15s;  // renew every 5 s, give up 5 s before the TTL
    o.retry_interval = 1s;
    Replica* raw = r.get();
    o.on_elected = [raw](Revision fence) {
      ++raw->elected;
      raw->fence = fence;
      return true;
    };
    o.on_demoted = [raw] { ++raw->demoted; };
    r->elector = std::make_unique<LeaderElector>(*r->flaky, *store, clock, o);
    r->fenced = std::make_unique<FencedStore>(*store, *r->flaky, *r->elector);
    return r;
  }

  // Moves time in 1 s steps, running `step` after each; checks at every step that at most one
  // replica may write (no double action).
  void run(std::chrono::seconds d, const std::vector<Replica*>& stepping,
           const std::vector<Replica*>& all) {
    for (auto t = 0s; t < d; t += 1s) {
      clock.advance(1s);
      leases->expire();
      for (auto* r : stepping) r->elector->step();
      int writers = 0;
      for (auto* r : all) writers += r->elector->may_write() ? 1 : 0;
      REQUIRE(writers <= 1);
    }
  }
};

TEST_CASE("one replica becomes the leader, the other waits") {
  Fixture f;
  auto a = f.replica("a");
  auto b = f.replica("b");
  a->elector->step();
  b->elector->step();
  CHECK(a->elector->leader());
  CHECK(a->elector->may_write());
  CHECK(a->elected == 1);
  CHECK_FALSE(b->elector->leader());
  CHECK(b->elector->holder() == "a");
  // Renewed while it runs: still the leader long after the TTL.
  f.run(60s, {a.get(), b.get()}, {a.get(), b.get()});
  CHECK(a->elector->leader());
  CHECK(a->elected == 1);
  CHECK(a->demoted == 0);
  CHECK_FALSE(b->elector->leader());
  CHECK(b->elected == 0);
  // The leader's fenced writes go through, a candidate's are refused.
  CHECK(a->fenced->put("/pods/default/web", "bound").ok());
  auto refused = b->fenced->put("/pods/default/web", "double");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kUnavailable);
}

TEST_CASE("a leader that stops renewing is replaced after the TTL, never before") {
  Fixture f;
  auto a = f.replica("a");
  auto b = f.replica("b");
  a->elector->step();
  b->elector->step();
  REQUIRE(a->elector->leader());
  // a hangs (no more steps; its process may be frozen or dead). Its time fence closes first...
  f.run(10s, {b.get()}, {a.get(), b.get()});
  CHECK_FALSE(a->elector->may_write());
  CHECK_FALSE(b->elector->leader());
  // ...then the lease expires (15 s after the last renewal) and b takes over at its next try.
  f.run(7s, {b.get()}, {a.get(), b.get()});
  CHECK(b->elector->leader());
  CHECK(b->elected == 1);
  CHECK(b->elector->may_write());
  // a's write from before its hang arrives late: the store's fence refuses it.
  auto late = f.leases->txn({Op::put("/pods/default/web", "late")},
                            {{std::string(kLeaderKey), a->fence}}, 0);
  REQUIRE_FALSE(late.ok());
  CHECK(late.status().code() == Code::kFailedPrecondition);
  // a wakes up: it learns it lost the lease and stops its controllers; b stays the leader.
  f.run(3s, {a.get(), b.get()}, {a.get(), b.get()});
  CHECK(a->demoted == 1);
  CHECK_FALSE(a->elector->leader());
  CHECK(b->elector->leader());
  CHECK(a->elector->holder() == "b");
}

TEST_CASE("a leader cut off from the store stops its controllers before its lease can expire") {
  Fixture f;
  auto a = f.replica("a");
  auto b = f.replica("b");
  a->elector->step();
  b->elector->step();
  REQUIRE(a->elector->leader());
  a->flaky->down = true;  // every renewal fails from now on
  int demoted_at = -1;
  for (int t = 1; t <= 20; ++t) {
    f.clock.advance(1s);
    f.leases->expire();
    a->elector->step();
    b->elector->step();
    if (a->demoted == 1 && demoted_at < 0) demoted_at = t;
    REQUIRE((a->elector->may_write() ? 1 : 0) + (b->elector->may_write() ? 1 : 0) <= 1);
    // b can only win once a's lease is gone, and a stopped before that.
    if (b->elector->leader()) REQUIRE(a->demoted == 1);
  }
  CHECK(demoted_at > 0);
  CHECK(demoted_at <= 10);  // ttl - margin after the last renewal
  CHECK(b->elector->leader());
  // Back in touch: a is a candidate again, b keeps the lead.
  a->flaky->down = false;
  f.run(5s, {a.get(), b.get()}, {a.get(), b.get()});
  CHECK_FALSE(a->elector->leader());
  CHECK(b->elector->leader());
}

TEST_CASE("a leader cut off for less than the TTL takes the lead back as soon as it renews") {
  // etcd restarted: the leases (and the leader key) survive it, so the demoted leader's lease is
  // still there; it renews it and takes its own key back instead of waiting out the TTL.
  Fixture f;
  auto a = f.replica("a");
  auto b = f.replica("b");
  a->elector->step();
  b->elector->step();
  REQUIRE(a->elector->leader());
  a->flaky->down = true;
  f.run(11s, {a.get(), b.get()}, {a.get(), b.get()});
  CHECK(a->demoted == 1);  // its time fence closed (ttl - margin = 10 s)
  CHECK_FALSE(a->elector->may_write());
  CHECK_FALSE(b->elector->leader());  // the lease (15 s) still holds the key
  a->flaky->down = false;
  f.run(1s, {a.get(), b.get()}, {a.get(), b.get()});
  CHECK(a->elector->leader());
  CHECK(a->elector->may_write());
  CHECK(a->elected == 2);
  CHECK(b->elected == 0);
  // Its fenced writes go through again: the key kept its revision, the fence is the same.
  CHECK(a->fence == a->elector->fence());
  CHECK(a->fenced->put("/pods/default/web", "bound").ok());
  // And it stays the leader.
  f.run(30s, {a.get(), b.get()}, {a.get(), b.get()});
  CHECK(a->elector->leader());
  CHECK(b->elected == 0);
}

TEST_CASE("stop() hands over at once: the lease is revoked") {
  Fixture f;
  auto a = f.replica("a");
  auto b = f.replica("b");
  a->elector->step();
  b->elector->step();
  REQUIRE(a->elector->leader());
  a->elector->stop();
  CHECK(a->demoted == 1);
  CHECK_FALSE(a->elector->may_write());
  f.run(1s, {b.get()}, {a.get(), b.get()});
  CHECK(b->elector->leader());
}

TEST_CASE("a leader whose key was deleted by hand steps down and competes again") {
  Fixture f;
  auto a = f.replica("a");
  a->elector->step();
  REQUIRE(a->elector->leader());
  REQUIRE(f.store->remove(std::string(kLeaderKey)).ok());
  f.run(6s, {a.get()}, {a.get()});  // the next renewal notices
  CHECK(a->demoted == 1);
  CHECK(a->elected == 2);  // and it took the key again
  CHECK(a->elector->leader());
}

TEST_CASE("the elector's thread elects a single replica on the real clock") {
  test::TempDir dir;
  RocksStoreOptions o;
  o.path = (dir / "store").string();
  auto store = open_rocks_store(o);
  REQUIRE(store.ok());
  auto leases = LocalLeases::open(**store, common::system_clock(), {"/coordination/"});
  REQUIRE(leases.ok());
  std::atomic<int> elected{0};
  LeaderOptions lo;
  lo.identity = "only";
  lo.on_elected = [&](Revision) {
    ++elected;
    return true;
  };
  LeaderElector elector(**leases, **store, common::system_clock(), lo);
  elector.start();
  CHECK(test::eventually([&] { return elector.may_write(); }, 10s));
  CHECK(elected == 1);
  elector.stop();
  CHECK_FALSE(elector.leader());
  auto key = (*store)->get(std::string(kLeaderKey));
  REQUIRE(key.ok());
  CHECK_FALSE(key->has_value());  // revoked with the lease
}

}  // namespace
}  // namespace gantry::cloud::controllers
