// Certificates and recording handlers shared by the common/net integration tests.
#pragma once

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/net/tls.h"
#include "common/net/websocket.h"
#include "common/pki/pki.h"

namespace gantry::common::testing {

struct KeyAndCert {
  std::string cert_pem;
  std::string key_pem;
};

// A throw-away CA that issues server and client certificates for 127.0.0.1.
class TestCa {
 public:
  explicit TestCa(const std::string& name)
      : key_(PrivateKey::generate().value()),
        cert_(create_ca(key_, name, std::chrono::hours(24)).value()) {}

  std::string ca_pem() const { return cert_.to_pem(); }

  KeyAndCert issue(const std::string& common_name) const {
    auto key = PrivateKey::generate().value();
    CertificateSpec spec;
    spec.common_name = common_name;
    spec.dns_names = {"localhost"};
    spec.ip_addresses = {"127.0.0.1"};
    spec.lifetime = std::chrono::hours(24);
    auto cert = issue_certificate(key.get(), spec, cert_, key_).value();
    return {cert.to_pem(), key.to_pem()};
  }

 private:
  PrivateKey key_;
  Certificate cert_;
};

inline std::shared_ptr<TlsContext> server_tls(const TestCa& ca, bool verify_peer = true) {
  auto cert = ca.issue("gantry-cloud");
  TlsOptions options;
  options.cert_pem = cert.cert_pem;
  options.key_pem = cert.key_pem;
  options.ca_pem = ca.ca_pem();
  options.verify_peer = verify_peer;
  auto tls = TlsContext::create(TlsRole::kServer, options);
  REQUIRE(tls.ok());
  return *tls;
}

// A client context trusting `server_ca`, with a certificate from `client_ca` (none when null).
inline std::shared_ptr<TlsContext> client_tls(const TestCa& server_ca, const TestCa* client_ca,
                                              const std::string& common_name) {
  TlsOptions options;
  if (client_ca != nullptr) {
    auto cert = client_ca->issue(common_name);
    options.cert_pem = cert.cert_pem;
    options.key_pem = cert.key_pem;
  }
  options.ca_pem = server_ca.ca_pem();
  options.verify_peer = true;
  auto tls = TlsContext::create(TlsRole::kClient, options);
  REQUIRE(tls.ok());
  return *tls;
}

// What one side of a connection saw; shared between the handler and the test thread.
struct Inbox {
  std::mutex mu;
  std::vector<std::string> messages;
  std::shared_ptr<WsConnection> connection;
  std::optional<std::string> close_reason;
  PeerInfo peer;
  std::atomic<bool> opened{false};
  std::atomic<bool> closed{false};
  std::atomic<int> message_count{0};

  std::vector<std::string> snapshot() {
    std::lock_guard lock(mu);
    return messages;
  }
  std::shared_ptr<WsConnection> conn() {
    std::lock_guard lock(mu);
    return connection;
  }
  std::string reason() {
    std::lock_guard lock(mu);
    return close_reason.value_or("");
  }
};

class RecordingHandler : public WsHandler {
 public:
  RecordingHandler(std::shared_ptr<Inbox> inbox, bool echo)
      : inbox_(std::move(inbox)), echo_(echo) {}

  void on_open(std::shared_ptr<WsConnection> connection) override {
    std::lock_guard lock(inbox_->mu);
    inbox_->peer = connection->peer();
    inbox_->connection = std::move(connection);
    inbox_->opened = true;
  }
  void on_message(std::string_view data) override {
    std::shared_ptr<WsConnection> connection;
    {
      std::lock_guard lock(inbox_->mu);
      inbox_->messages.emplace_back(data);
      connection = inbox_->connection;
    }
    inbox_->message_count++;
    if (echo_ && connection) connection->send(std::string(data));
  }
  void on_close(std::string_view reason) override {
    std::lock_guard lock(inbox_->mu);
    inbox_->close_reason = std::string(reason);
    inbox_->connection.reset();  // breaks the connection <-> handler cycle
    inbox_->closed = true;
  }

 private:
  std::shared_ptr<Inbox> inbox_;
  bool echo_;
};

// Connects and waits for the result (generous deadline: the machine is loaded).
inline ConnectResult connect_and_wait(EventLoop& loop, std::shared_ptr<TlsContext> tls,
                                      WsClientOptions options, std::shared_ptr<Inbox> inbox) {
  auto promise = std::make_shared<std::promise<ConnectResult>>();
  auto future = promise->get_future();
  ws_connect(loop, std::move(tls), std::move(options),
             std::make_unique<RecordingHandler>(std::move(inbox), false),
             [promise](ConnectResult result) { promise->set_value(std::move(result)); });
  REQUIRE(future.wait_for(std::chrono::seconds(60)) == std::future_status::ready);
  return future.get();
}

}  // namespace gantry::common::testing
