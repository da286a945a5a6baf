// The hub's side of certificate rotation over a real mutual-TLS tunnel, driven frame by frame by a
// scripted edge: what it signs, what it refuses (with a reason, the connection kept), and the
// expired certificates it turns away at the TLS handshake.
#include <openssl/ssl.h>

#include <catch2/catch.hpp>
#include <mutex>

#include "cloudcore/hub/hub.h"
#include "cloudcore/join/join.h"
#include "cloudcore/registry/registry.h"
#include "cloudcore/store/rocks_store.h"
#include "common/net/websocket.h"
#include "common/pki/pki.h"
#include "tests/support/test_support.h"

namespace gantry::cloud {
namespace {

using namespace std::chrono_literals;

struct Inbox {
  std::mutex mu;
  std::vector<v1::Frame> frames;
  std::string closed;  // the close reason, once closed
  bool is_closed = false;
  std::vector<v1::Frame> responses() {
    std::lock_guard lock(mu);
    std::vector<v1::Frame> out;
    for (const auto& f : frames) {
      if (f.has_certificate_response()) out.push_back(f);
    }
    return out;
  }
};

class ScriptedEdge final : public common::WsHandler {
 public:
  explicit ScriptedEdge(std::shared_ptr<Inbox> inbox) : inbox_(std::move(inbox)) {}
  void on_open(std::shared_ptr<common::WsConnection>) override {}
  void on_message(std::string_view data) override {
    v1::Frame frame;
    REQUIRE(frame.ParseFromArray(data.data(), static_cast<int>(data.size())));
    std::lock_guard lock(inbox_->mu);
    inbox_->frames.push_back(std::move(frame));
  }
  void on_close(std::string_view reason) override {
    std::lock_guard lock(inbox_->mu);
    inbox_->closed = std::string(reason);
    inbox_->is_closed = true;
  }

 private:
  std::shared_ptr<Inbox> inbox_;
};

// A cloud (store, registry, hub) with its own CA, and client certificates on demand.
struct Fixture {
  test::TempDir dir;
  common::ManualClock clock{std::chrono::system_clock::now()};
  common::PrivateKey ca_key = common::PrivateKey::generate().value();
  common::Certificate ca = common::create_ca(ca_key, "test-ca", 24h).value();
  common::EventLoop loop{2};
  std::unique_ptr<Store> store;
  std::unique_ptr<Registry> registry;
  std::unique_ptr<Hub> hub;
  std::shared_ptr<NodeCertificateSigner> signer;

  explicit Fixture(bool renewal = true) {
    loop.run();
    RocksStoreOptions store_options;
    store_options.path = (dir / "store").string();
    store = open_rocks_store(store_options).value();
    registry = Registry::start(*store).value();
    auto server_key = common::PrivateKey::generate().value();
    auto server = issue(server_key, "cloudcore", clock.system_now(), 1h);
    auto tls = common::TlsContext::create(
        common::TlsRole::kServer,
        {.cert_pem = server.to_pem(), .key_pem = server_key.to_pem(), .ca_pem = ca.to_pem()});
    REQUIRE(tls.ok());
    HubOptions options;
    options.address = "127.0.0.1";
    options.port = 0;
    if (renewal) {
      signer = std::make_shared<NodeCertificateSigner>(
          JoinCredentials{ca, common::PrivateKey::from_pem(ca_key.to_pem()).value(), "k"}, 60s,
          clock);
      options.renew_certificate = [s = signer](const std::string& node, std::string_view csr) {
        return s->sign(node, csr);
      };
    }
    hub = Hub::start(loop, *tls, *store, *registry, clock, options).value();
  }
  ~Fixture() {
    hub->stop();
    hub.reset();
    loop.stop();
  }

  common::Certificate issue(const common::PrivateKey& key, const std::string& cn,
                            std::chrono::system_clock::time_point now,
                            std::chrono::seconds lifetime) {
    common::CertificateSpec spec;
    spec.common_name = cn;
    spec.ip_addresses = {"127.0.0.1"};
    spec.lifetime = lifetime;
    spec.backdate = 0s;
    spec.now = now;
    return common::issue_certificate(key.get(), spec, ca, ca_key).value();
  }

  // A client TLS context for `cn` with a certificate valid from `now` for `lifetime`.
  std::shared_ptr<common::TlsContext> client_tls(const std::string& cn,
                                                 std::chrono::system_clock::time_point now,
                                                 std::chrono::seconds lifetime = 1h) {
    auto key = common::PrivateKey::generate().value();
    auto cert = issue(key, cn, now, lifetime);
    auto tls = common::TlsContext::create(
        common::TlsRole::kClient,
        {.cert_pem = cert.to_pem(), .key_pem = key.to_pem(), .ca_pem = ca.to_pem()});
    REQUIRE(tls.ok());
    return std::move(tls).value();
  }

  common::ConnectResult connect(const std::string& cn, std::shared_ptr<Inbox> inbox,
                                std::chrono::system_clock::time_point now,
                                std::chrono::seconds lifetime = 1h) {
    return connect(client_tls(cn, now, lifetime), std::move(inbox));
  }

  common::ConnectResult connect(std::shared_ptr<common::TlsContext> tls,
                                std::shared_ptr<Inbox> inbox) {
    common::WsClientOptions options;
    options.host = "127.0.0.1";
    options.port = hub->port();
    std::mutex mu;
    std::optional<common::ConnectResult> result;
    common::ws_connect(loop, tls, options, std::make_unique<ScriptedEdge>(inbox),
                       [&](common::ConnectResult r) {
                         std::lock_guard lock(mu);
                         result = std::move(r);
                       });
    REQUIRE(test::eventually(
        [&] {
          std::lock_guard lock(mu);
          return result.has_value();
        },
        30s));
    std::lock_guard lock(mu);
    return *result;
  }
};

void send(const common::ConnectResult& c, const v1::Frame& frame) {
  c.connection->send(frame.SerializeAsString());
}

void hello(const common::ConnectResult& c, Inbox& inbox) {
  v1::Frame frame;
  frame.mutable_hello()->set_protocol_version(1);
  send(c, frame);
  REQUIRE(test::eventually([&] {
    std::lock_guard lock(inbox.mu);
    return std::any_of(inbox.frames.begin(), inbox.frames.end(),
                       [](const v1::Frame& f) { return f.has_welcome(); });
  }));
}

v1::Frame request_for(const common::PrivateKey& key, const std::string& cn) {
  v1::Frame frame;
  frame.mutable_certificate_request()->set_csr_pem(common::create_csr(key, cn).value());
  return frame;
}

// Sends `request` and returns the answer.
v1::CertificateResponse ask(const common::ConnectResult& c, Inbox& inbox,
                            const v1::Frame& request) {
  const size_t before = inbox.responses().size();
  send(c, request);
  REQUIRE(test::eventually([&] { return inbox.responses().size() == before + 1; }));
  return inbox.responses().back().certificate_response();
}

TEST_CASE(
    "hub: renews the session's node certificate and refuses bad requests with a reason while the "
    "tunnel stays up") {
  Fixture f;
  auto inbox = std::make_shared<Inbox>();
  auto c = f.connect("system:node:e1", inbox, f.clock.system_now());
  REQUIRE(c.ok());
  hello(c, *inbox);
  auto key = common::PrivateKey::generate().value();

  // A CSR for another node: the identity is the TLS session's.
  auto r = ask(c, *inbox, request_for(key, "system:node:e2"));
  CHECK(r.certificate_pem().empty());
  CHECK(r.error() ==
        "the certificate request's CN is 'system:node:e2'; this connection is node e1, so it must "
        "be 'system:node:e1'");
  f.clock.advance(11s);

  v1::Frame garbage;
  garbage.mutable_certificate_request()->set_csr_pem("-----BEGIN CERTIFICATE REQUEST-----\nAAAA");
  r = ask(c, *inbox, garbage);
  CHECK(r.error().rfind("the certificate request is not valid: ", 0) == 0);
  f.clock.advance(11s);

  r = ask(c, *inbox, request_for(key, "system:node:e1"));
  INFO(r.error());
  REQUIRE(r.error().empty());
  auto cert = common::Certificate::from_pem(r.certificate_pem());
  REQUIRE(cert.ok());
  CHECK(cert->common_name() == "system:node:e1");
  CHECK(X509_check_private_key(cert->get(), key.get()) == 1);
  CHECK(common::verify_certificate(*cert, {f.ca}, f.clock.system_now()).ok());
  CHECK(cert->not_after() - cert->not_before() == 60s + node_certificate_backdate(60s));

  // One request per node per 10 s.
  r = ask(c, *inbox, request_for(key, "system:node:e1"));
  CHECK(r.error() == "too many certificate requests; retry in 10 s");

  CHECK(f.hub->connected("e1"));
  std::lock_guard lock(inbox->mu);
  CHECK_FALSE(inbox->is_closed);
  CHECK(f.hub->stats().certificates_renewed == 1);
  CHECK(f.hub->stats().certificate_requests_refused == 3);
  CHECK(f.hub->stats().protocol_violations == 0);
}

TEST_CASE("hub: without a signer a certificate request is answered that renewal is not enabled") {
  Fixture f(/*renewal=*/false);
  auto inbox = std::make_shared<Inbox>();
  auto c = f.connect("system:node:e1", inbox, f.clock.system_now());
  REQUIRE(c.ok());
  hello(c, *inbox);
  auto key = common::PrivateKey::generate().value();
  auto r = ask(c, *inbox, request_for(key, "system:node:e1"));
  CHECK(r.error() == "certificate renewal is not enabled on this cloudcore (no join: section)");
  CHECK(f.hub->connected("e1"));
}

TEST_CASE("hub: an expired node certificate is refused at the TLS handshake and counted") {
  Fixture f;
  auto inbox = std::make_shared<Inbox>();
  auto c = f.connect("system:node:e1", inbox, std::chrono::system_clock::now() - 2h, 1h);
  REQUIRE_FALSE(c.ok());
  CHECK(c.error->kind == common::ConnectError::Kind::kTls);
  CHECK(test::eventually([&] { return f.hub->stats().refused_expired == 1; }));
  CHECK_FALSE(f.hub->connected("e1"));
}

TEST_CASE("hub: a resumed TLS session whose certificate expired since is refused at the upgrade") {
  Fixture f;
  auto tls = f.client_tls("system:node:e1", f.clock.system_now(), 1h);
  auto inbox = std::make_shared<Inbox>();
  auto first = f.connect(tls, inbox);
  REQUIRE(first.ok());
  hello(first, *inbox);
  REQUIRE(test::eventually([&] { return tls->has_session(); }));  // the TLS 1.3 ticket
  first.connection->close("bye");
  REQUIRE(test::eventually([&] { return !f.hub->connected("e1"); }));

  // By the hub's clock the certificate has expired; the resumed handshake does not look at it.
  f.clock.advance(2h);
  auto second = f.connect(tls, std::make_shared<Inbox>());
  REQUIRE_FALSE(second.ok());
  CHECK(second.error->kind == common::ConnectError::Kind::kHttpRefused);
  CHECK(second.error->http_status == 403);
  CHECK(second.error->body.rfind("the certificate of node e1 expired at ", 0) == 0);
  CHECK(f.hub->stats().refused_expired == 1);
}

}  // namespace
}  // namespace gantry::cloud
