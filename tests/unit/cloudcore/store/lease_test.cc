// The lease layer (cloudcore/store/lease.h) on both implementations: LocalLeases on a RocksStore
// with a ManualClock, and etcd's leases on a private etcd (tests/support/etcd_fixture) when the
// binary is built with GANTRY_LEASE_TEST_ETCD. The same cases run on both; only how time passes
// differs (the manual clock is advanced; etcd's leases expire in real time, so those waits are
// polled with a deadline).
#include "cloudcore/store/lease.h"

#include <catch2/catch.hpp>

#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"
#ifdef GANTRY_LEASE_TEST_ETCD
#include "cloudcore/store/etcd_store.h"
#include "tests/support/etcd_fixture.h"
#endif

namespace gantry::cloud {
namespace {

using namespace std::chrono_literals;

struct Backend {
  virtual ~Backend() = default;
  virtual Store& store() = 0;
  virtual Leases& leases() = 0;
  // Lets `d` pass for the leases (LocalLeases: the manual clock; etcd: nothing, real time runs).
  virtual void pass(std::chrono::seconds d) = 0;
  // Real time a test must span to outlive a TTL (0 for the manual clock).
  virtual std::chrono::milliseconds real_span() = 0;
  // How long a poll for an expiry may take.
  virtual std::chrono::milliseconds expiry_wait(std::chrono::seconds ttl) = 0;
};

#ifdef GANTRY_LEASE_TEST_ETCD
struct EtcdBackend final : Backend {
  test::Etcd etcd;
  std::unique_ptr<Store> s;
  std::unique_ptr<Leases> l;
  EtcdBackend() {
    EtcdStoreOptions o;
    o.endpoints = {etcd.endpoint()};
    o.request_timeout = 5s;
    auto opened = open_etcd_store(o);
    INFO(opened.status().to_string());
    REQUIRE(opened.ok());
    s = std::move(opened).value();
    auto leases = open_leases(*s, common::system_clock(), {});
    REQUIRE(leases.ok());
    l = std::move(leases).value();
    REQUIRE_FALSE(l->single_process());
  }
  Store& store() override { return *s; }
  Leases& leases() override { return *l; }
  void pass(std::chrono::seconds) override {}
  std::chrono::milliseconds real_span() override { return 3s; }
  std::chrono::milliseconds expiry_wait(std::chrono::seconds ttl) override { return ttl + 20s; }
};
std::unique_ptr<Backend> make_backend() {
  return std::make_unique<EtcdBackend>();
}
#else
struct LocalBackend final : Backend {
  test::TempDir dir;
  common::ManualClock clock;
  std::unique_ptr<Store> s;
  std::unique_ptr<LocalLeases> l;
  LocalBackend() {
    RocksStoreOptions o;
    o.path = (dir / "store").string();
    auto opened = open_rocks_store(o);
    REQUIRE(opened.ok());
    s = std::move(opened).value();
    auto leases = LocalLeases::open(*s, clock, {"/coordination/"});
    REQUIRE(leases.ok());
    l = std::move(leases).value();
  }
  Store& store() override { return *s; }
  Leases& leases() override { return *l; }
  void pass(std::chrono::seconds d) override {
    clock.advance(d);
    l->expire();
  }
  std::chrono::milliseconds real_span() override { return 0s; }
  std::chrono::milliseconds expiry_wait(std::chrono::seconds) override { return 1s; }
};
std::unique_ptr<Backend> make_backend() {
  return std::make_unique<LocalBackend>();
}
#endif

bool absent(Store& store, const std::string& key) {
  auto kv = store.get(key);
  return kv.ok() && !kv->has_value();
}

TEST_CASE("a key bound to a lease lives while it is renewed and goes when it expires") {
  auto b = make_backend();
  auto grant = b->leases().grant(2s);
  INFO(grant.status().to_string());
  REQUIRE(grant.ok());
  CHECK(grant->ttl >= 2s);
  auto put = b->leases().txn({Op::put("/coordination/leader", "a")}, {}, grant->id);
  INFO(put.status().to_string());
  REQUIRE(put.ok());
  REQUIRE(put->results.size() == 1);
  CHECK(put->results[0].mod_revision == put->revision);
  auto kv = b->store().get("/coordination/leader");
  REQUIRE(kv.ok());
  REQUIRE(kv->has_value());
  CHECK((*kv)->value == "a");

  // Renewed within the TTL: still there after more than one TTL in total (etcd: 3 s of real
  // time, renewed every 0.5 s; local: 4 renewals 1 s apart on the manual clock).
  const auto start = std::chrono::steady_clock::now();
  int renewals = 0;
  bool renewed_ok = true;
  CHECK(test::eventually(
      [&] {
        b->pass(1s);
        auto ttl = b->leases().keep_alive(grant->id);
        if (!ttl.ok() || *ttl < 2s) renewed_ok = false;
        ++renewals;
        return !renewed_ok ||
               (renewals >= 4 && std::chrono::steady_clock::now() - start >= b->real_span());
      },
      20s, 500ms));
  CHECK(renewed_ok);
  CHECK_FALSE(absent(b->store(), "/coordination/leader"));

  // Not renewed: the key goes, and the lease is gone.
  b->pass(3s);
  CHECK(test::eventually([&] { return absent(b->store(), "/coordination/leader"); },
                         b->expiry_wait(grant->ttl), 50ms));
  auto late = b->leases().keep_alive(grant->id);
  REQUIRE_FALSE(late.ok());
  CHECK(late.status().code() == Code::kNotFound);
  // A put bound to the dead lease is refused.
  auto refused = b->leases().txn({Op::put("/coordination/x", "v")}, {}, grant->id);
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().code() == Code::kNotFound);
}

TEST_CASE("revoke deletes the lease's keys at once and leaves other keys") {
  auto b = make_backend();
  auto one = b->leases().grant(30s);
  auto two = b->leases().grant(30s);
  REQUIRE(one.ok());
  REQUIRE(two.ok());
  REQUIRE(b->leases()
              .txn({Op::put("/coordination/nodes/n1", "a"), Op::put("/coordination/nodes/n2", "a")},
                   {}, one->id)
              .ok());
  REQUIRE(b->leases().txn({Op::put("/coordination/nodes/n3", "b")}, {}, two->id).ok());
  REQUIRE(b->store().put("/plain", "x").ok());
  REQUIRE(b->leases().revoke(one->id).ok());
  CHECK(absent(b->store(), "/coordination/nodes/n1"));
  CHECK(absent(b->store(), "/coordination/nodes/n2"));
  CHECK_FALSE(absent(b->store(), "/coordination/nodes/n3"));
  CHECK_FALSE(absent(b->store(), "/plain"));
  // Revoking again, or an unknown lease, is fine.
  CHECK(b->leases().revoke(one->id).ok());
  CHECK(b->leases().revoke(123456789).ok());
  // A key put again with another lease (or none) no longer belongs to the first.
  auto three = b->leases().grant(30s);
  REQUIRE(three.ok());
  REQUIRE(b->leases().txn({Op::put("/coordination/nodes/n4", "c")}, {}, three->id).ok());
  REQUIRE(b->leases().txn({Op::put("/coordination/nodes/n4", "d")}, {}, 0).ok());
  REQUIRE(b->leases().revoke(three->id).ok());
  CHECK_FALSE(absent(b->store(), "/coordination/nodes/n4"));
}

TEST_CASE("guards: a txn writes only while the guard keys are at their mod revisions") {
  auto b = make_backend();
  auto lease = b->leases().grant(30s);
  REQUIRE(lease.ok());
  // Claim: create the leader key only if absent.
  auto claim = b->leases().txn({Op::put("/coordination/leader", "a", Revision{0})}, {}, lease->id);
  REQUIRE(claim.ok());
  const Revision fence = claim->revision;
  auto second = b->leases().txn({Op::put("/coordination/leader", "b", Revision{0})}, {}, 0);
  REQUIRE_FALSE(second.ok());
  CHECK(second.status().code() == Code::kFailedPrecondition);

  // A write fenced by the leader key's mod revision.
  auto fenced = b->leases().txn({Op::put("/pods/default/web", "bound")},
                                {{"/coordination/leader", fence}}, 0);
  INFO(fenced.status().to_string());
  REQUIRE(fenced.ok());
  // Another holder took the key: the old leader's fenced write fails and writes nothing.
  REQUIRE(b->leases().revoke(lease->id).ok());
  REQUIRE(b->leases().txn({Op::put("/coordination/leader", "b", Revision{0})}, {}, 0).ok());
  auto stale = b->leases().txn({Op::put("/pods/default/web", "double")},
                               {{"/coordination/leader", fence}}, 0);
  REQUIRE_FALSE(stale.ok());
  CHECK(stale.status().code() == Code::kFailedPrecondition);
  CHECK(stale.status().message().find("/coordination/leader") != std::string::npos);
  auto web = b->store().get("/pods/default/web");
  REQUIRE(web.ok());
  REQUIRE(web->has_value());
  CHECK((*web)->value == "bound");

  // A guard on an absent key, together with an op's own condition.
  auto st = b->store().put("/status/nodes/n1", "ready");
  REQUIRE(st.ok());
  auto mark = b->leases().txn({Op::put("/status/nodes/n1", "unknown", *st)},
                              {{"/coordination/nodes/n1", 0}}, 0);
  REQUIRE(mark.ok());
  auto op_conflict =
      b->leases().txn({Op::put("/status/nodes/n1", "x", *st)}, {{"/coordination/nodes/n1", 0}}, 0);
  REQUIRE_FALSE(op_conflict.ok());
  CHECK(op_conflict.status().code() == Code::kFailedPrecondition);
  CHECK(op_conflict.status().message().find("/status/nodes/n1") != std::string::npos);
  // A key both guarded and written is refused.
  auto twice = b->leases().txn({Op::put("/a", "1")}, {{"/a", 0}}, 0);
  REQUIRE_FALSE(twice.ok());
  CHECK(twice.status().code() == Code::kInvalidArgument);
}

#ifndef GANTRY_LEASE_TEST_ETCD
TEST_CASE("LocalLeases clears its ephemeral prefixes when it opens") {
  test::TempDir dir;
  common::ManualClock clock;
  RocksStoreOptions o;
  o.path = (dir / "store").string();
  auto store = open_rocks_store(o);
  REQUIRE(store.ok());
  REQUIRE((*store)->put("/coordination/leader", "old").ok());
  REQUIRE((*store)->put("/coordination/nodes/n1", "old").ok());
  REQUIRE((*store)->put("/nodes/n1", "keep").ok());
  auto leases = LocalLeases::open(**store, clock, {"/coordination/"});
  REQUIRE(leases.ok());
  CHECK(absent(**store, "/coordination/leader"));
  CHECK(absent(**store, "/coordination/nodes/n1"));
  CHECK_FALSE(absent(**store, "/nodes/n1"));
  CHECK((*leases)->single_process());
}
#endif

}  // namespace
}  // namespace gantry::cloud
