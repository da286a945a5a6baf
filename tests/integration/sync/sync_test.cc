// The sync engine end to end in one process: cloud store -> registry -> hub -> tunnel -> edge
// cache, and edge statuses back up, over mutual-TLS WebSockets on 127.0.0.1.
#include <catch2/catch.hpp>
#include <future>

#include "cloudcore/registry/keys.h"
#include "common/net/websocket.h"
#include "tests/integration/sync/sync_fixture.h"

namespace gantry::test {
namespace {

using namespace std::chrono_literals;

struct SyncFixture {
  TestCluster cluster;
  TempDir dir;
  common::EventLoop edge_loop{1};
  std::unique_ptr<Cloud> cloud;

  explicit SyncFixture(cloud::HubOptions options = {}) {
    edge_loop.run();
    cloud = std::make_unique<Cloud>(cluster, dir.path() / "cloud", options);
    cloud->start();
  }
  std::unique_ptr<Edge> make_edge(const std::string& name) {
    return std::make_unique<Edge>(cluster, edge_loop, name, dir.path() / "edges");
  }
  bool converged(Edge& e) { return edge_view(e.meta()) == cloud_view(cloud->store(), e.name()); }
};

TEST_CASE_METHOD(SyncFixture,
                 "objects written for a connected node reach its cache and no other node's") {
  auto a = make_edge("node-a");
  auto b = make_edge("node-b");
  a->start(cloud->port());
  b->start(cloud->port());
  REQUIRE(eventually([&] { return a->connected() && b->connected(); }));

  put_config_map(cloud->store(), "settings", "v1");
  put_pod(cloud->store(), "web", "node-a", "settings");
  put_pod(cloud->store(), "db", "node-b");
  REQUIRE(eventually([&] { return converged(*a) && converged(*b); }));
  auto view_a = edge_view(a->meta());
  CHECK(view_a.count("pod/default/web") == 1);
  CHECK(view_a.count("configmap/default/settings") == 1);
  CHECK(view_a.count("pod/default/db") == 0);
  CHECK(edge_view(b->meta()).count("pod/default/web") == 0);

  // A change and a delete follow.
  put_config_map(cloud->store(), "settings", "v2");
  delete_object(cloud->store(), v1::OBJECT_KIND_POD, "db");
  REQUIRE(eventually([&] { return converged(*a) && converged(*b); }));
  auto cm = a->meta().get_object(v1::OBJECT_KIND_CONFIG_MAP, "default", "settings");
  REQUIRE(cm.ok());
  REQUIRE(cm->has_value());
  CHECK((*cm)->config_map().data().at("value") == "v2");
  CHECK(edge_view(b->meta()).empty());
}

TEST_CASE_METHOD(
    SyncFixture,
    "after an outage the resume carries only what changed, or a snapshot once history is gone") {
  auto e = make_edge("node-r");
  for (int i = 0; i < 150; ++i) put_pod(cloud->store(), fmt::format("p{:03}", i), "node-r");
  e->start(cloud->port());
  REQUIRE(eventually([&] { return converged(*e); }));
  e->stop();

  for (int i = 0; i < 100; ++i)
    put_pod(cloud->store(), fmt::format("p{:03}", i), "node-r", "", "busybox:2");
  for (int i = 130; i < 150; ++i)
    delete_object(cloud->store(), v1::OBJECT_KIND_POD, fmt::format("p{:03}", i));

  bool compacted = GENERATE(false, true);
  if (compacted) REQUIRE(cloud->store().compact(cloud->store().current_revision()).ok());

  auto objects_before = cloud->hub().stats().objects_sent.load();
  auto deletes_before = cloud->hub().stats().deletes_sent.load();
  e->start(cloud->port());
  REQUIRE(eventually([&] { return converged(*e); }));
  auto objects = cloud->hub().stats().objects_sent.load() - objects_before;
  auto deletes = cloud->hub().stats().deletes_sent.load() - deletes_before;
  CHECK(edge_view(e->meta()).size() == 130);
  if (compacted) {
    CHECK(e->hub().stats().resumes_snapshot == 1);
    CHECK(objects == 130);  // everything the node has, no deletes: the snapshot replaces the cache
  } else {
    CHECK(e->hub().stats().resumes_incremental == 1);
    CHECK(objects == 100);  // only the changed ones
    CHECK(deletes == 20);
  }
}

TEST_CASE_METHOD(SyncFixture, "a pod's status goes up as a delta and lands in the cloud store") {
  put_pod(cloud->store(), "web", "node-s");
  auto e = make_edge("node-s");
  e->start(cloud->port());
  REQUIRE(eventually([&] { return converged(*e); }));

  REQUIRE(
      e->tracker().report_pod("default", "web", "uid-web", pod_status(v1::POD_PHASE_PENDING)).ok());
  REQUIRE(eventually([&] {
    auto s = stored_status(cloud->store(), v1::OBJECT_KIND_POD, "web");
    return s && s->pod().phase() == v1::POD_PHASE_PENDING;
  }));
  REQUIRE(
      e->tracker().report_pod("default", "web", "uid-web", pod_status(v1::POD_PHASE_RUNNING)).ok());
  REQUIRE(eventually([&] {
    auto s = stored_status(cloud->store(), v1::OBJECT_KIND_POD, "web");
    return s && s->pod().phase() == v1::POD_PHASE_RUNNING && s->generation() == 2;
  }));
  auto s = stored_status(cloud->store(), v1::OBJECT_KIND_POD, "web");
  CHECK(s->uid() == "uid-web");
  CHECK(s->pod().pod_ip() == "10.88.0.7");
  CHECK(s->pod().containers(0).ready());
}

TEST_CASE_METHOD(SyncFixture, "a generation mismatch leads to a full resync and the right result") {
  put_pod(cloud->store(), "web", "node-g");
  auto e = make_edge("node-g");
  e->start(cloud->port());
  REQUIRE(eventually([&] { return converged(*e); }));
  REQUIRE(
      e->tracker().report_pod("default", "web", "uid-web", pod_status(v1::POD_PHASE_PENDING)).ok());
  REQUIRE(eventually(
      [&] { return stored_status(cloud->store(), v1::OBJECT_KIND_POD, "web").has_value(); }));

  // Someone else moved the cloud's generation on (e.g. a restore): the edge's next delta no
  // longer matches.
  auto s = *stored_status(cloud->store(), v1::OBJECT_KIND_POD, "web");
  s.set_generation(s.generation() + 5);
  s.mutable_pod()->set_phase(v1::POD_PHASE_UNKNOWN);
  REQUIRE(cloud->store()
              .put(cloud::keys::status_key(v1::OBJECT_KIND_POD, "default", "web"),
                   s.SerializeAsString())
              .ok());

  REQUIRE(e->tracker()
              .report_pod("default", "web", "uid-web", pod_status(v1::POD_PHASE_RUNNING, 3))
              .ok());
  REQUIRE(eventually([&] {
    auto now = stored_status(cloud->store(), v1::OBJECT_KIND_POD, "web");
    return now && now->pod().phase() == v1::POD_PHASE_RUNNING;
  }));
  auto now = *stored_status(cloud->store(), v1::OBJECT_KIND_POD, "web");
  CHECK(cloud->hub().stats().status_resyncs >= 1);
  CHECK(now.generation() == s.generation() + 1);
  CHECK(now.pod().containers(0).restart_count() == 3);
  CHECK(now.pod().pod_ip() == "10.88.0.7");
}

TEST_CASE_METHOD(SyncFixture, "ten changes of one pod while offline arrive as one entry") {
  put_pod(cloud->store(), "web", "node-o");
  auto e = make_edge("node-o");
  e->start(cloud->port());
  REQUIRE(eventually([&] { return converged(*e); }));
  e->stop();
  for (int i = 1; i <= 10; ++i)
    REQUIRE(e->tracker()
                .report_pod("default", "web", "uid-web", pod_status(v1::POD_PHASE_RUNNING, i))
                .ok());
  auto entries_before = cloud->hub().stats().status_entries.load();
  e->start(cloud->port());
  REQUIRE(eventually([&] {
    auto s = stored_status(cloud->store(), v1::OBJECT_KIND_POD, "web");
    return s && s->pod().containers(0).restart_count() == 10;
  }));
  CHECK(cloud->hub().stats().status_entries.load() - entries_before == 1);
}

TEST_CASE_METHOD(SyncFixture, "a node's certificate cannot write another node's status") {
  put_pod(cloud->store(), "theirs", "node-b");
  auto b = make_edge("node-b");
  b->start(cloud->port());
  REQUIRE(eventually([&] { return converged(*b); }));
  REQUIRE(b->tracker()
              .report_pod("default", "theirs", "uid-theirs", pod_status(v1::POD_PHASE_RUNNING))
              .ok());
  REQUIRE(eventually(
      [&] { return stored_status(cloud->store(), v1::OBJECT_KIND_POD, "theirs").has_value(); }));
  auto before = *stored_status(cloud->store(), v1::OBJECT_KIND_POD, "theirs");

  // node-a speaks the protocol by hand and claims node-b's pod.
  // What the hand-made client saw; shared because the handler dies with the connection.
  struct Seen {
    std::mutex mu;
    std::vector<std::string> messages;
    std::string close_reason;
    bool closed = false;
  };
  struct Recorder : common::WsHandler {
    std::shared_ptr<Seen> seen = std::make_shared<Seen>();
    void on_open(std::shared_ptr<common::WsConnection>) override {}
    void on_message(std::string_view d) override {
      std::lock_guard l(seen->mu);
      seen->messages.emplace_back(d);
    }
    void on_close(std::string_view r) override {
      std::lock_guard l(seen->mu);
      seen->close_reason = r;
      seen->closed = true;
    }
  };
  auto pem = cluster.issue("system:node:node-a");
  common::TlsOptions tls;
  tls.cert_pem = pem.cert;
  tls.key_pem = pem.key;
  tls.ca_pem = cluster.ca_pem();
  auto ctx = common::TlsContext::create(common::TlsRole::kClient, tls).value();
  auto handler = std::make_unique<Recorder>();
  std::shared_ptr<Seen> rec = handler->seen;
  common::WsClientOptions opts;
  opts.host = "127.0.0.1";
  opts.port = cloud->port();
  std::promise<common::ConnectResult> connected;
  common::ws_connect(edge_loop, ctx, opts, std::move(handler),
                     [&](common::ConnectResult r) { connected.set_value(r); });
  auto result = connected.get_future().get();
  REQUIRE(result.ok());
  v1::Frame hello;
  hello.mutable_hello()->set_protocol_version(1);
  result.connection->send(hello.SerializeAsString());
  v1::Frame bad;
  bad.mutable_status_delta()->set_sequence(1);
  auto* entry = bad.mutable_status_delta()->add_entries();
  entry->set_kind(v1::OBJECT_KIND_POD);
  entry->set_namespace_("default");
  entry->set_name("theirs");
  entry->set_full(true);
  entry->mutable_pod()->set_phase(v1::POD_PHASE_FAILED);
  result.connection->send(bad.SerializeAsString());

  REQUIRE(eventually([&] {
    std::lock_guard l(rec->mu);
    return rec->closed;
  }));
  {
    std::lock_guard l(rec->mu);
    CHECK_THAT(rec->close_reason, Catch::Contains("bound to node 'node-b'"));
    // It got its Welcome but never any of node-b's objects.
    for (const auto& m : rec->messages) {
      v1::Frame f;
      REQUIRE(f.ParseFromString(m));
      for (const auto& obj : f.object_delta().upserts()) CHECK(obj.name() != "theirs");
    }
  }
  CHECK(cloud->hub().stats().protocol_violations == 1);
  auto after = *stored_status(cloud->store(), v1::OBJECT_KIND_POD, "theirs");
  CHECK(after.pod().phase() == before.pod().phase());
  CHECK(after.generation() == before.generation());
}

TEST_CASE("a node silent past the timeout is marked Ready=Unknown and keeps its objects") {
  cloud::HubOptions options;
  options.node_timeout = 1500ms;
  options.liveness_sweep = 100ms;
  SyncFixture f(options);
  put_pod(f.cloud->store(), "web", "node-q");
  auto e = f.make_edge("node-q");
  e->start(f.cloud->port());
  REQUIRE(eventually([&] { return f.converged(*e); }));
  v1::NodeStatus ns;
  ns.mutable_capacity()->set_pods(110);
  REQUIRE(e->tracker().report_node(ns).ok());
  REQUIRE(eventually(
      [&] { return stored_status(f.cloud->store(), v1::OBJECT_KIND_NODE, "node-q").has_value(); }));
  CHECK_FALSE(stored_status(f.cloud->store(), v1::OBJECT_KIND_NODE, "node-q")->unreachable());

  e->stop();
  REQUIRE(eventually([&] {
    auto s = stored_status(f.cloud->store(), v1::OBJECT_KIND_NODE, "node-q");
    return s && s->unreachable();
  }));
  CHECK(stored_status(f.cloud->store(), v1::OBJECT_KIND_NODE, "node-q")->node().capacity().pods() ==
        110);
  CHECK(cloud_view(f.cloud->store(), "node-q").count("pod/default/web") == 1);
  CHECK(f.cloud->hub().stats().nodes_marked_unknown == 1);

  // Back again: the mark goes.
  e->start(f.cloud->port());
  REQUIRE(eventually([&] {
    auto s = stored_status(f.cloud->store(), v1::OBJECT_KIND_NODE, "node-q");
    return s && !s->unreachable();
  }));
}

TEST_CASE(
    "after cloudcore restarts, 500 edges all resync, past the admission bound they are told to "
    "retry and still get in") {
  int bound = GENERATE(1000, 20);
  cloud::HubOptions options;
  options.max_concurrent_resyncs = bound;
  options.retry_after_seconds = 1;
  SyncFixture f(options);
  constexpr int kNodes = 500;
  std::vector<std::unique_ptr<Edge>> edges;
  for (int i = 0; i < kNodes; ++i) {
    auto name = fmt::format("n{:03}", i);
    put_pod(f.cloud->store(), "pod-" + name, name);
    edges.push_back(f.make_edge(name));
  }
  auto opts = Edge::default_options();
  opts.backoff.base = 200ms;
  opts.backoff.cap = 2000ms;
  for (auto& e : edges) e->start(f.cloud->port(), opts);
  auto all_connected = [&] {
    return std::all_of(edges.begin(), edges.end(), [](auto& e) { return e->connected(); });
  };
  REQUIRE(eventually(all_connected, 120s, 50ms));

  f.cloud->stop();
  REQUIRE(eventually(
      [&] {
        return std::none_of(edges.begin(), edges.end(), [](auto& e) { return e->connected(); });
      },
      60s));
  // While the cloud was away, every node got a new pod.
  {
    cloud::RocksStoreOptions so;
    so.path = (f.dir.path() / "cloud" / "store").string();
    auto store = cloud::open_rocks_store(so).value();
    for (int i = 0; i < kNodes; ++i)
      put_pod(*store, fmt::format("extra-n{:03}", i), fmt::format("n{:03}", i));
  }
  f.cloud->start();
  REQUIRE(eventually(all_connected, 180s, 50ms));
  for (auto& e : edges) {
    INFO(e->name());
    REQUIRE(eventually([&] { return f.converged(*e); }, 60s));
  }
  uint64_t refused = 0;
  for (auto& e : edges) refused += e->hub().stats().refused_503;
  if (bound < kNodes) {
    CHECK(f.cloud->hub().stats().refused_busy > 0);
    CHECK(refused > 0);
  } else {
    CHECK(f.cloud->hub().stats().refused_busy == 0);
  }
  CHECK(f.cloud->hub().stats().resumes_incremental >= kNodes);
  for (auto& e : edges) e->stop();
}

}  // namespace
}  // namespace gantry::test
