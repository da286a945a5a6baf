// Events end to end in one process: an edge's pod events coalesced in its EventOutbox, carried in
// StatusDelta batches over the real mutual-TLS tunnel, written by the cloud's EventRecorder as
// Kubernetes Events; and the cloud's own node events (Ready=Unknown and back).
#include "cloudcore/controllers/events.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cloudcore/registry/keys.h"
#include "edgecore/status/event_outbox.h"
#include "tests/integration/sync/sync_fixture.h"

namespace gantry::test {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

struct EventsFixture {
  TestCluster cluster;
  TempDir dir;
  common::EventLoop edge_loop{1};
  common::SystemClock clock;
  std::unique_ptr<Cloud> cloud;
  std::atomic<cloud::controllers::EventRecorder*> recorder_ptr{nullptr};
  std::unique_ptr<cloud::controllers::EventRecorder> recorder;

  explicit EventsFixture(cloud::HubOptions options = {}) {
    edge_loop.run();
    options.events = [this](cloud::controllers::EventRecord e) {
      if (auto* r = recorder_ptr.load()) r->record(std::move(e));
    };
    cloud = std::make_unique<Cloud>(cluster, dir.path() / "cloud", options);
    cloud->start();
    cloud::controllers::EventRecorderOptions ro;
    ro.flush_interval = 20ms;
    recorder = std::make_unique<cloud::controllers::EventRecorder>(cloud->store(), clock, ro);
    recorder->start();
    recorder_ptr = recorder.get();
  }
  ~EventsFixture() {
    // No event may reach the recorder once it is gone, nor the store once it is closed.
    recorder_ptr = nullptr;
    cloud->hub().stop();
    recorder.reset();
    cloud->stop();
  }
  std::unique_ptr<Edge> make_edge(const std::string& name) {
    return std::make_unique<Edge>(cluster, edge_loop, name, dir.path() / "edges");
  }
  bool converged(Edge& e) { return edge_view(e.meta()) == cloud_view(cloud->store(), e.name()); }

  // Stored events (core v1 JSON), optionally only those with `reason`.
  std::vector<json> events(const std::string& reason = "") {
    cloud::ListOptions lo;
    lo.prefix = std::string(cloud::keys::kEvents);
    auto list = cloud->store().list(lo);
    std::vector<json> out;
    if (!list.ok()) return out;
    for (const auto& kv : list->items) {
      v1::StoredObject stored;
      if (!stored.ParseFromString(kv.value)) continue;
      json ev = json::parse(stored.json(), nullptr, false);
      if (ev.is_object() && (reason.empty() || ev.value("reason", "") == reason)) out.push_back(ev);
    }
    return out;
  }
};

edge::EdgeEventRecord backoff(const std::string& pod) {
  edge::EdgeEventRecord e;
  e.ns = "default";
  e.name = pod;
  e.uid = "uid-" + pod;
  e.container = "main";
  e.reason = "BackOff";
  e.warning = true;
  e.message = "Back-off restarting failed container main in pod " + pod;
  return e;
}

TEST_CASE_METHOD(EventsFixture,
                 "an edge's pod events become one counted Kubernetes Event through the tunnel") {
  put_pod(cloud->store(), "web", "node-ev");
  put_pod(cloud->store(), "other", "node-elsewhere");
  edge::EventOutbox outbox(clock, {.update_interval = 300ms});
  auto e = make_edge("node-ev");
  auto options = Edge::default_options();
  options.sync.events = &outbox;
  e->start(cloud->port(), options);
  REQUIRE(eventually([&] { return converged(*e); }));

  outbox.record(backoff("web"));
  REQUIRE(eventually([&] { return events("BackOff").size() == 1; }));
  auto first = events("BackOff")[0];
  CHECK(first["count"] == 1);
  CHECK(first["type"] == "Warning");
  CHECK(first["metadata"]["namespace"] == "default");
  CHECK(first["involvedObject"]["kind"] == "Pod");
  CHECK(first["involvedObject"]["name"] == "web");
  CHECK(first["involvedObject"]["uid"] == "uid-web");
  CHECK(first["involvedObject"]["fieldPath"] == "spec.containers{main}");
  CHECK(first["source"] == json{{"component", "kubelet"}, {"host", "node-ev"}});

  // Nine more restarts: one count update after the interval, the same Event.
  auto batches_before = e->hub().stats().status_batches_sent;
  for (int i = 0; i < 9; ++i) outbox.record(backoff("web"));
  REQUIRE(eventually([&] {
    auto ev = events("BackOff");
    return ev.size() == 1 && ev[0]["count"] == 10;
  }));
  CHECK(events("BackOff")[0]["metadata"]["name"] == first["metadata"]["name"]);
  CHECK(e->hub().stats().status_batches_sent - batches_before <= 2);

  // An event about a pod bound to another node is not written.
  outbox.record(backoff("other"));
  outbox.record(backoff("web"));
  REQUIRE(eventually([&] { return events("BackOff")[0]["count"] == 11; }));
  for (const auto& ev : events()) CHECK(ev["involvedObject"]["name"] != "other");
}

TEST_CASE_METHOD(EventsFixture, "events recorded while offline arrive once after reconnecting") {
  put_pod(cloud->store(), "web", "node-off");
  edge::EventOutbox outbox(clock, {.update_interval = 60s});
  auto e = make_edge("node-off");
  auto options = Edge::default_options();
  options.sync.events = &outbox;
  e->start(cloud->port(), options);
  REQUIRE(eventually([&] { return converged(*e); }));
  e->stop();
  for (int i = 0; i < 25; ++i) outbox.record(backoff("web"));
  e->start(cloud->port(), options);
  REQUIRE(eventually([&] {
    auto ev = events("BackOff");
    return ev.size() == 1 && ev[0]["count"] == 25;
  }));
}

TEST_CASE("a node silent past the timeout gets a NodeNotReady event, and NodeReady when back") {
  cloud::HubOptions options;
  options.node_timeout = 1500ms;
  options.liveness_sweep = 100ms;
  EventsFixture f(options);
  auto e = f.make_edge("node-l");
  e->start(f.cloud->port());
  REQUIRE(eventually([&] { return e->connected(); }));
  v1::NodeStatus ns;
  auto* ready = ns.add_conditions();
  ready->set_type(v1::NODE_CONDITION_READY);
  ready->set_status(v1::CONDITION_STATUS_TRUE);
  REQUIRE(e->tracker().report_node(ns).ok());
  REQUIRE(eventually([&] { return f.events("NodeReady").size() == 1; }));

  e->stop();
  REQUIRE(eventually([&] { return f.events("NodeNotReady").size() == 1; }));
  auto down = f.events("NodeNotReady")[0];
  CHECK(down["involvedObject"]["kind"] == "Node");
  CHECK(down["involvedObject"]["name"] == "node-l");
  CHECK_FALSE(down["involvedObject"].contains("namespace"));
  CHECK(down["metadata"]["namespace"] == "default");
  CHECK_THAT(down["message"].get<std::string>(), Catch::Contains("Ready=Unknown"));

  e->start(f.cloud->port());
  REQUIRE(eventually([&] {
    auto up = f.events("NodeReady");
    return up.size() == 1 && up[0]["count"] == 2;
  }));
}

}  // namespace
}  // namespace gantry::test
