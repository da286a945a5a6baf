// The one writer of observed state: status batches from every node, and the cloud's own
// liveness marks, are applied on one thread and committed together, so thousands of nodes'
// batches cost one fsync per round and no two writes of one status race.
#pragma once

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
};

class StatusWriter {
 public:
  // `events` (optional) gets the nodes' Ready transitions (NodeReady / NodeNotReady, including
  // Ready=Unknown when a node goes silent) and the events the edges send with their batches,
  // once the batch is durable.
  StatusWriter(Store& store, const Registry& registry, common::Clock& clock,
               controllers::EventSink events = {}, StatusWriterMetrics metrics = {});
  ~StatusWriter();  // finishes queued work, then stops
  StatusWriter(const StatusWriter&) = delete;
  StatusWriter& operator=(const StatusWriter&) = delete;

  // Applies one batch from `node`. `done` runs on the writer thread once the batch is durable
  // (plan.violation set: nothing written; commit_error set: the store failed).
  using Done = std::function<void(const UpstreamPlan& plan, const Status& commit_error)>;
  void submit(std::string node, v1::StatusDelta delta, Done done);

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
  };
  Stats stats() const;

 private:
  struct Job {
    std::string node;
    bool liveness = false;
    bool unreachable = false;
    v1::StatusDelta delta;
    Done done;
    std::chrono::steady_clock::time_point received = std::chrono::steady_clock::now();
  };
  void run();
  void process(std::deque<Job>& jobs);
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
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::unordered_map<std::string, uint64_t> sequences_;  // writer thread (and mu_ for reads)
  Stats stats_;
  std::thread thread_;
};

}  // namespace gantry::cloud
