// Fleet aggregates (cloudcore/api/aggregates*): the index's counts as statuses change, the
// province breakdown by a label, the paged/filtered/sorted node table, province scoping (403), the
// live watch, and the embedded dashboard files (/ui/).
#include "cloudcore/api/aggregates.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cloudcore/api/ui_server.h"
#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/store/rocks_store.h"
#include "common/base/atomic_file.h"
#include "tests/support/test_support.h"
#include "tests/unit/cloudcore/api/api_fixture.h"

namespace gantry::test {
namespace {

using cloud::api::FleetIndex;
using cloud::api::NodeQuery;
using cloud::api::NodeState;
using nlohmann::json;

std::string stored_node(const std::string& name, const std::map<std::string, std::string>& labels) {
  json node = {{"kind", "Node"},
               {"apiVersion", "v1"},
               {"metadata", {{"name", name}, {"uid", "uid-" + name}, {"labels", labels}}},
               {"spec", json::object()}};
  auto stored = cloud::decode_object(v1::OBJECT_KIND_NODE, node.dump());
  REQUIRE(stored.ok());
  return stored->SerializeAsString();
}

std::string node_status(bool ready, bool unreachable, const std::string& version = "v0.1.0") {
  v1::StoredStatus st;
  st.set_generation(1);
  st.set_changed_at(1'700'000'000'000);
  st.set_unreachable(unreachable);
  if (unreachable) st.set_unreachable_since(1'700'000'050'000);
  auto* c = st.mutable_node()->add_conditions();
  c->set_type(v1::NODE_CONDITION_READY);
  c->set_status(ready ? v1::CONDITION_STATUS_TRUE : v1::CONDITION_STATUS_FALSE);
  st.mutable_node()->mutable_node_info()->set_edgecore_version(version);
  return st.SerializeAsString();
}

std::string stored_pod(const std::string& name, const std::string& node) {
  json pod = {{"kind", "Pod"},
              {"apiVersion", "v1"},
              {"metadata", {{"name", name}, {"namespace", "default"}, {"uid", "uid-" + name}}},
              {"spec", {{"nodeName", node}, {"containers", {{{"name", "c"}, {"image", "x"}}}}}}};
  auto stored = cloud::decode_object(v1::OBJECT_KIND_POD, pod.dump());
  REQUIRE(stored.ok());
  return stored->SerializeAsString();
}

std::string pod_status(const std::string& name, v1::PodPhase phase) {
  v1::StoredStatus st;
  st.set_generation(1);
  st.set_uid("uid-" + name);
  st.set_changed_at(1'700'000'100'000);
  st.mutable_pod()->set_phase(phase);
  return st.SerializeAsString();
}

struct IndexFixture {
  TempDir dir;
  std::unique_ptr<cloud::Store> store;
  std::unique_ptr<FleetIndex> index;

  IndexFixture() {
    cloud::RocksStoreOptions o;
    o.path = (dir / "store").string();
    o.auto_compact_interval = std::chrono::milliseconds(0);
    auto s = cloud::open_rocks_store(o);
    REQUIRE(s.ok());
    store = std::move(s).value();
  }
  void start() {
    FleetIndex::Options o;
    o.publish_interval = std::chrono::milliseconds(20);
    o.heartbeat_interval = std::chrono::milliseconds(100);
    auto i = FleetIndex::start(*store, o);
    REQUIRE(i.ok());
    index = std::move(i).value();
  }
  void node(const std::string& name, const std::string& province, const std::string& road = "") {
    std::map<std::string, std::string> labels = {{"topology.gantry.io/province", province}};
    if (!road.empty()) labels["road"] = road;
    REQUIRE(store
                ->put(cloud::keys::object_key(v1::OBJECT_KIND_NODE, "", name),
                      stored_node(name, labels))
                .ok());
  }
  void status(const std::string& name, bool ready, bool unreachable = false,
              const std::string& version = "v0.1.0") {
    REQUIRE(store
                ->put(cloud::keys::status_key(v1::OBJECT_KIND_NODE, "", name),
                      node_status(ready, unreachable, version))
                .ok());
  }
  void pod(const std::string& name, const std::string& node) {
    REQUIRE(store
                ->put(cloud::keys::object_key(v1::OBJECT_KIND_POD, "default", name),
                      stored_pod(name, node))
                .ok());
  }
  void phase(const std::string& name, v1::PodPhase phase) {
    REQUIRE(store
                ->put(cloud::keys::status_key(v1::OBJECT_KIND_POD, "default", name),
                      pod_status(name, phase))
                .ok());
  }
  // Waits until the index has seen every write so far.
  void settle() {
    auto rev = store->current_revision();
    REQUIRE(eventually([&] { return index->revision() >= rev; }));
  }
};

TEST_CASE("the fleet index counts nodes by readiness and pods by phase, loaded and live",
          "[api][aggregates]") {
  IndexFixture f;
  f.node("zj-1", "zhejiang", "G60");
  f.node("zj-2", "zhejiang", "G60");
  f.node("zj-3", "zhejiang");
  f.node("js-1", "jiangsu");
  f.status("zj-1", true);
  f.status("zj-2", false, false, "v0.2.0");
  f.status("js-1", true, true);  // unreachable: Unknown
  f.pod("web", "zj-1");
  f.pod("db", "zj-1");
  f.phase("web", v1::POD_PHASE_RUNNING);
  f.start();  // loaded from the store

  auto zj = f.index->province("zhejiang");
  REQUIRE(zj);
  CHECK(zj->nodes == 3);
  CHECK(zj->ready == 1);
  CHECK(zj->not_ready == 1);
  CHECK(zj->unknown == 1);  // zj-3 never reported
  CHECK(zj->pods == 2);
  CHECK(zj->phases[0] == 1);  // db: Pending (no status)
  CHECK(zj->phases[1] == 1);  // web: Running
  CHECK(zj->versions == std::map<std::string, int64_t>{{"v0.1.0", 1}, {"v0.2.0", 1}});
  auto js = f.index->province("jiangsu");
  REQUIRE(js);
  CHECK(js->unknown == 1);
  CHECK(f.index->provinces() == std::vector<std::string>{"jiangsu", "zhejiang"});

  // Live: a node goes silent, a pod fails, a pod moves, a node leaves the province.
  f.status("zj-1", true, true);
  f.phase("db", v1::POD_PHASE_FAILED);
  f.pod("web", "js-1");
  f.settle();
  zj = f.index->province("zhejiang");
  CHECK(zj->ready == 0);
  CHECK(zj->unknown == 2);
  CHECK(zj->pods == 1);
  CHECK(zj->phases[3] == 1);
  js = f.index->province("jiangsu");
  CHECK(js->pods == 1);
  CHECK(js->phases[1] == 1);  // its status came along with it

  f.node("zj-1", "anhui");  // relabelled: its pods go with it
  REQUIRE(f.store->remove(cloud::keys::object_key(v1::OBJECT_KIND_NODE, "", "js-1")).ok());
  f.settle();
  CHECK(f.index->province("zhejiang")->nodes == 2);
  CHECK(f.index->province("anhui")->pods == 1);
  CHECK_FALSE(f.index->province("jiangsu"));
}

TEST_CASE("the fleet index loads more nodes than one store page holds", "[api][aggregates]") {
  IndexFixture f;
  std::vector<cloud::Op> ops;
  for (int i = 0; i < 5100; ++i) {
    std::string name = fmt::format("n-{:05}", i);
    ops.push_back(cloud::Op::put(cloud::keys::object_key(v1::OBJECT_KIND_NODE, "", name),
                                 stored_node(name, {{"topology.gantry.io/province", "zhejiang"}})));
  }
  REQUIRE(f.store->txn(std::move(ops)).ok());
  f.start();
  REQUIRE(f.index->province("zhejiang"));
  CHECK(f.index->province("zhejiang")->nodes == 5100);
}

TEST_CASE("the fleet index breaks a province down by a label and pages its node table",
          "[api][aggregates]") {
  IndexFixture f;
  f.start();
  for (int i = 0; i < 30; ++i) {
    std::string name = fmt::format("n-{:02}", i);
    f.node(name, "zhejiang", i % 3 == 0 ? "G60" : i % 3 == 1 ? "G92" : "");
    if (i % 5 != 0) f.status(name, i % 7 != 0);
    for (int p = 0; p < i % 4; ++p) f.pod(fmt::format("{}-p{}", name, p), name);
  }
  f.node("other", "jiangsu");
  f.settle();

  auto groups = f.index->breakdown("zhejiang", "road");
  REQUIRE(groups.size() == 3);
  CHECK(groups["G60"].nodes == 10);
  CHECK(groups["G92"].nodes == 10);
  CHECK(groups[""].nodes == 10);
  int64_t pods = 0;
  for (const auto& [v, c] : groups) pods += c.pods;
  CHECK(pods == f.index->province("zhejiang")->pods);
  CHECK(f.index->label_keys("zhejiang")["road"] == 20);

  NodeQuery q;
  q.provinces = std::set<std::string>{"zhejiang"};
  q.limit = 7;
  auto page = f.index->nodes(q);
  CHECK(page.total == 30);
  REQUIRE(page.items.size() == 7);
  CHECK(page.items[0].name == "n-00");
  q.offset = 28;
  page = f.index->nodes(q);
  REQUIRE(page.items.size() == 2);
  CHECK(page.items[1].name == "n-29");

  q.offset = 0;
  q.limit = 100;
  q.states = {NodeState::kUnknown};
  page = f.index->nodes(q);
  CHECK(page.total == 6);  // never reported: 0, 5, ..., 25
  for (const auto& r : page.items) CHECK(r.reason == "NodeStatusNeverUpdated");

  q.states.clear();
  q.sort_by = "pods";
  q.descending = true;
  page = f.index->nodes(q);
  CHECK(page.items.front().pods == 3);
  CHECK(page.items.back().pods == 0);
  q.sort_by = "state";
  q.descending = false;
  page = f.index->nodes(q);
  CHECK(page.items.front().state == NodeState::kUnknown);
  CHECK(page.items.back().state == NodeState::kReady);

  q.sort_by = "name";
  q.name_contains = "n-1";
  q.labels = [](const std::map<std::string, std::string>& l) {
    auto it = l.find("road");
    return it != l.end() && it->second == "G92";
  };
  page = f.index->nodes(q);
  CHECK(page.total == 4);  // n-10 n-13 n-16 n-19
}

TEST_CASE("fleet index subscribers hear which provinces changed, coalesced", "[api][aggregates]") {
  IndexFixture f;
  f.node("a", "zhejiang");
  f.node("b", "jiangsu");
  f.start();
  std::mutex mu;
  std::set<std::string> heard;
  int heartbeats = 0;
  auto sub = f.index->subscribe([&](const std::set<std::string>& changed, cloud::Revision) {
    std::lock_guard lock(mu);
    if (changed.empty()) ++heartbeats;
    heard.insert(changed.begin(), changed.end());
  });
  f.status("a", true);
  REQUIRE(eventually([&] {
    std::lock_guard lock(mu);
    return heard.count("zhejiang") > 0;
  }));
  {
    std::lock_guard lock(mu);
    CHECK_FALSE(heard.count("jiangsu"));
  }
  REQUIRE(eventually([&] {
    std::lock_guard lock(mu);
    return heartbeats > 0;
  }));
  sub.reset();
}

// --- through the API server ---

TEST_CASE_METHOD(ApiFixture, "fleetsummaries: national and province aggregates, trouble first",
                 "[api][aggregates]") {
  put_node("zj-1", "zhejiang");
  put_node("zj-2", "zhejiang");
  put_node("js-1", "jiangsu");
  put_node("ah-1", "anhui");
  put_node_status("zj-1", true);
  put_node_status("zj-2", true);
  put_node_status("js-1", true, true);
  put_node_status("ah-1", true);
  put_pod("default", "web", "zj-1");
  put_pod_status("default", "web", v1::POD_PHASE_RUNNING, true);
  auto rev = store().current_revision();
  REQUIRE(eventually([&] {
    auto l = call("GET", "/apis/gantry.io/v1/fleetsummaries", kAdminToken).json();
    return std::stoull(l["metadata"]["resourceVersion"].get<std::string>()) >= rev;
  }));
  auto list = call("GET", "/apis/gantry.io/v1/fleetsummaries", kAdminToken).json();
  CHECK(list["kind"] == "FleetSummaryList");
  REQUIRE(list["items"].size() == 3);
  CHECK(list["items"][0]["metadata"]["name"] == "jiangsu");  // all of its nodes Unknown
  CHECK(list["items"][1]["metadata"]["name"] == "anhui");
  CHECK(list["total"]["nodes"] ==
        json({{"total", 4}, {"ready", 3}, {"notReady", 0}, {"unknown", 1}}));
  CHECK(list["total"]["pods"]["byPhase"]["Running"] == 1);
  CHECK(list["total"]["versions"]["v0.1.0"] == 4);

  auto zj = call("GET", "/apis/gantry.io/v1/fleetsummaries/zhejiang?groupBy=kubernetes.io/hostname",
                 kAdminToken)
                .json();
  CHECK(zj["kind"] == "FleetSummary");
  CHECK(zj["status"]["nodes"]["ready"] == 2);
  CHECK(zj["status"]["labelKeys"]["kubernetes.io/hostname"] == 2);
  REQUIRE(zj["breakdown"]["groups"].size() == 2);
  CHECK(zj["breakdown"]["label"] == "kubernetes.io/hostname");

  auto missing = call("GET", "/apis/gantry.io/v1/fleetsummaries/nowhere", kAdminToken);
  CHECK(missing.code == 404);
  CHECK(missing.json()["kind"] == "Status");
  CHECK(call("POST", "/apis/gantry.io/v1/fleetsummaries", kAdminToken, "{}").code == 405);
  CHECK(call("GET", "/apis/gantry.io/v1/fleetsummaries", "").code == 401);
}

TEST_CASE_METHOD(ApiFixture, "fleet aggregates: a province token sees only its province",
                 "[api][aggregates]") {
  put_node("zj-1", "zhejiang");
  put_node("js-1", "jiangsu");
  REQUIRE(eventually([&] {
    return call("GET", "/apis/gantry.io/v1/fleetsummaries", kAdminToken).json()["items"].size() ==
           2;
  }));
  auto mine = call("GET", "/apis/gantry.io/v1/fleetsummaries", kZhejiangViewerToken).json();
  REQUIRE(mine["items"].size() == 1);
  CHECK(mine["items"][0]["metadata"]["name"] == "zhejiang");
  CHECK(mine["total"]["nodes"]["total"] == 1);

  auto other = call("GET", "/apis/gantry.io/v1/fleetsummaries/jiangsu", kZhejiangViewerToken);
  CHECK(other.code == 403);
  CHECK(other.json()["reason"] == "Forbidden");
  CHECK(other.json()["message"].get<std::string>().find("may see only province zhejiang") !=
        std::string::npos);
  CHECK(call("GET", "/apis/gantry.io/v1/fleetnodes?province=jiangsu", kZhejiangViewerToken).code ==
        403);
  auto nodes = call("GET", "/apis/gantry.io/v1/fleetnodes", kZhejiangViewerToken).json();
  REQUIRE(nodes["items"].size() == 1);
  CHECK(nodes["items"][0]["name"] == "zj-1");
}

TEST_CASE_METHOD(ApiFixture, "fleetnodes: paged, filtered and sorted on the server",
                 "[api][aggregates]") {
  for (int i = 0; i < 12; ++i) {
    put_node(fmt::format("n-{:02}", i), "zhejiang");
    if (i % 3) put_node_status(fmt::format("n-{:02}", i), true);
  }
  put_pod("default", "a", "n-05");
  put_pod("default", "b", "n-05");
  auto rev = store().current_revision();
  auto get = [&](const std::string& q) {
    return call("GET", "/apis/gantry.io/v1/fleetnodes?" + q, kAdminToken);
  };
  REQUIRE(eventually([&] {
    return std::stoull(get("").json()["metadata"]["resourceVersion"].get<std::string>()) >= rev;
  }));
  auto page = get("province=zhejiang&limit=5&offset=10").json();
  CHECK(page["kind"] == "FleetNodeList");
  CHECK(page["total"] == 12);
  REQUIRE(page["items"].size() == 2);
  CHECK(page["items"][0]["name"] == "n-10");
  auto unknown = get("state=Unknown").json();
  CHECK(unknown["total"] == 4);
  CHECK(unknown["items"][0]["state"] == "Unknown");
  auto busiest = get("sortBy=-pods&limit=1").json();
  CHECK(busiest["items"][0]["name"] == "n-05");
  CHECK(busiest["items"][0]["pods"] == 2);
  CHECK(busiest["items"][0]["podsByPhase"]["Pending"] == 2);
  CHECK(get("labelSelector=kubernetes.io/hostname%3Dn-07").json()["total"] == 1);
  CHECK(get("nameContains=n-1").json()["total"] == 2);
  CHECK(get("sortBy=color").code == 400);
  CHECK(get("state=Sleepy").code == 400);
  CHECK(get("limit=x").code == 400);
  CHECK(get("labelSelector=%3D%3D").code == 400);
}

TEST_CASE_METHOD(ApiFixture, "fleetsummaries?watch=1 streams a province's change within seconds",
                 "[api][aggregates][watch]") {
  put_node("zj-1", "zhejiang");
  put_node_status("zj-1", true);
  put_node("js-1", "jiangsu");
  auto out = dir() / "watch.out";
  ChildProcess curl({"/usr/bin/curl", "-sS", "-N", "--cacert", ca_path(), "--max-time", "30", "-H",
                     std::string("Authorization: Bearer ") + kZhejiangViewerToken, "-o",
                     out.string(), url("/apis/gantry.io/v1/fleetsummaries?watch=1")},
                    dir() / "watch.log");
  auto lines = [&] {
    std::vector<json> events;
    std::string text = common::read_file(out).value_or("");
    size_t at = 0;
    while (true) {
      auto nl = text.find('\n', at);
      if (nl == std::string::npos) break;
      events.push_back(json::parse(text.substr(at, nl - at), nullptr, false));
      at = nl + 1;
    }
    return events;
  };
  REQUIRE(eventually([&] {
    for (const auto& e : lines())
      if (e["type"] == "ADDED" && e["object"]["status"]["nodes"]["ready"] == 1) return true;
    return false;
  }));
  put_node_status("zj-1", true, /*unreachable=*/true);
  put_node_status("js-1", true, true);
  REQUIRE(eventually(
      [&] {
        for (const auto& e : lines())
          if (e["type"] == "MODIFIED" && e["object"]["status"]["nodes"]["unknown"] == 1)
            return true;
        return false;
      },
      std::chrono::seconds(10)));
  for (const auto& e : lines())
    CHECK(e["object"]["metadata"].value("name", "zhejiang") == "zhejiang");
}

TEST_CASE_METHOD(ApiFixture, "the dashboard's files are served under /ui/ with strict headers",
                 "[api][ui]") {
  auto index = call("GET", "/ui/", "");
  CHECK(index.code == 200);
  CHECK(index.headers.find("Content-Type: text/html; charset=utf-8") != std::string::npos);
  CHECK(index.headers.find("Content-Security-Policy: default-src 'none'; script-src 'self'") !=
        std::string::npos);
  CHECK(index.headers.find("X-Frame-Options: DENY") != std::string::npos);
  CHECK(index.body.find("<!doctype html>") != std::string::npos);
  CHECK(call("GET", "/ui", "").code == 301);
  auto missing = call("GET", "/ui/nope.js", "");
  CHECK(missing.code == 404);
  CHECK(missing.body.find("Not found") != std::string::npos);
  for (const auto& a : cloud::api::ui_assets()) {
    auto r = call("GET", std::string("/ui/") + a.path, "");
    CHECK(r.code == 200);
    CHECK(r.body.size() == a.size);
    CHECK(r.headers.find(std::string(cloud::api::ui_content_type(a.path))) != std::string::npos);
  }
  CHECK(cloud::api::ui_content_type("js/app.js") == "text/javascript; charset=utf-8");
  CHECK(cloud::api::ui_content_type("style.css") == "text/css; charset=utf-8");
}

}  // namespace
}  // namespace gantry::test
