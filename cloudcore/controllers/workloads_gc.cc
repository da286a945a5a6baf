// The garbage collector of workload dependents (pods, ReplicaSets, ControllerRevisions).
// - Background (the default): once an owner is gone from the store, a dependent none of whose
//   owners is alive any more is deleted (a bound pod gracefully: the edge stops it first).
// - Foreground: the owner carries deletionTimestamp and the finalizer `foregroundDeletion`; its
//   dependents are deleted, and the owner is removed once none is left.
// - Orphan: the owner carries deletionTimestamp and the finalizer `orphan`; its dependents lose
//   their ownerReference to it, then the owner is removed.
// "Alive" is read from the store itself (not the cache), so a dependent seen before its owner
// (the watches of different prefixes are not ordered) is never collected by mistake.
#include <fmt/format.h>

#include "cloudcore/controllers/workloads_impl.h"
#include "cloudcore/registry/keys.h"
#include "common/base/json.h"

namespace gantry::cloud::controllers {

namespace {

std::optional<std::string> prefix_of_kind(const std::string& kind) {
  if (kind == "ReplicaSet") return std::string(kReplicaSetsPrefix);
  if (kind == "Deployment") return std::string(kDeploymentsPrefix);
  if (kind == "DaemonSet") return std::string(kDaemonSetsPrefix);
  if (kind == "StatefulSet") return std::string("/statefulsets/");
  if (kind == "Job") return std::string(kJobsPrefix);
  if (kind == "CronJob") return std::string(kCronJobsPrefix);
  return std::nullopt;
}

bool has_finalizer(const json& obj, const std::string& name) {
  const json* f = nullptr;
  if (obj.contains("metadata") && obj["metadata"].contains("finalizers"))
    f = &obj["metadata"]["finalizers"];
  if (!f || !f->is_array()) return false;
  for (const auto& x : *f)
    if (x.is_string() && x.get<std::string>() == name) return true;
  return false;
}

}  // namespace

Status WorkloadControllers::Impl::collect(const std::string& qkey, const std::string& key) {
  // 1. An owner being deleted with Foreground or Orphan propagation.
  std::optional<ObjRec> owner;
  std::vector<PodRec> dep_pods;
  std::vector<ObjRec> dep_objs;
  std::optional<PodRec> pod;
  std::optional<ObjRec> obj;
  {
    std::lock_guard lock(mu);
    for (int k = 0; k < kWKinds; ++k) {
      auto it = objs[k].find(key);
      if (it == objs[k].end()) continue;
      obj = it->second;
    }
    if (auto p = pods.find(key); p != pods.end()) pod = p->second;
    if (obj && obj->deleting) {
      owner = obj;
      if (auto d = dependents.find(obj->uid); d != dependents.end()) {
        for (const auto& dk : d->second) {
          if (auto p = pods.find(dk); p != pods.end()) dep_pods.push_back(p->second);
          for (int k = 0; k < kWKinds; ++k)
            if (auto o = objs[k].find(dk); o != objs[k].end()) dep_objs.push_back(o->second);
        }
      }
    }
  }
  Status failure = common::ok_status();
  if (owner) {
    bool orphan = has_finalizer(owner->obj, "orphan");
    bool foreground = has_finalizer(owner->obj, "foregroundDeletion");
    if (!orphan && !foreground) return common::ok_status();
    size_t remaining = 0;
    auto drop_ref = [&](json& o) {
      json kept = json::array();
      for (const auto& r : o["metadata"]["ownerReferences"])
        if (r.value("uid", "") != owner->uid) kept.push_back(r);
      if (kept.empty())
        o["metadata"].erase("ownerReferences");
      else
        o["metadata"]["ownerReferences"] = kept;
    };
    for (const auto& p : dep_pods) {
      if (orphan) {
        auto r = rewrite_pod(p, drop_ref);
        if (!r.ok()) failure = r.status();
        ++stats.collected;
      } else {
        ++remaining;  // a bound pod stays until its node has stopped it
        if (!p.terminating) {
          auto r = delete_pod(p);
          if (!r.ok()) failure = r.status();
          ++stats.collected;
        }
      }
    }
    for (const auto& d : dep_objs) {
      if (orphan) {
        json o = d.obj;
        drop_ref(o);
        auto r = put_object(d.key, o, d.mod_revision);
        if (!r.ok()) failure = r.status();
      } else {
        ++remaining;
        // Foreground cascades: the dependent waits for its own dependents first.
        json o = d.obj;
        if (!d.deleting) {
          o["metadata"]["deletionTimestamp"] = rfc3339_ms(clock.unix_ms());
          o["metadata"]["finalizers"] = json::array({"foregroundDeletion"});
          auto r = put_object(d.key, o, d.mod_revision);
          if (!r.ok()) failure = r.status();
        }
      }
      ++stats.collected;
    }
    if (!failure.ok()) return failure;
    if (remaining > 0) return common::ok_status();  // dependents' deletions bring us back
    auto r = store.txn({Op::remove(owner->key, owner->mod_revision)});
    if (!r.ok() && r.status().code() != Code::kNotFound) return r.status();
    return common::ok_status();
  }

  // 2. A dependent whose owners may all be gone.
  std::vector<OwnerRef> owners;
  std::string ns;
  if (pod) {
    owners = pod->owners;
    ns = pod->ns;
    if (pod->terminating) return common::ok_status();
  } else if (obj) {
    owners = obj->owners;
    ns = obj->ns;
    if (obj->deleting) return common::ok_status();
  } else {
    return common::ok_status();
  }
  if (owners.empty()) return common::ok_status();
  for (const auto& o : owners) {
    auto prefix = prefix_of_kind(o.kind);
    if (!prefix) return common::ok_status();  // an owner we do not manage: leave it be
    auto kv = store.get(*prefix + ns + "/" + o.name);
    if (!kv.ok()) return kv.status();
    if (!*kv) continue;
    auto sj = stored_json((*kv)->value);
    json live = sj ? json::parse(*sj, nullptr, false) : json();
    if (!live.is_object() || common::json_string_at(live, {"metadata", "uid"}) != o.uid) continue;
    // Alive. Under foreground deletion the owner's dependents go first.
    if (!(live["metadata"].contains("deletionTimestamp") &&
          has_finalizer(live, "foregroundDeletion")))
      return common::ok_status();
  }
  ++stats.collected;
  if (pod) {
    auto r = delete_pod(*pod);
    return r.ok() ? common::ok_status() : r.status();
  }
  auto r = store.txn({Op::remove(obj->key, obj->mod_revision)});
  if (!r.ok() && r.status().code() != Code::kNotFound) return r.status();
  (void)qkey;
  return common::ok_status();
}

}  // namespace gantry::cloud::controllers
