// The scheduler: follows the store (/pods/, /nodes/, /status/nodes/) and binds every pod without
// spec.nodeName to a node it fits on (scheduling.h decides), with one optimistic store txn per
// pod. A pod that fits nowhere gets a scheduler-owned StoredStatus (generation 0, phase Pending,
// reason Unschedulable, message saying why) that the API renders as PodScheduled=False; it is
// removed in the binding txn so the edge's first status starts clean. Unschedulable pods are
// evaluated again when nodes, node statuses or bound pods change, never in a busy loop.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>

#include "cloudcore/controllers/events.h"
#include "cloudcore/store/store.h"
#include "common/base/status.h"

namespace gantry::cloud::controllers {

struct SchedulerOptions {
  // An unschedulable pod is evaluated again at most this often, and only after something it
  // could depend on changed (nodes, node statuses, pods leaving nodes).
  std::chrono::milliseconds retry_interval{std::chrono::seconds(1)};
  // After a store error the scheduler reloads or retries after this long.
  std::chrono::milliseconds error_backoff{std::chrono::seconds(2)};
  // Unix milliseconds for StoredStatus.changed_at (tests inject a clock).
  std::function<int64_t()> now_ms;
  // Gets Scheduled / FailedScheduling events (cloudcore wires its EventRecorder). Optional.
  EventSink events;
};

struct SchedulerStats {
  std::atomic<uint64_t> bound{0};
  std::atomic<uint64_t> conflicts{0};      // the pod changed between read and bind
  std::atomic<uint64_t> unschedulable{0};  // Unschedulable statuses written
  std::atomic<uint64_t> errors{0};         // store errors (retried)
  std::atomic<uint64_t> passes{0};
  std::atomic<uint64_t> reloads{0};  // full re-lists after a watch error
};

class Scheduler {
 public:
  // Lists the store and follows it from there on its own thread.
  static common::Result<std::unique_ptr<Scheduler>> start(Store& store,
                                                          SchedulerOptions options = {});
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Stops the thread and the watches. Idempotent.
  void stop();
  const SchedulerStats& stats() const;

  struct Impl;

 private:
  explicit Scheduler(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gantry::cloud::controllers
