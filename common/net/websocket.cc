#include "common/net/websocket.h"

#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <cerrno>
#include <deque>
#include <limits>
#include <mutex>
#include <unordered_map>

#include "common/base/parse.h"
#include "common/net/lean_tls_stream.h"
#include "common/net/tcp_info.h"

namespace gantry::common {

namespace detail {
namespace {

int bio_write(BIO* bio, const char* data, int size) {
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::send(static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio))), data,
                           static_cast<size_t>(size), MSG_NOSIGNAL);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
    BIO_set_retry_write(bio);
  return static_cast<int>(n);
}

int bio_read(BIO* bio, char* data, int size) {
  BIO_clear_retry_flags(bio);
  const ssize_t n = ::recv(static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio))), data,
                           static_cast<size_t>(size), 0);
  if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) BIO_set_retry_read(bio);
  return static_cast<int>(n);
}

long bio_ctrl(BIO* bio, int cmd, long, void* ptr) {
  if (cmd == BIO_C_GET_FD) {  // SSL_get_fd: lets a verify callback name the peer's address
    const int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(bio)));
    if (ptr != nullptr) *static_cast<int*>(ptr) = fd;
    return fd;
  }
  return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

int bio_create(BIO* bio) {
  BIO_set_init(bio, 1);
  return 1;
}

const BIO_METHOD* nosignal_socket_method() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                                 "gantry socket");
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    BIO_meth_set_create(m, bio_create);
    return m;
  }();
  return method;
}

}  // namespace

BIO* new_nosignal_socket_bio(int fd) {
  BIO* bio = BIO_new(nosignal_socket_method());
  if (bio != nullptr) BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  return bio;
}

}  // namespace detail

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;
using boost::system::error_code;

constexpr size_t kUpgradeHeaderLimit = 16 * 1024;
constexpr size_t kUpgradeBodyLimit = 4 * 1024;
constexpr char kUserAgent[] = "gantry";
constexpr size_t kReadChunkBytes = 64 * 1024;

std::string endpoint_string(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  if (address.is_v6()) return fmt::format("[{}]:{}", address.to_string(), endpoint.port());
  return fmt::format("{}:{}", address.to_string(), endpoint.port());
}

bool is_tls_error(const error_code& ec) {
  return ec.category() == asio::error::get_ssl_category() ||
         ec.category() == ssl::error::get_stream_category();
}

// Strips "?query" from a request target.
std::string_view target_path(std::string_view target) {
  return target.substr(0, target.find('?'));
}

}  // namespace

std::string_view connect_error_kind_name(ConnectError::Kind kind) {
  switch (kind) {
    case ConnectError::Kind::kTcp:
      return "tcp";
    case ConnectError::Kind::kTls:
      return "tls";
    case ConnectError::Kind::kHttpRefused:
      return "http-refused";
    case ConnectError::Kind::kTimeout:
      return "timeout";
    case ConnectError::Kind::kProtocol:
      return "protocol";
  }
  return "unknown";
}

class WsSession;

struct WsServer::State : std::enable_shared_from_this<WsServer::State> {
  State(asio::io_context& ioc, std::shared_ptr<TlsContext> tls_context, WsServerOptions opts)
      : ioc(ioc),
        tls(std::move(tls_context)),
        options(std::move(opts)),
        acceptor(asio::make_strand(ioc)),
        retry_timer(acceptor.get_executor()) {}

  void do_accept();
  void on_accept(const error_code& ec, tcp::socket socket);
  // From any thread: a handshake ended (either way); resume accepting if we had paused.
  void handshake_finished();
  void add(WsSession* session, std::weak_ptr<WsSession> weak);
  void remove(WsSession* session);

  asio::io_context& ioc;
  std::shared_ptr<TlsContext> tls;
  WsServerOptions options;
  tcp::acceptor acceptor;  // on its own strand, like everything below it
  asio::steady_timer retry_timer;
  uint16_t port = 0;
  int handshakes_in_progress = 0;
  bool paused = false;
  std::atomic<bool> stopped{false};
  WsServerStats stats;

  std::mutex mu;
  std::unordered_map<WsSession*, std::weak_ptr<WsSession>> sessions;
};

// One WebSocket connection, server or client side. Everything runs on `strand_`; public
// WsConnection methods post onto it.
class WsSession : public WsConnection, public std::enable_shared_from_this<WsSession> {
 public:
  using Stream = websocket::stream<detail::LeanTlsStream>;

  // Server side, from an accepted socket.
  WsSession(std::shared_ptr<WsServer::State> server, tcp::socket socket)
      : server_(std::move(server)),
        tls_(server_->tls),
        ws_(std::move(socket), tls_->native()),
        timer_(ws_.get_executor()),
        max_message_bytes_(server_->options.max_message_bytes),
        max_queued_bytes_(server_->options.max_queued_bytes),
        handshake_timeout_(server_->options.handshake_timeout),
        idle_timeout_(server_->options.idle_timeout) {}

  // Client side.
  WsSession(asio::io_context& ioc, std::shared_ptr<TlsContext> tls, WsClientOptions options,
            std::unique_ptr<WsHandler> handler, std::function<void(ConnectResult)> done)
      : tls_(std::move(tls)),
        ws_(asio::make_strand(ioc), tls_->native()),
        timer_(ws_.get_executor()),
        max_message_bytes_(options.max_message_bytes),
        max_queued_bytes_(options.max_queued_bytes),
        handshake_timeout_(options.handshake_timeout),
        idle_timeout_(options.idle_timeout),
        ping_interval_(options.ping_interval),
        client_options_(std::move(options)),
        handler_(std::move(handler)),
        connect_done_(std::move(done)) {}

  ~WsSession() override {
    if (server_) server_->remove(this);
  }

  // --- WsConnection ---
  void send(std::string message) override {
    if (!open_) return;
    const size_t size = message.size();
    if (queued_bytes_.fetch_add(size) + size > max_queued_bytes_) {
      queued_bytes_.fetch_sub(size);
      asio::post(ws_.get_executor(), [self = shared_from_this()] {
        if (self->server_) self->server_->stats.closed_queue_full++;
        spdlog::info("websocket {}: closing: send queue above {} bytes", self->peer_.remote_address,
                     self->max_queued_bytes_);
        self->start_close("send queue full", /*drain=*/false);
      });
      return;
    }
    asio::post(ws_.get_executor(),
               [self = shared_from_this(), message = std::move(message)]() mutable {
                 if (self->phase_ != Phase::kOpen) {
                   self->queued_bytes_.fetch_sub(message.size());
                   return;
                 }
                 self->queue_.push_back(std::move(message));
                 if (!self->writing_) self->do_write();
               });
  }

  void close(std::string reason) override {
    asio::post(ws_.get_executor(), [self = shared_from_this(), reason = std::move(reason)] {
      self->start_close(reason, /*drain=*/true);
    });
  }

  const PeerInfo& peer() const override { return peer_; }

  void post(std::function<void()> fn) override { asio::post(ws_.get_executor(), std::move(fn)); }

  uint64_t bytes_sent() const override { return bytes_sent_; }
  uint64_t bytes_received() const override { return bytes_received_; }
  bool is_open() const override { return open_; }

  // --- server side ---
  void run_server() {
    asio::dispatch(ws_.get_executor(), [self = shared_from_this()] { self->on_server_start(); });
  }

  // --- client side ---
  void run_client() {
    asio::dispatch(ws_.get_executor(), [self = shared_from_this()] { self->on_client_start(); });
  }

 private:
  enum class Phase { kHandshake, kOpen, kClosing, kClosed };

  beast::tcp_stream& tcp_layer() { return beast::get_lowest_layer(ws_); }

  void fill_peer_from_tls() {
    SSL* ssl = ws_.next_layer().native_handle();
    peer_.common_name = peer_common_name(ssl);
    peer_.tls_resumed = tls_session_resumed(ssl);
    peer_.certificate_not_after = peer_not_after(ssl).value_or(peer_.certificate_not_after);
  }

  void configure_open_stream() {
    tcp_layer().expires_never();
    websocket::stream_base::timeout timeouts;
    timeouts.handshake_timeout = handshake_timeout_;         // also bounds the close handshake
    timeouts.idle_timeout = websocket::stream_base::none();  // our own timer, see on_timer()
    timeouts.keep_alive_pings = false;
    ws_.set_option(timeouts);
    // Beast's own limit fails the connection without telling us why; we count message bytes
    // ourselves in on_read() and close with "message too big".
    ws_.read_message_max(0);
    ws_.binary(true);
    ws_.auto_fragment(false);
    ws_.control_callback([this](websocket::frame_type, beast::string_view) {
      last_received_ = Clock::now();  // pings and pongs count as activity
    });
  }

  void on_server_start() {
    error_code ec;
    tcp_layer().socket().set_option(tcp::no_delay(true), ec);
    auto remote = tcp_layer().socket().remote_endpoint(ec);
    peer_.remote_address = ec ? "unknown" : endpoint_string(remote);
    arm_handshake_timer();
    ws_.next_layer().async_handshake(
        ssl::stream_base::server,
        beast::bind_front_handler(&WsSession::on_server_tls_handshake, shared_from_this()));
  }

  void on_server_tls_handshake(error_code ec) {
    if (ec) return fail_server_handshake("TLS handshake", ec);
    fill_peer_from_tls();
    upgrade_parser_.emplace();
    upgrade_parser_->header_limit(kUpgradeHeaderLimit);
    upgrade_parser_->body_limit(kUpgradeBodyLimit);
    http::async_read(
        ws_.next_layer(), read_buffer_, *upgrade_parser_,
        beast::bind_front_handler(&WsSession::on_server_upgrade_request, shared_from_this()));
  }

  void on_server_upgrade_request(error_code ec, size_t) {
    if (ec) return fail_server_handshake("reading the upgrade request", ec);
    const auto& options = server_->options;
    auto& request = upgrade_parser_->get();
    const std::string_view target(request.target().data(), request.target().size());
    if (target_path(target) != options.path) {
      server_->stats.refused_path++;
      spdlog::debug("websocket {}: 404 for {}", peer_.remote_address,
                    std::string(request.target()));
      return refuse(Admission{404, 0, "not found"}, request.version());
    }
    if (!websocket::is_upgrade(request)) {
      server_->stats.refused_path++;
      return refuse(Admission{426, 0, "this endpoint only speaks WebSocket"}, request.version());
    }
    if (options.admit) {
      Admission admission = options.admit(peer_);
      if (admission.status != 101) {
        server_->stats.refused_admission++;
        spdlog::info("websocket {} (CN '{}'): refused with {}: {}", peer_.remote_address,
                     peer_.common_name, admission.status, admission.reason);
        return refuse(admission, request.version());
      }
    }
    configure_open_stream();
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::response_type& res) { res.set(http::field::server, kUserAgent); }));
    ws_.async_accept(request,
                     beast::bind_front_handler(&WsSession::on_server_accept, shared_from_this()));
  }

  void on_server_accept(error_code ec) {
    tcp_layer().expires_never();
    if (ec) return fail_server_handshake("WebSocket upgrade", ec);
    release_handshake_slot();
    read_buffer_.consume(read_buffer_.size());
    upgrade_parser_.reset();
    handler_ = server_->options.handler_factory(peer_);
    if (!handler_) {
      phase_ = Phase::kOpen;
      return start_close("no handler for this peer", false);
    }
    server_->stats.opened++;
    server_->stats.open_connections++;
    counted_open_ = true;
    open_session();
  }

  void refuse(const Admission& admission, unsigned version) {
    refusal_.emplace(static_cast<http::status>(admission.status), version);
    refusal_->set(http::field::server, kUserAgent);
    refusal_->set(http::field::content_type, "text/plain");
    if (admission.retry_after_seconds > 0) {
      refusal_->set(http::field::retry_after, std::to_string(admission.retry_after_seconds));
    }
    refusal_->keep_alive(false);
    refusal_->body() = admission.reason;
    refusal_->prepare_payload();
    http::async_write(ws_.next_layer(), *refusal_, [self = shared_from_this()](error_code, size_t) {
      self->ws_.next_layer().async_shutdown([self](error_code) { self->end_handshake(); });
    });
  }

  void fail_server_handshake(std::string_view stage, const error_code& ec) {
    server_->stats.handshake_failures++;
    spdlog::debug("websocket {}: {} failed: {}", peer_.remote_address, stage, ec.message());
    end_handshake();
  }

  // The TLS stream has no deadline of its own: cancel its socket wait when the handshake (TLS +
  // upgrade) takes too long. arm_timer() replaces this once the session is open.
  void arm_handshake_timer() {
    timer_.expires_after(handshake_timeout_);
    timer_.async_wait([self = shared_from_this()](error_code ec) {
      if (ec || self->phase_ != Phase::kHandshake) return;
      self->handshake_timed_out_ = true;
      error_code ignored;
      self->tcp_layer().socket().cancel(ignored);
      self->tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
    });
  }

  void end_handshake() {
    timer_.cancel();
    release_handshake_slot();
    phase_ = Phase::kClosed;
    error_code ignored;
    tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp_layer().close();
  }

  void release_handshake_slot() {
    if (server_ && holds_handshake_slot_) {
      holds_handshake_slot_ = false;
      server_->handshake_finished();
    }
  }

  // --- client side ---
  void on_client_start() {
    const auto& options = client_options_;
    tcp_layer().expires_after(handshake_timeout_);  // the TCP connect
    arm_handshake_timer();                          // everything up to the upgrade
    error_code ec;
    auto address = asio::ip::make_address(options.host, ec);
    if (!ec) {
      endpoints_.emplace_back(address, options.port);
      return connect_next();
    }
    resolver_.emplace(ws_.get_executor());
    resolver_->async_resolve(
        options.host, std::to_string(options.port),
        [self = shared_from_this()](error_code ec, tcp::resolver::results_type results) {
          if (ec) {
            return self->fail_connect(
                ConnectError::Kind::kTcp,
                fmt::format("cannot resolve {}: {}", self->client_options_.host, ec.message()));
          }
          for (const auto& entry : results) self->endpoints_.push_back(entry.endpoint());
          self->connect_next();
        });
  }

  void connect_next() {
    if (next_endpoint_ >= endpoints_.size()) {
      return fail_connect(ConnectError::Kind::kTcp,
                          fmt::format("cannot connect to {}", connect_errors_));
    }
    const tcp::endpoint endpoint = endpoints_[next_endpoint_++];
    auto& socket = tcp_layer().socket();
    error_code ec;
    if (socket.is_open()) socket.close(ec);
    socket.open(endpoint.protocol(), ec);
    if (!ec && !client_options_.local_address.empty()) {
      auto local = asio::ip::make_address(client_options_.local_address, ec);
      if (!ec) socket.bind(tcp::endpoint(local, 0), ec);
      if (ec) {
        return fail_connect(ConnectError::Kind::kTcp,
                            fmt::format("cannot bind local address {}: {}",
                                        client_options_.local_address, ec.message()));
      }
    }
    if (ec) {
      return fail_connect(ConnectError::Kind::kTcp,
                          fmt::format("cannot open a socket: {}", ec.message()));
    }
    tcp_layer().async_connect(endpoint, [self = shared_from_this(), endpoint](error_code ec) {
      self->on_client_connect(ec, endpoint);
    });
  }

  void on_client_connect(error_code ec, const tcp::endpoint& endpoint) {
    const std::string where = endpoint_string(endpoint);
    if (ec == beast::error::timeout) {
      return fail_connect(
          ConnectError::Kind::kTimeout,
          fmt::format("timed out after {} ms connecting to {}", handshake_timeout_.count(), where));
    }
    if (ec) {
      if (!connect_errors_.empty()) connect_errors_ += ", ";
      connect_errors_ += fmt::format("{} ({})", where, ec.message());
      return connect_next();
    }
    tcp_layer().socket().set_option(tcp::no_delay(true), ec);
    peer_.remote_address = where;
    Status prepared = tls_->prepare_client(ws_.next_layer().native_handle(), client_options_.host,
                                           client_options_.identity.get());
    if (!prepared.ok()) return fail_connect(ConnectError::Kind::kTls, prepared.message());
    ws_.next_layer().async_handshake(
        ssl::stream_base::client,
        beast::bind_front_handler(&WsSession::on_client_tls_handshake, shared_from_this()));
  }

  void on_client_tls_handshake(error_code ec) {
    if (ec == beast::error::timeout || (ec && handshake_timed_out_)) {
      return fail_connect(ConnectError::Kind::kTimeout,
                          fmt::format("timed out after {} ms in the TLS handshake with {}",
                                      handshake_timeout_.count(), peer_.remote_address));
    }
    if (ec) {
      return fail_connect(
          ConnectError::Kind::kTls,
          fmt::format("TLS handshake with {} failed: {}", peer_.remote_address,
                      describe_tls_failure(ws_.next_layer().native_handle(), ec.message())));
    }
    fill_peer_from_tls();
    ws_.set_option(websocket::stream_base::decorator(
        [](websocket::request_type& req) { req.set(http::field::user_agent, kUserAgent); }));
    const std::string host_header =
        fmt::format("{}:{}", client_options_.host, client_options_.port);
    ws_.async_handshake(
        upgrade_response_, host_header, client_options_.path,
        beast::bind_front_handler(&WsSession::on_client_upgrade, shared_from_this()));
  }

  void on_client_upgrade(error_code ec) {
    const std::string url = fmt::format("wss://{}{}", peer_.remote_address, client_options_.path);
    if (ec == websocket::error::upgrade_declined) {
      ConnectError error;
      error.kind = ConnectError::Kind::kHttpRefused;
      error.http_status = static_cast<int>(upgrade_response_.result_int());
      auto retry = upgrade_response_.find(http::field::retry_after);
      if (retry != upgrade_response_.end()) {
        // Delta-seconds only (common/base/parse: digits, nothing else); an HTTP date, "12abc" or
        // a negative number is treated as absent.
        auto seconds =
            common::parse_int64(std::string_view(retry->value().data(), retry->value().size()), 0,
                                std::numeric_limits<int>::max());
        error.retry_after_seconds = seconds.ok() ? static_cast<int>(*seconds) : 0;
      }
      error.body = upgrade_response_.body();
      error.message =
          fmt::format("{} refused the WebSocket upgrade with HTTP {}{}{}", url, error.http_status,
                      error.retry_after_seconds > 0
                          ? fmt::format(" (retry after {} s)", error.retry_after_seconds)
                          : std::string(),
                      error.body.empty() ? std::string() : ": " + error.body);
      return fail_connect(std::move(error));
    }
    if (ec == beast::error::timeout || (ec && handshake_timed_out_)) {
      return fail_connect(ConnectError::Kind::kTimeout,
                          fmt::format("timed out after {} ms waiting for the upgrade from {}",
                                      handshake_timeout_.count(), url));
    }
    if (ec && is_tls_error(ec)) {
      // With TLS 1.3 the server checks our certificate after our side of the handshake is done,
      // so its rejection arrives here as an alert.
      return fail_connect(ConnectError::Kind::kTls,
                          fmt::format("{} rejected the TLS connection: {}", url, ec.message()));
    }
    if (ec) {
      return fail_connect(ConnectError::Kind::kProtocol,
                          fmt::format("WebSocket upgrade with {} failed: {}", url, ec.message()));
    }
    // A resumed session carries no new certificate exchange, but OpenSSL still reports the
    // original peer certificate.
    configure_open_stream();
    last_sent_ = Clock::now();
    auto done = std::move(connect_done_);
    open_ = true;  // send() from `done` must work
    phase_ = Phase::kOpen;
    if (done) {
      ConnectResult result;
      result.connection = shared_from_this();
      done(std::move(result));
    }
    open_session();
  }

  void fail_connect(ConnectError::Kind kind, std::string message) {
    ConnectError error;
    error.kind = kind;
    error.message = std::move(message);
    fail_connect(std::move(error));
  }

  void fail_connect(ConnectError error) {
    phase_ = Phase::kClosed;
    timer_.cancel();
    error_code ignored;
    tcp_layer().socket().close(ignored);
    handler_.reset();
    if (auto done = std::move(connect_done_)) {
      ConnectResult result;
      result.error = std::move(error);
      done(std::move(result));
    }
  }

  // --- both sides, once open ---
  void open_session() {
    phase_ = Phase::kOpen;
    open_ = true;
    last_received_ = Clock::now();
    if (last_sent_ == Clock::time_point()) last_sent_ = last_received_;
    update_byte_counts();
    handler_->on_open(shared_from_this());
    if (phase_ != Phase::kOpen && phase_ != Phase::kClosing) return;
    do_read();
    arm_timer();
  }

  void do_read() {
    read_pending_ = true;
    ws_.async_read_some(read_buffer_, kReadChunkBytes,
                        beast::bind_front_handler(&WsSession::on_read, shared_from_this()));
  }

  void on_read(error_code ec, size_t) {
    read_pending_ = false;
    update_byte_counts();
    if (!ec && read_buffer_.size() > max_message_bytes_) {
      if (server_) server_->stats.closed_too_big++;
      spdlog::info("websocket {}: closing: a message exceeded {} bytes", peer_.remote_address,
                   max_message_bytes_);
      read_buffer_ = beast::flat_buffer();
      if (phase_ == Phase::kOpen) {
        // No read is pending now: Beast's close discards the rest of the message while it waits
        // for the peer's close, and its completion finishes the session.
        phase_ = Phase::kClosing;
        open_ = false;
        close_reason_ = "message too big";
        close_code_ = websocket::close_code::too_big;
        drop_queue(/*keep_in_flight=*/writing_);
        send_close();
        return;
      }
      return finish(close_reason_);
    }
    if (!ec && !ws_.is_message_done()) return do_read();
    if (ec) {
      std::string reason;
      if (ec == websocket::error::closed) {
        const auto& close = ws_.reason();
        reason = close.reason.empty()
                     ? fmt::format("closed by peer (code {})", static_cast<int>(close.code))
                     : std::string(close.reason.data(), close.reason.size());
      } else {
        reason = ec.message();
      }
      return finish(close_reason_.empty() ? reason : close_reason_);
    }
    last_received_ = Clock::now();
    if (phase_ == Phase::kOpen && handler_) {
      const auto data = read_buffer_.data();
      handler_->on_message(std::string_view(static_cast<const char*>(data.data()), data.size()));
    }
    read_buffer_.consume(read_buffer_.size());
    do_read();
  }

  void do_write() {
    writing_ = true;
    ws_.async_write(asio::buffer(queue_.front()),
                    beast::bind_front_handler(&WsSession::on_write, shared_from_this()));
  }

  void on_write(error_code ec, size_t) {
    writing_ = false;
    update_byte_counts();
    if (ec) {
      // The read side sees the failure too and finishes the session.
      for (auto& message : queue_) queued_bytes_.fetch_sub(message.size());
      queue_.clear();
      error_code ignored;
      tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
      return;
    }
    last_sent_ = Clock::now();
    queued_bytes_.fetch_sub(queue_.front().size());
    queue_.pop_front();
    // Closing with a drain: what was queued before close() still goes out, then the close.
    if (!queue_.empty() && (phase_ == Phase::kOpen || close_after_drain_)) return do_write();
    if (phase_ == Phase::kClosing && close_after_drain_ && queue_.empty()) {
      close_after_drain_ = false;
      send_close();
    }
  }

  void start_close(std::string reason, bool drain) {
    if (phase_ == Phase::kHandshake) {
      if (!close_reason_.empty()) return;
      close_reason_ = std::move(reason);
      return end_handshake();
    }
    if (phase_ != Phase::kOpen) return;
    phase_ = Phase::kClosing;
    open_ = false;
    close_reason_ = std::move(reason);
    if (drain && (writing_ || !queue_.empty())) {
      close_after_drain_ = true;
      return;
    }
    // Without draining, drop what is not yet on the wire (the write in flight completes).
    drop_queue(/*keep_in_flight=*/writing_);
    send_close();
  }

  void drop_queue(bool keep_in_flight) {
    const size_t keep = keep_in_flight && !queue_.empty() ? 1 : 0;
    for (size_t i = keep; i < queue_.size(); ++i) queued_bytes_.fetch_sub(queue_[i].size());
    queue_.resize(keep);
  }

  void send_close() {
    if (control_in_flight_) {
      close_after_control_ = true;  // one ping/pong/close at a time
      return;
    }
    control_in_flight_ = true;
    // A close frame has room for 123 bytes of reason (Beast would throw on more).
    const std::string_view reason = std::string_view(close_reason_).substr(0, 123);
    ws_.async_close(
        websocket::close_reason(close_code_, beast::string_view(reason.data(), reason.size())),
        [self = shared_from_this()](error_code ec) {
          self->control_in_flight_ = false;
          // With a read pending, that read completes (`closed` or an error) and
          // finishes the session.
          if (!self->read_pending_) return self->finish(self->close_reason_);
          if (ec) {
            error_code ignored;
            self->tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
            self->tcp_layer().close();
          }
        });
  }

  void finish(std::string reason) {
    if (phase_ == Phase::kClosed) return;
    phase_ = Phase::kClosed;
    open_ = false;
    timer_.cancel();
    for (auto& message : queue_) queued_bytes_.fetch_sub(message.size());
    queue_.clear();
    if (counted_open_) server_->stats.open_connections--;
    if (handler_) {
      auto handler = std::move(handler_);
      handler->on_close(reason);
    }
    tcp_layer().close();
  }

  void arm_timer() {
    if (phase_ == Phase::kClosed) return;
    Clock::time_point deadline = Clock::time_point::max();
    if (idle_timeout_.count() > 0) deadline = last_received_ + idle_timeout_;
    if (ping_interval_.count() > 0) deadline = std::min(deadline, last_sent_ + ping_interval_);
    if (deadline == Clock::time_point::max()) return;
    timer_.expires_at(deadline);
    timer_.async_wait(beast::bind_front_handler(&WsSession::on_timer, shared_from_this()));
  }

  void on_timer(error_code ec) {
    if (ec || phase_ == Phase::kClosed) return;
    const auto now = Clock::now();
    if (phase_ == Phase::kOpen && idle_timeout_.count() > 0 &&
        now >= last_received_ + idle_timeout_) {
      if (server_) server_->stats.closed_idle++;
      spdlog::info("websocket {}: closing: nothing received for {} ms", peer_.remote_address,
                   idle_timeout_.count());
      start_close("idle timeout", /*drain=*/false);
      return;
    }
    if (phase_ == Phase::kOpen && ping_interval_.count() > 0 &&
        now >= last_sent_ + ping_interval_ && !control_in_flight_) {
      control_in_flight_ = true;
      last_sent_ = now;
      ws_.async_ping({}, [self = shared_from_this()](error_code ec) {
        self->control_in_flight_ = false;
        if (self->close_after_control_) {
          self->close_after_control_ = false;
          self->send_close();
        }
      });
    }
    if (phase_ == Phase::kOpen) arm_timer();
  }

  void update_byte_counts() {
    uint64_t acked = 0;
    uint64_t received = 0;
    if (detail::read_tcp_byte_counts(tcp_layer().socket().native_handle(), &acked, &received)) {
      bytes_sent_ = acked;
      bytes_received_ = received;
    }
  }

  std::shared_ptr<WsServer::State> server_;  // server side only
  std::shared_ptr<TlsContext> tls_;          // outlives ws_, which uses its ssl::context
  Stream ws_;
  asio::steady_timer timer_;
  beast::flat_buffer read_buffer_;
  const size_t max_message_bytes_;
  const size_t max_queued_bytes_;
  const std::chrono::milliseconds handshake_timeout_;
  const std::chrono::milliseconds idle_timeout_;
  const std::chrono::milliseconds ping_interval_{0};

  PeerInfo peer_;
  Phase phase_ = Phase::kHandshake;
  std::atomic<bool> open_{false};
  std::atomic<size_t> queued_bytes_{0};
  std::atomic<uint64_t> bytes_sent_{0};
  std::atomic<uint64_t> bytes_received_{0};
  std::deque<std::string> queue_;
  bool writing_ = false;
  bool read_pending_ = false;
  websocket::close_code close_code_ = websocket::close_code::normal;
  bool control_in_flight_ = false;
  bool close_after_control_ = false;
  bool close_after_drain_ = false;
  bool handshake_timed_out_ = false;
  std::string close_reason_;
  Clock::time_point last_received_;
  Clock::time_point last_sent_;

  // Server handshake.
  bool holds_handshake_slot_ = true;
  bool counted_open_ = false;
  std::optional<http::request_parser<http::string_body>> upgrade_parser_;
  std::optional<http::response<http::string_body>> refusal_;

  // Client handshake.
  WsClientOptions client_options_;
  std::optional<tcp::resolver> resolver_;
  std::vector<tcp::endpoint> endpoints_;
  size_t next_endpoint_ = 0;
  std::string connect_errors_;
  websocket::response_type upgrade_response_;

  std::unique_ptr<WsHandler> handler_;
  std::function<void(ConnectResult)> connect_done_;

 public:
  // From WsServer::stop(): closes an open connection, or drops one still in its handshake.
  void abort_handshake_or_close(std::string reason) {
    asio::post(ws_.get_executor(), [self = shared_from_this(), reason = std::move(reason)] {
      self->start_close(reason, /*drain=*/true);
    });
  }
};

// --- WsServer ---

void WsServer::State::do_accept() {
  if (stopped) return;
  if (handshakes_in_progress >= options.max_concurrent_handshakes) {
    if (!paused) stats.throttled_accepts++;
    paused = true;  // clients wait in the kernel's accept queue until a handshake ends
    return;
  }
  paused = false;
  acceptor.async_accept(asio::make_strand(ioc),
                        beast::bind_front_handler(&State::on_accept, shared_from_this()));
}

void WsServer::State::on_accept(const error_code& ec, tcp::socket socket) {
  if (stopped) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    spdlog::warn("websocket server :{}: accept failed: {}", port, ec.message());
    // E.g. out of file descriptors: back off briefly instead of spinning.
    retry_timer.expires_after(std::chrono::milliseconds(100));
    retry_timer.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->do_accept();
    });
    return;
  }
  stats.accepted++;
  handshakes_in_progress++;
  auto session = std::make_shared<WsSession>(shared_from_this(), std::move(socket));
  add(session.get(), session);
  session->run_server();
  do_accept();
}

void WsServer::State::handshake_finished() {
  asio::post(acceptor.get_executor(), [self = shared_from_this()] {
    self->handshakes_in_progress--;
    if (self->paused) self->do_accept();
  });
}

void WsServer::State::add(WsSession* session, std::weak_ptr<WsSession> weak) {
  std::lock_guard lock(mu);
  sessions.emplace(session, std::move(weak));
}

void WsServer::State::remove(WsSession* session) {
  std::lock_guard lock(mu);
  sessions.erase(session);
}

Result<std::unique_ptr<WsServer>> WsServer::start(EventLoop& loop, std::shared_ptr<TlsContext> tls,
                                                  WsServerOptions options) {
  if (!tls || tls->role() != TlsRole::kServer) {
    return make_error(Code::kInvalidArgument, "WsServer needs a server TLS context");
  }
  if (!options.handler_factory) {
    return make_error(Code::kInvalidArgument, "WsServer needs a handler factory");
  }
  error_code ec;
  auto address = asio::ip::make_address(options.address, ec);
  if (ec) {
    return make_error(Code::kInvalidArgument, "WsServer: bad listen address '{}'", options.address);
  }
  const tcp::endpoint endpoint(address, options.port);
  auto state = std::make_shared<State>(loop.context(), std::move(tls), std::move(options));
  auto& acceptor = state->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(state->options.listen_backlog, ec);
  if (ec) {
    return make_error(Code::kUnavailable, "WebSocket server cannot listen on {}: {}",
                      endpoint_string(endpoint), ec.message());
  }
  state->port = acceptor.local_endpoint().port();
  spdlog::info("websocket server listening on {}{}",
               endpoint_string(tcp::endpoint(address, state->port)), state->options.path);
  asio::dispatch(acceptor.get_executor(), [state] { state->do_accept(); });
  return std::unique_ptr<WsServer>(new WsServer(std::move(state)));
}

WsServer::~WsServer() {
  stop();
}

uint16_t WsServer::port() const {
  return state_->port;
}

const WsServerStats& WsServer::stats() const {
  return state_->stats;
}

void WsServer::stop() {
  if (state_->stopped.exchange(true)) return;
  asio::post(state_->acceptor.get_executor(), [state = state_] {
    error_code ignored;
    state->acceptor.close(ignored);
    state->retry_timer.cancel();
  });
  std::vector<std::shared_ptr<WsSession>> sessions;
  {
    std::lock_guard lock(state_->mu);
    for (auto& [raw, weak] : state_->sessions) {
      if (auto session = weak.lock()) sessions.push_back(std::move(session));
    }
  }
  for (auto& session : sessions) session->abort_handshake_or_close("server shutting down");
}

// --- client ---

void ws_connect(EventLoop& loop, std::shared_ptr<TlsContext> tls, WsClientOptions options,
                std::unique_ptr<WsHandler> handler, std::function<void(ConnectResult)> done) {
  if (!tls || tls->role() != TlsRole::kClient || !handler) {
    ConnectResult result;
    result.error = ConnectError{ConnectError::Kind::kProtocol, 0, 0, "",
                                "ws_connect needs a client TLS context and a handler"};
    loop.post([done = std::move(done), result = std::move(result)]() mutable {
      if (done) done(std::move(result));
    });
    return;
  }
  auto session = std::make_shared<WsSession>(loop.context(), std::move(tls), std::move(options),
                                             std::move(handler), std::move(done));
  session->run_client();
}

}  // namespace gantry::common
