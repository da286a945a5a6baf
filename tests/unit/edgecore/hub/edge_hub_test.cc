// EdgeHub over a real loopback TLS WebSocket against a scripted cloud (common/net's WsServer).
#include "edgecore/hub/edge_hub.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <mutex>
#include <set>

#include "common/net/websocket.h"
#include "common/pki/pki.h"
#include "tests/support/test_support.h"

namespace gantry::edge {
namespace {

using namespace std::chrono_literals;

struct Pki {
  std::string ca_pem, server_cert, server_key, client_cert, client_key;
  Pki() {
    auto ca_key = std::move(common::PrivateKey::generate()).value();
    auto ca = std::move(common::create_ca(ca_key, "test-ca", 3600s)).value();
    auto server_key_ = std::move(common::PrivateKey::generate()).value();
    common::CertificateSpec server_spec{.common_name = "cloudcore", .ip_addresses = {"127.0.0.1"}};
    auto server = common::issue_certificate(server_key_.get(), server_spec, ca, ca_key);
    auto client_key_ = std::move(common::PrivateKey::generate()).value();
    common::CertificateSpec client_spec{.common_name = "system:node:e1"};
    auto client = common::issue_certificate(client_key_.get(), client_spec, ca, ca_key);
    REQUIRE(server.ok());
    REQUIRE(client.ok());
    ca_pem = ca.to_pem();
    server_cert = server->to_pem();
    server_key = server_key_.to_pem();
    client_cert = client->to_pem();
    client_key = client_key_.to_pem();
  }
};

// What the scripted cloud saw, shared with its per-connection handlers.
struct CloudLog {
  std::mutex mu;
  std::vector<v1::Frame> frames;
  std::vector<std::string> common_names;
  std::shared_ptr<common::WsConnection> last;
  std::vector<v1::Frame> of(v1::Frame::MsgCase kind) {
    std::lock_guard lock(mu);
    std::vector<v1::Frame> out;
    for (const auto& f : frames) {
      if (f.msg_case() == kind) out.push_back(f);
    }
    return out;
  }
};

class ScriptedCloud final : public common::WsHandler {
 public:
  explicit ScriptedCloud(std::shared_ptr<CloudLog> log) : log_(std::move(log)) {}
  void on_open(std::shared_ptr<common::WsConnection> c) override {
    conn_ = c;
    std::lock_guard lock(log_->mu);
    log_->last = c;
    log_->common_names.push_back(c->peer().common_name);
  }
  void on_message(std::string_view data) override {
    v1::Frame frame;
    REQUIRE(frame.ParseFromArray(data.data(), static_cast<int>(data.size())));
    {
      std::lock_guard lock(log_->mu);
      log_->frames.push_back(frame);
    }
    if (frame.has_hello()) {
      v1::Frame welcome;
      welcome.mutable_welcome()->set_resume(v1::RESUME_MODE_INCREMENTAL);
      welcome.mutable_welcome()->set_acked_sequence(frame.hello().acked_sequence());
      send(welcome);
      if (frame.hello().applied_revision() < 5) {
        v1::Frame delta;
        delta.mutable_object_delta()->set_revision(5);
        auto* pod = delta.mutable_object_delta()->add_upserts();
        pod->set_kind(v1::OBJECT_KIND_POD);
        pod->set_namespace_("default");
        pod->set_name("web");
        pod->set_revision(5);
        send(delta);
      }
    } else if (frame.has_status_delta()) {
      v1::Frame ack;
      ack.mutable_status_ack()->set_sequence(frame.status_delta().sequence());
      send(ack);
    }
  }
  void on_close(std::string_view) override {}

 private:
  void send(const v1::Frame& f) { conn_->send(f.SerializeAsString()); }
  std::shared_ptr<CloudLog> log_;
  std::shared_ptr<common::WsConnection> conn_;
};

TEST_CASE("hub: syncs objects, reports status and resumes after the cloud drops the link") {
  Pki pki;
  test::TempDir dir;
  common::EventLoop loop(1);
  loop.run();

  auto server_tls = common::TlsContext::create(
      common::TlsRole::kServer,
      {.cert_pem = pki.server_cert, .key_pem = pki.server_key, .ca_pem = pki.ca_pem});
  REQUIRE(server_tls.ok());
  auto log = std::make_shared<CloudLog>();
  common::WsServerOptions server_options;
  server_options.address = "127.0.0.1";
  server_options.handler_factory = [log](const common::PeerInfo&) {
    return std::make_unique<ScriptedCloud>(log);
  };
  auto server = common::WsServer::start(loop, *server_tls, server_options);
  REQUIRE(server.ok());

  auto meta = std::move(MetaStore::open(dir / "meta")).value();
  auto tracker = std::move(StatusTracker::load(*meta, {.node_name = "e1"})).value();
  auto client_tls = common::TlsContext::create(
      common::TlsRole::kClient,
      {.cert_pem = pki.client_cert, .key_pem = pki.client_key, .ca_pem = pki.ca_pem});
  REQUIRE(client_tls.ok());
  EdgeHubOptions options;
  options.host = "127.0.0.1";
  options.port = (*server)->port();
  options.backoff = {50ms, 200ms};
  options.batch_interval = 0ms;
  common::SeededRandom random(7);
  EdgeHub hub(loop, *client_tls, *meta, *tracker, options, common::system_clock(), random);
  hub.start();

  // Downstream: the object lands in the cache with its revision and is acknowledged.
  REQUIRE(test::eventually([&] { return !log->of(v1::Frame::kObjectAck).empty(); }));
  CHECK(log->of(v1::Frame::kObjectAck).back().object_ack().revision() == 5);
  CHECK(meta->applied_revision() == 5);
  CHECK(meta->get_object(v1::OBJECT_KIND_POD, "default", "web")->has_value());
  {
    std::lock_guard lock(log->mu);
    CHECK(log->common_names.at(0) == "system:node:e1");
  }

  // Upstream: a report goes out and is settled by the ack.
  v1::PodStatus running;
  running.set_phase(v1::POD_PHASE_RUNNING);
  REQUIRE(tracker->report_pod("default", "web", "uid-1", running).ok());
  REQUIRE(test::eventually([&] { return tracker->outbox_size() == 0; }));
  auto batches = log->of(v1::Frame::kStatusDelta);
  REQUIRE(batches.size() == 1);
  CHECK(batches[0].status_delta().entries(0).full());

  // The cloud drops the link: the hub reconnects and resumes from what it holds.
  {
    std::lock_guard lock(log->mu);
    log->last->close("test: going away");
  }
  REQUIRE(test::eventually([&] { return log->of(v1::Frame::kHello).size() == 2; }));
  auto hello = log->of(v1::Frame::kHello).back().hello();
  CHECK(hello.applied_revision() == 5);
  CHECK(hello.acked_sequence() == batches[0].status_delta().sequence());
  REQUIRE(test::eventually([&] { return hub.stats().connected; }));
  auto stats = hub.stats();
  CHECK(stats.connects == 2);
  CHECK(stats.disconnects == 1);
  CHECK(stats.resumes_incremental == 2);
  CHECK(stats.bytes_received > 0);

  hub.stop();
  (*server)->stop();
  loop.stop();
}

TEST_CASE("hub: a 503 at the upgrade is counted and retried") {
  Pki pki;
  test::TempDir dir;
  common::EventLoop loop(1);
  loop.run();
  auto server_tls = common::TlsContext::create(
      common::TlsRole::kServer,
      {.cert_pem = pki.server_cert, .key_pem = pki.server_key, .ca_pem = pki.ca_pem});
  REQUIRE(server_tls.ok());
  auto log = std::make_shared<CloudLog>();
  common::WsServerOptions server_options;
  server_options.address = "127.0.0.1";
  std::atomic<int> refusals{0};
  server_options.admit = [&](const common::PeerInfo&) {
    // Refuse the first attempt only; Retry-After 1 s is a floor for the next one.
    if (refusals.fetch_add(1) == 0) return common::Admission{503, 1, "busy"};
    return common::Admission{};
  };
  server_options.handler_factory = [log](const common::PeerInfo&) {
    return std::make_unique<ScriptedCloud>(log);
  };
  auto server = common::WsServer::start(loop, *server_tls, server_options);
  REQUIRE(server.ok());

  auto meta = std::move(MetaStore::open(dir / "meta")).value();
  auto tracker = std::move(StatusTracker::load(*meta, {.node_name = "e1"})).value();
  auto client_tls = common::TlsContext::create(
      common::TlsRole::kClient,
      {.cert_pem = pki.client_cert, .key_pem = pki.client_key, .ca_pem = pki.ca_pem});
  REQUIRE(client_tls.ok());
  EdgeHubOptions options;
  options.host = "127.0.0.1";
  options.port = (*server)->port();
  options.backoff = {50ms, 200ms};
  common::SeededRandom random(3);
  EdgeHub hub(loop, *client_tls, *meta, *tracker, options, common::system_clock(), random);
  hub.start();
  REQUIRE(test::eventually([&] { return hub.stats().connected; }));
  // The snapshot follows the Welcome: wait for it too.
  CHECK(test::eventually([&] { return meta->applied_revision() == 5; }));
  auto stats = hub.stats();
  CHECK(stats.refused_503 == 1);
  CHECK(stats.connect_failures == 1);
  hub.stop();
  (*server)->stop();
  loop.stop();
}

TEST_CASE("hub: several cloudcore addresses: a random start, stays while it works, moves on") {
  Pki pki;
  test::TempDir dir;
  common::EventLoop loop(1);
  loop.run();
  auto server_tls = common::TlsContext::create(
      common::TlsRole::kServer,
      {.cert_pem = pki.server_cert, .key_pem = pki.server_key, .ca_pem = pki.ca_pem});
  REQUIRE(server_tls.ok());
  // Two live replicas and an address where nothing listens.
  std::vector<std::shared_ptr<CloudLog>> logs;
  std::vector<std::unique_ptr<common::WsServer>> servers;
  for (int i = 0; i < 2; ++i) {
    auto log = std::make_shared<CloudLog>();
    common::WsServerOptions so;
    so.address = "127.0.0.1";
    so.handler_factory = [log](const common::PeerInfo&) {
      return std::make_unique<ScriptedCloud>(log);
    };
    auto server = common::WsServer::start(loop, *server_tls, so);
    REQUIRE(server.ok());
    logs.push_back(log);
    servers.push_back(std::move(server).value());
  }
  const uint16_t dead = test::free_port();
  EdgeHubOptions options;
  options.addresses = {
      {"127.0.0.1", dead}, {"127.0.0.1", servers[0]->port()}, {"127.0.0.1", servers[1]->port()}};
  options.backoff = {20ms, 100ms};
  options.batch_interval = 0ms;

  auto meta = std::move(MetaStore::open(dir / "meta")).value();
  auto tracker = std::move(StatusTracker::load(*meta, {.node_name = "e1"})).value();
  auto client_tls = common::TlsContext::create(
      common::TlsRole::kClient,
      {.cert_pem = pki.client_cert, .key_pem = pki.client_key, .ca_pem = pki.ca_pem});
  REQUIRE(client_tls.ok());

  // The first address is random: over a few seeds every one of the three comes first.
  std::set<std::string> firsts;
  for (uint64_t seed = 1; seed <= 30; ++seed) {
    common::SeededRandom r(seed);
    EdgeHub probe(loop, *client_tls, *meta, *tracker, options, common::system_clock(), r);
    firsts.insert(probe.stats().cloudcore);
  }
  CHECK(firsts.size() == 3);

  common::SeededRandom random(11);
  EdgeHub hub(loop, *client_tls, *meta, *tracker, options, common::system_clock(), random);
  hub.start();
  REQUIRE(test::eventually([&] { return hub.stats().connected; }));
  auto hellos = [&](int i) { return logs[i]->of(v1::Frame::kHello).size(); };
  const int first = hellos(0) == 1 ? 0 : 1;
  CHECK(hellos(first) == 1);
  CHECK(hellos(1 - first) == 0);
  CHECK(hub.stats().cloudcore == "127.0.0.1:" + std::to_string(servers[first]->port()));

  // It stays: nothing moves while the connection works.
  const uint64_t changes = hub.stats().address_changes;
  CHECK_FALSE(test::eventually([&] { return hub.stats().address_changes != changes; }, 300ms));

  // The replica it is on dies: the hub moves on (past the dead address if it comes next) to the
  // other live replica and resumes there.
  servers[first]->stop();
  {
    std::lock_guard lock(logs[first]->mu);
    if (logs[first]->last) logs[first]->last->close("test: replica killed");
  }
  REQUIRE(test::eventually([&] { return hellos(1 - first) == 1 && hub.stats().connected; }));
  CHECK(hub.stats().address_changes > changes);
  CHECK(hub.stats().cloudcore == "127.0.0.1:" + std::to_string(servers[1 - first]->port()));
  CHECK(logs[1 - first]->of(v1::Frame::kHello).back().hello().applied_revision() == 5);

  hub.stop();
  for (auto& s : servers) s->stop();
  loop.stop();
}

TEST_CASE("hub: cloudcore addresses that do not answer listed first: it still connects") {
  Pki pki;
  test::TempDir dir;
  common::EventLoop loop(1);
  loop.run();
  auto server_tls = common::TlsContext::create(
      common::TlsRole::kServer,
      {.cert_pem = pki.server_cert, .key_pem = pki.server_key, .ca_pem = pki.ca_pem});
  REQUIRE(server_tls.ok());
  auto log = std::make_shared<CloudLog>();
  common::WsServerOptions so;
  so.address = "127.0.0.1";
  so.handler_factory = [log](const common::PeerInfo&) {
    return std::make_unique<ScriptedCloud>(log);
  };
  auto live = common::WsServer::start(loop, *server_tls, so);
  REQUIRE(live.ok());
  // Two addresses that do not work: nothing listens on one (refused at once); the other accepts
  // TCP connections and never answers the TLS handshake (a hung replica: the handshake timeout).
  const uint16_t refused = test::free_port();
  int silent_fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(silent_fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(silent_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(silent_fd, 16) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(silent_fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const uint16_t silent = ntohs(addr.sin_port);

  EdgeHubOptions options;
  options.addresses = {
      {"127.0.0.1", refused}, {"127.0.0.1", silent}, {"127.0.0.1", (*live)->port()}};
  options.handshake_timeout = 300ms;
  options.backoff = {20ms, 100ms};
  options.batch_interval = 0ms;
  auto meta = std::move(MetaStore::open(dir / "meta")).value();
  auto tracker = std::move(StatusTracker::load(*meta, {.node_name = "e1"})).value();
  auto client_tls = common::TlsContext::create(
      common::TlsRole::kClient,
      {.cert_pem = pki.client_cert, .key_pem = pki.client_key, .ca_pem = pki.ca_pem});
  REQUIRE(client_tls.ok());

  // The order is random: take a seed whose order starts with the refused address, and one
  // whose order starts with the silent one.
  const uint16_t first = GENERATE(0, 1) == 0 ? refused : silent;
  const std::string first_text = "127.0.0.1:" + std::to_string(first);
  uint64_t seed = 0;
  for (uint64_t s = 1; s <= 100 && seed == 0; ++s) {
    common::SeededRandom r(s);
    EdgeHub probe(loop, *client_tls, *meta, *tracker, options, common::system_clock(), r);
    if (probe.stats().cloudcore == first_text) seed = s;
  }
  REQUIRE(seed != 0);
  common::SeededRandom random(seed);
  EdgeHub hub(loop, *client_tls, *meta, *tracker, options, common::system_clock(), random);
  hub.start();
  REQUIRE(test::eventually([&] { return hub.stats().connected; }, 20s));
  CHECK(hub.stats().cloudcore == "127.0.0.1:" + std::to_string((*live)->port()));
  CHECK(hub.stats().connect_failures >= 1);
  CHECK(hub.stats().address_changes >= 1);
  CHECK(log->of(v1::Frame::kHello).size() == 1);
  // And it syncs there as anywhere.
  REQUIRE(test::eventually([&] { return meta->applied_revision() == 5; }));

  hub.stop();
  (*live)->stop();
  ::close(silent_fd);
  loop.stop();
}

}  // namespace
}  // namespace gantry::edge
