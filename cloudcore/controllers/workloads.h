// The workload controllers (apps/v1 ReplicaSet, Deployment, DaemonSet, batch/v1 Job and CronJob,
// and the garbage collector of their dependents), level-triggered from one informer over the store
// and one keyed work queue, on one worker thread. Each reconcile reads the cache, writes the store
// with optimistic concurrency and never trusts its own write until the watch shows it (expectations
// by revision), so a burst of events never creates a pod twice.
//
// Edge semantics (docs/workloads.md): a node whose status is `unreachable` is normal at the edge.
// Its pods keep counting as replicas (ready/available as last reported) and are never replaced
// or deleted because the node is silent, unless the workload opts in with the annotation
// `gantry.io/replace-unreachable-after: "<seconds>"`; the unreachable ones are counted in
// `status.unreachableReplicas` and a `Reachable` condition.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string_view>

#include "cloudcore/controllers/informer.h"
#include "cloudcore/store/store.h"
#include "common/base/status.h"

namespace gantry::cloud::controllers {

// Store prefixes of the workload kinds ("/replicasets/NS/NAME"); the API kinds use the same.
inline constexpr std::string_view kReplicaSetsPrefix = "/replicasets/";
inline constexpr std::string_view kDeploymentsPrefix = "/deployments/";
inline constexpr std::string_view kDaemonSetsPrefix = "/daemonsets/";
inline constexpr std::string_view kControllerRevisionsPrefix = "/controllerrevisions/";
inline constexpr std::string_view kRolloutsPrefix = "/rollouts/";  // gantry.io/v1 Rollout
inline constexpr std::string_view kJobsPrefix = "/jobs/";          // batch/v1 Job
inline constexpr std::string_view kCronJobsPrefix = "/cronjobs/";  // batch/v1 CronJob

// The opt-in for replacing replicas on unreachable nodes: seconds a node must be unreachable
// before its replica is given up (deleted gracefully: it stops when the node returns) and created
// elsewhere. On a Deployment it is copied to its ReplicaSets.
inline constexpr const char* kReplaceUnreachableAfter = "gantry.io/replace-unreachable-after";

struct WorkloadOptions {
  const ControllerClock* clock = nullptr;  // nullptr: system_clock()
  WorkQueueOptions queue;
  // Pods one reconcile creates at most (the rest follow in the next pass).
  size_t burst = 500;
  std::chrono::milliseconds error_backoff{std::chrono::seconds(1)};
};

struct WorkloadStats {
  std::atomic<uint64_t> reconciles{0};
  std::atomic<uint64_t> pods_created{0};
  std::atomic<uint64_t> pods_deleted{0};           // deleted or marked for graceful deletion
  std::atomic<uint64_t> pods_updated_in_place{0};  // images swapped on the existing pod
  std::atomic<uint64_t> adopted{0};
  std::atomic<uint64_t> released{0};
  std::atomic<uint64_t> status_writes{0};
  std::atomic<uint64_t> conflicts{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> collected{0};  // dependents deleted or orphaned by the collector
};

class WorkloadControllers {
 public:
  static common::Result<std::unique_ptr<WorkloadControllers>> start(Store& store,
                                                                    WorkloadOptions options = {});
  ~WorkloadControllers();
  WorkloadControllers(const WorkloadControllers&) = delete;
  WorkloadControllers& operator=(const WorkloadControllers&) = delete;

  void stop();  // idempotent
  const WorkloadStats& stats() const;
  // True when nothing due is queued or being worked on (tests poll it together with the store).
  bool idle() const;
  // Wakes the worker to re-read the clock (tests that advanced a ManualClock).
  void wake();

  struct Impl;

 private:
  explicit WorkloadControllers(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gantry::cloud::controllers
