// WebSocket over TLS: a server (the cloud's tunnel endpoint) and a client (the edge's tunnel, and
// the fleet simulator's 10,000+ of them). Binary messages only. Both sides hand the application
// the same pair: a WsConnection handle to send on, and a WsHandler it implements.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "common/net/event_loop.h"
#include "common/net/tls.h"

namespace gantry::common {

struct PeerInfo {
  std::string common_name;     // the peer certificate's CN ("" without a certificate)
  std::string remote_address;  // "127.0.0.1:51234"
  bool tls_resumed = false;    // the TLS handshake resumed an earlier session
  // The peer certificate's notAfter (epoch without a certificate). A resumed session carries the
  // certificate of the handshake it resumes, which may have expired since.
  std::chrono::system_clock::time_point certificate_not_after{};
};

// A thread-safe handle on one connection; every method may be called from any thread (work is
// posted onto the connection's strand). Calls after the connection closed are ignored.
class WsConnection {
 public:
  virtual ~WsConnection() = default;
  // Queues one binary message. When the queued bytes pass max_queued_bytes the connection is
  // closed with "send queue full" instead (a peer that does not read is shed, not buffered for).
  virtual void send(std::string message) = 0;
  // WebSocket close (normal closure) with `reason` (at most 123 bytes are sent), after the
  // messages already queued.
  virtual void close(std::string reason) = 0;
  virtual const PeerInfo& peer() const = 0;
  // Runs `fn` on this connection's strand (where the handler's callbacks run).
  virtual void post(std::function<void()> fn) = 0;
  // Bytes at the TCP socket (TLS and WebSocket framing included) from the kernel's TCP_INFO, as of
  // the last completed read or write.
  virtual uint64_t bytes_sent() const = 0;
  virtual uint64_t bytes_received() const = 0;
  virtual bool is_open() const = 0;
  // Stops (true) or resumes reading messages: a handler's flow control. Pings still need reads,
  // so keep pauses short of the idle timeout. Default: not supported (reads go on).
  virtual void pause_reading(bool paused) { (void)paused; }
};

// The application side of one connection. Called on the connection's strand, one call at a time.
class WsHandler {
 public:
  virtual ~WsHandler() = default;
  virtual void on_open(std::shared_ptr<WsConnection> connection) = 0;
  virtual void on_message(std::string_view data) = 0;
  // Exactly once after on_open, whatever ended the connection: a close from either side (its
  // reason), a limit ("message too big", "idle timeout", "send queue full") or a network error.
  // The handler is destroyed after this returns.
  virtual void on_close(std::string_view reason) = 0;
};

// The server's answer at the HTTP upgrade (after the TLS handshake): 101 accepts; anything else
// refuses with that status, a Retry-After header when retry_after_seconds > 0, and `reason` as
// the body.
struct Admission {
  int status = 101;
  int retry_after_seconds = 0;
  std::string reason;
};

struct WsServerOptions {
  std::string address = "0.0.0.0";
  uint16_t port = 0;  // 0: the kernel picks; see WsServer::port()
  std::string path = "/v1/tunnel";
  size_t max_message_bytes = 1 << 20;
  size_t max_queued_bytes = 8 << 20;
  std::chrono::milliseconds handshake_timeout{10'000};  // TLS handshake + HTTP upgrade
  std::chrono::milliseconds idle_timeout{40'000};       // no frame at all (pings count)
  // Past this many TLS/upgrade handshakes at once the server stops accepting until one ends;
  // further clients wait in the kernel's accept queue.
  int max_concurrent_handshakes = 256;
  int listen_backlog = 4096;
  // Both run on loop threads, possibly several at once.
  std::function<Admission(const PeerInfo&)> admit;  // unset: admit everyone
  std::function<std::unique_ptr<WsHandler>(const PeerInfo&)> handler_factory;  // required
};

struct WsServerStats {
  std::atomic<uint64_t> accepted{0};            // TCP connections accepted
  std::atomic<uint64_t> opened{0};              // WebSocket sessions opened
  std::atomic<uint64_t> open_connections{0};    // currently open WebSocket sessions
  std::atomic<uint64_t> handshake_failures{0};  // TLS or upgrade failed / timed out
  std::atomic<uint64_t> refused_path{0};        // 404
  std::atomic<uint64_t> refused_admission{0};   // admit() said no
  std::atomic<uint64_t> closed_too_big{0};
  std::atomic<uint64_t> closed_queue_full{0};
  std::atomic<uint64_t> closed_idle{0};
  std::atomic<uint64_t> throttled_accepts{0};  // times accepting paused at the handshake bound
};

class WsServer {
 public:
  // Binds and starts accepting on `loop` (which must be running or be run() later).
  static Result<std::unique_ptr<WsServer>> start(EventLoop& loop, std::shared_ptr<TlsContext> tls,
                                                 WsServerOptions options);
  // Stops (see stop()).
  ~WsServer();
  WsServer(const WsServer&) = delete;
  WsServer& operator=(const WsServer&) = delete;

  uint16_t port() const;
  const WsServerStats& stats() const;
  // Closes the listener and sends a close ("server shutting down") on every connection; returns
  // without waiting for the peers. Idempotent.
  void stop();

  struct State;

 private:
  explicit WsServer(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

struct WsClientOptions {
  std::string host;  // DNS name or IP literal
  uint16_t port = 0;
  std::string path = "/v1/tunnel";
  std::string local_address;  // bind the source address (e.g. "127.0.0.5"); empty: any
  // This connection's client certificate and key instead of the context's (see TlsIdentity).
  std::shared_ptr<TlsIdentity> identity;
  size_t max_message_bytes = 1 << 20;
  size_t max_queued_bytes = 8 << 20;
  std::chrono::milliseconds handshake_timeout{10'000};  // TCP connect + TLS + upgrade
  // A WebSocket ping when nothing was sent for this long; zero disables pings.
  std::chrono::milliseconds ping_interval{15'000};
  // Close when nothing at all (pongs included) arrived for this long; zero disables.
  std::chrono::milliseconds idle_timeout{40'000};
};

struct ConnectError {
  enum class Kind {
    kTcp,          // could not reach host:port
    kTls,          // the TLS handshake failed or the server rejected our certificate
    kHttpRefused,  // the server answered the upgrade with an HTTP status (e.g. 503, 403, 404)
    kTimeout,      // handshake_timeout passed
    kProtocol,     // something else went wrong in the upgrade
  };
  Kind kind = Kind::kProtocol;
  int http_status = 0;          // kHttpRefused
  int retry_after_seconds = 0;  // kHttpRefused, from Retry-After (0 when absent)
  std::string body;             // kHttpRefused: the server's reason
  std::string message;          // for a person: what was tried and what went wrong
};
std::string_view connect_error_kind_name(ConnectError::Kind kind);

struct ConnectResult {
  std::shared_ptr<WsConnection> connection;  // set on success
  std::optional<ConnectError> error;         // set on failure
  bool ok() const { return connection != nullptr; }
};

// Connects asynchronously. `done` runs exactly once on the connection's strand: on success before
// handler->on_open, on failure with the error (the handler is then destroyed without calls).
void ws_connect(EventLoop& loop, std::shared_ptr<TlsContext> tls, WsClientOptions options,
                std::unique_ptr<WsHandler> handler, std::function<void(ConnectResult)> done);

}  // namespace gantry::common
