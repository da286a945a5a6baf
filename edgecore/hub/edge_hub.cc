#include "edgecore/hub/edge_hub.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <mutex>

#include "common/net/websocket.h"

namespace gantry::edge {

using namespace std::chrono_literals;

struct EdgeHub::Core : std::enable_shared_from_this<Core> {
  Core(common::EventLoop& loop, std::shared_ptr<common::TlsContext> tls, MetaStore& meta,
       StatusTracker& tracker, EdgeHubOptions options, const common::Clock& clock,
       common::Random& random)
      : loop(loop),
        tls(std::move(tls)),
        tracker(tracker),
        options(std::move(options)),
        clock(clock),
        sync(meta, tracker, sync_options()),
        backoff(this->options.backoff, clock, random),
        addresses(shuffled_addresses(this->options, random)) {
    stats.cloudcore = address_text();
  }

  common::EventLoop& loop;
  std::shared_ptr<common::TlsContext> tls;
  StatusTracker& tracker;
  const EdgeHubOptions options;
  const common::Clock& clock;

  // Everything below is guarded by `mu`: callbacks arrive from the connection's strand, from
  // timers and from the tracker's reporters.
  mutable std::mutex mu;
  bool stopped = false;
  uint64_t connection_id = 0;  // bumped per attempt: callbacks of an older one are ignored
  std::shared_ptr<common::WsConnection> connection;
  std::chrono::steady_clock::time_point connected_at;
  EdgeSync sync;
  common::Backoff backoff;
  common::TimerHandle reconnect_timer;
  common::TimerHandle batch_timer;
  bool batch_timer_armed = false;
  common::TimerHandle poll_timer;  // followed log streams
  bool poll_timer_armed = false;
  common::TimerHandle events_timer;  // the next event count update that waits for its interval
  bool events_timer_armed = false;
  std::chrono::steady_clock::time_point last_batch_at;
  EdgeHubStats stats;
  // The cloudcore addresses in the order tried; `current` is the one in use (or tried next).
  const std::vector<EdgeHubOptions::Address> addresses;
  size_t current = 0;

  static std::vector<EdgeHubOptions::Address> shuffled_addresses(const EdgeHubOptions& o,
                                                                 common::Random& random) {
    std::vector<EdgeHubOptions::Address> out = o.addresses;
    if (out.empty()) out.push_back({o.host, o.port});
    for (size_t i = out.size() - 1; i > 0; --i) std::swap(out[i], out[random.uniform(0, i)]);
    return out;
  }
  const EdgeHubOptions::Address& address() const { return addresses[current]; }
  std::string address_text() const {
    const auto& a = address();
    return a.host.find(':') != std::string::npos ? fmt::format("[{}]:{}", a.host, a.port)
                                                 : fmt::format("{}:{}", a.host, a.port);
  }
  // After a failed attempt or a lost connection: the next address, if there are several.
  void move_on_locked() {
    if (addresses.size() < 2) return;
    current = (current + 1) % addresses.size();
    ++stats.address_changes;
    stats.cloudcore = address_text();
    spdlog::info("tunnel: trying cloudcore at {} next", stats.cloudcore);
  }

  void connect();
  void on_connect_result(uint64_t id, const common::ConnectResult& result);
  void on_open(uint64_t id, std::shared_ptr<common::WsConnection> conn);
  void on_message(uint64_t id, std::string_view data);
  void on_close(uint64_t id, std::string_view reason);
  void schedule_reconnect_locked();
  void send_locked(const v1::Frame& frame);
  // Sends status batches now or arms the batch timer so that rounds are batch_interval apart.
  void flush_status_locked();
  void send_status_batches_locked();
  bool events_due() const { return options.sync.events && options.sync.events->has_due(); }
  void arm_events_locked();
  // Arms the stream poll timer when the stream handler has followed streams waiting for data.
  void arm_stream_poll_locked();

  // Certificate rotation (options.rotation), one timer for the renewal point, the answer's
  // deadline and the retry after a failure.
  common::TimerHandle rotation_timer;
  void arm_rotation_locked();
  void request_certificate_locked();
  void retry_certificate_locked();
  void on_certificate_locked(const v1::CertificateResponse& response);

  EdgeSyncOptions sync_options() {
    EdgeSyncOptions o = options.sync;
    if (options.streams) o.streams = options.streams;
    // EdgeSync calls it from on_message, with `mu` held.
    if (options.rotation) {
      o.on_certificate = [this](const v1::CertificateResponse& r) { on_certificate_locked(r); };
    }
    return o;
  }
};

namespace {

class Handler final : public common::WsHandler {
 public:
  Handler(std::weak_ptr<EdgeHub::Core> core, uint64_t id) : core_(std::move(core)), id_(id) {}
  void on_open(std::shared_ptr<common::WsConnection> connection) override {
    if (auto core = core_.lock()) core->on_open(id_, std::move(connection));
  }
  void on_message(std::string_view data) override {
    if (auto core = core_.lock()) core->on_message(id_, data);
  }
  void on_close(std::string_view reason) override {
    if (auto core = core_.lock()) core->on_close(id_, reason);
  }

 private:
  std::weak_ptr<EdgeHub::Core> core_;
  uint64_t id_;
};

}  // namespace

void EdgeHub::Core::connect() {
  uint64_t id;
  std::shared_ptr<common::TlsContext> dial_tls = tls;
  {
    std::lock_guard lock(mu);
    if (stopped) return;
    id = ++connection_id;
    ++stats.connect_attempts;
    if (options.rotation) {
      // Dialing anyway when expired: the cloud refuses and says so in its own log, which is
      // where an operator watching the fleet sees it.
      if (auto s = options.rotation->check_before_connect(); !s.ok()) {
        spdlog::error("tunnel: {}", s.message());
      }
      dial_tls = options.rotation->tls();
    }
  }
  common::WsClientOptions ws;
  {
    std::lock_guard lock(mu);
    ws.host = address().host;
    ws.port = address().port;
  }
  ws.path = options.path;
  ws.max_message_bytes = options.max_message_bytes;
  ws.handshake_timeout = options.handshake_timeout;
  ws.ping_interval = options.ping_interval;
  ws.idle_timeout = options.idle_timeout;
  std::weak_ptr<Core> weak = weak_from_this();
  common::ws_connect(loop, std::move(dial_tls), std::move(ws), std::make_unique<Handler>(weak, id),
                     [weak, id](common::ConnectResult result) {
                       if (auto core = weak.lock()) core->on_connect_result(id, result);
                     });
}

void EdgeHub::Core::on_connect_result(uint64_t id, const common::ConnectResult& result) {
  std::lock_guard lock(mu);
  if (stopped || id != connection_id || result.ok()) return;
  ++stats.connect_failures;
  const common::ConnectError& error = *result.error;
  if (error.kind == common::ConnectError::Kind::kHttpRefused && error.http_status == 503) {
    ++stats.refused_503;
    if (error.retry_after_seconds > 0) {
      backoff.honour_retry_after(std::chrono::seconds(error.retry_after_seconds));
    }
  }
  spdlog::warn("tunnel: connecting to {} failed ({}): {}", address_text(),
               common::connect_error_kind_name(error.kind), error.message);
  move_on_locked();
  schedule_reconnect_locked();
}

void EdgeHub::Core::on_open(uint64_t id, std::shared_ptr<common::WsConnection> conn) {
  std::lock_guard lock(mu);
  if (stopped || id != connection_id) {
    conn->close("edgecore stopping");
    return;
  }
  connection = std::move(conn);
  connected_at = clock.steady_now();
  backoff.on_connected();
  ++stats.connects;
  spdlog::info("tunnel: connected to {}{} (TLS session {})", address_text(), options.path,
               connection->peer().tls_resumed ? "resumed" : "new");
  send_locked(sync.hello());
}

void EdgeHub::Core::on_message(uint64_t id, std::string_view data) {
  std::lock_guard lock(mu);
  if (stopped || id != connection_id || !connection) return;
  stats.bytes_received += data.size();
  bool was_welcomed = sync.welcomed();
  auto out = sync.on_message(data);
  if (!out.ok()) {
    ++stats.protocol_errors;
    spdlog::warn("tunnel: closing the connection: {}", out.status().to_string());
    connection->close(out.status().message());
    return;
  }
  for (const auto& frame : *out) send_locked(frame);
  arm_stream_poll_locked();
  if (!was_welcomed && sync.welcomed()) {
    const auto& welcome = sync.welcome();
    stats.connected = true;
    if (welcome.resume() == v1::RESUME_MODE_SNAPSHOT) ++stats.resumes_snapshot;
    if (welcome.resume() == v1::RESUME_MODE_INCREMENTAL) ++stats.resumes_incremental;
    spdlog::info("tunnel: welcomed (resume {}, cloud acked sequence {}, resend status {})",
                 v1::ResumeMode_Name(welcome.resume()), welcome.acked_sequence(),
                 welcome.resend_status());
    arm_rotation_locked();
  }
  stats.objects_applied = sync.counters().objects_applied;
  // A Welcome or an ack may have opened room for status batches.
  if (sync.welcomed() && (tracker.has_pending() || events_due())) flush_status_locked();
}

void EdgeHub::Core::on_close(uint64_t id, std::string_view reason) {
  std::lock_guard lock(mu);
  if (id != connection_id) return;
  if (connection) {
    auto up = std::chrono::duration_cast<std::chrono::seconds>(clock.steady_now() - connected_at);
    spdlog::warn("tunnel: disconnected from {} after {}s: {}", address_text(), up.count(),
                 reason.empty() ? "no reason given" : reason);
    ++stats.disconnects;
    backoff.on_disconnected();
    move_on_locked();
  }
  connection.reset();
  stats.connected = false;
  sync.on_disconnect();
  batch_timer.cancel();
  batch_timer_armed = false;
  poll_timer.cancel();
  poll_timer_armed = false;
  events_timer.cancel();
  events_timer_armed = false;
  rotation_timer.cancel();
  if (options.rotation) options.rotation->abandon_request();
  if (!stopped) schedule_reconnect_locked();
}

void EdgeHub::Core::schedule_reconnect_locked() {
  auto delay = backoff.next_delay();
  if (options.rotation && options.rotation->expired()) {
    delay = std::max(delay,
                     std::chrono::duration_cast<decltype(delay)>(options.expired_retry_interval));
  }
  spdlog::info("tunnel: reconnecting in {} ms", delay.count());
  std::weak_ptr<Core> weak = weak_from_this();
  reconnect_timer = loop.schedule(delay, [weak] {
    if (auto core = weak.lock()) core->connect();
  });
}

void EdgeHub::Core::send_locked(const v1::Frame& frame) {
  std::string bytes = frame.SerializeAsString();
  stats.bytes_sent += bytes.size();
  connection->send(std::move(bytes));
}

void EdgeHub::Core::flush_status_locked() {
  if (batch_timer_armed) return;
  auto now = clock.steady_now();
  auto due = last_batch_at + options.batch_interval;
  if (now >= due) {
    send_status_batches_locked();
    return;
  }
  batch_timer_armed = true;
  std::weak_ptr<Core> weak = weak_from_this();
  batch_timer = loop.schedule(due - now, [weak] {
    auto core = weak.lock();
    if (!core) return;
    std::lock_guard lock(core->mu);
    core->batch_timer_armed = false;
    if (!core->stopped) core->send_status_batches_locked();
  });
}

void EdgeHub::Core::send_status_batches_locked() {
  if (!connection || !sync.welcomed()) return;
  last_batch_at = clock.steady_now();
  while (auto batch = sync.next_status_batch()) {
    send_locked(*batch);
    ++stats.status_batches_sent;
  }
  arm_events_locked();
}

void EdgeHub::Core::arm_events_locked() {
  if (!options.sync.events || events_timer_armed || !connection) return;
  auto due = options.sync.events->next_due();
  if (!due) return;
  events_timer_armed = true;
  auto now = clock.steady_now();
  auto delay = *due > now ? std::chrono::duration_cast<std::chrono::milliseconds>(*due - now)
                          : std::chrono::milliseconds(0);
  std::weak_ptr<Core> weak = weak_from_this();
  events_timer = loop.schedule(delay + std::chrono::milliseconds(1), [weak] {
    auto core = weak.lock();
    if (!core) return;
    std::lock_guard lock(core->mu);
    core->events_timer_armed = false;
    if (!core->stopped && core->connection && core->sync.welcomed()) core->flush_status_locked();
  });
}

void EdgeHub::Core::arm_stream_poll_locked() {
  StreamHandler* streams = sync.stream_handler();
  if (!streams || poll_timer_armed || !connection || !streams->wants_poll()) return;
  poll_timer_armed = true;
  std::weak_ptr<Core> weak = weak_from_this();
  poll_timer = loop.schedule(streams->poll_interval(), [weak] {
    auto core = weak.lock();
    if (!core) return;
    std::lock_guard lock(core->mu);
    core->poll_timer_armed = false;
    if (core->stopped || !core->connection) return;
    for (const auto& frame : core->sync.stream_handler()->poll()) core->send_locked(frame);
    core->arm_stream_poll_locked();
  });
}

void EdgeHub::Core::arm_rotation_locked() {
  CertRotation* rotation = options.rotation;
  if (!rotation || !rotation->enabled() || !connection || !sync.welcomed()) return;
  if (rotation->request_pending()) return;
  auto delay = std::max(rotation->renew_at() - clock.system_now(),
                        std::chrono::system_clock::duration::zero());
  std::weak_ptr<Core> weak = weak_from_this();
  rotation_timer = loop.schedule(delay, [weak] {
    auto core = weak.lock();
    if (!core) return;
    std::lock_guard lock(core->mu);
    core->request_certificate_locked();
  });
}

void EdgeHub::Core::request_certificate_locked() {
  CertRotation* rotation = options.rotation;
  if (stopped || !connection || !sync.welcomed()) return;  // re-armed at the next Welcome
  auto request = rotation->make_request();
  if (!request.ok()) {
    ++stats.certificate_failures;
    spdlog::warn("tunnel: cannot make a certificate request: {}", request.status().to_string());
    return retry_certificate_locked();
  }
  spdlog::info(
      "tunnel: asking cloudcore to renew this node's certificate (serial {}, valid until "
      "{})",
      rotation->certificate().serial_hex(),
      common::format_rfc3339(rotation->certificate().not_after()));
  send_locked(*request);
  std::weak_ptr<Core> weak = weak_from_this();
  rotation_timer = loop.schedule(options.certificate_answer_timeout, [weak] {
    auto core = weak.lock();
    if (!core) return;
    std::lock_guard lock(core->mu);
    if (core->stopped || !core->options.rotation->request_pending()) return;
    core->options.rotation->abandon_request();
    ++core->stats.certificate_failures;
    spdlog::warn("tunnel: cloudcore did not answer the certificate request within {} ms",
                 core->options.certificate_answer_timeout.count());
    core->retry_certificate_locked();
  });
}

void EdgeHub::Core::retry_certificate_locked() {
  auto delay = options.rotation->retry_delay();
  spdlog::info("tunnel: asking for a new certificate again in {} ms", delay.count());
  std::weak_ptr<Core> weak = weak_from_this();
  rotation_timer = loop.schedule(delay, [weak] {
    auto core = weak.lock();
    if (!core) return;
    std::lock_guard lock(core->mu);
    core->request_certificate_locked();
  });
}

void EdgeHub::Core::on_certificate_locked(const v1::CertificateResponse& response) {
  CertRotation* rotation = options.rotation;
  if (!rotation->request_pending()) {
    spdlog::warn("tunnel: ignoring a certificate this edgecore did not ask for (or gave up on)");
    return;
  }
  rotation_timer.cancel();
  if (auto s = rotation->on_response(response); !s.ok()) {
    ++stats.certificate_failures;
    spdlog::warn("tunnel: certificate renewal failed: {}", s.message());
    return retry_certificate_locked();
  }
  ++stats.certificates_renewed;
  spdlog::info(
      "tunnel: certificate renewed (serial {}, valid until {}); new connections use it, "
      "this one stays up",
      rotation->certificate().serial_hex(),
      common::format_rfc3339(rotation->certificate().not_after()));
  arm_rotation_locked();
}

EdgeHub::EdgeHub(common::EventLoop& loop, std::shared_ptr<common::TlsContext> tls, MetaStore& meta,
                 StatusTracker& tracker, EdgeHubOptions options, const common::Clock& clock,
                 common::Random& random)
    : core_(std::make_shared<Core>(loop, std::move(tls), meta, tracker, std::move(options), clock,
                                   random)) {}

EdgeHub::~EdgeHub() {
  stop();
}

void EdgeHub::start() {
  std::weak_ptr<Core> weak = core_;
  core_->tracker.set_on_pending([weak] {
    auto core = weak.lock();
    if (!core) return;
    std::lock_guard lock(core->mu);
    if (!core->stopped && core->connection && core->sync.welcomed()) core->flush_status_locked();
  });
  if (core_->options.sync.events) {
    core_->options.sync.events->set_on_pending([weak] {
      auto core = weak.lock();
      if (!core) return;
      std::lock_guard lock(core->mu);
      if (!core->stopped && core->connection && core->sync.welcomed()) core->flush_status_locked();
    });
  }
  core_->connect();
}

void EdgeHub::stop() {
  core_->tracker.set_on_pending(nullptr);
  if (core_->options.sync.events) core_->options.sync.events->set_on_pending(nullptr);
  std::lock_guard lock(core_->mu);
  if (core_->stopped) return;
  core_->stopped = true;
  core_->reconnect_timer.cancel();
  core_->batch_timer.cancel();
  core_->poll_timer.cancel();
  core_->events_timer.cancel();
  core_->rotation_timer.cancel();
  if (core_->connection) core_->connection->close("edgecore stopping");
}

bool EdgeHub::send_frame(const v1::Frame& frame) {
  std::lock_guard lock(core_->mu);
  if (core_->stopped || !core_->connection) return false;
  core_->send_locked(frame);
  return true;
}

EdgeHubStats EdgeHub::stats() const {
  std::lock_guard lock(core_->mu);
  return core_->stats;
}

}  // namespace gantry::edge
