#include "edgecore/runtime/cri_mapping.h"

#include <algorithm>
#include <cctype>

namespace gantry::edge::cri {

namespace v1 = runtime::v1;
using common::Code;
using common::make_error;

namespace {

template <typename ProtoMap>
std::map<std::string, std::string> to_map(const ProtoMap& in) {
  return {in.begin(), in.end()};
}

template <typename ProtoMap>
void fill(ProtoMap* out, const std::map<std::string, std::string>& in) {
  for (const auto& [k, v] : in) (*out)[k] = v;
}

Result<v1::Protocol> to_protocol(std::string_view protocol) {
  std::string upper(protocol);
  std::transform(upper.begin(), upper.end(), upper.begin(),
                 [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (upper.empty() || upper == "TCP") return v1::TCP;
  if (upper == "UDP") return v1::UDP;
  if (upper == "SCTP") return v1::SCTP;
  return make_error(Code::kInvalidArgument, "port protocol {:?} is not TCP, UDP or SCTP",
                    std::string(protocol));
}

// kubelet's defaults for v1 pods: one PID namespace per container, IPC shared in the pod, the
// pod's network or the node's.
void set_namespaces(v1::NamespaceOption* ns, bool host_network) {
  ns->set_network(host_network ? v1::NODE : v1::POD);
  ns->set_pid(v1::CONTAINER);
  ns->set_ipc(v1::POD);
}

// CRI's image_id is newer than containerd 1.6, which puts the ID (or a repo digest) in image_ref.
std::string image_id_of(const std::string& image_id, const std::string& image_ref) {
  if (!image_id.empty()) return image_id;
  if (image_ref.rfind("sha256:", 0) == 0) return image_ref;
  return {};  // a repo digest: CriRuntime resolves it
}

}  // namespace

Result<std::string> normalise_endpoint(std::string_view endpoint) {
  constexpr std::string_view kUnix = "unix://";
  std::string_view path = endpoint;
  if (path.substr(0, kUnix.size()) == kUnix) path.remove_prefix(kUnix.size());
  if (path.empty() || path.front() != '/') {
    return make_error(Code::kInvalidArgument,
                      "container runtime endpoint {:?} is not unix:///absolute/path.sock",
                      std::string(endpoint));
  }
  return std::string(kUnix) + std::string(path);
}

Result<v1::PodSandboxConfig> to_cri(const SandboxConfig& config) {
  v1::PodSandboxConfig out;
  auto* meta = out.mutable_metadata();
  meta->set_name(config.name);
  meta->set_namespace_(config.ns);
  meta->set_uid(config.uid);
  meta->set_attempt(config.attempt);
  // containerd refuses a hostname for a pod in the node's network namespace.
  if (!config.host_network) out.set_hostname(config.hostname);
  out.set_log_directory(config.log_directory);
  for (const auto& port : config.ports) {
    GANTRY_ASSIGN_OR_RETURN(auto protocol, to_protocol(port.protocol));
    auto* p = out.add_port_mappings();
    p->set_protocol(protocol);
    p->set_container_port(port.container_port);
    p->set_host_port(port.host_port);
    p->set_host_ip(port.host_ip);
  }
  fill(out.mutable_labels(), config.labels);
  fill(out.mutable_annotations(), config.annotations);
  auto* lx = out.mutable_linux();
  lx->set_cgroup_parent(config.cgroup_parent);
  set_namespaces(lx->mutable_security_context()->mutable_namespace_options(), config.host_network);
  return out;
}

Result<v1::ContainerConfig> to_cri(const ContainerConfig& config, const SandboxConfig& sandbox) {
  if (config.image.empty()) {
    return make_error(Code::kInvalidArgument, "container {:?} has no image", config.name);
  }
  v1::ContainerConfig out;
  out.mutable_metadata()->set_name(config.name);
  out.mutable_metadata()->set_attempt(config.attempt);
  out.mutable_image()->set_image(config.image);
  for (const auto& c : config.command) out.add_command(c);
  for (const auto& a : config.args) out.add_args(a);
  out.set_working_dir(config.working_dir);
  for (const auto& [k, v] : config.envs) {
    auto* kv = out.add_envs();
    kv->set_key(k);
    kv->set_value(v);
  }
  for (const auto& m : config.mounts) {
    auto* mount = out.add_mounts();
    mount->set_container_path(m.container_path);
    mount->set_host_path(m.host_path);
    mount->set_readonly(m.read_only);
  }
  fill(out.mutable_labels(), config.labels);
  fill(out.mutable_annotations(), config.annotations);
  out.set_log_path(config.log_path);
  out.set_stdin(config.stdin_open);
  out.set_tty(config.tty);
  auto* lx = out.mutable_linux();
  auto* res = lx->mutable_resources();
  res->set_cpu_period(config.resources.cpu_period);
  res->set_cpu_quota(config.resources.cpu_quota);
  res->set_cpu_shares(config.resources.cpu_shares);
  res->set_memory_limit_in_bytes(config.resources.memory_limit_bytes);
  set_namespaces(lx->mutable_security_context()->mutable_namespace_options(), sandbox.host_network);
  return out;
}

v1::ContainerFilter to_cri(const ContainerFilter& filter) {
  v1::ContainerFilter out;
  out.set_pod_sandbox_id(filter.sandbox_id);
  fill(out.mutable_label_selector(), filter.labels);
  return out;
}

SandboxInfo from_cri(const v1::PodSandbox& sandbox) {
  SandboxInfo out;
  out.id = sandbox.id();
  out.name = sandbox.metadata().name();
  out.ns = sandbox.metadata().namespace_();
  out.uid = sandbox.metadata().uid();
  out.attempt = sandbox.metadata().attempt();
  out.state = sandbox.state() == v1::SANDBOX_READY ? SandboxState::kReady : SandboxState::kNotReady;
  out.created_at_ns = sandbox.created_at();
  out.labels = to_map(sandbox.labels());
  out.annotations = to_map(sandbox.annotations());
  return out;
}

SandboxStatus from_cri(const v1::PodSandboxStatus& status) {
  SandboxStatus out;
  out.info.id = status.id();
  out.info.name = status.metadata().name();
  out.info.ns = status.metadata().namespace_();
  out.info.uid = status.metadata().uid();
  out.info.attempt = status.metadata().attempt();
  out.info.state =
      status.state() == v1::SANDBOX_READY ? SandboxState::kReady : SandboxState::kNotReady;
  out.info.created_at_ns = status.created_at();
  out.info.labels = to_map(status.labels());
  out.info.annotations = to_map(status.annotations());
  out.ip = status.network().ip();
  return out;
}

ContainerState from_cri(v1::ContainerState state) {
  switch (state) {
    case v1::CONTAINER_CREATED:
      return ContainerState::kCreated;
    case v1::CONTAINER_RUNNING:
      return ContainerState::kRunning;
    case v1::CONTAINER_EXITED:
      return ContainerState::kExited;
    default:
      return ContainerState::kUnknown;
  }
}

ContainerInfo from_cri(const v1::Container& container) {
  ContainerInfo out;
  out.id = container.id();
  out.sandbox_id = container.pod_sandbox_id();
  out.name = container.metadata().name();
  out.attempt = container.metadata().attempt();
  out.image = container.image().image();
  out.image_ref = container.image_ref();
  out.image_id = image_id_of(container.image_id(), container.image_ref());
  out.state = from_cri(container.state());
  out.created_at_ns = container.created_at();
  out.labels = to_map(container.labels());
  out.annotations = to_map(container.annotations());
  return out;
}

ContainerStatus from_cri(const v1::ContainerStatus& status) {
  ContainerStatus out;
  out.info.id = status.id();
  out.info.name = status.metadata().name();
  out.info.attempt = status.metadata().attempt();
  out.info.image = status.image().image();
  out.info.image_ref = status.image_ref();
  out.info.image_id = image_id_of(status.image_id(), status.image_ref());
  out.info.state = from_cri(status.state());
  out.info.created_at_ns = status.created_at();
  out.info.labels = to_map(status.labels());
  out.info.annotations = to_map(status.annotations());
  // CRI's ContainerStatus has no sandbox ID; containerd's (and kubelet's) labels carry it in
  // ListContainers only, so the caller fills it from there when it needs it.
  out.started_at_ns = status.started_at();
  out.finished_at_ns = status.finished_at();
  out.exit_code = status.exit_code();
  out.reason = status.reason();
  out.message = status.message();
  out.log_path = status.log_path();
  return out;
}

ImageInfo from_cri(const v1::Image& image) {
  ImageInfo out;
  out.id = image.id();
  out.repo_tags.assign(image.repo_tags().begin(), image.repo_tags().end());
  out.repo_digests.assign(image.repo_digests().begin(), image.repo_digests().end());
  out.size_bytes = image.size();
  return out;
}

FilesystemUsage from_cri(const v1::FilesystemUsage& usage) {
  return FilesystemUsage{usage.fs_id().mountpoint(), usage.used_bytes().value()};
}

Status call_error(int grpc_code, std::string_view grpc_message, std::string_view call,
                  std::string_view endpoint, std::chrono::milliseconds deadline) {
  // grpc::StatusCode values (stable, from the gRPC spec).
  enum : int {
    kOk = 0,
    kCancelled = 1,
    kUnknown = 2,
    kInvalidArgument = 3,
    kDeadlineExceeded = 4,
    kNotFound = 5,
    kAlreadyExists = 6,
    kPermissionDenied = 7,
    kResourceExhausted = 8,
    kFailedPrecondition = 9,
    kAborted = 10,
    kOutOfRange = 11,
    kUnimplemented = 12,
    kInternal = 13,
    kUnavailable = 14,
    kDataLoss = 15,
    kUnauthenticated = 16,
  };
  std::string message(grpc_message);
  switch (grpc_code) {
    case kUnavailable:
      return make_error(Code::kUnavailable, "container runtime at {} is not answering ({}): {}",
                        endpoint, call, message);
    case kDeadlineExceeded:
      return make_error(Code::kDeadlineExceeded,
                        "container runtime at {} did not answer {} within {} ms", endpoint, call,
                        deadline.count());
    case kUnimplemented:
      return make_error(Code::kUnimplemented,
                        "container runtime at {} does not implement {} (CRI runtime.v1 needs "
                        "containerd 1.6 or later): {}",
                        endpoint, call, message);
    default:
      break;
  }
  Code code = Code::kInternal;
  switch (grpc_code) {
    case kOk:
      return common::ok_status();
    case kCancelled:
      code = Code::kCancelled;
      break;
    case kInvalidArgument:
      code = Code::kInvalidArgument;
      break;
    case kNotFound:
      code = Code::kNotFound;
      break;
    case kAlreadyExists:
      code = Code::kAlreadyExists;
      break;
    case kPermissionDenied:
      code = Code::kPermissionDenied;
      break;
    case kResourceExhausted:
      code = Code::kResourceExhausted;
      break;
    case kFailedPrecondition:
      code = Code::kFailedPrecondition;
      break;
    case kAborted:
      code = Code::kAborted;
      break;
    case kOutOfRange:
      code = Code::kOutOfRange;
      break;
    case kDataLoss:
      code = Code::kDataLoss;
      break;
    case kUnauthenticated:
      code = Code::kUnauthenticated;
      break;
    default:
      code = Code::kInternal;
      break;  // kUnknown, kInternal: the runtime's own failure
  }
  return make_error(code, "{}: {}", call, message);
}

}  // namespace gantry::edge::cri
