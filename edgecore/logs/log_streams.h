// The log streams of one tunnel connection (`kubectl logs [-f]`), as a plain state machine: given
// a stream frame from the cloud it returns the frames to send; poll() moves followed streams on
// when their files grew. No sockets and no threads: EdgeHub calls it under its lock (see
// edgecore/hub/stream_handler.h) and runs poll() on a timer while wants_poll() is true.
//
// Per stream: the edge answers StreamOpen with StreamClose (refused: code and a reason) or with an
// empty StreamData (accepted), then StreamData frames within the window the cloud granted, and
// ends with StreamClose (an empty error is a normal end). It never reads further ahead than the
// window allows, so a slow reader costs the edge a window's worth of memory at most.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/base/clock.h"
#include "common/base/status.h"
#include "edgecore/hub/stream_handler.h"
#include "edgecore/logs/log_reader.h"
#include "gantry/v1/tunnel.pb.h"

namespace gantry::edge {

// Where a container's log is. Given by the pods module (it knows the containers of each pod).
struct LogTarget {
  std::string path;      // the CRI log file
  bool running = false;  // the container is running (its log may still grow)
};

// Finds the log file for a request (namespace, pod, container, previous). Errors a person can act
// on, with the code the REST caller will see: Code::kNotFound for "container \"x\" in pod ns/p not
// found", "previous terminated container \"x\" in pod ns/p not found", "pod ns/p is not on this
// node"; kInvalidArgument for a bad request. Called again while following, to learn whether the
// container still runs and is still the same one (a different path ends the stream).
using LogLocator = std::function<common::Result<LogTarget>(const v1::LogRequest&)>;

struct LogStreamsOptions {
  size_t max_streams = 16;            // open at once per node; more are refused with 429
  size_t max_data_frame = 32 * 1024;  // StreamData payload
  uint32_t max_window = 256 * 1024;   // credit kept per stream, whatever the cloud grants
  std::chrono::milliseconds poll_interval{250};  // how often followed files are looked at
};

struct LogStreamsStats {
  uint64_t opened = 0;
  uint64_t refused = 0;    // answered with an error at StreamOpen
  uint64_t ended = 0;      // ended by this side (end of the log, error)
  uint64_t cancelled = 0;  // ended by the cloud, or dropped with the connection
  uint64_t bytes_sent = 0;
  uint64_t waiting_for_window = 0;  // open streams with output to send but no credit (now)
};

// HTTP-like code for a locator or reader error.
uint32_t stream_code_for(common::Code code);

class LogStreams final : public StreamHandler {
 public:
  // `clock` gives "now" for sinceSeconds; it must outlive this object.
  LogStreams(LogLocator locator, const common::Clock& clock, LogStreamsOptions options = {});
  ~LogStreams() override;

  std::vector<v1::Frame> on_stream_frame(const v1::Frame& frame) override;
  std::vector<v1::Frame> poll() override;
  bool wants_poll() const override;
  std::chrono::milliseconds poll_interval() const override { return options_.poll_interval; }
  void on_disconnect() override;

  size_t open_streams() const { return streams_.size(); }
  LogStreamsStats stats() const;

 private:
  struct Stream {
    uint32_t id = 0;
    v1::LogRequest request;
    std::string path;
    std::unique_ptr<LogReader> reader;
    uint64_t window = 0;
    bool idle = false;      // following, at the end of the file: poll() looks again
    bool stopping = false;  // the container stopped: read what is left, then end
  };

  std::vector<v1::Frame> open(const v1::StreamOpen& open);
  // Sends what the window allows; ends the stream when the log is over. False when it ended.
  bool pump(Stream& stream, std::vector<v1::Frame>* out);
  static v1::Frame close_frame(uint32_t id, std::string error, uint32_t code);

  LogLocator locator_;
  const common::Clock& clock_;
  LogStreamsOptions options_;
  LogStreamsStats stats_;
  std::map<uint32_t, std::unique_ptr<Stream>> streams_;
};

}  // namespace gantry::edge
