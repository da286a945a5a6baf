#include "cloudcore/api/aggregates.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <thread>
#include <unordered_map>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/registry.h"
#include "gantry/v1/objects.pb.h"

namespace gantry::cloud::api {

using nlohmann::json;

const char* node_state_name(NodeState s) {
  switch (s) {
    case NodeState::kReady:
      return "Ready";
    case NodeState::kNotReady:
      return "NotReady";
    default:
      return "Unknown";
  }
}

const char* phase_label(size_t index) {
  static constexpr const char* kNames[kPhaseCount] = {"Pending", "Running", "Succeeded", "Failed",
                                                      "Unknown"};
  return index < kPhaseCount ? kNames[index] : "Unknown";
}

namespace {

size_t phase_index(v1::PodPhase phase) {
  switch (phase) {
    case v1::POD_PHASE_RUNNING:
      return 1;
    case v1::POD_PHASE_SUCCEEDED:
      return 2;
    case v1::POD_PHASE_FAILED:
      return 3;
    case v1::POD_PHASE_UNKNOWN:
      return 4;
    default:
      return 0;
  }
}

std::string rfc3339_ms(int64_t ms) {
  if (ms <= 0) return "";
  std::time_t secs = ms / 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

json time_or_null(int64_t ms) {
  return ms > 0 ? json(rfc3339_ms(ms)) : json(nullptr);
}

json phases_json(const std::array<int64_t, kPhaseCount>& phases) {
  json out = json::object();
  for (size_t i = 0; i < kPhaseCount; ++i) out[phase_label(i)] = phases[i];
  return out;
}

}  // namespace

json FleetCounts::to_json() const {
  json v = json::object();
  for (const auto& [version, n] : versions) v[version.empty() ? "<none>" : version] = n;
  json out = {{"nodes",
               {{"total", nodes}, {"ready", ready}, {"notReady", not_ready}, {"unknown", unknown}}},
              {"pods", {{"total", pods}, {"byPhase", phases_json(phases)}}},
              {"versions", std::move(v)}};
  out["lastChange"] = time_or_null(last_change_ms);
  return out;
}

json FleetNodeRow::to_json() const {
  json out = {{"name", name},       {"province", province}, {"state", node_state_name(state)},
              {"version", version}, {"pods", pods},         {"podsByPhase", phases_json(phases)},
              {"labels", labels}};
  if (!reason.empty()) out["reason"] = reason;
  out["lastSeen"] = time_or_null(last_seen_ms);
  out["lastChange"] = time_or_null(last_change_ms);
  out["unreachableSince"] = time_or_null(unreachable_since_ms);
  return out;
}

// ---------------------------------------------------------------------------------------------

namespace {

struct NodeEntry {
  bool exists = false;  // the node object is there (only those count)
  std::string province;
  std::map<std::string, std::string> labels;
  bool has_status = false;
  bool reported_ready = false;  // Ready condition present
  v1::ConditionStatus ready = v1::CONDITION_STATUS_UNKNOWN;
  bool unreachable = false;
  int64_t changed_at = 0, unreachable_since = 0;
  std::string version;
  int64_t pods = 0;
  std::array<int64_t, kPhaseCount> phases{};

  NodeState state() const {
    if (!has_status || unreachable || !reported_ready) return NodeState::kUnknown;
    if (ready == v1::CONDITION_STATUS_TRUE) return NodeState::kReady;
    if (ready == v1::CONDITION_STATUS_FALSE) return NodeState::kNotReady;
    return NodeState::kUnknown;
  }
  bool unused() const { return !exists && !has_status && pods == 0; }
};

struct PodEntry {
  bool exists = false;
  std::string node;
  std::string uid;
  bool has_status = false;
  std::string status_uid;
  v1::PodPhase phase = v1::POD_PHASE_PENDING;

  // Counted under its node when it exists and is bound; a status of an earlier pod of the same
  // name does not count.
  std::optional<size_t> counted_phase() const {
    if (!exists || node.empty()) return std::nullopt;
    if (!has_status || (!uid.empty() && !status_uid.empty() && uid != status_uid)) return 0;
    return phase_index(phase);
  }
};

void add_node(FleetCounts& c, const NodeEntry& n, int sign) {
  c.nodes += sign;
  switch (n.state()) {
    case NodeState::kReady:
      c.ready += sign;
      break;
    case NodeState::kNotReady:
      c.not_ready += sign;
      break;
    default:
      c.unknown += sign;
  }
  c.pods += sign * n.pods;
  for (size_t i = 0; i < kPhaseCount; ++i) c.phases[i] += sign * n.phases[i];
  if (n.has_status) {
    auto& v = c.versions[n.version];
    v += sign;
    if (v == 0) c.versions.erase(n.version);
  }
  if (sign > 0) c.last_change_ms = std::max(c.last_change_ms, n.changed_at);
}

struct Subscriber {
  FleetIndex::ChangeFn fn;
};

}  // namespace

struct FleetIndex::Impl {
  Store& store;
  Options options;
  mutable std::shared_mutex mu;
  Revision revision = 0;
  std::unordered_map<std::string, NodeEntry> nodes;
  std::unordered_map<std::string, PodEntry> pods;  // "ns/name"
  std::map<std::string, std::set<std::string>> by_province;
  std::map<std::string, FleetCounts> counts;
  std::set<std::string> dirty;
  std::unique_ptr<WatchHandle> watch;

  // Publisher thread: tells subscribers of the dirty provinces; also restarts a failed watch.
  std::mutex pub_mu;
  std::condition_variable pub_cv;
  bool stopping = false;
  bool rewatch = false;
  std::map<uint64_t, std::shared_ptr<Subscriber>> subscribers;
  uint64_t next_id = 1;
  uint64_t calling = 0;  // subscriber id being called (0: none)
  std::condition_variable call_done;
  std::thread publisher;

  Impl(Store& s, Options o) : store(s), options(o) {}

  // --- index maintenance (mu held exclusively) ---

  NodeEntry& node_entry(const std::string& name) { return nodes[name]; }

  // Takes the node out of its province's counts; `put_back` after changing it.
  void take_out(const std::string& name, const NodeEntry& n) {
    if (!n.exists) return;
    auto& c = counts[n.province];
    add_node(c, n, -1);
    dirty.insert(n.province);
    if (c.nodes == 0) counts.erase(n.province);
    (void)name;
  }
  void put_back(const std::string& name, const NodeEntry& n) {
    if (!n.exists) return;
    add_node(counts[n.province], n, +1);
    dirty.insert(n.province);
    (void)name;
  }
  void forget_if_unused(const std::string& name) {
    auto it = nodes.find(name);
    if (it != nodes.end() && it->second.unused()) nodes.erase(it);
  }

  void apply_node(const std::string& name, const Event& ev) {
    auto& n = node_entry(name);
    take_out(name, n);
    if (n.exists) {
      auto& members = by_province[n.province];
      members.erase(name);
      if (members.empty()) by_province.erase(n.province);
    }
    n.exists = false;
    n.labels.clear();
    n.province.clear();
    v1::StoredObject stored;
    if (ev.type == EventType::kPut && stored.ParseFromString(ev.kv.value)) {
      n.exists = true;
      n.labels.insert(stored.labels().begin(), stored.labels().end());
      if (auto l = n.labels.find(kProvinceLabel); l != n.labels.end()) n.province = l->second;
      by_province[n.province].insert(name);
    }
    put_back(name, n);
    forget_if_unused(name);
  }

  void apply_node_status(const std::string& name, const Event& ev) {
    auto& n = node_entry(name);
    take_out(name, n);
    v1::StoredStatus st;
    if (ev.type == EventType::kPut && st.ParseFromString(ev.kv.value)) {
      n.has_status = true;
      n.changed_at = st.changed_at();
      n.unreachable = st.unreachable();
      n.unreachable_since = st.unreachable_since();
      n.reported_ready = false;
      n.ready = v1::CONDITION_STATUS_UNKNOWN;
      n.version.clear();
      if (st.has_node()) {
        for (const auto& c : st.node().conditions())
          if (c.type() == v1::NODE_CONDITION_READY) {
            n.reported_ready = true;
            n.ready = c.status();
          }
        n.version = st.node().node_info().edgecore_version();
      }
    } else {
      n.has_status = false;
      n.unreachable = false;
      n.reported_ready = false;
      n.version.clear();
    }
    put_back(name, n);
    forget_if_unused(name);
  }

  void pod_contrib(const PodEntry& p, int sign) {
    auto phase = p.counted_phase();
    if (!phase) return;
    auto& n = node_entry(p.node);
    take_out(p.node, n);
    n.pods += sign;
    n.phases[*phase] += sign;
    put_back(p.node, n);
    forget_if_unused(p.node);
  }

  void apply_pod(const std::string& id, const Event& ev, bool status) {
    auto& p = pods[id];
    pod_contrib(p, -1);
    if (status) {
      v1::StoredStatus st;
      p.has_status = ev.type == EventType::kPut && st.ParseFromString(ev.kv.value);
      p.status_uid = p.has_status ? st.uid() : "";
      p.phase = p.has_status && st.has_pod() ? st.pod().phase() : v1::POD_PHASE_PENDING;
    } else {
      v1::StoredObject stored;
      p.exists = ev.type == EventType::kPut && stored.ParseFromString(ev.kv.value);
      p.node = p.exists ? stored.node_name() : "";
      p.uid = p.exists ? stored.edge().uid() : "";
    }
    pod_contrib(p, +1);
    if (!p.exists && !p.has_status) pods.erase(id);
  }

  void apply(const Event& ev) {
    auto key = keys::parse_key(ev.kv.key);
    if (!key) return;
    if (key->kind == v1::OBJECT_KIND_NODE) {
      if (key->status)
        apply_node_status(key->name, ev);
      else
        apply_node(key->name, ev);
    } else if (key->kind == v1::OBJECT_KIND_POD) {
      apply_pod(key->ns + "/" + key->name, ev, key->status);
    }
  }

  void on_events(const std::vector<Event>& events) {
    if (events.empty()) return;
    std::unique_lock lock(mu);
    if (events.front().kv.mod_revision <= revision) return;  // already in the loaded state
    for (const auto& ev : events) apply(ev);
    revision = events.front().kv.mod_revision;
  }

  WatchCallbacks callbacks() {
    WatchCallbacks cbs;
    cbs.on_events = [this](const std::vector<Event>& events) { on_events(events); };
    cbs.on_error = [this](const Status& s) {
      // Cancelled: the store is closing (shutdown); reading it again would touch a closed DB.
      if (s.code() == common::Code::kCancelled) {
        spdlog::info("fleet index: store watch ended ({})", s.to_string());
        return;
      }
      spdlog::warn("fleet index: store watch ended ({}); loading again", s.to_string());
      std::lock_guard lock(pub_mu);
      rewatch = true;
      pub_cv.notify_all();
    };
    return cbs;
  }

  // Loads the four prefixes at one revision into a fresh state (mu held exclusively).
  Status load() {
    nodes.clear();
    pods.clear();
    by_province.clear();
    std::set<std::string> before;
    for (const auto& [p, c] : counts) before.insert(p);
    counts.clear();
    Revision at = store.current_revision();
    ListOptions opts;
    opts.at = at;
    opts.limit = 5000;
    for (std::string_view prefix :
         {keys::kNodes, keys::kNodeStatus, keys::kPods, keys::kPodStatus}) {
      opts.prefix = std::string(prefix);
      opts.start_after.clear();
      while (true) {
        auto page = store.list(opts);
        if (!page.ok()) return page.status().with_context("fleet index: loading " + opts.prefix);
        if (page->items.empty()) break;
        std::string last = page->items.back().key;
        for (auto& kv : page->items) {
          Event ev;
          ev.kv = std::move(kv);
          apply(ev);
        }
        if (!page->more) break;
        opts.start_after = std::move(last);
      }
    }
    revision = at;
    dirty.insert(before.begin(), before.end());
    for (const auto& [p, c] : counts) dirty.insert(p);
    return common::ok_status();
  }

  // The store's watch thread may be inside on_events (waiting for `mu`): the old watch is
  // dropped and the new one opened without holding it.
  Status load_and_watch() {
    std::unique_ptr<WatchHandle> old;
    {
      std::unique_lock lock(mu);
      old = std::move(watch);
    }
    old.reset();
    Revision from = 0;
    {
      std::unique_lock lock(mu);
      GANTRY_RETURN_IF_ERROR(load());
      from = revision;
    }
    auto w = store.watch("/", from, callbacks());
    if (!w.ok()) return w.status().with_context("fleet index: watching the store");
    std::unique_lock lock(mu);
    watch = std::move(w).value();
    return common::ok_status();
  }

  void publish_loop() {
    std::unique_lock lock(pub_mu);
    auto last_call = std::chrono::steady_clock::now();
    while (!stopping) {
      pub_cv.wait_for(lock, options.publish_interval, [&] { return stopping || rewatch; });
      if (stopping) break;
      if (rewatch) {
        rewatch = false;
        lock.unlock();
        auto s = load_and_watch();
        lock.lock();
        if (!s.ok()) {
          spdlog::error("{}; retrying", s.to_string());
          rewatch = true;
          pub_cv.wait_for(lock, std::chrono::seconds(1), [&] { return stopping; });
          continue;
        }
      }
      std::set<std::string> changed;
      Revision rev = 0;
      {
        std::unique_lock ilock(mu);
        changed.swap(dirty);
        rev = revision;
      }
      auto now = std::chrono::steady_clock::now();
      // Nothing changed: subscribers still hear from the index now and then (a heartbeat).
      if (changed.empty() && now - last_call < options.heartbeat_interval) continue;
      last_call = now;
      auto subs = subscribers;
      for (const auto& [id, sub] : subs) {
        if (stopping) break;
        if (!subscribers.count(id)) continue;
        calling = id;
        lock.unlock();
        sub->fn(changed, rev);
        lock.lock();
        calling = 0;
        call_done.notify_all();
      }
    }
  }

  // --- queries (mu held shared) ---

  FleetNodeRow row(const std::string& name, const NodeEntry& n) const {
    FleetNodeRow r;
    r.name = name;
    r.province = n.province;
    r.labels = n.labels;
    r.state = n.state();
    if (!n.has_status || !n.reported_ready)
      r.reason = "NodeStatusNeverUpdated";
    else if (n.unreachable)
      r.reason = "NodeStatusUnknown";
    r.last_change_ms = n.changed_at;
    r.unreachable_since_ms = n.unreachable ? n.unreachable_since : 0;
    r.last_seen_ms = n.unreachable ? n.unreachable_since : n.changed_at;
    r.version = n.version;
    r.pods = n.pods;
    r.phases = n.phases;
    return r;
  }
};

common::Result<std::unique_ptr<FleetIndex>> FleetIndex::start(Store& store, Options options) {
  auto impl = std::make_unique<Impl>(store, options);
  GANTRY_RETURN_IF_ERROR(impl->load_and_watch());
  {
    std::unique_lock lock(impl->mu);
    impl->dirty.clear();
  }
  Impl* raw = impl.get();
  impl->publisher = std::thread([raw] { raw->publish_loop(); });
  return std::unique_ptr<FleetIndex>(new FleetIndex(std::move(impl)));
}

FleetIndex::FleetIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FleetIndex::~FleetIndex() {
  {
    std::lock_guard lock(impl_->pub_mu);
    impl_->stopping = true;
  }
  impl_->pub_cv.notify_all();
  if (impl_->publisher.joinable()) impl_->publisher.join();
  std::unique_ptr<WatchHandle> watch;
  {
    std::unique_lock lock(impl_->mu);
    watch = std::move(impl_->watch);
  }
  watch.reset();
}

Revision FleetIndex::revision() const {
  std::shared_lock lock(impl_->mu);
  return impl_->revision;
}

std::vector<std::string> FleetIndex::provinces() const {
  std::shared_lock lock(impl_->mu);
  std::vector<std::string> out;
  for (const auto& [p, c] : impl_->counts) out.push_back(p);
  return out;
}

std::optional<FleetCounts> FleetIndex::province(const std::string& name) const {
  std::shared_lock lock(impl_->mu);
  auto it = impl_->counts.find(name);
  if (it == impl_->counts.end()) return std::nullopt;
  return it->second;
}

std::map<std::string, FleetCounts> FleetIndex::breakdown(const std::string& province,
                                                         const std::string& label) const {
  std::shared_lock lock(impl_->mu);
  std::map<std::string, FleetCounts> out;
  auto it = impl_->by_province.find(province);
  if (it == impl_->by_province.end()) return out;
  for (const auto& name : it->second) {
    auto n = impl_->nodes.find(name);
    if (n == impl_->nodes.end()) continue;
    auto l = n->second.labels.find(label);
    add_node(out[l == n->second.labels.end() ? std::string() : l->second], n->second, +1);
  }
  return out;
}

std::map<std::string, int64_t> FleetIndex::label_keys(const std::string& province) const {
  std::shared_lock lock(impl_->mu);
  std::map<std::string, int64_t> out;
  auto it = impl_->by_province.find(province);
  if (it == impl_->by_province.end()) return out;
  for (const auto& name : it->second) {
    auto n = impl_->nodes.find(name);
    if (n == impl_->nodes.end()) continue;
    for (const auto& [k, v] : n->second.labels) ++out[k];
  }
  return out;
}

std::optional<FleetNodeRow> FleetIndex::node(const std::string& name) const {
  std::shared_lock lock(impl_->mu);
  auto it = impl_->nodes.find(name);
  if (it == impl_->nodes.end() || !it->second.exists) return std::nullopt;
  return impl_->row(name, it->second);
}

NodePage FleetIndex::nodes(const NodeQuery& q) const {
  std::shared_lock lock(impl_->mu);
  NodePage page;
  page.revision = impl_->revision;
  std::vector<std::pair<const std::string*, const NodeEntry*>> matched;
  auto consider = [&](const std::string& name) {
    auto it = impl_->nodes.find(name);
    if (it == impl_->nodes.end() || !it->second.exists) return;
    const NodeEntry& n = it->second;
    if (!q.states.empty() && !q.states.count(n.state())) return;
    if (!q.name_contains.empty() && it->first.find(q.name_contains) == std::string::npos) return;
    if (q.labels && !q.labels(n.labels)) return;
    matched.emplace_back(&it->first, &n);
  };
  for (const auto& [province, members] : impl_->by_province) {
    if (q.provinces && !q.provinces->count(province)) continue;
    for (const auto& name : members) consider(name);
  }
  page.total = matched.size();
  using Item = std::pair<const std::string*, const NodeEntry*>;
  // Ties keep the name order, so that paging is stable.
  auto key_less = [&](const Item& a, const Item& b) -> int {
    const NodeEntry& x = *a.second;
    const NodeEntry& y = *b.second;
    auto cmp = [](const auto& l, const auto& r) { return l < r ? -1 : (r < l ? 1 : 0); };
    if (q.sort_by == "state") {
      // Trouble first when ascending: Unknown, NotReady, Ready.
      auto rank = [](NodeState s) {
        return s == NodeState::kUnknown ? 0 : s == NodeState::kNotReady ? 1 : 2;
      };
      return cmp(rank(x.state()), rank(y.state()));
    }
    if (q.sort_by == "lastSeen")
      return cmp(x.unreachable ? x.unreachable_since : x.changed_at,
                 y.unreachable ? y.unreachable_since : y.changed_at);
    if (q.sort_by == "pods") return cmp(x.pods, y.pods);
    if (q.sort_by == "version") return cmp(x.version, y.version);
    if (q.sort_by == "province") return cmp(x.province, y.province);
    return 0;
  };
  auto less = [&](const Item& a, const Item& b) {
    int c = key_less(a, b);
    if (c == 0) c = *a.first < *b.first ? -1 : (*b.first < *a.first ? 1 : 0);
    return q.descending ? c > 0 : c < 0;
  };
  size_t end = std::min(matched.size(), q.offset + q.limit);
  if (q.offset < matched.size()) {
    std::partial_sort(matched.begin(), matched.begin() + static_cast<std::ptrdiff_t>(end),
                      matched.end(), less);
    for (size_t i = q.offset; i < end; ++i)
      page.items.push_back(impl_->row(*matched[i].first, *matched[i].second));
  }
  return page;
}

namespace {
class FnSubscription : public FleetIndex::Subscription {
 public:
  explicit FnSubscription(std::function<void()> cancel) : cancel_(std::move(cancel)) {}
  ~FnSubscription() override { cancel_(); }

 private:
  std::function<void()> cancel_;
};
}  // namespace

std::unique_ptr<FleetIndex::Subscription> FleetIndex::subscribe(ChangeFn fn) {
  std::lock_guard lock(impl_->pub_mu);
  uint64_t id = impl_->next_id++;
  impl_->subscribers[id] = std::make_shared<Subscriber>(Subscriber{std::move(fn)});
  Impl* impl = impl_.get();
  return std::make_unique<FnSubscription>([impl, id] {
    std::unique_lock lock(impl->pub_mu);
    impl->subscribers.erase(id);
    // Called from inside its own callback: do not wait for ourselves.
    if (impl->publisher.get_id() == std::this_thread::get_id()) return;
    impl->call_done.wait(lock, [&] { return impl->calling != id; });
  });
}

}  // namespace gantry::cloud::api
