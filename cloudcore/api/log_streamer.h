// How the API reaches an edge node's container logs (`GET .../pods/NAME/log`). cloudcore's main
// binds it to the hub's tunnel streams, so that cloudcore_api does not link cloudcore_hub.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/base/status.h"
#include "gantry/v1/tunnel.pb.h"

namespace gantry::cloud::api {

class LogStreamer {
 public:
  // Called from the stream's thread, one at a time, never after Stream is destroyed.
  struct Callbacks {
    std::function<void()> on_ready;                 // the node accepted; before any data
    std::function<void(std::string data)> on_data;  // call Stream::consumed() once passed on
    std::function<void(std::string error, uint32_t code)> on_close;  // once, last; "" = normal
  };
  class Stream {
   public:
    virtual ~Stream() = default;  // closes the stream on the node if it is still open
    // `bytes` of on_data output reached the client: the node may send that much more.
    virtual void consumed(size_t bytes) = 0;
  };

  virtual ~LogStreamer() = default;
  // Opens a log stream on `node`. Fails at once when the node is not connected (kUnavailable, the
  // message says since when); otherwise the callbacks report.
  virtual common::Result<std::unique_ptr<Stream>> open(const std::string& node,
                                                       const v1::LogRequest& request,
                                                       Callbacks callbacks) = 0;
};

}  // namespace gantry::cloud::api
