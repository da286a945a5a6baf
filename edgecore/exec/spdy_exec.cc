#include "edgecore/exec/spdy_exec.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <deque>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

namespace gantry::edge {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;

constexpr uint16_t kSpdyVersion = 3;
constexpr uint16_t kSynStream = 1;
constexpr uint16_t kRstStream = 3;
constexpr uint16_t kPing = 6;
constexpr uint16_t kGoAway = 7;
constexpr uint8_t kFlagFin = 0x01;
constexpr size_t kMaxFrame = 1 << 24;
constexpr size_t kMaxResponseHeader = 16 * 1024;
constexpr size_t kMaxErrorStream = 64 * 1024;

void put32(std::string& out, uint32_t v) {
  out.push_back(static_cast<char>(v >> 24));
  out.push_back(static_cast<char>(v >> 16));
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v));
}

uint32_t get32(const std::string& in, size_t at) {
  auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(in[at + i])); };
  return b(0) << 24 | b(1) << 16 | b(2) << 8 | b(3);
}

struct Url {
  std::string host;
  std::string port;
  std::string target;
};

common::Result<Url> parse_url(const std::string& url) {
  constexpr std::string_view kScheme = "http://";
  if (url.rfind(kScheme, 0) != 0)
    return common::make_error(common::Code::kUnimplemented,
                              "the runtime's streaming URL {} is not plain http://", url);
  std::string rest = url.substr(kScheme.size());
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  Url u;
  u.target = slash == std::string::npos ? "/" : rest.substr(slash);
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    if (close == std::string::npos)
      return common::make_error(common::Code::kInvalidArgument, "bad streaming URL {}", url);
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      u.port = authority.substr(close + 2);
  } else {
    size_t colon = authority.rfind(':');
    u.host = authority.substr(0, colon);
    if (colon != std::string::npos) u.port = authority.substr(colon + 1);
  }
  if (u.port.empty()) u.port = "80";
  if (u.host.empty())
    return common::make_error(common::Code::kInvalidArgument, "bad streaming URL {}", url);
  return u;
}

class Session final : public SpdyExec, public std::enable_shared_from_this<Session> {
 public:
  Session(asio::io_context& ioc, SpdyExecOptions options, Callbacks callbacks)
      : strand_(asio::make_strand(ioc)),
        resolver_(strand_),
        socket_(strand_),
        options_(options),
        callbacks_(std::move(callbacks)) {
    if (options_.tty) options_.stderr = false;
  }

  void begin(std::string url) {
    asio::post(strand_, [self = shared_from_this(), url = std::move(url)] {
      auto u = parse_url(url);
      if (!u.ok()) return self->fail(u.status().message());
      self->url_ = *u;
      self->resolver_.async_resolve(
          u->host, u->port, [self](error_code ec, tcp::resolver::results_type results) {
            if (self->ended_) return;
            if (ec)
              return self->fail("cannot resolve the runtime's streaming server: " + ec.message());
            asio::async_connect(
                self->socket_, results, [self](error_code ec, const tcp::endpoint&) {
                  if (self->ended_) return;
                  if (ec)
                    return self->fail(
                        fmt::format("cannot connect to the runtime's streaming server "
                                    "{}:{}: {}",
                                    self->url_.host, self->url_.port, ec.message()));
                  self->send_upgrade();
                });
          });
    });
  }

  void write_stdin(std::string data, std::function<void()> written) override {
    asio::post(strand_, [self = shared_from_this(), data = std::move(data),
                         written = std::move(written)]() mutable {
      if (self->ended_ || self->stdin_closed_ || !self->options_.stdin) {
        if (written) written();
        return;
      }
      if (!self->ready_) {  // sent once the streams exist
        self->early_stdin_.emplace_back(std::move(data), std::move(written));
        return;
      }
      for (size_t at = 0; at < data.size(); at += 32 * 1024) {
        self->queue(self->data_frame(self->stdin_id_, data.substr(at, 32 * 1024), false));
      }
      if (written) self->on_flushed_.push_back({self->queued_total_, std::move(written)});
      self->flush();
    });
  }

  void close_stdin() override {
    asio::post(strand_, [self = shared_from_this()] {
      if (self->ended_ || !self->options_.stdin || self->stdin_closed_) return;
      self->stdin_closed_ = true;
      if (!self->ready_) return;  // sent with the streams
      self->queue(self->data_frame(self->stdin_id_, "", true));
      self->flush();
    });
  }

  void resize(uint32_t width, uint32_t height) override {
    asio::post(strand_, [self = shared_from_this(), width, height] {
      if (self->ended_ || !self->options_.tty) return;
      std::string json = fmt::format(R"({{"Width":{},"Height":{}}})", width, height);
      if (!self->ready_) {
        self->pending_resize_ = json;
        return;
      }
      self->queue(self->data_frame(self->resize_id_, json, false));
      self->flush();
    });
  }

  void pause_output(bool paused) override {
    asio::post(strand_, [self = shared_from_this(), paused] {
      if (self->ended_) return;
      self->paused_ = paused;
      if (!paused && self->upgraded_ && !self->reading_) self->continue_reading();
    });
  }

  void cancel() override {
    asio::post(strand_, [self = shared_from_this()] {
      if (self->ended_) return;
      self->ended_ = true;
      self->callbacks_ = {};
      self->close_socket();
    });
  }

 private:
  void send_upgrade() {
    std::string host = url_.host.find(':') != std::string::npos ? "[" + url_.host + "]" : url_.host;
    std::string req = fmt::format(
        "POST {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: edgecore\r\nContent-Length: 0\r\n"
        "Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: "
        "v4.channel.k8s.io\r\n\r\n",
        url_.target, host, url_.port);
    queue(std::move(req));
    flush();
    do_read();
  }

  // The 101, then the streams.
  void on_response_header(size_t end) {
    std::string header = in_.substr(0, end);
    in_.erase(0, end + 4);
    std::string status_line = header.substr(0, header.find("\r\n"));
    if (status_line.find(" 101") == std::string::npos) {
      std::string body = in_.substr(0, 512);
      return fail(fmt::format("the runtime's streaming server refused the session: {}{}{}",
                              status_line, body.empty() ? "" : ": ", body));
    }
    upgraded_ = true;
    // The streams, in kubectl's order: error, stdin, stdout, stderr, resize.
    error_id_ = syn_stream("error");
    if (options_.stdin) stdin_id_ = syn_stream("stdin");
    if (options_.stdout) stdout_id_ = syn_stream("stdout");
    if (options_.stderr) stderr_id_ = syn_stream("stderr");
    if (options_.tty) resize_id_ = syn_stream("resize");
    ready_ = true;
    for (auto& [data, written] : early_stdin_) {
      for (size_t at = 0; at < data.size(); at += 32 * 1024)
        queue(data_frame(stdin_id_, data.substr(at, 32 * 1024), false));
      if (written) on_flushed_.push_back({queued_total_, std::move(written)});
    }
    early_stdin_.clear();
    if (stdin_closed_ && options_.stdin) queue(data_frame(stdin_id_, "", true));
    if (!pending_resize_.empty()) {
      queue(data_frame(resize_id_, pending_resize_, false));
      pending_resize_.clear();
    }
    flush();
    auto on_ready = callbacks_.on_ready;
    if (on_ready) on_ready();
  }

  uint32_t syn_stream(const std::string& type) {
    const uint32_t id = next_id_;
    next_id_ += 2;
    // The header block: one pair, as a zlib stream of stored deflate blocks.
    std::string raw;
    put32(raw, 1);
    put32(raw, 10);
    raw += "streamtype";
    put32(raw, static_cast<uint32_t>(type.size()));
    raw += type;
    std::string block;
    if (!zlib_started_) {
      block += "\x78\x01";  // deflate, 32 KiB window, no dictionary
      zlib_started_ = true;
    }
    const uint16_t len = static_cast<uint16_t>(raw.size());
    block.push_back('\0');  // BFINAL 0, BTYPE 00 (stored), byte-aligned
    block.push_back(static_cast<char>(len & 0xff));
    block.push_back(static_cast<char>(len >> 8));
    block.push_back(static_cast<char>(~len & 0xff));
    block.push_back(static_cast<char>((~len >> 8) & 0xff));
    block += raw;
    // An empty stored block, as zlib's Z_SYNC_FLUSH writes: without it a reader (Go's flate)
    // delivers the block above only when it reads the next block's header, which is in the
    // next frame.
    block += std::string("\x00\x00\x00\xff\xff", 5);
    std::string frame;
    frame.push_back(static_cast<char>(0x80 | (kSpdyVersion >> 8)));
    frame.push_back(static_cast<char>(kSpdyVersion & 0xff));
    frame.push_back(static_cast<char>(kSynStream >> 8));
    frame.push_back(static_cast<char>(kSynStream & 0xff));
    const uint32_t length = 10 + static_cast<uint32_t>(block.size());
    put32(frame, length);  // flags 0, then the 24-bit length
    frame[4] = 0;
    put32(frame, id & 0x7fffffff);
    put32(frame, 0);        // associated stream
    frame.push_back('\0');  // priority
    frame.push_back('\0');  // slot
    frame += block;
    queue(std::move(frame));
    return id;
  }

  std::string data_frame(uint32_t id, const std::string& data, bool fin) {
    std::string frame;
    put32(frame, id & 0x7fffffff);
    put32(frame, static_cast<uint32_t>(data.size()));
    frame[4] = static_cast<char>(fin ? kFlagFin : 0);
    frame += data;
    return frame;
  }

  void queue(std::string bytes) {
    queued_total_ += bytes.size();
    out_.push_back(std::move(bytes));
  }

  void flush() {
    if (writing_ || out_.empty() || ended_) return;
    writing_ = true;
    auto self = shared_from_this();
    asio::async_write(socket_, asio::buffer(out_.front()), [self](error_code ec, size_t n) {
      self->writing_ = false;
      if (self->ended_) return;
      if (ec) return self->fail("writing to the runtime's streaming server: " + ec.message());
      self->written_total_ += n;
      self->out_.pop_front();
      while (!self->on_flushed_.empty() &&
             self->on_flushed_.front().first <= self->written_total_) {
        auto fn = std::move(self->on_flushed_.front().second);
        self->on_flushed_.pop_front();
        fn();
        if (self->ended_) return;
      }
      self->flush();
    });
  }

  void do_read() {
    if (ended_ || reading_ || (paused_ && upgraded_)) return;  // the 101 is always read
    reading_ = true;
    auto self = shared_from_this();
    socket_.async_read_some(asio::buffer(buf_), [self](error_code ec, size_t n) {
      self->reading_ = false;
      if (self->ended_) return;
      if (n > 0) self->in_.append(self->buf_.data(), n);
      if (!self->upgraded_) {
        size_t end = self->in_.find("\r\n\r\n");
        if (end == std::string::npos) {
          if (ec)
            return self->fail("the runtime's streaming server closed before answering: " +
                              ec.message());
          if (self->in_.size() > kMaxResponseHeader)
            return self->fail("the runtime's streaming server sent an oversized answer");
          return self->do_read();
        }
        self->on_response_header(end);
        if (self->ended_) return;
      }
      if (ec) {
        self->read_done_ = true;
        self->read_error_ = ec == asio::error::eof ? "" : ec.message();
      }
      self->continue_reading();
    });
  }

  // Parses what arrived; reads on, or ends when the connection is over and nothing waits.
  void continue_reading() {
    parse_frames();
    if (ended_ || paused_) return;
    if (read_done_) return finish(read_error_);
    do_read();
  }

  void parse_frames() {
    while (!ended_ && !paused_ && in_.size() >= 8) {
      const uint32_t word = get32(in_, 0);
      const uint8_t flags = static_cast<uint8_t>(in_[4]);
      const uint32_t length = get32(in_, 4) & 0xffffff;
      if (length > kMaxFrame) return fail("a SPDY frame larger than allowed");
      if (in_.size() < 8 + static_cast<size_t>(length)) return;
      std::string payload = in_.substr(8, length);
      in_.erase(0, 8 + length);
      if (word & 0x80000000u) {
        on_control(static_cast<uint16_t>(word & 0xffff), flags, payload);
      } else {
        on_data(word & 0x7fffffff, flags, std::move(payload));
      }
    }
  }

  void on_control(uint16_t type, uint8_t flags, const std::string& payload) {
    if (type == kPing && payload.size() == 4) {
      std::string frame;
      frame.push_back(static_cast<char>(0x80));
      frame.push_back(static_cast<char>(kSpdyVersion));
      frame.push_back(0);
      frame.push_back(static_cast<char>(kPing));
      put32(frame, 4);
      frame += payload;
      queue(std::move(frame));
      flush();
    } else if (type == kRstStream && payload.size() >= 8) {
      // The server resets the streams we left open when it closes the session (CANCEL, after
      // the status): the connection's end is what ends the session.
      const uint32_t id = get32(payload, 0) & 0x7fffffff;
      if (id == error_id_) error_reset_ = get32(payload, 4);
    } else if (type == kGoAway) {
      goaway_ = true;
    }
    (void)flags;  // SYN_REPLY, SETTINGS, WINDOW_UPDATE, HEADERS: nothing to do
  }

  void on_data(uint32_t id, uint8_t flags, std::string payload) {
    if (id == error_id_) {
      if (error_data_.size() + payload.size() > kMaxErrorStream)
        return fail("the runtime's error stream is larger than allowed");
      error_data_ += payload;
      if (flags & kFlagFin) error_done_ = true;
      return;
    }
    const uint32_t channel = id == stdout_id_ ? 1 : id == stderr_id_ ? 2 : 0;
    if (channel == 0 || payload.empty()) return;
    auto on_output = callbacks_.on_output;
    if (on_output) on_output(channel, std::move(payload));
  }

  // The connection ended (EOF: the runtime closes it after writing the status).
  void finish(const std::string& io_error) {
    ExecResult result;
    if (!error_data_.empty()) {
      result = parse_exec_status(error_data_);
    } else if ((io_error.empty() || goaway_) && error_reset_ == 0) {
      result.exited = true;  // v4: an empty error stream is success
    } else if (error_reset_ != 0) {
      result.error =
          fmt::format("the runtime's streaming server reset the session's error stream (status {})",
                      error_reset_);
    } else {
      result.error = "the connection to the runtime's streaming server broke: " + io_error;
    }
    end(std::move(result));
  }

  void fail(std::string why) {
    ExecResult r;
    r.error = std::move(why);
    end(std::move(r));
  }

  void end(ExecResult result) {
    if (ended_) return;
    ended_ = true;
    close_socket();
    auto on_end = std::move(callbacks_.on_end);
    callbacks_ = {};
    on_flushed_.clear();
    if (on_end) on_end(std::move(result));
  }

  void close_socket() {
    error_code ignored;
    resolver_.cancel();
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  asio::strand<asio::io_context::executor_type> strand_;
  tcp::resolver resolver_;
  tcp::socket socket_;
  SpdyExecOptions options_;
  Callbacks callbacks_;
  Url url_;
  std::array<char, 16 * 1024> buf_{};
  std::string in_;
  std::deque<std::string> out_;
  std::deque<std::pair<uint64_t, std::function<void()>>> on_flushed_;
  uint64_t queued_total_ = 0;
  uint64_t written_total_ = 0;
  bool writing_ = false;
  bool reading_ = false;
  bool paused_ = false;
  bool upgraded_ = false;
  bool ready_ = false;
  bool ended_ = false;
  bool stdin_closed_ = false;
  bool zlib_started_ = false;
  bool goaway_ = false;
  bool error_done_ = false;
  uint32_t error_reset_ = 0;
  bool read_done_ = false;
  std::string read_error_;
  std::string pending_resize_;
  std::vector<std::pair<std::string, std::function<void()>>> early_stdin_;
  std::string error_data_;
  uint32_t next_id_ = 1;
  uint32_t error_id_ = 0, stdin_id_ = 0, stdout_id_ = 0, stderr_id_ = 0, resize_id_ = 0;
};

}  // namespace

ExecResult parse_exec_status(const std::string& status_json) {
  ExecResult r;
  auto j = nlohmann::json::parse(status_json, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    r.error = "the runtime's exec status is not a Status: " + status_json.substr(0, 200);
    return r;
  }
  std::string status = j.value("status", "");
  if (status == "Success") {
    r.exited = true;
    return r;
  }
  if (j.value("reason", "") == "NonZeroExitCode" && j.contains("details") &&
      j["details"].is_object() && j["details"].contains("causes") &&
      j["details"]["causes"].is_array()) {
    for (const auto& cause : j["details"]["causes"]) {
      if (!cause.is_object() || cause.value("reason", "") != "ExitCode") continue;
      std::string text = cause.value("message", "");
      try {
        size_t used = 0;
        int code = std::stoi(text, &used);
        if (used == text.size()) {
          r.exited = true;
          r.exit_code = code;
          return r;
        }
      } catch (const std::exception&) {
      }
    }
  }
  r.error = j.value("message", "");
  if (r.error.empty()) r.error = "the command failed: " + status_json.substr(0, 200);
  return r;
}

std::shared_ptr<SpdyExec> SpdyExec::start(boost::asio::io_context& ioc, std::string url,
                                          SpdyExecOptions options, Callbacks callbacks) {
  auto session = std::make_shared<Session>(ioc, options, std::move(callbacks));
  session->begin(std::move(url));
  return session;
}

}  // namespace gantry::edge
