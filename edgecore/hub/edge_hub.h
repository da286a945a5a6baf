// The edge's tunnel client: keeps one WebSocket connection to cloudcore up (jittered back-off,
// Retry-After honoured), feeds the cloud's frames to EdgeSync and sends what it returns, and sends
// status batches when the outbox has work (at most one round per batch_interval, to batch).
// All protocol decisions are EdgeSync's; this class only moves bytes and keeps time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

// common/net/tls.h names SSL_SESSION without declaring it.
#include <openssl/ssl.h>

#include "common/base/backoff.h"
#include "common/base/clock.h"
#include "common/net/event_loop.h"
#include "common/net/tls.h"
#include "edgecore/hub/cert_rotation.h"
#include "edgecore/hub/edge_sync.h"

namespace gantry::edge {

struct EdgeHubOptions {
  std::string host;
  uint16_t port = 10000;
  // Several cloudcore replicas: the tunnel addresses to use (empty: host and port above). The hub
  // goes through them in a random order, starting at a random one: it stays on an address while
  // it works and moves to the next after a failed attempt or a lost connection, with the usual
  // jittered back-off in between. (A host name that resolves to several addresses is tried
  // address by address by the connect itself.)
  struct Address {
    std::string host;
    uint16_t port = 10000;
  };
  std::vector<Address> addresses;
  std::string path = "/v1/tunnel";
  std::chrono::milliseconds ping_interval{std::chrono::seconds(15)};
  std::chrono::milliseconds idle_timeout{std::chrono::seconds(40)};
  std::chrono::milliseconds handshake_timeout{std::chrono::seconds(10)};
  size_t max_message_bytes = 1 << 20;
  common::BackoffOptions backoff;
  // Status changes within this window go out in one batch.
  std::chrono::milliseconds batch_interval{std::chrono::seconds(1)};
  EdgeSyncOptions sync;
  // Serves the cloud's streams (`kubectl logs`): edgecore wires edgecore/logs' LogStreams here.
  // Not owned; must outlive the hub. Unset: StreamOpen is answered with 501.
  StreamHandler* streams = nullptr;
  // The node's certificate: with it, every connect dials with its current TLS context (the
  // context passed to the constructor is then unused), checks it for expiry first, and renews it
  // over the tunnel when due (if enabled). Not owned; must outlive the hub.
  CertRotation* rotation = nullptr;
  // A CertificateRequest unanswered this long is abandoned and asked again later.
  std::chrono::milliseconds certificate_answer_timeout{std::chrono::seconds(60)};
  // With an expired certificate, connection attempts are at least this far apart (the cloud
  // refuses them; each attempt re-reads the files in case an operator replaced them).
  std::chrono::milliseconds expired_retry_interval{std::chrono::seconds(60)};
};

struct EdgeHubStats {
  uint64_t connect_attempts = 0;
  uint64_t connects = 0;  // sessions established
  uint64_t connect_failures = 0;
  uint64_t refused_503 = 0;
  uint64_t disconnects = 0;
  uint64_t protocol_errors = 0;  // we closed the connection over a bad frame or a write error
  uint64_t resumes_incremental = 0;
  uint64_t resumes_snapshot = 0;
  uint64_t objects_applied = 0;
  uint64_t status_batches_sent = 0;
  uint64_t bytes_sent = 0;  // WebSocket payload bytes
  uint64_t bytes_received = 0;
  uint64_t certificates_renewed = 0;
  uint64_t certificate_failures = 0;  // refused, unanswered or unusable renewals
  bool connected = false;             // a Welcome arrived on the current connection
  uint64_t address_changes = 0;       // moved on to another cloudcore address
  std::string cloudcore;              // the address in use or tried next ("host:port")
};

class EdgeHub {
 public:
  // `meta`, `tracker`, `clock` and `random` must outlive the hub.
  EdgeHub(common::EventLoop& loop, std::shared_ptr<common::TlsContext> tls, MetaStore& meta,
          StatusTracker& tracker, EdgeHubOptions options, const common::Clock& clock,
          common::Random& random);
  // Stops (see stop()).
  ~EdgeHub();
  EdgeHub(const EdgeHub&) = delete;
  EdgeHub& operator=(const EdgeHub&) = delete;

  // Starts connecting; returns immediately.
  void start();
  // Closes the connection and stops reconnecting. After it returns no callback touches the
  // MetaStore or the tracker. Idempotent.
  void stop();

  EdgeHubStats stats() const;

  // Queues `frame` on the current connection from any thread (the connection's own queue keeps
  // one write in flight and bounds what waits). False when no connection is up.
  bool send_frame(const v1::Frame& frame);

  struct Core;

 private:
  std::shared_ptr<Core> core_;
};

}  // namespace gantry::edge
