// The exec and attach streams of the tunnel (`kubectl exec`, `kubectl attach`): each relays one
// SpdyExec session with the runtime's streaming server. StreamRouter hands them their frames and
// the log streams theirs.
//
// Per stream: StreamOpen{exec} from the cloud; the edge resolves the container and the runtime's
// URL (CRI calls, on a thread of its own), connects, and answers with an empty StreamData
// (accepted) and, with stdin, a StreamWindow granting the cloud stdin bytes; or with StreamClose
// (refused: code and a reason). Output goes up as StreamData on channels 1 and 2 within the window
// the cloud grants (output beyond it waits in the runtime: reading pauses); stdin comes down on
// channel 0, re-granted once written to the runtime; `eof` ends stdin; `resize` resizes the
// terminal. The end is a StreamClose with `exited` and the exit code, or with an error.
//
// Unlike log streams these are asynchronous: the runtime's output arrives whenever it comes. The
// frames go out through the sender (EdgeHub::send_frame, which is thread-safe); on_frame() only
// posts work and never sends from inside the hub's lock.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "edgecore/hub/stream_handler.h"
#include "gantry/v1/tunnel.pb.h"

namespace boost::asio {
class io_context;
}

namespace gantry::edge {

// The runtime's streaming URL for a request: finds the pod's running container and asks CRI.
// Errors a person can act on, with codes as for logs (kNotFound: no such pod or container,
// kFailedPrecondition: "container \"x\" is not running", ...). Blocking; runs on ExecStreams'
// own thread.
using ExecResolver = std::function<common::Result<std::string>(const v1::ExecRequest&)>;

struct ExecStreamsOptions {
  size_t max_streams = 8;             // open at once per node; more are refused with 429
  size_t max_data_frame = 32 * 1024;  // StreamData payload
  uint32_t stdin_window = 64 * 1024;  // stdin bytes the cloud may have in flight
  uint32_t max_window = 256 * 1024;   // output credit kept per stream, whatever the cloud grants
};

struct ExecStreamsStats {
  uint64_t opened = 0;
  uint64_t refused = 0;
  uint64_t ended = 0;
  uint64_t cancelled = 0;
};

class ExecStreams {
 public:
  using Sender = std::function<void(const v1::Frame&)>;
  ExecStreams(boost::asio::io_context& ioc, ExecResolver resolver, ExecStreamsOptions options = {});
  ~ExecStreams();  // ends every session
  ExecStreams(const ExecStreams&) = delete;
  ExecStreams& operator=(const ExecStreams&) = delete;

  // Where frames go (EdgeHub::send_frame). Set before the first frame.
  void set_sender(Sender sender);
  // A StreamOpen{exec}, or a StreamData/Window/Close of an exec stream. Never blocks, never sends.
  void on_frame(const v1::Frame& frame);
  // The tunnel connection is gone: every session ends without a frame.
  void on_disconnect();

  size_t open_streams() const;
  ExecStreamsStats stats() const;

  struct Core;

 private:
  std::shared_ptr<Core> core_;
};

// The StreamHandler EdgeHub gets: exec streams to ExecStreams, the rest to `logs`.
class StreamRouter final : public StreamHandler {
 public:
  StreamRouter(StreamHandler& logs, ExecStreams& exec) : logs_(logs), exec_(exec) {}

  std::vector<v1::Frame> on_stream_frame(const v1::Frame& frame) override;
  std::vector<v1::Frame> poll() override { return logs_.poll(); }
  bool wants_poll() const override { return logs_.wants_poll(); }
  std::chrono::milliseconds poll_interval() const override { return logs_.poll_interval(); }
  void on_disconnect() override;

 private:
  StreamHandler& logs_;
  ExecStreams& exec_;
  std::vector<uint32_t> exec_ids_;  // open exec streams of this connection (few)
};

}  // namespace gantry::edge
