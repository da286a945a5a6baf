#include "cloudcore/controllers/node_lifecycle.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "cloudcore/controllers/node_ownership.h"
#include "cloudcore/registry/keys.h"
#include "gantry/v1/objects.pb.h"

namespace gantry::cloud::controllers {
namespace {

std::string node_uid(const Store& store, const std::string& node) {
  auto kv = store.get(keys::object_key(v1::OBJECT_KIND_NODE, "", node));
  if (!kv.ok() || !kv->has_value()) return "";
  v1::StoredObject stored;
  if (!stored.ParseFromString((*kv)->value)) return "";
  auto j = nlohmann::json::parse(stored.json(), nullptr, false);
  if (!j.is_object()) return "";
  auto meta = j.find("metadata");
  if (meta == j.end() || !meta->is_object()) return "";
  auto uid = meta->find("uid");
  return uid != meta->end() && uid->is_string() ? uid->get<std::string>() : "";
}

}  // namespace

NodeLifecycle::NodeLifecycle(Store& store, Leases& leases, const Registry& registry,
                             const LeaderElector& elector, common::Clock& clock,
                             NodeLifecycleOptions options)
    : store_(store),
      leases_(leases),
      registry_(registry),
      elector_(elector),
      clock_(clock),
      options_(std::move(options)),
      started_(clock.steady_now()) {}

common::Result<std::unique_ptr<NodeLifecycle>> NodeLifecycle::start(Store& store, Leases& leases,
                                                                    const Registry& registry,
                                                                    const LeaderElector& elector,
                                                                    common::Clock& clock,
                                                                    NodeLifecycleOptions options) {
  std::unique_ptr<NodeLifecycle> c(
      new NodeLifecycle(store, leases, registry, elector, clock, std::move(options)));
  GANTRY_RETURN_IF_ERROR(c->relist());
  if (c->options_.sweep_interval.count() <= 0) return c;  // the caller sweeps (tests)
  c->thread_ = std::thread([raw = c.get()] {
    std::unique_lock lock(raw->mu_);
    while (!raw->stopping_) {
      lock.unlock();
      raw->sweep();
      lock.lock();
      raw->cv_.wait_for(lock, raw->options_.sweep_interval, [&] { return raw->stopping_; });
    }
  });
  return c;
}

NodeLifecycle::~NodeLifecycle() {
  stop();
}

void NodeLifecycle::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  std::unique_ptr<WatchHandle> watch;
  {
    std::lock_guard lock(mu_);
    watch = std::move(watch_);
  }
  watch.reset();  // outside mu_: its callbacks take it
}

Status NodeLifecycle::relist() {
  ListOptions list;
  list.prefix = std::string(kNodeOwnershipPrefix);
  list.keys_only = true;
  GANTRY_ASSIGN_OR_RETURN(ListResult page, store_.list(list));
  std::set<std::string> owned;
  for (const auto& kv : page.items) owned.insert(kv.key.substr(kNodeOwnershipPrefix.size()));
  WatchCallbacks cbs;
  cbs.on_events = [this](const std::vector<Event>& events) {
    std::lock_guard lock(mu_);
    for (const auto& e : events) {
      std::string node = e.kv.key.substr(kNodeOwnershipPrefix.size());
      if (e.type == EventType::kPut) {
        owned_.insert(node);
      } else {
        owned_.erase(node);
        // Held until now: the timeout counts from here.
        last_held_[node] = clock_.steady_now();
      }
    }
  };
  cbs.on_error = [this](const Status& s) {
    spdlog::warn("node lifecycle: watching the ownership records: {}", s.to_string());
    std::lock_guard lock(mu_);
    relist_ = true;
  };
  std::unique_ptr<WatchHandle> old;
  {
    std::lock_guard lock(mu_);
    owned_ = std::move(owned);
    relist_ = false;
    old = std::move(watch_);
  }
  old.reset();
  GANTRY_ASSIGN_OR_RETURN(auto handle,
                          store_.watch(std::string(kNodeOwnershipPrefix), page.revision, cbs));
  std::lock_guard lock(mu_);
  watch_ = std::move(handle);
  ++stats_.relists;
  return common::ok_status();
}

bool NodeLifecycle::held(const std::string& node) const {
  std::lock_guard lock(mu_);
  return owned_.count(node) > 0;
}

void NodeLifecycle::sweep() {
  bool need_relist = false;
  {
    std::lock_guard lock(mu_);
    need_relist = relist_;
  }
  if (need_relist) {
    if (auto s = relist(); !s.ok()) {
      spdlog::warn("node lifecycle: listing the ownership records: {}", s.to_string());
      return;
    }
  }
  const auto now = clock_.steady_now();
  std::vector<std::string> due;
  {
    std::lock_guard lock(mu_);
    for (const auto& node : registry_.node_names()) {
      if (owned_.count(node)) {
        last_held_[node] = now;
        marked_.erase(node);
        continue;
      }
      if (marked_.count(node)) continue;
      auto it = last_held_.find(node);
      const auto since = it != last_held_.end() ? it->second : started_;
      if (now - since >= options_.node_timeout) due.push_back(node);
    }
  }
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(clock_.system_now().time_since_epoch())
          .count();
  for (const auto& node : due) {
    if (!elector_.may_write()) return;
    if (mark(node, now_ms)) {
      std::lock_guard lock(mu_);
      marked_.insert(node);
    }
  }
}

bool NodeLifecycle::mark(const std::string& node, int64_t now_ms) {
  const std::string key = keys::status_key(v1::OBJECT_KIND_NODE, "", node);
  auto kv = store_.get(key);
  if (!kv.ok()) return false;
  v1::StoredStatus status;
  Revision expect = 0;
  if (kv->has_value()) {
    if (!status.ParseFromString((*kv)->value)) return false;
    expect = (*kv)->mod_revision;
    if (status.unreachable()) return true;  // already marked (by us, or before a failover)
  }
  status.set_unreachable(true);
  status.set_unreachable_since(now_ms);
  auto r =
      leases_.txn({Op::put(key, status.SerializeAsString(), expect)},
                  {{node_ownership_key(node), 0}, {elector_.options().key, elector_.fence()}}, 0);
  if (!r.ok()) {
    ++stats_.conflicts;
    spdlog::info("node lifecycle: not marking node {}: {}", node, r.status().message());
    return false;
  }
  ++stats_.marked;
  spdlog::info(
      "node lifecycle: node {} held by no replica for more than {} ms: Ready=Unknown (its pods "
      "stay)",
      node, options_.node_timeout.count());
  if (options_.events) {
    EventRecord e;
    e.object = node_reference(node, node_uid(store_, node));
    e.component = "node-controller";
    e.reason = "NodeNotReady";
    e.type = KubeEventType::kWarning;
    e.message = fmt::format(
        "Node {} status is now: NodeNotReady (no cloudcore replica has held its tunnel past the "
        "node timeout: Ready=Unknown; its pods keep running)",
        node);
    options_.events(std::move(e));
  }
  return true;
}

}  // namespace gantry::cloud::controllers
