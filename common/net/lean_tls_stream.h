// A TLS stream for connections that are idle most of their life (the tunnel: 100,000 per cloudcore,
// a ping each way per 15 s). OpenSSL reads and writes the socket itself (a socket BIO) and, with
// SSL_MODE_RELEASE_BUFFERS, holds no record buffers while nothing is in flight; the stream waits
// for readiness with async_wait, which holds no buffer either. Asio's ssl::stream instead keeps
// two 17 KiB buffers plus a 2 x 17 KiB BIO pair per connection, always: ~70 KiB of a ~110 KiB
// session. Internal to common/net (websocket.cc).
#pragma once

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/teardown.hpp>
#include <cerrno>
#include <string>
#include <utility>

namespace gantry::common::detail {

// A socket BIO that never raises SIGPIPE (send with MSG_NOSIGNAL, as Asio does): OpenSSL's own
// socket BIO uses write(), and a peer gone mid-write would kill the process.
BIO* new_nosignal_socket_bio(int fd);

class LeanTlsStream {
 public:
  using next_layer_type = boost::beast::tcp_stream;
  using executor_type = next_layer_type::executor_type;
  using error_code = boost::system::error_code;

  template <class Arg>
  LeanTlsStream(Arg&& arg, boost::asio::ssl::context& context)
      : next_(std::forward<Arg>(arg)), ssl_(SSL_new(context.native_handle())) {
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                           SSL_MODE_RELEASE_BUFFERS);
  }
  ~LeanTlsStream() { SSL_free(ssl_); }
  LeanTlsStream(const LeanTlsStream&) = delete;
  LeanTlsStream& operator=(const LeanTlsStream&) = delete;

  executor_type get_executor() noexcept { return next_.get_executor(); }
  next_layer_type& next_layer() { return next_; }
  SSL* native_handle() { return ssl_; }

  template <class Handler>
  auto async_handshake(boost::asio::ssl::stream_base::handshake_type type, Handler&& handler) {
    if (!bound_) {
      if (type == boost::asio::ssl::stream_base::client) {
        SSL_set_connect_state(ssl_);
      } else {
        SSL_set_accept_state(ssl_);
      }
    }
    return run<void(error_code)>(
        [](SSL* ssl, size_t* n) {
          *n = 0;
          return SSL_do_handshake(ssl);
        },
        std::forward<Handler>(handler));
  }

  // Sends close_notify (does not wait for the peer's).
  template <class Handler>
  auto async_shutdown(Handler&& handler) {
    return run<void(error_code)>(
        [](SSL* ssl, size_t* n) {
          *n = 0;
          const int ret = SSL_shutdown(ssl);
          return ret == 0 ? 1 : ret;
        },
        std::forward<Handler>(handler));
  }

  template <class MutableBufferSequence, class Handler>
  auto async_read_some(const MutableBufferSequence& buffers, Handler&& handler) {
    boost::asio::mutable_buffer first;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it) {
      if (boost::asio::mutable_buffer(*it).size() > 0) {
        first = *it;
        break;
      }
    }
    return run<void(error_code, size_t)>(
        [first](SSL* ssl, size_t* n) {
          if (first.size() == 0) {
            *n = 0;
            return 1;
          }
          return SSL_read_ex(ssl, first.data(), first.size(), n);
        },
        std::forward<Handler>(handler));
  }

  // Small buffer sequences (a WebSocket header and its payload) are written as one TLS record.
  template <class ConstBufferSequence, class Handler>
  auto async_write_some(const ConstBufferSequence& buffers, Handler&& handler) {
    constexpr size_t kMaxRecord = 16 * 1024;
    std::string data;
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers) && data.size() < kMaxRecord; ++it) {
      boost::asio::const_buffer b(*it);
      const size_t take = std::min(b.size(), kMaxRecord - data.size());
      data.append(static_cast<const char*>(b.data()), take);
    }
    return run<void(error_code, size_t)>(
        [data = std::move(data)](SSL* ssl, size_t* n) {
          if (data.empty()) {
            *n = 0;
            return 1;
          }
          return SSL_write_ex(ssl, data.data(), data.size(), n);
        },
        std::forward<Handler>(handler));
  }

 private:
  // One OpenSSL call retried until it completes, waiting for the socket in between. Never
  // completes inside the initiating call (the first attempt is posted).
  template <class Signature, class Fn>
  struct Op {
    LeanTlsStream& stream;
    Fn fn;
    bool started = false;
    error_code bind_error;

    template <class Self>
    void operator()(Self& self, error_code ec = {}) {
      if (!started) {
        started = true;
        stream.bind(bind_error);
        return boost::asio::post(stream.get_executor(), std::move(self));
      }
      if (!ec) ec = bind_error;
      if (ec) return finish(self, ec, 0);
      ERR_clear_error();
      size_t n = 0;
      errno = 0;
      const int ret = fn(stream.ssl_, &n);
      if (ret == 1) return finish(self, {}, n);
      const int saved_errno = errno;
      switch (SSL_get_error(stream.ssl_, ret)) {
        case SSL_ERROR_WANT_READ:
          return stream.next_.socket().async_wait(boost::asio::socket_base::wait_read,
                                                  std::move(self));
        case SSL_ERROR_WANT_WRITE:
          return stream.next_.socket().async_wait(boost::asio::socket_base::wait_write,
                                                  std::move(self));
        case SSL_ERROR_ZERO_RETURN:
          return finish(self, boost::asio::error::eof, 0);
        case SSL_ERROR_SYSCALL: {
          const unsigned long e = ERR_get_error();
          if (e != 0) {
            return finish(
                self, error_code(static_cast<int>(e), boost::asio::error::get_ssl_category()), 0);
          }
          if (saved_errno == 0) return finish(self, boost::asio::ssl::error::stream_truncated, 0);
          if (saved_errno == EPIPE || saved_errno == ECONNRESET) {
            // The peer may have said why before it closed (TLS 1.3: a client certificate it
            // refused arrives as an alert after our side of the handshake): read that alert.
            char byte;
            ERR_clear_error();
            SSL_peek(stream.ssl_, &byte, 1);
            if (const unsigned long alert = ERR_get_error(); alert != 0) {
              ERR_clear_error();
              return finish(
                  self, error_code(static_cast<int>(alert), boost::asio::error::get_ssl_category()),
                  0);
            }
          }
          return finish(self, error_code(saved_errno, boost::system::system_category()), 0);
        }
        default: {
          const unsigned long e = ERR_get_error();
          ERR_clear_error();
          return finish(
              self,
              e != 0 ? error_code(static_cast<int>(e), boost::asio::error::get_ssl_category())
                     : error_code(boost::asio::error::fault),
              0);
        }
      }
    }

    template <class Self>
    void finish(Self& self, error_code ec, size_t n) {
      if constexpr (std::is_same_v<Signature, void(error_code)>) {
        self.complete(ec);
      } else {
        self.complete(ec, n);
      }
    }
  };

  template <class Signature, class Fn, class Handler>
  auto run(Fn&& fn, Handler&& handler) {
    return boost::asio::async_compose<Handler, Signature>(
        Op<Signature, std::decay_t<Fn>>{*this, std::forward<Fn>(fn), false, {}}, handler, next_);
  }

  // The socket exists only once connected (client) or accepted (server).
  void bind(error_code& ec) {
    if (bound_) return;
    bound_ = true;
    next_.socket().non_blocking(true, ec);
    if (ec) return;
    BIO* bio = new_nosignal_socket_bio(static_cast<int>(next_.socket().native_handle()));
    if (bio == nullptr) {
      ec = boost::asio::error::no_memory;
      return;
    }
    SSL_set_bio(ssl_, bio, bio);  // one reference, owned by ssl_
  }

  next_layer_type next_;
  SSL* ssl_;
  bool bound_ = false;
};

// WebSocket close: close_notify, then the TCP teardown Beast does for plain sockets.
inline void teardown(boost::beast::role_type role, LeanTlsStream& stream,
                     boost::system::error_code& ec) {
  ERR_clear_error();
  SSL_shutdown(stream.native_handle());
  boost::beast::websocket::teardown(role, stream.next_layer().socket(), ec);
}

template <class TeardownHandler>
void async_teardown(boost::beast::role_type role, LeanTlsStream& stream,
                    TeardownHandler&& handler) {
  stream.async_shutdown([&stream, role, handler = std::forward<TeardownHandler>(handler)](
                            boost::system::error_code) mutable {
    boost::beast::websocket::async_teardown(role, stream.next_layer().socket(), std::move(handler));
  });
}

}  // namespace gantry::common::detail
