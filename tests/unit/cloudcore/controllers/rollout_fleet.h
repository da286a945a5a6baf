// A fleet for Rollout tests: the API server, the workload controllers and the scheduler on one
// store, nodes in two provinces (n0..n3 Zhejiang, the rest Jiangsu) and a stand-in for the edge
// that reports the pods of reachable nodes Ready (or crash-looping, for the images marked bad) and
// removes the pods it was told to stop. Used by rollout_api_test.cc and the kubectl walk-through
// (tests/e2e/rollout).
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "cloudcore/controllers/scheduler.h"
#include "cloudcore/controllers/workloads.h"
#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "tests/unit/cloudcore/api/api_fixture.h"

namespace gantry::cloud::controllers::test {

class RolloutFleet : public gantry::test::ApiFixture {
 public:
  using json = nlohmann::json;

  explicit RolloutFleet(int nodes = 10) {
    for (int i = 0; i < nodes; ++i) {
      std::string n = "n" + std::to_string(i);
      put_node(n, i < 4 ? "zhejiang" : "jiangsu");
      put_node_status(n, true);
    }
    WorkloadOptions o;
    o.clock = &clock_;
    o.queue.base_delay = std::chrono::milliseconds(1);
    o.queue.max_delay = std::chrono::milliseconds(50);
    o.queue.max_wait = std::chrono::milliseconds(5);
    auto c = WorkloadControllers::start(store(), o);
    if (c.ok()) controllers_ = std::move(c).value();
    SchedulerOptions so;  // binds a Deployment's pods
    so.retry_interval = std::chrono::milliseconds(20);
    so.now_ms = [this] { return clock_.unix_ms(); };
    auto s = Scheduler::start(store(), so);
    if (s.ok()) scheduler_ = std::move(s).value();
  }
  ~RolloutFleet() {
    stop_edge();
    if (scheduler_) scheduler_->stop();
    if (controllers_) controllers_->stop();
  }

  bool started() const { return controllers_ != nullptr && scheduler_ != nullptr; }

  // Images whose containers crash-loop on the edge.
  void mark_bad(const std::string& image) {
    std::lock_guard lock(mu_);
    bad_.insert(image);
  }

  // The edge's part, once: pods on reachable nodes report Ready (CrashLoopBackOff for a bad
  // image), pods told to stop there are removed. False when the store would not answer.
  bool edge() {
    std::lock_guard run(run_mu_);
    std::set<std::string> offline, bad;
    {
      std::lock_guard lock(mu_);
      offline = offline_;
      bad = bad_;
    }
    ListOptions lo;
    lo.prefix = std::string(keys::kPods);
    auto listed = store().list(lo);
    if (!listed.ok()) return false;
    for (const auto& kv : listed->items) {
      v1::StoredObject so;
      if (!so.ParseFromString(kv.value)) return false;
      json pod = json::parse(so.json(), nullptr, false);
      if (pod.is_discarded()) return false;
      std::string node = so.node_name();
      if (node.empty() || offline.count(node)) continue;
      std::string ns = pod["metadata"].value("namespace", "default");
      std::string name = pod["metadata"]["name"];
      std::string skey = keys::status_key(v1::OBJECT_KIND_POD, ns, name);
      if (pod["metadata"].contains("deletionTimestamp")) {
        (void)store().txn({Op::remove(kv.key, kv.mod_revision), Op::remove(skey)});
        continue;
      }
      std::string image = pod["spec"]["containers"][0]["image"];
      std::string container = pod["spec"]["containers"][0]["name"];
      // An in-place update keeps the uid: report again when the image changed.
      std::string uid = pod["metadata"]["uid"];
      if (auto r = reported_.find(uid); r != reported_.end() && r->second == image) continue;
      v1::StoredStatus st;
      st.set_generation(1);
      auto* ps = st.mutable_pod();
      auto* c = ps->add_containers();
      c->set_name(container);
      c->set_image(image);
      ps->set_phase(v1::POD_PHASE_RUNNING);
      if (bad.count(image)) {
        ps->set_ready(false);
        c->mutable_state()->mutable_waiting()->set_reason("CrashLoopBackOff");
      } else {
        ps->set_ready(true);
        ps->set_ready_since(clock_.unix_ms());
        c->set_ready(true);
        c->mutable_state()->mutable_running()->set_started_at(clock_.unix_ms());
      }
      if (!store().put(skey, st.SerializeAsString()).ok()) return false;
      reported_[uid] = image;
    }
    return true;
  }

  // The edge acting by itself, as real nodes do, while kubectl runs (tests/e2e/rollout).
  void start_edge() {
    edge_thread_ = std::thread([this] {
      std::unique_lock lock(edge_mu_);
      while (!edge_stop_) {
        lock.unlock();
        (void)edge();
        lock.lock();
        edge_cv_.wait_for(lock, std::chrono::milliseconds(20), [&] { return edge_stop_; });
      }
    });
  }
  void stop_edge() {
    {
      std::lock_guard lock(edge_mu_);
      edge_stop_ = true;
    }
    edge_cv_.notify_all();
    if (edge_thread_.joinable()) edge_thread_.join();
  }

  void set_offline(const std::string& node, bool offline) {
    {
      std::lock_guard lock(mu_);
      if (offline)
        offline_.insert(node);
      else
        offline_.erase(node);
    }
    put_node_status(node, !offline, offline);
  }

  json get(const std::string& path) { return call("GET", path, gantry::test::kAdminToken).json(); }

  // node -> image of its live (not terminating) pod in `ns`.
  std::map<std::string, std::string> images(const std::string& ns = "default") {
    std::map<std::string, std::string> out;
    json pods = get("/api/v1/namespaces/" + ns + "/pods");
    if (!pods.contains("items")) return out;
    for (const auto& p : pods["items"]) {
      if (p["metadata"].contains("deletionTimestamp")) continue;
      out[p["spec"].value("nodeName", "")] = p["spec"]["containers"][0]["image"];
    }
    return out;
  }
  // Live (not terminating) pods in `ns` whose container runs `image` as its spec says.
  size_t pods_running(const std::string& image, const std::string& ns = "default") {
    size_t n = 0;
    json pods = get("/api/v1/namespaces/" + ns + "/pods");
    if (!pods.contains("items")) return 0;
    for (const auto& p : pods["items"])
      if (!p["metadata"].contains("deletionTimestamp") &&
          p["spec"]["containers"][0]["image"] == image)
        ++n;
    return n;
  }
  size_t running(const std::string& image, const std::string& ns = "default") {
    size_t n = 0;
    for (const auto& [node, i] : images(ns)) n += i == image;
    return n;
  }

  // Polls with the edge acting until `pred` holds.
  bool until(const std::function<bool()>& pred) {
    return gantry::test::eventually([&] {
      (void)edge();
      return pred();
    });
  }

  ManualClock clock_;
  std::unique_ptr<WorkloadControllers> controllers_;
  std::unique_ptr<Scheduler> scheduler_;

 private:
  std::mutex mu_;  // offline_, bad_
  std::set<std::string> offline_;
  std::set<std::string> bad_;
  std::mutex run_mu_;                            // one edge() at a time
  std::map<std::string, std::string> reported_;  // pod uid -> image last reported; run_mu_
  std::mutex edge_mu_;
  std::condition_variable edge_cv_;
  bool edge_stop_ = false;
  std::thread edge_thread_;
};

}  // namespace gantry::cloud::controllers::test
