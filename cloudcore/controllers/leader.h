// Leader election among cloudcore replicas on one store: the controllers (scheduler, workloads
// and their collector, node lifecycle, events TTL, compaction) run only on the replica holding
// the leader key, bound to its lease (cloudcore/store/lease.h).
//
//   candidate: grant a lease; create the leader key (absent -> {"holder": NAME, "lease": ID})
//              bound to it; failing that, try again every retry_interval (and keep the lease).
//   leader:    renew every renew_interval; on_elected(fence) ran when the key was created, with
//              fence = the key's mod revision.
//   demoted:   the key or the lease is gone, or no renewal succeeded for (ttl - margin): call
//              on_demoted() (stop the controllers) and become a candidate again.
//
// No double action in a handover, by two fences:
// 1. Time: the store expires the lease no earlier than `sent + ttl`, where `sent` is when the
//    last successful grant/renewal was SENT. The leader gives up at `sent + ttl - margin`: it
//    refuses controller writes from then on (may_write()) and stops its controllers, so it is
//    done before any other replica can create the key. margin defaults to ttl/3 and must cover
//    on_demoted() and a write in flight; renewals go every ttl/3, so one lost renewal is not a
//    demotion.
// 2. The store: every controller write goes through FencedStore, a txn guarded by "the leader
//    key is at my fence revision" (one etcd Txn). Once another replica holds the key (new mod
//    revision), a late write of the old leader fails instead of landing twice. This holds even
//    when the time fence is broken (a paused process, a clock gone wrong).
//
// Time comes from the injected Clock; the thread calls step() every `tick`. Tests call step()
// themselves with a ManualClock and LocalLeases.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "cloudcore/store/lease.h"
#include "cloudcore/store/store.h"
#include "common/base/clock.h"

namespace gantry::cloud::controllers {

inline constexpr std::string_view kLeaderKey = "/coordination/leader";
// Lease-bound records, cleared by LocalLeases at start (no process holds them then).
inline constexpr std::string_view kCoordinationPrefix = "/coordination/";

struct LeaderOptions {
  std::string key{kLeaderKey};
  std::string identity;  // this replica's name, shown as the holder
  std::chrono::seconds ttl{15};
  std::chrono::milliseconds renew_interval{0};  // 0: ttl / 3
  std::chrono::milliseconds margin{0};          // 0: ttl / 3
  std::chrono::milliseconds retry_interval{500};
  std::chrono::milliseconds tick{100};  // how often the thread runs step()
  // On the elector's thread. on_elected starts the controllers (with a FencedStore); false (they
  // could not start) gives the lead up at once (the lease is revoked) and competes again after
  // retry_interval. on_demoted stops them and must return within `margin`.
  std::function<bool(Revision fence)> on_elected;
  std::function<void()> on_demoted;
};

struct LeaderStats {
  std::atomic<uint64_t> elections_won{0};
  std::atomic<uint64_t> demotions{0};
  std::atomic<uint64_t> renewals_failed{0};
};

class LeaderElector {
 public:
  LeaderElector(Leases& leases, Store& store, common::Clock& clock, LeaderOptions options);
  // stop().
  ~LeaderElector();
  LeaderElector(const LeaderElector&) = delete;
  LeaderElector& operator=(const LeaderElector&) = delete;

  void start();  // the thread
  // Stops the thread; a leader is demoted (on_demoted) and revokes its lease, so a successor
  // takes over at its next try instead of after the TTL. Idempotent.
  void stop();
  // One round of the state machine at clock.steady_now().
  void step();

  bool leader() const;
  // Leader and within its time fence: controller writes may go out.
  bool may_write() const;
  Revision fence() const;      // the leader key's mod revision while leader, else 0
  std::string holder() const;  // the last holder seen ("" when none)
  const LeaderStats& stats() const { return stats_; }
  const LeaderOptions& options() const { return options_; }

 private:
  void renew(std::chrono::steady_clock::time_point now);
  void try_acquire(std::chrono::steady_clock::time_point now);
  void demote(const std::string& why);

  Leases& leases_;
  Store& store_;
  common::Clock& clock_;
  LeaderOptions options_;
  LeaderStats stats_;

  mutable std::mutex mu_;  // the fields below; callbacks run without it
  bool leader_ = false;
  Revision fence_ = 0;
  std::string holder_;
  LeaseId lease_ = 0;
  std::chrono::steady_clock::time_point valid_until_{};  // sent + ttl of the last renewal
  std::chrono::steady_clock::time_point next_renew_{};
  std::chrono::steady_clock::time_point next_try_{};

  std::mutex thread_mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

// Runs `fn` every `interval` on its own thread (first after one interval) until destroyed: the
// leader's periodic chores (the events TTL sweep).
class Periodic {
 public:
  Periodic(std::chrono::milliseconds interval, std::function<void()> fn);
  ~Periodic();
  Periodic(const Periodic&) = delete;
  Periodic& operator=(const Periodic&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

// The store the leader's controllers write through: every txn is refused unless may_write(),
// and carries the guard "leader key at fence()" (see above). Reads and watches pass through.
class FencedStore final : public Store {
 public:
  FencedStore(Store& store, Leases& leases, const LeaderElector& elector)
      : store_(store), leases_(leases), elector_(elector) {}

  Result<TxnResult> txn(std::vector<Op> ops) override;
  TxnLimits txn_limits() const override;
  Result<std::optional<KeyValue>> get(std::string_view key, Revision at = 0) const override {
    return store_.get(key, at);
  }
  Result<ListResult> list(const ListOptions& options) const override {
    return store_.list(options);
  }
  Revision current_revision() const override { return store_.current_revision(); }
  Revision compacted_revision() const override { return store_.compacted_revision(); }
  Result<std::unique_ptr<WatchHandle>> watch(std::string prefix, Revision from,
                                             WatchCallbacks cbs) override {
    return store_.watch(std::move(prefix), from, std::move(cbs));
  }
  Status compact(Revision up_to) override;

 private:
  Store& store_;
  Leases& leases_;
  const LeaderElector& elector_;
};

}  // namespace gantry::cloud::controllers
