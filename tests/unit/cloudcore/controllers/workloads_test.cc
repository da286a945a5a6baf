// The workload controllers against a real RocksStore, with an injected clock: what a user sees in
// the store (pods, their owners, the status kubectl prints) after writing a workload, and what
// happens when nodes become unreachable.
#include "cloudcore/controllers/workloads.h"

#include <catch2/catch.hpp>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"

namespace gantry::cloud::controllers {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using test::eventually;

struct PodSeen {
  std::string name;
  std::string node;
  std::string owner_uid;
  bool controller = false;
  bool terminating = false;
  std::map<std::string, std::string> labels;
  json obj;
};

class WorkloadFixture {
 public:
  WorkloadFixture() {
    RocksStoreOptions options;
    options.path = (dir_ / "store").string();
    store_ = open_rocks_store(options).value();
  }
  ~WorkloadFixture() {
    if (controllers_) controllers_->stop();
  }

  void start() {
    WorkloadOptions o;
    o.clock = &clock_;
    o.queue.base_delay = 1ms;
    o.queue.max_delay = 50ms;
    o.queue.max_wait = 5ms;
    auto c = WorkloadControllers::start(*store_, o);
    REQUIRE(c.ok());
    controllers_ = std::move(c).value();
  }

  void put_json(const std::string& key, const json& obj) {
    v1::StoredObject so;
    so.set_json(obj.dump());
    if (obj["metadata"].contains("labels"))
      for (auto it = obj["metadata"]["labels"].begin(); it != obj["metadata"]["labels"].end(); ++it)
        (*so.mutable_labels())[it.key()] = it->get<std::string>();
    REQUIRE(store_->put(key, so.SerializeAsString()).ok());
  }

  std::optional<json> get_json(const std::string& key) {
    auto kv = store_->get(key);
    if (!kv.ok() || !*kv) return std::nullopt;
    v1::StoredObject so;
    REQUIRE(so.ParseFromString((*kv)->value));
    return json::parse(so.json());
  }

  json replicaset(const std::string& name, int replicas, json extra_meta = json::object()) {
    json rs = {{"apiVersion", "apps/v1"},
               {"kind", "ReplicaSet"},
               {"metadata",
                {{"name", name},
                 {"namespace", "default"},
                 {"uid", "uid-" + name},
                 {"generation", 1},
                 {"creationTimestamp", "2026-12-02T10:00:00Z"}}},
               {"spec",
                {{"replicas", replicas},
                 {"selector", {{"matchLabels", {{"app", name}}}}},
                 {"template",
                  {{"metadata", {{"labels", {{"app", name}}}}},
                   {"spec", {{"containers", {{{"name", "main"}, {"image", "nginx:1.25"}}}}}}}}}}};
    rs["metadata"].update(extra_meta);
    return rs;
  }

  void put_rs(const json& rs) {
    put_json(
        std::string(kReplicaSetsPrefix) + "default/" + rs["metadata"]["name"].get<std::string>(),
        rs);
  }

  void put_pod(const std::string& name, std::map<std::string, std::string> labels,
               const std::string& node = "") {
    json pod = {{"apiVersion", "v1"},
                {"kind", "Pod"},
                {"metadata",
                 {{"name", name},
                  {"namespace", "default"},
                  {"uid", "uid-" + name},
                  {"labels", labels},
                  {"creationTimestamp", "2026-12-02T10:00:00Z"}}},
                {"spec", {{"containers", {{{"name", "main"}, {"image", "nginx:1.25"}}}}}}};
    if (!node.empty()) pod["spec"]["nodeName"] = node;
    write_pod(pod);
  }

  void write_pod(const json& pod) {
    auto stored = decode_object(v1::OBJECT_KIND_POD, pod.dump());
    REQUIRE(stored.ok());
    REQUIRE(store_
                ->put(keys::object_key(v1::OBJECT_KIND_POD, "default",
                                       pod["metadata"]["name"].get<std::string>()),
                      stored->SerializeAsString())
                .ok());
  }

  std::vector<PodSeen> pods() {
    ListOptions lo;
    lo.prefix = std::string(keys::kPods);
    auto list = store_->list(lo);
    REQUIRE(list.ok());
    std::vector<PodSeen> out;
    for (const auto& kv : list->items) {
      v1::StoredObject so;
      REQUIRE(so.ParseFromString(kv.value));
      PodSeen p;
      p.obj = json::parse(so.json());
      p.name = p.obj["metadata"]["name"];
      p.node = so.node_name();
      p.terminating = so.edge().pod().terminating();
      p.labels = {so.labels().begin(), so.labels().end()};
      if (p.obj["metadata"].contains("ownerReferences")) {
        for (const auto& r : p.obj["metadata"]["ownerReferences"]) {
          p.owner_uid = r.value("uid", "");
          p.controller = r.value("controller", false);
        }
      }
      out.push_back(std::move(p));
    }
    return out;
  }

  size_t count(const std::function<bool(const PodSeen&)>& pred) {
    size_t n = 0;
    for (const auto& p : pods())
      if (pred(p)) ++n;
    return n;
  }
  size_t live_owned(const std::string& uid) {
    return count([&](const PodSeen& p) { return p.owner_uid == uid && !p.terminating; });
  }

  // The edge reports the pod Running and Ready (ready since `since_ms`).
  void report_ready(const std::string& name, int64_t since_ms) {
    v1::StoredStatus st;
    st.set_generation(1);
    st.mutable_pod()->set_phase(v1::POD_PHASE_RUNNING);
    st.mutable_pod()->set_ready(true);
    st.mutable_pod()->set_ready_since(since_ms);
    REQUIRE(
        store_->put(keys::status_key(v1::OBJECT_KIND_POD, "default", name), st.SerializeAsString())
            .ok());
  }

  void bind(const std::string& name, const std::string& node) {
    for (auto& p : pods()) {
      if (p.name != name) continue;
      p.obj["spec"]["nodeName"] = node;
      write_pod(p.obj);
    }
  }

  void node_reachable(const std::string& node, bool reachable, int64_t since_ms = 0) {
    v1::StoredStatus st;
    st.set_generation(1);
    st.set_unreachable(!reachable);
    st.set_unreachable_since(since_ms);
    auto* c = st.mutable_node()->add_conditions();
    c->set_type(v1::NODE_CONDITION_READY);
    c->set_status(reachable ? v1::CONDITION_STATUS_TRUE : v1::CONDITION_STATUS_UNKNOWN);
    REQUIRE(
        store_->put(keys::status_key(v1::OBJECT_KIND_NODE, "", node), st.SerializeAsString()).ok());
  }

  json rs_status(const std::string& name) {
    auto rs = get_json(std::string(kReplicaSetsPrefix) + "default/" + name);
    if (!rs || !rs->contains("status")) return json::object();
    return (*rs)["status"];
  }

  // Lets the controllers act on what the clock now says.
  void advance(std::chrono::milliseconds by) {
    clock_.advance(by);
    controllers_->wake();
  }

  test::TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<WorkloadControllers> controllers_;
};

TEST_CASE_METHOD(WorkloadFixture,
                 "a ReplicaSet creates its replicas as owned pods and scales both ways",
                 "[controllers][workloads][replicaset]") {
  start();
  put_rs(replicaset("web", 3));
  REQUIRE(eventually([&] { return live_owned("uid-web") == 3; }));
  for (const auto& p : pods()) {
    CHECK(p.controller);
    CHECK(p.name.starts_with("web-"));
    CHECK(p.labels.at("app") == "web");
    CHECK(p.obj["metadata"]["ownerReferences"][0]["kind"] == "ReplicaSet");
    CHECK(p.obj["spec"]["containers"][0]["image"] == "nginx:1.25");
  }
  CHECK(eventually([&] {
    json s = rs_status("web");
    return s.value("replicas", -1) == 3 && s.value("readyReplicas", -1) == 0 &&
           s.value("observedGeneration", -1) == 1;
  }));
  // The edge reports two of them ready: status follows.
  auto ps = pods();
  bind(ps[0].name, "n1");
  bind(ps[1].name, "n2");
  report_ready(ps[0].name, clock_.unix_ms());
  report_ready(ps[1].name, clock_.unix_ms());
  CHECK(eventually([&] {
    json s = rs_status("web");
    return s.value("readyReplicas", -1) == 2 && s.value("availableReplicas", -1) == 2;
  }));

  json rs = replicaset("web", 1);
  rs["metadata"]["generation"] = 2;
  put_rs(rs);
  // Scale-down removes the unbound pod first (at once), then a bound one (gracefully: the edge
  // stops it, then the hub removes it).
  REQUIRE(eventually([&] { return live_owned("uid-web") == 1; }));
  CHECK(count([&](const PodSeen& p) { return p.name == ps[2].name; }) == 0);
  CHECK(count([&](const PodSeen& p) { return p.terminating; }) == 1);
  CHECK(eventually([&] {
    json s = rs_status("web");
    return s.value("replicas", -1) == 1 && s.value("observedGeneration", -1) == 2;
  }));

  rs["spec"]["replicas"] = 4;
  put_rs(rs);
  CHECK(eventually([&] { return live_owned("uid-web") == 4; }));
  // Never more than asked, however many events come by.
  CHECK(eventually([&] { return controllers_->idle(); }));
  CHECK(live_owned("uid-web") == 4);
}

TEST_CASE_METHOD(WorkloadFixture,
                 "a ReplicaSet adopts matching orphans and releases pods that "
                 "stop matching",
                 "[controllers][workloads][replicaset]") {
  put_pod("stray", {{"app", "web"}}, "n1");
  put_pod("other", {{"app", "db"}});
  start();
  put_rs(replicaset("web", 2));
  REQUIRE(eventually([&] { return live_owned("uid-web") == 2; }));
  // The orphan was adopted (one pod created, not two), the non-matching pod left alone.
  CHECK(count([](const PodSeen& p) { return p.name == "stray" && p.controller; }) == 1);
  CHECK(count([](const PodSeen& p) { return p.name == "other" && p.owner_uid.empty(); }) == 1);
  CHECK(pods().size() == 3);

  // Relabel one owned pod: it is released (ownerReference removed) and replaced.
  for (auto p : pods()) {
    if (p.name != "stray") continue;
    p.obj["metadata"]["labels"]["app"] = "debug";
    write_pod(p.obj);
  }
  CHECK(eventually([&] {
    return count([](const PodSeen& p) { return p.name == "stray" && p.owner_uid.empty(); }) == 1 &&
           live_owned("uid-web") == 2;
  }));
}

TEST_CASE_METHOD(WorkloadFixture,
                 "a replica on an unreachable node is kept and counted, never replaced",
                 "[controllers][workloads][replicaset][edge]") {
  start();
  put_rs(replicaset("web", 2));
  REQUIRE(eventually([&] { return live_owned("uid-web") == 2; }));
  auto ps = pods();
  bind(ps[0].name, "n1");
  bind(ps[1].name, "n2");
  report_ready(ps[0].name, clock_.unix_ms());
  report_ready(ps[1].name, clock_.unix_ms());
  node_reachable("n1", true);
  node_reachable("n2", false, clock_.unix_ms());
  CHECK(eventually([&] {
    json s = rs_status("web");
    const json* c = nullptr;
    if (s.contains("conditions"))
      for (const auto& x : s["conditions"])
        if (x["type"] == "Reachable") c = &x;
    return s.value("unreachableReplicas", -1) == 1 && s.value("readyReplicas", -1) == 2 &&
           s.value("availableReplicas", -1) == 2 && c && (*c)["status"] == "False" &&
           (*c)["message"].get<std::string>().starts_with("1 of 2 replicas");
  }));
  // A day later: still the same two pods, none deleted.
  advance(24h);
  CHECK(eventually([&] { return controllers_->idle(); }));
  CHECK(pods().size() == 2);
  CHECK(count([](const PodSeen& p) { return p.terminating; }) == 0);
  // Scale-down takes the reachable replica, whose deletion takes effect now.
  json rs = replicaset("web", 1);
  put_rs(rs);
  CHECK(eventually([&] {
    return count([&](const PodSeen& p) { return p.terminating && p.node == "n1"; }) == 1;
  }));
  CHECK(count([](const PodSeen& p) { return p.node == "n2" && !p.terminating; }) == 1);
  // The node comes back: the condition says so.
  node_reachable("n2", true);
  CHECK(eventually([&] {
    json s = rs_status("web");
    return s.value("unreachableReplicas", -1) == 0 && s["conditions"][0]["status"] == "True";
  }));
}

TEST_CASE_METHOD(WorkloadFixture,
                 "with replace-unreachable-after, a replica is replaced once after the delay",
                 "[controllers][workloads][replicaset][edge]") {
  start();
  put_rs(replicaset("web", 2, {{"annotations", {{kReplaceUnreachableAfter, "300"}}}}));
  REQUIRE(eventually([&] { return live_owned("uid-web") == 2; }));
  auto ps = pods();
  bind(ps[0].name, "n1");
  bind(ps[1].name, "n2");
  node_reachable("n1", true);
  node_reachable("n2", false, clock_.unix_ms());
  advance(299s);
  CHECK(eventually([&] { return rs_status("web").value("unreachableReplicas", -1) == 1; }));
  CHECK(pods().size() == 2);
  advance(1s);
  // Given up: deleted gracefully (it stops when n2 returns) and replaced.
  REQUIRE(eventually([&] {
    return count([&](const PodSeen& p) { return p.name == ps[1].name && p.terminating; }) == 1 &&
           live_owned("uid-web") == 2;
  }));
  // The replacement, unbound or bound, is the only extra pod however long n2 stays away.
  advance(1h);
  CHECK(eventually([&] { return controllers_->idle(); }));
  CHECK(pods().size() == 3);
}

TEST_CASE_METHOD(WorkloadFixture,
                 "pods stuck terminating on an offline node make one replacement, not more",
                 "[controllers][workloads][replicaset][edge]") {
  start();
  put_rs(replicaset("web", 1));
  REQUIRE(eventually([&] { return live_owned("uid-web") == 1; }));
  auto ps = pods();
  bind(ps[0].name, "n1");
  node_reachable("n1", false, clock_.unix_ms());
  // The user deletes the pod on the offline node: it stays Terminating until n1 returns.
  for (auto p : pods()) {
    p.obj["metadata"]["deletionTimestamp"] = "2026-12-02T10:00:30Z";
    write_pod(p.obj);
  }
  REQUIRE(eventually([&] { return live_owned("uid-web") == 1 && pods().size() == 2; }));
  for (int i = 0; i < 5; ++i) advance(10min);
  CHECK(eventually([&] { return controllers_->idle(); }));
  CHECK(pods().size() == 2);
  CHECK(eventually([&] { return rs_status("web").value("terminatingReplicas", -1) == 1; }));
}

TEST_CASE_METHOD(WorkloadFixture, "deleting a ReplicaSet collects its pods (background)",
                 "[controllers][workloads][gc]") {
  start();
  put_rs(replicaset("web", 2));
  REQUIRE(eventually([&] { return live_owned("uid-web") == 2; }));
  auto ps = pods();
  bind(ps[0].name, "n1");  // bound: deleted gracefully, the edge stops it
  REQUIRE(store_->remove(std::string(kReplicaSetsPrefix) + "default/web").ok());
  CHECK(eventually([&] {
    auto now = pods();
    return now.size() == 1 && now[0].name == ps[0].name && now[0].terminating;
  }));
}

TEST_CASE_METHOD(WorkloadFixture,
                 "orphan propagation keeps the pods and removes only their ownerReference",
                 "[controllers][workloads][gc]") {
  start();
  put_rs(replicaset("web", 2));
  REQUIRE(eventually([&] { return live_owned("uid-web") == 2; }));
  json rs = *get_json(std::string(kReplicaSetsPrefix) + "default/web");
  rs["metadata"]["deletionTimestamp"] = "2026-12-02T11:00:00Z";
  rs["metadata"]["finalizers"] = {"orphan"};
  put_json(std::string(kReplicaSetsPrefix) + "default/web", rs);
  CHECK(eventually([&] { return !get_json(std::string(kReplicaSetsPrefix) + "default/web"); }));
  CHECK(eventually([&] {
    return count([](const PodSeen& p) { return p.owner_uid.empty() && !p.terminating; }) == 2;
  }));
}

TEST_CASE_METHOD(WorkloadFixture, "foreground propagation removes the owner after its pods",
                 "[controllers][workloads][gc]") {
  start();
  put_rs(replicaset("web", 2));
  REQUIRE(eventually([&] { return live_owned("uid-web") == 2; }));
  auto ps = pods();
  bind(ps[0].name, "n1");
  REQUIRE(eventually([&] { return count([](const PodSeen& p) { return p.node == "n1"; }) == 1; }));
  json rs = *get_json(std::string(kReplicaSetsPrefix) + "default/web");
  rs["metadata"]["deletionTimestamp"] = "2026-12-02T11:00:00Z";
  rs["metadata"]["finalizers"] = {"foregroundDeletion"};
  put_json(std::string(kReplicaSetsPrefix) + "default/web", rs);
  // The unbound pod goes at once, the bound one is terminating: the owner waits for it.
  REQUIRE(eventually([&] {
    auto now = pods();
    return now.size() == 1 && now[0].terminating;
  }));
  CHECK(get_json(std::string(kReplicaSetsPrefix) + "default/web"));
  // The edge confirms (the hub removes the pod): the owner goes.
  REQUIRE(store_->remove(keys::object_key(v1::OBJECT_KIND_POD, "default", ps[0].name)).ok());
  CHECK(eventually([&] { return !get_json(std::string(kReplicaSetsPrefix) + "default/web"); }));
}

}  // namespace
}  // namespace gantry::cloud::controllers
