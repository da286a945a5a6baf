#include "cloudcore/controllers/scheduler.h"

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cloudcore/controllers/scheduling.h"
#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"

namespace gantry::cloud::controllers {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr const char* kUnschedulable = "Unschedulable";

std::string pod_status_key(const std::string& pod_key) {
  return std::string(keys::kPodStatus) + pod_key.substr(keys::kPods.size());
}

int64_t system_now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

struct PendingPod {
  std::shared_ptr<const v1::StoredObject> object;
  PodRequest request;
  // The node epoch at the last evaluation that found no node (nullopt: not evaluated yet).
  std::optional<uint64_t> evaluated_epoch;
  Clock::time_point evaluated_at{};
};

struct PodEntry {
  Revision mod_revision = 0;
  std::string node;  // "" while unscheduled
  std::string owner;
  std::string uid;
  int64_t cpu_millis = 0;
  int64_t memory_bytes = 0;
  bool terminating = false;
  std::unique_ptr<PendingPod> pending;  // set while unscheduled and not terminating
};

struct Scheduler::Impl {
  Store& store;
  SchedulerOptions options;
  SchedulerStats stats;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  bool reload_needed = false;
  bool dirty = false;
  uint64_t node_epoch = 0;  // bumped by every change that may let an unschedulable pod fit
  std::unordered_map<std::string, PodEntry> pods;  // by store key
  // Entries of `pods` with `pending` set: with none, a pass has nothing to decide and skips the
  // whole-fleet snapshot (node status changes alone otherwise trigger one pass each).
  size_t pending_count = 0;
  std::map<std::string, NodeState> node_specs;  // name -> labels, taints, cordon
  std::map<std::string, v1::StoredStatus> node_statuses;
  std::vector<std::unique_ptr<WatchHandle>> watches;  // touched by the worker only

  std::thread worker;

  Impl(Store& s, SchedulerOptions o) : store(s), options(std::move(o)) {
    if (!options.now_ms) options.now_ms = system_now_ms;
  }

  // --- following the store (watch threads and load; `mu` held) ---

  void apply_pod(const KeyValue& kv) {
    v1::StoredObject object;
    if (!object.ParseFromString(kv.value)) return;  // not ours to judge; the API wrote it
    PodEntry& e = pods[kv.key];
    if (kv.mod_revision < e.mod_revision) return;  // our own bind already applied it
    if (e.pending) --pending_count;                // recounted below
    bool was_bound = !e.node.empty();
    e.mod_revision = kv.mod_revision;
    e.node = object.node_name();
    e.uid = object.edge().uid();
    e.terminating = object.edge().pod().terminating();
    // ownerReferences live only in the JSON: parse it only when it has some (most pods at scale
    // are bound and plain).
    std::optional<json> parsed;
    if (object.json().find("ownerReferences") != std::string::npos || e.node.empty())
      parsed = json::parse(object.json(), nullptr, false);
    PodRequest request =
        pod_request_from_json(parsed ? *parsed : json::object(), object.edge().pod());
    if (!parsed) {
      auto app = object.labels().find("app");
      request.owner = app != object.labels().end() ? "app=" + app->second : "";
    }
    e.owner = request.owner;
    e.cpu_millis = request.cpu_millis;
    e.memory_bytes = request.memory_bytes;
    if (e.node.empty() && !e.terminating) {
      auto p = std::make_unique<PendingPod>();
      p->object = std::make_shared<const v1::StoredObject>(std::move(object));
      p->request = std::move(request);
      e.pending = std::move(p);
      ++pending_count;
      dirty = true;
    } else {
      e.pending.reset();
      if (was_bound && e.node.empty()) ++node_epoch;
    }
  }

  void remove_pod(const std::string& key) {
    auto it = pods.find(key);
    if (it == pods.end()) return;
    if (!it->second.node.empty()) bump_nodes();  // its resources are free again
    if (it->second.pending) --pending_count;
    pods.erase(it);
  }

  void bump_nodes() {
    ++node_epoch;
    dirty = true;
  }

  void apply_node(const KeyValue& kv, bool deleted) {
    auto parsed = keys::parse_key(kv.key);
    if (!parsed) return;
    if (deleted) {
      node_specs.erase(parsed->name);
    } else {
      v1::StoredObject object;
      if (!object.ParseFromString(kv.value)) return;
      NodeState state;
      state.name = parsed->name;
      node_spec_from_json(json::parse(object.json(), nullptr, false), state);
      node_specs[parsed->name] = std::move(state);
    }
    bump_nodes();
  }

  void apply_node_status(const KeyValue& kv, bool deleted) {
    auto parsed = keys::parse_key(kv.key);
    if (!parsed) return;
    if (deleted) {
      node_statuses.erase(parsed->name);
    } else {
      v1::StoredStatus status;
      if (!status.ParseFromString(kv.value)) return;
      node_statuses[parsed->name] = std::move(status);
    }
    bump_nodes();
  }

  void on_events(const std::vector<Event>& events) {
    std::lock_guard lock(mu);
    for (const auto& ev : events) {
      bool deleted = ev.type == EventType::kDelete;
      if (ev.kv.key.starts_with(keys::kPods)) {
        if (deleted)
          remove_pod(ev.kv.key);
        else
          apply_pod(ev.kv);
      } else if (ev.kv.key.starts_with(keys::kNodeStatus)) {
        apply_node_status(ev.kv, deleted);
      } else if (ev.kv.key.starts_with(keys::kNodes)) {
        apply_node(ev.kv, deleted);
      }
    }
    cv.notify_all();
  }

  void on_watch_error(const Status& status) {
    std::lock_guard lock(mu);
    if (status.code() != Code::kCancelled) ++stats.errors;
    reload_needed = true;
    cv.notify_all();
  }

  // Lists the three prefixes at one revision and watches them from there. Called without `mu`
  // (the watches' callbacks take it).
  Status load() {
    watches.clear();  // outside `mu`: a callback may be waiting for it
    Revision at = store.current_revision();
    std::vector<std::pair<std::string, ListResult>> lists;
    for (auto prefix : {keys::kPods, keys::kNodes, keys::kNodeStatus}) {
      ListOptions opts;
      opts.prefix = std::string(prefix);
      opts.at = at;
      auto list = store.list(opts);
      if (!list.ok()) return list.status();
      lists.emplace_back(std::string(prefix), std::move(*list));
    }
    {
      std::lock_guard lock(mu);
      pods.clear();
      pending_count = 0;
      node_specs.clear();
      node_statuses.clear();
      for (auto& [prefix, list] : lists) {
        for (const auto& kv : list.items) {
          if (prefix == keys::kPods)
            apply_pod(kv);
          else if (prefix == keys::kNodes)
            apply_node(kv, false);
          else
            apply_node_status(kv, false);
        }
      }
      reload_needed = false;
      dirty = true;
    }
    for (auto prefix : {keys::kPods, keys::kNodes, keys::kNodeStatus}) {
      WatchCallbacks cbs;
      cbs.on_events = [this](const std::vector<Event>& events) { on_events(events); };
      cbs.on_error = [this](const Status& s) { on_watch_error(s); };
      auto handle = store.watch(std::string(prefix), at, std::move(cbs));
      if (!handle.ok()) {
        watches.clear();
        return handle.status();
      }
      watches.push_back(std::move(*handle));
    }
    return common::ok_status();
  }

  // --- deciding and writing (worker thread) ---

  struct Work {
    std::string key;
    Revision mod_revision = 0;
    std::shared_ptr<const v1::StoredObject> object;
    PodRequest request;
  };

  // Under `mu`: the nodes with their current usage, and the pending pods due for evaluation.
  // Returns the earliest time a skipped pod becomes due (if any).
  std::optional<Clock::time_point> snapshot(std::vector<NodeState>& nodes,
                                            std::vector<Work>& work) {
    std::map<std::string, size_t> index;
    for (const auto& [name, spec] : node_specs) {
      index[name] = nodes.size();
      NodeState n = spec;
      if (auto it = node_statuses.find(name); it != node_statuses.end())
        node_status_into(it->second, n);
      nodes.push_back(std::move(n));
    }
    auto now = Clock::now();
    std::optional<Clock::time_point> next_due;
    for (auto& [key, e] : pods) {
      if (!e.node.empty()) {
        auto it = index.find(e.node);
        if (it == index.end()) continue;
        NodeState& n = nodes[it->second];
        n.requested_cpu_millis += e.cpu_millis;
        n.requested_memory_bytes += e.memory_bytes;
        ++n.pod_count;
        if (!e.owner.empty()) ++n.pods_by_owner[e.owner];
        continue;
      }
      if (!e.pending) continue;
      PendingPod& p = *e.pending;
      if (p.evaluated_epoch) {
        if (*p.evaluated_epoch == node_epoch) continue;  // nothing changed that could help it
        auto due = p.evaluated_at + options.retry_interval;
        if (due > now) {
          next_due = next_due ? std::min(*next_due, due) : due;
          continue;
        }
      }
      work.push_back({key, e.mod_revision, p.object, p.request});
    }
    // Oldest first, so a steady stream of new pods cannot starve an old one.
    std::sort(work.begin(), work.end(),
              [](const Work& a, const Work& b) { return a.mod_revision < b.mod_revision; });
    return next_due;
  }

  // Binds: the pod with spec.nodeName set, re-derived so node_name and the edge manifest follow,
  // written only if the pod is still the version we decided on; our Unschedulable status goes in
  // the same txn.
  Result<Revision> bind(const Work& w, const std::string& node) {
    json pod = json::parse(w.object->json(), nullptr, false);
    if (!pod.is_object())
      return common::make_error(Code::kInvalidArgument, "{}: stored JSON does not parse", w.key);
    pod["spec"]["nodeName"] = node;
    GANTRY_ASSIGN_OR_RETURN(auto stored, decode_object(v1::OBJECT_KIND_POD, pod.dump()));
    std::vector<Op> ops = {Op::put(w.key, stored.SerializeAsString(), w.mod_revision)};
    std::string skey = pod_status_key(w.key);
    GANTRY_ASSIGN_OR_RETURN(auto status_kv, store.get(skey));
    if (status_kv) {
      v1::StoredStatus st;
      if (st.ParseFromString(status_kv->value) && st.generation() == 0 && st.has_pod() &&
          st.pod().reason() == kUnschedulable)
        ops.push_back(Op::remove(skey, status_kv->mod_revision));
    }
    GANTRY_ASSIGN_OR_RETURN(auto txn, store.txn(std::move(ops)));
    return txn.revision;
  }

  // Writes (or leaves) the scheduler-owned Pending status saying why the pod fits nowhere. A
  // status the edge wrote (generation > 0) is never touched.
  Status mark_unschedulable(const Work& w, const std::string& message) {
    std::string skey = pod_status_key(w.key);
    GANTRY_ASSIGN_OR_RETURN(auto kv, store.get(skey));
    std::optional<Revision> expect = Revision{0};
    if (kv) {
      v1::StoredStatus st;
      if (!st.ParseFromString(kv->value) || st.generation() > 0) return common::ok_status();
      if (st.uid() == w.object->edge().uid() && st.pod().reason() == kUnschedulable &&
          st.pod().message() == message)
        return common::ok_status();
      expect = kv->mod_revision;
    }
    v1::StoredStatus st;
    st.set_generation(0);
    st.set_uid(w.object->edge().uid());
    st.set_changed_at(options.now_ms());
    st.mutable_pod()->set_phase(v1::POD_PHASE_PENDING);
    st.mutable_pod()->set_reason(kUnschedulable);
    st.mutable_pod()->set_message(message);
    auto r = store.put(skey, st.SerializeAsString(), expect);
    if (!r.ok() && r.status().code() != Code::kFailedPrecondition) return r.status();
    if (r.ok()) ++stats.unschedulable;
    return common::ok_status();
  }

  void event(const Work& w, KubeEventType type, std::string reason, std::string message) {
    if (!options.events) return;
    const v1::Object& pod = w.object->edge();
    EventRecord r;
    r.object = pod_reference(pod.namespace_(), pod.name(), pod.uid());
    r.type = type;
    r.reason = std::move(reason);
    r.message = std::move(message);
    r.component = "default-scheduler";
    options.events(std::move(r));
  }

  // One pass: every due pending pod decided against the same node view, updated as pods bind.
  // Returns false when a store error asks for a back-off.
  bool pass(std::optional<Clock::time_point>& next_due) {
    std::vector<NodeState> nodes;
    std::vector<Work> work;
    uint64_t epoch;
    {
      std::lock_guard lock(mu);
      dirty = false;
      epoch = node_epoch;
      if (pending_count == 0) return true;
      next_due = snapshot(nodes, work);
    }
    ++stats.passes;
    bool healthy = true;
    for (const auto& w : work) {
      {
        std::lock_guard lock(mu);
        if (stopping || reload_needed) return healthy;
      }
      Decision d = schedule(w.request, nodes);
      if (!d.node) {
        if (auto s = mark_unschedulable(w, d.message); !s.ok()) {
          ++stats.errors;
          healthy = false;
          continue;
        }
        event(w, KubeEventType::kWarning, "FailedScheduling", d.message);
        std::lock_guard lock(mu);
        auto it = pods.find(w.key);
        if (it != pods.end() && it->second.pending && it->second.mod_revision == w.mod_revision) {
          it->second.pending->evaluated_epoch = epoch;
          it->second.pending->evaluated_at = Clock::now();
          auto due = Clock::now() + options.retry_interval;
          next_due = next_due ? std::min(*next_due, due) : due;
        }
        continue;
      }
      auto rev = bind(w, *d.node);
      if (!rev.ok()) {
        if (rev.status().code() == Code::kFailedPrecondition) {
          ++stats.conflicts;  // the watch brings the new version, which is evaluated afresh
        } else {
          ++stats.errors;
          healthy = false;
        }
        continue;
      }
      ++stats.bound;
      event(w, KubeEventType::kNormal, "Scheduled",
            fmt::format("Successfully assigned {}/{} to {}", w.object->edge().namespace_(),
                        w.object->edge().name(), *d.node));
      for (auto& n : nodes) {
        if (n.name != *d.node) continue;
        n.requested_cpu_millis += w.request.cpu_millis;
        n.requested_memory_bytes += w.request.memory_bytes;
        ++n.pod_count;
        if (!w.request.owner.empty()) ++n.pods_by_owner[w.request.owner];
      }
      std::lock_guard lock(mu);
      auto it = pods.find(w.key);
      if (it != pods.end() && it->second.mod_revision <= *rev) {
        it->second.mod_revision = *rev;
        it->second.node = *d.node;
        if (it->second.pending) --pending_count;
        it->second.pending.reset();
      }
    }
    return healthy;
  }

  void run(bool need_load) {
    for (;;) {
      if (need_load) {
        if (auto s = load(); !s.ok()) {
          ++stats.errors;
          std::unique_lock lock(mu);
          cv.wait_for(lock, options.error_backoff, [&] { return stopping; });
          if (stopping) return;
          continue;
        }
        need_load = false;
      }
      std::optional<Clock::time_point> next_due;
      bool healthy = pass(next_due);
      std::unique_lock lock(mu);
      auto wake = [&] { return stopping || reload_needed || dirty; };
      if (!healthy) {
        cv.wait_for(lock, options.error_backoff, [&] { return stopping || reload_needed; });
        dirty = true;  // retry what failed
      } else if (next_due) {
        cv.wait_until(lock, *next_due, wake);
      } else {
        cv.wait(lock, wake);
      }
      if (stopping) return;
      if (reload_needed) {
        ++stats.reloads;
        need_load = true;
      }
    }
  }
};

common::Result<std::unique_ptr<Scheduler>> Scheduler::start(Store& store,
                                                            SchedulerOptions options) {
  auto impl = std::make_unique<Impl>(store, std::move(options));
  // The first load runs here so that a store that cannot be listed fails the start.
  GANTRY_RETURN_IF_ERROR(impl->load());
  std::unique_ptr<Scheduler> s(new Scheduler(std::move(impl)));
  Impl* raw = s->impl_.get();
  raw->worker = std::thread([raw] { raw->run(false); });
  return s;
}

Scheduler::Scheduler(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Scheduler::~Scheduler() {
  stop();
}

void Scheduler::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    impl_->cv.notify_all();
  }
  if (impl_->worker.joinable()) impl_->worker.join();
  impl_->watches.clear();  // after the worker: it is the only other user
}

const SchedulerStats& Scheduler::stats() const {
  return impl_->stats;
}

}  // namespace gantry::cloud::controllers
