// How the API reaches an edge node's container logs (`GET .../pods/NAME/log`) and its exec and
// attach sessions (pods/exec, pods/attach). cloudcore's main binds it to the hub's tunnel streams,
// so that cloudcore_api does not link cloudcore_hub.
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
    // Exec/attach: output with its channel (1 stdout, 2 stderr) instead of on_data, and the exit
    // code right before a normal on_close.
    std::function<void(uint32_t channel, std::string data)> on_output;
    std::function<void(int exit_code)> on_exit;
  };
  class Stream {
   public:
    virtual ~Stream() = default;  // closes the stream on the node if it is still open
    // `bytes` of on_data output reached the client: the node may send that much more.
    virtual void consumed(size_t bytes) = 0;
    // Exec/attach: stdin for the process (`eof`: it ends after `data`); `sent` runs once it went
    // towards the node (read more only then). And the terminal's new size.
    virtual void send_input(std::string data, bool eof, std::function<void()> sent) {
      (void)data, (void)eof;
      if (sent) sent();
    }
    virtual void resize(uint32_t width, uint32_t height) { (void)width, (void)height; }
  };

  virtual ~LogStreamer() = default;
  // Opens a log stream on `node`. Fails at once when the node is not connected (kUnavailable, the
  // message says since when); otherwise the callbacks report.
  virtual common::Result<std::unique_ptr<Stream>> open(const std::string& node,
                                                       const v1::LogRequest& request,
                                                       Callbacks callbacks) = 0;
  // An exec or attach session on `node`: as open(), and kResourceExhausted when the node has as
  // many sessions as it serves at once.
  virtual common::Result<std::unique_ptr<Stream>> open_exec(const std::string& node,
                                                            const v1::ExecRequest& request,
                                                            Callbacks callbacks) {
    (void)node, (void)request, (void)callbacks;
    return common::make_error(common::Code::kUnimplemented, "no exec through this cloudcore");
  }
  // What open_exec would answer now, opening nothing (the SPDY fallback's answer needs it).
  virtual common::Status exec_available(const std::string& node) {
    (void)node;
    return common::make_error(common::Code::kUnimplemented, "no exec through this cloudcore");
  }
};

}  // namespace gantry::cloud::api
