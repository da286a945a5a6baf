// DaemonSet: one pod per node that matches the template's nodeSelector and required node
// affinity and whose NoSchedule/NoExecute taints the pod tolerates (with the tolerations
// Kubernetes adds to every DaemonSet pod). Pods are created bound to their node (no scheduler
// pass). A node that is labelled or joins gets its pod; a node that stops matching loses it.
// Updates: RollingUpdate (maxUnavailable, default 1; an images-only template change is made in
// place, inplace.h) or OnDelete, by the template hash in the
// `controller-revision-hash` label, with one ControllerRevision per template (history for
// `kubectl rollout history|undo`).
//
// Edge rules: never two copies on one node (no new pod while the old one is terminating, even
// when the node is unreachable and the old pod can only stop once it returns); a rolling update
// goes through reachable nodes only, an unreachable node is updated when it returns and does not
// use up maxUnavailable meanwhile.
#include <fmt/format.h>

#include <algorithm>

#include "cloudcore/controllers/inplace.h"
#include "cloudcore/controllers/workloads_impl.h"
#include "cloudcore/registry/keys.h"
#include "common/base/json.h"

namespace gantry::cloud::controllers {

namespace {

constexpr const char* kRevisionHash = "controller-revision-hash";

uint32_t fnv32(const std::string& text) {
  uint32_t h = 2166136261u;
  for (unsigned char c : text) {
    h ^= c;
    h *= 16777619u;
  }
  return h;
}

std::string hash_of(const json& tmpl) {
  json t = tmpl;
  if (t.contains("metadata") && t["metadata"].contains("labels"))
    t["metadata"]["labels"].erase(kRevisionHash);
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string out;
  for (char c : std::to_string(fnv32(t.dump())))
    out += kAlphabet[(c - '0') % (sizeof(kAlphabet) - 1)];
  return out;
}

// The tolerations the DaemonSet controller adds to its pods in Kubernetes.
std::vector<Toleration> daemon_tolerations() {
  auto t = [](const char* key, TaintEffect e) {
    Toleration x;
    x.key = key;
    x.op = Toleration::Operator::kExists;
    x.effect = e;
    return x;
  };
  return {t("node.kubernetes.io/not-ready", TaintEffect::kNoExecute),
          t("node.kubernetes.io/unreachable", TaintEffect::kNoExecute),
          t("node.kubernetes.io/disk-pressure", TaintEffect::kNoSchedule),
          t("node.kubernetes.io/memory-pressure", TaintEffect::kNoSchedule),
          t("node.kubernetes.io/pid-pressure", TaintEffect::kNoSchedule),
          t("node.kubernetes.io/unschedulable", TaintEffect::kNoSchedule)};
}

bool should_run(const PodRequest& req, const NodeState& node) {
  if (!matches_node_selector(req.node_selector, node.labels)) return false;
  if (!req.required_affinity.empty() && !matches_affinity(req.required_affinity, node.labels))
    return false;
  for (const auto& taint : node.taints) {
    if (taint.effect == TaintEffect::kPreferNoSchedule) continue;
    if (!tolerates(req.tolerations, taint)) return false;
  }
  return true;
}

}  // namespace

std::string daemonset_revision(const json& tmpl) {
  return hash_of(tmpl);
}

PodRequest daemonset_pod_request(const json& tmpl) {
  json pod_like = {{"spec", tmpl.value("spec", json::object())}};
  PodRequest req = pod_request_from_json(pod_like, v1::PodManifest{});
  for (auto& t : daemon_tolerations()) req.tolerations.push_back(t);
  return req;
}

bool daemonset_should_run(const PodRequest& req, const NodeState& node) {
  return should_run(req, node);
}

Status WorkloadControllers::Impl::reconcile_daemonset(const std::string& qkey,
                                                      const std::string& key) {
  if (!pods_seen(qkey)) return common::ok_status();
  expect.erase(qkey);
  ObjRec ds;
  std::vector<std::pair<std::string, bool>> node_list;  // name, should run
  std::map<std::string, std::vector<PodRec>> by_node;
  std::map<std::string, PodView> views;  // pod key -> view
  std::vector<ObjRec> revisions;
  std::set<std::string> unreachable_nodes;
  json spec, tmpl;
  PodRequest req;
  std::optional<ObjRec> ro;              // the Rollout that stages this DaemonSet's updates
  std::vector<rollout::NodeInfo> fleet;  // for its partition
  {
    std::lock_guard lock(mu);
    auto& m = objs[static_cast<int>(WKind::kDaemonSet)];
    auto it = m.find(key);
    if (it == m.end()) return common::ok_status();
    ds = it->second;
    spec = ds.obj.value("spec", json::object());
    tmpl = spec.value("template", json::object());
    req = daemonset_pod_request(tmpl);
    for (const auto& [name, state] : nodes) node_list.emplace_back(name, should_run(req, state));
    if (auto rk = controlling_rollout_locked(key)) {
      auto& rm = objs[static_cast<int>(WKind::kRollout)];
      if (auto r = rm.find(*rk); r != rm.end()) {
        ro = r->second;
        fleet = daemonset_fleet_locked(ds);
      }
    }
    for (const auto& [name, st] : node_status)
      if (st.unreachable) unreachable_nodes.insert(name);
    if (auto d = dependents.find(ds.uid); d != dependents.end()) {
      auto& crs = objs[static_cast<int>(WKind::kControllerRevision)];
      for (const auto& k : d->second) {
        if (auto p = pods.find(k); p != pods.end() && p->second.controller_uid == ds.uid) {
          by_node[p->second.node].push_back(p->second);
          views[k] = view_locked(p->second);
        }
        if (auto c = crs.find(k); c != crs.end()) revisions.push_back(c->second);
      }
    }
  }
  if (ds.deleting) return common::ok_status();
  int64_t now_ms = clock.unix_ms();
  Status failure = common::ok_status();
  Revision wrote = 0;
  auto note = [&](const Result<Revision>& r) {
    if (r.ok())
      wrote = std::max(wrote, *r);
    else if (failure.ok())
      failure = r.status();
    return r.ok();
  };
  std::string hash = hash_of(tmpl);
  json ref = owner_ref_json("DaemonSet", ds.name, ds.uid);
  int64_t min_ready = common::json_int_at(ds.obj, {"spec", "minReadySeconds"}, 0);

  // ControllerRevision for the current template (history for kubectl rollout).
  {
    int64_t max_rev = 0;
    const ObjRec* current = nullptr;
    for (const auto& r : revisions) {
      max_rev = std::max<int64_t>(max_rev, common::json_int_at(r.obj, {"revision"}, 0));
      if (common::json_string_at(r.obj, {"metadata", "labels", kRevisionHash}) == hash)
        current = &r;
    }
    std::string cr_name = ds.name + "-" + hash;
    if (!current) {
      // Labelled like its pods (kubectl rollout history/undo find the history by the selector).
      json cr_labels = tmpl.contains("metadata") && tmpl["metadata"].contains("labels") &&
                               tmpl["metadata"]["labels"].is_object()
                           ? tmpl["metadata"]["labels"]
                           : json::object();
      cr_labels[kRevisionHash] = hash;
      json data_tmpl = tmpl;
      data_tmpl["$patch"] = "replace";
      json cr = {{"apiVersion", "apps/v1"},
                 {"kind", "ControllerRevision"},
                 {"metadata",
                  {{"name", cr_name},
                   {"namespace", ds.ns},
                   {"uid", random_uid()},
                   {"creationTimestamp", rfc3339_ms(now_ms)},
                   {"labels", cr_labels},
                   {"ownerReferences", json::array({ref})}}},
                 {"data", {{"spec", {{"template", data_tmpl}}}}},
                 {"revision", max_rev + 1}};
      if (ds.obj["metadata"].contains("annotations") &&
          ds.obj["metadata"]["annotations"].contains("kubernetes.io/change-cause"))
        cr["metadata"]["annotations"]["kubernetes.io/change-cause"] =
            ds.obj["metadata"]["annotations"]["kubernetes.io/change-cause"];
      auto r = put_object(std::string(kControllerRevisionsPrefix) + ds.ns + "/" + cr_name, cr,
                          Revision{0});
      if (!r.ok() && r.status().code() != Code::kFailedPrecondition) return r.status();
    } else if (common::json_int_at(current->obj, {"revision"}, 0) < max_rev) {
      json cr = current->obj;  // an undo: the old revision becomes the newest
      cr["revision"] = max_rev + 1;
      auto r = put_object(current->key, cr, current->mod_revision);
      if (!r.ok() && failure.ok()) failure = r.status();
    }
    int64_t limit = common::json_int_at(ds.obj, {"spec", "revisionHistoryLimit"}, 10);
    std::vector<const ObjRec*> olds;
    for (const auto& r : revisions)
      if (&r != current) olds.push_back(&r);
    std::sort(olds.begin(), olds.end(), [](const ObjRec* a, const ObjRec* b) {
      return common::json_int_at(a->obj, {"revision"}, 0) <
             common::json_int_at(b->obj, {"revision"}, 0);
    });
    for (size_t i = 0; static_cast<int64_t>(olds.size() - i) > limit; ++i)
      (void)store.txn({Op::remove(olds[i]->key, olds[i]->mod_revision)});
  }

  // Place and remove.
  json pod_tmpl = tmpl;
  pod_tmpl["metadata"]["labels"][kRevisionHash] = hash;
  // A Rollout decides which nodes may run `hash` (its partition); the others run its stable
  // revision, from that revision's ControllerRevision. "" as a node's wanted revision: hold
  // (replace nothing, as while the Rollout has not caught up with a template change).
  rollout::Partition part;
  bool ruled = false;
  json stable_tmpl = pod_tmpl;
  json stable_raw = tmpl;  // without the revision label, as the DaemonSet's own template
  if (ro) {
    part = rollout::partition(rollout_spec_from_json(ro->obj), rollout_status_from_json(ro->obj),
                              hash, fleet, ro->uid);
    ruled = true;
    if (part.stable != hash) {
      bool found = false;
      for (const auto& r : revisions) {
        if (common::json_string_at(r.obj, {"metadata", "labels", kRevisionHash}) != part.stable)
          continue;
        if (!r.obj.contains("data") || !r.obj["data"].contains("spec") ||
            !r.obj["data"]["spec"].contains("template"))
          continue;
        stable_tmpl = r.obj["data"]["spec"]["template"];
        stable_tmpl.erase("$patch");
        stable_raw = stable_tmpl;
        stable_tmpl["metadata"]["labels"][kRevisionHash] = part.stable;
        found = true;
      }
      if (!found) part.hold = true;  // its history is gone: keep what runs
    }
  }
  auto wanted = [&](const std::string& node) -> std::string {
    if (!ruled) return hash;
    if (part.hold) return "";
    return part.desired(node);
  };
  auto template_for = [&](const std::string& node) -> const json& {
    if (!ruled) return pod_tmpl;
    std::string w = wanted(node);
    if (w.empty()) w = part.stable;  // holding: a new pod gets the stable revision
    return w == hash ? pod_tmpl : stable_tmpl;
  };

  bool on_delete = common::json_string_at(ds.obj, {"spec", "updateStrategy", "type"}) == "OnDelete";
  int64_t desired = 0, current_n = 0, misscheduled = 0, ready = 0, updated = 0, available = 0,
          unreachable_n = 0;
  std::vector<const PodRec*> outdated;  // old-template pods on reachable nodes, for the rollout
  int64_t unavailable_now = 0;
  std::set<std::string> node_names;
  for (const auto& [node, run] : node_list) {
    node_names.insert(node);
    auto pit = by_node.find(node);
    std::vector<const PodRec*> active, terminating;
    if (pit != by_node.end())
      for (const auto& p : pit->second)
        (views[p.key].active() ? active : terminating).push_back(&p);
    bool unreachable = unreachable_nodes.count(node) > 0;
    if (!run) {
      for (const auto* p : active) {
        note(delete_pod(*p));
        ++misscheduled;
      }
      continue;
    }
    ++desired;
    if (unreachable) ++unreachable_n;
    if (active.empty()) {
      if (terminating.empty())
        note(create_pods(ds.ns, template_for(node), ds.name, ref, 1, {}, node));
      if (!unreachable) ++unavailable_now;  // an unreachable node does not hold the rollout
      continue;
    }
    ++current_n;
    std::sort(active.begin(), active.end(),
              [](const PodRec* a, const PodRec* b) { return a->created_ms < b->created_ms; });
    for (size_t i = 1; i < active.size(); ++i) note(delete_pod(*active[i]));  // one per node
    const PodRec* p = active[0];
    const PodView& v = views[p->key];
    if (v.ready()) ++ready;
    bool avail = v.available(min_ready, now_ms);
    if (avail)
      ++available;
    else if (!unreachable)
      ++unavailable_now;
    auto h = p->labels.find(kRevisionHash);
    std::string have = h != p->labels.end() ? h->second : "";
    if (have == hash) ++updated;
    std::string want = wanted(node);
    if (!want.empty() && have != want && !unreachable) outdated.push_back(p);
  }
  // Pods on nodes that are gone.
  for (const auto& [node, list] : by_node) {
    if (node_names.count(node)) continue;
    for (const auto& p : list)
      if (views[p.key].active()) {
        note(delete_pod(p));
        ++misscheduled;
      }
  }
  if (!on_delete && !outdated.empty()) {
    json ru = spec.contains("updateStrategy") && spec["updateStrategy"].contains("rollingUpdate")
                  ? spec["updateStrategy"]["rollingUpdate"]
                  : json::object();
    json mu_v = ru.value("maxUnavailable", json(1));
    int64_t max_unavailable = 1;
    if (mu_v.is_number_integer()) {
      max_unavailable = mu_v.get<int64_t>();
    } else if (mu_v.is_string()) {
      std::string s = mu_v.get<std::string>();
      double pct = std::strtod(s.c_str(), nullptr);
      max_unavailable = static_cast<int64_t>(pct * static_cast<double>(desired) / 100.0);
    }
    max_unavailable = std::max<int64_t>(1, max_unavailable);
    // Unavailable old pods first (they cost nothing), then within the budget.
    std::stable_sort(outdated.begin(), outdated.end(), [&](const PodRec* a, const PodRec* b) {
      return !views[a->key].available(min_ready, now_ms) &&
             views[b->key].available(min_ready, now_ms);
    });
    int64_t budget = max_unavailable - unavailable_now;
    // Images-only template changes update the pod in place (inplace.h); the rest replace it.
    bool in_place = update_in_place(ds.obj, true);
    auto old_template = [&](const PodRec& p) {
      auto h = p.labels.find(kRevisionHash);
      for (const auto& r : revisions)
        if (h != p.labels.end() &&
            common::json_string_at(r.obj, {"metadata", "labels", kRevisionHash}) == h->second &&
            r.obj.contains("data") && r.obj["data"].contains("spec"))
          return r.obj["data"]["spec"].value("template", json::object());
      return template_of_pod(json::parse(p.json, nullptr, false));
    };
    for (const auto* p : outdated) {
      bool avail = views[p->key].available(min_ready, now_ms);
      if (avail && budget <= 0) break;
      // The revision the pod should get: the template's, or the Rollout's stable one.
      std::string want = wanted(p->node);
      const json& to = want == hash || want.empty() ? tmpl : stable_raw;
      if (want.empty()) want = hash;
      bool swap = in_place && images_only_change(old_template(*p), to);
      bool done = swap ? note(update_pod_in_place(*p, to, {{kRevisionHash, want}}, want))
                       : note(delete_pod(*p));
      if (done && avail) --budget;
    }
  }
  if (wrote) expect[qkey] = wrote;

  json old_status = ds.obj.value("status", json::object());
  if (!old_status.is_object()) old_status = json::object();
  json status = old_status;
  status["desiredNumberScheduled"] = desired;
  status["currentNumberScheduled"] = current_n;
  status["numberMisscheduled"] = misscheduled;
  status["numberReady"] = ready;
  status["updatedNumberScheduled"] = updated;
  status["numberAvailable"] = available;
  status["numberUnavailable"] = std::max<int64_t>(0, desired - available);
  status["numberUnreachable"] = unreachable_n;
  status["observedGeneration"] = common::json_int_at(ds.obj, {"metadata", "generation"}, 1);
  if (unreachable_n > 0) {
    set_condition(status, "Reachable", "False", "NodesUnreachable",
                  fmt::format("{} of {} nodes are unreachable; their pods keep running there and "
                              "are updated when the node returns",
                              unreachable_n, desired),
                  now_ms);
  } else if (find_condition(status, "Reachable")) {
    set_condition(status, "Reachable", "True", "AllReachable", "every node is reachable", now_ms);
  }
  Status s = write_status(ds, status);
  if (!s.ok() && failure.ok()) failure = s;
  if (ro) queue.add(queue_key(WKind::kRollout, ro->key));  // its counts follow the pods
  if (failure.code() == Code::kInvalidArgument) return common::ok_status();
  return failure;
}

}  // namespace gantry::cloud::controllers
