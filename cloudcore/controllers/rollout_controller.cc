// The Rollout controller (gantry.io/v1 Rollout), part of the workload controllers: it shares their
// cache, queue and worker. A reconcile reads the target's fleet from the cache (a DaemonSet's
// nodes, or a Deployment's replicas as slots), runs one pass of the state machine (rollout_plan.h)
// and writes the Rollout's status — and, in two cases, its spec: clearing the run's controls when
// a new run starts, and setting `paused` when failures pass the threshold. The DaemonSet and
// Deployment controllers read the Rollout from the same cache to know which nodes (how many
// replicas) may run the update (workloads_daemonset.cc, workloads_deployment.cc); each change of
// one queues the other.
#include <fmt/format.h>

#include "cloudcore/controllers/workloads_impl.h"
#include "common/base/json.h"
#include "common/base/parse.h"

namespace gantry::cloud::controllers {

namespace {

bool bool_at(const json& obj, std::initializer_list<const char*> path) {
  const json* v = common::json_at(obj, path);
  return v && v->is_boolean() && v->get<bool>();
}

int64_t time_at(const json& obj, std::initializer_list<const char*> path) {
  std::string t = common::json_string_at(obj, path);
  return t.empty() ? 0 : parse_rfc3339_ms(t).value_or(0);
}

}  // namespace

std::string rollout_target_key(const json& obj) {
  std::string kind = common::json_string_at(obj, {"spec", "targetRef", "kind"});
  std::string name = common::json_string_at(obj, {"spec", "targetRef", "name"});
  std::string ns = common::json_string_at(obj, {"metadata", "namespace"});
  if (name.empty()) return "";
  if (kind == "DaemonSet") return std::string(kDaemonSetsPrefix) + ns + "/" + name;
  if (kind == "Deployment") return std::string(kDeploymentsPrefix) + ns + "/" + name;
  return "";
}

WKind rollout_target_kind(const std::string& target_key) {
  return target_key.starts_with(kDeploymentsPrefix) ? WKind::kDeployment : WKind::kDaemonSet;
}

rollout::Spec rollout_spec_from_json(const json& obj) {
  rollout::Spec s;
  const bool daemonset = common::json_string_at(obj, {"spec", "targetRef", "kind"}) == "DaemonSet";
  const json* steps = common::json_at(obj, {"spec", "steps"});
  if (steps && steps->is_array()) {
    for (const auto& st : *steps) {
      if (!st.is_object()) continue;
      rollout::Step step;
      step.percent = static_cast<int>(common::json_int_at(st, {"percent"}, 100));
      if (const json* sel = common::json_at(st, {"nodeSelector"}))
        step.node_selector = string_map(*sel);
      if (const json* p = common::json_at(st, {"pause"}); p && p->is_object()) {
        step.pause = true;
        std::string d = common::json_string_at(*p, {"duration"});
        if (!d.empty())
          if (auto parsed = common::parse_go_duration(d); parsed.ok())
            step.pause_ms = std::chrono::duration_cast<std::chrono::milliseconds>(*parsed).count();
      }
      // Pre-pull is per node: a Deployment's new pods go wherever the scheduler puts them.
      step.pre_pull = bool_at(st, {"prePull"}) && daemonset;
      s.steps.push_back(std::move(step));
    }
  }
  if (const json* ft = common::json_at(obj, {"spec", "failureThreshold"})) {
    if (ft->is_number_integer()) {
      s.failure_threshold.value = ft->get<int64_t>();
    } else if (ft->is_string()) {
      std::string t = ft->get<std::string>();
      s.failure_threshold.percent = !t.empty() && t.back() == '%';
      s.failure_threshold.value = std::strtoll(t.c_str(), nullptr, 10);
    }
  }
  s.progress_deadline_s = common::json_int_at(obj, {"spec", "progressDeadlineSeconds"}, 600);
  s.paused = bool_at(obj, {"spec", "paused"});
  s.abort = bool_at(obj, {"spec", "abort"});
  s.approved_step = static_cast<int>(common::json_int_at(obj, {"spec", "approvedStep"}, 0));
  return s;
}

rollout::Status rollout_status_from_json(const json& obj) {
  rollout::Status s;
  const json* st = common::json_at(obj, {"status"});
  if (!st || !st->is_object()) return s;
  s.phase = rollout::parse_phase(common::json_string_at(*st, {"phase"}))
                .value_or(rollout::Phase::kCompleted);
  s.current_step = static_cast<int>(common::json_int_at(*st, {"currentStep"}, 0));
  s.stable_revision = common::json_string_at(*st, {"stableRevision"});
  s.update_revision = common::json_string_at(*st, {"updateRevision"});
  s.step_started_ms = time_at(*st, {"stepStartedAt"});
  s.step_done_ms = time_at(*st, {"stepDoneAt"});
  s.reason = common::json_string_at(*st, {"reason"});
  s.message = common::json_string_at(*st, {"message"});
  s.counts.nodes = common::json_int_at(*st, {"nodes"}, 0);
  s.counts.step_nodes = common::json_int_at(*st, {"stepNodes"}, 0);
  s.counts.updated = common::json_int_at(*st, {"updated"}, 0);
  s.counts.ready = common::json_int_at(*st, {"ready"}, 0);
  s.counts.failed = common::json_int_at(*st, {"failed"}, 0);
  s.counts.waiting_offline = common::json_int_at(*st, {"waitingOffline"}, 0);
  s.counts.pre_pulled = common::json_int_at(*st, {"prePulled"}, 0);
  s.pre_pull_step = static_cast<int>(common::json_int_at(*st, {"prePullStep"}, 0));
  s.pre_pull_result = common::json_string_at(*st, {"prePullResult"});
  if (const json* f = common::json_at(*st, {"failures"}); f && f->is_array())
    for (const auto& e : *f)
      s.failures.push_back(
          {common::json_string_at(e, {"node"}), common::json_string_at(e, {"reason"})});
  return s;
}

void rollout_status_to_json(const rollout::Status& s, json& st) {
  if (!st.is_object()) st = json::object();
  st["phase"] = std::string(rollout::phase_name(s.phase));
  st["currentStep"] = s.current_step;
  st["stableRevision"] = s.stable_revision;
  st["updateRevision"] = s.update_revision;
  if (s.step_started_ms)
    st["stepStartedAt"] = rfc3339_ms(s.step_started_ms);
  else
    st.erase("stepStartedAt");
  if (s.step_done_ms)
    st["stepDoneAt"] = rfc3339_ms(s.step_done_ms);
  else
    st.erase("stepDoneAt");
  st["reason"] = s.reason;
  st["message"] = s.message;
  st["nodes"] = s.counts.nodes;
  st["stepNodes"] = s.counts.step_nodes;
  st["updated"] = s.counts.updated;
  st["ready"] = s.counts.ready;
  st["failed"] = s.counts.failed;
  st["waitingOffline"] = s.counts.waiting_offline;
  st["prePulled"] = s.counts.pre_pulled;
  if (s.pre_pull_step > 0)
    st["prePullStep"] = s.pre_pull_step;
  else
    st.erase("prePullStep");
  if (!s.pre_pull_result.empty())
    st["prePullResult"] = s.pre_pull_result;
  else
    st.erase("prePullResult");
  json failures = json::array();
  for (const auto& f : s.failures) failures.push_back({{"node", f.node}, {"reason", f.reason}});
  st["failures"] = failures;
}

// ---------------------------------------------------------------------------------------------
// Pre-pull (steps[].prePull): an ImagePullJob per step, owned by the Rollout, named
// ROLLOUT-prepull-REVISION-STEP, labelled with the Rollout's name, the run's revision and the
// step. The ImagePullJob controller (imagepull.cc) pulls; this one reads its status.

void WorkloadControllers::Impl::apply_pre_pull_job(const std::string& key, const KeyValue* kv) {
  if (auto old = rollout_of_pre_pull.find(key); old != rollout_of_pre_pull.end()) {
    auto it = pre_pull_jobs.find(old->second);
    if (it != pre_pull_jobs.end()) {
      it->second.erase(key);
      if (it->second.empty()) pre_pull_jobs.erase(it);
    }
    queue.add(queue_key(WKind::kRollout, old->second));
    rollout_of_pre_pull.erase(old);
  }
  if (!kv) return;
  auto text = stored_json(kv->value);
  json obj = text ? json::parse(*text, nullptr, false) : json();
  if (!obj.is_object()) return;
  std::string rollout = common::json_string_at(obj, {"metadata", "labels", kRolloutNameLabel});
  if (rollout.empty()) return;  // not a Rollout's
  std::string rkey = std::string(kRolloutsPrefix) +
                     common::json_string_at(obj, {"metadata", "namespace"}) + "/" + rollout;
  pre_pull_jobs[rkey][key] = std::move(obj);
  rollout_of_pre_pull[key] = rkey;
  queue.add(queue_key(WKind::kRollout, rkey));
}

namespace {

std::vector<std::string> template_images(const json& tmpl) {
  std::vector<std::string> out;
  if (!tmpl.contains("spec") || !tmpl["spec"].is_object()) return out;
  for (const char* list : {"initContainers", "containers"}) {
    const json* cs = common::json_at(tmpl, {"spec", list});
    if (!cs || !cs->is_array()) continue;
    for (const auto& c : *cs) {
      std::string image = common::json_string_at(c, {"image"});
      if (!image.empty() && std::find(out.begin(), out.end(), image) == out.end())
        out.push_back(image);
    }
  }
  return out;
}

bool owned_by(const json& job, const std::string& uid) {
  const json* refs = common::json_at(job, {"metadata", "ownerReferences"});
  if (!refs || !refs->is_array()) return false;
  for (const auto& r : *refs)
    if (common::json_string_at(r, {"uid"}) == uid) return true;
  return false;
}

rollout::PrePullView pre_pull_view(const json& job) {
  rollout::PrePullView v;
  const json* st = common::json_at(job, {"status"});
  if (!st || !st->is_object() || common::json_string_at(*st, {"phase"}).empty()) return v;
  v.observed = true;
  std::string phase = common::json_string_at(*st, {"phase"});
  v.finished = phase == "Succeeded" || phase == "Failed";
  v.desired = common::json_int_at(*st, {"desired"}, 0);
  v.succeeded = common::json_int_at(*st, {"succeeded"}, 0);
  v.failed = common::json_int_at(*st, {"failed"}, 0);
  v.pending = common::json_int_at(*st, {"pending"}, 0) + common::json_int_at(*st, {"pulling"}, 0);
  v.waiting_offline = common::json_int_at(*st, {"waitingOffline"}, 0);
  if (const json* conds = common::json_at(*st, {"conditions"}); conds && conds->is_array())
    for (const auto& c : *conds)
      if (common::json_string_at(c, {"type"}) == "Failed" &&
          common::json_string_at(c, {"status"}) == "True")
        v.failure = common::json_string_at(c, {"message"});
  return v;
}

}  // namespace

Status WorkloadControllers::Impl::start_pre_pull(const ObjRec& ro, const json& tmpl,
                                                 const std::string& revision,
                                                 const rollout::PrePullOrder& order,
                                                 const std::map<std::string, json>& jobs) {
  std::string base = ro.name.size() > 200 ? ro.name.substr(0, 200) : ro.name;
  std::string name = fmt::format("{}-prepull-{}-{}", base, revision, order.step);
  std::string key = std::string(kPrePullJobsPrefix) + ro.ns + "/" + name;
  if (jobs.count(key)) return common::ok_status();
  // The pre-pulls of earlier runs are of no use any more.
  for (const auto& [k, job] : jobs) {
    if (common::json_string_at(job, {"metadata", "labels", kRolloutRevisionLabel}) == revision)
      continue;
    auto r = store.txn({Op::remove(k)});
    if (!r.ok() && r.status().code() != Code::kNotFound) return r.status();
  }
  std::vector<std::string> images = template_images(tmpl);
  if (images.empty()) return common::ok_status();
  int64_t now_ms = clock.unix_ms();
  int64_t deadline_s = std::max<int64_t>(1, (order.deadline_ms - now_ms + 999) / 1000);
  json job = {{"apiVersion", "gantry.io/v1"},
              {"kind", "ImagePullJob"},
              {"metadata",
               {{"name", name},
                {"namespace", ro.ns},
                {"uid", random_uid()},
                {"creationTimestamp", rfc3339_ms(now_ms)},
                {"generation", 1},
                {"labels",
                 {{kRolloutNameLabel, ro.name},
                  {kRolloutRevisionLabel, revision},
                  {kRolloutStepLabel, std::to_string(order.step)}}},
                {"ownerReferences", json::array({{{"apiVersion", "gantry.io/v1"},
                                                  {"kind", "Rollout"},
                                                  {"name", ro.name},
                                                  {"uid", ro.uid},
                                                  {"controller", true},
                                                  {"blockOwnerDeletion", true}}})}}},
              {"spec",
               {{"images", images},
                {"nodeNames", order.nodes},
                {"parallelism", {{"perProvince", 2}, {"perNode", 1}}},
                {"retries", 2},
                {"pullPolicy", "IfNotPresent"},
                {"activeDeadlineSeconds", deadline_s}}}};
  auto r = put_object(key, job, Revision{0});
  if (!r.ok() && r.status().code() != Code::kFailedPrecondition) return r.status();
  return common::ok_status();
}

// ---------------------------------------------------------------------------------------------

void WorkloadControllers::Impl::index_rollout(const std::string& key, const json* obj) {
  if (auto old = target_of_rollout.find(key); old != target_of_rollout.end()) {
    auto it = rollouts_by_target.find(old->second);
    if (it != rollouts_by_target.end()) {
      it->second.erase(key);
      if (it->second.empty()) rollouts_by_target.erase(it);
    }
    queue.add(queue_key(rollout_target_kind(old->second), old->second));
    // Another Rollout of the same target may take over.
    if (auto next = controlling_rollout_locked(old->second))
      queue.add(queue_key(WKind::kRollout, *next));
    target_of_rollout.erase(old);
  }
  if (!obj) return;
  std::string target = rollout_target_key(*obj);
  if (target.empty()) return;
  target_of_rollout[key] = target;
  rollouts_by_target[target].insert(key);
  queue.add(queue_key(rollout_target_kind(target), target));
}

std::optional<std::string> WorkloadControllers::Impl::controlling_rollout_locked(
    const std::string& target_key) const {
  auto it = rollouts_by_target.find(target_key);
  if (it == rollouts_by_target.end()) return std::nullopt;
  const auto& m = objs[static_cast<int>(WKind::kRollout)];
  std::optional<std::string> best;
  std::pair<std::string, std::string> best_order;
  for (const auto& k : it->second) {
    auto r = m.find(k);
    if (r == m.end()) continue;
    std::pair<std::string, std::string> order = {
        common::json_string_at(r->second.obj, {"metadata", "creationTimestamp"}), k};
    if (!best || order < best_order) {
      best = k;
      best_order = order;
    }
  }
  return best;
}

std::vector<rollout::NodeInfo> WorkloadControllers::Impl::daemonset_fleet_locked(
    const ObjRec& ds) const {
  std::vector<rollout::NodeInfo> fleet;
  json tmpl =
      ds.obj.contains("spec") ? ds.obj["spec"].value("template", json::object()) : json::object();
  PodRequest req = daemonset_pod_request(tmpl);
  // The DaemonSet's active pod per node (the oldest, as the DaemonSet keeps it).
  std::map<std::string, const PodRec*> pod_on;
  if (auto d = dependents.find(ds.uid); d != dependents.end()) {
    for (const auto& k : d->second) {
      auto p = pods.find(k);
      if (p == pods.end() || p->second.controller_uid != ds.uid || p->second.node.empty()) continue;
      PodView v = view_locked(p->second);
      if (!v.active()) continue;
      auto& slot = pod_on[p->second.node];
      if (!slot || p->second.created_ms < slot->created_ms) slot = &p->second;
    }
  }
  for (const auto& [name, state] : nodes) {
    if (!daemonset_should_run(req, state)) continue;
    rollout::NodeInfo n;
    n.name = name;
    n.labels = state.labels;
    auto ns = node_status.find(name);
    n.reachable = ns == node_status.end() || !ns->second.unreachable;
    if (auto p = pod_on.find(name); p != pod_on.end()) {
      const PodRec& pod = *p->second;
      auto h = pod.labels.find("controller-revision-hash");
      n.revision = h != pod.labels.end() ? h->second : "";
      PodView v = view_locked(pod);
      n.ready = v.ready();
      if (v.status) n.failure = v.status->failure;
      n.pod_created_ms = pod.revised_ms;
    }
    fleet.push_back(std::move(n));
  }
  return fleet;
}

std::vector<rollout::NodeInfo> WorkloadControllers::Impl::deployment_fleet_locked(
    const ObjRec& d, std::string_view seed) const {
  int64_t replicas = std::max<int64_t>(0, common::json_int_at(d.obj, {"spec", "replicas"}, 1));
  std::vector<rollout::NodeInfo> fleet(static_cast<size_t>(replicas));
  for (size_t i = 0; i < fleet.size(); ++i) fleet[i].name = fmt::format("replica-{}", i);
  json tmpl =
      d.obj.contains("spec") ? d.obj["spec"].value("template", json::object()) : json::object();
  std::string update = deployment_revision(tmpl);
  // The Deployment's active pods, through its ReplicaSets.
  struct Pod {
    rollout::NodeInfo info;
    std::string name;
  };
  std::vector<Pod> updated, others;
  auto& rsm = objs[static_cast<int>(WKind::kReplicaSet)];
  if (auto dep = dependents.find(d.uid); dep != dependents.end()) {
    for (const auto& rk : dep->second) {
      auto rs = rsm.find(rk);
      if (rs == rsm.end() || rs->second.controller_uid != d.uid) continue;
      auto pods_of = dependents.find(rs->second.uid);
      if (pods_of == dependents.end()) continue;
      for (const auto& pk : pods_of->second) {
        auto p = pods.find(pk);
        if (p == pods.end() || p->second.controller_uid != rs->second.uid) continue;
        PodView v = view_locked(p->second);
        if (!v.active()) continue;
        Pod pod;
        pod.name = p->second.name;
        auto h = p->second.labels.find(kPodTemplateHash);
        pod.info.revision = h != p->second.labels.end() ? h->second : "";
        pod.info.reachable = !v.node_unreachable;
        pod.info.ready = v.ready();
        if (v.status) pod.info.failure = v.status->failure;
        pod.info.pod_created_ms = p->second.revised_ms;
        (pod.info.revision == update ? updated : others).push_back(std::move(pod));
      }
    }
  }
  // Replicas are slots in the order the steps take them: the update's pods fill it from the
  // front (Ready ones first, so a step's share is the pods that made it), the other pods from the
  // back; pods past `replicas` (a surge) are left out. A step of p % then covers the update's
  // pods up to its share, whatever the pods are called.
  auto rank = [](const Pod& a, const Pod& b) {
    if (a.info.ready != b.info.ready) return a.info.ready;
    return a.name < b.name;
  };
  std::sort(updated.begin(), updated.end(), rank);
  std::sort(others.begin(), others.end(), rank);
  std::vector<std::string> order = rollout::step_order(fleet, seed);
  std::map<std::string, size_t> slot;
  for (size_t i = 0; i < fleet.size(); ++i) slot[fleet[i].name] = i;
  size_t front = 0, back = order.size();
  for (auto& p : updated) {
    if (front >= back) break;
    auto& n = fleet[slot[order[front++]]];
    std::string name = n.name;
    n = std::move(p.info);
    n.name = std::move(name);
  }
  for (auto& p : others) {
    if (front >= back) break;
    auto& n = fleet[slot[order[--back]]];
    std::string name = n.name;
    n = std::move(p.info);
    n.name = std::move(name);
  }
  return fleet;
}

std::vector<rollout::NodeInfo> WorkloadControllers::Impl::target_fleet_locked(
    WKind kind, const ObjRec& target, std::string_view seed) const {
  return kind == WKind::kDeployment ? deployment_fleet_locked(target, seed)
                                    : daemonset_fleet_locked(target);
}

Status WorkloadControllers::Impl::reconcile_rollout(const std::string& qkey,
                                                    const std::string& key) {
  ObjRec ro;
  std::optional<ObjRec> ds;  // the target (a DaemonSet or a Deployment)
  std::vector<rollout::NodeInfo> fleet;
  std::optional<std::string> controller;
  std::string target;
  WKind kind = WKind::kDaemonSet;
  std::map<std::string, json> jobs;  // the Rollout's pre-pull jobs
  bool gone = false;
  {
    std::lock_guard lock(mu);
    if (auto j = pre_pull_jobs.find(key); j != pre_pull_jobs.end()) jobs = j->second;
    auto& m = objs[static_cast<int>(WKind::kRollout)];
    auto it = m.find(key);
    gone = it == m.end();
    if (!gone) ro = it->second;
  }
  if (gone) {
    // Gone (read from the store, not the cache): its pre-pull jobs go with it.
    if (jobs.empty()) return common::ok_status();
    auto kv = store.get(key);
    if (!kv.ok()) return kv.status();
    if (kv->has_value()) return common::ok_status();
    for (const auto& [k, job] : jobs) (void)store.txn({Op::remove(k)});
    return common::ok_status();
  }
  {
    std::lock_guard lock(mu);
    target = rollout_target_key(ro.obj);
    if (!target.empty()) {
      kind = rollout_target_kind(target);
      controller = controlling_rollout_locked(target);
      auto& dm = objs[static_cast<int>(kind)];
      if (auto d = dm.find(target); d != dm.end()) {
        ds = d->second;
        fleet = target_fleet_locked(kind, *ds, ro.uid);
      }
    }
  }
  const char* resource = kind == WKind::kDeployment ? "deployments.apps" : "daemonsets.apps";
  if (ro.deleting) return common::ok_status();
  int64_t now_ms = clock.unix_ms();
  json old_status = ro.obj.value("status", json::object());
  if (!old_status.is_object()) old_status = json::object();
  json status = old_status;
  int64_t generation = common::json_int_at(ro.obj, {"metadata", "generation"}, 1);
  std::string target_name = common::json_string_at(ro.obj, {"spec", "targetRef", "name"});

  if (!ds || ds->deleting) {
    set_condition(status, "TargetFound", "False", "NotFound",
                  fmt::format("{} \"{}\" not found; nothing is rolled out", resource, target_name),
                  now_ms);
    status["observedGeneration"] = generation;
    return write_status(ro, status);
  }
  if (find_condition(status, "TargetFound"))
    set_condition(status, "TargetFound", "True", "Found", "", now_ms);
  if (controller && *controller != key) {
    set_condition(status, "Conflict", "True", "AnotherRollout",
                  fmt::format("{} already rolls out {} \"{}\"; this one does nothing "
                              "while that one exists",
                              controller->substr(kRolloutsPrefix.size()), resource, target_name),
                  now_ms);
    status["observedGeneration"] = generation;
    return write_status(ro, status);
  }
  if (find_condition(status, "Conflict"))
    set_condition(status, "Conflict", "False", "OnlyRollout", "", now_ms);

  json tmpl =
      ds->obj.contains("spec") ? ds->obj["spec"].value("template", json::object()) : json::object();
  std::string revision =
      kind == WKind::kDeployment ? deployment_revision(tmpl) : daemonset_revision(tmpl);
  rollout::Spec spec = rollout_spec_from_json(ro.obj);
  rollout::Status prior = rollout_status_from_json(ro.obj);
  std::map<int, rollout::PrePullView> pre_pulls;  // this run's, by step
  for (const auto& [k, job] : jobs) {
    if (!owned_by(job, ro.uid) ||
        common::json_string_at(job, {"metadata", "labels", kRolloutRevisionLabel}) != revision)
      continue;
    int step = 0;
    std::string label = common::json_string_at(job, {"metadata", "labels", kRolloutStepLabel});
    if (auto n = common::parse_int64(label); n.ok()) step = static_cast<int>(*n);
    if (step > 0) pre_pulls[step] = pre_pull_view(job);
  }
  rollout::Decision d = rollout::plan(spec, prior, revision, fleet, now_ms, ro.uid, pre_pulls);
  Status pre_pull_failure = common::ok_status();
  if (d.pre_pull) pre_pull_failure = start_pre_pull(ro, tmpl, revision, *d.pre_pull, jobs);

  json obj = ro.obj;
  bool spec_changed = false;
  auto set_spec = [&](const char* field, const json& value) {
    if (obj["spec"].contains(field) && obj["spec"][field] == value) return;
    obj["spec"][field] = value;
    spec_changed = true;
  };
  if (d.reset_controls) {
    set_spec("approvedStep", 0);
    set_spec("abort", false);
    if (prior.reason == rollout::kReasonFailureThreshold) set_spec("paused", false);
  }
  if (d.set_paused) set_spec("paused", true);
  if (spec_changed) {
    generation += 1;
    obj["metadata"]["generation"] = generation;
  }

  rollout::Status& s = d.status;
  // The plan's approval hint names the command with a placeholder for the Rollout's name.
  if (auto at_name = s.message.find("rollout NAME "); at_name != std::string::npos)
    s.message.replace(at_name + 8, 4, ro.name);
  rollout_status_to_json(s, status);
  status["observedGeneration"] = generation;
  bool paused = s.phase == rollout::Phase::kPaused || s.phase == rollout::Phase::kWaitingApproval;
  set_condition(status, "Paused", paused ? "True" : "False",
                paused ? s.reason : std::string("NotPaused"), paused ? s.message : "", now_ms);
  bool progressing =
      s.phase != rollout::Phase::kAborted &&
      !(s.phase == rollout::Phase::kPaused && s.reason == rollout::kReasonFailureThreshold);
  set_condition(status, "Progressing", progressing ? "True" : "False", s.reason, s.message, now_ms);

  Status failure = common::ok_status();
  if (spec_changed || status != old_status) {
    obj["status"] = status;
    auto r = put_object(ro.key, obj, ro.mod_revision);
    if (!r.ok())
      failure = r.status();
    else
      ++stats.status_writes;
  }
  if (d.wake_at_ms)
    queue.add_after(qkey, std::chrono::milliseconds(std::max<int64_t>(1, *d.wake_at_ms - now_ms)));
  return failure.ok() ? pre_pull_failure : failure;
}

}  // namespace gantry::cloud::controllers
