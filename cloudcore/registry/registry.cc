#include "cloudcore/registry/registry.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <thread>

#include "cloudcore/registry/keys.h"

namespace gantry::cloud {

using common::make_error;

namespace {

// "c/ns/name" for configmaps, "s/ns/name" for secrets.
std::string config_key(v1::ObjectKind kind, const std::string& ns, const std::string& name) {
  return (kind == v1::OBJECT_KIND_SECRET ? "s/" : "c/") + ns + "/" + name;
}

v1::ObjectRef config_ref(const std::string& key) {
  v1::ObjectRef ref;
  ref.set_kind(key[0] == 's' ? v1::OBJECT_KIND_SECRET : v1::OBJECT_KIND_CONFIG_MAP);
  auto slash = key.find('/', 2);
  ref.set_namespace_(key.substr(2, slash - 2));
  ref.set_name(key.substr(slash + 1));
  return ref;
}

v1::ObjectRef pod_ref(const std::string& ns, const std::string& name) {
  v1::ObjectRef ref;
  ref.set_kind(v1::OBJECT_KIND_POD);
  ref.set_namespace_(ns);
  ref.set_name(name);
  return ref;
}

std::string ref_id(const v1::ObjectRef& ref) {
  return fmt::format("{}/{}/{}", static_cast<int>(ref.kind()), ref.namespace_(), ref.name());
}

std::string obj_id(const v1::Object& obj) {
  return fmt::format("{}/{}/{}", static_cast<int>(obj.kind()), obj.namespace_(), obj.name());
}

struct PodEntry {
  ObjectPtr object;
  std::string node;
  std::vector<std::string> configs;  // config keys this pod refers to
  std::string uid;
  bool terminating = false;
};

struct Tombstone {
  v1::ObjectRef ref;
  Revision revision = 0;
};

struct NodeIndex {
  std::set<std::string> pods;          // "ns/name"
  std::map<std::string, int> configs;  // config key -> number of this node's pods referring to it
  std::deque<Tombstone> tombstones;    // in revision order
  std::vector<NodeListener*> listeners;

  bool unused() const {
    return pods.empty() && configs.empty() && tombstones.empty() && listeners.empty();
  }
};

std::optional<v1::StoredObject> parse_stored(const KeyValue& kv) {
  v1::StoredObject stored;
  if (!stored.ParseFromString(kv.value)) {
    spdlog::warn("registry: {} at revision {} is not a StoredObject; ignored", kv.key,
                 kv.mod_revision);
    return std::nullopt;
  }
  return stored;
}

ObjectPtr edge_object(v1::StoredObject& stored, Revision revision) {
  auto obj = std::make_shared<v1::Object>(std::move(*stored.mutable_edge()));
  obj->set_revision(revision);
  return obj;
}

}  // namespace

struct Registry::Impl {
  Store& store;
  mutable std::shared_mutex mu;
  std::condition_variable_any caught_up;
  Revision start_revision = 0;  // the list the registry was loaded from
  Revision revision = 0;
  Revision horizon = 0;
  Revision replayed = 0;  // last revision the watch delivered
  Status watch_error;

  std::unordered_map<std::string, PodEntry> pods;                            // "ns/name"
  std::unordered_map<std::string, ObjectPtr> configs;                        // config key
  std::unordered_map<std::string, std::map<std::string, int>> config_users;  // key -> node -> refs
  std::unordered_map<std::string, NodeIndex> by_node;
  std::unordered_map<std::string, NodeInfo> nodes;
  std::map<std::string, std::set<std::string>> by_province;
  std::unique_ptr<WatchHandle> watch;
  // A watch the store cancelled (the registry fell behind) is restarted from `revision` here.
  std::thread rewatcher;
  std::condition_variable_any rewatch_cv;
  bool rewatch_needed = false;
  bool stopping = false;

  explicit Impl(Store& s) : store(s) {}

  WatchCallbacks callbacks() {
    WatchCallbacks cbs;
    cbs.on_events = [this](const std::vector<Event>& events) { on_events(events); };
    cbs.on_error = [this](const Status& s) {
      spdlog::error("registry: store watch ended: {}", s.to_string());
      std::unique_lock lock(mu);
      watch_error = s;
      rewatch_needed = true;
      caught_up.notify_all();
      rewatch_cv.notify_all();
    };
    return cbs;
  }

  void rewatch_loop() {
    std::unique_lock lock(mu);
    while (true) {
      rewatch_cv.wait(lock, [&] { return stopping || rewatch_needed; });
      if (stopping) return;
      rewatch_needed = false;
      Revision from = revision;
      auto old = std::move(watch);
      lock.unlock();
      old.reset();
      auto again = store.watch("/", from, callbacks());
      lock.lock();
      if (again.ok()) {
        watch = std::move(again).value();
        watch_error = Status();
        spdlog::warn("registry: following the store again from revision {}", from);
      } else {
        spdlog::critical("registry: cannot follow the store from revision {}: {}; retrying", from,
                         again.status().to_string());
        rewatch_needed = true;
        rewatch_cv.wait_for(lock, std::chrono::seconds(1), [&] { return stopping; });
      }
    }
  }

  // --- index maintenance (mu held exclusively) ---

  void add_tombstone(const std::string& node, v1::ObjectRef ref, Revision rev,
                     std::map<std::string, NodeChanges>* changes) {
    if (node.empty()) return;
    if (changes) (*changes)[node].deletes.push_back(ref);
    by_node[node].tombstones.push_back({std::move(ref), rev});
  }

  void unlink_pod(const std::string& id, const PodEntry& entry) {
    if (entry.node.empty()) return;
    auto& idx = by_node[entry.node];
    idx.pods.erase(id);
    for (const auto& c : entry.configs) {
      if (--idx.configs[c] <= 0) idx.configs.erase(c);
      auto& users = config_users[c];
      if (--users[entry.node] <= 0) users.erase(entry.node);
      if (users.empty()) config_users.erase(c);
    }
  }

  void link_pod(const std::string& id, const PodEntry& entry) {
    if (entry.node.empty()) return;
    auto& idx = by_node[entry.node];
    idx.pods.insert(id);
    for (const auto& c : entry.configs) {
      ++idx.configs[c];
      ++config_users[c][entry.node];
    }
  }

  // The upserts a node needs for a pod: the pod and the configmaps/secrets it refers to.
  void pod_with_configs(const PodEntry& entry, std::vector<ObjectPtr>& out) const {
    out.push_back(entry.object);
    for (const auto& c : entry.configs)
      if (auto it = configs.find(c); it != configs.end()) out.push_back(it->second);
  }

  void apply_pod_put(const keys::ParsedKey& key, const KeyValue& kv,
                     std::map<std::string, NodeChanges>& changes) {
    auto stored = parse_stored(kv);
    if (!stored) return;
    std::string id = key.ns + "/" + key.name;
    PodEntry entry;
    entry.node = stored->node_name();
    entry.uid = stored->edge().uid();
    entry.terminating = stored->edge().pod().terminating();
    for (const auto& n : stored->config_maps())
      entry.configs.push_back(config_key(v1::OBJECT_KIND_CONFIG_MAP, key.ns, n));
    for (const auto& n : stored->secrets())
      entry.configs.push_back(config_key(v1::OBJECT_KIND_SECRET, key.ns, n));
    entry.object = edge_object(*stored, kv.mod_revision);
    if (auto it = pods.find(id); it != pods.end()) {
      unlink_pod(id, it->second);
      if (!it->second.node.empty() && it->second.node != entry.node)
        add_tombstone(it->second.node, pod_ref(key.ns, key.name), kv.mod_revision, &changes);
    }
    link_pod(id, entry);
    if (!entry.node.empty()) pod_with_configs(entry, changes[entry.node].upserts);
    pods[id] = std::move(entry);
  }

  void apply_pod_delete(const keys::ParsedKey& key, Revision rev,
                        std::map<std::string, NodeChanges>& changes) {
    std::string id = key.ns + "/" + key.name;
    auto it = pods.find(id);
    if (it == pods.end()) return;
    unlink_pod(id, it->second);
    add_tombstone(it->second.node, pod_ref(key.ns, key.name), rev, &changes);
    pods.erase(it);
  }

  void apply_config(const keys::ParsedKey& key, const Event& ev,
                    std::map<std::string, NodeChanges>& changes) {
    std::string ck = config_key(key.kind, key.ns, key.name);
    std::vector<std::string> users;
    if (auto it = config_users.find(ck); it != config_users.end())
      for (const auto& [node, n] : it->second) users.push_back(node);
    if (ev.type == EventType::kDelete) {
      configs.erase(ck);
      for (const auto& node : users)
        add_tombstone(node, config_ref(ck), ev.kv.mod_revision, &changes);
      return;
    }
    auto stored = parse_stored(ev.kv);
    if (!stored) return;
    auto obj = edge_object(*stored, ev.kv.mod_revision);
    configs[ck] = obj;
    for (const auto& node : users) changes[node].upserts.push_back(obj);
  }

  void apply_node(const keys::ParsedKey& key, const Event& ev) {
    if (auto it = nodes.find(key.name); it != nodes.end()) {
      auto& members = by_province[it->second.province];
      members.erase(key.name);
      if (members.empty()) by_province.erase(it->second.province);
      nodes.erase(it);
    }
    if (ev.type == EventType::kDelete) return;
    auto stored = parse_stored(ev.kv);
    if (!stored) return;
    NodeInfo info;
    info.labels.insert(stored->labels().begin(), stored->labels().end());
    if (auto l = info.labels.find(kProvinceLabel); l != info.labels.end())
      info.province = l->second;
    info.mod_revision = ev.kv.mod_revision;
    by_province[info.province].insert(key.name);
    nodes[key.name] = std::move(info);
  }

  void apply_event(const Event& ev, std::map<std::string, NodeChanges>& changes) {
    auto key = keys::parse_key(ev.kv.key);
    if (!key || key->status) return;
    switch (key->kind) {
      case v1::OBJECT_KIND_POD:
        if (ev.type == EventType::kDelete)
          apply_pod_delete(*key, ev.kv.mod_revision, changes);
        else
          apply_pod_put(*key, ev.kv, changes);
        break;
      case v1::OBJECT_KIND_CONFIG_MAP:
      case v1::OBJECT_KIND_SECRET:
        apply_config(*key, ev, changes);
        break;
      case v1::OBJECT_KIND_NODE:
        apply_node(*key, ev);
        break;
      default:
        break;
    }
  }

  // History older than the loaded state: only the deletions matter (a node that was offline
  // then must still hear of them).
  void replay_history_event(const Event& ev) {
    auto key = keys::parse_key(ev.kv.key);
    if (!key || key->status || key->kind != v1::OBJECT_KIND_POD || !ev.prev) return;
    auto prev = parse_stored(*ev.prev);
    if (!prev || prev->node_name().empty()) return;
    bool moved = ev.type == EventType::kPut && [&] {
      auto now = parse_stored(ev.kv);
      return now && now->node_name() != prev->node_name();
    }();
    if (ev.type == EventType::kDelete || moved)
      add_tombstone(prev->node_name(), pod_ref(key->ns, key->name), ev.kv.mod_revision, nullptr);
  }

  void on_events(const std::vector<Event>& events) {
    if (events.empty()) return;
    Revision rev = events.front().kv.mod_revision;
    std::unique_lock lock(mu);
    replayed = rev;
    if (rev <= start_revision) {
      for (const auto& ev : events) replay_history_event(ev);
      if (rev == start_revision) {
        lock.unlock();
        caught_up.notify_all();
      }
      return;
    }
    std::map<std::string, NodeChanges> changes;
    for (const auto& ev : events) apply_event(ev, changes);
    revision = rev;
    maybe_trim();
    for (auto& [node, change] : changes) {
      change.revision = rev;
      dedupe(change);
      auto it = by_node.find(node);
      if (it == by_node.end()) continue;
      for (auto* listener : it->second.listeners) listener->on_node_changes(change);
    }
    lock.unlock();
    caught_up.notify_all();
  }

  // A batch may name one object twice (a pod and the configmap two of its pods share). Keep the
  // last upsert per object, and drop deletes of objects that exist again.
  static void dedupe(NodeChanges& c) {
    std::set<std::string> seen;
    std::vector<ObjectPtr> upserts;
    for (auto it = c.upserts.rbegin(); it != c.upserts.rend(); ++it)
      if (seen.insert(obj_id(**it)).second) upserts.push_back(*it);
    std::reverse(upserts.begin(), upserts.end());
    c.upserts = std::move(upserts);
    std::set<std::string> deleted;
    std::erase_if(c.deletes, [&](const v1::ObjectRef& r) {
      auto id = ref_id(r);
      return seen.count(id) > 0 || !deleted.insert(id).second;
    });
  }

  void maybe_trim() {
    Revision compacted = store.compacted_revision();
    if (compacted <= horizon) return;
    for (auto it = by_node.begin(); it != by_node.end();) {
      auto& t = it->second.tombstones;
      while (!t.empty() && t.front().revision <= compacted) t.pop_front();
      if (it->second.unused())
        it = by_node.erase(it);
      else
        ++it;
    }
    horizon = compacted;
  }

  Status load() {
    Revision at = store.current_revision();
    ListOptions opts;
    opts.at = at;
    opts.limit = 5000;
    std::map<std::string, NodeChanges> ignored;
    for (std::string_view prefix : {keys::kNodes, keys::kConfigMaps, keys::kSecrets, keys::kPods}) {
      opts.prefix = std::string(prefix);
      opts.start_after.clear();
      while (true) {
        auto page = store.list(opts);
        if (!page.ok()) return page.status().with_context("registry: loading " + opts.prefix);
        for (const auto& kv : page->items) {
          Event ev;
          ev.kv = kv;
          apply_event(ev, ignored);
        }
        if (!page->more || page->items.empty()) break;
        opts.start_after = page->items.back().key;
      }
    }
    start_revision = revision = at;
    return common::ok_status();
  }
};

common::Result<std::unique_ptr<Registry>> Registry::start(Store& store) {
  auto impl = std::make_unique<Impl>(store);
  {
    std::unique_lock lock(impl->mu);
    GANTRY_RETURN_IF_ERROR(impl->load());
  }
  Impl* raw = impl.get();
  // Replays the history still in the store (for its deletions), then follows the store live.
  auto follow = [&](Revision from) { return store.watch("/", from, raw->callbacks()); };
  // Watch from 0 means "from now"; revision 1 is always a creation, which holds no deletion.
  Revision from = raw->start_revision == 0 ? 0 : std::max<Revision>(store.compacted_revision(), 1);
  auto watch = follow(from);
  if (!watch.ok()) {
    // The history was compacted between load and watch: follow from the loaded state.
    from = raw->start_revision;
    watch = follow(from);
  }
  if (!watch.ok()) return watch.status().with_context("registry: watching the store");
  impl->watch = std::move(watch).value();
  {
    std::unique_lock lock(impl->mu);
    if (from != raw->start_revision) {
      impl->horizon = from;
      bool done = impl->caught_up.wait_for(lock, std::chrono::minutes(2), [&] {
        return impl->replayed >= impl->start_revision || !impl->watch_error.ok();
      });
      if (!done || !impl->watch_error.ok())
        return make_error(Code::kUnavailable,
                          "registry: replaying the store history did not finish: {}",
                          impl->watch_error.ok() ? "timed out" : impl->watch_error.to_string());
    } else {
      impl->horizon = from;
    }
    impl->rewatch_needed = false;
    impl->watch_error = Status();
  }
  impl->rewatcher = std::thread([raw] { raw->rewatch_loop(); });
  return std::unique_ptr<Registry>(new Registry(std::move(impl)));
}

Registry::Registry(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Registry::~Registry() {
  {
    std::unique_lock lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->rewatch_cv.notify_all();
  if (impl_->rewatcher.joinable()) impl_->rewatcher.join();
  std::unique_ptr<WatchHandle> watch;
  {
    std::unique_lock lock(impl_->mu);
    watch = std::move(impl_->watch);
  }
  watch.reset();  // no more callbacks into impl_
}

namespace {

class ListenerSubscription : public Registry::Subscription {
 public:
  ListenerSubscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  ~ListenerSubscription() override { cancel_(); }

 private:
  std::function<void()> cancel_;
};

}  // namespace

std::pair<Resume, std::unique_ptr<Registry::Subscription>> Registry::subscribe(
    const std::string& node, Revision since, NodeListener* listener) {
  auto& d = *impl_;
  std::unique_lock lock(d.mu);
  d.maybe_trim();
  auto& idx = d.by_node[node];
  idx.listeners.push_back(listener);

  Resume resume;
  resume.changes.revision = d.revision;
  bool snapshot = since == 0 || since < d.horizon || since > d.revision;
  resume.mode = snapshot ? v1::RESUME_MODE_SNAPSHOT : v1::RESUME_MODE_INCREMENTAL;
  auto& out = resume.changes.upserts;
  for (const auto& id : idx.pods) {
    const auto& entry = d.pods.at(id);
    if (snapshot || entry.object->revision() > since) d.pod_with_configs(entry, out);
  }
  for (const auto& [ck, refs] : idx.configs) {
    auto it = d.configs.find(ck);
    if (it != d.configs.end() && (snapshot || it->second->revision() > since))
      out.push_back(it->second);
  }
  if (!snapshot)
    for (const auto& t : idx.tombstones)
      if (t.revision > since) resume.changes.deletes.push_back(t.ref);
  Impl::dedupe(resume.changes);

  auto cancel = [impl = impl_.get(), node, listener] {
    std::unique_lock lock(impl->mu);
    auto it = impl->by_node.find(node);
    if (it == impl->by_node.end()) return;
    std::erase(it->second.listeners, listener);
    if (it->second.unused()) impl->by_node.erase(it);
  };
  return {std::move(resume), std::make_unique<ListenerSubscription>(std::move(cancel))};
}

Revision Registry::revision() const {
  std::shared_lock lock(impl_->mu);
  return impl_->revision;
}

Revision Registry::horizon() const {
  std::shared_lock lock(impl_->mu);
  return impl_->horizon;
}

std::optional<PodInfo> Registry::pod(const std::string& ns, const std::string& name) const {
  std::shared_lock lock(impl_->mu);
  auto it = impl_->pods.find(ns + "/" + name);
  if (it == impl_->pods.end()) return std::nullopt;
  return PodInfo{it->second.node, it->second.uid, it->second.terminating,
                 it->second.object->revision()};
}

std::optional<NodeInfo> Registry::node(const std::string& name) const {
  std::shared_lock lock(impl_->mu);
  auto it = impl_->nodes.find(name);
  if (it == impl_->nodes.end()) return std::nullopt;
  return it->second;
}

std::vector<std::string> Registry::node_names() const {
  std::shared_lock lock(impl_->mu);
  std::vector<std::string> names;
  names.reserve(impl_->nodes.size());
  for (const auto& [name, info] : impl_->nodes) names.push_back(name);
  return names;
}

std::vector<std::string> Registry::nodes_in_province(const std::string& province) const {
  std::shared_lock lock(impl_->mu);
  auto it = impl_->by_province.find(province);
  if (it == impl_->by_province.end()) return {};
  return {it->second.begin(), it->second.end()};
}

size_t Registry::node_count() const {
  std::shared_lock lock(impl_->mu);
  return impl_->nodes.size();
}

size_t Registry::pod_count() const {
  std::shared_lock lock(impl_->mu);
  return impl_->pods.size();
}

size_t Registry::pods_on_node(const std::string& node) const {
  std::shared_lock lock(impl_->mu);
  auto it = impl_->by_node.find(node);
  return it == impl_->by_node.end() ? 0 : it->second.pods.size();
}

void Registry::trim_history(Revision revision) {
  std::unique_lock lock(impl_->mu);
  for (auto& [node, idx] : impl_->by_node) {
    while (!idx.tombstones.empty() && idx.tombstones.front().revision <= revision)
      idx.tombstones.pop_front();
  }
  impl_->horizon = std::max(impl_->horizon, revision);
}

}  // namespace gantry::cloud
