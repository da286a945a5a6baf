// The REST API's LogStreamer (pods/log) on the hub's tunnel streams: what cloudcore wires, and
// what the log integration tests wire the same way.
#pragma once

#include <memory>
#include <string>

#include "cloudcore/api/log_streamer.h"
#include "cloudcore/hub/hub.h"

namespace gantry::cloud {

class HubLogStreamer final : public api::LogStreamer {
 public:
  explicit HubLogStreamer(Hub& hub) : hub_(hub) {}

  common::Result<std::unique_ptr<Stream>> open(const std::string& node,
                                               const v1::LogRequest& request,
                                               Callbacks callbacks) override {
    struct HubStream final : Stream {
      std::unique_ptr<LogStream> stream;
      void consumed(size_t bytes) override { stream->consumed(bytes); }
    };
    auto stream = hub_.open_log_stream(node, request,
                                       {std::move(callbacks.on_ready), std::move(callbacks.on_data),
                                        std::move(callbacks.on_close)});
    if (!stream.ok()) return stream.status();
    auto out = std::make_unique<HubStream>();
    out->stream = std::move(stream).value();
    return std::unique_ptr<Stream>(std::move(out));
  }

 private:
  Hub& hub_;
};

}  // namespace gantry::cloud
