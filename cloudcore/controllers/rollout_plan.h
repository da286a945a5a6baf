// The staged rollout state machine (gantry.io/v1 Rollout, docs/workloads.md "Rolling out an
// upgrade to a province"), as pure functions over a snapshot of the target's fleet: no store, no
// clock, no threads. The Rollout controller (rollout_controller.cc) feeds it the nodes of a
// DaemonSet and writes back what it decides; the DaemonSet controller asks `partition` which
// revision each node should run.
//
// The model:
// - A Rollout follows one workload (its "target"). `stable` is the revision the fleet ran before
//   the update, `update` the target's current template. While a run is in progress, only the nodes
//   of the current step (and of the steps before it) may run `update`; every other node keeps (or
//   goes back to) `stable`.
// - Step k's node set is cumulative: the nodes of steps 1..k-1, plus `percent` % (rounded up) of
//   the fleet's nodes that match step k's `nodeSelector` (all of the fleet without one), taken in
//   a fixed pseudo-random order of the node names (seeded by the rollout's uid), so a step never
//   shrinks and the same nodes are chosen on every pass.
// - A step is done when every REACHABLE node of its set runs `update` and its pod is Ready, or has
//   failed within the failure threshold. Unreachable nodes neither hold a step nor count as
//   failures; they are reported as waiting-offline and get, when they return, the revision the
//   rollout wants for them at that moment (`update` if they are in the current step's set,
//   `stable` otherwise — so after a rollback or an abort they come back to the old revision).
// - A failed pod: an updated pod on a reachable node that crash-loops, cannot pull or create its
//   image, has failed, or is not Ready `progressDeadlineSeconds` after it was created. More
//   failures than `failureThreshold` (a count, or a percentage of the updated pods on reachable
//   nodes) pause the rollout by itself (spec.paused is set, with a condition saying why).
// - After a done step: `pause: {}` waits until `spec.approvedStep` reaches the step, `pause:
//   {duration}` waits that long, no pause goes on. After the last step (which must cover every
//   node) the run is Completed and `update` becomes `stable`.
// - `spec.paused` freezes a run: no node starts the update (a returning node keeps what it has).
//   `spec.abort` ends a run: every node goes back to `stable` (phase Aborted). A target whose
//   template goes back to `stable` during a run (kubectl rollout undo) ends it as RolledBack.
//   A template change to a third revision starts a new run from step 1 with the same `stable`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace gantry::cloud::controllers::rollout {

enum class Phase { kProgressing, kPaused, kWaitingApproval, kCompleted, kAborted, kRolledBack };
std::string_view phase_name(Phase phase);
std::optional<Phase> parse_phase(std::string_view name);
// Completed, Aborted and RolledBack: nothing to approve until the target changes again.
bool finished(Phase phase);

struct Step {
  int percent = 100;                                 // of the nodes `node_selector` matches
  std::map<std::string, std::string> node_selector;  // empty: the whole fleet
  bool pause = false;                                // wait after the step is done
  std::optional<int64_t> pause_ms;                   // with pause: wait this long; none: approval
  // Before the step's new nodes take the update, its images are pulled on them (an ImagePullJob
  // the controller makes); the step waits for it, at most progressDeadlineSeconds.
  bool pre_pull = false;
};

struct Threshold {
  int64_t value = 0;
  bool percent = false;
  // The failures tolerated among `updated` pods on reachable nodes.
  int64_t allowed(int64_t updated) const;
};

struct Spec {
  std::vector<Step> steps;
  Threshold failure_threshold;  // default 0: the first failure pauses
  int64_t progress_deadline_s = 600;
  bool paused = false;
  int approved_step = 0;  // steps 1..approved_step have their approval pause lifted
  bool abort = false;
};

// Why a rollout is paused (status.reason).
inline constexpr std::string_view kReasonPausedByUser = "PausedByUser";
inline constexpr std::string_view kReasonFailureThreshold = "FailureThresholdExceeded";
inline constexpr std::string_view kReasonStepPause = "StepPause";
inline constexpr std::string_view kReasonWaitingApproval = "WaitingForApproval";
inline constexpr std::string_view kReasonProgressing = "Progressing";
inline constexpr std::string_view kReasonCompleted = "Completed";
inline constexpr std::string_view kReasonAborted = "Aborted";
inline constexpr std::string_view kReasonRolledBack = "RolledBack";
inline constexpr std::string_view kReasonHold = "TargetChanged";
inline constexpr std::string_view kReasonPrePulling = "PrePulling";

struct Counts {
  int64_t nodes = 0;            // the target's nodes (those that should run its pod)
  int64_t step_nodes = 0;       // nodes of the current step's set
  int64_t updated = 0;          // nodes running `update`
  int64_t ready = 0;            // of those, Ready (as last reported)
  int64_t failed = 0;           // of those, failed on a reachable node
  int64_t waiting_offline = 0;  // unreachable nodes not running the revision meant for them
  int64_t pre_pulled = 0;       // nodes of the current step's pre-pull that have the images
  friend bool operator==(const Counts&, const Counts&) = default;
};

struct Failure {
  std::string node;
  std::string reason;  // CrashLoopBackOff, ErrImagePull, NotReadyAfterDeadline, Failed...
  friend bool operator==(const Failure&, const Failure&) = default;
};

struct Status {
  Phase phase = Phase::kCompleted;
  int current_step = 0;         // 1-based; 0 before the first run
  std::string stable_revision;  // "" before the controller first saw the target
  std::string update_revision;
  int64_t step_started_ms = 0;
  int64_t step_done_ms = 0;  // when the current step's nodes were all done (0: not yet)
  std::string reason;
  std::string message;
  Counts counts;
  std::vector<Failure> failures;  // the first few, for the message and `kubectl describe`
  // The last step of this run whose pre-pull is over (done, skipped or timed out); until then a
  // step with `pre_pull` lets only the nodes of the steps before it (and those that already run
  // the update) take the update. 0 at the start of a run.
  int pre_pull_step = 0;
  std::string pre_pull_result;  // how that pre-pull ended ("step 2: 5 of 6 node(s) ...")
  friend bool operator==(const Status&, const Status&) = default;
};

// One node of the target's fleet, as the DaemonSet sees it.
struct NodeInfo {
  std::string name;
  std::map<std::string, std::string> labels;
  bool reachable = true;
  std::string revision;  // the revision of its active pod; "" when it has none
  bool ready = false;    // that pod's Ready, as last reported
  // The pod cannot run: a container waiting in CrashLoopBackOff / ErrImagePull /
  // ImagePullBackOff / InvalidImageName / CreateContainerError..., or the pod Failed. "" when not.
  std::string failure;
  int64_t pod_created_ms = 0;
};

// Which revision each node should run now.
struct Partition {
  // The rollout has not caught up with a template change yet: replace nothing (new pods get
  // `stable`).
  bool hold = false;
  std::string stable;
  std::string update;
  std::set<std::string> allowed;  // nodes that should run `update`; every other node `stable`
  const std::string& desired(const std::string& node) const {
    return allowed.count(node) ? update : stable;
  }
};

// The fleet's node names in the fixed pseudo-random order the steps take them (seeded by the
// rollout): a step without nodeSelector takes the first of them.
std::vector<std::string> step_order(const std::vector<NodeInfo>& fleet, std::string_view seed);

// The nodes of step `k` (1-based) of `spec` over `fleet`, cumulative over the steps before it.
std::set<std::string> step_nodes(const Spec& spec, int k, const std::vector<NodeInfo>& fleet,
                                 std::string_view seed);

// What the DaemonSet controller should do with the rollout's current status and a target whose
// template hash is `target_revision`.
Partition partition(const Spec& spec, const Status& status, const std::string& target_revision,
                    const std::vector<NodeInfo>& fleet, std::string_view seed);

// A step's pre-pull as its ImagePullJob reports it (the controller reads the job's status).
struct PrePullView {
  bool observed = false;  // the job has a status (its controller has seen it)
  bool finished = false;  // phase Succeeded or Failed
  int64_t desired = 0;
  int64_t succeeded = 0;
  int64_t failed = 0;
  int64_t pending = 0;  // connected nodes waiting for their turn, or pulling
  int64_t waiting_offline = 0;
  std::string failure;  // the job's Failed condition's message, when it has one
};

// What the controller should pull: the update's images on `nodes` (the step's new nodes that are
// reachable and do not run the update yet), at most until `deadline_ms`.
struct PrePullOrder {
  int step = 0;
  std::vector<std::string> nodes;
  int64_t deadline_ms = 0;
};

struct Decision {
  Status status;
  // The current step is waiting for its pre-pull, or (step + 1) the current step waits for a
  // pause or an approval and the next step's pre-pull can start meanwhile.
  std::optional<PrePullOrder> pre_pull;
  // spec writes the controller makes: at the start of a run the run's controls are cleared
  // (approvedStep 0, abort false, and paused when the last run paused itself); a failure pause
  // sets paused.
  bool reset_controls = false;
  bool set_paused = false;
  std::optional<int64_t> wake_at_ms;  // look again then (a pause's end, a pod's deadline)
};

// One pass of the state machine. `pre_pulls`: the pre-pull jobs of this run, by step.
Decision plan(const Spec& spec, const Status& prior, const std::string& target_revision,
              const std::vector<NodeInfo>& fleet, int64_t now_ms, std::string_view seed,
              const std::map<int, PrePullView>& pre_pulls = {});

// The stable revision a new Rollout starts from: the most common revision among the fleet's pods
// other than `target_revision` (an update already begun before the Rollout was made is staged
// too), or `target_revision` when every pod runs it.
std::string initial_stable(const std::string& target_revision, const std::vector<NodeInfo>& fleet);

}  // namespace gantry::cloud::controllers::rollout
