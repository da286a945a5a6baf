// The workload controllers against a real RocksStore, with an injected clock: what a user sees in
// the store (pods, their owners, the status kubectl prints) after writing a workload, and what
// happens when nodes become unreachable.
#include "cloudcore/controllers/workloads.h"

#include <catch2/catch.hpp>
#include <ctime>
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

  void put_node(const std::string& name, std::map<std::string, std::string> labels,
                json taints = json::array()) {
    json node = {{"kind", "Node"},
                 {"apiVersion", "v1"},
                 {"metadata", {{"name", name}, {"uid", "uid-" + name}, {"labels", labels}}},
                 {"spec", {{"taints", taints}}}};
    auto stored = decode_object(v1::OBJECT_KIND_NODE, node.dump());
    REQUIRE(stored.ok());
    REQUIRE(
        store_->put(keys::object_key(v1::OBJECT_KIND_NODE, "", name), stored->SerializeAsString())
            .ok());
  }

  json deployment(const std::string& name, int replicas, const std::string& image) {
    return {{"apiVersion", "apps/v1"},
            {"kind", "Deployment"},
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
                {"spec", {{"containers", {{{"name", "main"}, {"image", image}}}}}}}}}}};
  }
  std::string deploy_key(const std::string& name) {
    return std::string(kDeploymentsPrefix) + "default/" + name;
  }
  // Writes a spec change as the API would: generation + 1.
  void update_deployment(const std::string& name, const std::function<void(json&)>& edit) {
    json d = *get_json(deploy_key(name));
    edit(d);
    d["metadata"]["generation"] = d["metadata"]["generation"].get<int>() + 1;
    put_json(deploy_key(name), d);
  }
  json deploy_status(const std::string& name) {
    auto d = get_json(deploy_key(name));
    return d && d->contains("status") ? (*d)["status"] : json::object();
  }
  std::string condition(const json& status, const std::string& type, const char* field) {
    if (!status.contains("conditions")) return "";
    for (const auto& c : status["conditions"])
      if (c["type"] == type) return c.value(field, "");
    return "";
  }
  std::vector<json> replicasets() {
    ListOptions lo;
    lo.prefix = std::string(kReplicaSetsPrefix);
    auto list = store_->list(lo);
    REQUIRE(list.ok());
    std::vector<json> out;
    for (const auto& kv : list->items) {
      v1::StoredObject so;
      REQUIRE(so.ParseFromString(kv.value));
      out.push_back(json::parse(so.json()));
    }
    return out;
  }
  // Plays the scheduler, the edge and the hub once: unbound pods are bound (round robin over
  // `nodes`), pods without status report Running+Ready, terminating pods on reachable nodes are
  // removed (the node confirmed they stopped).
  void settle(const std::vector<std::string>& nodes = {"n1", "n2", "n3"}) {
    size_t i = 0;
    for (auto& p : pods()) {
      std::string skey = keys::status_key(v1::OBJECT_KIND_POD, "default", p.name);
      if (p.terminating) {
        if (!offline_.count(p.node)) {
          std::vector<Op> ops = {
              Op::remove(keys::object_key(v1::OBJECT_KIND_POD, "default", p.name))};
          auto st = store_->get(skey);
          if (st.ok() && *st) ops.push_back(Op::remove(skey));
          (void)store_->txn(std::move(ops));
        }
        continue;
      }
      if (p.node.empty()) {
        bind(p.name, nodes[i++ % nodes.size()]);
        continue;
      }
      auto st = store_->get(skey);
      if (st.ok() && !*st && !offline_.count(p.node)) report_ready(p.name, clock_.unix_ms());
    }
  }
  size_t active_pods() {
    return count([](const PodSeen& p) { return !p.terminating; });
  }
  std::set<std::string> offline_;

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

TEST_CASE_METHOD(WorkloadFixture,
                 "a Deployment rolls out a new template within maxSurge, keeps history and undoes",
                 "[controllers][workloads][deployment]") {
  start();
  put_json(deploy_key("web"), deployment("web", 4, "nginx:1.25"));
  REQUIRE(eventually([&] {
    settle();
    json s = deploy_status("web");
    return s.value("availableReplicas", -1) == 4 && s.value("updatedReplicas", -1) == 4 &&
           condition(s, "Progressing", "reason") == "NewReplicaSetAvailable" &&
           condition(s, "Available", "status") == "True";
  }));
  auto sets = replicasets();
  REQUIRE(sets.size() == 1);
  std::string first = sets[0]["metadata"]["name"];
  std::string hash = sets[0]["metadata"]["labels"]["pod-template-hash"];
  CHECK(first == "web-" + hash);
  CHECK(sets[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1");
  CHECK(sets[0]["spec"]["selector"]["matchLabels"]["pod-template-hash"] == hash);
  CHECK(sets[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment");
  CHECK((*get_json(deploy_key(
            "web")))["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1");

  // kubectl set image: maxSurge 25% of 4 = 1, maxUnavailable 25% = 1.
  update_deployment("web", [](json& d) {
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26";
  });
  size_t most = 0;
  REQUIRE(eventually([&] {
    most = std::max(most, active_pods());
    settle();
    json s = deploy_status("web");
    return s.value("observedGeneration", -1) == 2 && s.value("updatedReplicas", -1) == 4 &&
           s.value("replicas", -1) == 4 && s.value("availableReplicas", -1) == 4;
  }));
  CHECK(most <= 5);
  for (const auto& p : pods())
    if (!p.terminating) CHECK(p.obj["spec"]["containers"][0]["image"] == "nginx:1.26");
  sets = replicasets();
  REQUIRE(sets.size() == 2);
  for (const auto& rs : sets) {
    if (rs["metadata"]["name"] == first) {
      CHECK(rs["spec"]["replicas"] == 0);
    } else {
      CHECK(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2");
    }
  }

  // kubectl rollout undo: the old template comes back; its ReplicaSet is reused as revision 3.
  update_deployment("web", [](json& d) {
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.25";
  });
  REQUIRE(eventually([&] {
    settle();
    json s = deploy_status("web");
    return s.value("observedGeneration", -1) == 3 && s.value("updatedReplicas", -1) == 4 &&
           s.value("replicas", -1) == 4 && s.value("availableReplicas", -1) == 4;
  }));
  sets = replicasets();
  CHECK(sets.size() == 2);
  for (const auto& rs : sets)
    if (rs["metadata"]["name"] == first) {
      CHECK(rs["spec"]["replicas"] == 4);
      CHECK(rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3");
    }
}

TEST_CASE_METHOD(WorkloadFixture, "a rollout goes on when a node is unreachable mid-way",
                 "[controllers][workloads][deployment][edge]") {
  start();
  put_json(deploy_key("web"), deployment("web", 3, "nginx:1.25"));
  REQUIRE(eventually([&] {
    settle();
    return deploy_status("web").value("availableReplicas", -1) == 3;
  }));
  // n1 goes silent; its replica keeps counting as last reported.
  offline_.insert("n1");
  node_reachable("n1", false, clock_.unix_ms());
  REQUIRE(eventually([&] {
    json s = deploy_status("web");
    return s.value("unreachableReplicas", -1) == 1 &&
           condition(s, "Reachable", "status") == "False";
  }));
  update_deployment("web", [](json& d) {
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26";
  });
  size_t most = 0;
  REQUIRE(eventually([&] {
    most = std::max(most, active_pods());
    settle({"n2", "n3"});
    json s = deploy_status("web");
    return s.value("observedGeneration", -1) == 2 && s.value("updatedReplicas", -1) == 3 &&
           s.value("replicas", -1) == 3 && s.value("availableReplicas", -1) == 3;
  }));
  CHECK(most <= 4);
  // The old replica on n1 is retired gracefully: it stops when n1 returns, nothing else moved.
  CHECK(count([](const PodSeen& p) { return p.node == "n1" && p.terminating; }) == 1);
  CHECK(count([](const PodSeen& p) { return !p.terminating; }) == 3);
}

TEST_CASE_METHOD(WorkloadFixture,
                 "a stuck rollout reports ProgressDeadlineExceeded and paused holds",
                 "[controllers][workloads][deployment]") {
  start();
  json d = deployment("web", 2, "nginx:1.25");
  d["spec"]["progressDeadlineSeconds"] = 60;
  put_json(deploy_key("web"), d);
  // Nothing ever becomes ready; the last progress (both pods counted) is at the current time.
  REQUIRE(eventually([&] {
    return active_pods() == 2 && deploy_status("web").value("replicas", -1) == 2 &&
           controllers_->idle();
  }));
  advance(30s);
  CHECK(eventually([&] {
    return condition(deploy_status("web"), "Progressing", "reason") == "NewReplicaSetCreated" ||
           condition(deploy_status("web"), "Progressing", "reason") == "ReplicaSetUpdated";
  }));
  advance(31s);
  CHECK(eventually([&] {
    json s = deploy_status("web");
    return condition(s, "Progressing", "reason") == "ProgressDeadlineExceeded" &&
           condition(s, "Progressing", "status") == "False";
  }));
  // Paused: a template change makes no new ReplicaSet.
  update_deployment("web", [](json& d) {
    d["spec"]["paused"] = true;
    d["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.26";
  });
  CHECK(eventually([&] {
    return condition(deploy_status("web"), "Progressing", "reason") == "DeploymentPaused";
  }));
  CHECK(replicasets().size() == 1);
  update_deployment("web", [](json& d) { d["spec"]["paused"] = false; });
  CHECK(eventually([&] { return replicasets().size() == 2; }));
}

TEST_CASE_METHOD(WorkloadFixture, "Recreate scales the old pods away before the new ones start",
                 "[controllers][workloads][deployment]") {
  start();
  json d = deployment("db", 2, "mysql:8.0");
  d["spec"]["strategy"] = {{"type", "Recreate"}};
  put_json(deploy_key("db"), d);
  REQUIRE(eventually([&] {
    settle();
    return deploy_status("db").value("availableReplicas", -1) == 2;
  }));
  update_deployment(
      "db", [](json& d) { d["spec"]["template"]["spec"]["containers"][0]["image"] = "mysql:8.4"; });
  bool mixed = false;
  REQUIRE(eventually([&] {
    std::set<std::string> images;
    for (const auto& p : pods())
      if (!p.terminating) images.insert(p.obj["spec"]["containers"][0]["image"]);
    if (images.size() > 1) mixed = true;
    settle();
    json s = deploy_status("db");
    return s.value("updatedReplicas", -1) == 2 && s.value("availableReplicas", -1) == 2 &&
           s.value("replicas", -1) == 2;
  }));
  CHECK_FALSE(mixed);
}

TEST_CASE_METHOD(WorkloadFixture, "revisionHistoryLimit keeps that many old ReplicaSets",
                 "[controllers][workloads][deployment]") {
  start();
  json d = deployment("web", 1, "app:1");
  d["spec"]["revisionHistoryLimit"] = 1;
  put_json(deploy_key("web"), d);
  for (int v = 2; v <= 4; ++v) {
    REQUIRE(eventually([&] {
      settle();
      json s = deploy_status("web");
      return s.value("updatedReplicas", -1) == 1 && s.value("replicas", -1) == 1 &&
             s.value("availableReplicas", -1) == 1 && s.value("observedGeneration", -1) == v - 1;
    }));
    update_deployment("web", [v](json& d) {
      d["spec"]["template"]["spec"]["containers"][0]["image"] = "app:" + std::to_string(v);
    });
  }
  CHECK(eventually([&] {
    settle();
    return replicasets().size() == 2 && deploy_status("web").value("updatedReplicas", -1) == 1 &&
           deploy_status("web").value("observedGeneration", -1) == 4;
  }));
}

json daemonset(const std::string& name, std::map<std::string, std::string> selector) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "DaemonSet"},
          {"metadata",
           {{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name}, {"generation", 1}}},
          {"spec",
           {{"selector", {{"matchLabels", {{"app", name}}}}},
            {"template",
             {{"metadata", {{"labels", {{"app", name}}}}},
              {"spec",
               {{"nodeSelector", selector},
                {"containers", {{{"name", "gw"}, {"image", "gateway:1"}}}}}}}}}}};
}

TEST_CASE_METHOD(WorkloadFixture,
                 "a DaemonSet follows node labels: labelled or joining nodes get the pod, "
                 "unlabelled ones lose it",
                 "[controllers][workloads][daemonset]") {
  put_node("n1", {{"role", "toll"}});
  put_node("n2", {{"role", "office"}});
  put_node("n3", {{"role", "toll"}},
           json::array({{{"key", "dedicated"}, {"effect", "NoSchedule"}}}));
  start();
  std::string key = std::string(kDaemonSetsPrefix) + "default/gw";
  put_json(key, daemonset("gw", {{"role", "toll"}}));
  REQUIRE(eventually([&] {
    return count([](const PodSeen& p) { return p.node == "n1" && !p.terminating; }) == 1 &&
           pods().size() == 1;  // n3's taint is not tolerated
  }));
  put_node("n2", {{"role", "toll"}});  // labelled
  put_node("n4", {{"role", "toll"}});  // joins
  REQUIRE(eventually([&] { return active_pods() == 3; }));
  put_node("n1", {{"role", "office"}});  // no longer matches
  REQUIRE(eventually([&] {
    return count([](const PodSeen& p) { return p.node == "n1" && p.terminating; }) == 1;
  }));
  CHECK(eventually([&] {
    settle();
    auto ds = get_json(key);
    json s = (*ds)["status"];
    return s.value("desiredNumberScheduled", -1) == 2 && s.value("numberAvailable", -1) == 2 &&
           s.value("updatedNumberScheduled", -1) == 2 && pods().size() == 2;
  }));
  // A ControllerRevision records the template.
  ListOptions lo;
  lo.prefix = std::string(kControllerRevisionsPrefix);
  CHECK(store_->list(lo)->items.size() == 1);
}

TEST_CASE_METHOD(WorkloadFixture,
                 "a DaemonSet never runs two copies on a node, and updates reachable nodes only",
                 "[controllers][workloads][daemonset][edge]") {
  put_node("n1", {{"role", "toll"}});
  put_node("n2", {{"role", "toll"}});
  put_node("n3", {{"role", "toll"}});
  start();
  std::string key = std::string(kDaemonSetsPrefix) + "default/gw";
  put_json(key, daemonset("gw", {{"role", "toll"}}));
  REQUIRE(eventually([&] {
    settle();
    auto ds = get_json(key);
    return ds->contains("status") && (*ds)["status"].value("numberAvailable", -1) == 3;
  }));
  // n3 goes offline; its pod is deleted by the user and stays Terminating there.
  offline_.insert("n3");
  node_reachable("n3", false, clock_.unix_ms());
  for (auto p : pods())
    if (p.node == "n3") {
      p.obj["metadata"]["deletionTimestamp"] = "2026-12-02T10:00:30Z";
      write_pod(p.obj);
    }
  // A new template: n1 and n2 are updated, n3 waits for its node.
  json ds = *get_json(key);
  ds["spec"]["template"]["spec"]["containers"][0]["image"] = "gateway:2";
  ds["metadata"]["generation"] = 2;
  put_json(key, ds);
  REQUIRE(eventually([&] {
    settle();
    auto d = get_json(key);
    json s = (*d)["status"];
    return s.value("observedGeneration", -1) == 2 && s.value("updatedNumberScheduled", -1) == 2 &&
           s.value("numberUnreachable", -1) == 1;
  }));
  advance(1h);
  CHECK(eventually([&] { return controllers_->idle(); }));
  CHECK(count([](const PodSeen& p) { return p.node == "n3"; }) == 1);  // no second copy
  CHECK(count([](const PodSeen& p) { return p.node == "n1"; }) == 1);
  // n3 returns: its old pod stops (the hub removes it) and the new one follows.
  offline_.erase("n3");
  node_reachable("n3", true);
  CHECK(eventually([&] {
    settle();
    auto d = get_json(key);
    json s = (*d)["status"];
    return s.value("updatedNumberScheduled", -1) == 3 && s.value("numberAvailable", -1) == 3;
  }));
  ListOptions lo;
  lo.prefix = std::string(kControllerRevisionsPrefix);
  CHECK(store_->list(lo)->items.size() == 2);
}

TEST_CASE_METHOD(WorkloadFixture,
                 "a DaemonSet image update is made in place, one node at a time, and any other "
                 "change replaces the pods",
                 "[controllers][workloads][daemonset][inplace]") {
  for (const char* n : {"n1", "n2", "n3"}) put_node(n, {{"role", "toll"}});
  start();
  std::string key = std::string(kDaemonSetsPrefix) + "default/gw";
  put_json(key, daemonset("gw", {{"role", "toll"}}));
  // The edge reports the image each container runs.
  auto report = [&](const std::string& name, const std::string& image) {
    v1::StoredStatus st;
    st.set_generation(1);
    st.mutable_pod()->set_phase(v1::POD_PHASE_RUNNING);
    st.mutable_pod()->set_ready(true);
    st.mutable_pod()->set_ready_since(clock_.unix_ms());
    auto* c = st.mutable_pod()->add_containers();
    c->set_name("gw");
    c->set_image(image);
    REQUIRE(
        store_->put(keys::status_key(v1::OBJECT_KIND_POD, "default", name), st.SerializeAsString())
            .ok());
  };
  auto image_of = [](const PodSeen& p) {
    return p.obj["spec"]["containers"][0]["image"].get<std::string>();
  };
  REQUIRE(eventually([&] { return active_pods() == 3; }));
  std::map<std::string, std::string> uids;  // name -> uid
  for (const auto& p : pods()) {
    report(p.name, "gateway:1");
    uids[p.name] = p.obj["metadata"]["uid"];
  }
  REQUIRE(eventually([&] {
    auto ds = get_json(key);
    return ds->contains("status") && (*ds)["status"].value("numberAvailable", -1) == 3;
  }));

  json ds = *get_json(key);
  ds["spec"]["template"]["spec"]["containers"][0]["image"] = "gateway:2";
  ds["metadata"]["generation"] = 2;
  put_json(key, ds);
  // One node at a time (maxUnavailable 1): the next pod is updated once the edge reports the
  // previous one running the new image.
  for (size_t done = 1; done <= 3; ++done) {
    REQUIRE(eventually([&] {
      return count([&](const PodSeen& p) { return image_of(p) == "gateway:2"; }) == done;
    }));
    REQUIRE(eventually([&] { return controllers_->idle(); }));
    CHECK(count([&](const PodSeen& p) { return image_of(p) == "gateway:2"; }) == done);
    for (const auto& p : pods()) {
      if (image_of(p) != "gateway:2") continue;
      CHECK(p.labels.count("controller-revision-hash") == 1);
      CHECK(p.obj["metadata"]["annotations"].contains("gantry.io/in-place-updated"));
      report(p.name, "gateway:2");
    }
  }
  // Same pods: names, uids and nodes kept; nothing deleted.
  auto now = pods();
  REQUIRE(now.size() == 3);
  for (const auto& p : now) {
    CHECK(uids.count(p.name) == 1);
    CHECK(uids[p.name] == p.obj["metadata"]["uid"]);
    CHECK_FALSE(p.terminating);
  }
  CHECK(controllers_->stats().pods_updated_in_place == 3);
  CHECK(controllers_->stats().pods_deleted == 0);
  REQUIRE(eventually([&] {
    json st = (*get_json(key))["status"];
    return st.value("updatedNumberScheduled", -1) == 3 && st.value("numberAvailable", -1) == 3;
  }));

  // A change beyond images (an env var): replaced as Kubernetes does.
  ds = *get_json(key);
  ds["spec"]["template"]["spec"]["containers"][0]["env"] = {{{"name", "A"}, {"value", "1"}}};
  ds["metadata"]["generation"] = 3;
  put_json(key, ds);
  REQUIRE(eventually([&] { return count([](const PodSeen& p) { return p.terminating; }) == 1; }));
  CHECK(controllers_->stats().pods_updated_in_place == 3);
}

TEST_CASE_METHOD(WorkloadFixture,
                 "a DaemonSet that opts out of in-place updates replaces its pods on an image "
                 "change",
                 "[controllers][workloads][daemonset][inplace]") {
  put_node("n1", {{"role", "toll"}});
  start();
  std::string key = std::string(kDaemonSetsPrefix) + "default/gw";
  json ds = daemonset("gw", {{"role", "toll"}});
  ds["metadata"]["annotations"]["gantry.io/update-in-place"] = "false";
  put_json(key, ds);
  REQUIRE(eventually([&] {
    settle({"n1"});
    auto d = get_json(key);
    return d->contains("status") && (*d)["status"].value("numberAvailable", -1) == 1;
  }));
  ds = *get_json(key);
  ds["spec"]["template"]["spec"]["containers"][0]["image"] = "gateway:2";
  ds["metadata"]["generation"] = 2;
  put_json(key, ds);
  REQUIRE(eventually([&] { return count([](const PodSeen& p) { return p.terminating; }) == 1; }));
  CHECK(controllers_->stats().pods_updated_in_place == 0);
}

// ---------------------------------------------------------------------------------------------
// batch/v1 Job

json job(const std::string& name, json spec_extra = json::object()) {
  json j = {
      {"apiVersion", "batch/v1"},
      {"kind", "Job"},
      {"metadata",
       {{"name", name},
        {"namespace", "default"},
        {"uid", "uid-" + name},
        {"generation", 1},
        {"creationTimestamp", "2026-12-02T10:00:00Z"}}},
      {"spec",
       {{"parallelism", 1},
        {"completions", 1},
        {"backoffLimit", 6},
        {"selector", {{"matchLabels", {{"batch.kubernetes.io/controller-uid", "uid-" + name}}}}},
        {"template",
         {{"metadata", {{"labels", {{"batch.kubernetes.io/controller-uid", "uid-" + name}}}}},
          {"spec",
           {{"restartPolicy", "Never"},
            {"containers", {{{"name", "main"}, {"image", "busybox:1.36"}}}}}}}}}}};
  j["spec"].update(spec_extra);
  return j;
}

class JobFixture : public WorkloadFixture {
 public:
  std::string job_key(const std::string& name) {
    return std::string(kJobsPrefix) + "default/" + name;
  }
  void put_job(const json& j) { put_json(job_key(j["metadata"]["name"]), j); }
  json job_status(const std::string& name) {
    auto j = get_json(job_key(name));
    return j && j->contains("status") ? (*j)["status"] : json::object();
  }
  // The edge reports the pod in `phase` (Running: ready).
  void report_phase(const std::string& name, v1::PodPhase phase) {
    v1::StoredStatus st;
    st.set_generation(1);
    st.mutable_pod()->set_phase(phase);
    st.mutable_pod()->set_ready(phase == v1::POD_PHASE_RUNNING);
    REQUIRE(
        store_->put(keys::status_key(v1::OBJECT_KIND_POD, "default", name), st.SerializeAsString())
            .ok());
  }
  std::vector<PodSeen> job_pods(const std::string& name, bool live_only) {
    std::vector<PodSeen> out;
    for (auto& p : pods())
      if (p.owner_uid == "uid-" + name && (!live_only || !p.terminating)) out.push_back(p);
    return out;
  }
  // Pods of the Job that have no phase reported yet (the ones still to run).
  std::vector<std::string> unreported(const std::string& name) {
    std::vector<std::string> out;
    for (auto& p : job_pods(name, true)) {
      auto st = store_->get(keys::status_key(v1::OBJECT_KIND_POD, "default", p.name));
      if (st.ok() && !*st) out.push_back(p.name);
    }
    return out;
  }
  bool settled() {
    return eventually([&] { return controllers_->idle(); });
  }
};

TEST_CASE_METHOD(JobFixture,
                 "a Job runs parallelism pods at a time until completions have succeeded",
                 "[controllers][workloads][job]") {
  auto row = GENERATE(table<int, int>({{1, 1}, {5, 2}, {3, 3}, {2, 4}}));
  const int completions = std::get<0>(row), parallelism = std::get<1>(row);
  INFO(completions << " completions, parallelism " << parallelism);
  start();
  put_job(job("batch", {{"completions", completions}, {"parallelism", parallelism}}));
  int succeeded = 0;
  while (succeeded < completions) {
    int want = std::min(parallelism, completions - succeeded);
    REQUIRE(eventually([&] { return static_cast<int>(unreported("batch").size()) == want; }));
    REQUIRE(settled());
    // Never more running than parallelism, nor than the completions still needed.
    CHECK(static_cast<int>(unreported("batch").size()) == want);
    CHECK(eventually([&] { return job_status("batch").value("active", 0) == want; }));
    report_phase(unreported("batch").front(), v1::POD_PHASE_SUCCEEDED);
    ++succeeded;
    CHECK(eventually([&] { return job_status("batch").value("succeeded", 0) == succeeded; }));
  }
  REQUIRE(
      eventually([&] { return !condition(job_status("batch"), "Complete", "status").empty(); }));
  json s = job_status("batch");
  CHECK(condition(s, "Complete", "status") == "True");
  CHECK(s.contains("startTime"));
  CHECK(s.contains("completionTime"));
  CHECK_FALSE(s.contains("active"));
  REQUIRE(settled());
  // Exactly `completions` pods were ever made; each is the Job's (controller: true).
  auto ps = job_pods("batch", false);
  CHECK(static_cast<int>(ps.size()) == completions);
  for (const auto& p : ps) {
    CHECK(p.controller);
    CHECK(p.name.starts_with("batch-"));
    CHECK(p.obj["metadata"]["ownerReferences"][0]["kind"] == "Job");
    CHECK(p.obj["metadata"]["ownerReferences"][0]["apiVersion"] == "batch/v1");
    CHECK(p.obj["spec"]["restartPolicy"] == "Never");
  }
}

TEST_CASE_METHOD(
    JobFixture, "a failing Job replaces failed pods after a back-off and fails at its backoffLimit",
    "[controllers][workloads][job]") {
  int limit = GENERATE(0, 2);
  INFO("backoffLimit " << limit);
  start();
  put_job(job("flaky", {{"backoffLimit", limit}}));
  for (int failure = 1; failure <= limit + 1; ++failure) {
    REQUIRE(eventually([&] { return unreported("flaky").size() == 1; }));
    report_phase(unreported("flaky").front(), v1::POD_PHASE_FAILED);
    REQUIRE(eventually([&] { return job_status("flaky").value("failed", 0) == failure; }));
    if (failure == limit + 1) break;
    // Not replaced before the back-off (10 s, 20 s, ...) has passed.
    REQUIRE(settled());
    CHECK(unreported("flaky").empty());
    advance(std::chrono::seconds(10 << (failure - 1)) - 1s);
    REQUIRE(settled());
    CHECK(unreported("flaky").empty());
    advance(1s);
  }
  REQUIRE(eventually([&] { return condition(job_status("flaky"), "Failed", "status") == "True"; }));
  CHECK(condition(job_status("flaky"), "Failed", "reason") == "BackoffLimitExceeded");
  CHECK_FALSE(job_status("flaky").contains("completionTime"));
  advance(1h);
  REQUIRE(settled());
  CHECK(static_cast<int>(job_pods("flaky", false).size()) == limit + 1);  // no more attempts
}

TEST_CASE_METHOD(JobFixture,
                 "activeDeadlineSeconds fails the Job with DeadlineExceeded and stops its pods",
                 "[controllers][workloads][job]") {
  start();
  put_job(job("slow", {{"parallelism", 2}, {"completions", 4}, {"activeDeadlineSeconds", 60}}));
  REQUIRE(eventually([&] { return unreported("slow").size() == 2; }));
  for (const auto& name : unreported("slow")) {
    bind(name, "n1");
    report_phase(name, v1::POD_PHASE_RUNNING);
  }
  node_reachable("n1", true);
  REQUIRE(eventually([&] { return job_status("slow").value("ready", -1) == 2; }));
  advance(59s);
  REQUIRE(settled());
  CHECK(condition(job_status("slow"), "Failed", "status").empty());
  advance(1s);
  REQUIRE(eventually(
      [&] { return condition(job_status("slow"), "Failed", "reason") == "DeadlineExceeded"; }));
  // Its running pods are deleted (gracefully: they are bound), and none is made after.
  CHECK(eventually([&] { return job_pods("slow", true).empty(); }));
  CHECK(job_pods("slow", false).size() == 2);
}

TEST_CASE_METHOD(JobFixture,
                 "a Job pod on a node that goes Unknown mid-run is neither failed nor replaced",
                 "[controllers][workloads][job][edge]") {
  start();
  put_job(job("toll", {{"parallelism", 2}, {"completions", 2}, {"backoffLimit", 0}}));
  REQUIRE(eventually([&] { return unreported("toll").size() == 2; }));
  auto names = unreported("toll");
  bind(names[0], "n1");
  bind(names[1], "n2");
  node_reachable("n1", true);
  node_reachable("n2", true);
  report_phase(names[0], v1::POD_PHASE_RUNNING);
  report_phase(names[1], v1::POD_PHASE_RUNNING);
  REQUIRE(eventually([&] { return job_status("toll").value("ready", -1) == 2; }));
  // n2 goes silent mid-run.
  node_reachable("n2", false, clock_.unix_ms());
  REQUIRE(eventually([&] {
    json s = job_status("toll");
    return s.value("unreachable", 0) == 1 && s.value("active", 0) == 2 &&
           condition(s, "Reachable", "status") == "False";
  }));
  CHECK(condition(job_status("toll"), "Reachable", "message").starts_with("1 of 2 active pods"));
  // A day later: still active, not failed, no replacement.
  advance(24h);
  REQUIRE(settled());
  CHECK(job_pods("toll", false).size() == 2);
  CHECK(job_status("toll").value("failed", 0) == 0);
  CHECK(condition(job_status("toll"), "Failed", "status").empty());
  // The reachable pod succeeds: the one on n2 still holds the last completion.
  report_phase(names[0], v1::POD_PHASE_SUCCEEDED);
  REQUIRE(eventually([&] { return job_status("toll").value("succeeded", 0) == 1; }));
  REQUIRE(settled());
  CHECK(job_pods("toll", false).size() == 2);
  // A user deletes it while n2 is away: it may still run there, so its slot stays taken.
  for (auto p : pods())
    if (p.name == names[1]) {
      p.obj["metadata"]["deletionTimestamp"] = "2026-12-02T11:00:00Z";
      write_pod(p.obj);
    }
  REQUIRE(eventually([&] { return job_status("toll").value("terminating", 0) == 1; }));
  REQUIRE(settled());
  CHECK(job_pods("toll", false).size() == 2);
  // n2 returns: the deletion takes effect there, and the pod is replaced (TerminatingOrFailed).
  node_reachable("n2", true);
  REQUIRE(eventually([&] { return unreported("toll").size() == 1; }));
  report_phase(unreported("toll").front(), v1::POD_PHASE_SUCCEEDED);
  CHECK(eventually([&] { return condition(job_status("toll"), "Complete", "status") == "True"; }));
  CHECK(condition(job_status("toll"), "Reachable", "status") == "True");
}

TEST_CASE_METHOD(JobFixture, "a finished Job with ttlSecondsAfterFinished goes with its pods",
                 "[controllers][workloads][job]") {
  start();
  put_job(job("once", {{"ttlSecondsAfterFinished", 100}}));
  REQUIRE(eventually([&] { return unreported("once").size() == 1; }));
  report_phase(unreported("once").front(), v1::POD_PHASE_SUCCEEDED);
  REQUIRE(
      eventually([&] { return condition(job_status("once"), "Complete", "status") == "True"; }));
  advance(99s);
  REQUIRE(settled());
  CHECK(get_json(job_key("once")).has_value());
  advance(1s);
  CHECK(eventually([&] { return !get_json(job_key("once")) && job_pods("once", false).empty(); }));
}

TEST_CASE_METHOD(JobFixture, "a suspended Job makes no pods until it is resumed",
                 "[controllers][workloads][job]") {
  start();
  put_job(job("later", {{"suspend", true}}));
  REQUIRE(
      eventually([&] { return condition(job_status("later"), "Suspended", "status") == "True"; }));
  REQUIRE(settled());
  CHECK(job_pods("later", false).empty());
  json j = *get_json(job_key("later"));
  j["spec"]["suspend"] = false;
  put_job(j);
  CHECK(eventually([&] { return unreported("later").size() == 1; }));
  CHECK(
      eventually([&] { return condition(job_status("later"), "Suspended", "status") == "False"; }));
}

// ---------------------------------------------------------------------------------------------
// batch/v1 CronJob

class CronJobFixture : public JobFixture {
 public:
  json cron_job(const std::string& name, const std::string& schedule,
                json spec_extra = json::object()) {
    json j = {{"apiVersion", "batch/v1"},
              {"kind", "CronJob"},
              {"metadata",
               {{"name", name},
                {"namespace", "default"},
                {"uid", "uid-" + name},
                {"generation", 1},
                {"creationTimestamp", rfc3339(clock_.unix_ms())}}},
              {"spec",
               {{"schedule", schedule},
                {"concurrencyPolicy", "Allow"},
                {"suspend", false},
                {"successfulJobsHistoryLimit", 3},
                {"failedJobsHistoryLimit", 1},
                {"jobTemplate",
                 {{"metadata", {{"labels", {{"app", name}}}}},
                  {"spec",
                   {{"template",
                     {{"spec",
                       {{"restartPolicy", "OnFailure"},
                        {"containers", {{{"name", "main"}, {"image", "busybox:1.36"}}}}}}}}}}}}}}};
    j["spec"].update(spec_extra);
    return j;
  }
  static std::string rfc3339(int64_t unix_ms) {
    std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
  }
  std::string cron_key(const std::string& name) {
    return std::string(kCronJobsPrefix) + "default/" + name;
  }
  json cron_status(const std::string& name) {
    auto j = get_json(cron_key(name));
    return j && j->contains("status") ? (*j)["status"] : json::object();
  }
  std::vector<json> jobs_of(const std::string& cron_uid) {
    ListOptions lo;
    lo.prefix = std::string(kJobsPrefix);
    auto list = store_->list(lo);
    REQUIRE(list.ok());
    std::vector<json> out;
    for (const auto& kv : list->items) {
      v1::StoredObject so;
      REQUIRE(so.ParseFromString(kv.value));
      json j = json::parse(so.json());
      if (j["metadata"].contains("ownerReferences") &&
          j["metadata"]["ownerReferences"][0]["uid"] == cron_uid)
        out.push_back(j);
    }
    return out;
  }
  // Pods labelled with the run's job-name (any state).
  size_t pods_of_run(const std::string& job_name) {
    return count([&](const PodSeen& p) {
      auto l = p.labels.find("job-name");
      return l != p.labels.end() && l->second == job_name;
    });
  }
  // The run's pod succeeds (the Job controller makes the pod, then completes the Job).
  void finish_run(const json& job) {
    std::string name = job["metadata"]["name"];
    std::string uid = job["metadata"]["uid"];
    auto pod_of_run = [&]() -> std::string {
      for (const auto& p : pods())
        if (p.owner_uid == uid && !p.terminating) return p.name;
      return "";
    };
    REQUIRE(eventually([&] { return !pod_of_run().empty(); }));
    report_phase(pod_of_run(), v1::POD_PHASE_SUCCEEDED);
    REQUIRE(
        eventually([&] { return condition(job_status(name), "Complete", "status") == "True"; }));
  }
};

TEST_CASE_METHOD(CronJobFixture,
                 "a CronJob runs a Job at each scheduled minute and keeps its history limit",
                 "[controllers][workloads][cronjob]") {
  start();
  const int64_t t0 = clock_.unix_ms() / 1000;  // a multiple of 5 minutes
  put_json(cron_key("report"), cron_job("report", "*/5 * * * *"));
  REQUIRE(settled());
  CHECK(jobs_of("uid-report").empty());  // the creation minute itself is not a run
  for (int run = 1; run <= 5; ++run) {
    advance(5min);
    std::string name = "report-" + std::to_string((t0 + run * 300) / 60);
    REQUIRE(eventually([&] { return get_json(job_key(name)).has_value(); }));
    json job = *get_json(job_key(name));
    CHECK(job["metadata"]["ownerReferences"][0]["kind"] == "CronJob");
    CHECK(job["metadata"]["ownerReferences"][0]["controller"] == true);
    CHECK(job["metadata"]["labels"]["app"] == "report");
    CHECK(job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"] ==
          rfc3339((t0 + run * 300) * 1000));
    std::string uid = job["metadata"]["uid"];
    CHECK(job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"] == uid);
    CHECK(job["spec"]["template"]["metadata"]["labels"]["job-name"] == name);
    CHECK(job["spec"]["backoffLimit"] == 6);
    REQUIRE(eventually([&] {
      json s = cron_status("report");
      return s.contains("active") && s["active"].size() == 1 && s["active"][0]["name"] == name &&
             s.value("lastScheduleTime", "") == rfc3339((t0 + run * 300) * 1000);
    }));
    finish_run(job);
    REQUIRE(eventually([&] {
      json s = cron_status("report");
      return !s.contains("active") && s.contains("lastSuccessfulTime");
    }));
  }
  // successfulJobsHistoryLimit 3: the two oldest runs are gone, with their pods.
  REQUIRE(eventually([&] { return jobs_of("uid-report").size() == 3; }));
  CHECK(eventually([&] { return pods_of_run("report-" + std::to_string((t0 + 300) / 60)) == 0; }));
  CHECK(get_json(job_key("report-" + std::to_string((t0 + 5 * 300) / 60))).has_value());
}

TEST_CASE_METHOD(CronJobFixture,
                 "concurrencyPolicy: Allow runs alongside, Forbid skips, Replace replaces",
                 "[controllers][workloads][cronjob]") {
  std::string policy = GENERATE(as<std::string>{}, "Allow", "Forbid", "Replace");
  INFO(policy);
  start();
  const int64_t t0 = clock_.unix_ms() / 1000;
  put_json(cron_key("sync"), cron_job("sync", "*/5 * * * *", {{"concurrencyPolicy", policy}}));
  advance(5min);
  std::string first = "sync-" + std::to_string((t0 + 300) / 60);
  std::string second = "sync-" + std::to_string((t0 + 600) / 60);
  REQUIRE(eventually([&] { return get_json(job_key(first)).has_value(); }));
  REQUIRE(settled());
  advance(5min);  // the first run is still going
  if (policy == "Allow") {
    REQUIRE(eventually([&] { return jobs_of("uid-sync").size() == 2; }));
    CHECK(eventually([&] { return cron_status("sync")["active"].size() == 2; }));
  } else if (policy == "Forbid") {
    REQUIRE(settled());
    CHECK(jobs_of("uid-sync").size() == 1);
    CHECK(cron_status("sync").value("lastScheduleTime", "") == rfc3339((t0 + 300) * 1000));
  } else {
    REQUIRE(eventually([&] {
      auto js = jobs_of("uid-sync");
      return js.size() == 1 && js[0]["metadata"]["name"] == second;
    }));
    CHECK(eventually([&] { return pods_of_run(first) == 0; }));
  }
}

TEST_CASE_METHOD(CronJobFixture,
                 "a suspended CronJob runs nothing, and startingDeadlineSeconds skips a late run",
                 "[controllers][workloads][cronjob]") {
  start();
  const int64_t t0 = clock_.unix_ms() / 1000;
  put_json(cron_key("nightly"), cron_job("nightly", "*/5 * * * *", {{"suspend", true}}));
  advance(12min);
  REQUIRE(settled());
  CHECK(jobs_of("uid-nightly").empty());
  // Resumed 2 minutes after a scheduled minute, with 60 s to start: that minute is missed.
  json cj = *get_json(cron_key("nightly"));
  cj["spec"]["suspend"] = false;
  cj["spec"]["startingDeadlineSeconds"] = 60;
  put_json(cron_key("nightly"), cj);
  REQUIRE(settled());
  CHECK(jobs_of("uid-nightly").empty());
  advance(3min);
  CHECK(eventually([&] {
    auto js = jobs_of("uid-nightly");
    return js.size() == 1 &&
           js[0]["metadata"]["name"] == "nightly-" + std::to_string((t0 + 900) / 60);
  }));
}

}  // namespace
}  // namespace gantry::cloud::controllers
