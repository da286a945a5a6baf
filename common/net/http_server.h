// HTTPS server with a small router, for the REST API (:10443) and the join endpoint (:10002).
// Keep-alive, header/body limits, and streamed (chunked) responses that other threads write to
// (watch, logs -f).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/status.h"
#include "common/net/event_loop.h"
#include "common/net/tls.h"
#include "common/net/websocket.h"

namespace gantry::common {

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// A response body written as it is produced (HTTP/1.1 chunked). Thread-safe.
class ResponseStream {
 public:
  virtual ~ResponseStream() = default;
  // Queues one chunk (empty chunks are ignored). Returns false when the stream is closed, or when
  // the client reads too slowly and the buffer would pass its bound: the stream is then closed
  // and the connection dropped (the client sees a truncated response and can retry).
  virtual bool write(std::string chunk) = 0;
  // Ends the response after the queued chunks.
  virtual void close() = 0;
  // Ends the response after the queued chunks but without its last chunk, and drops the
  // connection: the client sees a truncated response (an error), not a complete one.
  virtual void abort() = 0;
  virtual bool is_open() const = 0;
  // `fn` runs once (on a loop thread, or right here if that already happened) when the stream
  // ends for any reason other than close(): the client went away, or it was too slow.
  virtual void on_closed(std::function<void()> fn) = 0;
  // `fn` runs on a loop thread each time queued body bytes have gone out to the socket, with their
  // count (chunk framing not counted): lets a producer pace itself by what the client takes.
  virtual void on_drain(std::function<void(size_t bytes)> fn) = 0;
};

struct Response;

// An answer given later, from any thread (Request::defer()). The first of respond() and stream()
// answers; later calls are ignored. Dropped without an answer: 500.
class DeferredResponse {
 public:
  virtual ~DeferredResponse() = default;
  virtual void respond(Response response) = 0;
  // As Request::stream(); the returned stream is usable at once.
  virtual std::shared_ptr<ResponseStream> stream(int status, HttpHeaders headers = {}) = 0;
};

struct Request {
  std::string method;                                      // "GET"
  std::string target;                                      // as sent: "/api/v1/pods?watch=1"
  std::string path;                                        // percent-decoded path without the query
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  std::map<std::string, std::string> path_params;          // from the matched route
  HttpHeaders headers;
  std::string body;
  PeerInfo peer;  // common_name set when the client presented a verified certificate

  // First value of a query parameter / header (case-insensitive name).
  std::optional<std::string> query_param(std::string_view name) const;
  std::optional<std::string> header(std::string_view name) const;
  std::string param(const std::string& name) const;  // path parameter, "" when absent

  // Takes over the response: sends the status and headers now and returns the stream to write
  // the body to (the handler's return value is then ignored). Streamed responses end the
  // connection when they finish.
  std::shared_ptr<ResponseStream> stream(int status, HttpHeaders headers = {});
  // Takes over the response to answer it later (when an answer depends on another party): the
  // handler's return value is then ignored. Nothing is read from the connection meanwhile.
  std::shared_ptr<DeferredResponse> defer();

  // A WebSocket upgrade (GET with Connection: Upgrade and Upgrade: websocket)?
  bool is_websocket_upgrade() const;
  // Takes over the connection as a WebSocket: answers 101 (with `subprotocol` as
  // Sec-WebSocket-Protocol unless empty) once the handler returns, then runs `handler` on it as
  // WsServer does (binary messages; pings keep it alive; closed at HttpServer::stop()). The
  // handler's return value is then ignored. Only for is_websocket_upgrade() requests.
  void upgrade_websocket(std::string subprotocol, std::unique_ptr<WsHandler> handler);

  // Set by the server.
  std::function<std::shared_ptr<ResponseStream>(int, HttpHeaders)> stream_factory;
  std::function<std::shared_ptr<DeferredResponse>()> defer_factory;
  std::shared_ptr<ResponseStream> taken_stream;
  bool deferred = false;
  std::string upgrade_subprotocol;
  std::unique_ptr<WsHandler> upgrade_handler;  // set: the connection becomes a WebSocket
};

struct Response {
  int status = 200;
  HttpHeaders headers;
  std::string body;

  static Response text(int status, std::string body);
  static Response json(int status, std::string body);
};

using HttpHandler = std::function<Response(Request&)>;

// Routes by method and path pattern. Pattern segments are literals, `{name}` (one segment) or,
// last, `{name...}` (the rest of the path, possibly empty). When several routes match, the one
// with literals earliest wins ("/pods/{name}" loses to "/pods/status"). Method "*" matches any.
class Router {
 public:
  void add(std::string method, std::string_view pattern, HttpHandler handler);
  // Handles whatever no route matched (default: 404).
  void set_fallback(HttpHandler handler);

  struct Match {
    const HttpHandler* handler = nullptr;  // null: no route for this method and path
    std::map<std::string, std::string> params;
    std::vector<std::string> allowed_methods;  // when the path matched with other methods
  };
  Match match(std::string_view method, std::string_view path) const;

  // Routes `request` (fills path_params): the handler's response, 405 or the fallback's.
  Response dispatch(Request& request) const;

 private:
  struct Segment {
    enum class Kind { kLiteral, kParam, kRest } kind;
    std::string text;  // literal text or parameter name
  };
  struct Route {
    std::string method;
    std::vector<Segment> segments;
    HttpHandler handler;
  };
  std::vector<Route> routes_;
  HttpHandler fallback_;
};

// "/a%20b/c" -> "/a b/c"; with `plus_is_space` (query strings) '+' -> ' '. Invalid escapes are
// kept as they are.
std::string percent_decode(std::string_view text, bool plus_is_space = false);

struct HttpServerOptions {
  std::string address = "0.0.0.0";
  uint16_t port = 0;                        // 0: the kernel picks; see HttpServer::port()
  size_t max_header_bytes = 16 * 1024;      // past it: 431
  size_t max_body_bytes = 3 * 1024 * 1024;  // past it: 413
  std::chrono::milliseconds handshake_timeout{10'000};
  // Reading one request, and waiting for the next on a kept-alive connection.
  std::chrono::milliseconds request_timeout{60'000};
  size_t max_stream_buffer_bytes = 4 * 1024 * 1024;  // per streamed response
  int max_concurrent_handshakes = 256;
  int listen_backlog = 1024;
};

struct HttpServerStats {
  std::atomic<uint64_t> connections{0};  // TCP connections accepted
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> handshake_failures{0};
  std::atomic<uint64_t> rejected_too_large{0};  // 413 and 431
  std::atomic<uint64_t> bad_requests{0};
  std::atomic<uint64_t> streams_shed{0};  // streamed responses closed because the client was slow
};

class HttpServer {
 public:
  // Handlers run on loop threads, possibly several at once; they must not block for long.
  static Result<std::unique_ptr<HttpServer>> start(EventLoop& loop, std::shared_ptr<TlsContext> tls,
                                                   HttpServerOptions options, Router router);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  uint16_t port() const;
  const HttpServerStats& stats() const;
  // Closes the listener and every connection (open streams see on_closed). Idempotent.
  void stop();

  struct State;

 private:
  explicit HttpServer(std::shared_ptr<State> state) : state_(std::move(state)) {}
  std::shared_ptr<State> state_;
};

}  // namespace gantry::common
