// Garbage collection of the pods of deleted nodes (Kubernetes' PodGC for orphaned pods): a pod
// bound (spec.nodeName) to a node name that has no node object is deleted, with its status, once
// the node object has been missing for `quarantine` and still is. Only the absence of the node
// object counts: a node that is offline, NotReady or Unknown keeps its pods (edge autonomy), and
// so does a node deleted and joined again within the quarantine.
//
// Level-triggered: the store's /nodes/ and /pods/ feed an index (pods by node, missing nodes and
// since when); when a node is due, the collector reads the node and each pod again and deletes a
// pod only if, right then, it is still bound there and the node is still absent (a txn on the
// pod's revision, so a pod rewritten meanwhile is left alone). Nothing scans the fleet per event.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cloudcore/store/store.h"
#include "common/base/clock.h"
#include "common/base/status.h"

namespace gantry::cloud::controllers {

// Which nodes are missing since when, and which pods each node name has: the decisions without
// I/O. Not thread-safe (NodeGc locks around it).
class OrphanIndex {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  void node_added(const std::string& node);
  void node_removed(const std::string& node, TimePoint now);
  // `pod` is its store key; `node` "" when unbound. Replaces what was known of the pod.
  void pod_bound(const std::string& pod, const std::string& node, TimePoint now);
  void pod_removed(const std::string& pod);
  void clear();

  // Node names without a node object that have pods, missing for at least `quarantine` at `now`.
  std::vector<std::string> due(TimePoint now, std::chrono::milliseconds quarantine) const;
  // When the next missing node becomes due (nullopt: none is missing).
  std::optional<TimePoint> next_due(std::chrono::milliseconds quarantine) const;
  std::vector<std::string> pods_of(const std::string& node) const;
  // A missing node found to have been handled (or come back) is looked at again after this.
  void postpone(const std::string& node, TimePoint until);

  size_t missing_nodes() const { return missing_since_.size(); }

 private:
  void forget_pod(const std::string& pod);
  std::set<std::string> nodes_;
  std::map<std::string, std::string> pod_node_;
  std::map<std::string, std::set<std::string>> pods_by_node_;
  std::map<std::string, TimePoint> missing_since_;
};

struct NodeGcOptions {
  // How long a node object must have been missing before its pods go (Kubernetes: 40 s).
  std::chrono::milliseconds quarantine{std::chrono::seconds(40)};
  // After a store error: reload or retry after this long.
  std::chrono::milliseconds error_backoff{std::chrono::seconds(2)};
  // Run a thread of its own (production). Tests drive run_once() themselves.
  bool run_thread = true;
};

struct NodeGcStats {
  std::atomic<uint64_t> pods_deleted{0};
  std::atomic<uint64_t> kept{0};  // a due pod found rebound, rewritten or its node back
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> passes{0};
};

class NodeGc {
 public:
  // Lists /nodes/ and /pods/ and follows them. `clock` (steady) times the quarantine.
  static common::Result<std::unique_ptr<NodeGc>> start(Store& store, const common::Clock& clock,
                                                       NodeGcOptions options = {});
  ~NodeGc();
  NodeGc(const NodeGc&) = delete;
  NodeGc& operator=(const NodeGc&) = delete;

  // One pass: deletes the pods of every node missing for the quarantine. Returns how many.
  size_t run_once();
  // Node names currently missing with pods bound to them (what the collector waits on).
  size_t missing_nodes() const;
  const NodeGcStats& stats() const;
  void stop();  // idempotent

  struct Impl;

 private:
  explicit NodeGc(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gantry::cloud::controllers
