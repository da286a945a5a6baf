#include "common/net/http_server.h"

#include <spdlog/spdlog.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <deque>
#include <mutex>
#include <unordered_map>

namespace gantry::common {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace ssl = asio::ssl;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr char kServerName[] = "gantry";
constexpr size_t kPipelinedBytesLimit = 64 * 1024;

std::string endpoint_string(const tcp::endpoint& endpoint) {
  const auto address = endpoint.address();
  if (address.is_v6()) return fmt::format("[{}]:{}", address.to_string(), endpoint.port());
  return fmt::format("{}:{}", address.to_string(), endpoint.port());
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query) {
  std::vector<std::pair<std::string, std::string>> out;
  while (!query.empty()) {
    size_t end = query.find('&');
    std::string_view item = query.substr(0, end);
    query = end == std::string_view::npos ? std::string_view() : query.substr(end + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    out.emplace_back(
        percent_decode(item.substr(0, eq), true),
        eq == std::string_view::npos ? std::string() : percent_decode(item.substr(eq + 1), true));
  }
  return out;
}

std::string_view to_sv(beast::string_view s) {
  return {s.data(), s.size()};
}

}  // namespace

class HttpSession;

struct HttpServer::State : std::enable_shared_from_this<HttpServer::State> {
  State(asio::io_context& ioc, std::shared_ptr<TlsContext> tls_context, HttpServerOptions opts,
        Router r)
      : ioc(ioc),
        tls(std::move(tls_context)),
        options(std::move(opts)),
        router(std::move(r)),
        acceptor(asio::make_strand(ioc)),
        retry_timer(acceptor.get_executor()) {}

  void do_accept();
  void on_accept(const error_code& ec, tcp::socket socket);
  void handshake_finished();

  asio::io_context& ioc;
  std::shared_ptr<TlsContext> tls;
  HttpServerOptions options;
  Router router;
  tcp::acceptor acceptor;
  asio::steady_timer retry_timer;
  uint16_t port = 0;
  int handshakes_in_progress = 0;
  bool paused = false;
  std::atomic<bool> stopped{false};
  HttpServerStats stats;

  std::mutex mu;
  std::unordered_map<HttpSession*, std::weak_ptr<HttpSession>> sessions;
};

class StreamImpl;
class UpgradedWebSocket;

// One HTTPS connection: TLS handshake, then requests one at a time on the session's strand.
class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  HttpSession(std::shared_ptr<HttpServer::State> server, tcp::socket socket)
      : server_(std::move(server)),
        tls_(server_->tls),
        stream_(std::move(socket), tls_->native()),
        executor_(stream_.get_executor()) {}

  ~HttpSession() {
    std::lock_guard lock(server_->mu);
    server_->sessions.erase(this);
  }

  void run() {
    asio::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->start(); });
  }

  // From any thread.
  void shutdown();

  // --- used by StreamImpl, on the strand ---
  void pump_stream();
  void shed_stream();

  asio::any_io_executor executor() { return stream_.get_executor(); }

 private:
  beast::tcp_stream& tcp_layer() { return beast::get_lowest_layer(stream_); }

  void start() {
    error_code ec;
    tcp_layer().socket().set_option(tcp::no_delay(true), ec);
    auto remote = tcp_layer().socket().remote_endpoint(ec);
    peer_.remote_address = ec ? "unknown" : endpoint_string(remote);
    tcp_layer().expires_after(server_->options.handshake_timeout);
    stream_.async_handshake(
        ssl::stream_base::server,
        beast::bind_front_handler(&HttpSession::on_handshake, shared_from_this()));
  }

  void on_handshake(error_code ec) {
    release_handshake_slot();
    if (ec) {
      server_->stats.handshake_failures++;
      spdlog::debug("https {}: TLS handshake failed: {}", peer_.remote_address, ec.message());
      return close_socket();
    }
    SSL* ssl = stream_.native_handle();
    peer_.tls_resumed = tls_session_resumed(ssl);
    // Only a verified certificate names the peer.
    if (SSL_get_verify_result(ssl) == X509_V_OK) peer_.common_name = peer_common_name(ssl);
    do_read();
  }

  void release_handshake_slot() {
    if (holds_handshake_slot_) {
      holds_handshake_slot_ = false;
      server_->handshake_finished();
    }
  }

  void do_read() {
    if (closed_) return;
    parser_.emplace();
    parser_->header_limit(static_cast<uint32_t>(server_->options.max_header_bytes));
    parser_->body_limit(server_->options.max_body_bytes);
    tcp_layer().expires_after(server_->options.request_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&HttpSession::on_read, shared_from_this()));
  }

  void on_read(error_code ec, size_t) {
    if (closed_) return;
    if (ec == http::error::end_of_stream) return graceful_close();
    if (ec == http::error::body_limit) {
      server_->stats.rejected_too_large++;
      return reply_and_close(
          413, fmt::format("request body larger than {} bytes\n", server_->options.max_body_bytes));
    }
    if (ec == http::error::header_limit) {
      server_->stats.rejected_too_large++;
      return reply_and_close(431, "request header fields too large\n");
    }
    if (ec && ec.category() == make_error_code(http::error::bad_target).category()) {  // parse
      server_->stats.bad_requests++;
      return reply_and_close(400, fmt::format("bad request: {}\n", ec.message()));
    }
    if (ec) return close_socket();  // timeout, reset, TLS error: nobody to answer
    tcp_layer().expires_never();
    server_->stats.requests++;

    http::request<http::string_body> message = parser_->release();
    keep_alive_ = message.keep_alive();
    version_ = message.version();
    Request request;
    request.method = std::string(to_sv(message.method_string()));
    request.target = std::string(to_sv(message.target()));
    const size_t question = request.target.find('?');
    request.path = percent_decode(std::string_view(request.target).substr(0, question));
    if (question != std::string::npos) {
      request.query = parse_query(std::string_view(request.target).substr(question + 1));
    }
    for (const auto& field : message) {
      request.headers.emplace_back(std::string(to_sv(field.name_string())),
                                   std::string(to_sv(field.value())));
    }
    request.body = std::move(message.body());
    request.peer = peer_;
    parser_.reset();
    std::weak_ptr<HttpSession> weak = shared_from_this();
    request.stream_factory = [weak](int status, HttpHeaders headers) {
      auto self = weak.lock();
      return self ? self->start_stream(status, std::move(headers))
                  : std::shared_ptr<ResponseStream>();
    };
    request.defer_factory = [weak]() -> std::shared_ptr<DeferredResponse> {
      auto self = weak.lock();
      return self ? self->make_deferred() : nullptr;
    };

    Response response;
    try {
      response = server_->router.dispatch(request);
    } catch (const std::exception& e) {
      spdlog::error("https {}: handler for {} {} threw: {}", peer_.remote_address, request.method,
                    request.path, e.what());
      response = Response::text(500, "internal error\n");
    }
    if (request.taken_stream) return;  // the stream owns the rest of this connection
    if (request.deferred) return;      // answered later (DeferredImpl)
    if (request.upgrade_handler) {
      return become_websocket(std::move(message), std::move(request.upgrade_subprotocol),
                              std::move(request.upgrade_handler));
    }
    write_response(std::move(response), keep_alive_);
  }

  void become_websocket(http::request<http::string_body> message, std::string subprotocol,
                        std::unique_ptr<WsHandler> handler);

  void write_response(Response response, bool keep_alive) {
    response_.emplace(static_cast<http::status>(response.status), version_);
    response_->set(http::field::server, kServerName);
    for (auto& [name, value] : response.headers) response_->insert(name, value);
    response_->body() = std::move(response.body);
    response_->keep_alive(keep_alive);
    response_->prepare_payload();
    tcp_layer().expires_after(server_->options.request_timeout);
    http::async_write(stream_, *response_,
                      [self = shared_from_this(), keep_alive](error_code ec, size_t) {
                        self->response_.reset();
                        if (ec) return self->close_socket();
                        if (!keep_alive) return self->graceful_close();
                        self->do_read();
                      });
  }

  void reply_and_close(int status, std::string body) {
    write_response(Response::text(status, std::move(body)), /*keep_alive=*/false);
  }

  std::shared_ptr<ResponseStream> start_stream(int status, HttpHeaders headers);
  // On the strand: sends the header of `impl`'s response and starts pumping it.
  void begin_stream(std::shared_ptr<StreamImpl> impl, int status, HttpHeaders headers);
  std::shared_ptr<DeferredResponse> make_deferred();
  void on_stream_written(error_code ec);
  void watch_for_disconnect();
  void end_stream(bool notify);

  void graceful_close() {
    if (closed_) return;
    closed_ = true;
    tcp_layer().expires_after(std::chrono::seconds(5));
    stream_.async_shutdown([self = shared_from_this()](error_code) {
      error_code ignored;
      self->tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
      self->tcp_layer().close();
    });
  }

  void close_socket() {
    closed_ = true;
    error_code ignored;
    tcp_layer().socket().shutdown(tcp::socket::shutdown_both, ignored);
    tcp_layer().close();
  }

  void abort(std::string_view why) {
    if (stream_impl_) end_stream(/*notify=*/true);
    if (holds_handshake_slot_ || !closed_) close_socket();
  }

  std::shared_ptr<HttpServer::State> server_;
  std::shared_ptr<TlsContext> tls_;
  beast::ssl_stream<beast::tcp_stream> stream_;
  asio::any_io_executor executor_;  // stream_'s, kept: stream_ moves to a WebSocket
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::response<http::string_body>> response_;
  PeerInfo peer_;
  bool holds_handshake_slot_ = true;
  bool keep_alive_ = false;
  unsigned version_ = 11;
  bool closed_ = false;

  // Streaming.
  std::shared_ptr<StreamImpl> stream_impl_;
  std::optional<http::response<http::empty_body>> stream_header_;
  std::optional<http::response_serializer<http::empty_body>> stream_serializer_;
  std::string stream_wire_;  // chunks being written
  bool stream_writing_ = false;
  bool stream_header_sent_ = false;
  bool stream_finished_ = false;
  std::array<char, 1024> discard_{};

  size_t stream_wire_payload_ = 0;  // body bytes in stream_wire_

  std::weak_ptr<UpgradedWebSocket> websocket_;  // after an upgrade

  friend class StreamImpl;
  friend class DeferredImpl;
};

// A connection upgraded to a WebSocket by its handler (Request::upgrade_websocket): binary
// messages, one write in flight, Beast's idle pings.
class UpgradedWebSocket : public WsConnection,
                          public std::enable_shared_from_this<UpgradedWebSocket> {
 public:
  static constexpr size_t kMaxMessage = 1 << 20;
  static constexpr size_t kMaxQueued = 8 << 20;

  UpgradedWebSocket(beast::ssl_stream<beast::tcp_stream>&& stream, PeerInfo peer,
                    std::unique_ptr<WsHandler> handler, std::shared_ptr<HttpSession> owner)
      : ws_(std::move(stream)),
        peer_(std::move(peer)),
        handler_(std::move(handler)),
        owner_(std::move(owner)) {}

  void run(http::request<http::string_body> request, std::string subprotocol) {
    beast::get_lowest_layer(ws_).expires_never();
    websocket::stream_base::timeout timeouts;
    timeouts.handshake_timeout = std::chrono::seconds(10);
    timeouts.idle_timeout = std::chrono::seconds(60);
    timeouts.keep_alive_pings = true;
    ws_.set_option(timeouts);
    ws_.set_option(
        websocket::stream_base::decorator([subprotocol](websocket::response_type& response) {
          response.set(http::field::server, kServerName);
          if (!subprotocol.empty()) response.set(http::field::sec_websocket_protocol, subprotocol);
        }));
    ws_.binary(true);
    ws_.read_message_max(kMaxMessage);
    ws_.async_accept(request, [self = shared_from_this()](error_code ec) {
      if (ec) return self->finish("upgrade failed: " + ec.message());
      self->open_ = true;
      self->handler_->on_open(self);
      self->do_read();
      self->flush();
    });
  }

  void send(std::string message) override {
    asio::post(ws_.get_executor(), [self = shared_from_this(), m = std::move(message)]() mutable {
      if (self->done_ || self->closing_) return;
      self->queued_ += m.size();
      if (self->queued_ > kMaxQueued) return self->abort("send queue full");
      self->out_.push_back(std::move(m));
      self->flush();
    });
  }

  void close(std::string reason) override {
    asio::post(ws_.get_executor(), [self = shared_from_this(), r = std::move(reason)]() mutable {
      if (self->done_ || self->closing_) return;
      self->closing_ = true;
      self->close_reason_ = r.substr(0, 123);
      self->flush();
    });
  }

  const PeerInfo& peer() const override { return peer_; }
  void post(std::function<void()> fn) override { asio::post(ws_.get_executor(), std::move(fn)); }
  uint64_t bytes_sent() const override { return 0; }
  uint64_t bytes_received() const override { return 0; }
  bool is_open() const override { return open_ && !done_; }
  void pause_reading(bool paused) override {
    asio::post(ws_.get_executor(), [self = shared_from_this(), paused] {
      self->paused_ = paused;
      if (!paused && self->open_ && !self->reading_ && !self->done_) self->do_read();
    });
  }

 private:
  void do_read() {
    if (paused_ || reading_) return;
    reading_ = true;
    ws_.async_read(in_, [self = shared_from_this()](error_code ec, size_t) {
      self->reading_ = false;
      if (self->done_) return;
      if (ec) {
        const auto& reason = self->ws_.reason().reason;
        std::string why = ec == websocket::error::closed ? std::string(reason.data(), reason.size())
                                                         : ec.message();
        return self->finish(why);
      }
      auto data = self->in_.cdata();
      self->handler_->on_message(
          std::string_view(static_cast<const char*>(data.data()), data.size()));
      self->in_.consume(self->in_.size());
      if (!self->done_) self->do_read();
    });
  }

  void flush() {
    if (!open_ || writing_ || done_) return;
    if (out_.empty()) {
      if (closing_ && !close_sent_) {
        close_sent_ = true;
        writing_ = true;
        ws_.async_close(websocket::close_reason(websocket::close_code::normal, close_reason_),
                        [self = shared_from_this()](error_code) {
                          self->writing_ = false;
                          self->finish(self->close_reason_);
                        });
      }
      return;
    }
    writing_ = true;
    ws_.async_write(asio::buffer(out_.front()), [self = shared_from_this()](error_code ec, size_t) {
      self->writing_ = false;
      if (self->done_) return;
      if (ec) return self->finish(ec.message());
      self->queued_ -= self->out_.front().size();
      self->out_.pop_front();
      self->flush();
    });
  }

  void abort(std::string why) {
    error_code ignored;
    beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    beast::get_lowest_layer(ws_).close();
    finish(std::move(why));
  }

  void finish(std::string why) {
    if (done_) return;
    done_ = true;
    out_.clear();
    if (open_ && handler_) handler_->on_close(why);
    handler_.reset();
    if (!writing_) {
      error_code ignored;
      beast::get_lowest_layer(ws_).socket().shutdown(tcp::socket::shutdown_both, ignored);
      beast::get_lowest_layer(ws_).close();
    }
    owner_.reset();
  }

  websocket::stream<beast::ssl_stream<beast::tcp_stream>> ws_;
  PeerInfo peer_;
  std::unique_ptr<WsHandler> handler_;
  std::shared_ptr<HttpSession> owner_;  // for HttpServer::stop(), until the end
  beast::flat_buffer in_;
  std::deque<std::string> out_;
  size_t queued_ = 0;
  bool open_ = false;
  bool writing_ = false;
  bool reading_ = false;
  bool paused_ = false;
  bool closing_ = false;
  bool close_sent_ = false;
  bool done_ = false;
  std::string close_reason_;

  friend class HttpSession;
};

void HttpSession::shutdown() {
  asio::post(executor_, [self = shared_from_this()] {
    if (auto ws = self->websocket_.lock()) {
      ws->abort("server stopping");
      return;
    }
    self->abort("server stopping");
  });
}

void HttpSession::become_websocket(http::request<http::string_body> message,
                                   std::string subprotocol, std::unique_ptr<WsHandler> handler) {
  closed_ = true;  // the stream belongs to the WebSocket from here
  auto ws = std::make_shared<UpgradedWebSocket>(std::move(stream_), peer_, std::move(handler),
                                                shared_from_this());
  websocket_ = ws;
  ws->run(std::move(message), std::move(subprotocol));
}

class StreamImpl : public ResponseStream {
 public:
  StreamImpl(std::weak_ptr<HttpSession> session, asio::any_io_executor executor, size_t limit)
      : session_(std::move(session)), executor_(std::move(executor)), limit_(limit) {}

  bool write(std::string chunk) override {
    if (chunk.empty()) return is_open();
    std::unique_lock lock(mu_);
    if (closed_ || closing_) return false;
    if (buffered_ + chunk.size() > limit_) {
      closed_ = true;
      lock.unlock();
      post([](HttpSession& session) { session.shed_stream(); });
      return false;
    }
    buffered_ += chunk.size();
    pending_.push_back(std::move(chunk));
    schedule_pump(lock);
    return true;
  }

  void close() override {
    std::unique_lock lock(mu_);
    if (closed_ || closing_) return;
    closing_ = true;
    schedule_pump(lock);
  }

  void abort() override {
    std::unique_lock lock(mu_);
    if (closed_ || closing_) return;
    closing_ = true;
    aborted_ = true;
    schedule_pump(lock);
  }

  bool is_open() const override {
    std::lock_guard lock(mu_);
    return !closed_ && !closing_;
  }

  void on_closed(std::function<void()> fn) override {
    std::unique_lock lock(mu_);
    if (notified_) {
      lock.unlock();
      fn();
      return;
    }
    on_closed_ = std::move(fn);
  }

  void on_drain(std::function<void(size_t)> fn) override {
    std::lock_guard lock(mu_);
    on_drain_ = std::move(fn);
  }

  // --- on the session's strand ---
  void drained(size_t bytes) {
    std::function<void(size_t)> fn;
    {
      std::lock_guard lock(mu_);
      fn = on_drain_;
    }
    if (fn && bytes > 0) fn(bytes);
  }

  // --- on the session's strand ---
  // Moves the queued chunks out as chunked-encoding bytes; sets *last when close() was called
  // and everything is out.
  std::string take_wire(bool* last, size_t* payload) {
    std::lock_guard lock(mu_);
    std::string wire;
    *payload = 0;
    for (auto& chunk : pending_) {
      *payload += chunk.size();
      wire += fmt::format("{:x}\r\n", chunk.size());
      wire += chunk;
      wire += "\r\n";
      buffered_ -= chunk.size();
    }
    pending_.clear();
    pump_scheduled_ = false;
    *last = closing_ && !final_taken_;
    if (*last) {
      final_taken_ = true;
      if (!aborted_) wire += "0\r\n\r\n";
    }
    return wire;
  }

  bool aborted() const {
    std::lock_guard lock(mu_);
    return aborted_;
  }

  // The stream ended (client gone, shed, or finished). Notifies unless the handler closed it.
  void finished(bool notify) {
    std::function<void()> fn;
    {
      std::lock_guard lock(mu_);
      const bool handler_closed = closing_;
      closed_ = true;
      if (notified_) return;
      notified_ = true;
      if (notify && !handler_closed) fn = std::move(on_closed_);
      on_closed_ = nullptr;
      on_drain_ = nullptr;
    }
    if (fn) fn();
  }

 private:
  template <typename Fn>
  void post(Fn fn) {
    asio::post(executor_, [weak = session_, fn = std::move(fn)] {
      if (auto session = weak.lock()) fn(*session);
    });
  }

  void schedule_pump(std::unique_lock<std::mutex>& lock) {
    if (pump_scheduled_) return;
    pump_scheduled_ = true;
    lock.unlock();
    post([](HttpSession& session) { session.pump_stream(); });
  }

  std::weak_ptr<HttpSession> session_;
  asio::any_io_executor executor_;
  const size_t limit_;
  mutable std::mutex mu_;
  std::deque<std::string> pending_;
  size_t buffered_ = 0;
  bool pump_scheduled_ = false;
  bool closing_ = false;      // close() called
  bool final_taken_ = false;  // the last chunk is on its way
  bool aborted_ = false;      // abort(): no last chunk, the connection is dropped
  bool closed_ = false;
  bool notified_ = false;
  std::function<void()> on_closed_;
  std::function<void(size_t)> on_drain_;
};

// Holds the session until it answers: nothing else does while a request waits for its answer.
class DeferredImpl : public DeferredResponse {
 public:
  DeferredImpl(std::shared_ptr<HttpSession> session, asio::any_io_executor executor, size_t limit)
      : session_(std::move(session)), executor_(std::move(executor)), limit_(limit) {}

  ~DeferredImpl() override {
    if (!answered_.exchange(true)) post(Response::text(500, "the server dropped this request\n"));
  }

  void respond(Response response) override {
    if (answered_.exchange(true)) return;
    post(std::move(response));
  }

  std::shared_ptr<ResponseStream> stream(int status, HttpHeaders headers) override {
    if (answered_.exchange(true)) {
      auto impl = std::make_shared<StreamImpl>(std::weak_ptr<HttpSession>(), executor_, limit_);
      impl->close();
      return impl;
    }
    auto session = take_session();
    auto impl = std::make_shared<StreamImpl>(session, executor_, limit_);
    asio::post(executor_, [session, impl, status, headers = std::move(headers)]() mutable {
      session->begin_stream(impl, status, std::move(headers));
    });
    return impl;
  }

 private:
  std::shared_ptr<HttpSession> take_session() {
    std::lock_guard lock(mu_);
    return std::move(session_);
  }

  void post(Response response) {
    asio::post(executor_, [session = take_session(), response = std::move(response)]() mutable {
      if (!session || session->closed_) return;
      session->write_response(std::move(response), session->keep_alive_);
    });
  }

  std::mutex mu_;
  std::shared_ptr<HttpSession> session_;
  asio::any_io_executor executor_;
  const size_t limit_;
  std::atomic<bool> answered_{false};
};

std::shared_ptr<DeferredResponse> HttpSession::make_deferred() {
  return std::make_shared<DeferredImpl>(shared_from_this(), stream_.get_executor(),
                                        server_->options.max_stream_buffer_bytes);
}

std::shared_ptr<ResponseStream> HttpSession::start_stream(int status, HttpHeaders headers) {
  auto impl = std::make_shared<StreamImpl>(shared_from_this(), stream_.get_executor(),
                                           server_->options.max_stream_buffer_bytes);
  begin_stream(impl, status, std::move(headers));
  return impl;
}

void HttpSession::begin_stream(std::shared_ptr<StreamImpl> impl, int status, HttpHeaders headers) {
  if (closed_ || stream_impl_) {
    impl->finished(/*notify=*/true);
    return;
  }
  stream_impl_ = std::move(impl);
  stream_header_.emplace(static_cast<http::status>(status), version_);
  stream_header_->set(http::field::server, kServerName);
  for (auto& [name, value] : headers) stream_header_->insert(name, value);
  stream_header_->chunked(true);
  // A streamed response ends the connection: the client reconnects for its next request.
  stream_header_->keep_alive(false);
  stream_serializer_.emplace(*stream_header_);
  stream_writing_ = true;
  http::async_write_header(stream_, *stream_serializer_,
                           [self = shared_from_this()](error_code ec, size_t) {
                             self->stream_header_sent_ = true;
                             self->on_stream_written(ec);
                           });
  watch_for_disconnect();
}

void HttpSession::watch_for_disconnect() {
  // The client sends nothing while it reads a stream; a read completing with an error means it
  // went away. Stray bytes are discarded (this connection ends with the stream anyway).
  stream_.async_read_some(asio::buffer(discard_),
                          [self = shared_from_this()](error_code ec, size_t) {
                            if (!self->stream_impl_ || self->stream_finished_) return;
                            if (ec) {
                              spdlog::debug("https {}: client went away during a streamed response",
                                            self->peer_.remote_address);
                              self->end_stream(/*notify=*/true);
                              return self->close_socket();
                            }
                            self->watch_for_disconnect();
                          });
}

void HttpSession::pump_stream() {
  if (!stream_impl_ || stream_writing_ || stream_finished_) return;
  bool last = false;
  stream_wire_ = stream_impl_->take_wire(&last, &stream_wire_payload_);
  const bool abort = last && stream_impl_->aborted();
  if (stream_wire_.empty() && abort) {
    end_stream(/*notify=*/false);
    return close_socket();
  }
  if (stream_wire_.empty()) return;
  stream_writing_ = true;
  asio::async_write(stream_, asio::buffer(stream_wire_),
                    [self = shared_from_this(), last, abort](error_code ec, size_t) {
                      if (!ec && abort) {
                        self->stream_writing_ = false;
                        self->end_stream(/*notify=*/false);
                        return self->close_socket();
                      }
                      if (!ec && last) {
                        self->stream_writing_ = false;
                        self->end_stream(/*notify=*/false);
                        // The disconnect watch must not read alongside the TLS shutdown.
                        error_code ignored;
                        self->tcp_layer().socket().cancel(ignored);
                        return self->graceful_close();
                      }
                      if (!ec) self->stream_impl_->drained(self->stream_wire_payload_);
                      self->on_stream_written(ec);
                    });
}

void HttpSession::on_stream_written(error_code ec) {
  stream_writing_ = false;
  if (ec) {
    end_stream(/*notify=*/true);
    return close_socket();
  }
  pump_stream();
}

void HttpSession::shed_stream() {
  if (!stream_impl_ || stream_finished_) return;
  server_->stats.streams_shed++;
  spdlog::info("https {}: closing a streamed response: the client reads too slowly",
               peer_.remote_address);
  end_stream(/*notify=*/true);
  close_socket();
}

void HttpSession::end_stream(bool notify) {
  if (stream_finished_) return;
  stream_finished_ = true;
  stream_impl_->finished(notify);
}

// --- HttpServer ---

void HttpServer::State::do_accept() {
  if (stopped) return;
  if (handshakes_in_progress >= options.max_concurrent_handshakes) {
    paused = true;
    return;
  }
  paused = false;
  acceptor.async_accept(asio::make_strand(ioc),
                        beast::bind_front_handler(&State::on_accept, shared_from_this()));
}

void HttpServer::State::on_accept(const error_code& ec, tcp::socket socket) {
  if (stopped) return;
  if (ec) {
    if (ec == asio::error::operation_aborted) return;
    spdlog::warn("https server :{}: accept failed: {}", port, ec.message());
    retry_timer.expires_after(std::chrono::milliseconds(100));
    retry_timer.async_wait([self = shared_from_this()](error_code ec) {
      if (!ec) self->do_accept();
    });
    return;
  }
  stats.connections++;
  handshakes_in_progress++;
  auto session = std::make_shared<HttpSession>(shared_from_this(), std::move(socket));
  {
    std::lock_guard lock(mu);
    sessions.emplace(session.get(), session);
  }
  session->run();
  do_accept();
}

void HttpServer::State::handshake_finished() {
  asio::post(acceptor.get_executor(), [self = shared_from_this()] {
    self->handshakes_in_progress--;
    if (self->paused) self->do_accept();
  });
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(EventLoop& loop,
                                                      std::shared_ptr<TlsContext> tls,
                                                      HttpServerOptions options, Router router) {
  if (!tls || tls->role() != TlsRole::kServer) {
    return make_error(Code::kInvalidArgument, "HttpServer needs a server TLS context");
  }
  error_code ec;
  auto address = asio::ip::make_address(options.address, ec);
  if (ec) {
    return make_error(Code::kInvalidArgument, "HttpServer: bad listen address '{}'",
                      options.address);
  }
  const tcp::endpoint endpoint(address, options.port);
  auto state = std::make_shared<State>(loop.context(), std::move(tls), std::move(options),
                                       std::move(router));
  auto& acceptor = state->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(state->options.listen_backlog, ec);
  if (ec) {
    return make_error(Code::kUnavailable, "HTTPS server cannot listen on {}: {}",
                      endpoint_string(endpoint), ec.message());
  }
  state->port = acceptor.local_endpoint().port();
  spdlog::info("https server listening on {}",
               endpoint_string(tcp::endpoint(address, state->port)));
  asio::dispatch(acceptor.get_executor(), [state] { state->do_accept(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(state)));
}

HttpServer::~HttpServer() {
  stop();
}

uint16_t HttpServer::port() const {
  return state_->port;
}

const HttpServerStats& HttpServer::stats() const {
  return state_->stats;
}

void HttpServer::stop() {
  if (state_->stopped.exchange(true)) return;
  asio::post(state_->acceptor.get_executor(), [state = state_] {
    error_code ignored;
    state->acceptor.close(ignored);
    state->retry_timer.cancel();
  });
  std::vector<std::shared_ptr<HttpSession>> sessions;
  {
    std::lock_guard lock(state_->mu);
    for (auto& [raw, weak] : state_->sessions) {
      if (auto session = weak.lock()) sessions.push_back(std::move(session));
    }
  }
  for (auto& session : sessions) session->shutdown();
}

}  // namespace gantry::common
