#include "edgecore/logs/log_streams.h"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace gantry::edge {

using common::Code;

uint32_t stream_code_for(Code code) {
  switch (code) {
    case Code::kInvalidArgument:
    case Code::kFailedPrecondition:
      return 400;
    case Code::kNotFound:
      return 404;
    case Code::kPermissionDenied:
      return 403;
    case Code::kResourceExhausted:
      return 429;
    case Code::kUnavailable:
      return 503;
    case Code::kUnimplemented:
      return 501;
    default:
      return 500;
  }
}

LogStreams::LogStreams(LogLocator locator, const common::Clock& clock, LogStreamsOptions options)
    : locator_(std::move(locator)), clock_(clock), options_(options) {
  options_.max_data_frame = std::max<size_t>(options_.max_data_frame, 1);
  options_.max_window = std::max<uint32_t>(options_.max_window, 1);
}

LogStreams::~LogStreams() = default;

v1::Frame LogStreams::close_frame(uint32_t id, std::string error, uint32_t code) {
  v1::Frame f;
  auto* close = f.mutable_stream_close();
  close->set_id(id);
  close->set_error(std::move(error));
  close->set_code(code);
  return f;
}

std::vector<v1::Frame> LogStreams::on_stream_frame(const v1::Frame& frame) {
  switch (frame.msg_case()) {
    case v1::Frame::kStreamOpen:
      return open(frame.stream_open());
    case v1::Frame::kStreamWindow: {
      auto it = streams_.find(frame.stream_window().id());
      if (it == streams_.end()) return {};  // already ended; the grant crossed our close
      Stream& s = *it->second;
      s.window = std::min<uint64_t>(s.window + frame.stream_window().bytes(), options_.max_window);
      std::vector<v1::Frame> out;
      if (!s.idle && !pump(s, &out)) streams_.erase(it);
      return out;
    }
    case v1::Frame::kStreamClose:
      if (streams_.erase(frame.stream_close().id())) ++stats_.cancelled;
      return {};
    default:
      return {};  // StreamData towards the edge means nothing for log streams
  }
}

std::vector<v1::Frame> LogStreams::open(const v1::StreamOpen& open) {
  const uint32_t id = open.id();
  std::vector<v1::Frame> out;
  auto refuse = [&](std::string error, uint32_t code) {
    ++stats_.refused;
    out.push_back(close_frame(id, std::move(error), code));
    return out;
  };
  if (auto it = streams_.find(id); it != streams_.end()) {
    // The cloud is confused about its ids: end both rather than mix two streams.
    streams_.erase(it);
    ++stats_.cancelled;
    return refuse(fmt::format("stream id {} is already open on this node", id), 400);
  }
  if (open.request_case() != v1::StreamOpen::kLogs) {
    return refuse("this edgecore serves log streams only", 501);
  }
  const v1::LogRequest& req = open.logs();
  if (req.namespace_().empty() || req.pod().empty()) {
    return refuse("a log request needs a namespace and a pod", 400);
  }
  if (req.limit_bytes() < 0) return refuse("limitBytes must not be negative", 400);
  if (req.since_seconds() < 0) return refuse("sinceSeconds must not be negative", 400);
  if (streams_.size() >= options_.max_streams) {
    return refuse(fmt::format("too many log streams open on this node ({}); try again when one "
                              "ends",
                              options_.max_streams),
                  429);
  }
  auto target = locator_(req);
  if (!target.ok())
    return refuse(target.status().message(), stream_code_for(target.status().code()));
  if (target->path.empty()) {
    return refuse(fmt::format("container \"{}\" in pod {}/{} has no log file", req.container(),
                              req.namespace_(), req.pod()),
                  404);
  }
  LogReadOptions ro;
  ro.tail_lines = req.tail_lines();
  ro.limit_bytes = req.limit_bytes();
  ro.timestamps = req.timestamps();
  if (req.since_seconds() > 0) {
    auto now =
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.system_now().time_since_epoch())
            .count();
    ro.since_unix_nanos = now - req.since_seconds() * 1'000'000'000LL;
  }
  auto reader = LogReader::open(target->path, ro);
  if (!reader.ok()) {
    return refuse(reader.status().message(), stream_code_for(reader.status().code()));
  }
  auto stream = std::make_unique<Stream>();
  stream->id = id;
  stream->request = req;
  stream->path = target->path;
  stream->reader = std::move(reader).value();
  stream->window = std::min<uint64_t>(open.window(), options_.max_window);
  stream->stopping = !target->running;
  ++stats_.opened;
  // Accepted: an empty StreamData, so that the cloud can answer 200 before any output exists.
  v1::Frame accepted;
  accepted.mutable_stream_data()->set_id(id);
  out.push_back(std::move(accepted));
  if (pump(*stream, &out)) streams_.emplace(id, std::move(stream));
  return out;
}

bool LogStreams::pump(Stream& s, std::vector<v1::Frame>* out) {
  s.idle = false;
  auto end = [&](std::string error, uint32_t code) {
    ++stats_.ended;
    out->push_back(close_frame(s.id, std::move(error), code));
    return false;
  };
  while (s.window > 0) {
    std::string data;
    size_t want = std::min<uint64_t>(s.window, options_.max_data_frame);
    auto got = s.reader->read(want, &data);
    if (!got.ok()) return end(got.status().message(), 500);
    if (*got > 0) {
      s.window -= *got;
      stats_.bytes_sent += *got;
      v1::Frame f;
      f.mutable_stream_data()->set_id(s.id);
      f.mutable_stream_data()->set_data(std::move(data));
      out->push_back(std::move(f));
      continue;
    }
    if (s.reader->done() || !s.request.follow()) return end("", 0);
    // Following, at the end of the file.
    auto rotated = s.reader->reopen_if_rotated();
    if (!rotated.ok()) return end(rotated.status().message(), 500);
    if (*rotated) continue;
    if (s.stopping) return end("", 0);  // stopped, and everything it wrote is out
    auto target = locator_(s.request);
    if (!target.ok() || target->path != s.path) {
      // The pod or container is gone, or a new container replaced it: this log is over.
      return end("", 0);
    }
    if (!target->running) {
      s.stopping = true;  // read once more: it may have written its last lines meanwhile
      continue;
    }
    s.idle = true;
    return true;
  }
  return true;
}

std::vector<v1::Frame> LogStreams::poll() {
  std::vector<v1::Frame> out;
  for (auto it = streams_.begin(); it != streams_.end();) {
    Stream& s = *it->second;
    if (s.idle && !pump(s, &out)) {
      it = streams_.erase(it);
    } else {
      ++it;
    }
  }
  return out;
}

bool LogStreams::wants_poll() const {
  return std::any_of(streams_.begin(), streams_.end(),
                     [](const auto& entry) { return entry.second->idle; });
}

void LogStreams::on_disconnect() {
  stats_.cancelled += streams_.size();
  streams_.clear();
}

LogStreamsStats LogStreams::stats() const {
  LogStreamsStats s = stats_;
  s.waiting_for_window = static_cast<uint64_t>(std::count_if(
      streams_.begin(), streams_.end(), [](const auto& e) { return e.second->window == 0; }));
  return s;
}

}  // namespace gantry::edge
