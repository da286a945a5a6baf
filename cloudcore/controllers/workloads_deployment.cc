// Deployment: one ReplicaSet per pod template (named <deployment>-<pod-template-hash>, the hash
// also a label and part of the selector), revisions in `deployment.kubernetes.io/revision`,
// RollingUpdate (maxSurge/maxUnavailable) and Recreate, paused, revisionHistoryLimit, the
// Available/Progressing conditions kubectl's `rollout status` reads (ProgressDeadlineExceeded).
//
// Edge rules: replicas on unreachable nodes count as available as last reported, so a rollout
// goes on through the reachable nodes without stalling; the old ReplicaSets scale down through
// reachable pods first, and an old pod on an unreachable node is retired (deleted gracefully,
// stopped when its node returns) only when its ReplicaSet reaches it. Recreate does not wait for
// old pods stuck terminating on unreachable nodes.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "cloudcore/controllers/workloads_impl.h"
#include "cloudcore/registry/keys.h"
#include "common/base/json.h"

namespace gantry::cloud::controllers {

namespace {

constexpr const char* kRevision = "deployment.kubernetes.io/revision";
constexpr const char* kHashLabel = kPodTemplateHash;

// Kubernetes' rand.SafeEncodeString alphabet over the decimal digits of the hash.
std::string safe_encode(uint32_t h) {
  static constexpr char kAlphabet[] = "bcdfghjklmnpqrstvwxz2456789";
  std::string digits = std::to_string(h), out;
  for (char c : digits) out += kAlphabet[(c - '0') % (sizeof(kAlphabet) - 1)];
  return out;
}

json without_hash(json tmpl) {
  if (tmpl.contains("metadata") && tmpl["metadata"].contains("labels") &&
      tmpl["metadata"]["labels"].is_object()) {
    tmpl["metadata"]["labels"].erase(kHashLabel);
    if (tmpl["metadata"]["labels"].empty()) tmpl["metadata"].erase("labels");
  }
  if (tmpl.contains("metadata") && tmpl["metadata"].is_object() && tmpl["metadata"].empty())
    tmpl.erase("metadata");
  return tmpl;
}

std::string template_hash(const json& tmpl) {
  std::string text = without_hash(tmpl).dump();  // keys sorted: deterministic
  uint32_t h = 2166136261u;
  for (unsigned char c : text) {
    h ^= c;
    h *= 16777619u;
  }
  return safe_encode(h);
}

int64_t revision_of(const json& obj) {
  std::string r = common::json_string_at(obj, {"metadata", "annotations", kRevision});
  return r.empty() ? 0 : std::strtoll(r.c_str(), nullptr, 10);
}

// intstr: an int, or "25%" of `total` rounded up (surge) or down (unavailable).
int64_t int_or_percent(const json& v, int64_t total, bool round_up, int64_t fallback) {
  if (v.is_number_integer()) return v.get<int64_t>();
  if (!v.is_string()) return fallback;
  std::string s = v.get<std::string>();
  if (s.empty() || s.back() != '%') return std::strtoll(s.c_str(), nullptr, 10);
  double pct = std::strtod(s.c_str(), nullptr);
  double x = pct * static_cast<double>(total) / 100.0;
  return static_cast<int64_t>(round_up ? std::ceil(x) : std::floor(x));
}

struct RsInfo {
  ObjRec rec;
  int64_t spec_replicas = 0;
  int64_t replicas = 0, ready = 0, available = 0, unreachable = 0;
  int64_t revision = 0;
  bool current = false;  // status.observedGeneration >= metadata.generation
};

RsInfo rs_info(const ObjRec& r) {
  RsInfo i;
  i.rec = r;
  i.spec_replicas = common::json_int_at(r.obj, {"spec", "replicas"}, 1);
  i.replicas = common::json_int_at(r.obj, {"status", "replicas"}, 0);
  i.ready = common::json_int_at(r.obj, {"status", "readyReplicas"}, 0);
  i.available = common::json_int_at(r.obj, {"status", "availableReplicas"}, 0);
  i.unreachable = common::json_int_at(r.obj, {"status", "unreachableReplicas"}, 0);
  i.revision = revision_of(r.obj);
  i.current = common::json_int_at(r.obj, {"status", "observedGeneration"}, 0) >=
              common::json_int_at(r.obj, {"metadata", "generation"}, 1);
  return i;
}

}  // namespace

std::string deployment_revision(const json& tmpl) {
  return template_hash(tmpl);
}

Status WorkloadControllers::Impl::reconcile_deployment(const std::string& qkey,
                                                       const std::string& key) {
  ObjRec d;
  std::vector<RsInfo> sets;
  size_t old_pods_terminating_reachable = 0;
  std::optional<ObjRec> ro;              // the Rollout that stages this Deployment's updates
  std::vector<rollout::NodeInfo> fleet;  // its replicas as the plan sees them
  {
    std::lock_guard lock(mu);
    auto& m = objs[static_cast<int>(WKind::kDeployment)];
    auto it = m.find(key);
    if (it == m.end()) return common::ok_status();
    d = it->second;
    if (auto rk = controlling_rollout_locked(key)) {
      auto& rm = objs[static_cast<int>(WKind::kRollout)];
      if (auto r = rm.find(*rk); r != rm.end()) {
        ro = r->second;
        fleet = deployment_fleet_locked(d, ro->uid);
      }
    }
    auto& rsm = objs[static_cast<int>(WKind::kReplicaSet)];
    if (auto dep = dependents.find(d.uid); dep != dependents.end()) {
      for (const auto& k : dep->second) {
        auto r = rsm.find(k);
        if (r != rsm.end() && r->second.controller_uid == d.uid && !r->second.deleting)
          sets.push_back(rs_info(r->second));
      }
    }
    // Old pods still stopping on reachable nodes (Recreate waits for them).
    std::string new_hash = template_hash(d.obj["spec"].value("template", json::object()));
    for (const auto& s : sets) {
      if (common::json_string_at(s.rec.obj, {"metadata", "labels", kHashLabel}) == new_hash)
        continue;
      auto dep = dependents.find(s.rec.uid);
      if (dep == dependents.end()) continue;
      for (const auto& pk : dep->second) {
        auto p = pods.find(pk);
        if (p == pods.end() || !p->second.terminating) continue;
        if (!view_locked(p->second).node_unreachable) ++old_pods_terminating_reachable;
      }
    }
  }
  if (d.deleting) return common::ok_status();
  json spec = d.obj.value("spec", json::object());
  json tmpl = spec.value("template", json::object());
  std::string hash = template_hash(tmpl);
  int64_t replicas = std::max<int64_t>(0, common::json_int_at(d.obj, {"spec", "replicas"}, 1));
  bool paused = spec.value("paused", false);
  std::string strategy = common::json_string_at(d.obj, {"spec", "strategy", "type"});
  bool recreate = strategy == "Recreate";
  json ru = recreate ? json::object()
                     : (spec.contains("strategy") && spec["strategy"].contains("rollingUpdate")
                            ? spec["strategy"]["rollingUpdate"]
                            : json::object());
  int64_t max_surge =
      recreate ? 0 : int_or_percent(ru.value("maxSurge", json("25%")), replicas, true, 1);
  int64_t max_unavailable =
      recreate ? replicas
               : int_or_percent(ru.value("maxUnavailable", json("25%")), replicas, false, 0);
  if (!recreate && max_surge == 0 && max_unavailable == 0) max_unavailable = 1;
  int64_t now_ms = clock.unix_ms();
  Status failure = common::ok_status();

  // A Rollout decides how many replicas may run `hash` (its partition's share of the replica
  // slots); the others stay on its stable revision. Hold: replace nothing until the Rollout has
  // seen the template.
  bool staged = false, hold = false;
  int64_t cap = replicas;
  std::string stable_hash;
  if (ro && !paused) {
    rollout::Partition part = rollout::partition(
        rollout_spec_from_json(ro->obj), rollout_status_from_json(ro->obj), hash, fleet, ro->uid);
    if (part.hold) {
      hold = true;
    } else if (part.stable != hash) {
      staged = true;
      stable_hash = part.stable;
      cap = std::min<int64_t>(replicas, static_cast<int64_t>(part.allowed.size()));
    }
  }

  std::sort(sets.begin(), sets.end(), [](const RsInfo& a, const RsInfo& b) {
    if (a.revision != b.revision) return a.revision < b.revision;
    return a.rec.name < b.rec.name;
  });
  RsInfo* newest = nullptr;
  for (auto& s : sets)
    if (without_hash(s.rec.obj["spec"].value("template", json::object())) == without_hash(tmpl))
      newest = &s;
  int64_t max_revision = 0;
  for (const auto& s : sets)
    if (newest != &s) max_revision = std::max(max_revision, s.revision);

  // Annotations a Deployment passes on to its ReplicaSets (kubectl reads change-cause there).
  auto copied_annotations = [&](json& meta) {
    if (!d.obj["metadata"].contains("annotations")) return;
    for (auto it = d.obj["metadata"]["annotations"].begin();
         it != d.obj["metadata"]["annotations"].end(); ++it) {
      if (it.key() == "kubectl.kubernetes.io/last-applied-configuration" || it.key() == kRevision)
        continue;
      meta["annotations"][it.key()] = *it;
    }
  };

  auto scale = [&](RsInfo& s, int64_t to) -> bool {
    if (s.spec_replicas == to) return true;
    json o = s.rec.obj;
    o["spec"]["replicas"] = to;
    o["metadata"]["generation"] = common::json_int_at(o, {"metadata", "generation"}, 1) + 1;
    auto r = put_object(s.rec.key, o, s.rec.mod_revision);
    if (!r.ok()) {
      if (failure.ok()) failure = r.status();
      return false;
    }
    s.spec_replicas = to;
    s.rec.mod_revision = *r;
    s.rec.obj = std::move(o);
    s.current = false;
    return true;
  };

  bool created_new = false;
  if (!paused) {
    if (!newest) {
      // A new ReplicaSet for this template.
      int64_t all = 0;
      for (const auto& s : sets) all += s.spec_replicas;
      int64_t start =
          recreate ? 0 : std::max<int64_t>(0, std::min(replicas, replicas + max_surge - all));
      if (hold) start = 0;
      if (staged) start = std::min(start, cap);
      json rs_tmpl = tmpl;
      rs_tmpl["metadata"]["labels"][kHashLabel] = hash;
      json selector = spec.value("selector", json::object());
      selector["matchLabels"][kHashLabel] = hash;
      json meta = {{"name", d.name + "-" + hash},
                   {"namespace", d.ns},
                   {"uid", random_uid()},
                   {"generation", 1},
                   {"creationTimestamp", rfc3339_ms(now_ms)},
                   {"labels", rs_tmpl["metadata"]["labels"]},
                   {"ownerReferences", json::array({owner_ref_json("Deployment", d.name, d.uid)})}};
      copied_annotations(meta);
      meta["annotations"][kRevision] = std::to_string(max_revision + 1);
      json rs = {{"apiVersion", "apps/v1"},
                 {"kind", "ReplicaSet"},
                 {"metadata", meta},
                 {"spec",
                  {{"replicas", start},
                   {"minReadySeconds", common::json_int_at(d.obj, {"spec", "minReadySeconds"}, 0)},
                   {"selector", selector},
                   {"template", rs_tmpl}}}};
      std::string rs_key = std::string(kReplicaSetsPrefix) + d.ns + "/" + d.name + "-" + hash;
      auto r = put_object(rs_key, rs, Revision{0});
      if (!r.ok()) {
        // kFailedPrecondition: it exists (a collision or our own write not seen yet).
        return r.status();
      }
      created_new = true;
      RsInfo info;
      info.rec.key = rs_key;
      info.rec.ns = d.ns;
      info.rec.name = d.name + "-" + hash;
      info.rec.uid = meta["uid"];
      info.rec.mod_revision = *r;
      info.rec.obj = rs;
      info.spec_replicas = start;
      info.revision = max_revision + 1;
      sets.push_back(info);
      newest = &sets.back();
    } else if (newest->revision <= max_revision) {
      // A rollback to an older template: it becomes the newest revision again.
      json o = newest->rec.obj;
      o["metadata"]["annotations"][kRevision] = std::to_string(max_revision + 1);
      copied_annotations(o["metadata"]);
      auto r = put_object(newest->rec.key, o, newest->rec.mod_revision);
      if (!r.ok()) return r.status();
      newest->rec.obj = o;
      newest->rec.mod_revision = *r;
      newest->revision = max_revision + 1;
    }
  }

  std::vector<RsInfo*> olds;
  for (auto& s : sets)
    if (&s != newest) olds.push_back(&s);

  // Staged: the stable revision's ReplicaSet keeps replicas - cap (it grows back after an abort),
  // the new one gets cap, others none; moves within maxSurge / maxUnavailable as a rolling update
  // (Recreate: surge 0, every replica may go at once). Without the stable ReplicaSet (its history
  // is gone) the update is not staged.
  RsInfo* stable_rs = nullptr;
  if (staged)
    for (auto& s : sets)
      if (&s != newest &&
          common::json_string_at(s.rec.obj, {"metadata", "labels", kHashLabel}) == stable_hash)
        stable_rs = &s;
  if (staged && !stable_rs) staged = false;

  if (hold) {
    // Nothing moves.
  } else if (!paused && newest && !created_new && staged) {
    auto target_of = [&](const RsInfo& s) -> int64_t {
      if (&s == newest) return cap;
      if (&s == stable_rs) return replicas - cap;
      return 0;
    };
    int64_t all = 0;
    for (const auto& s : sets) all += s.spec_replicas;
    for (RsInfo* s : {stable_rs, newest}) {
      int64_t want = target_of(*s);
      int64_t room = replicas + max_surge - all;
      if (s->spec_replicas < want && room > 0) {
        int64_t n = std::min(room, want - s->spec_replicas);
        if (scale(*s, s->spec_replicas + n)) all += n;
      }
    }
    int64_t min_available = replicas - max_unavailable;
    int64_t growing_unavailable = 0, available_all = 0;
    for (const auto& s : sets) {
      available_all += std::min(s.available, s.spec_replicas);
      if (s.spec_replicas <= target_of(s))
        growing_unavailable += std::max<int64_t>(0, s.spec_replicas - s.available);
    }
    int64_t max_down = all - min_available - growing_unavailable;
    std::vector<RsInfo*> shrinking;  // oldest revision first, the new one last
    for (auto* o : olds)
      if (o->spec_replicas > target_of(*o)) shrinking.push_back(o);
    if (newest->spec_replicas > cap) shrinking.push_back(newest);
    for (auto* o : shrinking) {  // first the replicas that are not available anyway
      if (max_down <= 0) break;
      int64_t unhealthy = std::max<int64_t>(0, o->spec_replicas - o->available);
      int64_t n = std::min({unhealthy, max_down, o->spec_replicas - target_of(*o)});
      if (n > 0 && scale(*o, o->spec_replicas - n)) max_down -= n;
    }
    int64_t budget = std::min(max_down, available_all - min_available);
    for (auto* o : shrinking) {
      if (budget <= 0) break;
      int64_t n = std::min(o->spec_replicas - target_of(*o), budget);
      if (n > 0 && scale(*o, o->spec_replicas - n)) budget -= n;
    }
  } else if (!paused && newest && !created_new) {
    if (recreate) {
      bool olds_gone = true;
      for (auto* o : olds) {
        scale(*o, 0);
        if (o->replicas > 0 || !o->current) olds_gone = false;
      }
      if (olds_gone && old_pods_terminating_reachable == 0) scale(*newest, replicas);
    } else {
      // Scale the new ReplicaSet up within maxSurge.
      int64_t all = 0;
      for (const auto& s : sets) all += s.spec_replicas;
      if (newest->spec_replicas > replicas) {
        scale(*newest, replicas);
      } else if (newest->spec_replicas < replicas) {
        int64_t room = replicas + max_surge - all;
        if (room > 0)
          scale(*newest, newest->spec_replicas + std::min(room, replicas - newest->spec_replicas));
      }
      // Scale the old ones down within maxUnavailable.
      all = 0;
      for (const auto& s : sets) all += s.spec_replicas;
      int64_t old_total = 0;
      for (auto* o : olds) old_total += o->spec_replicas;
      if (old_total > 0) {
        int64_t min_available = replicas - max_unavailable;
        int64_t new_unavailable = std::max<int64_t>(0, newest->spec_replicas - newest->available);
        int64_t max_down = all - min_available - new_unavailable;
        // First the old replicas that are not available anyway (they cost no availability).
        for (auto* o : olds) {
          if (max_down <= 0) break;
          int64_t unhealthy = std::max<int64_t>(0, o->spec_replicas - o->available);
          int64_t n = std::min(unhealthy, max_down);
          if (n > 0 && scale(*o, o->spec_replicas - n)) max_down -= n;
        }
        int64_t available_all = 0;
        for (const auto& s : sets) available_all += std::min(s.available, s.spec_replicas);
        int64_t budget = std::min(max_down, available_all - min_available);
        for (auto* o : olds) {  // oldest revision first
          if (budget <= 0) break;
          int64_t n = std::min(o->spec_replicas, budget);
          if (n > 0 && scale(*o, o->spec_replicas - n)) budget -= n;
        }
      }
    }
  } else if (paused && newest && newest->spec_replicas != replicas && olds.empty()) {
    scale(*newest, replicas);  // a paused Deployment still scales
  }

  // Revision history: old ReplicaSets with no pods beyond revisionHistoryLimit go.
  int64_t limit = common::json_int_at(d.obj, {"spec", "revisionHistoryLimit"}, 10);
  std::vector<RsInfo*> empty_olds;
  for (auto* o : olds)
    if (o->spec_replicas == 0 && o->replicas == 0 && o->current) empty_olds.push_back(o);
  for (size_t i = 0; static_cast<int64_t>(empty_olds.size() - i) > limit; ++i) {
    auto r = store.txn({Op::remove(empty_olds[i]->rec.key, empty_olds[i]->rec.mod_revision)});
    if (!r.ok() && r.status().code() != Code::kNotFound && failure.ok()) failure = r.status();
  }

  // Status.
  json old_status = d.obj.value("status", json::object());
  if (!old_status.is_object()) old_status = json::object();
  json status = old_status;
  int64_t total = 0, ready = 0, available = 0, unreachable = 0;
  for (const auto& s : sets) {
    total += s.replicas;
    ready += s.ready;
    available += s.available;
    unreachable += s.unreachable;
  }
  int64_t updated = newest ? newest->replicas : 0;
  status["observedGeneration"] = common::json_int_at(d.obj, {"metadata", "generation"}, 1);
  status["replicas"] = total;
  status["updatedReplicas"] = updated;
  status["readyReplicas"] = ready;
  status["availableReplicas"] = available;
  status["unavailableReplicas"] = std::max<int64_t>(0, total - available);
  status["unreachableReplicas"] = unreachable;
  if (available >= replicas - max_unavailable)
    set_condition(status, "Available", "True", "MinimumReplicasAvailable",
                  "Deployment has minimum availability.", now_ms);
  else
    set_condition(status, "Available", "False", "MinimumReplicasUnavailable",
                  "Deployment does not have minimum availability.", now_ms);
  std::string new_name = newest ? newest->rec.name : d.name;
  bool complete = newest && updated == replicas && total == updated && available >= updated &&
                  newest->spec_replicas == replicas;
  int64_t deadline_s = common::json_int_at(d.obj, {"spec", "progressDeadlineSeconds"}, 600);
  std::optional<int64_t> check_deadline_at;
  if (paused) {
    set_condition(status, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused",
                  now_ms);
  } else if ((staged || hold) && !complete) {
    // The Rollout paces the update (and has its own deadline for pods that do not get Ready).
    set_condition(status, "Progressing", "True", "RolloutStaged",
                  fmt::format("rollouts.gantry.io \"{}\" stages the update: {} of {} replicas "
                              "may run ReplicaSet \"{}\" now",
                              ro->name, hold ? (newest ? newest->spec_replicas : 0) : cap, replicas,
                              new_name),
                  now_ms);
  } else if (complete) {
    set_condition(status, "Progressing", "True", "NewReplicaSetAvailable",
                  fmt::format("ReplicaSet \"{}\" has successfully progressed.", new_name), now_ms);
  } else {
    const json* prev = find_condition(old_status, "Progressing");
    bool progressed = created_new || !prev || old_status.value("updatedReplicas", -1) != updated ||
                      old_status.value("availableReplicas", -1) != available ||
                      old_status.value("readyReplicas", -1) != ready ||
                      old_status.value("replicas", -1) != total ||
                      prev->value("reason", "") == "DeploymentPaused" ||
                      prev->value("reason", "") == "NewReplicaSetAvailable";
    if (created_new) {
      set_condition(status, "Progressing", "True", "NewReplicaSetCreated",
                    fmt::format("Created new replica set \"{}\"", new_name), now_ms);
    } else if (progressed) {
      set_condition(status, "Progressing", "True", "ReplicaSetUpdated",
                    fmt::format("ReplicaSet \"{}\" is progressing.", new_name), now_ms);
      for (auto& c : status["conditions"])
        if (c["type"] == "Progressing") c["lastUpdateTime"] = rfc3339_ms(now_ms);
    } else if (prev->value("reason", "") != "ProgressDeadlineExceeded") {
      auto since = parse_rfc3339_ms(prev->value("lastUpdateTime", "")).value_or(now_ms);
      if (since + deadline_s * 1000 <= now_ms)
        set_condition(status, "Progressing", "False", "ProgressDeadlineExceeded",
                      fmt::format("ReplicaSet \"{}\" has timed out progressing.", new_name),
                      now_ms);
      else
        check_deadline_at = since + deadline_s * 1000;
    }
    if (!check_deadline_at) {
      const json* c = find_condition(status, "Progressing");
      if (c && c->value("reason", "") != "ProgressDeadlineExceeded")
        check_deadline_at = now_ms + deadline_s * 1000;
    }
  }
  if (unreachable > 0) {
    set_condition(status, "Reachable", "False", "NodesUnreachable",
                  fmt::format("{} of {} replicas are on unreachable nodes; they keep running "
                              "there and count as last reported",
                              unreachable, total),
                  now_ms);
  } else if (find_condition(status, "Reachable")) {
    set_condition(status, "Reachable", "True", "AllReachable",
                  "every replica is on a reachable node", now_ms);
  }
  json obj = d.obj;
  bool meta_changed = false;
  if (newest && revision_of(obj) != newest->revision) {
    obj["metadata"]["annotations"][kRevision] = std::to_string(newest->revision);
    meta_changed = true;
  }
  if (meta_changed || status != old_status) {
    obj["status"] = status;
    auto r = put_object(d.key, obj, d.mod_revision);
    if (!r.ok() && failure.ok()) failure = r.status();
    if (r.ok()) ++stats.status_writes;
  }
  if (check_deadline_at)
    queue.add_after(qkey,
                    std::chrono::milliseconds(std::max<int64_t>(1, *check_deadline_at - now_ms)));
  if (ro) queue.add(queue_key(WKind::kRollout, ro->key));  // its counts follow the replicas
  return failure;
}

}  // namespace gantry::cloud::controllers
