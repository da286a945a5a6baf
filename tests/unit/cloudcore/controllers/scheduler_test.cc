// The scheduler against a real RocksStore, with the registry following the same store (as the
// hub's dispatch does): pods get bound, the unbindable ones say why, new nodes unblock them.
#include "cloudcore/controllers/scheduler.h"

#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/registry/registry.h"
#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"

namespace gantry::cloud::controllers {
namespace {

using json = nlohmann::json;
using test::eventually;

class SchedulerFixture {
 public:
  SchedulerFixture() {
    RocksStoreOptions options;
    options.path = (dir_ / "store").string();
    store_ = open_rocks_store(options).value();
    registry_ = Registry::start(*store_).value();
  }
  ~SchedulerFixture() {
    if (scheduler_) scheduler_->stop();
  }

  void start_scheduler() {
    SchedulerOptions options;
    options.retry_interval = std::chrono::milliseconds(50);
    options.events = [this](EventRecord e) {
      std::lock_guard lock(events_mu_);
      events_.push_back(std::move(e));
    };
    auto s = Scheduler::start(*store_, options);
    REQUIRE(s.ok());
    scheduler_ = std::move(s).value();
  }

  void put_node(const std::string& name, std::map<std::string, std::string> labels,
                json taints = json::array(), int64_t cpu_millis = 4000, int64_t pods = 110) {
    json node = {{"kind", "Node"},
                 {"apiVersion", "v1"},
                 {"metadata", {{"name", name}, {"uid", "uid-" + name}, {"labels", labels}}},
                 {"spec", {{"taints", taints}}}};
    auto stored = decode_object(v1::OBJECT_KIND_NODE, node.dump());
    REQUIRE(stored.ok());
    REQUIRE(
        store_->put(keys::object_key(v1::OBJECT_KIND_NODE, "", name), stored->SerializeAsString())
            .ok());
    v1::StoredStatus st;
    st.set_generation(1);
    auto* ns = st.mutable_node();
    ns->mutable_allocatable()->set_cpu_millis(cpu_millis);
    ns->mutable_allocatable()->set_memory_bytes(8LL << 30);
    ns->mutable_allocatable()->set_pods(pods);
    auto* c = ns->add_conditions();
    c->set_type(v1::NODE_CONDITION_READY);
    c->set_status(v1::CONDITION_STATUS_TRUE);
    REQUIRE(
        store_->put(keys::status_key(v1::OBJECT_KIND_NODE, "", name), st.SerializeAsString()).ok());
  }

  void put_pod(const std::string& name, json spec_extra = json::object(), std::string owner = "",
               std::string cpu = "100m") {
    json pod = {{"kind", "Pod"},
                {"apiVersion", "v1"},
                {"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name}}},
                {"spec",
                 {{"containers",
                   {{{"name", "main"},
                     {"image", "nginx:1.25"},
                     {"resources", {{"requests", {{"cpu", cpu}}}}}}}}}}};
    if (!owner.empty())
      pod["metadata"]["ownerReferences"] = {
          {{"uid", owner}, {"kind", "ReplicaSet"}, {"name", owner}}};
    pod["spec"].update(spec_extra);
    auto stored = decode_object(v1::OBJECT_KIND_POD, pod.dump());
    REQUIRE(stored.ok());
    REQUIRE(store_
                ->put(keys::object_key(v1::OBJECT_KIND_POD, "default", name),
                      stored->SerializeAsString())
                .ok());
  }

  // The stored pod's spec.nodeName ("" while unscheduled), checked against the derived fields.
  std::string node_of(const std::string& name) {
    auto kv = store_->get(keys::object_key(v1::OBJECT_KIND_POD, "default", name));
    if (!kv.ok() || !*kv) return "<missing>";
    v1::StoredObject so;
    if (!so.ParseFromString((*kv)->value)) return "<corrupt>";
    std::string from_json = json::parse(so.json())["spec"].value("nodeName", "");
    if (from_json != so.node_name()) return "<derived fields disagree>";
    return from_json;
  }

  std::optional<v1::StoredStatus> pod_status(const std::string& name) {
    auto kv = store_->get(keys::status_key(v1::OBJECT_KIND_POD, "default", name));
    if (!kv.ok() || !*kv) return std::nullopt;
    v1::StoredStatus st;
    if (!st.ParseFromString((*kv)->value)) return std::nullopt;
    return st;
  }

  std::string unschedulable_message(const std::string& name) {
    auto st = pod_status(name);
    if (!st || !st->has_pod() || st->pod().reason() != "Unschedulable") return "";
    return st->pod().message();
  }

  std::vector<EventRecord> events(const std::string& reason) {
    std::lock_guard lock(events_mu_);
    std::vector<EventRecord> out;
    for (const auto& e : events_)
      if (e.reason == reason) out.push_back(e);
    return out;
  }

  test::TempDir dir_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<Registry> registry_;
  std::unique_ptr<Scheduler> scheduler_;
  std::mutex events_mu_;
  std::vector<EventRecord> events_;
};

TEST_CASE_METHOD(SchedulerFixture, "scheduling results are events on the pod",
                 "[controllers][scheduler]") {
  put_node("a", {{"role", "core"}});
  start_scheduler();
  put_pod("web", {{"nodeSelector", {{"role", "edge"}}}});
  REQUIRE(eventually([&] { return !events("FailedScheduling").empty(); }));
  auto failed = events("FailedScheduling")[0];
  CHECK(failed.type == KubeEventType::kWarning);
  CHECK(failed.component == "default-scheduler");
  CHECK(failed.object.kind == "Pod");
  CHECK(failed.object.ns == "default");
  CHECK(failed.object.name == "web");
  CHECK(failed.object.uid == "uid-web");
  CHECK(failed.message == "0/1 nodes are available: 1 node(s) didn't match node selector.");
  put_node("b", {{"role", "edge"}});
  REQUIRE(eventually([&] { return !events("Scheduled").empty(); }));
  auto scheduled = events("Scheduled")[0];
  CHECK(scheduled.type == KubeEventType::kNormal);
  CHECK(scheduled.message == "Successfully assigned default/web to b");
}

TEST_CASE_METHOD(SchedulerFixture,
                 "pods without a node are bound to a node matching their selector",
                 "[controllers][scheduler]") {
  put_node("edge-1", {{"role", "edge"}});
  put_node("core-1", {{"role", "core"}});
  put_pod("early", {{"nodeSelector", {{"role", "core"}}}});  // before the scheduler starts
  start_scheduler();
  put_pod("web", {{"nodeSelector", {{"role", "edge"}}}});
  CHECK(eventually([&] { return node_of("early") == "core-1"; }));
  CHECK(eventually([&] { return node_of("web") == "edge-1"; }));
  // The registry (and so dispatch to the edge) sees the binding.
  CHECK(eventually([&] {
    auto p = registry_->pod("default", "web");
    return p && p->node == "edge-1";
  }));
  CHECK_FALSE(pod_status("web"));
}

TEST_CASE_METHOD(SchedulerFixture, "a pod that fits nowhere says why and is bound once a node fits",
                 "[controllers][scheduler]") {
  put_node("a", {{"role", "core"}});
  put_node("b", {{"role", "edge"}},
           json::array({{{"key", "dedicated"}, {"value", "gpu"}, {"effect", "NoSchedule"}}}));
  start_scheduler();
  put_pod("lonely", {{"nodeSelector", {{"role", "edge"}}}});
  REQUIRE(eventually([&] {
    return unschedulable_message("lonely") ==
           "0/2 nodes are available: 1 node(s) didn't match node selector, 1 node(s) had "
           "untolerated taint {dedicated: gpu}.";
  }));
  auto st = pod_status("lonely");
  REQUIRE(st);
  CHECK(st->generation() == 0);  // the edge's first status replaces it
  CHECK(st->pod().phase() == v1::POD_PHASE_PENDING);
  CHECK(st->uid() == "uid-lonely");
  CHECK(node_of("lonely").empty());

  put_node("c", {{"role", "edge"}});
  CHECK(eventually([&] { return node_of("lonely") == "c"; }));
  CHECK(eventually([&] { return !pod_status("lonely").has_value(); }));  // removed when bound
}

TEST_CASE_METHOD(SchedulerFixture, "tolerations and required node affinity select the node",
                 "[controllers][scheduler]") {
  put_node("tainted", {{"zone", "east"}},
           json::array({{{"key", "dedicated"}, {"value", "gpu"}, {"effect", "NoSchedule"}}}));
  put_node("west", {{"zone", "west"}});
  start_scheduler();
  put_pod("gpu", json::parse(R"({
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "gpu"}],
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
      "nodeSelectorTerms": [{"matchExpressions": [
        {"key": "zone", "operator": "In", "values": ["east"]}]}]}}}})"));
  put_pod("not-west", json::parse(R"({
    "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
      "nodeSelectorTerms": [{"matchExpressions": [
        {"key": "zone", "operator": "NotIn", "values": ["west"]}]}]}}}})"));
  CHECK(eventually([&] { return node_of("gpu") == "tainted"; }));
  // The only node not in the west is tainted and this pod does not tolerate it.
  CHECK(eventually([&] {
    return unschedulable_message("not-west") ==
           "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity, 1 node(s) had "
           "untolerated taint {dedicated: gpu}.";
  }));
}

TEST_CASE_METHOD(SchedulerFixture, "replicas of one owner spread and free resources are respected",
                 "[controllers][scheduler]") {
  put_node("n1", {}, json::array(), 1000);
  put_node("n2", {}, json::array(), 1000);
  put_node("n3", {}, json::array(), 1000);
  start_scheduler();
  for (int i = 0; i < 3; ++i) put_pod("rep-" + std::to_string(i), json::object(), "rs-1", "400m");
  std::set<std::string> nodes;
  REQUIRE(eventually([&] {
    nodes.clear();
    for (int i = 0; i < 3; ++i) nodes.insert(node_of("rep-" + std::to_string(i)));
    return !nodes.count("");
  }));
  CHECK(nodes == std::set<std::string>{"n1", "n2", "n3"});

  // 400m used on each of 1000m: two 500m pods fit on two nodes, a third fits nowhere.
  put_pod("big-0", json::object(), "", "500m");
  put_pod("big-1", json::object(), "", "500m");
  put_pod("big-2", json::object(), "", "500m");
  put_pod("big-3", json::object(), "", "500m");
  std::string full = "0/3 nodes are available: 3 Insufficient cpu.";
  CHECK(eventually([&] {
    int bound = 0;
    int refused = 0;
    for (int i = 0; i < 4; ++i) {
      std::string name = "big-" + std::to_string(i);
      if (!node_of(name).empty())
        ++bound;
      else if (unschedulable_message(name) == full)
        ++refused;
    }
    return bound == 3 && refused == 1;
  }));
  // Deleting a bound pod frees its node for the waiting one.
  std::string waiting;
  for (int i = 0; i < 4; ++i)
    if (node_of("big-" + std::to_string(i)).empty()) waiting = "big-" + std::to_string(i);
  REQUIRE(store_->remove(keys::object_key(v1::OBJECT_KIND_POD, "default", "rep-0")).ok());
  CHECK(eventually([&] { return !node_of(waiting).empty(); }));
}

TEST_CASE_METHOD(SchedulerFixture, "an unreachable node gets no new pods until it reports again",
                 "[controllers][scheduler]") {
  put_node("only", {});
  v1::StoredStatus st;
  auto key = keys::status_key(v1::OBJECT_KIND_NODE, "", "only");
  REQUIRE(st.ParseFromString(store_->get(key).value()->value));
  st.set_unreachable(true);
  REQUIRE(store_->put(key, st.SerializeAsString()).ok());
  start_scheduler();
  put_pod("p");
  REQUIRE(eventually([&] {
    return unschedulable_message("p") == "0/1 nodes are available: 1 node(s) were unreachable.";
  }));
  st.set_unreachable(false);
  REQUIRE(store_->put(key, st.SerializeAsString()).ok());
  CHECK(eventually([&] { return node_of("p") == "only"; }));
}

TEST_CASE_METHOD(SchedulerFixture, "a pod that already names its node is left alone",
                 "[controllers][scheduler]") {
  put_node("a", {});
  start_scheduler();
  put_pod("pinned", {{"nodeName", "offline-node"}});
  put_pod("free");
  REQUIRE(eventually([&] { return node_of("free") == "a"; }));
  CHECK(node_of("pinned") == "offline-node");
  CHECK_FALSE(pod_status("pinned"));
  // The bind's write is visible before the scheduler counts it: wait for the count, not for 1 by
  // luck of timing.
  CHECK(eventually([&] { return scheduler_->stats().bound >= 1; }));
  CHECK(scheduler_->stats().bound == 1);
}

}  // namespace
}  // namespace gantry::cloud::controllers
