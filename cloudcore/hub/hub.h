// The tunnel server: one WebSocket session per edge node. It takes the node's identity from its
// client certificate, resumes the node's downstream cursor, streams the node's object changes,
// applies its status deltas through the StatusWriter, tracks liveness in memory, and bounds how
// many nodes resync at once (503 + Retry-After past the bound).
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "cloudcore/controllers/events.h"
#include "cloudcore/registry/registry.h"
#include "cloudcore/store/store.h"
#include "common/base/clock.h"
#include "common/metrics/metrics.h"
#include "common/net/event_loop.h"
#include "common/net/tls.h"
#include "common/pki/pki.h"
#include "gantry/v1/tunnel.pb.h"

namespace gantry::cloud {

struct HubOptions {
  std::string address = "0.0.0.0";
  uint16_t port = 10000;
  std::chrono::seconds heartbeat_interval{15};     // told to the edge in Welcome
  std::chrono::milliseconds node_timeout{40'000};  // no frame this long: Ready=Unknown
  int max_concurrent_resyncs = 1000;  // nodes between Hello and the ack of their resume
  int max_concurrent_handshakes = 256;
  int retry_after_seconds = 5;  // the base; the edge adds its own jitter
  size_t max_frame_bytes = 1 << 20;
  size_t max_queued_bytes = 4 << 20;  // per node, downstream
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds liveness_sweep{1'000};
  // Bytes of log output a node may send on one stream before the reader has taken them: the most
  // the cloud holds per log stream (re-granted as the reader drains).
  uint32_t log_stream_window = 64 << 10;
  // Certificate rotation: signs a new certificate for `node` (the node of the TLS session, never
  // a name from the frame) from the CSR of a CertificateRequest. Unset: requests are answered
  // with an error. Called on the session's thread; must be thread-safe.
  std::function<common::Result<common::Certificate>(const std::string& node,
                                                    std::string_view csr_pem)>
      renew_certificate;
  // At most one CertificateRequest per node per interval; more are answered with an error (the
  // edge asks again later).
  std::chrono::milliseconds renewal_interval{10'000};
  // Gets Events: the nodes' Ready transitions and what edges report (Pulling, BackOff, ...).
  // cloudcore wires its EventRecorder here. Called on the status writer's thread.
  controllers::EventSink events;
  // Metrics of the status writer (default: none): a batch's time from arrival to durable, and
  // the writer's queue.
  common::Histogram status_propagation;
  common::Gauge status_queued;
};

struct HubStats {
  std::atomic<uint64_t> sessions_opened{0};
  std::atomic<uint64_t> sessions_open{0};
  std::atomic<uint64_t> resumes_incremental{0};
  std::atomic<uint64_t> resumes_snapshot{0};
  std::atomic<uint64_t> objects_sent{0};
  std::atomic<uint64_t> deletes_sent{0};
  std::atomic<uint64_t> status_batches{0};
  std::atomic<uint64_t> status_resyncs{0};
  std::atomic<uint64_t> status_entries{0};       // status entries applied
  std::atomic<uint64_t> protocol_violations{0};  // frames refused, connection closed
  std::atomic<uint64_t> refused_busy{0};         // 503 at the upgrade
  std::atomic<uint64_t> refused_identity{0};     // 403: no node certificate
  std::atomic<uint64_t> nodes_marked_unknown{0};
  std::atomic<int64_t> resyncs_in_progress{0};
  std::atomic<uint64_t> log_streams_opened{0};  // StreamOpen sent to a node
  std::atomic<int64_t> log_streams_open{0};
  std::atomic<uint64_t> log_stream_bytes{0};     // log output received from nodes
  std::atomic<uint64_t> log_streams_offline{0};  // refused at once: the node is not connected
  std::atomic<uint64_t> certificates_renewed{0};
  std::atomic<uint64_t> certificate_requests_refused{0};  // answered with an error
  std::atomic<uint64_t> refused_expired{0};      // expired node certificates (TLS or upgrade)
  std::atomic<uint64_t> refused_certificate{0};  // other client certificates failing TLS verify
};

// What a log stream reports, on the node session's thread, one call at a time.
struct LogStreamCallbacks {
  // The node accepted the request (found the container); before any data. Optional.
  std::function<void()> on_ready;
  // Output, in order. Call LogStream::consumed() once the bytes have left (that re-grants them).
  std::function<void(std::string data)> on_data;
  // Exactly once, last: an empty error is a normal end; otherwise an HTTP-like code (404: no such
  // container, 503: the node's connection was lost, ...).
  std::function<void(std::string error, uint32_t code)> on_close;
};

// One open log stream. Destroying it closes the stream (StreamClose to the node if it is still
// open); no callback runs after the destructor returns. It may be destroyed inside a callback.
class [[nodiscard]] LogStream {
 public:
  struct State;
  explicit LogStream(std::shared_ptr<State> state) : state_(std::move(state)) {}
  ~LogStream();
  LogStream(const LogStream&) = delete;
  LogStream& operator=(const LogStream&) = delete;

  // `bytes` of data delivered by on_data have been passed on: the node may send that much more.
  // Thread-safe.
  void consumed(size_t bytes);

 private:
  std::shared_ptr<State> state_;
};

class Hub {
 public:
  static common::Result<std::unique_ptr<Hub>> start(common::EventLoop& loop,
                                                    std::shared_ptr<common::TlsContext> tls,
                                                    Store& store, Registry& registry,
                                                    common::Clock& clock, HubOptions options);
  ~Hub();
  Hub(const Hub&) = delete;
  Hub& operator=(const Hub&) = delete;

  uint16_t port() const;
  const HubStats& stats() const;
  bool connected(const std::string& node) const;
  size_t connected_count() const;
  // The last downstream revision `node` acknowledged (0: none since this hub started).
  Revision acked_revision(const std::string& node) const;
  // Opens a log stream (`kubectl logs`) to a connected node. kUnavailable at once, with when the
  // node was last seen, if it is not connected. Thread-safe.
  common::Result<std::unique_ptr<LogStream>> open_log_stream(const std::string& node,
                                                             v1::LogRequest request,
                                                             LogStreamCallbacks callbacks);
  // Stops accepting, closes every session, finishes pending status writes.
  void stop();

  struct Impl;

 private:
  explicit Hub(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace gantry::cloud
