#include "cloudcore/controllers/rollout_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace gantry::cloud::controllers::rollout {

namespace {

constexpr size_t kFailuresKept = 5;

uint64_t fnv64(std::string_view a, std::string_view b) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::string_view s) {
    for (unsigned char c : s) {
      h ^= c;
      h *= 1099511628211ull;
    }
  };
  mix(a);
  mix("/");
  mix(b);
  return h;
}

bool matches(const std::map<std::string, std::string>& selector,
             const std::map<std::string, std::string>& labels) {
  for (const auto& [k, v] : selector) {
    auto it = labels.find(k);
    if (it == labels.end() || it->second != v) return false;
  }
  return true;
}

std::string selector_text(const std::map<std::string, std::string>& selector) {
  std::string out;
  for (const auto& [k, v] : selector) out += (out.empty() ? "" : ",") + k + "=" + v;
  return out;
}

// Whether the run of `status` is in progress (not finished, and updating something).
bool running(const Status& s) {
  return !finished(s.phase) && s.current_step > 0 && s.update_revision != s.stable_revision;
}

std::string duration_text(int64_t ms) {
  int64_t s = ms / 1000;
  if (s % 3600 == 0 && s >= 3600) return fmt::format("{}h", s / 3600);
  if (s % 60 == 0 && s >= 60) return fmt::format("{}m", s / 60);
  return fmt::format("{}s", s);
}

}  // namespace

std::string_view phase_name(Phase phase) {
  switch (phase) {
    case Phase::kProgressing:
      return "Progressing";
    case Phase::kPaused:
      return "Paused";
    case Phase::kWaitingApproval:
      return "WaitingApproval";
    case Phase::kCompleted:
      return "Completed";
    case Phase::kAborted:
      return "Aborted";
    case Phase::kRolledBack:
      return "RolledBack";
  }
  return "Progressing";
}

std::optional<Phase> parse_phase(std::string_view name) {
  for (Phase p : {Phase::kProgressing, Phase::kPaused, Phase::kWaitingApproval, Phase::kCompleted,
                  Phase::kAborted, Phase::kRolledBack})
    if (phase_name(p) == name) return p;
  return std::nullopt;
}

bool finished(Phase phase) {
  return phase == Phase::kCompleted || phase == Phase::kAborted || phase == Phase::kRolledBack;
}

int64_t Threshold::allowed(int64_t updated) const {
  if (!percent) return value;
  return static_cast<int64_t>(
      std::floor(static_cast<double>(value) * static_cast<double>(updated) / 100.0));
}

namespace {

std::vector<std::pair<uint64_t, const NodeInfo*>> ordered(const std::vector<NodeInfo>& fleet,
                                                          std::string_view seed) {
  std::vector<std::pair<uint64_t, const NodeInfo*>> order;
  order.reserve(fleet.size());
  for (const auto& n : fleet) order.emplace_back(fnv64(seed, n.name), &n);
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first < b.first : a.second->name < b.second->name;
  });
  return order;
}

}  // namespace

std::vector<std::string> step_order(const std::vector<NodeInfo>& fleet, std::string_view seed) {
  std::vector<std::string> out;
  out.reserve(fleet.size());
  for (const auto& [h, n] : ordered(fleet, seed)) out.push_back(n->name);
  return out;
}

std::set<std::string> step_nodes(const Spec& spec, int k, const std::vector<NodeInfo>& fleet,
                                 std::string_view seed) {
  std::set<std::string> out;
  auto order = ordered(fleet, seed);
  int last = std::min<int>(k, static_cast<int>(spec.steps.size()));
  for (int i = 0; i < last; ++i) {
    const Step& step = spec.steps[i];
    std::vector<const NodeInfo*> candidates;
    for (const auto& [h, n] : order)
      if (matches(step.node_selector, n->labels)) candidates.push_back(n);
    auto want =
        static_cast<size_t>(std::ceil(static_cast<double>(std::clamp(step.percent, 0, 100)) *
                                      static_cast<double>(candidates.size()) / 100.0));
    for (size_t j = 0; j < want && j < candidates.size(); ++j) out.insert(candidates[j]->name);
  }
  return out;
}

Partition partition(const Spec& spec, const Status& status, const std::string& target_revision,
                    const std::vector<NodeInfo>& fleet, std::string_view seed) {
  Partition p;
  p.stable = status.stable_revision.empty() ? target_revision : status.stable_revision;
  p.update = target_revision;
  if (status.stable_revision.empty()) {
    // Not seen by the rollout controller yet: change nothing until it has chosen `stable`.
    p.hold = true;
    p.stable = initial_stable(target_revision, fleet);
    return p;
  }
  if (status.update_revision != target_revision && target_revision != status.stable_revision) {
    p.hold = true;  // a template change the rollout has not started a run for yet
    return p;
  }
  if (!running(status) || status.phase == Phase::kAborted ||
      target_revision == status.stable_revision)
    return p;  // everything runs `stable` (== update once a run completed)
  const int k = status.current_step;
  auto set = step_nodes(spec, k, fleet, seed);
  // A step whose pre-pull is not over yet: its new nodes wait (those already updated keep it).
  bool gated = k >= 1 && k <= static_cast<int>(spec.steps.size()) &&
               spec.steps[static_cast<size_t>(k - 1)].pre_pull && status.pre_pull_step < k;
  std::set<std::string> before =
      gated ? step_nodes(spec, k - 1, fleet, seed) : std::set<std::string>{};
  for (const auto& n : fleet) {
    if (!set.count(n.name)) continue;
    if (gated && !before.count(n.name) && n.revision != p.update) continue;
    // Paused: no node starts the update; those that run it keep it.
    if (spec.paused && n.revision != p.update) continue;
    p.allowed.insert(n.name);
  }
  return p;
}

std::string initial_stable(const std::string& target_revision, const std::vector<NodeInfo>& fleet) {
  std::map<std::string, int64_t> count;
  for (const auto& n : fleet)
    if (!n.revision.empty() && n.revision != target_revision) ++count[n.revision];
  std::string best = target_revision;
  int64_t most = 0;
  for (const auto& [rev, c] : count)
    if (c > most) {
      best = rev;
      most = c;
    }
  return best;
}

namespace {

struct Tally {
  Counts counts;
  std::vector<Failure> failures;
  bool step_done = true;
  std::optional<int64_t> next_deadline_ms;
};

Tally tally(const Spec& spec, const Partition& part, const std::set<std::string>& step_set,
            bool in_run, const std::vector<NodeInfo>& fleet, int64_t now_ms) {
  Tally t;
  t.counts.nodes = static_cast<int64_t>(fleet.size());
  t.counts.step_nodes = static_cast<int64_t>(step_set.size());
  int64_t deadline_ms = spec.progress_deadline_s * 1000;
  for (const auto& n : fleet) {
    const std::string& want = part.desired(n.name);
    if (!n.reachable && n.revision != want) ++t.counts.waiting_offline;
    bool updated = n.revision == part.update && !n.revision.empty();
    if (updated) {
      ++t.counts.updated;
      if (n.ready) ++t.counts.ready;
    }
    bool failed = false;
    if (updated && n.reachable && !n.ready) {
      std::string why = n.failure;
      if (why.empty() && n.pod_created_ms > 0) {
        if (n.pod_created_ms + deadline_ms <= now_ms)
          why = "NotReadyAfterDeadline";
        else if (!t.next_deadline_ms || n.pod_created_ms + deadline_ms < *t.next_deadline_ms)
          t.next_deadline_ms = n.pod_created_ms + deadline_ms;
      }
      if (!why.empty()) {
        failed = true;
        ++t.counts.failed;
        if (t.failures.size() < kFailuresKept) t.failures.push_back({n.name, why});
      }
    }
    if (in_run && step_set.count(n.name) && n.reachable && !(updated && (n.ready || failed)))
      t.step_done = false;
  }
  return t;
}

void with_counts(Status& s, const Tally& t) {
  s.counts = t.counts;
  s.failures = t.failures;
}

}  // namespace

Decision plan(const Spec& spec, const Status& prior, const std::string& target_revision,
              const std::vector<NodeInfo>& fleet, int64_t now_ms, std::string_view seed,
              const std::map<int, PrePullView>& pre_pulls) {
  Decision d;
  Status& s = d.status;
  s = prior;
  int n_steps = static_cast<int>(spec.steps.size());

  // A new Rollout: what the fleet runs now is stable.
  if (s.stable_revision.empty()) {
    s.stable_revision = initial_stable(target_revision, fleet);
    s.update_revision = s.stable_revision;
    s.phase = Phase::kCompleted;
    s.current_step = 0;
  }

  // The target's template changed.
  if (target_revision != s.update_revision) {
    if (target_revision == s.stable_revision) {
      // Back to stable during a run (kubectl rollout undo): every node returns to it at once.
      bool was_running = running(s) || s.phase == Phase::kAborted;
      s.update_revision = target_revision;
      s.step_done_ms = 0;
      if (was_running) {
        s.phase = Phase::kRolledBack;
        s.reason = kReasonRolledBack;
        s.message = fmt::format("the target went back to revision {}; every node returns to it",
                                target_revision);
      }
      d.reset_controls = true;
    } else {
      // A new run. After a completed run its update is already stable; during a run, the run's
      // stable stays (a third template replaces the second one, staged from step 1 again).
      s.update_revision = target_revision;
      s.current_step = n_steps > 0 ? 1 : 0;
      s.step_started_ms = now_ms;
      s.step_done_ms = 0;
      s.phase = Phase::kProgressing;
      s.reason = kReasonProgressing;
      s.message.clear();
      s.pre_pull_step = 0;
      s.pre_pull_result.clear();
      d.reset_controls = true;
    }
  }

  Spec effective = spec;
  if (d.reset_controls) {
    effective.approved_step = 0;
    effective.abort = false;
    if (prior.reason == kReasonFailureThreshold) effective.paused = false;
  }

  if (!running(s)) {
    Partition part = partition(effective, s, target_revision, fleet, seed);
    Tally t = tally(effective, part, {}, false, fleet, now_ms);
    with_counts(s, t);
    if (s.phase == Phase::kCompleted) {
      s.reason = kReasonCompleted;
      s.message = s.counts.waiting_offline > 0
                      ? fmt::format(
                            "revision {} runs on every reachable node; {} unreachable "
                            "node(s) get it when they return",
                            s.stable_revision, s.counts.waiting_offline)
                      : fmt::format("revision {} runs on every node", s.stable_revision);
    }
    return d;
  }

  if (effective.abort) {
    s.phase = Phase::kAborted;
    s.reason = kReasonAborted;
    s.message = fmt::format("aborted at step {}; every node returns to revision {}", s.current_step,
                            s.stable_revision);
    Partition part = partition(effective, s, target_revision, fleet, seed);
    with_counts(s, tally(effective, part, {}, false, fleet, now_ms));
    return d;
  }

  for (int guard = 0; guard <= n_steps; ++guard) {
    const int k = s.current_step;
    const Step& step = spec.steps[static_cast<size_t>(k - 1)];
    auto set = step_nodes(effective, k, fleet, seed);
    auto view = pre_pulls.find(k);
    // The step's pre-pull: on its new nodes that are reachable and do not run the update yet.
    std::optional<PrePullOrder> order;
    if (step.pre_pull && s.pre_pull_step < k) {
      PrePullOrder o;
      o.step = k;
      o.deadline_ms = s.step_started_ms + effective.progress_deadline_s * 1000;
      auto before = step_nodes(effective, k - 1, fleet, seed);
      for (const auto& n : fleet)
        if (set.count(n.name) && !before.count(n.name) && n.reachable &&
            n.revision != target_revision)
          o.nodes.push_back(n.name);
      bool timed_out = now_ms >= o.deadline_ms;
      if (o.nodes.empty() && view == pre_pulls.end()) {
        s.pre_pull_step = k;
        s.pre_pull_result = fmt::format("step {}: no node to pre-pull", k);
      } else if (view != pre_pulls.end() && view->second.observed &&
                 (view->second.finished || view->second.pending == 0 || timed_out)) {
        // Over: every node pulled or failed, or only offline ones are left (they catch up when
        // they return), or the deadline passed.
        const PrePullView& v = view->second;
        s.pre_pull_step = k;
        if (v.finished && v.desired == 0 && !v.failure.empty())
          s.pre_pull_result =
              fmt::format("step {}: no pre-pull ({}); the step went on without it", k, v.failure);
        else
          s.pre_pull_result = fmt::format(
              "step {}: {} of {} node(s) pre-pulled{}{}{}", k, v.succeeded, v.desired,
              v.failed > 0 ? fmt::format(", {} failed", v.failed) : "",
              v.waiting_offline > 0
                  ? fmt::format(", {} offline (pull when they return)", v.waiting_offline)
                  : "",
              !v.finished && v.pending > 0
                  ? fmt::format(", {} not done after progressDeadlineSeconds ({} s)", v.pending,
                                effective.progress_deadline_s)
                  : "");
      } else if (timed_out) {
        s.pre_pull_step = k;
        s.pre_pull_result = fmt::format(
            "step {}: the pre-pull did not report within progressDeadlineSeconds ({} s); the "
            "step went on without it",
            k, effective.progress_deadline_s);
      } else {
        order = std::move(o);
      }
    }
    Partition part = partition(effective, s, target_revision, fleet, seed);
    Tally t = tally(effective, part, set, true, fleet, now_ms);
    with_counts(s, t);
    if (view != pre_pulls.end()) s.counts.pre_pulled = view->second.succeeded;
    int64_t tolerated = effective.failure_threshold.allowed(t.counts.updated);

    if (t.counts.failed > tolerated) {
      std::string list;
      for (const auto& f : t.failures)
        list += fmt::format("{}{} ({})", list.empty() ? "" : ", ", f.node, f.reason);
      s.phase = Phase::kPaused;
      s.reason = kReasonFailureThreshold;
      s.message = fmt::format(
          "paused at step {}: {} of {} updated pods on reachable nodes failed (threshold {}): "
          "{}{}; undo, abort, fix the image or raise failureThreshold, then resume",
          k, t.counts.failed, t.counts.updated, tolerated, list,
          t.counts.failed > static_cast<int64_t>(t.failures.size()) ? ", ..." : "");
      if (!effective.paused) d.set_paused = true;
      return d;
    }
    if (effective.paused) {
      s.phase = Phase::kPaused;
      if (s.reason != kReasonFailureThreshold) {
        s.reason = kReasonPausedByUser;
        s.message = fmt::format("paused at step {} ({} of {} nodes updated)", k, t.counts.updated,
                                t.counts.nodes);
      }
      return d;
    }
    if (order) {
      const PrePullView* v = view != pre_pulls.end() ? &view->second : nullptr;
      s.phase = Phase::kProgressing;
      s.reason = kReasonPrePulling;
      s.step_done_ms = 0;
      s.message = fmt::format(
          "step {}/{}: pre-pulling the update's images on {} node(s) ({} done, {} failed, {} "
          "offline); their pods are replaced after",
          k, n_steps, v ? v->desired : static_cast<int64_t>(order->nodes.size()),
          v ? v->succeeded : 0, v ? v->failed : 0, v ? v->waiting_offline : 0);
      d.wake_at_ms = order->deadline_ms;
      d.pre_pull = std::move(order);
      return d;
    }
    if (!t.step_done) {
      s.phase = Phase::kProgressing;
      s.reason = kReasonProgressing;
      s.step_done_ms = 0;
      s.message = fmt::format(
          "step {}/{}: updating {} node(s){} ({} updated, {} ready, {} waiting offline)", k,
          n_steps, t.counts.step_nodes,
          step.node_selector.empty()
              ? ""
              : fmt::format(" matching {}", selector_text(step.node_selector)),
          t.counts.updated, t.counts.ready, t.counts.waiting_offline);
      d.wake_at_ms = t.next_deadline_ms;
      return d;
    }
    if (s.step_done_ms == 0) s.step_done_ms = now_ms;
    // While the step waits (a timed pause or an approval), the next step's pre-pull runs already,
    // so that the step does not wait for it once it may go on.
    auto pre_pull_next = [&] {
      if (k >= n_steps || !spec.steps[static_cast<size_t>(k)].pre_pull || s.pre_pull_step > k)
        return;
      if (auto next = pre_pulls.find(k + 1); next != pre_pulls.end()) {
        s.message += fmt::format("; step {}'s images are pre-pulled meanwhile ({} of {} done)",
                                 k + 1, next->second.succeeded, next->second.desired);
        return;
      }
      PrePullOrder o;
      o.step = k + 1;
      o.deadline_ms = now_ms + effective.progress_deadline_s * 1000;
      auto next_set = step_nodes(effective, k + 1, fleet, seed);
      for (const auto& n : fleet)
        if (next_set.count(n.name) && !set.count(n.name) && n.reachable &&
            n.revision != target_revision)
          o.nodes.push_back(n.name);
      if (o.nodes.empty()) return;
      s.message += fmt::format("; step {}'s images are pre-pulled meanwhile", k + 1);
      d.pre_pull = std::move(o);
    };
    if (step.pause) {
      if (step.pause_ms) {
        int64_t until = s.step_done_ms + *step.pause_ms;
        if (now_ms < until) {
          s.phase = Phase::kPaused;
          s.reason = kReasonStepPause;
          s.message = fmt::format("step {}/{} done; waits {} before step {}", k, n_steps,
                                  duration_text(*step.pause_ms), k + 1);
          d.wake_at_ms = until;
          pre_pull_next();
          return d;
        }
      } else if (effective.approved_step < k) {
        s.phase = Phase::kWaitingApproval;
        s.reason = kReasonWaitingApproval;
        s.message = fmt::format(
            "step {}/{} done ({} of {} nodes updated); approve with spec.approvedStep: {} "
            "(kubectl patch rollout NAME --type merge -p '{{\"spec\":{{\"approvedStep\":{}}}}}')",
            k, n_steps, t.counts.updated, t.counts.nodes, k, k);
        pre_pull_next();
        return d;
      }
    }
    if (k >= n_steps) {
      s.phase = Phase::kCompleted;
      s.reason = kReasonCompleted;
      s.stable_revision = s.update_revision;
      s.message = t.counts.waiting_offline > 0
                      ? fmt::format(
                            "revision {} runs on every reachable node; {} unreachable "
                            "node(s) get it when they return",
                            s.stable_revision, t.counts.waiting_offline)
                      : fmt::format("revision {} runs on every node", s.stable_revision);
      return d;
    }
    s.current_step = k + 1;
    s.step_started_ms = now_ms;
    s.step_done_ms = 0;
  }
  return d;
}

}  // namespace gantry::cloud::controllers::rollout
