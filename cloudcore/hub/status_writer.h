// The one writer of observed state: status batches from every node, and the cloud's own
// liveness marks, are applied on one thread and committed together, so thousands of nodes'
// batches cost one fsync per round and no two writes of one status race.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cloudcore/hub/upstream.h"
#include "common/base/clock.h"
#include "common/metrics/metrics.h"

namespace gantry::cloud {

// What the writer reports (default handles: nothing).
struct StatusWriterMetrics {
  // Per status batch: from submit() (the hub has just received it) until it is durable. The
  // tunnel protocol carries no edge timestamp (and edge clocks drift), so the edge's own queueing
  // and the link are not in it.
  common::Histogram propagation;
  common::Gauge queued;  // jobs (batches and liveness marks) waiting for the writer
  // Rounds written again after the store was unavailable (etcd down: kUnavailable).
  common::Counter store_retries;
  // Status batches held (not acknowledged) while the store is unavailable.
  common::Gauge held;
};

// A round the store refused with kUnavailable (etcd unreachable) is held and written again, in
// order, after a jittered back-off doubling from `retry_initial` up to `retry_max`: the batches
// are acknowledged only once durable, and the edges keep them unacknowledged meanwhile (their
// window bounds what each node has in flight). Other store errors fail the round at once.
struct StatusWriterOptions {
  std::chrono::milliseconds retry_initial{100};
  std::chrono::milliseconds retry_max{5000};
};

// One node's status batches received and not yet answered by the writer, bounded. While the
// store is unavailable the writer holds batches unacknowledged; the reference edge keeps at most
// 4 in flight, so only an edge that does not wait for acks reaches the bound, and the hub then
// closes that node's connection (the edge sends the batches again on its next one). The hub's
// defaults: HubOptions::max_status_batches_pending (32) / max_status_bytes_pending (8 MiB).
class StatusBacklog {
 public:
  StatusBacklog(size_t max_batches, size_t max_bytes)
      : max_batches_(max_batches), max_bytes_(max_bytes) {}
  // Takes a batch of `bytes`; false (nothing taken): it would be past either bound.
  [[nodiscard]] bool admit(size_t bytes) {
    if (batches_ + 1 > max_batches_ || bytes_ + bytes > max_bytes_) return false;
    ++batches_;
    bytes_ += bytes;
    return true;
  }
  // An admitted batch was answered (acknowledged, refused or failed).
  void release(size_t bytes) {
    --batches_;
    bytes_ -= bytes;
  }
  size_t batches() const { return batches_; }
  size_t bytes() const { return bytes_; }
  size_t max_batches() const { return max_batches_; }
  size_t max_bytes() const { return max_bytes_; }

 private:
  size_t max_batches_, max_bytes_;
  size_t batches_ = 0, bytes_ = 0;
};

class StatusWriter {
 public:
  // `events` (optional) gets the nodes' Ready transitions (NodeReady / NodeNotReady, including
  // Ready=Unknown when a node goes silent) and the events the edges send with their batches,
  // once the batch is durable.
  StatusWriter(Store& store, const Registry& registry, common::Clock& clock,
               controllers::EventSink events = {}, StatusWriterMetrics metrics = {},
               StatusWriterOptions options = {});
  // Finishes queued work, then stops. A round held for an unavailable store is tried once more;
  // if that fails too its batches complete with the error (the edges send them again).
  ~StatusWriter();
  StatusWriter(const StatusWriter&) = delete;
  StatusWriter& operator=(const StatusWriter&) = delete;

  // Applies one batch from `node`. `done` runs on the writer thread once the batch is durable
  // (plan.violation set: nothing written; commit_error set: the store failed with an error that
  // is not kUnavailable, or it was still unavailable when the writer stopped). While the store is
  // unavailable `done` is not called: the batch is held and written when the store is back.
  // `wanted` (optional) is asked before a held batch is written again: false (its session is
  // gone; the edge will send it again on its next connection) drops it without `done`.
  using Done = std::function<void(const UpstreamPlan& plan, const Status& commit_error)>;
  void submit(std::string node, v1::StatusDelta delta, Done done,
              std::function<bool()> wanted = {});

  // Marks the node's Ready condition Unknown (unreachable) or clears the mark.
  void set_unreachable(std::string node, bool unreachable);

  // The last upstream sequence durable for `node` (0: none).
  uint64_t stored_sequence(const std::string& node);

  struct Stats {
    uint64_t commits = 0;
    uint64_t batches = 0;
    uint64_t entries_applied = 0;
    uint64_t resyncs = 0;
    uint64_t edge_events = 0;          // events from edges passed to the recorder
    uint64_t edge_events_refused = 0;  // about objects the node does not own
    uint64_t store_retries = 0;        // rounds written again after kUnavailable
    uint64_t store_outages = 0;        // times the store became unavailable to the writer
    bool holding = false;              // a round is held now, waiting for the store
  };
  Stats stats() const;

 private:
  struct Job {
    std::string node;
    bool liveness = false;
    bool unreachable = false;
    v1::StatusDelta delta;
    Done done;
    std::function<bool()> wanted;
    std::chrono::steady_clock::time_point received = std::chrono::steady_clock::now();
  };
  void run();
  // Writes one round. false: the store was unavailable and `hold` was set; nothing was
  // acknowledged (no `done` ran) and the jobs are intact, to be written again.
  // `retry`: the round was held before; the nodes' sequences are read from the store, not the
  // cache (another replica may have written meanwhile).
  bool process(std::deque<Job>& jobs, bool hold, bool retry);
  // The node's stored sequence: the cache (unless `fresh`), else the store (an error: the read's).
  Result<uint64_t> load_sequence(const std::string& node, bool fresh);
  using NodeStatuses = std::map<std::string, std::optional<v1::StoredStatus>>;
  void record_events(const std::deque<Job>& jobs, const std::vector<UpstreamPlan>& plans,
                     const std::map<std::string, std::string>& ready_before,
                     const NodeStatuses& after_round);
  // The node's uid for its events ("" when the node object is gone or has none).
  std::string node_uid(const std::string& node) const;

  Store& store_;
  const Registry& registry_;
  common::Clock& clock_;
  controllers::EventSink events_;
  StatusWriterMetrics metrics_;
  StatusWriterOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::unordered_map<std::string, uint64_t> sequences_;  // writer thread (and mu_ for reads)
  Status last_error_;  // writer thread: why the last held round was held
  Stats stats_;
  std::thread thread_;
};

}  // namespace gantry::cloud
