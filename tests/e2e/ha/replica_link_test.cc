// The replica link (cloudcore/hub/replica_link.h) in one process: a cloud whose hub holds a real
// edge (tunnel client + LogStreams over a CRI log file the test writes), a ReplicaLink serving
// that hub, and a second ReplicaLink (another replica, on a hub of its own with no nodes) that
// forwards to it. The output arrives through the link with the tunnel's flow control; the owner's
// refusals are passed on; certificates that are not a replica's of the cluster CA are refused.
#include "cloudcore/hub/replica_link.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <mutex>

#include "common/net/websocket.h"
#include "edgecore/logs/cri_log.h"
#include "edgecore/logs/log_streams.h"
#include "tests/integration/sync/sync_fixture.h"

using namespace gantry;
using namespace gantry::test;
using namespace std::chrono_literals;

namespace {

std::string cri(int sec, const std::string& content) {
  return edge::format_rfc3339_nanos((1704067200LL + sec) * 1'000'000'000LL) + " stdout F " +
         content + "\n";
}

// What a forwarded stream reported, for the test to look at.
struct Received {
  std::mutex mu;
  bool ready = false;
  std::string data;
  bool closed = false;
  std::string error;
  uint32_t code = 0;

  cloud::api::LogStreamer::Callbacks callbacks() {
    cloud::api::LogStreamer::Callbacks cbs;
    cbs.on_ready = [this] {
      std::lock_guard lock(mu);
      ready = true;
    };
    cbs.on_data = [this](std::string d) {
      std::lock_guard lock(mu);
      data += d;
    };
    cbs.on_close = [this](std::string e, uint32_t c) {
      std::lock_guard lock(mu);
      closed = true;
      error = std::move(e);
      code = c;
    };
    return cbs;
  }
  size_t size() {
    std::lock_guard lock(mu);
    return data.size();
  }
  bool is_closed() {
    std::lock_guard lock(mu);
    return closed;
  }
};

cloud::ReplicaLinkOptions link_options(const TestCluster& cluster, const std::string& replica) {
  auto pem = cluster.issue(std::string(cloud::kReplicaCommonNamePrefix) + replica);
  cloud::ReplicaLinkOptions o;
  o.replica = replica;
  o.address = "127.0.0.1";
  o.port = 0;
  o.certificate = {pem.cert, pem.key};
  o.ca_pem = cluster.ca_pem();
  return o;
}

v1::LogRequest request(const std::string& container, bool follow = false) {
  v1::LogRequest r;
  r.set_namespace_("default");
  r.set_pod("web");
  r.set_container(container);
  r.set_tail_lines(-1);
  r.set_follow(follow);
  return r;
}

struct TwoReplicas {
  TempDir dir;
  TestCluster cluster;
  common::EventLoop edge_loop{1};
  common::EventLoop link_loop{2};
  common::SystemClock clock;
  std::mutex mu;
  std::map<std::string, edge::LogTarget> containers;
  std::unique_ptr<Cloud> owner_cloud, other_cloud;
  std::unique_ptr<edge::LogStreams> streams;
  std::unique_ptr<Edge> edge;
  std::unique_ptr<cloud::ReplicaLink> owner, other;

  TwoReplicas() {
    owner_cloud = std::make_unique<Cloud>(cluster, dir / "owner");
    owner_cloud->start();
    other_cloud = std::make_unique<Cloud>(cluster, dir / "other");
    other_cloud->start();
    put_pod(owner_cloud->store(), "web", "edge-1");
    streams = std::make_unique<edge::LogStreams>(
        [this](const v1::LogRequest& r) -> common::Result<edge::LogTarget> {
          std::lock_guard lock(mu);
          auto it = containers.find(r.container());
          if (it == containers.end())
            return common::make_error(common::Code::kNotFound,
                                      "container \"{}\" in pod default/web not found",
                                      r.container());
          return it->second;
        },
        clock);
    edge_loop.run();
    link_loop.run();
    edge = std::make_unique<Edge>(cluster, edge_loop, "edge-1", dir / "edge");
    auto options = Edge::default_options();
    options.streams = streams.get();
    edge->start(owner_cloud->port(), options);
    REQUIRE(eventually([&] { return owner_cloud->hub().connected("edge-1"); }));
    auto a = cloud::ReplicaLink::start(link_loop, owner_cloud->hub(), link_options(cluster, "a"));
    REQUIRE(a.ok());
    owner = std::move(a).value();
    auto b = cloud::ReplicaLink::start(link_loop, other_cloud->hub(), link_options(cluster, "b"));
    REQUIRE(b.ok());
    other = std::move(b).value();
  }
  ~TwoReplicas() {
    other->stop();
    owner->stop();
    edge->stop();
    owner_cloud->stop();
    other_cloud->stop();
    link_loop.stop();
    edge_loop.stop();
  }
  std::string owner_address() const { return fmt::format("127.0.0.1:{}", owner->port()); }
  void set_container(const std::string& name, const std::filesystem::path& path, bool running) {
    std::lock_guard lock(mu);
    containers[name] = {path.string(), running};
  }
};

}  // namespace

TEST_CASE(
    "a log stream forwarded over the replica link reads the owner's node, paced by the reader",
    "[integration][ha]") {
  TwoReplicas r;
  auto path = r.dir / "c.log";
  std::string expected;
  {
    std::ofstream out(path);
    for (int i = 0; i < 4000; ++i) {
      std::string line = fmt::format("line {:05d} {}", i, std::string(80, 'x'));
      out << cri(i, line);
      expected += line + "\n";
    }
  }
  r.set_container("c", path, /*running=*/false);

  Received got;
  auto stream = r.other->open_log("a", r.owner_address(), "edge-1", request("c"), got.callbacks());
  // Nothing is consumed: the owner's hub grants the edge no more than its window (64 KiB).
  REQUIRE(eventually([&] { return got.size() > 0; }, 30s));
  const size_t window = r.owner_cloud->hub().stats().log_stream_bytes.load();
  CHECK(eventually([&] { return got.size() >= 32 * 1024; }, 30s));
  CHECK(got.size() <= 64 * 1024);
  CHECK(window <= 64 * 1024);
  CHECK_FALSE(got.is_closed());
  // Consuming what arrived lets the rest come, in order, then the normal end.
  size_t consumed = 0;
  REQUIRE(eventually(
      [&] {
        size_t now = got.size();
        if (now > consumed) {
          stream->consumed(now - consumed);
          consumed = now;
        }
        return got.is_closed();
      },
      60s, 5ms));
  std::lock_guard lock(got.mu);
  CHECK(got.ready);
  CHECK(got.error.empty());
  CHECK(got.data == expected);
  CHECK(r.owner->stats().served.load() == 1);
  CHECK(r.other->stats().forwarded.load() == 1);
}

TEST_CASE("the owner's refusals come back through the replica link with their code",
          "[integration][ha]") {
  TwoReplicas r;
  {
    Received got;
    auto s = r.other->open_log("a", r.owner_address(), "edge-1", request("nope"), got.callbacks());
    REQUIRE(eventually([&] { return got.is_closed(); }, 30s));
    std::lock_guard lock(got.mu);
    CHECK(got.code == 404);
    CHECK_THAT(got.error, Catch::Contains("container \"nope\" in pod default/web not found"));
  }
  {
    // The node is not (or no longer) on the owner either.
    Received got;
    auto s = r.other->open_log("a", r.owner_address(), "edge-9", request("c"), got.callbacks());
    REQUIRE(eventually([&] { return got.is_closed(); }, 30s));
    std::lock_guard lock(got.mu);
    CHECK(got.code == 503);
    CHECK_THAT(got.error, Catch::Contains("cloudcore replica a:"));
    CHECK_THAT(got.error, Catch::Contains("edge-9"));
  }
  {
    // The record names replica "c" but "a" answers at that address: not passed on.
    Received got;
    auto s = r.other->open_log("c", r.owner_address(), "edge-1", request("c"), got.callbacks());
    REQUIRE(eventually([&] { return got.is_closed(); }, 30s));
    std::lock_guard lock(got.mu);
    CHECK(got.code == 503);
    CHECK_THAT(got.error, Catch::Contains("system:cloudcore:replica:a"));
    CHECK_FALSE(got.ready);
  }
  {
    // Nothing listens there.
    const uint16_t closed = free_port();
    Received got;
    auto s = r.other->open_log("a", fmt::format("127.0.0.1:{}", closed), "edge-1", request("c"),
                               got.callbacks());
    REQUIRE(eventually([&] { return got.is_closed(); }, 30s));
    std::lock_guard lock(got.mu);
    CHECK(got.code == 503);
    CHECK_THAT(got.error, Catch::Contains("node \"edge-1\" is connected to cloudcore replica a, "
                                          "which cannot be reached at 127.0.0.1:"));
  }
}

TEST_CASE("the replica link refuses a node's certificate and another CA's replica certificate",
          "[integration][ha]") {
  TwoReplicas r;
  auto connect = [&](const std::string& cert, const std::string& key, const std::string& ca) {
    common::TlsOptions tls;
    tls.cert_pem = cert;
    tls.key_pem = key;
    tls.ca_pem = ca;
    auto ctx = common::TlsContext::create(common::TlsRole::kClient, tls);
    REQUIRE(ctx.ok());
    common::WsClientOptions ws;
    ws.host = "127.0.0.1";
    ws.port = r.owner->port();
    ws.path = std::string(cloud::kReplicaLinkPath);
    struct Nothing : common::WsHandler {
      void on_open(std::shared_ptr<common::WsConnection> c) override { c->close("done"); }
      void on_message(std::string_view) override {}
      void on_close(std::string_view) override {}
    };
    std::mutex mu;
    std::optional<common::ConnectResult> result;
    common::ws_connect(r.link_loop, *ctx, ws, std::make_unique<Nothing>(),
                       [&](common::ConnectResult c) {
                         std::lock_guard lock(mu);
                         result = std::move(c);
                       });
    REQUIRE(eventually(
        [&] {
          std::lock_guard lock(mu);
          return result.has_value();
        },
        30s));
    return *result;
  };
  // An edge node's certificate from the cluster CA: TLS passes, the upgrade is refused.
  auto node = r.cluster.issue("system:node:edge-1");
  auto as_node = connect(node.cert, node.key, r.cluster.ca_pem());
  REQUIRE_FALSE(as_node.ok());
  CHECK(as_node.error->kind == common::ConnectError::Kind::kHttpRefused);
  CHECK(as_node.error->http_status == 403);
  CHECK_THAT(as_node.error->body, Catch::Contains("admits cloudcore replicas only"));
  CHECK(r.owner->stats().refused.load() == 1);
  // A replica certificate from another CA: the handshake fails.
  TestCluster stranger;
  auto foreign = stranger.issue(std::string(cloud::kReplicaCommonNamePrefix) + "b");
  auto as_foreign = connect(foreign.cert, foreign.key, r.cluster.ca_pem());
  REQUIRE_FALSE(as_foreign.ok());
  CHECK(as_foreign.error->kind == common::ConnectError::Kind::kTls);
  // No certificate at all: refused too.
  auto anonymous = connect("", "", r.cluster.ca_pem());
  CHECK_FALSE(anonymous.ok());
  CHECK(r.owner->stats().served.load() == 0);
}

TEST_CASE("a replica certificate names the replica and its advertised host", "[integration][ha]") {
  auto ca_key = common::PrivateKey::generate().value();
  auto ca = common::create_ca(ca_key, "gantry-ca", std::chrono::hours(24)).value();
  auto by_ip = cloud::issue_replica_certificate("cloudcore-0", "10.0.0.5", ca, ca_key,
                                                std::chrono::hours(24));
  REQUIRE(by_ip.ok());
  auto cert = common::Certificate::from_pem(by_ip->cert_pem).value();
  CHECK(cert.common_name() == "system:cloudcore:replica:cloudcore-0");
  CHECK(cert.ip_addresses() == std::vector<std::string>{"10.0.0.5"});
  CHECK(cert.dns_names().empty());
  auto by_name = cloud::issue_replica_certificate("cloudcore-1", "cloudcore-1.cloudcore", ca,
                                                  ca_key, std::chrono::hours(24));
  REQUIRE(by_name.ok());
  auto named = common::Certificate::from_pem(by_name->cert_pem).value();
  CHECK(named.dns_names() == std::vector<std::string>{"cloudcore-1.cloudcore"});
  CHECK(common::verify_certificate(named, {ca}, std::chrono::system_clock::now()).ok());
}
