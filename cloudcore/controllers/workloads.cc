#include "cloudcore/controllers/workloads.h"

#include <fmt/format.h>
#include <pthread.h>

#include "cloudcore/controllers/workloads_impl.h"
#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "common/base/json.h"

namespace gantry::cloud::controllers {

namespace {

constexpr std::string_view kPrefixes[kWKinds] = {
    kReplicaSetsPrefix, kDeploymentsPrefix, kDaemonSetsPrefix, kControllerRevisionsPrefix,
    kRolloutsPrefix,    kJobsPrefix,        kCronJobsPrefix};
constexpr const char* kQueueTags[kWKinds] = {"rs", "deploy", "ds", "cr", "ro", "job", "cj"};

std::pair<std::string, std::string> ns_name(std::string_view key, std::string_view prefix) {
  key.remove_prefix(prefix.size());
  auto slash = key.find('/');
  if (slash == std::string_view::npos) return {"", std::string(key)};
  return {std::string(key.substr(0, slash)), std::string(key.substr(slash + 1))};
}

// Container states a rollout counts as a failed update (kubelet's reasons).
std::string pod_failure(const v1::PodStatus& st) {
  static const std::set<std::string> kReasons = {
      "CrashLoopBackOff",     "ErrImagePull",      "ImagePullBackOff",
      "InvalidImageName",     "ErrImageNeverPull", "CreateContainerConfigError",
      "CreateContainerError", "RunContainerError", "PreStartHookError"};
  if (st.phase() == v1::POD_PHASE_FAILED) return "Failed";
  for (const auto& c : st.containers())
    if (c.has_state() && c.state().has_waiting() && kReasons.count(c.state().waiting().reason()))
      return c.state().waiting().reason();
  return "";
}

std::string pod_key_of_status(const std::string& status_key) {
  return std::string(keys::kPods) + status_key.substr(keys::kPodStatus.size());
}

}  // namespace

std::string queue_key(WKind kind, const std::string& key) {
  return std::string(kQueueTags[static_cast<int>(kind)]) + "|" + key;
}

WorkloadControllers::Impl::Impl(Store& s, WorkloadOptions o)
    : store(s),
      options(std::move(o)),
      clock(options.clock ? *options.clock : system_clock()),
      queue(clock, options.queue) {}

// ---------------------------------------------------------------------------------------------
// Cache

void WorkloadControllers::Impl::index_dependent(const std::string& key, const std::string&,
                                                const std::vector<OwnerRef>& old_owners,
                                                const std::vector<OwnerRef>& owners) {
  for (const auto& o : old_owners) {
    auto it = dependents.find(o.uid);
    if (it == dependents.end()) continue;
    it->second.erase(key);
    if (it->second.empty()) dependents.erase(it);
  }
  for (const auto& o : owners)
    if (!o.uid.empty()) dependents[o.uid].insert(key);
}

void WorkloadControllers::Impl::enqueue_owner_of(const PodRec& p) {
  if (const OwnerRef* c = controller_of(p.owners)) {
    auto it = by_uid.find(c->uid);
    if (it != by_uid.end()) {
      for (int k = 0; k < kWKinds; ++k)
        if (it->second.starts_with(kPrefixes[k])) queue.add(queue_key(WKind(k), it->second));
      // A Deployment's pod: the Rollout staging that Deployment counts it too.
      if (it->second.starts_with(kReplicaSetsPrefix)) {
        auto& rsm = objs[static_cast<int>(WKind::kReplicaSet)];
        if (auto rs = rsm.find(it->second); rs != rsm.end() && !rs->second.controller_uid.empty())
          if (auto dk = by_uid.find(rs->second.controller_uid); dk != by_uid.end())
            if (auto ro = controlling_rollout_locked(dk->second))
              queue.add(queue_key(WKind::kRollout, *ro));
      }
    } else {
      queue.add("gc|" + p.key);  // its owner may be gone
    }
  }
  // Owners that are not the controller (rare) are checked by the collector when they go.
}

void WorkloadControllers::Impl::enqueue_orphan_claimers(
    const std::string& ns, const std::map<std::string, std::string>& labels) {
  for (WKind kind : {WKind::kReplicaSet, WKind::kDaemonSet}) {
    auto& m = objs[static_cast<int>(kind)];
    std::string prefix = std::string(kPrefixes[static_cast<int>(kind)]) + ns + "/";
    for (auto it = m.lower_bound(prefix); it != m.end() && it->first.starts_with(prefix); ++it) {
      const json* sel = nullptr;
      if (it->second.obj.contains("spec") && it->second.obj["spec"].contains("selector"))
        sel = &it->second.obj["spec"]["selector"];
      if (sel && selector_matches(*sel, labels)) queue.add(queue_key(kind, it->first));
    }
  }
}

void WorkloadControllers::Impl::enqueue_all(WKind kind) {
  for (const auto& [key, rec] : objs[static_cast<int>(kind)]) queue.add(queue_key(kind, key));
}

void WorkloadControllers::Impl::apply_pod(const std::string& key, const KeyValue* kv) {
  auto it = pods.find(key);
  if (it != pods.end()) {
    PodRec& old = it->second;
    enqueue_owner_of(old);
    index_dependent(key, old.controller_uid, old.owners, {});
    if (old.controller_uid.empty()) {
      auto o = orphans.find(old.ns);
      if (o != orphans.end()) o->second.erase(key);
    }
    if (!old.node.empty()) {
      auto n = pods_on_node.find(old.node);
      if (n != pods_on_node.end()) {
        n->second.erase(key);
        if (n->second.empty()) pods_on_node.erase(n);
      }
    }
    pods.erase(it);
  }
  if (!kv) return;
  v1::StoredObject so;
  if (!so.ParseFromString(kv->value)) return;
  json obj = json::parse(so.json(), nullptr, false);
  if (!obj.is_object()) return;
  PodRec p;
  p.key = key;
  std::tie(p.ns, p.name) = ns_name(key, keys::kPods);
  p.uid = common::json_string_at(obj, {"metadata", "uid"});
  p.mod_revision = kv->mod_revision;
  p.labels = std::map<std::string, std::string>(so.labels().begin(), so.labels().end());
  p.node = so.node_name();
  p.terminating = so.edge().pod().terminating();
  p.created_ms =
      parse_rfc3339_ms(common::json_string_at(obj, {"metadata", "creationTimestamp"})).value_or(0);
  p.revised_ms = p.created_ms;
  {  // "<revision> <unix ms>" (inplace.h)
    std::string in_place =
        common::json_string_at(obj, {"metadata", "annotations", "gantry.io/in-place-updated"});
    auto space = in_place.rfind(' ');
    if (space != std::string::npos)
      p.revised_ms =
          std::max<int64_t>(p.revised_ms, std::strtoll(in_place.c_str() + space + 1, nullptr, 10));
  }
  p.owners = owners_of(obj);
  if (const OwnerRef* c = controller_of(p.owners)) p.controller_uid = c->uid;
  p.json = std::move(*so.mutable_json());
  for (const auto& c : so.edge().pod().containers()) p.images[c.name()] = c.image();
  index_dependent(key, "", {}, p.owners);
  if (p.controller_uid.empty()) {
    orphans[p.ns].insert(key);
    if (!p.terminating) enqueue_orphan_claimers(p.ns, p.labels);
  }
  if (!p.node.empty()) pods_on_node[p.node].insert(key);
  enqueue_owner_of(p);
  pods.emplace(key, std::move(p));
}

void WorkloadControllers::Impl::apply_pod_status(const std::string& key, const KeyValue* kv) {
  std::string pod_key = pod_key_of_status(key);
  if (!kv) {
    pod_status.erase(pod_key);
  } else {
    v1::StoredStatus st;
    if (!st.ParseFromString(kv->value) || !st.has_pod()) return;
    PodStatusRec r;
    r.phase = st.pod().phase();
    r.ready = st.pod().ready();
    r.ready_since = st.pod().ready_since();
    for (const auto& c : st.pod().containers()) {
      if (c.has_image()) r.images[c.name()] = c.image();
      r.restarts += c.restart_count();
    }
    r.failure = pod_failure(st.pod());
    auto [it, inserted] = pod_status.try_emplace(pod_key, r);
    if (!inserted) {
      if (it->second.phase == r.phase && it->second.ready == r.ready &&
          it->second.ready_since == r.ready_since && it->second.images == r.images &&
          it->second.failure == r.failure && it->second.restarts == r.restarts)
        return;  // nothing a controller counts changed
      it->second = r;
    }
  }
  auto p = pods.find(pod_key);
  if (p != pods.end()) enqueue_owner_of(p->second);
}

void WorkloadControllers::Impl::apply_node(const std::string& key, const KeyValue* kv) {
  std::string name = key.substr(keys::kNodes.size());
  if (!kv) {
    nodes.erase(name);
  } else {
    v1::StoredObject so;
    if (!so.ParseFromString(kv->value)) return;
    json obj = json::parse(so.json(), nullptr, false);
    if (!obj.is_object()) return;
    NodeState state;
    state.name = name;
    node_spec_from_json(obj, state);
    nodes[name] = std::move(state);
  }
  enqueue_all(WKind::kDaemonSet);
}

void WorkloadControllers::Impl::apply_node_status(const std::string& key, const KeyValue* kv) {
  std::string name = key.substr(keys::kNodeStatus.size());
  NodeStatusRec r;
  if (kv) {
    v1::StoredStatus st;
    if (!st.ParseFromString(kv->value)) return;
    r.unreachable = st.unreachable();
    r.unreachable_since = st.unreachable_since();
  }
  auto it = node_status.find(name);
  bool was = it != node_status.end() && it->second.unreachable;
  if (kv)
    node_status[name] = r;
  else
    node_status.erase(name);
  if (was == r.unreachable) return;  // heartbeats: nothing a controller counts changed
  auto n = pods_on_node.find(name);
  if (n != pods_on_node.end())
    for (const auto& pk : n->second) {
      auto p = pods.find(pk);
      if (p != pods.end()) enqueue_owner_of(p->second);
    }
  enqueue_all(WKind::kDaemonSet);
}

void WorkloadControllers::Impl::apply_obj(WKind kind, const std::string& key, const KeyValue* kv) {
  auto& m = objs[static_cast<int>(kind)];
  auto it = m.find(key);
  if (it != m.end()) {
    index_dependent(key, it->second.controller_uid, it->second.owners, {});
    if (!kv) {
      // Its dependents: the collector decides (Background: delete them).
      auto d = dependents.find(it->second.uid);
      if (d != dependents.end())
        for (const auto& dk : d->second) queue.add("gc|" + dk);
      if (const OwnerRef* c = controller_of(it->second.owners)) {
        auto o = by_uid.find(c->uid);
        if (o != by_uid.end() && o->second.starts_with(kDeploymentsPrefix))
          queue.add(queue_key(WKind::kDeployment, o->second));
        if (o != by_uid.end() && o->second.starts_with(kCronJobsPrefix))
          queue.add(queue_key(WKind::kCronJob, o->second));
      }
    }
    by_uid.erase(it->second.uid);
    m.erase(it);
    if (kind == WKind::kRollout) {
      index_rollout(key, nullptr);
      if (!kv && pre_pull_jobs.count(key))
        queue.add(queue_key(WKind::kRollout, key));  // its jobs go
    }
  }
  if (!kv) return;
  auto sj = stored_json(kv->value);
  if (!sj) return;
  ObjRec r;
  r.obj = json::parse(*sj, nullptr, false);
  if (!r.obj.is_object()) return;
  r.key = key;
  std::tie(r.ns, r.name) = ns_name(key, kPrefixes[static_cast<int>(kind)]);
  r.uid = common::json_string_at(r.obj, {"metadata", "uid"});
  r.mod_revision = kv->mod_revision;
  r.owners = owners_of(r.obj);
  if (const OwnerRef* c = controller_of(r.owners)) r.controller_uid = c->uid;
  r.deleting = r.obj["metadata"].contains("deletionTimestamp") &&
               !r.obj["metadata"]["deletionTimestamp"].is_null();
  index_dependent(key, "", {}, r.owners);
  if (!r.uid.empty()) by_uid[r.uid] = key;
  if (kind != WKind::kControllerRevision) queue.add(queue_key(kind, key));
  if (kind == WKind::kRollout) index_rollout(key, &r.obj);
  if (kind == WKind::kDaemonSet || kind == WKind::kDeployment)
    if (auto ro = controlling_rollout_locked(key)) queue.add(queue_key(WKind::kRollout, *ro));
  if (!r.controller_uid.empty()) {
    auto o = by_uid.find(r.controller_uid);
    if (o == by_uid.end())
      queue.add("gc|" + key);
    else if (o->second.starts_with(kDeploymentsPrefix))
      queue.add(queue_key(WKind::kDeployment, o->second));
    else if (o->second.starts_with(kCronJobsPrefix))
      queue.add(queue_key(WKind::kCronJob, o->second));
  }
  if (r.deleting) queue.add("gc|" + key);  // foreground / orphan deletion in progress
  m[key] = std::move(r);
}

void WorkloadControllers::Impl::on_changes(const std::vector<Change>& changes, bool) {
  std::lock_guard lock(mu);
  for (const auto& c : changes) {
    const std::string& k = c.key;
    if (k.starts_with(keys::kPods)) {
      apply_pod(k, c.kv);
    } else if (k.starts_with(keys::kPodStatus)) {
      apply_pod_status(k, c.kv);
    } else if (k.starts_with(keys::kNodeStatus)) {
      apply_node_status(k, c.kv);
    } else if (k.starts_with(keys::kNodes)) {
      apply_node(k, c.kv);
    } else if (k.starts_with(kPrePullJobsPrefix)) {
      apply_pre_pull_job(k, c.kv);
    } else {
      for (int i = 0; i < kWKinds; ++i)
        if (k.starts_with(kPrefixes[i])) apply_obj(WKind(i), k, c.kv);
    }
  }
}

PodView WorkloadControllers::Impl::view_locked(const PodRec& p) const {
  PodView v;
  v.pod = &p;
  auto s = pod_status.find(p.key);
  if (s != pod_status.end()) v.status = s->second;
  if (!p.node.empty()) {
    auto n = node_status.find(p.node);
    if (n != node_status.end() && n->second.unreachable) {
      v.node_unreachable = true;
      v.unreachable_since = n->second.unreachable_since;
    }
  }
  return v;
}

bool WorkloadControllers::Impl::pods_seen(const std::string& qkey) const {
  auto it = expect.find(qkey);
  if (it == expect.end()) return true;
  return informer->seen(std::string(keys::kPods)) >= it->second;
}

// ---------------------------------------------------------------------------------------------
// Store writes

Result<Revision> WorkloadControllers::Impl::create_pods(
    const std::string& ns, const json& tmpl, const std::string& base_name, const json& owner_ref,
    size_t count, const std::map<std::string, std::string>& extra_labels, const std::string& node) {
  Revision last = 0;
  std::vector<Op> ops;
  size_t made = 0;
  auto flush = [&]() -> Status {
    if (ops.empty()) return common::ok_status();
    auto r = store.txn(std::move(ops));
    ops.clear();
    if (!r.ok()) return r.status();
    last = r->revision;
    return common::ok_status();
  };
  for (size_t i = 0; i < count; ++i) {
    json pod = {{"apiVersion", "v1"}, {"kind", "Pod"}};
    json meta = json::object();
    if (tmpl.contains("metadata") && tmpl["metadata"].is_object()) {
      for (const char* f : {"labels", "annotations", "finalizers"})
        if (tmpl["metadata"].contains(f)) meta[f] = tmpl["metadata"][f];
    }
    for (const auto& [k, v] : extra_labels) meta["labels"][k] = v;
    std::string prefix = base_name.size() > 57 ? base_name.substr(0, 57) : base_name;
    std::string name = prefix + "-" + random_suffix();
    meta["name"] = name;
    meta["generateName"] = prefix + "-";
    meta["namespace"] = ns;
    meta["uid"] = random_uid();
    meta["creationTimestamp"] = rfc3339_ms(clock.unix_ms());
    meta["generation"] = 1;
    meta["ownerReferences"] = json::array({owner_ref});
    pod["metadata"] = std::move(meta);
    pod["spec"] = tmpl.contains("spec") ? tmpl["spec"] : json::object();
    if (!node.empty()) pod["spec"]["nodeName"] = node;
    auto stored = decode_object(v1::OBJECT_KIND_POD, pod.dump());
    if (!stored.ok())
      return common::make_error(Code::kInvalidArgument, "the pod template is invalid: {}",
                                stored.status().message());
    ops.push_back(Op::put(keys::object_key(v1::OBJECT_KIND_POD, ns, name),
                          stored->SerializeAsString(), Revision{0}));
    ++made;
    if (ops.size() >= 100) GANTRY_RETURN_IF_ERROR(flush());
  }
  GANTRY_RETURN_IF_ERROR(flush());
  stats.pods_created += made;
  return last;
}

Result<Revision> WorkloadControllers::Impl::rewrite_pod(const PodRec& p,
                                                        const std::function<void(json&)>& edit) {
  json obj = json::parse(p.json, nullptr, false);
  if (!obj.is_object())
    return common::make_error(Code::kInternal, "{}: stored JSON does not parse", p.key);
  edit(obj);
  GANTRY_ASSIGN_OR_RETURN(auto stored, decode_object(v1::OBJECT_KIND_POD, obj.dump()));
  auto r = store.txn({Op::put(p.key, stored.SerializeAsString(), p.mod_revision)});
  if (!r.ok()) {
    if (r.status().code() == Code::kFailedPrecondition) ++stats.conflicts;
    return r.status();
  }
  return r->revision;
}

Result<Revision> WorkloadControllers::Impl::delete_pod(const PodRec& p) {
  if (p.terminating) return Revision{0};
  Result<Revision> r = Revision{0};
  if (!p.node.empty()) {
    int64_t now_ms = clock.unix_ms();
    r = rewrite_pod(p, [&](json& obj) {
      int64_t grace = common::json_int_at(obj, {"spec", "terminationGracePeriodSeconds"}, 30);
      obj["metadata"]["deletionTimestamp"] = rfc3339_ms(now_ms + grace * 1000);
      obj["metadata"]["deletionGracePeriodSeconds"] = grace;
    });
  } else {
    std::vector<Op> ops = {Op::remove(p.key, p.mod_revision)};
    std::string skey = keys::status_key(v1::OBJECT_KIND_POD, p.ns, p.name);
    auto st = store.get(skey);
    if (st.ok() && *st) ops.push_back(Op::remove(skey));
    auto t = store.txn(std::move(ops));
    if (t.ok())
      r = t->revision;
    else
      r = t.status();
  }
  if (r.ok()) ++stats.pods_deleted;
  return r;
}

Result<Revision> WorkloadControllers::Impl::put_object(const std::string& key, const json& obj,
                                                       std::optional<Revision> expect) {
  v1::StoredObject so;
  so.set_json(obj.dump());
  if (obj.contains("metadata") && obj["metadata"].contains("labels"))
    for (const auto& [k, v] : string_map(obj["metadata"]["labels"])) (*so.mutable_labels())[k] = v;
  auto r = store.txn({Op::put(key, so.SerializeAsString(), expect)});
  if (!r.ok()) {
    if (r.status().code() == Code::kFailedPrecondition) ++stats.conflicts;
    return r.status();
  }
  return r->revision;
}

Status WorkloadControllers::Impl::write_status(const ObjRec& rec, const json& status) {
  if (rec.obj.contains("status") && rec.obj["status"] == status) return common::ok_status();
  json obj = rec.obj;
  obj["status"] = status;
  auto r = put_object(rec.key, obj, rec.mod_revision);
  if (!r.ok()) return r.status();
  ++stats.status_writes;
  return common::ok_status();
}

// ---------------------------------------------------------------------------------------------
// Worker

void WorkloadControllers::Impl::process(const std::string& qkey) {
  auto bar = qkey.find('|');
  std::string tag = qkey.substr(0, bar);
  std::string key = qkey.substr(bar + 1);
  ++stats.reconciles;
  Status s = common::ok_status();
  if (tag == "rs")
    s = reconcile_replicaset(qkey, key);
  else if (tag == "deploy")
    s = reconcile_deployment(qkey, key);
  else if (tag == "ds")
    s = reconcile_daemonset(qkey, key);
  else if (tag == "ro")
    s = reconcile_rollout(qkey, key);
  else if (tag == "job")
    s = reconcile_job(qkey, key);
  else if (tag == "cj")
    s = reconcile_cronjob(qkey, key);
  else if (tag == "gc")
    s = collect(qkey, key);
  if (s.ok()) {
    queue.forget(qkey);
    return;
  }
  if (s.code() != Code::kFailedPrecondition) ++stats.errors;
  queue.add_rate_limited(qkey);
}

void WorkloadControllers::Impl::run() {
  for (;;) {
    auto qkey = queue.get();
    if (!qkey) return;
    process(*qkey);
    queue.done(*qkey);
  }
}

// ---------------------------------------------------------------------------------------------

common::Result<std::unique_ptr<WorkloadControllers>> WorkloadControllers::start(
    Store& store, WorkloadOptions options) {
  auto impl = std::make_unique<Impl>(store, std::move(options));
  Impl* raw = impl.get();
  InformerOptions io;
  io.prefixes = {std::string(keys::kPods), std::string(keys::kPodStatus), std::string(keys::kNodes),
                 std::string(keys::kNodeStatus)};
  for (auto p : kPrefixes) io.prefixes.emplace_back(p);
  io.prefixes.emplace_back(kPrePullJobsPrefix);
  io.error_backoff = raw->options.error_backoff;
  GANTRY_ASSIGN_OR_RETURN(
      raw->informer,
      Informer::start(store, std::move(io), [raw](const std::vector<Change>& c, bool resync) {
        raw->on_changes(c, resync);
      }));
  std::unique_ptr<WorkloadControllers> w(new WorkloadControllers(std::move(impl)));
  raw->worker = std::thread([raw] { raw->run(); });
  // Named, so that its CPU time can be read apart (/proc/self/task/*/comm; the rollout bench).
  pthread_setname_np(raw->worker.native_handle(), "gantry-workload");
  return w;
}

WorkloadControllers::WorkloadControllers(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

WorkloadControllers::~WorkloadControllers() {
  stop();
}

void WorkloadControllers::stop() {
  impl_->queue.shut_down();
  if (impl_->worker.joinable()) impl_->worker.join();
  if (impl_->informer) impl_->informer->stop();
}

const WorkloadStats& WorkloadControllers::stats() const {
  return impl_->stats;
}

bool WorkloadControllers::idle() const {
  return impl_->queue.held() == 0 && impl_->queue.ready() == 0;
}

void WorkloadControllers::wake() {
  impl_->queue.wake();
}

}  // namespace gantry::cloud::controllers
