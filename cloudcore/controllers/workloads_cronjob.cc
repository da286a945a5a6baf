// batch/v1 CronJob: at each scheduled minute (UTC) create a Job from spec.jobTemplate, named
// <cronjob>-<minutes since 1970> (so a minute is never run twice, whatever the restarts), owned
// with controller: true; honour concurrencyPolicy (Allow, Forbid: skip while a run is active,
// Replace: delete the active runs first), startingDeadlineSeconds (a run missed by more is not
// made), suspend, and the history limits (finished Jobs beyond them are deleted, oldest first,
// with their pods). Only the most recent missed minute is run, as Kubernetes does.
//
// The Job is written to the store directly (not through the API), so it gets here what the API
// would give it: Kubernetes' Job defaults and the generated selector.
#include <fmt/format.h>

#include <algorithm>

#include "cloudcore/controllers/workloads_impl.h"
#include "common/base/cron.h"
#include "common/base/json.h"

namespace gantry::cloud::controllers {

namespace {

constexpr const char* kScheduledAnnotation = "batch.kubernetes.io/cronjob-scheduled-timestamp";

struct RunView {
  const ObjRec* job;
  int64_t scheduled_s = 0;
  bool finished = false;
  bool succeeded = false;
  std::optional<int64_t> completed_s;
};

bool has_true_condition(const json& obj, const char* type) {
  const json* conds = common::json_at(obj, {"status", "conditions"});
  if (!conds || !conds->is_array()) return false;
  for (const auto& c : *conds)
    if (c.is_object() && c.value("type", "") == type && c.value("status", "") == "True")
      return true;
  return false;
}

// What the API's Job kind fills in (cloudcore/api/kinds/jobs.cc).
void default_job(json& job, const std::string& name, const std::string& uid) {
  json& spec = job["spec"];
  if (!spec.contains("completions") && !spec.contains("parallelism")) spec["completions"] = 1;
  if (!spec.contains("parallelism")) spec["parallelism"] = 1;
  if (!spec.contains("backoffLimit")) spec["backoffLimit"] = 6;
  if (!spec.contains("completionMode")) spec["completionMode"] = "NonIndexed";
  if (!spec.contains("suspend")) spec["suspend"] = false;
  if (!spec.contains("podReplacementPolicy")) spec["podReplacementPolicy"] = "TerminatingOrFailed";
  if (spec.value("manualSelector", json(false)) == true) return;
  json& labels = spec["template"]["metadata"]["labels"];
  if (!labels.is_object()) labels = json::object();
  labels["controller-uid"] = uid;
  labels["batch.kubernetes.io/controller-uid"] = uid;
  labels["job-name"] = name;
  labels["batch.kubernetes.io/job-name"] = name;
  spec["selector"] = {{"matchLabels", {{"batch.kubernetes.io/controller-uid", uid}}}};
}

}  // namespace

Status WorkloadControllers::Impl::reconcile_cronjob(const std::string& qkey,
                                                    const std::string& key) {
  ObjRec cj;
  std::vector<ObjRec> jobs;
  {
    std::lock_guard lock(mu);
    auto& m = objs[static_cast<int>(WKind::kCronJob)];
    auto it = m.find(key);
    if (it == m.end()) return common::ok_status();
    cj = it->second;
    auto& jm = objs[static_cast<int>(WKind::kJob)];
    if (auto d = dependents.find(cj.uid); d != dependents.end())
      for (const auto& jk : d->second)
        if (auto j = jm.find(jk); j != jm.end() && j->second.controller_uid == cj.uid)
          jobs.push_back(j->second);
  }
  const json spec = cj.obj.value("spec", json::object());
  auto schedule = common::CronSchedule::parse(common::json_string_at(spec, {"schedule"}));
  if (!schedule.ok()) return common::ok_status();  // the API refuses it; nothing to run
  const int64_t now_ms = clock.unix_ms();
  const int64_t now_s = now_ms / 1000;
  const bool suspend = spec.value("suspend", json(false)) == true;
  const std::string policy = spec.value("concurrencyPolicy", json("Allow")).get<std::string>();
  Status failure = common::ok_status();

  std::vector<RunView> runs;
  for (const auto& j : jobs) {
    RunView r;
    r.job = &j;
    std::string at =
        common::json_string_at(j.obj, {"metadata", "annotations", kScheduledAnnotation});
    if (at.empty()) at = common::json_string_at(j.obj, {"metadata", "creationTimestamp"});
    r.scheduled_s = parse_rfc3339_ms(at).value_or(0) / 1000;
    r.succeeded = has_true_condition(j.obj, "Complete");
    r.finished = r.succeeded || has_true_condition(j.obj, "Failed");
    if (r.succeeded)
      if (auto c = parse_rfc3339_ms(common::json_string_at(j.obj, {"status", "completionTime"})))
        r.completed_s = *c / 1000;
    runs.push_back(r);
  }
  std::sort(runs.begin(), runs.end(),
            [](const RunView& a, const RunView& b) { return a.scheduled_s < b.scheduled_s; });
  auto remove_job = [&](const ObjRec& j) {
    auto r = store.txn({Op::remove(j.key, j.mod_revision)});  // the collector takes its pods
    if (!r.ok() && r.status().code() != Code::kNotFound && failure.ok()) failure = r.status();
  };

  // History: finished runs beyond the limits go, oldest first.
  for (bool ok_runs : {true, false}) {
    int64_t limit = common::json_int_at(
        spec, {ok_runs ? "successfulJobsHistoryLimit" : "failedJobsHistoryLimit"}, ok_runs ? 3 : 1);
    std::vector<const RunView*> finished;
    for (const auto& r : runs)
      if (r.finished && r.succeeded == ok_runs) finished.push_back(&r);
    for (size_t i = 0; i + static_cast<size_t>(std::max<int64_t>(0, limit)) < finished.size(); ++i)
      remove_job(*finished[i]->job);
  }

  json status = cj.obj.value("status", json::object());
  if (!status.is_object()) status = json::object();
  std::vector<const RunView*> active;
  for (const auto& r : runs)
    if (!r.finished) active.push_back(&r);

  // The most recent scheduled minute not run yet.
  int64_t since_s = parse_rfc3339_ms(status.value("lastScheduleTime", json("")).get<std::string>())
                        .value_or(parse_rfc3339_ms(common::json_string_at(
                                                       cj.obj, {"metadata", "creationTimestamp"}))
                                      .value_or(now_ms)) /
                    1000;
  if (spec.contains("startingDeadlineSeconds") &&
      spec["startingDeadlineSeconds"].is_number_integer())
    since_s = std::max(since_s, now_s - spec["startingDeadlineSeconds"].get<int64_t>() - 1);
  std::optional<json> created;
  if (!suspend && !cj.deleting) {
    if (auto due = schedule->last_between(since_s, now_s)) {
      if (policy == "Forbid" && !active.empty()) {
        // Skipped while a run is active; a run's end brings this back (and runs the minute if
        // startingDeadlineSeconds still allows it).
      } else {
        if (policy == "Replace")
          for (const RunView* r : active) remove_job(*r->job);
        std::string name = fmt::format("{}-{}", cj.name, *due / 60);
        std::string uid = random_uid();
        json tmpl = spec.value("jobTemplate", json::object());
        json meta = {{"name", name},
                     {"namespace", cj.ns},
                     {"uid", uid},
                     {"creationTimestamp", rfc3339_ms(now_ms)},
                     {"generation", 1}};
        if (tmpl.contains("metadata") && tmpl["metadata"].is_object())
          for (const char* f : {"labels", "annotations"})
            if (tmpl["metadata"].contains(f)) meta[f] = tmpl["metadata"][f];
        meta["annotations"][kScheduledAnnotation] = rfc3339_ms(*due * 1000);
        json ref = owner_ref_json("CronJob", cj.name, cj.uid);
        ref["apiVersion"] = "batch/v1";
        meta["ownerReferences"] = json::array({ref});
        json job = {{"apiVersion", "batch/v1"},
                    {"kind", "Job"},
                    {"metadata", meta},
                    {"spec", tmpl.value("spec", json::object())}};
        default_job(job, name, uid);
        auto r = put_object(std::string(kJobsPrefix) + cj.ns + "/" + name, job, Revision{0});
        if (r.ok() || r.status().code() == Code::kFailedPrecondition) {  // made, or made before
          status["lastScheduleTime"] = rfc3339_ms(*due * 1000);
          if (r.ok()) created = job;
        } else if (failure.ok()) {
          failure = r.status();
        }
      }
    }
  }

  // Status: the active runs (as ObjectReferences), the last success.
  json refs = json::array();
  auto add_ref = [&](const json& obj) {
    refs.push_back({{"apiVersion", "batch/v1"},
                    {"kind", "Job"},
                    {"name", common::json_string_at(obj, {"metadata", "name"})},
                    {"namespace", cj.ns},
                    {"uid", common::json_string_at(obj, {"metadata", "uid"})}});
  };
  for (const RunView* r : active)
    if (policy != "Replace" || !created) add_ref(r->job->obj);
  if (created) add_ref(*created);
  if (refs.empty())
    status.erase("active");
  else
    status["active"] = refs;
  std::optional<int64_t> last_ok =
      parse_rfc3339_ms(status.value("lastSuccessfulTime", json("")).get<std::string>());
  for (const auto& r : runs)
    if (r.completed_s && (!last_ok || *r.completed_s * 1000 > *last_ok))
      last_ok = *r.completed_s * 1000;
  if (last_ok) status["lastSuccessfulTime"] = rfc3339_ms(*last_ok);
  Status s = write_status(cj, status);
  if (!s.ok() && failure.ok()) failure = s;

  if (auto next = schedule->next_after(now_s))
    queue.add_after(qkey, std::chrono::milliseconds(std::max<int64_t>(1, *next * 1000 - now_ms)));
  return failure;
}

}  // namespace gantry::cloud::controllers
