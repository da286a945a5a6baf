// Pure translation between our runtime types and CRI runtime.v1 messages, and from gRPC status
// codes to ours. No I/O: unit-tested without a runtime. Internal to edgecore/runtime.
#pragma once

#include <chrono>
#include <string_view>

#include "cri/api.pb.h"
#include "edgecore/runtime/runtime.h"

namespace gantry::edge::cri {

// "unix:///run/x.sock" or "/run/x.sock" -> "unix:///run/x.sock"; anything else is invalid.
Result<std::string> normalise_endpoint(std::string_view endpoint);

Result<runtime::v1::PodSandboxConfig> to_cri(const SandboxConfig& config);
Result<runtime::v1::ContainerConfig> to_cri(const ContainerConfig& config,
                                            const SandboxConfig& sandbox);
runtime::v1::ContainerFilter to_cri(const ContainerFilter& filter);

SandboxInfo from_cri(const runtime::v1::PodSandbox& sandbox);
SandboxStatus from_cri(const runtime::v1::PodSandboxStatus& status);
ContainerInfo from_cri(const runtime::v1::Container& container);
ContainerStatus from_cri(const runtime::v1::ContainerStatus& status);
ImageInfo from_cri(const runtime::v1::Image& image);
FilesystemUsage from_cri(const runtime::v1::FilesystemUsage& usage);
ContainerState from_cri(runtime::v1::ContainerState state);

// A failed call as our Status. `grpc_code` is a grpc::StatusCode value; `call` names the RPC and
// its object ("RunPodSandbox default/web"); `deadline` is the one the call had.
Status call_error(int grpc_code, std::string_view grpc_message, std::string_view call,
                  std::string_view endpoint, std::chrono::milliseconds deadline);

}  // namespace gantry::edge::cri
