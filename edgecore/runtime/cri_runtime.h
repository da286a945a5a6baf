// The Runtime over CRI runtime.v1 (gRPC) to containerd's socket.
//
// gRPC stays in cri_runtime.cc: including this header costs no gRPC or protobuf headers.
// Every call carries a deadline; a runtime that is absent, restarting or stuck yields
// kUnavailable / kDeadlineExceeded with the endpoint in the message, never a hang, an exception
// or a crash. The channel reconnects by itself (backoff capped at a second or so), so the same
// object works again as soon as containerd is back. Thread-safe: pod workers share one instance.
//
// Stopping or removing a sandbox or container that is already gone succeeds (CRI's idempotence;
// containerd 1.6 itself answers NotFound). container_status() fills ContainerInfo::image_id even
// where containerd reports only a repo digest (one extra ImageStatus call).
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "edgecore/runtime/runtime.h"

namespace gantry::edge {

struct CriRuntimeOptions {
  // unix:///run/containerd/containerd.sock, or an absolute socket path.
  std::string endpoint = "unix:///run/containerd/containerd.sock";
  // Deadline of every call except the two below.
  std::chrono::milliseconds call_timeout = std::chrono::seconds(10);
  // PullImage: a slow link may take minutes for a big image.
  std::chrono::milliseconds pull_timeout = std::chrono::minutes(10);
  // StopContainer waits the grace period plus call_timeout.
};

class CriRuntime final : public Runtime {
 public:
  // Fails (kInvalidArgument) only for an endpoint that is neither unix://PATH nor an absolute
  // path. Does not connect: a runtime that is not there yet is fine.
  static Result<std::unique_ptr<CriRuntime>> create(CriRuntimeOptions options);
  ~CriRuntime() override;
  CriRuntime(const CriRuntime&) = delete;
  CriRuntime& operator=(const CriRuntime&) = delete;

  // The normalised endpoint (unix:///...).
  const std::string& endpoint() const;

  Result<RuntimeVersion> version() override;
  void cancel_calls() override;
  Result<std::vector<RuntimeCondition>> conditions() override;

  Result<std::string> run_pod_sandbox(const SandboxConfig& config) override;
  Status stop_pod_sandbox(const std::string& sandbox_id) override;
  Status remove_pod_sandbox(const std::string& sandbox_id) override;
  Result<SandboxStatus> pod_sandbox_status(const std::string& sandbox_id) override;
  Result<std::vector<SandboxInfo>> list_pod_sandboxes(
      const std::map<std::string, std::string>& labels = {}) override;

  Result<std::string> create_container(const std::string& sandbox_id, const ContainerConfig& config,
                                       const SandboxConfig& sandbox) override;
  Status start_container(const std::string& container_id) override;
  Status stop_container(const std::string& container_id, std::chrono::seconds grace) override;
  Status remove_container(const std::string& container_id) override;
  Result<std::vector<ContainerInfo>> list_containers(const ContainerFilter& filter = {}) override;
  Result<ContainerStatus> container_status(const std::string& container_id) override;
  Result<std::string> streaming_url(const StreamingRequest& request) override;

  Result<std::optional<ImageInfo>> image_status(const std::string& image) override;
  Result<std::string> pull_image(const std::string& image) override;
  Status remove_image(const std::string& image) override;
  Result<std::vector<FilesystemUsage>> image_fs_info() override;

 private:
  struct Impl;
  explicit CriRuntime(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gantry::edge
