// The REST API's LogStreamer (pods/log) on the hub's tunnel streams: what cloudcore wires, and
// what the log integration tests wire the same way.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "cloudcore/api/log_streamer.h"
#include "cloudcore/hub/hub.h"

namespace gantry::cloud {

class HubLogStreamer final : public api::LogStreamer {
 public:
  // `elsewhere` (several replicas): for a node this hub does not hold, a stream through the
  // replica that does, or an error saying which replica holds it or that none does; nullopt
  // keeps the hub's own answer (`here`: why this hub cannot reach the node).
  using Elsewhere = std::function<std::optional<common::Result<std::unique_ptr<Stream>>>(
      const std::string& node, const v1::LogRequest& request, const Callbacks& callbacks,
      const common::Status& here)>;

  // Exec/attach (several replicas): for a node this hub does not hold, the error to answer
  // (which replica holds it: exec is not relayed between replicas), or nullopt for the hub's own.
  using ExecElsewhere = std::function<std::optional<common::Status>(const std::string& node,
                                                                    const common::Status& here)>;

  explicit HubLogStreamer(Hub& hub, Elsewhere elsewhere = {}, ExecElsewhere exec_elsewhere = {})
      : hub_(hub), elsewhere_(std::move(elsewhere)), exec_elsewhere_(std::move(exec_elsewhere)) {}

  common::Result<std::unique_ptr<Stream>> open_exec(const std::string& node,
                                                    const v1::ExecRequest& request,
                                                    Callbacks callbacks) override {
    struct HubStream final : Stream {
      std::unique_ptr<LogStream> stream;
      void consumed(size_t bytes) override { stream->consumed(bytes); }
      void send_input(std::string data, bool eof, std::function<void()> sent) override {
        stream->send_input(std::move(data), eof, std::move(sent));
      }
      void resize(uint32_t width, uint32_t height) override { stream->resize(width, height); }
    };
    LogStreamCallbacks cbs{std::move(callbacks.on_ready), std::move(callbacks.on_data),
                           std::move(callbacks.on_close), std::move(callbacks.on_output),
                           std::move(callbacks.on_exit)};
    auto stream = hub_.open_exec_stream(node, request, std::move(cbs));
    if (!stream.ok()) return elsewhere_or(node, stream.status());
    auto out = std::make_unique<HubStream>();
    out->stream = std::move(stream).value();
    return std::unique_ptr<Stream>(std::move(out));
  }

  common::Status exec_available(const std::string& node) override {
    common::Status here = hub_.exec_available(node);
    if (here.ok()) return here;
    return elsewhere_or(node, here);
  }

  common::Result<std::unique_ptr<Stream>> open(const std::string& node,
                                               const v1::LogRequest& request,
                                               Callbacks callbacks) override {
    struct HubStream final : Stream {
      std::unique_ptr<LogStream> stream;
      void consumed(size_t bytes) override { stream->consumed(bytes); }
    };
    std::optional<Callbacks> kept;
    if (elsewhere_) kept = callbacks;  // the hub takes its copy; the forward may need them
    auto stream = hub_.open_log_stream(node, request,
                                       {std::move(callbacks.on_ready),
                                        std::move(callbacks.on_data),
                                        std::move(callbacks.on_close),
                                        {},
                                        {}});
    if (!stream.ok()) {
      if (elsewhere_ && stream.status().code() == common::Code::kUnavailable) {
        if (auto other = elsewhere_(node, request, *kept, stream.status()))
          return std::move(*other);
      }
      return stream.status();
    }
    auto out = std::make_unique<HubStream>();
    out->stream = std::move(stream).value();
    return std::unique_ptr<Stream>(std::move(out));
  }

 private:
  common::Status elsewhere_or(const std::string& node, const common::Status& here) {
    if (exec_elsewhere_ && here.code() == common::Code::kUnavailable) {
      if (auto other = exec_elsewhere_(node, here)) return *other;
    }
    return here;
  }

  Hub& hub_;
  Elsewhere elsewhere_;
  ExecElsewhere exec_elsewhere_;
};

}  // namespace gantry::cloud
