#include "cloudcore/controllers/node_gc.h"

#include <spdlog/spdlog.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "cloudcore/registry/keys.h"
#include "gantry/v1/objects.pb.h"

namespace gantry::cloud::controllers {

// ---------------------------------------------------------------------------------------------
// OrphanIndex

void OrphanIndex::node_added(const std::string& node) {
  nodes_.insert(node);
  missing_since_.erase(node);
}

void OrphanIndex::node_removed(const std::string& node, TimePoint now) {
  nodes_.erase(node);
  if (pods_by_node_.count(node)) missing_since_.try_emplace(node, now);
}

void OrphanIndex::forget_pod(const std::string& pod) {
  auto it = pod_node_.find(pod);
  if (it == pod_node_.end()) return;
  auto set = pods_by_node_.find(it->second);
  if (set != pods_by_node_.end()) {
    set->second.erase(pod);
    if (set->second.empty()) {
      missing_since_.erase(it->second);
      pods_by_node_.erase(set);
    }
  }
  pod_node_.erase(it);
}

void OrphanIndex::pod_bound(const std::string& pod, const std::string& node, TimePoint now) {
  forget_pod(pod);
  if (node.empty()) return;
  pod_node_[pod] = node;
  pods_by_node_[node].insert(pod);
  if (!nodes_.count(node)) missing_since_.try_emplace(node, now);
}

void OrphanIndex::pod_removed(const std::string& pod) {
  forget_pod(pod);
}

void OrphanIndex::clear() {
  nodes_.clear();
  pod_node_.clear();
  pods_by_node_.clear();
  missing_since_.clear();
}

std::vector<std::string> OrphanIndex::due(TimePoint now,
                                          std::chrono::milliseconds quarantine) const {
  std::vector<std::string> out;
  for (const auto& [node, since] : missing_since_)
    if (now - since >= quarantine) out.push_back(node);
  return out;
}

std::optional<OrphanIndex::TimePoint> OrphanIndex::next_due(
    std::chrono::milliseconds quarantine) const {
  std::optional<TimePoint> out;
  for (const auto& [node, since] : missing_since_)
    if (!out || since + quarantine < *out) out = since + quarantine;
  return out;
}

std::vector<std::string> OrphanIndex::pods_of(const std::string& node) const {
  auto it = pods_by_node_.find(node);
  if (it == pods_by_node_.end()) return {};
  return {it->second.begin(), it->second.end()};
}

void OrphanIndex::postpone(const std::string& node, TimePoint until) {
  auto it = missing_since_.find(node);
  if (it != missing_since_.end()) it->second = until;
}

// ---------------------------------------------------------------------------------------------
// NodeGc

struct NodeGc::Impl {
  Store& store;
  const common::Clock& clock;
  NodeGcOptions options;
  NodeGcStats stats;

  mutable std::mutex mu;
  std::condition_variable cv;
  OrphanIndex index;
  bool reload_needed = true;
  bool stopping = false;
  std::vector<std::unique_ptr<WatchHandle>> watches;  // changed without `mu` (see load)
  std::mutex watches_mu;
  std::thread thread;

  Impl(Store& s, const common::Clock& c, NodeGcOptions o) : store(s), clock(c), options(o) {}

  static std::string name_of(const std::string& key, std::string_view prefix) {
    return key.substr(prefix.size());
  }

  static std::string node_of(const KeyValue& kv) {
    v1::StoredObject stored;
    if (!stored.ParseFromString(kv.value)) return "";
    return stored.node_name();
  }

  void apply(const Event& ev, OrphanIndex::TimePoint now) {
    const std::string& key = ev.kv.key;
    bool deleted = ev.type == EventType::kDelete;
    if (key.starts_with(keys::kNodes)) {
      std::string name = name_of(key, keys::kNodes);
      deleted ? index.node_removed(name, now) : index.node_added(name);
    } else if (key.starts_with(keys::kPods)) {
      deleted ? index.pod_removed(key) : index.pod_bound(key, node_of(ev.kv), now);
    }
  }

  void on_events(const std::vector<Event>& events) {
    auto now = clock.steady_now();
    std::lock_guard lock(mu);
    for (const auto& ev : events) apply(ev, now);
    cv.notify_all();
  }

  void on_error(const Status& s) {
    std::lock_guard lock(mu);
    if (s.code() != Code::kCancelled) {
      ++stats.errors;
      spdlog::warn("node-gc: store watch ended ({}); reloading", s.to_string());
    }
    reload_needed = true;
    cv.notify_all();
  }

  // Lists both prefixes at one revision and follows them from there. Called without `mu`.
  Status load() {
    {
      std::lock_guard lock(watches_mu);
      watches.clear();  // outside `mu`: a callback may be waiting for it
    }
    Revision at = store.current_revision();
    std::vector<KeyValue> nodes, pods;
    for (auto [prefix, out] : {std::pair{keys::kNodes, &nodes}, std::pair{keys::kPods, &pods}}) {
      ListOptions opts;
      opts.prefix = std::string(prefix);
      opts.at = at;
      auto list = store.list(opts);
      if (!list.ok()) return list.status();
      *out = std::move(list->items);
    }
    {
      auto now = clock.steady_now();
      std::lock_guard lock(mu);
      index.clear();
      for (const auto& kv : nodes) index.node_added(name_of(kv.key, keys::kNodes));
      for (const auto& kv : pods) index.pod_bound(kv.key, node_of(kv), now);
      reload_needed = false;
    }
    std::vector<std::unique_ptr<WatchHandle>> handles;
    for (auto prefix : {keys::kNodes, keys::kPods}) {
      WatchCallbacks cbs;
      cbs.on_events = [this](const std::vector<Event>& events) { on_events(events); };
      cbs.on_error = [this](const Status& s) { on_error(s); };
      auto handle = store.watch(std::string(prefix), at, std::move(cbs));
      if (!handle.ok()) {
        std::lock_guard lock(mu);
        reload_needed = true;
        return handle.status();
      }
      handles.push_back(std::move(*handle));
    }
    std::lock_guard lock(watches_mu);
    watches = std::move(handles);
    return common::ok_status();
  }

  // Deletes `pod_key` if it is still bound to `node`. True when deleted.
  bool collect(const std::string& node, const std::string& pod_key) {
    auto kv = store.get(pod_key);
    if (!kv.ok()) {
      ++stats.errors;
      return false;
    }
    if (!kv->has_value()) return false;  // already gone
    if (node_of(**kv) != node) {
      ++stats.kept;
      return false;
    }
    std::vector<Op> ops = {Op::remove(pod_key, (*kv)->mod_revision)};
    std::string status_key =
        std::string(keys::kPodStatus) + pod_key.substr(std::string_view(keys::kPods).size());
    auto status = store.get(status_key);
    if (!status.ok()) {
      ++stats.errors;
      return false;
    }
    if (status->has_value()) ops.push_back(Op::remove(status_key, (*status)->mod_revision));
    auto txn = store.txn(std::move(ops));
    if (!txn.ok()) {
      if (txn.status().code() == Code::kFailedPrecondition ||
          txn.status().code() == Code::kNotFound) {
        ++stats.kept;  // rewritten meanwhile: looked at again when it is next due
      } else {
        ++stats.errors;
        spdlog::warn("node-gc: deleting pod {}: {}", pod_key, txn.status().to_string());
      }
      return false;
    }
    ++stats.pods_deleted;
    spdlog::info("node-gc: deleted pod {} (bound to node {}, whose node object was deleted)",
                 pod_key.substr(std::string_view(keys::kPods).size()), node);
    return true;
  }

  size_t run_once() {
    bool reload;
    {
      std::lock_guard lock(mu);
      reload = reload_needed;
    }
    if (reload) {
      if (auto s = load(); !s.ok()) {
        ++stats.errors;
        spdlog::warn("node-gc: loading nodes and pods: {}", s.to_string());
        return 0;
      }
    }
    ++stats.passes;
    std::vector<std::pair<std::string, std::vector<std::string>>> work;
    {
      auto now = clock.steady_now();
      std::lock_guard lock(mu);
      for (const auto& node : index.due(now, options.quarantine)) {
        work.emplace_back(node, index.pods_of(node));
        // Looked at again only after another quarantine: by then the watch has told the index of
        // the deletions below (or of the node's return).
        index.postpone(node, now);
      }
    }
    size_t deleted = 0;
    for (const auto& [node, pods] : work) {
      auto kv = store.get(std::string(keys::kNodes) + node);
      if (!kv.ok()) {
        ++stats.errors;
        continue;
      }
      if (kv->has_value()) {  // back (the watch will say so too)
        stats.kept += pods.size();
        continue;
      }
      spdlog::info(
          "node-gc: node {} has had no node object for {} ms or more; deleting the {} "
          "pods bound to it",
          node, options.quarantine.count(), pods.size());
      for (const auto& pod : pods) deleted += collect(node, pod) ? 1 : 0;
    }
    return deleted;
  }

  void loop() {
    std::unique_lock lock(mu);
    while (!stopping) {
      if (reload_needed) {
        lock.unlock();
        auto s = load();
        lock.lock();
        if (!s.ok()) {
          ++stats.errors;
          spdlog::warn("node-gc: loading nodes and pods: {}; retrying", s.to_string());
          cv.wait_for(lock, options.error_backoff, [&] { return stopping; });
        }
        continue;
      }
      auto next = index.next_due(options.quarantine);
      auto now = clock.steady_now();
      if (next && *next <= now) {
        lock.unlock();
        (void)run_once();
        lock.lock();
        continue;
      }
      // Woken by events; at most a second between looks at the clock.
      auto wait =
          next ? std::min<std::chrono::steady_clock::duration>(*next - now, std::chrono::seconds(1))
               : std::chrono::steady_clock::duration(std::chrono::seconds(1));
      cv.wait_for(lock, wait);
    }
  }
};

common::Result<std::unique_ptr<NodeGc>> NodeGc::start(Store& store, const common::Clock& clock,
                                                      NodeGcOptions options) {
  auto impl = std::make_unique<Impl>(store, clock, options);
  GANTRY_RETURN_IF_ERROR(impl->load());
  std::unique_ptr<NodeGc> gc(new NodeGc(std::move(impl)));
  if (options.run_thread) gc->impl_->thread = std::thread([raw = gc->impl_.get()] { raw->loop(); });
  return gc;
}

NodeGc::NodeGc(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

NodeGc::~NodeGc() {
  stop();
}

size_t NodeGc::run_once() {
  return impl_->run_once();
}

size_t NodeGc::missing_nodes() const {
  std::lock_guard lock(impl_->mu);
  return impl_->index.missing_nodes();
}

const NodeGcStats& NodeGc::stats() const {
  return impl_->stats;
}

void NodeGc::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) impl_->thread.join();
  std::vector<std::unique_ptr<WatchHandle>> watches;
  {
    std::lock_guard lock(impl_->watches_mu);
    watches.swap(impl_->watches);
  }
  watches.clear();
}

}  // namespace gantry::cloud::controllers
