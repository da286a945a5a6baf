// What the tunnel client hands stream frames to (StreamOpen/Data/Window/Close from the cloud), so
// that edgecore_hub does not depend on what the streams carry (edgecore_logs implements it). All
// calls come from EdgeHub one at a time (under its lock); the frames returned are sent in order.
#pragma once

#include <chrono>
#include <vector>

#include "gantry/v1/tunnel.pb.h"

namespace gantry::edge {

class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  // One StreamOpen, StreamData, StreamWindow or StreamClose from the cloud; the frames to send.
  virtual std::vector<v1::Frame> on_stream_frame(const v1::Frame& frame) = 0;
  // Called every poll_interval() while wants_poll() is true (followed files that may grow).
  virtual std::vector<v1::Frame> poll() = 0;
  virtual bool wants_poll() const = 0;
  virtual std::chrono::milliseconds poll_interval() const = 0;
  // The connection is gone: every stream ends without a frame (the cloud ended them too).
  virtual void on_disconnect() = 0;
};

}  // namespace gantry::edge
