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
  // kubectl exec / attach: sessions open at once per node (more: kResourceExhausted, a 429), and
  // the output window of each (as log_stream_window).
  int max_exec_streams_per_node = 8;
  uint32_t exec_stream_window = 64 << 10;
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
  common::Counter status_store_retries;  // rounds written again after the store was unavailable
  common::Gauge status_held;             // batches held unacknowledged while it is
  // The store unavailable (etcd down): the status writer holds the batches unacknowledged and
  // writes them again with this back-off (status_writer.h); the sessions stay open.
  std::chrono::milliseconds status_retry_initial{100};
  std::chrono::milliseconds status_retry_max{2000};
  // Per node: status batches (and their bytes) received and not yet acknowledged. The reference
  // edge keeps at most 4 batches of at most 64 KiB in flight; a node past either bound has its
  // connection closed (it sends them again on the next).
  size_t max_status_batches_pending = 32;
  size_t max_status_bytes_pending = 8 << 20;
  // Several replicas (cloudcore/controllers/node_ownership.h): called when a session of `node`
  // attaches to this hub (held = true) and when that session ends (false), in that order per
  // node, with the hub's lock held: it must only queue.
  std::function<void(const std::string& node, bool held)> on_node_session;
  // false: this hub never marks silent nodes Ready=Unknown; the leader's NodeLifecycle does,
  // from the ownership records of every replica.
  bool mark_unreachable = true;
  // Gets the nodes' ImagePullReports (cloudcore/controllers/imagepull), with the node of the TLS
  // session. Called on the session's thread; must be quick and thread-safe. Unset: dropped.
  std::function<void(const std::string& node, const v1::ImagePullReport&)> on_image_pull_report;
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
  std::atomic<uint64_t> exec_streams_opened{0};  // exec/attach StreamOpen sent to a node
  std::atomic<int64_t> exec_streams_open{0};
  std::atomic<uint64_t> exec_streams_refused{0};  // offline node or too many sessions
  std::atomic<uint64_t> certificates_renewed{0};
  std::atomic<uint64_t> certificate_requests_refused{0};  // answered with an error
  std::atomic<uint64_t> refused_expired{0};      // expired node certificates (TLS or upgrade)
  std::atomic<uint64_t> refused_certificate{0};  // other client certificates failing TLS verify
  std::atomic<uint64_t> image_pull_requests{0};  // ImagePullRequests sent to nodes
  std::atomic<uint64_t> image_pull_reports{0};   // ImagePullReports received
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
  // Exec/attach streams: output with its channel (1 stdout, 2 stderr) instead of on_data, and the
  // process's exit code, right before a normal on_close.
  std::function<void(uint32_t channel, std::string data)> on_output;
  std::function<void(int exit_code)> on_exit;
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
  // Exec/attach streams: stdin bytes for the process (`eof`: stdin ends after them). They go to
  // the node within the window it grants; `sent` runs (on the session's thread) once they went,
  // so that the caller reads more only then. Thread-safe.
  void send_input(std::string data, bool eof, std::function<void()> sent);
  // Exec/attach with a terminal: its new size. Thread-safe.
  void resize(uint32_t width, uint32_t height);

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
  // Opens an exec or attach stream (`kubectl exec`, `kubectl attach`) to a connected node:
  // kUnavailable at once as open_log_stream, kResourceExhausted when the node has
  // max_exec_streams_per_node open. Thread-safe.
  common::Result<std::unique_ptr<LogStream>> open_exec_stream(const std::string& node,
                                                              v1::ExecRequest request,
                                                              LogStreamCallbacks callbacks);
  // What open_exec_stream would answer now, without opening anything.
  common::Status exec_available(const std::string& node) const;
  // Clears a Ready=Unknown mark of `node` if its stored status has one (queued on the status
  // writer; nothing is written otherwise). Thread-safe.
  void clear_unreachable(const std::string& node);
  // Queues an ImagePullRequest on a connected node's tunnel; false when it is not connected.
  // Thread-safe.
  bool send_image_pull(const std::string& node, v1::ImagePullRequest request);
  // Stops accepting, closes every session, finishes pending status writes.
  void stop();

  struct Impl;

 private:
  explicit Hub(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace gantry::cloud
