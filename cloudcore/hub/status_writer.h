// The one writer of observed state: status batches from every node, and the cloud's own
// liveness marks, are applied on one thread and committed together, so thousands of nodes'
// batches cost one fsync per round and no two writes of one status race.
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>

#include "cloudcore/hub/upstream.h"
#include "common/base/clock.h"

namespace gantry::cloud {

class StatusWriter {
 public:
  StatusWriter(Store& store, const Registry& registry, common::Clock& clock);
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
  };
  Stats stats() const;

 private:
  struct Job {
    std::string node;
    bool liveness = false;
    bool unreachable = false;
    v1::StatusDelta delta;
    Done done;
  };
  void run();
  void process(std::deque<Job>& jobs);

  Store& store_;
  const Registry& registry_;
  common::Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool stopping_ = false;
  std::unordered_map<std::string, uint64_t> sequences_;  // writer thread (and mu_ for reads)
  Stats stats_;
  std::thread thread_;
};

}  // namespace gantry::cloud
