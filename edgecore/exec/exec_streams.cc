#include "edgecore/exec/exec_streams.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "edgecore/exec/spdy_exec.h"
#include "edgecore/logs/log_streams.h"

namespace gantry::edge {

namespace asio = boost::asio;

struct ExecStreams::Core : std::enable_shared_from_this<ExecStreams::Core> {
  Core(asio::io_context& ioc, ExecResolver r, ExecStreamsOptions o)
      : ioc(ioc), strand(asio::make_strand(ioc)), resolver(std::move(r)), options(o) {
    options.max_data_frame = std::max<size_t>(options.max_data_frame, 1);
    options.max_window = std::max<uint32_t>(options.max_window, 1);
    worker = std::thread([this] { work(); });
  }

  struct Stream {
    uint32_t id = 0;
    uint64_t generation = 0;
    std::shared_ptr<SpdyExec> exec;
    uint64_t window = 0;                                   // output bytes the cloud will take
    std::deque<std::pair<uint32_t, std::string>> pending;  // output beyond the window
    bool paused = false;
    bool ready = false;
    bool has_stdin = false;
    bool ended = false;
    ExecResult result;
  };

  asio::io_context& ioc;
  asio::strand<asio::io_context::executor_type> strand;
  ExecResolver resolver;
  ExecStreamsOptions options;
  std::atomic<uint64_t> generation{1};

  // The resolver's thread.
  std::mutex work_mu;
  std::condition_variable work_cv;
  std::deque<std::function<void()>> jobs;
  bool stopping = false;
  std::thread worker;

  // On the strand.
  std::map<uint32_t, Stream> streams;
  Sender sender;
  mutable std::mutex stats_mu;
  ExecStreamsStats stats_;
  std::atomic<size_t> open_count{0};

  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock lock(work_mu);
        work_cv.wait(lock, [&] { return stopping || !jobs.empty(); });
        if (stopping) return;
        job = std::move(jobs.front());
        jobs.pop_front();
      }
      job();
    }
  }

  void stop() {
    {
      std::lock_guard lock(work_mu);
      stopping = true;
      jobs.clear();
    }
    work_cv.notify_all();
    if (worker.joinable()) worker.join();
  }

  void send(uint64_t gen, const v1::Frame& frame) {
    if (gen != generation.load() || !sender) return;  // a frame of a connection that is gone
    sender(frame);
  }

  static v1::Frame close_frame(uint32_t id, std::string error, uint32_t code) {
    v1::Frame f;
    auto* c = f.mutable_stream_close();
    c->set_id(id);
    c->set_error(std::move(error));
    c->set_code(code);
    return f;
  }

  void count(uint64_t ExecStreamsStats::*field) {
    std::lock_guard lock(stats_mu);
    ++(stats_.*field);
  }

  void erase(uint32_t id) {
    streams.erase(id);
    open_count = streams.size();
  }

  // --- on the strand ---

  void open(uint64_t gen, const v1::StreamOpen& open) {
    const uint32_t id = open.id();
    auto refuse = [&](std::string error, uint32_t code) {
      count(&ExecStreamsStats::refused);
      send(gen, close_frame(id, std::move(error), code));
    };
    if (gen != generation.load()) return;
    if (streams.count(id)) {
      if (streams[id].exec) streams[id].exec->cancel();
      erase(id);
      return refuse(fmt::format("stream id {} is already open on this node", id), 400);
    }
    const v1::ExecRequest& req = open.exec();
    if (req.namespace_().empty() || req.pod().empty() || req.container().empty())
      return refuse("an exec request needs a namespace, a pod and a container", 400);
    if (!req.attach() && req.command().empty())
      return refuse("an exec request needs a command", 400);
    if (!req.stdin() && !req.stdout() && !req.stderr())
      return refuse("at least one of stdin, stdout and stderr must be requested", 400);
    if (streams.size() >= options.max_streams)
      return refuse(fmt::format("too many exec and attach sessions open on this node ({}); try "
                                "again when one ends",
                                options.max_streams),
                    429);
    Stream& s = streams[id];
    s.id = id;
    s.generation = gen;
    s.window = std::min<uint64_t>(open.window(), options.max_window);
    s.has_stdin = req.stdin();
    open_count = streams.size();
    // The CRI calls block: on the resolver's thread, then back here.
    auto self = shared_from_this();
    std::lock_guard lock(work_mu);
    jobs.push_back([self, gen, id, req] {
      auto url = self->resolver(req);
      asio::post(self->strand, [self, gen, id, req, url = std::move(url)]() mutable {
        self->connect(gen, id, req, std::move(url));
      });
    });
    work_cv.notify_one();
  }

  void connect(uint64_t gen, uint32_t id, const v1::ExecRequest& req,
               common::Result<std::string> url) {
    auto it = streams.find(id);
    if (it == streams.end() || it->second.generation != gen) return;  // cancelled meanwhile
    if (!url.ok()) {
      erase(id);
      count(&ExecStreamsStats::refused);
      return send(gen,
                  close_frame(id, url.status().message(), stream_code_for(url.status().code())));
    }
    SpdyExecOptions o;
    o.stdin = req.stdin();
    o.stdout = req.stdout();
    o.stderr = req.stderr();
    o.tty = req.tty();
    std::weak_ptr<Core> weak = shared_from_this();
    SpdyExec::Callbacks cbs;
    // SpdyExec calls back on its own strand: hop onto ours.
    cbs.on_ready = [weak, gen, id] {
      if (auto self = weak.lock())
        asio::post(self->strand, [self, gen, id] { self->on_ready(gen, id); });
    };
    cbs.on_output = [weak, gen, id](uint32_t channel, std::string data) {
      if (auto self = weak.lock())
        asio::post(self->strand, [self, gen, id, channel, data = std::move(data)]() mutable {
          self->on_output(gen, id, channel, std::move(data));
        });
    };
    cbs.on_end = [weak, gen, id](ExecResult result) {
      if (auto self = weak.lock())
        asio::post(self->strand, [self, gen, id, result = std::move(result)]() mutable {
          self->on_end(gen, id, std::move(result));
        });
    };
    it->second.exec = SpdyExec::start(ioc, std::move(*url), o, std::move(cbs));
  }

  Stream* find(uint64_t gen, uint32_t id) {
    auto it = streams.find(id);
    if (it == streams.end() || it->second.generation != gen) return nullptr;
    return &it->second;
  }

  void on_ready(uint64_t gen, uint32_t id) {
    Stream* s = find(gen, id);
    if (!s || s->ready) return;
    s->ready = true;
    count(&ExecStreamsStats::opened);
    v1::Frame accepted;
    accepted.mutable_stream_data()->set_id(id);
    send(gen, accepted);
    if (s->has_stdin) send(gen, window_frame(id, options.stdin_window));
    pump(*s);
  }

  static v1::Frame window_frame(uint32_t id, uint32_t bytes) {
    v1::Frame f;
    f.mutable_stream_window()->set_id(id);
    f.mutable_stream_window()->set_bytes(bytes);
    return f;
  }

  void on_output(uint64_t gen, uint32_t id, uint32_t channel, std::string data) {
    Stream* s = find(gen, id);
    if (!s) return;
    s->pending.emplace_back(channel, std::move(data));
    pump(*s);
  }

  void on_end(uint64_t gen, uint32_t id, ExecResult result) {
    Stream* s = find(gen, id);
    if (!s) return;
    s->ended = true;
    s->result = std::move(result);
    pump(*s);
  }

  // Sends what the window allows; ends the stream once the session ended and all is out.
  void pump(Stream& s) {
    while (!s.pending.empty() && s.window > 0) {
      auto& [channel, data] = s.pending.front();
      size_t n = std::min<uint64_t>({s.window, options.max_data_frame, data.size()});
      v1::Frame f;
      auto* d = f.mutable_stream_data();
      d->set_id(s.id);
      d->set_channel(channel);
      if (n == data.size()) {
        d->set_data(std::move(data));
        s.pending.pop_front();
      } else {
        d->set_data(data.substr(0, n));
        data.erase(0, n);
      }
      s.window -= n;
      send(s.generation, f);
    }
    const bool blocked = !s.pending.empty();
    if (s.exec && !s.ended && blocked != s.paused) {
      s.paused = blocked;
      s.exec->pause_output(blocked);
    }
    if (s.ended && s.pending.empty()) {
      v1::Frame f;
      if (s.result.exited) {
        f = close_frame(s.id, "", 0);
        f.mutable_stream_close()->set_exited(true);
        f.mutable_stream_close()->set_exit_code(s.result.exit_code);
      } else {
        f = close_frame(s.id, s.result.error.empty() ? "the session ended" : s.result.error, 500);
      }
      if (!s.ready) count(&ExecStreamsStats::refused);
      count(&ExecStreamsStats::ended);
      uint64_t gen = s.generation;
      erase(s.id);  // `s` is gone
      send(gen, f);
    }
  }

  void on_data(uint64_t gen, const v1::StreamData& data) {
    Stream* s = find(gen, data.id());
    if (!s || !s->exec) return;
    if (data.has_resize()) s->exec->resize(data.resize().width(), data.resize().height());
    if (!data.data().empty()) {
      const uint32_t id = data.id();
      const uint32_t size = static_cast<uint32_t>(data.data().size());
      std::weak_ptr<Core> weak = shared_from_this();
      // Re-granted once the runtime took the bytes.
      s->exec->write_stdin(data.data(), [weak, gen, id, size] {
        if (auto self = weak.lock())
          asio::post(self->strand, [self, gen, id, size] {
            if (self->find(gen, id)) self->send(gen, window_frame(id, size));
          });
      });
    }
    if (data.eof()) s->exec->close_stdin();
  }

  void on_window(uint64_t gen, const v1::StreamWindow& w) {
    Stream* s = find(gen, w.id());
    if (!s) return;
    s->window = std::min<uint64_t>(s->window + w.bytes(), options.max_window);
    pump(*s);
  }

  void on_close(uint64_t gen, uint32_t id) {
    Stream* s = find(gen, id);
    if (!s) return;
    if (s->exec) s->exec->cancel();
    count(&ExecStreamsStats::cancelled);
    erase(id);
  }

  void cancel_all() {
    for (auto& [id, s] : streams) {
      if (s.exec) s.exec->cancel();
      count(&ExecStreamsStats::cancelled);
    }
    streams.clear();
    open_count = 0;
  }
};

ExecStreams::ExecStreams(asio::io_context& ioc, ExecResolver resolver, ExecStreamsOptions options)
    : core_(std::make_shared<Core>(ioc, std::move(resolver), options)) {}

ExecStreams::~ExecStreams() {
  core_->stop();
  ++core_->generation;
  // Sessions end with their connections; posted, as the strand owns them.
  asio::post(core_->strand, [core = core_] {
    core->cancel_all();
    core->sender = nullptr;
  });
}

void ExecStreams::set_sender(Sender sender) {
  asio::post(core_->strand, [core = core_, sender = std::move(sender)]() mutable {
    core->sender = std::move(sender);
  });
}

void ExecStreams::on_frame(const v1::Frame& frame) {
  const uint64_t gen = core_->generation.load();
  auto core = core_;
  switch (frame.msg_case()) {
    case v1::Frame::kStreamOpen:
      asio::post(core->strand, [core, gen, open = frame.stream_open()] { core->open(gen, open); });
      return;
    case v1::Frame::kStreamData:
      asio::post(core->strand,
                 [core, gen, data = frame.stream_data()] { core->on_data(gen, data); });
      return;
    case v1::Frame::kStreamWindow:
      asio::post(core->strand, [core, gen, w = frame.stream_window()] { core->on_window(gen, w); });
      return;
    case v1::Frame::kStreamClose:
      asio::post(core->strand,
                 [core, gen, id = frame.stream_close().id()] { core->on_close(gen, id); });
      return;
    default:
      return;
  }
}

void ExecStreams::on_disconnect() {
  ++core_->generation;
  asio::post(core_->strand, [core = core_] { core->cancel_all(); });
}

size_t ExecStreams::open_streams() const {
  return core_->open_count.load();
}

ExecStreamsStats ExecStreams::stats() const {
  std::lock_guard lock(core_->stats_mu);
  return core_->stats_;
}

// --- StreamRouter -------------------------------------------------------------------------

namespace {

uint32_t stream_id_of(const v1::Frame& frame) {
  switch (frame.msg_case()) {
    case v1::Frame::kStreamOpen:
      return frame.stream_open().id();
    case v1::Frame::kStreamData:
      return frame.stream_data().id();
    case v1::Frame::kStreamWindow:
      return frame.stream_window().id();
    case v1::Frame::kStreamClose:
      return frame.stream_close().id();
    default:
      return 0;
  }
}

}  // namespace

std::vector<v1::Frame> StreamRouter::on_stream_frame(const v1::Frame& frame) {
  const uint32_t id = stream_id_of(frame);
  auto known = std::find(exec_ids_.begin(), exec_ids_.end(), id);
  if (frame.msg_case() == v1::Frame::kStreamOpen &&
      frame.stream_open().request_case() == v1::StreamOpen::kExec) {
    if (known == exec_ids_.end()) {
      exec_ids_.push_back(id);
      // Ids grow on a connection: the oldest ones are long over.
      if (exec_ids_.size() > 256) exec_ids_.erase(exec_ids_.begin());
    }
    exec_.on_frame(frame);
    return {};
  }
  if (frame.msg_case() == v1::Frame::kStreamOpen && known != exec_ids_.end()) {
    exec_ids_.erase(known);  // an id of an exec stream that ended here, now a log stream's
    known = exec_ids_.end();
  }
  if (frame.msg_case() != v1::Frame::kStreamOpen && known != exec_ids_.end()) {
    exec_.on_frame(frame);
    if (frame.msg_case() == v1::Frame::kStreamClose) exec_ids_.erase(known);
    return {};
  }
  return logs_.on_stream_frame(frame);
}

void StreamRouter::on_disconnect() {
  exec_ids_.clear();
  exec_.on_disconnect();
  logs_.on_disconnect();
}

}  // namespace gantry::edge
