#include "cloudcore/hub/hub.h"

#include <fmt/chrono.h>
#include <spdlog/spdlog.h>

#include <deque>
#include <mutex>
#include <unordered_map>

#include "cloudcore/hub/dispatch.h"
#include "cloudcore/hub/status_writer.h"
#include "cloudcore/registry/keys.h"
#include "common/base/names.h"
#include "common/base/version.h"
#include "common/net/websocket.h"

namespace gantry::cloud {
namespace {

using common::make_error;

std::string frame_bytes(const v1::Frame& frame) {
  return frame.SerializeAsString();
}

// A WebSocket close reason holds at most 123 bytes; the full text is in cloudcore's log.
std::string close_reason(std::string text) {
  constexpr size_t kMax = 123;
  if (text.size() > kMax) text = text.substr(0, kMax - 3) + "...";
  return text;
}

v1::StoredObject new_node_object(const std::string& name) {
  v1::StoredObject stored;
  stored.set_json(
      fmt::format(R"({{"apiVersion":"v1","kind":"Node","metadata":{{"name":"{}"}}}})", name));
  stored.mutable_edge()->set_kind(v1::OBJECT_KIND_NODE);
  stored.mutable_edge()->set_name(name);
  return stored;
}

class SessionCore;

// Input for an exec/attach stream, waiting on the session's strand for the edge's grant.
struct PendingInput {
  std::string data;
  bool eof = false;
  bool resize = false;
  uint32_t width = 0, height = 0;
  std::function<void()> sent;
};

}  // namespace

struct Hub::Impl : std::enable_shared_from_this<Hub::Impl> {
  common::EventLoop& loop;
  Store& store;
  Registry& registry;
  common::Clock& clock;
  HubOptions options;
  HubStats stats;
  std::unique_ptr<StatusWriter> writer;
  std::unique_ptr<common::WsServer> server;
  std::shared_ptr<common::TlsContext> tls;  // to unhook the rejection handler at stop
  common::TimerHandle sweep_timer;
  std::atomic<bool> stopped{false};

  struct NodeState {
    std::weak_ptr<SessionCore> session;
    bool connected = false;
    bool seen = false;  // connected at least once since this hub started
    bool marked_unknown = false;
    Revision acked = 0;
    std::chrono::steady_clock::time_point last_renewal{};  // last CertificateRequest (rate limit)
    std::chrono::steady_clock::time_point last_seen;
  };
  mutable std::mutex mu;
  std::unordered_map<std::string, NodeState> nodes;

  Impl(common::EventLoop& l, Store& s, Registry& r, common::Clock& c, HubOptions o)
      : loop(l), store(s), registry(r), clock(c), options(std::move(o)) {}

  common::Admission admit(const common::PeerInfo& peer);
  // A session finished its Hello: it is now the node's session (an older one is closed).
  std::shared_ptr<SessionCore> attach(const std::string& node,
                                      const std::shared_ptr<SessionCore>& session,
                                      bool* was_marked);
  void detach(const std::string& node, const SessionCore* session,
              std::chrono::steady_clock::time_point last_seen);
  void sweep();
  void schedule_sweep();
  void record_ack(const std::string& node, Revision acked) {
    std::lock_guard lock(mu);
    nodes[node].acked = acked;
  }
  // Seconds to wait before `node` may ask for a certificate again; 0 = now (and counted).
  int64_t take_renewal_slot(const std::string& node);
  // Why `node` has no session, for a person ("offline since ..."). Called with mu held.
  std::string offline_reason_locked(const std::string& node) const;
  // The session of `node` while it is connected and its connection is open; null otherwise.
  // Called with mu held.
  std::shared_ptr<SessionCore> live_session_locked(const std::string& node) const;
  // The refusal of one exec/attach session more than a node serves at once.
  common::Status exec_limit_error(const std::string& node) const;
};

// Shared by a LogStream handle, its node session (which owns the stream's id and window, on the
// session's strand) and the work posted between them.
struct LogStream::State {
  std::recursive_mutex mu;  // held while a callback runs; the handle may die inside one
  LogStreamCallbacks callbacks;
  bool finished = false;  // on_close delivered or the handle destroyed: no more callbacks
  bool ready = false;     // on_ready delivered
  std::weak_ptr<SessionCore> session;
  std::shared_ptr<common::WsConnection> conn;  // to post onto the session's strand
  uint32_t id = 0;                             // set on the strand

  void deliver_data(std::string data) {
    std::lock_guard lock(mu);
    if (finished) return;
    deliver_ready_locked();
    if (data.empty() || finished) return;
    auto on_data = callbacks.on_data;  // a copy: the handle may be destroyed during the call
    if (on_data) on_data(std::move(data));
  }
  void deliver_output(uint32_t channel, std::string data) {
    std::lock_guard lock(mu);
    if (finished) return;
    deliver_ready_locked();
    if (data.empty() || finished) return;
    auto on_output = callbacks.on_output;
    if (on_output) {
      on_output(channel, std::move(data));
    } else if (auto on_data = callbacks.on_data) {
      on_data(std::move(data));
    }
  }
  void deliver_exit(int code) {
    std::lock_guard lock(mu);
    if (finished) return;
    deliver_ready_locked();
    auto on_exit = callbacks.on_exit;
    if (on_exit && !finished) on_exit(code);
  }
  void deliver_ready() {
    std::lock_guard lock(mu);
    if (!finished) deliver_ready_locked();
  }
  void deliver_close(std::string error, uint32_t code) {
    std::lock_guard lock(mu);
    if (finished) return;
    finished = true;
    LogStreamCallbacks cbs = std::move(callbacks);
    callbacks = {};
    if (cbs.on_close) cbs.on_close(std::move(error), code);
  }

 private:
  void deliver_ready_locked() {
    if (ready) return;
    ready = true;
    auto on_ready = callbacks.on_ready;
    if (on_ready) on_ready();
  }
};

namespace {

// One node's session. Lives as long as its connection (and any work posted for it); every
// method below runs on the connection's strand except on_node_changes.
class SessionCore : public NodeListener, public std::enable_shared_from_this<SessionCore> {
 public:
  SessionCore(std::shared_ptr<Hub::Impl> hub, std::string node)
      : hub_(std::move(hub)),
        node_(std::move(node)),
        dispatch_(hub_->options.max_frame_bytes),
        status_backlog_(hub_->options.max_status_batches_pending,
                        hub_->options.max_status_bytes_pending) {}

  const std::string& node() const { return node_; }

  void on_open(std::shared_ptr<common::WsConnection> conn) {
    conn_ = std::move(conn);
    last_seen_ = hub_->clock.steady_now();
    certificate_not_after_ = conn_->peer().certificate_not_after;
    ++hub_->stats.sessions_opened;
    ++hub_->stats.sessions_open;
    ++hub_->stats.resyncs_in_progress;
    holds_resync_slot_ = true;
    spdlog::debug("hub: node {} connected from {}", node_, conn_->peer().remote_address);
  }

  void on_message(std::string_view data) {
    if (closed_) return;
    if (hub_->stopped) {
      closed_ = true;
      return conn_->close("cloudcore is shutting down");
    }
    last_seen_ = hub_->clock.steady_now();
    v1::Frame frame;
    if (!frame.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
      return violation("a frame that is not a valid gantry.v1.Frame");
    }
    if (!hello_seen_ && frame.msg_case() != v1::Frame::kHello) {
      return violation("the first frame must be Hello");
    }
    switch (frame.msg_case()) {
      case v1::Frame::kHello:
        if (hello_seen_) return violation("a second Hello on one connection");
        return on_hello(frame.hello());
      case v1::Frame::kObjectAck:
        if (!dispatch_.on_ack(frame.object_ack().revision())) {
          spdlog::debug("hub: node {} acked revision {}, past the last one sent ({}): ignored",
                        node_, frame.object_ack().revision(), dispatch_.sent());
          return;
        }
        hub_->record_ack(node_, dispatch_.acked());
        maybe_release_resync_slot();
        return;
      case v1::Frame::kStatusDelta:
        return on_status_delta(std::move(*frame.mutable_status_delta()));
      case v1::Frame::kStreamData:
        return on_stream_data(std::move(*frame.mutable_stream_data()));
      case v1::Frame::kStreamClose:
        return on_stream_close(frame.stream_close());
      case v1::Frame::kStreamWindow:
        return on_stream_window(frame.stream_window());
      case v1::Frame::kCertificateRequest:
        return on_certificate_request(frame.certificate_request());
      case v1::Frame::kImagePullReport:
        ++hub_->stats.image_pull_reports;
        if (hub_->options.on_image_pull_report)
          hub_->options.on_image_pull_report(node_, frame.image_pull_report());
        return;
      default:
        return violation(fmt::format("frame type {} is not one an edge may send",
                                     static_cast<int>(frame.msg_case())));
    }
  }

  void on_close(std::string_view reason) {
    closed_ = true;
    subscription_.reset();  // no more registry callbacks after this
    release_resync_slot();
    end_log_streams(fmt::format("the connection to node \"{}\" was lost{}{}", node_,
                                reason.empty() ? "" : ": ", reason));
    --hub_->stats.sessions_open;
    // Pings do not reach on_message: a connection that ends any other way than by the idle
    // timeout was alive until now, and the node gets its full node_timeout to come back.
    if (reason != "idle timeout") last_seen_ = hub_->clock.steady_now();
    hub_->detach(node_, this, last_seen_);
    spdlog::info("hub: node {} disconnected: {}", node_,
                 reason.empty() ? "closed" : std::string(reason));
  }

  // Registry thread, registry locked: only hand the change over.
  void on_node_changes(const NodeChanges& changes) override {
    auto self = weak_from_this();
    conn_->post([self, changes] {
      if (auto s = self.lock()) s->send_changes(changes);
    });
  }

  void close(std::string reason) {
    if (conn_) conn_->close(std::move(reason));
  }

  const std::shared_ptr<common::WsConnection>& connection() const { return conn_; }

  // --- log streams (on the strand) ---

  void open_log(const std::shared_ptr<LogStream::State>& state, const v1::LogRequest& request) {
    v1::Frame frame;
    *frame.mutable_stream_open()->mutable_logs() = request;
    open_stream(state, std::move(frame), false);
  }

  void open_exec(const std::shared_ptr<LogStream::State>& state, const v1::ExecRequest& request) {
    v1::Frame frame;
    *frame.mutable_stream_open()->mutable_exec() = request;
    open_stream(state, std::move(frame), true);
  }

  // Exec/attach sessions counted against max_exec_streams_per_node: taken by
  // Hub::open_exec_stream, given back when the stream ends here.
  bool take_exec_slot() {
    int n = exec_open_.load();
    do {
      if (n >= hub_->options.max_exec_streams_per_node) return false;
    } while (!exec_open_.compare_exchange_weak(n, n + 1));
    return true;
  }
  void release_exec_slot() { --exec_open_; }
  int exec_sessions() const { return exec_open_.load(); }

  // The handle asked for input to go to the node (exec/attach).
  void input(const std::shared_ptr<LogStream::State>& state, PendingInput in) {
    auto it = logs_.find(state->id);
    if (it == logs_.end() || it->second.state != state || !it->second.exec) {
      if (in.sent) in.sent();  // nowhere to go: the caller is not held up
      return;
    }
    it->second.input.push_back(std::move(in));
    flush_input(it->first, it->second);
  }

  void send_image_pull(const v1::ImagePullRequest& request) {
    if (closed_) return;
    v1::Frame frame;
    *frame.mutable_image_pull_request() = request;
    ++hub_->stats.image_pull_requests;
    send(frame);
  }

  // The handle was destroyed.
  void cancel_log(const std::shared_ptr<LogStream::State>& state) {
    auto it = logs_.find(state->id);
    if (it == logs_.end() || it->second.state != state) return;
    forget(it);
    if (closed_) return;
    v1::Frame frame;
    frame.mutable_stream_close()->set_id(state->id);
    send(frame);
  }

  void grant_log(const std::shared_ptr<LogStream::State>& state, size_t bytes) {
    auto it = logs_.find(state->id);
    if (it == logs_.end() || it->second.state != state) return;
    it->second.to_grant += bytes;
    maybe_grant(it->first, it->second);
  }

 private:
  struct OpenLog {
    std::shared_ptr<LogStream::State> state;
    uint64_t credit = 0;    // bytes the edge may still send
    uint64_t to_grant = 0;  // consumed, not yet granted back
    bool exec = false;
    uint64_t input_credit = 0;       // stdin bytes the edge granted (exec)
    std::deque<PendingInput> input;  // waiting for input_credit
  };

  void open_stream(const std::shared_ptr<LogStream::State>& state, v1::Frame frame, bool exec) {
    if (closed_) {
      if (exec) release_exec_slot();
      return state->deliver_close(
          fmt::format("the connection to node \"{}\" closed before the stream opened", node_), 503);
    }
    {
      std::lock_guard lock(state->mu);
      if (state->finished) {  // the handle is already gone
        if (exec) release_exec_slot();
        return;
      }
    }
    if (++next_stream_id_ == 0) ++next_stream_id_;
    state->id = next_stream_id_;
    const uint32_t window =
        exec ? hub_->options.exec_stream_window : hub_->options.log_stream_window;
    OpenLog log;
    log.state = state;
    log.credit = window;
    log.exec = exec;
    logs_[state->id] = std::move(log);
    if (exec) {
      ++hub_->stats.exec_streams_opened;
      ++hub_->stats.exec_streams_open;
    } else {
      ++hub_->stats.log_streams_opened;
      ++hub_->stats.log_streams_open;
    }
    auto* open = frame.mutable_stream_open();
    open->set_id(state->id);
    open->set_window(window);
    send(frame);
  }

  // Drops a stream's bookkeeping (no frame, no callback).
  void forget(std::unordered_map<uint32_t, OpenLog>::iterator it) {
    if (it->second.exec) {
      --hub_->stats.exec_streams_open;
      release_exec_slot();
      for (auto& in : it->second.input)
        if (in.sent) in.sent();
    } else {
      --hub_->stats.log_streams_open;
    }
    logs_.erase(it);
  }

  // Sends queued input within the edge's grant (a resize costs nothing, but keeps its place).
  void flush_input(uint32_t id, OpenLog& log) {
    while (!log.input.empty() && !closed_) {
      PendingInput& in = log.input.front();
      const size_t size = in.data.size();
      if (size > log.input_credit) return;
      log.input_credit -= size;
      v1::Frame frame;
      auto* d = frame.mutable_stream_data();
      d->set_id(id);
      d->set_channel(0);
      d->set_data(std::move(in.data));
      d->set_eof(in.eof);
      if (in.resize) {
        d->mutable_resize()->set_width(in.width);
        d->mutable_resize()->set_height(in.height);
      }
      auto sent = std::move(in.sent);
      log.input.pop_front();
      send(frame);
      if (sent) sent();
    }
  }

  void on_stream_window(const v1::StreamWindow& w) {
    auto it = logs_.find(w.id());
    if (it == logs_.end() || !it->second.exec) return;  // ended, or a log stream (nothing flows)
    it->second.input_credit += w.bytes();
    flush_input(it->first, it->second);
  }

  // Grants consumed bytes back in batches (a quarter window), or at once when the edge is out of
  // credit. credit + to_grant + (delivered, not consumed) stays at the window.
  void maybe_grant(uint32_t id, OpenLog& log) {
    if (log.to_grant == 0 || closed_) return;
    if (log.to_grant < hub_->options.log_stream_window / 4 && log.credit > 0) return;
    v1::Frame frame;
    frame.mutable_stream_window()->set_id(id);
    frame.mutable_stream_window()->set_bytes(static_cast<uint32_t>(log.to_grant));
    log.credit += log.to_grant;
    log.to_grant = 0;
    send(frame);
  }

  void on_stream_data(v1::StreamData data) {
    auto it = logs_.find(data.id());
    if (it == logs_.end()) return;  // we closed it; the data crossed our close
    OpenLog& log = it->second;
    const size_t size = data.data().size();
    if (size > log.credit) {
      ++hub_->stats.protocol_violations;
      spdlog::warn(
          "hub: node {} sent {} bytes on log stream {} with {} bytes of window; closing "
          "the stream",
          node_, size, data.id(), log.credit);
      auto state = log.state;
      forget(it);
      v1::Frame frame;
      frame.mutable_stream_close()->set_id(data.id());
      frame.mutable_stream_close()->set_error("more data than the window allowed");
      frame.mutable_stream_close()->set_code(400);
      send(frame);
      return state->deliver_close(
          fmt::format("node \"{}\" broke the log stream's flow control", node_), 502);
    }
    log.credit -= size;
    hub_->stats.log_stream_bytes += size;
    auto state = log.state;  // the callback may end the stream
    if (log.exec) {
      state->deliver_output(data.channel(), std::move(*data.mutable_data()));
    } else {
      state->deliver_data(std::move(*data.mutable_data()));
    }
    if (auto again = logs_.find(data.id()); again != logs_.end()) {
      maybe_grant(again->first, again->second);
    }
  }

  void on_stream_close(const v1::StreamClose& close) {
    auto it = logs_.find(close.id());
    if (it == logs_.end()) return;
    auto state = it->second.state;
    forget(it);
    uint32_t code = close.code();
    if (!close.error().empty() && (code < 400 || code > 599)) code = 500;
    if (close.error().empty()) code = 0;
    if (close.error().empty() && close.exited()) state->deliver_exit(close.exit_code());
    state->deliver_close(close.error(), code);
  }

  void end_log_streams(const std::string& why) {
    std::vector<std::shared_ptr<LogStream::State>> states;
    while (!logs_.empty()) {
      states.push_back(logs_.begin()->second.state);
      forget(logs_.begin());
    }
    for (auto& state : states) state->deliver_close(why, 503);
  }

  void violation(std::string what) {
    ++hub_->stats.protocol_violations;
    spdlog::warn("hub: closing node {} ({}): {}", node_, conn_->peer().remote_address, what);
    closed_ = true;
    subscription_.reset();
    conn_->close(close_reason("protocol violation: " + what));
  }

  void send(const v1::Frame& frame) { conn_->send(frame_bytes(frame)); }

  void count_sent(const std::vector<v1::Frame>& frames) {
    for (const auto& f : frames) {
      hub_->stats.objects_sent += f.object_delta().upserts_size();
      hub_->stats.deletes_sent += f.object_delta().deletes_size();
      send(f);
    }
  }

  void on_hello(const v1::Hello& hello) {
    hello_seen_ = true;
    if (hello.protocol_version() != common::kProtocolVersion) {
      return violation(
          fmt::format("protocol version {} is not supported (this cloudcore speaks {})",
                      hello.protocol_version(), common::kProtocolVersion));
    }
    bool was_marked = false;
    if (auto older = hub_->attach(node_, shared_from_this(), &was_marked))
      older->close("replaced by a newer connection of the same node");
    if (was_marked) hub_->writer->set_unreachable(node_, false);

    if (!hub_->registry.node(node_)) {
      auto created = hub_->store.put(keys::object_key(v1::OBJECT_KIND_NODE, "", node_),
                                     new_node_object(node_).SerializeAsString(), Revision{0});
      if (!created.ok() && created.status().code() != Code::kFailedPrecondition)
        spdlog::error("hub: creating node object {}: {}", node_, created.status().to_string());
    }
    bool have_status = false;
    if (auto kv = hub_->store.get(keys::status_key(v1::OBJECT_KIND_NODE, "", node_));
        kv.ok() && kv->has_value()) {
      v1::StoredStatus stored;
      have_status = stored.ParseFromString((*kv)->value) && stored.has_node();
      // Marked by this or an earlier cloudcore process: the node is back.
      if (stored.unreachable() && !was_marked) hub_->writer->set_unreachable(node_, false);
    }

    auto [resume, subscription] = hub_->registry.subscribe(node_, hello.applied_revision(), this);
    subscription_ = std::move(subscription);
    (resume.mode == v1::RESUME_MODE_SNAPSHOT ? hub_->stats.resumes_snapshot
                                             : hub_->stats.resumes_incremental)++;

    v1::Frame welcome;
    auto* w = welcome.mutable_welcome();
    w->set_heartbeat_interval_seconds(
        static_cast<uint32_t>(hub_->options.heartbeat_interval.count()));
    w->set_resume(resume.mode);
    w->set_acked_sequence(hub_->writer->stored_sequence(node_));
    w->set_resend_status(!have_status);
    w->set_idle_timeout_seconds(static_cast<uint32_t>(
        std::chrono::duration_cast<std::chrono::seconds>(hub_->options.node_timeout).count()));
    send(welcome);
    count_sent(dispatch_.resume(resume));
    spdlog::debug("hub: node {} resumed ({}) from revision {} to {}", node_,
                  resume.mode == v1::RESUME_MODE_SNAPSHOT ? "snapshot" : "incremental",
                  hello.applied_revision(), resume.changes.revision);
    maybe_release_resync_slot();
  }

  void send_changes(const NodeChanges& changes) {
    if (closed_ || !hello_seen_) return;
    count_sent(dispatch_.live(changes));
  }

  void on_status_delta(v1::StatusDelta delta) {
    ++hub_->stats.status_batches;
    const size_t bytes = delta.ByteSizeLong();
    if (!status_backlog_.admit(bytes)) {
      spdlog::warn(
          "hub: closing node {}: {} status batches ({} bytes) unacknowledged, over the bound of "
          "{} batches / {} bytes (the store may be unavailable)",
          node_, status_backlog_.batches() + 1, status_backlog_.bytes() + bytes,
          status_backlog_.max_batches(), status_backlog_.max_bytes());
      closed_ = true;
      subscription_.reset();
      return conn_->close(close_reason(
          fmt::format("more than {} status batches or {} bytes unacknowledged; send them again "
                      "after reconnecting",
                      status_backlog_.max_batches(), status_backlog_.max_bytes())));
    }
    auto self = weak_from_this();
    auto conn = conn_;
    hub_->writer->submit(
        node_, std::move(delta),
        [self, conn, bytes](const UpstreamPlan& plan, const Status& error) {
          conn->post([self, plan, error, bytes] {
            auto s = self.lock();
            if (!s) return;
            s->status_backlog_.release(bytes);
            if (s->closed_) return;
            if (!plan.violation.ok()) return s->violation(plan.violation.message());
            if (!error.ok()) {
              s->closed_ = true;
              s->conn_->close("cloudcore could not store the status batch; send it again");
              return;
            }
            s->hub_->stats.status_resyncs += plan.ack.resync_size();
            s->hub_->stats.status_entries += plan.applied;
            v1::Frame ack;
            *ack.mutable_status_ack() = plan.ack;
            s->send(ack);
          });
        },
        // Held for an unavailable store: still worth writing while this session lives.
        [self] {
          auto s = self.lock();
          return s && !s->closed_;
        });
  }

  // Certificate rotation. A bad or refused request is answered with the reason; the connection
  // stays up. The identity is this session's.
  void on_certificate_request(const v1::CertificateRequest& request) {
    v1::Frame answer;
    auto* response = answer.mutable_certificate_response();
    auto refuse = [&](std::string why) {
      ++hub_->stats.certificate_requests_refused;
      spdlog::warn("hub: refused to renew the certificate of node {}: {}", node_, why);
      response->set_error(std::move(why));
      send(answer);
    };
    if (!hub_->options.renew_certificate) {
      return refuse("certificate renewal is not enabled on this cloudcore (no join: section)");
    }
    if (int64_t wait = hub_->take_renewal_slot(node_); wait > 0) {
      return refuse(fmt::format("too many certificate requests; retry in {} s", wait));
    }
    const auto now = hub_->clock.system_now();
    // A session outlives its certificate's expiry only by renewing it: the last certificate
    // issued on this session is what it now stands on.
    if (certificate_not_after_ != std::chrono::system_clock::time_point{} &&
        certificate_not_after_ <= now) {
      return refuse(
          fmt::format("this connection's certificate expired at {}; reconnect with a "
                      "valid certificate",
                      common::format_rfc3339(certificate_not_after_)));
    }
    auto issued = hub_->options.renew_certificate(node_, request.csr_pem());
    if (!issued.ok()) return refuse(issued.status().message());
    certificate_not_after_ = issued->not_after();
    ++hub_->stats.certificates_renewed;
    spdlog::info("hub: renewed certificate of node {} (serial {}, valid until {})", node_,
                 issued->serial_hex(), common::format_rfc3339(issued->not_after()));
    response->set_certificate_pem(issued->to_pem());
    send(answer);
  }

  void maybe_release_resync_slot() {
    if (holds_resync_slot_ && dispatch_.caught_up()) release_resync_slot();
  }

  void release_resync_slot() {
    if (!holds_resync_slot_) return;
    holds_resync_slot_ = false;
    --hub_->stats.resyncs_in_progress;
  }

  std::shared_ptr<Hub::Impl> hub_;
  std::string node_;
  std::shared_ptr<common::WsConnection> conn_;
  NodeDispatch dispatch_;
  std::unique_ptr<Registry::Subscription> subscription_;
  bool hello_seen_ = false;
  std::atomic<bool> closed_{false};  // also read by the status writer (a held batch's `wanted`)
  StatusBacklog status_backlog_;     // status batches submitted, not yet answered
  bool holds_resync_slot_ = false;
  std::chrono::steady_clock::time_point last_seen_;
  std::unordered_map<uint32_t, OpenLog> logs_;
  uint32_t next_stream_id_ = 0;
  std::atomic<int> exec_open_{0};
  std::chrono::system_clock::time_point certificate_not_after_{};
};

class SessionHandler : public common::WsHandler {
 public:
  explicit SessionHandler(std::shared_ptr<SessionCore> core) : core_(std::move(core)) {}
  void on_open(std::shared_ptr<common::WsConnection> c) override { core_->on_open(std::move(c)); }
  void on_message(std::string_view data) override { core_->on_message(data); }
  void on_close(std::string_view reason) override { core_->on_close(reason); }

 private:
  std::shared_ptr<SessionCore> core_;
};

}  // namespace

common::Admission Hub::Impl::admit(const common::PeerInfo& peer) {
  auto name = common::node_name_from_common_name(peer.common_name);
  if (!name || !common::is_dns1123_subdomain(*name)) {
    ++stats.refused_identity;
    return {403, 0,
            fmt::format(
                "the client certificate's CN '{}' is not system:node:NAME with a valid node name; "
                "join the node with gantryadm join",
                peer.common_name)};
  }
  // A full handshake already refused an expired certificate (see on_tls_rejected); a resumed
  // session carries the certificate it was first made with, so check again here.
  if (peer.certificate_not_after != std::chrono::system_clock::time_point{} &&
      peer.certificate_not_after <= clock.system_now()) {
    ++stats.refused_expired;
    const std::string expiry = common::format_rfc3339(peer.certificate_not_after);
    spdlog::warn("hub: refused node {}: its certificate expired at {} (from {}{})", *name, expiry,
                 peer.remote_address, peer.tls_resumed ? ", resumed TLS session" : "");
    return {403, 0,
            fmt::format("the certificate of node {} expired at {}; get a new one with gantryadm "
                        "join",
                        *name, expiry)};
  }
  if (stopped) return {503, options.retry_after_seconds, "cloudcore is shutting down"};
  if (stats.resyncs_in_progress.load() >= options.max_concurrent_resyncs) {
    ++stats.refused_busy;
    return {503, options.retry_after_seconds,
            fmt::format("cloudcore is resyncing {} nodes; retry later",
                        stats.resyncs_in_progress.load())};
  }
  return {};
}

int64_t Hub::Impl::take_renewal_slot(const std::string& node) {
  const auto now = clock.steady_now();
  std::lock_guard lock(mu);
  auto& last = nodes[node].last_renewal;
  if (last != std::chrono::steady_clock::time_point{} && now - last < options.renewal_interval) {
    auto wait = std::chrono::ceil<std::chrono::seconds>(options.renewal_interval - (now - last));
    return std::max<int64_t>(1, wait.count());
  }
  last = now;
  return 0;
}

static void on_tls_rejected(HubStats& stats, const common::TlsPeerRejection& r) {
  auto name = common::node_name_from_common_name(r.common_name);
  const std::string who = name ? "node " + *name : fmt::format("a client (CN '{}')", r.common_name);
  if (r.expired) {
    ++stats.refused_expired;
    spdlog::warn("hub: refused {}: its certificate expired at {} (from {})", who,
                 common::format_rfc3339(r.not_after), r.remote_address);
  } else {
    ++stats.refused_certificate;
    spdlog::info("hub: refused {} from {}: its certificate does not verify: {}", who,
                 r.remote_address, r.reason);
  }
}

std::shared_ptr<SessionCore> Hub::Impl::attach(const std::string& node,
                                               const std::shared_ptr<SessionCore>& session,
                                               bool* was_marked) {
  std::lock_guard lock(mu);
  auto& state = nodes[node];
  auto older = state.session.lock();
  state.session = session;
  state.connected = true;
  state.seen = true;
  *was_marked = state.marked_unknown;
  state.marked_unknown = false;
  if (options.on_node_session) options.on_node_session(node, true);
  return older != session ? older : nullptr;
}

void Hub::Impl::detach(const std::string& node, const SessionCore* session,
                       std::chrono::steady_clock::time_point last_seen) {
  std::lock_guard lock(mu);
  auto it = nodes.find(node);
  if (it == nodes.end()) return;
  auto current = it->second.session.lock();
  if (current && current.get() != session) return;  // a newer session owns the node
  it->second.connected = false;
  it->second.session.reset();
  it->second.last_seen = last_seen;
  if (options.on_node_session) options.on_node_session(node, false);
}

namespace {

std::string human_duration(std::chrono::steady_clock::duration d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (s < 0) s = 0;
  if (s < 60) return fmt::format("{}s", s);
  if (s < 3600) return fmt::format("{}m{}s", s / 60, s % 60);
  if (s < 86400) return fmt::format("{}h{}m", s / 3600, (s % 3600) / 60);
  return fmt::format("{}d{}h", s / 86400, (s % 86400) / 3600);
}

}  // namespace

std::shared_ptr<SessionCore> Hub::Impl::live_session_locked(const std::string& node) const {
  auto it = nodes.find(node);
  if (it == nodes.end() || !it->second.connected) return nullptr;
  std::shared_ptr<SessionCore> session = it->second.session.lock();
  return session && session->connection() ? session : nullptr;
}

common::Status Hub::Impl::exec_limit_error(const std::string& node) const {
  return make_error(Code::kResourceExhausted,
                    "node \"{}\" already has {} exec/attach sessions open, the most it serves at "
                    "once; try again when one ends",
                    node, options.max_exec_streams_per_node);
}

std::string Hub::Impl::offline_reason_locked(const std::string& node) const {
  auto it = nodes.find(node);
  if (it == nodes.end()) {
    return fmt::format(
        "node \"{}\" has never connected to cloudcore; its edgecore must be joined "
        "and running to serve logs",
        node);
  }
  auto ago = clock.steady_now() - it->second.last_seen;
  if (!it->second.seen) {
    return fmt::format(
        "node \"{}\" is offline: it has not connected since cloudcore started {} "
        "ago",
        node, human_duration(ago));
  }
  auto wall = std::chrono::system_clock::to_time_t(
      clock.system_now() - std::chrono::duration_cast<std::chrono::system_clock::duration>(ago));
  return fmt::format(
      "node \"{}\" is offline since {:%Y-%m-%dT%H:%M:%SZ} ({} ago); logs can be "
      "read when it reconnects",
      node, fmt::gmtime(wall), human_duration(ago));
}

void Hub::Impl::sweep() {
  if (!options.mark_unreachable) return;
  auto now = clock.steady_now();
  std::vector<std::string> to_mark;
  {
    std::lock_guard lock(mu);
    for (auto& [node, state] : nodes) {
      if (state.connected || state.marked_unknown) continue;
      if (now - state.last_seen >= options.node_timeout) {
        state.marked_unknown = true;
        to_mark.push_back(node);
        // Queued under `mu`: a Hello that sees the mark (attach) queues its clearing after this,
        // never before (found by edgesim: a node connecting during a large sweep stayed Unknown).
        writer->set_unreachable(node, true);
      }
    }
  }
  for (auto& node : to_mark) {
    spdlog::info("hub: node {} silent for more than {} ms: Ready=Unknown (its pods stay)", node,
                 options.node_timeout.count());
    ++stats.nodes_marked_unknown;
  }
}

void Hub::Impl::schedule_sweep() {
  if (stopped) return;
  std::weak_ptr<Impl> weak = weak_from_this();
  sweep_timer = loop.schedule(options.liveness_sweep, [weak] {
    if (auto self = weak.lock()) {
      self->sweep();
      self->schedule_sweep();
    }
  });
}

common::Result<std::unique_ptr<Hub>> Hub::start(common::EventLoop& loop,
                                                std::shared_ptr<common::TlsContext> tls,
                                                Store& store, Registry& registry,
                                                common::Clock& clock, HubOptions options) {
  auto impl = std::make_shared<Impl>(loop, store, registry, clock, std::move(options));
  impl->writer = std::make_unique<StatusWriter>(
      store, registry, clock, impl->options.events,
      StatusWriterMetrics{impl->options.status_propagation, impl->options.status_queued,
                          impl->options.status_store_retries, impl->options.status_held},
      StatusWriterOptions{impl->options.status_retry_initial, impl->options.status_retry_max});
  // Nodes the store knows start as "not connected, last seen now": those that do not come back
  // within the timeout are marked Unknown.
  auto now = clock.steady_now();
  for (const auto& name : registry.node_names()) impl->nodes[name].last_seen = now;

  common::WsServerOptions ws;
  ws.address = impl->options.address;
  ws.port = impl->options.port;
  ws.path = "/v1/tunnel";
  ws.max_message_bytes = impl->options.max_frame_bytes;
  ws.max_queued_bytes = impl->options.max_queued_bytes;
  ws.handshake_timeout = impl->options.handshake_timeout;
  ws.idle_timeout = impl->options.node_timeout;
  ws.max_concurrent_handshakes = impl->options.max_concurrent_handshakes;
  std::weak_ptr<Impl> weak = impl;
  ws.admit = [weak](const common::PeerInfo& peer) {
    auto self = weak.lock();
    return self ? self->admit(peer) : common::Admission{503, 5, "cloudcore is shutting down"};
  };
  ws.handler_factory = [weak](const common::PeerInfo& peer) -> std::unique_ptr<common::WsHandler> {
    auto self = weak.lock();
    auto name = common::node_name_from_common_name(peer.common_name);
    if (!self || !name) return nullptr;
    return std::make_unique<SessionHandler>(std::make_shared<SessionCore>(self, *name));
  };
  // Who a failed TLS handshake was, in our log (the client only gets an alert).
  tls->set_peer_rejected_handler([weak](const common::TlsPeerRejection& rejection) {
    if (auto self = weak.lock()) on_tls_rejected(self->stats, rejection);
  });
  impl->tls = tls;
  auto server = common::WsServer::start(loop, std::move(tls), std::move(ws));
  if (!server.ok()) return server.status().with_context("starting the tunnel server");
  impl->server = std::move(server).value();
  impl->schedule_sweep();
  spdlog::info("hub: tunnel listening on {}:{}", impl->options.address, impl->server->port());
  return std::unique_ptr<Hub>(new Hub(std::move(impl)));
}

Hub::Hub(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}

Hub::~Hub() {
  stop();
}

uint16_t Hub::port() const {
  return impl_->server ? impl_->server->port() : 0;
}

const HubStats& Hub::stats() const {
  return impl_->stats;
}

bool Hub::connected(const std::string& node) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->nodes.find(node);
  return it != impl_->nodes.end() && it->second.connected;
}

Revision Hub::acked_revision(const std::string& node) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->nodes.find(node);
  return it == impl_->nodes.end() ? 0 : it->second.acked;
}

size_t Hub::connected_count() const {
  std::lock_guard lock(impl_->mu);
  size_t n = 0;
  for (const auto& [name, state] : impl_->nodes) n += state.connected ? 1 : 0;
  return n;
}

common::Result<std::unique_ptr<LogStream>> Hub::open_log_stream(const std::string& node,
                                                                v1::LogRequest request,
                                                                LogStreamCallbacks callbacks) {
  std::shared_ptr<SessionCore> session;
  {
    std::lock_guard lock(impl_->mu);
    session = impl_->live_session_locked(node);
    if (!session) {
      ++impl_->stats.log_streams_offline;
      return make_error(Code::kUnavailable, "{}", impl_->offline_reason_locked(node));
    }
  }
  if (impl_->stopped) return make_error(Code::kUnavailable, "cloudcore is shutting down");
  auto state = std::make_shared<LogStream::State>();
  state->callbacks = std::move(callbacks);
  state->session = session;
  state->conn = session->connection();
  state->conn->post(
      [state, session, request = std::move(request)] { session->open_log(state, request); });
  return std::make_unique<LogStream>(state);
}

bool Hub::send_image_pull(const std::string& node, v1::ImagePullRequest request) {
  std::shared_ptr<SessionCore> session;
  {
    std::lock_guard lock(impl_->mu);
    session = impl_->live_session_locked(node);
  }
  if (!session || impl_->stopped) return false;
  auto conn = session->connection();
  if (!conn) return false;
  conn->post([session, request = std::move(request)] { session->send_image_pull(request); });
  return true;
}

common::Status Hub::exec_available(const std::string& node) const {
  std::lock_guard lock(impl_->mu);
  std::shared_ptr<SessionCore> session = impl_->live_session_locked(node);
  if (!session) return make_error(Code::kUnavailable, "{}", impl_->offline_reason_locked(node));
  if (session->exec_sessions() >= impl_->options.max_exec_streams_per_node)
    return impl_->exec_limit_error(node);
  return common::Status();
}

common::Result<std::unique_ptr<LogStream>> Hub::open_exec_stream(const std::string& node,
                                                                 v1::ExecRequest request,
                                                                 LogStreamCallbacks callbacks) {
  std::shared_ptr<SessionCore> session;
  {
    std::lock_guard lock(impl_->mu);
    session = impl_->live_session_locked(node);
    if (!session) {
      ++impl_->stats.exec_streams_refused;
      return make_error(Code::kUnavailable, "{}", impl_->offline_reason_locked(node));
    }
  }
  if (impl_->stopped) return make_error(Code::kUnavailable, "cloudcore is shutting down");
  if (!session->take_exec_slot()) {
    ++impl_->stats.exec_streams_refused;
    return impl_->exec_limit_error(node);
  }
  auto state = std::make_shared<LogStream::State>();
  state->callbacks = std::move(callbacks);
  state->session = session;
  state->conn = session->connection();
  state->conn->post(
      [state, session, request = std::move(request)] { session->open_exec(state, request); });
  return std::make_unique<LogStream>(state);
}

void LogStream::send_input(std::string data, bool eof, std::function<void()> sent) {
  if (!state_->conn) {
    if (sent) sent();
    return;
  }
  PendingInput in;
  in.data = std::move(data);
  in.eof = eof;
  in.sent = std::move(sent);
  state_->conn->post([state = state_, in = std::move(in)]() mutable {
    if (auto session = state->session.lock()) {
      session->input(state, std::move(in));
    } else if (in.sent) {
      in.sent();
    }
  });
}

void LogStream::resize(uint32_t width, uint32_t height) {
  if (!state_->conn) return;
  PendingInput in;
  in.resize = true;
  in.width = width;
  in.height = height;
  state_->conn->post([state = state_, in = std::move(in)]() mutable {
    if (auto session = state->session.lock()) session->input(state, std::move(in));
  });
}

LogStream::~LogStream() {
  {
    std::lock_guard lock(state_->mu);
    state_->finished = true;
    state_->callbacks = {};  // drops what the callbacks hold (they may hold this handle's owner)
  }
  if (!state_->conn) return;
  state_->conn->post([state = state_] {
    if (auto session = state->session.lock()) session->cancel_log(state);
  });
}

void LogStream::consumed(size_t bytes) {
  if (bytes == 0 || !state_->conn) return;
  state_->conn->post([state = state_, bytes] {
    if (auto session = state->session.lock()) session->grant_log(state, bytes);
  });
}

void Hub::clear_unreachable(const std::string& node) {
  if (impl_->stopped) return;
  std::lock_guard lock(impl_->mu);  // ordered with the sweep's marks, as attach() is
  if (impl_->writer) impl_->writer->set_unreachable(node, false);
}

void Hub::stop() {
  if (impl_->stopped.exchange(true)) return;
  impl_->sweep_timer.cancel();
  if (impl_->tls) impl_->tls->set_peer_rejected_handler(nullptr);
  if (impl_->server) impl_->server->stop();
  // Sessions end on the loop; wait (bounded) so none outlives the store and registry.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (impl_->stats.sessions_open.load() > 0 && std::chrono::steady_clock::now() < deadline &&
         !impl_->loop.in_loop_thread())
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  impl_->writer.reset();  // finishes queued status writes
}

}  // namespace gantry::cloud
