// Leases: keys that live only as long as their owner keeps renewing them, for several cloudcore
// replicas on one store (the leader key of cloudcore/controllers/leader.h, the node ownership
// records of cloudcore/controllers/node_ownership.h).
//
// The model is etcd's: grant(ttl) makes a lease; keys put with it (txn(..., lease)) are deleted
// by the store when the lease expires (no keep_alive() for ttl) or is revoked. Reads and watches
// of those keys go through the ordinary Store (the keys live in the same key space).
//
// Two implementations:
// - etcd (open_leases() on an EtcdStore): etcd's Lease service on the store's connection; expiry
//   is etcd's, so it holds across processes and machines.
// - local (LocalLeases, for the embedded RocksDB store, one process): the same semantics kept in
//   memory against an injected clock, the keys written to the store. A single process is always
//   the only candidate, so it is always the leader; tests use it to drive expiry with a
//   ManualClock. Leases do not survive the process: keys under the `ephemeral` prefixes are
//   deleted when it starts.
//
// Fencing: txn(ops, guards, lease) writes only if every guard key is at the given mod revision
// (0 = absent), atomically with the ops' own conditions (on etcd, one Txn). A leader's writes
// guarded by its leader key's mod revision fail once another replica holds that key.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cloudcore/store/store.h"
#include "common/base/clock.h"

namespace gantry::cloud {

using LeaseId = int64_t;  // 0 = no lease

struct LeaseGrant {
  LeaseId id = 0;
  std::chrono::seconds ttl{0};  // as granted (etcd may raise a TTL below its minimum)
};

// A condition on a key a txn does not write: its mod revision must equal `mod_revision` (0: the
// key must not exist).
struct LeaseGuard {
  std::string key;
  Revision mod_revision = 0;
};

class Leases {
 public:
  virtual ~Leases() = default;

  // A new lease of `ttl` (>= 1 s). kUnavailable when the store does not answer.
  virtual Result<LeaseGrant> grant(std::chrono::seconds ttl) = 0;
  // Renews the lease for its TTL; returns that TTL. kNotFound when it expired or was revoked
  // (its keys are gone), kUnavailable when the store did not answer (the lease may still live).
  virtual Result<std::chrono::seconds> keep_alive(LeaseId id) = 0;
  // Ends the lease now and deletes its keys. An unknown or expired lease is not an error.
  virtual Status revoke(LeaseId id) = 0;
  // Store::txn() with `guards` checked atomically with it and its puts bound to `lease` (0: none;
  // a put bound to an expired lease fails with kNotFound). Errors as Store::txn().
  virtual Result<TxnResult> txn(std::vector<Op> ops, const std::vector<LeaseGuard>& guards,
                                LeaseId lease) = 0;
  // True for LocalLeases: one process, nothing to elect against.
  virtual bool single_process() const = 0;
};

// The leases of `store`: etcd's when it is an EtcdStore (the binary must link
// cloudcore_etcd_store, see lease_etcd.cc), otherwise LocalLeases on `clock` with the given
// ephemeral prefixes cleared.
Result<std::unique_ptr<Leases>> open_leases(Store& store, common::Clock& clock,
                                            const std::vector<std::string>& ephemeral_prefixes);

class LocalLeases final : public Leases {
 public:
  // Deletes every key under `ephemeral_prefixes` (left by an earlier process: their leases died
  // with it).
  static Result<std::unique_ptr<LocalLeases>> open(
      Store& store, common::Clock& clock, const std::vector<std::string>& ephemeral_prefixes);

  Result<LeaseGrant> grant(std::chrono::seconds ttl) override;
  Result<std::chrono::seconds> keep_alive(LeaseId id) override;
  Status revoke(LeaseId id) override;
  Result<TxnResult> txn(std::vector<Op> ops, const std::vector<LeaseGuard>& guards,
                        LeaseId lease) override;
  bool single_process() const override { return true; }

  // Deletes the keys of leases past their TTL (every call above does it first). Tests call it
  // after advancing a ManualClock.
  void expire();

 private:
  LocalLeases(Store& store, common::Clock& clock) : store_(store), clock_(clock) {}
  struct LeaseState {
    std::chrono::seconds ttl{0};
    std::chrono::steady_clock::time_point expires;
    std::set<std::string> keys;
  };
  void expire_locked();
  void drop_locked(LeaseId id);  // deletes the lease's keys still bound to it

  Store& store_;
  common::Clock& clock_;
  std::mutex mu_;  // serializes every txn through this object (the guard check and the write)
  LeaseId next_id_ = 1;
  std::map<LeaseId, LeaseState> leases_;
  std::map<std::string, LeaseId> bound_;  // key -> the lease it was last put with
};

}  // namespace gantry::cloud
