// The container runtime as the pod workers see it: a small, synchronous interface shaped after
// CRI runtime.v1 but in our own plain types, so that edgecore/pods can be unit-tested against a
// fake and the gRPC types stay inside edgecore/runtime/cri_runtime.cc.
//
// Every call has a deadline (the implementation's); a runtime that does not answer gives
// Code::kUnavailable or kDeadlineExceeded, never a hang or a crash.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace gantry::edge {

using common::Result;
using common::Status;

// Labels the pod workers put on sandboxes and containers so that a restarted edgecore finds
// (adopts) what it started before.
inline constexpr const char* kLabelPodNamespace = "io.kubernetes.pod.namespace";
inline constexpr const char* kLabelPodName = "io.kubernetes.pod.name";
inline constexpr const char* kLabelPodUid = "io.kubernetes.pod.uid";
inline constexpr const char* kLabelContainerName = "io.kubernetes.container.name";
inline constexpr const char* kLabelManagedBy = "gantry.io/managed-by";  // value "edgecore"
// The hash of the container spec it was created from: a changed spec means replace.
inline constexpr const char* kAnnotationSpecHash = "gantry.io/spec-hash";

struct RuntimeVersion {
  std::string runtime_name;     // "containerd"
  std::string runtime_version;  // "1.6.20"
  std::string api_version;      // "v1"
};

struct PortMapping {
  int32_t container_port = 0;
  int32_t host_port = 0;
  std::string protocol = "TCP";  // TCP, UDP, SCTP
  std::string host_ip;
};

struct Mount {
  std::string container_path;
  std::string host_path;
  bool read_only = false;
};

struct LinuxResources {
  int64_t cpu_period = 0;          // 0: unset
  int64_t cpu_quota = 0;           // 0: unlimited
  int64_t cpu_shares = 0;          // 0: runtime default
  int64_t memory_limit_bytes = 0;  // 0: unlimited
};

struct SandboxConfig {
  std::string name;  // pod name
  std::string ns;
  std::string uid;
  uint32_t attempt = 0;
  std::string hostname;
  std::string log_directory;  // container logs go to log_directory/<container log_path>
  bool host_network = false;
  std::vector<PortMapping> ports;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
  std::string cgroup_parent;
};

struct ContainerConfig {
  std::string name;
  uint32_t attempt = 0;
  std::string image;  // the image reference as pulled (or the image ID)
  std::vector<std::string> command;
  std::vector<std::string> args;
  std::string working_dir;
  std::vector<std::pair<std::string, std::string>> envs;
  std::vector<Mount> mounts;
  std::string log_path;  // relative to the sandbox's log_directory
  bool tty = false;
  bool stdin_open = false;
  LinuxResources resources;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

enum class SandboxState { kReady, kNotReady };

struct SandboxInfo {
  std::string id;
  std::string name;
  std::string ns;
  std::string uid;
  uint32_t attempt = 0;
  SandboxState state = SandboxState::kNotReady;
  int64_t created_at_ns = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

struct SandboxStatus {
  SandboxInfo info;
  std::string ip;  // empty with host network or before the network is set up
};

enum class ContainerState { kCreated, kRunning, kExited, kUnknown };

struct ContainerInfo {
  std::string id;
  std::string sandbox_id;
  std::string name;
  uint32_t attempt = 0;
  std::string image;  // as requested
  // As the runtime reports it: containerd 1.6 gives the image ID in list_containers and, in
  // container_status, the repo digest ("registry/app@sha256:...") when the image came from a
  // registry. Use image_id to compare with pull_image() / ImageInfo::id.
  std::string image_ref;
  std::string image_id;  // the image's ID ("sha256:..."), as pull_image() returns it
  ContainerState state = ContainerState::kUnknown;
  int64_t created_at_ns = 0;
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> annotations;
};

struct ContainerStatus {
  ContainerInfo info;
  int64_t started_at_ns = 0;
  int64_t finished_at_ns = 0;
  int32_t exit_code = 0;
  std::string reason;  // "Completed", "Error", "OOMKilled", ...
  std::string message;
  std::string log_path;  // absolute path of the CRI log file
};

struct ContainerFilter {
  std::string sandbox_id;                     // empty: any
  std::map<std::string, std::string> labels;  // all must match
};

struct ImageInfo {
  std::string id;
  std::vector<std::string> repo_tags;
  std::vector<std::string> repo_digests;
  uint64_t size_bytes = 0;
};

struct FilesystemUsage {
  std::string mountpoint;
  uint64_t used_bytes = 0;
};

// CRI runtime conditions: "RuntimeReady" and "NetworkReady" are the ones a node needs.
inline constexpr const char* kConditionRuntimeReady = "RuntimeReady";
inline constexpr const char* kConditionNetworkReady = "NetworkReady";

struct RuntimeCondition {
  std::string type;
  bool status = false;
  std::string reason;
  std::string message;
};

class Runtime {
 public:
  virtual ~Runtime() = default;

  virtual Result<RuntimeVersion> version() = 0;

  // Ends every call in flight (an image pull may take minutes) with Code::kCancelled, and every
  // later call at once: for shutting down without waiting for them. The default does nothing.
  virtual void cancel_calls() {}

  // The runtime's conditions (CRI Status). The default, for fakes, says ready whenever
  // version() answers.
  virtual Result<std::vector<RuntimeCondition>> conditions() {
    auto v = version();
    if (!v.ok()) return v.status();
    return std::vector<RuntimeCondition>{{kConditionRuntimeReady, true, "", ""},
                                         {kConditionNetworkReady, true, "", ""}};
  }

  // --- Sandboxes -------------------------------------------------------------------------
  // Returns the sandbox ID.
  virtual Result<std::string> run_pod_sandbox(const SandboxConfig& config) = 0;
  virtual Status stop_pod_sandbox(const std::string& sandbox_id) = 0;
  virtual Status remove_pod_sandbox(const std::string& sandbox_id) = 0;
  virtual Result<SandboxStatus> pod_sandbox_status(const std::string& sandbox_id) = 0;
  // Sandboxes whose labels contain all of `labels` (empty: all).
  virtual Result<std::vector<SandboxInfo>> list_pod_sandboxes(
      const std::map<std::string, std::string>& labels = {}) = 0;

  // --- Containers ------------------------------------------------------------------------
  // Returns the container ID. `sandbox` is the config the sandbox was started with.
  virtual Result<std::string> create_container(const std::string& sandbox_id,
                                               const ContainerConfig& config,
                                               const SandboxConfig& sandbox) = 0;
  virtual Status start_container(const std::string& container_id) = 0;
  // SIGTERM, then SIGKILL after `grace`.
  virtual Status stop_container(const std::string& container_id, std::chrono::seconds grace) = 0;
  virtual Status remove_container(const std::string& container_id) = 0;
  virtual Result<std::vector<ContainerInfo>> list_containers(
      const ContainerFilter& filter = {}) = 0;
  virtual Result<ContainerStatus> container_status(const std::string& container_id) = 0;

  // --- Streaming (kubectl exec / attach) ---------------------------------------------------
  // The URL of the runtime's streaming server for one exec (a new process running `command`)
  // or, with `attach`, for the container's own process. The caller connects to it itself
  // (edgecore/exec). Default: kUnimplemented (runtimes without a streaming server).
  struct StreamingRequest {
    std::string container_id;
    std::vector<std::string> command;  // exec only
    bool attach = false;
    bool tty = false;
    bool stdin = false;
    bool stdout = true;
    bool stderr = true;
  };
  virtual Result<std::string> streaming_url(const StreamingRequest& request) {
    (void)request;
    return common::make_error(common::Code::kUnimplemented,
                              "this runtime serves no exec or attach");
  }

  // --- Images ----------------------------------------------------------------------------
  // nullopt: not present on the node.
  virtual Result<std::optional<ImageInfo>> image_status(const std::string& image) = 0;
  // Returns the image reference (ID) to create containers with. Slow: pulls may take minutes;
  // the implementation uses a long deadline for this call alone.
  virtual Result<std::string> pull_image(const std::string& image) = 0;
  virtual Status remove_image(const std::string& image) = 0;
  virtual Result<std::vector<FilesystemUsage>> image_fs_info() = 0;
};

}  // namespace gantry::edge
