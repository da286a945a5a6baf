// batch/v1 Job: run pods from the template, at most spec.parallelism at a time, until
// spec.completions of them have succeeded (Complete), or fail the Job once more pods failed than
// spec.backoffLimit (BackoffLimitExceeded) or it ran longer than spec.activeDeadlineSeconds
// (DeadlineExceeded); the pods still running then are deleted. Counts come from the phases the
// edges report for the Job's own pods (ownerReference controller: true). NonIndexed only.
//
// Back-off: a failed pod is replaced after 10 s * 2^(failures - 1), at most 6 minutes, counted
// from when this controller saw the failure count grow (Kubernetes counts from the pods' finish
// times; the delay is kept in memory, so a restarted cloudcore counts it from its start).
//
// Edge rules: a pod on an unreachable node is neither failed nor replaced. It keeps counting as
// active (it keeps running there; its outcome arrives when the node reports), and the number of
// those is `status.unreachable` with a `Reachable` condition. A pod being deleted on an
// unreachable node still holds its slot: it may still be running there.
#include <fmt/format.h>

#include <algorithm>

#include "cloudcore/controllers/workloads_impl.h"
#include "cloudcore/registry/keys.h"
#include "common/base/json.h"

namespace gantry::cloud::controllers {

namespace {

constexpr int64_t kBackoffBaseMs = 10'000;
constexpr int64_t kBackoffCapMs = 360'000;

bool condition_true(const json& status, const char* type) {
  const json* c = find_condition(status, type);
  return c && c->value("status", "") == "True";
}

void set_count(json& status, const char* field, int64_t n, bool keep_zero) {
  if (n > 0 || keep_zero)
    status[field] = n;
  else
    status.erase(field);
}

}  // namespace

Status WorkloadControllers::Impl::reconcile_job(const std::string& qkey, const std::string& key) {
  if (!pods_seen(qkey)) return common::ok_status();  // the pods watch will bring it back
  expect.erase(qkey);

  ObjRec job;
  std::vector<PodRec> owned_pods;
  std::vector<PodView> owned;
  {
    std::lock_guard lock(mu);
    auto& m = objs[static_cast<int>(WKind::kJob)];
    auto it = m.find(key);
    if (it == m.end()) {
      job_backoff.erase(key);
      return common::ok_status();
    }
    job = it->second;
    if (auto d = dependents.find(job.uid); d != dependents.end())
      for (const auto& pk : d->second) {
        auto p = pods.find(pk);
        if (p != pods.end() && p->second.controller_uid == job.uid) owned_pods.push_back(p->second);
      }
    for (const auto& p : owned_pods) owned.push_back(view_locked(p));
  }
  const json spec = job.obj.value("spec", json::object());
  const int64_t parallelism = std::max<int64_t>(0, common::json_int_at(spec, {"parallelism"}, 1));
  std::optional<int64_t> completions;
  if (spec.contains("completions") && spec["completions"].is_number_integer())
    completions = std::max<int64_t>(0, spec["completions"].get<int64_t>());
  const int64_t backoff_limit = common::json_int_at(spec, {"backoffLimit"}, 6);
  const bool suspend = spec.value("suspend", json(false)) == true;
  const bool replace_terminating =
      spec.value("podReplacementPolicy", json("TerminatingOrFailed")) != "Failed";
  const bool on_failure =
      common::json_string_at(spec, {"template", "spec", "restartPolicy"}) == "OnFailure";
  const int64_t now_ms = clock.unix_ms();

  json status = job.obj.value("status", json::object());
  if (!status.is_object()) status = json::object();

  // Count the pods.
  int64_t succeeded = 0, failed = 0, restarts = 0, terminating = 0, held = 0;
  std::vector<PodView> active;
  for (const auto& v : owned) {
    auto phase = v.status ? v.status->phase : v1::POD_PHASE_UNSPECIFIED;
    if (phase == v1::POD_PHASE_SUCCEEDED) {
      ++succeeded;
      continue;
    }
    if (phase == v1::POD_PHASE_FAILED) {
      ++failed;
      continue;
    }
    if (on_failure && v.status) restarts += v.status->restarts;
    if (v.pod->terminating) {
      ++terminating;
      // Not active, but its slot is not free while it may still run: on an unreachable node, or
      // always under podReplacementPolicy: Failed.
      if (v.node_unreachable || !replace_terminating) ++held;
      continue;
    }
    active.push_back(v);
  }

  Revision wrote = 0;
  Status failure = common::ok_status();
  auto note = [&](const Result<Revision>& r) {
    if (r.ok())
      wrote = std::max(wrote, *r);
    else if (failure.ok())
      failure = r.status();
    return r.ok();
  };
  // Deletes active pods (those on reachable nodes first, newest first) until `keep` are left.
  auto delete_active = [&](size_t keep) {
    std::stable_sort(active.begin(), active.end(), [](const PodView& a, const PodView& b) {
      if (a.node_unreachable != b.node_unreachable) return !a.node_unreachable;
      return a.pod->created_ms > b.pod->created_ms;
    });
    while (active.size() > keep) {
      if (note(delete_pod(*active.front().pod))) ++terminating;
      active.erase(active.begin());
    }
  };
  std::optional<int64_t> next_check_ms;
  auto check_at = [&](int64_t due) { next_check_ms = std::min(next_check_ms.value_or(due), due); };

  bool finished = condition_true(status, "Complete") || condition_true(status, "Failed");
  if (!finished) {
    if (!status.contains("startTime") && !suspend) status["startTime"] = rfc3339_ms(now_ms);
    std::optional<int64_t> start_ms =
        parse_rfc3339_ms(status.value("startTime", json("")).get<std::string>());
    std::optional<int64_t> deadline_ms;
    if (spec.contains("activeDeadlineSeconds") &&
        spec["activeDeadlineSeconds"].is_number_integer() && start_ms && !suspend)
      deadline_ms = *start_ms + spec["activeDeadlineSeconds"].get<int64_t>() * 1000;
    bool complete = completions ? succeeded >= *completions : succeeded > 0 && active.empty();
    if (failed + restarts > backoff_limit) {
      set_condition(status, "Failed", "True", "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit", now_ms);
      finished = true;
    } else if (deadline_ms && now_ms >= *deadline_ms) {
      set_condition(status, "Failed", "True", "DeadlineExceeded",
                    "Job was active longer than specified deadline", now_ms);
      finished = true;
    } else if (complete) {
      set_condition(status, "Complete", "True", "CompletionsReached",
                    "Reached expected number of succeeded pods", now_ms);
      status["completionTime"] = rfc3339_ms(now_ms);
      finished = true;
    } else if (suspend) {
      delete_active(0);
      set_condition(status, "Suspended", "True", "JobSuspended", "Job suspended", now_ms);
    } else {
      if (condition_true(status, "Suspended")) {
        set_condition(status, "Suspended", "False", "JobResumed", "Job resumed", now_ms);
        status["startTime"] = rfc3339_ms(now_ms);  // the deadline counts from the resumption
        deadline_ms.reset();
        if (spec.contains("activeDeadlineSeconds") &&
            spec["activeDeadlineSeconds"].is_number_integer())
          deadline_ms = now_ms + spec["activeDeadlineSeconds"].get<int64_t>() * 1000;
      }
      if (deadline_ms) check_at(*deadline_ms);
      int64_t want = completions ? std::min(parallelism, *completions - succeeded)
                                 : (succeeded > 0 ? 0 : parallelism);
      want = std::max<int64_t>(0, want);
      int64_t have = static_cast<int64_t>(active.size()) + held;
      if (have < want && !job.deleting) {
        JobBackoff& b = job_backoff[key];
        if (failed > b.failed) b = {failed, now_ms};
        int64_t ready_at = 0;
        if (failed > 0)
          ready_at = b.since_ms +
                     std::min(kBackoffCapMs, kBackoffBaseMs << std::min<int64_t>(failed - 1, 10));
        if (now_ms < ready_at) {
          check_at(ready_at);
        } else {
          size_t n = std::min<size_t>(static_cast<size_t>(want - have), options.burst);
          json ref = owner_ref_json("Job", job.name, job.uid);
          ref["apiVersion"] = "batch/v1";
          note(create_pods(job.ns, spec.value("template", json::object()), job.name, ref, n, {}));
          if (static_cast<size_t>(want - have) > n)
            queue.add_after(qkey, std::chrono::milliseconds(1));
        }
      } else if (static_cast<int64_t>(active.size()) > want) {
        delete_active(static_cast<size_t>(std::max<int64_t>(0, want - held)));  // parallelism fell
      }
    }
  }
  if (finished) {
    delete_active(0);  // what still runs of a finished Job (Kubernetes deletes it too)
    job_backoff.erase(key);
    // ttlSecondsAfterFinished: the Job goes (and the collector takes its pods) that long after.
    if (spec.contains("ttlSecondsAfterFinished") &&
        spec["ttlSecondsAfterFinished"].is_number_integer()) {
      std::optional<int64_t> done_ms;
      if (status.contains("completionTime"))
        done_ms = parse_rfc3339_ms(status["completionTime"].get<std::string>());
      else if (const json* c = find_condition(status, "Failed"))
        done_ms = parse_rfc3339_ms(c->value("lastTransitionTime", ""));
      if (done_ms) {
        int64_t due = *done_ms + spec["ttlSecondsAfterFinished"].get<int64_t>() * 1000;
        if (now_ms >= due && !job.deleting) {
          auto r = store.txn({Op::remove(job.key, job.mod_revision)});
          if (!r.ok() && r.status().code() != Code::kNotFound) return r.status();
          return common::ok_status();
        }
        check_at(due);
      }
    }
  }
  if (wrote) expect[qkey] = wrote;

  // Status.
  int64_t ready = 0, unreachable = 0;
  for (const auto& v : active) {
    if (v.ready()) ++ready;
    if (v.node_unreachable) ++unreachable;
  }
  set_count(status, "active", static_cast<int64_t>(active.size()), false);
  set_count(status, "succeeded", succeeded, false);
  set_count(status, "failed", failed, false);
  set_count(status, "ready", ready, true);
  set_count(status, "terminating", terminating, true);
  set_count(status, "unreachable", unreachable, false);
  if (unreachable > 0) {
    set_condition(status, "Reachable", "False", "NodesUnreachable",
                  fmt::format("{} of {} active pods are on unreachable nodes; they keep running "
                              "there and count as active until their node reports",
                              unreachable, active.size()),
                  now_ms);
  } else if (find_condition(status, "Reachable")) {
    set_condition(status, "Reachable", "True", "AllReachable",
                  "every active pod is on a reachable node", now_ms);
  }
  Status s = write_status(job, status);
  if (!s.ok() && failure.ok()) failure = s;

  if (next_check_ms)
    queue.add_after(qkey, std::chrono::milliseconds(std::max<int64_t>(1, *next_check_ms - now_ms)));
  if (failure.code() == Code::kInvalidArgument) return common::ok_status();  // shown in status
  return failure;
}

}  // namespace gantry::cloud::controllers
