// WebSocket over TLS between a WsServer and ws_connect clients on 127.0.0.1, with certificates
// minted by common/pki.
#include "common/net/websocket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "common/net/event_loop.h"
#include "tests/integration/common/net/net_test_support.h"
#include "tests/support/test_support.h"

namespace gantry::common {
namespace {

using gantry::test::eventually;
using testing::client_tls;
using testing::connect_and_wait;
using testing::Inbox;
using testing::RecordingHandler;
using testing::server_tls;
using testing::TestCa;

// A running server whose handlers record into per-connection inboxes (and echo when asked).
class ServerFixture {
 public:
  explicit ServerFixture(WsServerOptions options = {}, bool echo = true,
                         std::shared_ptr<TlsContext> tls = nullptr)
      : ca_("test-ca"), loop_(2), client_loop_(2) {
    options.address = "127.0.0.1";
    options.port = 0;
    options.handler_factory = [this, echo](const PeerInfo&) -> std::unique_ptr<WsHandler> {
      auto inbox = std::make_shared<Inbox>();
      {
        std::lock_guard lock(mu_);
        server_inboxes_.push_back(inbox);
      }
      return std::make_unique<RecordingHandler>(inbox, echo);
    };
    auto server = WsServer::start(loop_, tls ? tls : server_tls(ca_), std::move(options));
    REQUIRE(server.ok());
    server_ = std::move(*server);
    loop_.run();
    client_loop_.run();
  }

  ~ServerFixture() {
    server_->stop();
    // Let the close handshakes run before the loops go away.
    eventually([&] { return server_->stats().open_connections == 0; }, std::chrono::seconds(10));
    client_loop_.stop();
    loop_.stop();
  }

  WsClientOptions client_options() const {
    WsClientOptions options;
    options.host = "127.0.0.1";
    options.port = server_->port();
    return options;
  }

  std::vector<std::shared_ptr<Inbox>> server_inboxes() {
    std::lock_guard lock(mu_);
    return server_inboxes_;
  }

  TestCa ca_;
  EventLoop loop_;
  EventLoop client_loop_;
  std::unique_ptr<WsServer> server_;
  std::mutex mu_;
  std::vector<std::shared_ptr<Inbox>> server_inboxes_;
};

TEST_CASE(
    "mutual-TLS client and server exchange binary frames both ways and the server sees "
    "the client's CN",
    "[net][websocket]") {
  ServerFixture fixture({}, /*echo=*/false);
  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");
  auto client = std::make_shared<Inbox>();
  auto result = connect_and_wait(fixture.client_loop_, tls, fixture.client_options(), client);
  REQUIRE(result.ok());
  CHECK(result.connection->peer().common_name == "gantry-cloud");

  const std::string upstream(
      "edge\0to\xff"
      "cloud",
      14);
  result.connection->send(upstream);
  REQUIRE(eventually([&] { return fixture.server_inboxes().size() == 1; }));
  auto server_side = fixture.server_inboxes()[0];
  REQUIRE(eventually([&] { return server_side->message_count == 1; }));
  CHECK(server_side->snapshot()[0] == upstream);
  CHECK(server_side->peer.common_name == "system:node:edge-1");
  CHECK(node_name_from_common_name(server_side->peer.common_name) == "edge-1");

  const std::string downstream(std::string(100000, 'x') + std::string(1, '\0'));
  server_side->conn()->send(downstream);
  REQUIRE(eventually([&] { return client->message_count == 1; }));
  CHECK(client->snapshot()[0] == downstream);

  // Byte counters come from the kernel and include TLS framing.
  CHECK(eventually([&] {
    auto conn = client->conn();
    return conn && conn->bytes_received() > downstream.size() &&
           conn->bytes_sent() > upstream.size();
  }));

  result.connection->close("bye");
  REQUIRE(eventually([&] { return server_side->closed && client->closed; }));
  CHECK(server_side->reason() == "bye");
  CHECK(client->reason() == "bye");
}

TEST_CASE("close() after several sends delivers every queued message, then the close",
          "[net][websocket]") {
  ServerFixture fixture({}, /*echo=*/false);
  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");
  auto client = std::make_shared<Inbox>();
  auto result = connect_and_wait(fixture.client_loop_, tls, fixture.client_options(), client);
  REQUIRE(result.ok());
  REQUIRE(eventually([&] { return fixture.server_inboxes().size() == 1; }));
  auto server_side = fixture.server_inboxes()[0];
  REQUIRE(eventually([&] { return server_side->conn() != nullptr; }));
  // Several messages queued behind a large one still in flight when close() comes.
  server_side->conn()->send(std::string(1 << 20, 'x'));
  for (int i = 0; i < 5; ++i) server_side->conn()->send("m" + std::to_string(i));
  server_side->conn()->close("end");
  REQUIRE(eventually([&] { return client->closed.load(); }, std::chrono::seconds(20)));
  auto got = client->snapshot();
  REQUIRE(got.size() == 6);
  CHECK(got[5] == "m4");
  CHECK(client->reason() == "end");
}

TEST_CASE("a client without a certificate is refused with a TLS failure", "[net][websocket]") {
  ServerFixture fixture;
  auto tls = client_tls(fixture.ca_, nullptr, "");
  auto client = std::make_shared<Inbox>();
  auto result = connect_and_wait(fixture.client_loop_, tls, fixture.client_options(), client);
  REQUIRE_FALSE(result.ok());
  REQUIRE(result.error.has_value());
  INFO(result.error->message);
  CHECK(result.error->kind == ConnectError::Kind::kTls);
  CHECK_FALSE(client->opened);
  CHECK(fixture.server_inboxes().empty());
}

TEST_CASE("a client with a certificate from another CA is refused with a TLS failure",
          "[net][websocket]") {
  ServerFixture fixture;
  TestCa other_ca("other-ca");
  auto tls = client_tls(fixture.ca_, &other_ca, "system:node:intruder");
  auto result = connect_and_wait(fixture.client_loop_, tls, fixture.client_options(),
                                 std::make_shared<Inbox>());
  REQUIRE_FALSE(result.ok());
  INFO(result.error->message);
  CHECK(result.error->kind == ConnectError::Kind::kTls);
  CHECK(fixture.server_inboxes().empty());
  CHECK(eventually([&] { return fixture.server_->stats().handshake_failures >= 1; }));
}

TEST_CASE("a client that does not trust the server's CA fails with a certificate error",
          "[net][websocket]") {
  ServerFixture fixture;
  TestCa other_ca("other-ca");
  auto tls = client_tls(other_ca, &fixture.ca_, "system:node:edge-1");
  auto result = connect_and_wait(fixture.client_loop_, tls, fixture.client_options(),
                                 std::make_shared<Inbox>());
  REQUIRE_FALSE(result.ok());
  INFO(result.error->message);
  CHECK(result.error->kind == ConnectError::Kind::kTls);
  CHECK_THAT(result.error->message, Catch::Contains("certificate"));
}

TEST_CASE("a closed port gives a TCP failure naming the address", "[net][websocket]") {
  ServerFixture fixture;
  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");
  auto options = fixture.client_options();
  options.port = gantry::test::free_port();
  auto result = connect_and_wait(fixture.client_loop_, tls, options, std::make_shared<Inbox>());
  REQUIRE_FALSE(result.ok());
  INFO(result.error->message);
  CHECK(result.error->kind == ConnectError::Kind::kTcp);
  CHECK_THAT(result.error->message, Catch::Contains("127.0.0.1:" + std::to_string(options.port)));
}

TEST_CASE("a server that never answers the TLS handshake gives a timeout", "[net][websocket]") {
  ServerFixture fixture;
  // A listening socket nobody accepts from: the kernel completes the TCP handshake, then silence.
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(listener >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0);
  REQUIRE(listen(listener, 16) == 0);
  socklen_t length = sizeof(address);
  REQUIRE(getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);

  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");
  auto options = fixture.client_options();
  options.port = ntohs(address.sin_port);
  options.handshake_timeout = std::chrono::milliseconds(300);
  auto result = connect_and_wait(fixture.client_loop_, tls, options, std::make_shared<Inbox>());
  close(listener);
  REQUIRE_FALSE(result.ok());
  INFO(result.error->message);
  CHECK(result.error->kind == ConnectError::Kind::kTimeout);
}

TEST_CASE("a client bound to another loopback source address is seen from that address",
          "[net][websocket]") {
  ServerFixture fixture;
  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");
  auto options = fixture.client_options();
  options.local_address = "127.0.0.5";
  auto client = std::make_shared<Inbox>();
  auto result = connect_and_wait(fixture.client_loop_, tls, options, client);
  REQUIRE(result.ok());
  REQUIRE(eventually([&] { return fixture.server_inboxes().size() == 1; }));
  auto server_side = fixture.server_inboxes()[0];
  REQUIRE(eventually([&] { return server_side->opened.load(); }));
  CHECK_THAT(server_side->peer.remote_address, Catch::StartsWith("127.0.0.5:"));
  result.connection->close("bye");
}

TEST_CASE("an unknown path is refused with HTTP 404", "[net][websocket]") {
  ServerFixture fixture;
  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");
  auto options = fixture.client_options();
  options.path = "/v1/elsewhere";
  auto result = connect_and_wait(fixture.client_loop_, tls, options, std::make_shared<Inbox>());
  REQUIRE_FALSE(result.ok());
  CHECK(result.error->kind == ConnectError::Kind::kHttpRefused);
  CHECK(result.error->http_status == 404);
}

TEST_CASE(
    "admission returning 503 with Retry-After 7 gives the client an HTTP refusal with 503 "
    "and 7",
    "[net][websocket]") {
  WsServerOptions options;
  std::atomic<int> asked{0};
  options.admit = [&asked](const PeerInfo& peer) {
    asked++;
    CHECK(peer.common_name == "system:node:edge-1");
    return Admission{503, 7, "too many handshakes"};
  };
  ServerFixture fixture(options);
  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");
  auto result = connect_and_wait(fixture.client_loop_, tls, fixture.client_options(),
                                 std::make_shared<Inbox>());
  REQUIRE_FALSE(result.ok());
  INFO(result.error->message);
  CHECK(result.error->kind == ConnectError::Kind::kHttpRefused);
  CHECK(result.error->http_status == 503);
  CHECK(result.error->retry_after_seconds == 7);
  CHECK(result.error->body == "too many handshakes");
  CHECK(asked == 1);
  CHECK(fixture.server_->stats().refused_admission == 1);
  CHECK(fixture.server_inboxes().empty());
}

TEST_CASE("a message above the size limit closes only that connection", "[net][websocket]") {
  WsServerOptions options;
  options.max_message_bytes = 1024;
  ServerFixture fixture(options, /*echo=*/true);
  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");
  auto offender = std::make_shared<Inbox>();
  auto bystander = std::make_shared<Inbox>();
  auto bad = connect_and_wait(fixture.client_loop_, tls, fixture.client_options(), offender);
  auto good = connect_and_wait(fixture.client_loop_, tls, fixture.client_options(), bystander);
  REQUIRE(bad.ok());
  REQUIRE(good.ok());

  bad.connection->send(std::string(4096, 'b'));
  REQUIRE(eventually([&] { return offender->closed.load(); }));
  CHECK(eventually([&] { return fixture.server_->stats().closed_too_big == 1; }));
  CHECK_FALSE(bystander->closed);

  for (int i = 0; i < 5; ++i) good.connection->send("still here " + std::to_string(i));
  REQUIRE(eventually([&] { return bystander->message_count == 5; }));
  CHECK(bystander->snapshot().back() == "still here 4");
  CHECK_FALSE(bystander->closed);
  CHECK(good.connection->is_open());
}

TEST_CASE(
    "the server survives 200 clients connecting at once, all exchange a frame and close "
    "cleanly",
    "[net][websocket]") {
  WsServerOptions options;
  options.max_concurrent_handshakes = 16;  // forces the accept loop to pause and resume
  ServerFixture fixture(options, /*echo=*/true);
  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");
  constexpr int kClients = 200;
  std::vector<std::shared_ptr<Inbox>> inboxes;
  std::mutex mu;
  std::vector<ConnectResult> results;
  for (int i = 0; i < kClients; ++i) {
    auto inbox = std::make_shared<Inbox>();
    inboxes.push_back(inbox);
    auto options = fixture.client_options();
    options.handshake_timeout = std::chrono::seconds(60);
    ws_connect(fixture.client_loop_, tls, options, std::make_unique<RecordingHandler>(inbox, false),
               [&mu, &results, i](ConnectResult result) {
                 if (result.ok()) result.connection->send("hello " + std::to_string(i));
                 std::lock_guard lock(mu);
                 results.push_back(std::move(result));
               });
  }
  REQUIRE(eventually(
      [&] {
        std::lock_guard lock(mu);
        return results.size() == kClients;
      },
      std::chrono::seconds(120)));
  int failures = 0;
  for (auto& result : results) {
    if (!result.ok()) {
      UNSCOPED_INFO(result.error->message);
      failures++;
    }
  }
  REQUIRE(failures == 0);
  REQUIRE(eventually(
      [&] {
        for (auto& inbox : inboxes) {
          if (inbox->message_count != 1) return false;
        }
        return true;
      },
      std::chrono::seconds(60)));
  for (int i = 0; i < kClients; ++i)
    CHECK(inboxes[i]->snapshot()[0] == "hello " + std::to_string(i));
  CHECK(fixture.server_->stats().open_connections == kClients);

  for (auto& inbox : inboxes) inbox->conn()->close("done");
  REQUIRE(eventually(
      [&] {
        for (auto& inbox : inboxes) {
          if (!inbox->closed) return false;
        }
        return fixture.server_->stats().open_connections == 0;
      },
      std::chrono::seconds(60)));
  for (auto& inbox : inboxes) CHECK(inbox->reason() == "done");
  for (auto& inbox : fixture.server_inboxes()) CHECK(inbox->reason() == "done");
  CHECK(fixture.server_->stats().handshake_failures == 0);
}

TEST_CASE("the idle timeout closes a silent connection while a pinging client stays connected",
          "[net][websocket]") {
  WsServerOptions options;
  options.idle_timeout = std::chrono::seconds(1);
  ServerFixture fixture(options);
  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");

  auto silent_options = fixture.client_options();
  silent_options.ping_interval = std::chrono::milliseconds(0);
  silent_options.idle_timeout = std::chrono::milliseconds(0);
  auto pinging_options = fixture.client_options();
  pinging_options.ping_interval = std::chrono::milliseconds(300);
  pinging_options.idle_timeout = std::chrono::seconds(30);

  const auto start = std::chrono::steady_clock::now();
  auto silent = std::make_shared<Inbox>();
  auto pinging = std::make_shared<Inbox>();
  auto silent_result = connect_and_wait(fixture.client_loop_, tls, silent_options, silent);
  auto pinging_result = connect_and_wait(fixture.client_loop_, tls, pinging_options, pinging);
  REQUIRE(silent_result.ok());
  REQUIRE(pinging_result.ok());

  REQUIRE(eventually([&] { return silent->closed.load(); }));
  CHECK(silent->reason() == "idle timeout");
  // Wait until well past three idle timeouts: the pinging client must still be there.
  REQUIRE(eventually(
      [&] { return std::chrono::steady_clock::now() - start > std::chrono::milliseconds(3500); }));
  CHECK_FALSE(pinging->closed);
  CHECK(pinging_result.connection->is_open());
  CHECK(fixture.server_->stats().closed_idle == 1);
  pinging_result.connection->send("after the idle timeout");
  CHECK(eventually([&] { return pinging->message_count == 1; }));
}

TEST_CASE("a reconnecting client resumes its TLS session", "[net][websocket]") {
  ServerFixture fixture;
  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");

  auto first = std::make_shared<Inbox>();
  auto first_result = connect_and_wait(fixture.client_loop_, tls, fixture.client_options(), first);
  REQUIRE(first_result.ok());
  CHECK_FALSE(first_result.connection->peer().tls_resumed);
  // A round trip: TLS 1.3 session tickets arrive after the handshake.
  first_result.connection->send("ping");
  REQUIRE(eventually([&] { return first->message_count == 1; }));
  REQUIRE(eventually([&] { return tls->has_session(); }));
  first_result.connection->close("reconnecting");
  REQUIRE(eventually([&] { return first->closed.load(); }));

  auto second = std::make_shared<Inbox>();
  auto second_result =
      connect_and_wait(fixture.client_loop_, tls, fixture.client_options(), second);
  REQUIRE(second_result.ok());
  CHECK(second_result.connection->peer().tls_resumed);
  // The server still knows who the client is on a resumed session.
  REQUIRE(eventually([&] { return fixture.server_inboxes().size() == 2; }));
  auto server_side = fixture.server_inboxes()[1];
  REQUIRE(eventually([&] { return server_side->opened.load(); }));
  CHECK(server_side->peer.tls_resumed);
  CHECK(server_side->peer.common_name == "system:node:edge-1");
  second_result.connection->close("bye");
}

TEST_CASE("stopping the server closes every connection with a reason", "[net][websocket]") {
  ServerFixture fixture;
  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");
  auto client = std::make_shared<Inbox>();
  auto result = connect_and_wait(fixture.client_loop_, tls, fixture.client_options(), client);
  REQUIRE(result.ok());
  REQUIRE(eventually([&] { return fixture.server_inboxes().size() == 1; }));
  auto server_side = fixture.server_inboxes()[0];
  REQUIRE(eventually([&] { return server_side->opened.load(); }));
  fixture.server_->stop();
  REQUIRE(eventually([&] { return client->closed.load(); }));
  CHECK(client->reason() == "server shutting down");
  REQUIRE(eventually([&] { return server_side->closed.load(); }));
  CHECK(server_side->reason() == "server shutting down");
}

TEST_CASE("a close reason longer than a close frame holds is truncated", "[net][websocket]") {
  ServerFixture fixture;
  auto tls = client_tls(fixture.ca_, &fixture.ca_, "system:node:edge-1");
  auto client = std::make_shared<Inbox>();
  auto result = connect_and_wait(fixture.client_loop_, tls, fixture.client_options(), client);
  REQUIRE(result.ok());
  REQUIRE(eventually([&] { return fixture.server_inboxes().size() == 1; }));
  auto server_side = fixture.server_inboxes()[0];
  result.connection->close(std::string(300, 'r'));
  REQUIRE(eventually([&] { return server_side->closed && client->closed; }));
  CHECK(server_side->reason() == std::string(123, 'r'));
}

}  // namespace
}  // namespace gantry::common
