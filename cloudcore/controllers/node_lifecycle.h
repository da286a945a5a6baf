// The node lifecycle controller of a replicated cloudcore (it runs on the leader only): a node
// is marked Ready=Unknown (StoredStatus.unreachable, as a single cloudcore's hub does for its own
// sessions) once NO replica has held it for the node timeout, i.e. no ownership record
// (node_ownership.h) has existed for it that long. The leader follows the records with a watch;
// a node counts as held from the moment the leader starts (every node gets its full timeout
// after a failover, as after a restart).
//
// The mark is one txn guarded by "no ownership record" and "the leader key at my fence", with
// the status compared at its mod revision: a node that connects to any replica meanwhile, a
// status the node's replica wrote meanwhile, or a lost leadership make it fail and nothing is
// written. Clearing the mark is the holding replica's (its hub, when the node's record is
// durable). Pods are never touched (autonomy).
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "cloudcore/controllers/events.h"
#include "cloudcore/controllers/leader.h"
#include "cloudcore/registry/registry.h"
#include "cloudcore/store/lease.h"
#include "common/base/clock.h"

namespace gantry::cloud::controllers {

struct NodeLifecycleOptions {
  std::chrono::milliseconds node_timeout{40'000};
  std::chrono::milliseconds sweep_interval{1'000};  // 0: no thread, the caller runs sweep()
  EventSink events;                                 // NodeNotReady when a node is marked
};

struct NodeLifecycleStats {
  std::atomic<uint64_t> marked{0};
  std::atomic<uint64_t> conflicts{0};  // a mark refused by a guard (the node came back, ...)
  std::atomic<uint64_t> relists{0};
};

class NodeLifecycle {
 public:
  // Lists the records and watches them; marks on its own thread every sweep_interval.
  // `registry` gives the nodes; `elector` the fence for the guarded marks.
  static common::Result<std::unique_ptr<NodeLifecycle>> start(Store& store, Leases& leases,
                                                              const Registry& registry,
                                                              const LeaderElector& elector,
                                                              common::Clock& clock,
                                                              NodeLifecycleOptions options);
  ~NodeLifecycle();
  NodeLifecycle(const NodeLifecycle&) = delete;
  NodeLifecycle& operator=(const NodeLifecycle&) = delete;

  void stop();  // idempotent
  // One pass at clock.steady_now() (the thread runs it; tests call it after moving the clock).
  void sweep();
  bool held(const std::string& node) const;  // a record exists, as the watch shows it
  const NodeLifecycleStats& stats() const { return stats_; }

 private:
  NodeLifecycle(Store& store, Leases& leases, const Registry& registry,
                const LeaderElector& elector, common::Clock& clock, NodeLifecycleOptions options);
  Status relist();
  bool mark(const std::string& node, int64_t now_ms);

  Store& store_;
  Leases& leases_;
  const Registry& registry_;
  const LeaderElector& elector_;
  common::Clock& clock_;
  NodeLifecycleOptions options_;
  NodeLifecycleStats stats_;
  const std::chrono::steady_clock::time_point started_;

  mutable std::mutex mu_;
  std::set<std::string> owned_;  // nodes with a record
  bool relist_ = false;          // the watch failed
  std::unique_ptr<WatchHandle> watch_;
  std::map<std::string, std::chrono::steady_clock::time_point> last_held_;
  std::set<std::string> marked_;  // marked (or found marked) since last held
  bool stopping_ = false;
  std::condition_variable cv_;
  std::thread thread_;
};

}  // namespace gantry::cloud::controllers
