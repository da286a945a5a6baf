// From a cached pod manifest to what the runtime is asked for: the sandbox and container configs,
// the hashes that say whether a running sandbox/container still matches its spec, and the
// environment resolved from configmap and secret keys. Pure functions: no runtime, no files.
#pragma once

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"
#include "edgecore/runtime/runtime.h"
#include "gantry/v1/objects.pb.h"

namespace gantry::edge {

// The image as the manifest names it ("busybox:1"), kept on the container: CRI reports the
// resolved image, and the pod status shows the name the user wrote.
inline constexpr const char* kAnnotationImage = "gantry.io/image";

// Where a pod's files live on the node.
struct PodPaths {
  std::filesystem::path pod_dir;  // DATA/pods/<uid>: volumes/<name>
  std::filesystem::path log_dir;  // DATA/logs/<ns>_<name>_<uid>: <container>/<attempt>.log
};
PodPaths pod_paths(const std::filesystem::path& data_dir, const std::string& ns,
                   const std::string& name, const std::string& uid);
inline PodPaths pod_paths(const std::filesystem::path& data_dir, const v1::Object& pod) {
  return pod_paths(data_dir, pod.namespace_(), pod.name(), pod.uid());
}
std::filesystem::path volume_dir(const PodPaths& paths, const std::string& volume);
// The CRI log path of a container attempt, relative to the sandbox's log directory.
std::string container_log_path(const std::string& container, uint32_t attempt);

// Looks up a cached configmap or secret (nullopt: not in the cache).
using ConfigLookup = std::function<std::optional<v1::ConfigData>(
    v1::ObjectKind kind, const std::string& ns, const std::string& name)>;

// 64-bit FNV-1a, continued from `h`: the spec and volume-content hashes (not for security).
inline constexpr uint64_t kFnvOffset = 14695981039346656037ULL;
uint64_t fnv1a(std::string_view data, uint64_t h = kFnvOffset);

// Hash of what the sandbox is made of (host network, ports, hostname): a changed hash means a new
// sandbox, and with it new containers.
std::string sandbox_hash(const v1::Object& pod);
// Hash of one container's spec: a changed hash means the container is replaced. Env values read
// from configmaps/secrets are part of it (as Kubernetes does, a changed key restarts nothing by
// itself: the hash covers the references, not the values).
std::string container_hash(const v1::Container& container);

SandboxConfig make_sandbox_config(const v1::Object& pod, const PodPaths& paths, uint32_t attempt);

// The container config, with env resolved and volume mounts mapped to the pod's volume dirs. An
// error (Code::kNotFound / kInvalidArgument) is the message the container's waiting state shows
// (reason CreateContainerConfigError), e.g. `configmap "app" not found`.
common::Result<ContainerConfig> make_container_config(const v1::Object& pod,
                                                      const v1::Container& container,
                                                      const PodPaths& paths, uint32_t attempt,
                                                      const std::string& image_ref,
                                                      const ConfigLookup& lookup);

// Kubernetes' conversions: cpu shares from the request (min 2), quota from the limit over a
// 100 ms period, memory limit as is.
LinuxResources linux_resources(const v1::Resources& resources);

// The labels that identify a pod's sandboxes and containers (adoption after a restart).
std::map<std::string, std::string> pod_labels(const v1::Object& pod);

}  // namespace gantry::edge
