// ReplicaSet: keep spec.replicas active pods matching the selector, owned (controller: true),
// adopting orphans that match and releasing owned pods that stopped matching.
//
// Edge rules: a pod on an unreachable node is active like any other (it keeps running there) and
// counts as ready/available as last reported; it is never replaced unless the ReplicaSet carries
// kReplaceUnreachableAfter and the node has been unreachable that long. Scale-down removes pods
// on reachable nodes first (their deletion takes effect now; on an unreachable node it would wait
// for the node to return).
#include <fmt/format.h>

#include <algorithm>

#include "cloudcore/controllers/workloads_impl.h"
#include "cloudcore/registry/keys.h"
#include "common/base/json.h"

namespace gantry::cloud::controllers {

namespace {

// Lower = deleted first (Kubernetes' order, with "on an unreachable node" as the most valuable).
int deletion_rank(const PodView& v) {
  if (v.node_unreachable) return 5;
  if (v.pod->node.empty()) return 0;
  if (!v.status || v.status->phase == v1::POD_PHASE_PENDING) return 1;
  if (v.status->phase == v1::POD_PHASE_UNKNOWN) return 2;
  if (!v.ready()) return 3;
  return 4;
}

}  // namespace

Status WorkloadControllers::Impl::reconcile_replicaset(const std::string& qkey,
                                                       const std::string& key) {
  if (!pods_seen(qkey)) return common::ok_status();  // the pods watch will bring it back
  expect.erase(qkey);

  ObjRec rs;
  std::vector<PodRec> owned_pods, orphan_pods;
  std::vector<PodView> owned, orphan;
  {
    std::lock_guard lock(mu);
    auto& m = objs[static_cast<int>(WKind::kReplicaSet)];
    auto it = m.find(key);
    if (it == m.end()) return common::ok_status();
    rs = it->second;
    if (auto d = dependents.find(rs.uid); d != dependents.end()) {
      for (const auto& pk : d->second) {
        auto p = pods.find(pk);
        if (p != pods.end() && p->second.controller_uid == rs.uid) owned_pods.push_back(p->second);
      }
    }
    if (auto o = orphans.find(rs.ns); o != orphans.end() && !rs.deleting) {
      for (const auto& pk : o->second) {
        auto p = pods.find(pk);
        if (p != pods.end() && !p->second.terminating) orphan_pods.push_back(p->second);
      }
    }
    for (const auto& p : owned_pods) owned.push_back(view_locked(p));
    for (const auto& p : orphan_pods) orphan.push_back(view_locked(p));
  }
  const json& spec = rs.obj.contains("spec") ? rs.obj["spec"] : json::object();
  const json selector = spec.value("selector", json::object());
  int64_t replicas = std::max<int64_t>(0, common::json_int_at(rs.obj, {"spec", "replicas"}, 1));
  int64_t min_ready = common::json_int_at(rs.obj, {"spec", "minReadySeconds"}, 0);
  int64_t now_ms = clock.unix_ms();
  Revision wrote = 0;
  Status failure = common::ok_status();
  auto note = [&](const Result<Revision>& r) {
    if (r.ok())
      wrote = std::max(wrote, *r);
    else if (failure.ok())
      failure = r.status();
    return r.ok();
  };

  // Release owned pods that no longer match; adopt matching orphans.
  std::vector<PodView> mine;
  for (const auto& v : owned) {
    if (selector_matches(selector, v.pod->labels)) {
      mine.push_back(v);
      continue;
    }
    if (v.pod->terminating) continue;
    if (note(rewrite_pod(*v.pod, [&](json& obj) {
          json kept = json::array();
          for (const auto& r : obj["metadata"]["ownerReferences"])
            if (r.value("uid", "") != rs.uid) kept.push_back(r);
          if (kept.empty())
            obj["metadata"].erase("ownerReferences");
          else
            obj["metadata"]["ownerReferences"] = kept;
        })))
      ++stats.released;
  }
  json ref = owner_ref_json("ReplicaSet", rs.name, rs.uid);
  for (const auto& v : orphan) {
    if (!selector_matches(selector, v.pod->labels)) continue;
    if (note(rewrite_pod(*v.pod, [&](json& obj) {
          if (!obj["metadata"].contains("ownerReferences") ||
              !obj["metadata"]["ownerReferences"].is_array())
            obj["metadata"]["ownerReferences"] = json::array();
          obj["metadata"]["ownerReferences"].push_back(ref);
        }))) {
      ++stats.adopted;
      mine.push_back(v);  // counted now; its new version arrives through the watch
    }
  }

  // Active pods; those given up on an unreachable node (opt-in) are deleted gracefully.
  std::vector<PodView> active;
  size_t terminating_unreachable = 0;
  for (const auto& v : mine) {
    if (v.pod->terminating && v.node_unreachable) ++terminating_unreachable;
    if (v.active()) active.push_back(v);
  }
  std::optional<int64_t> give_up_after = replace_unreachable_after(rs.obj);
  std::optional<int64_t> next_check_ms;
  if (give_up_after && !rs.deleting) {
    std::vector<PodView> kept;
    for (const auto& v : active) {
      if (!v.node_unreachable) {
        kept.push_back(v);
        continue;
      }
      int64_t due = v.unreachable_since + *give_up_after * 1000;
      // Never more pods stuck terminating on unreachable nodes than replicas: a replacement that
      // lands on another unreachable node is not given up again and again.
      if (due > now_ms || terminating_unreachable >= static_cast<size_t>(replicas)) {
        if (due > now_ms) next_check_ms = std::min(next_check_ms.value_or(due), due);
        kept.push_back(v);
        continue;
      }
      if (note(delete_pod(*v.pod)))
        ++terminating_unreachable;
      else
        kept.push_back(v);
    }
    active = std::move(kept);
  }

  // Scale.
  if (!rs.deleting) {
    int64_t diff = static_cast<int64_t>(active.size()) - replicas;
    if (diff < 0) {
      size_t n = std::min<size_t>(static_cast<size_t>(-diff), options.burst);
      json tmpl = spec.value("template", json::object());
      note(create_pods(rs.ns, tmpl, rs.name, ref, n, {}));
      if (static_cast<size_t>(-diff) > n) queue.add_after(qkey, std::chrono::milliseconds(1));
    } else if (diff > 0) {
      std::stable_sort(active.begin(), active.end(), [](const PodView& a, const PodView& b) {
        int ra = deletion_rank(a), rb = deletion_rank(b);
        if (ra != rb) return ra < rb;
        return a.pod->created_ms > b.pod->created_ms;  // newest first
      });
      for (int64_t i = 0; i < diff; ++i) note(delete_pod(*active[static_cast<size_t>(i)].pod));
      active.erase(active.begin(), active.begin() + diff);
    }
  }
  if (wrote) expect[qkey] = wrote;

  // Status.
  json tmpl_labels = json::object();
  if (spec.contains("template") && spec["template"].contains("metadata") &&
      spec["template"]["metadata"].contains("labels"))
    tmpl_labels = spec["template"]["metadata"]["labels"];
  auto want_labels = string_map(tmpl_labels);
  int64_t fully = 0, ready = 0, available = 0, unreachable = 0, terminating = 0;
  std::optional<int64_t> next_available_ms;
  for (const auto& v : mine)
    if (v.pod->terminating) ++terminating;
  for (const auto& v : active) {
    bool all = std::all_of(want_labels.begin(), want_labels.end(), [&](const auto& kv) {
      auto l = v.pod->labels.find(kv.first);
      return l != v.pod->labels.end() && l->second == kv.second;
    });
    if (all) ++fully;
    if (v.ready()) ++ready;
    if (v.available(min_ready, now_ms)) {
      ++available;
    } else if (v.ready() && v.status->ready_since > 0) {
      int64_t due = v.status->ready_since + min_ready * 1000;
      next_available_ms = std::min(next_available_ms.value_or(due), due);
    }
    if (v.node_unreachable) ++unreachable;
  }
  json status = rs.obj.value("status", json::object());
  if (!status.is_object()) status = json::object();
  status["replicas"] = static_cast<int64_t>(active.size());
  status["fullyLabeledReplicas"] = fully;
  status["readyReplicas"] = ready;
  status["availableReplicas"] = available;
  status["unreachableReplicas"] = unreachable;
  status["terminatingReplicas"] = terminating;
  status["observedGeneration"] = common::json_int_at(rs.obj, {"metadata", "generation"}, 1);
  if (unreachable > 0) {
    set_condition(status, "Reachable", "False", "NodesUnreachable",
                  fmt::format("{} of {} replicas are on unreachable nodes; they keep running "
                              "there and count as last reported",
                              unreachable, active.size()),
                  now_ms);
  } else if (find_condition(status, "Reachable")) {
    set_condition(status, "Reachable", "True", "AllReachable",
                  "every replica is on a reachable node", now_ms);
  }
  if (!failure.ok() && failure.code() == Code::kInvalidArgument) {
    set_condition(status, "ReplicaFailure", "True", "FailedCreate", failure.message(), now_ms);
  } else if (failure.ok() && find_condition(status, "ReplicaFailure")) {
    json kept = json::array();
    for (const auto& c : status["conditions"])
      if (c.value("type", "") != "ReplicaFailure") kept.push_back(c);
    status["conditions"] = kept;
  }
  if (status.contains("conditions") && status["conditions"].empty()) status.erase("conditions");
  Status s = write_status(rs, status);
  if (!s.ok() && failure.ok()) failure = s;

  for (auto due : {next_check_ms, next_available_ms})
    if (due) queue.add_after(qkey, std::chrono::milliseconds(std::max<int64_t>(1, *due - now_ms)));
  if (failure.code() == Code::kInvalidArgument) return common::ok_status();  // shown in status
  return failure;
}

}  // namespace gantry::cloud::controllers
