#include "edgecore/runtime/cri_runtime.h"

#include <grpcpp/grpcpp.h>

#include <mutex>
#include <set>
#include <type_traits>
#include <utility>

#include "cri/api.grpc.pb.h"
#include "edgecore/runtime/cri_mapping.h"

namespace gantry::edge {

namespace v1 = runtime::v1;
using common::Code;
using common::make_error;

namespace {

// containerd's CRI answers ListContainers with every container on the node; give it room.
constexpr int kMaxMessageBytes = 16 << 20;

std::shared_ptr<grpc::Channel> make_channel(const std::string& endpoint) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxMessageBytes);
  // A restarted containerd should be found again within about a second, not after gRPC's
  // default backoff of up to two minutes.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // This one is also the connect timeout (until the server's HTTP/2 SETTINGS arrive): a
  // containerd that is starting may take a while to send them; too short, and every attempt
  // times out and backs off again.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 5000);
  // Each CriRuntime gets its own connection (tests run several against different sockets).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  return grpc::CreateCustomChannel(endpoint, grpc::InsecureChannelCredentials(), args);
}

}  // namespace

// One channel and its stubs. Replaced as a whole when it seems stuck (see Impl::call); calls in
// flight keep the one they started with.
struct Connection {
  explicit Connection(const std::string& endpoint)
      : channel(make_channel(endpoint)),
        runtime(v1::RuntimeService::NewStub(channel)),
        images(v1::ImageService::NewStub(channel)),
        created(std::chrono::steady_clock::now()) {}

  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::RuntimeService::Stub> runtime;
  std::unique_ptr<v1::ImageService::Stub> images;
  std::chrono::steady_clock::time_point created;
};

struct CriRuntime::Impl {
  // After a restart of containerd, a channel that failed while it was down sometimes stays in
  // TRANSIENT_FAILURE for 4-5 s although a new channel connects at once (gRPC 1.51, unix socket;
  // resetting the backoff does not help). So a call that finds the runtime unavailable replaces
  // the connection, at most once per this interval.
  static constexpr auto kReconnectInterval = std::chrono::milliseconds(500);

  CriRuntimeOptions options;
  std::mutex mu;
  std::shared_ptr<Connection> connection;    // guarded by mu
  std::set<grpc::ClientContext*> in_flight;  // guarded by mu
  bool cancelled = false;                    // guarded by mu

  std::shared_ptr<Connection> current() {
    std::lock_guard lock(mu);
    return connection;
  }

  void replace(const std::shared_ptr<Connection>& failed) {
    std::lock_guard lock(mu);
    if (connection != failed) return;  // another call did it already
    if (std::chrono::steady_clock::now() - failed->created < kReconnectInterval) return;
    connection = std::make_shared<Connection>(options.endpoint);
  }

  // Runs one unary call with a deadline. Fails fast (no wait-for-ready) when the socket is not
  // there: the caller retries on its own schedule, and a dead runtime costs no waiting.
  template <typename Stub, typename Request, typename Response>
  Status call(grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&, Response*),
              const Request& request, Response* response, std::string_view what,
              std::chrono::milliseconds deadline) {
    auto conn = current();
    Stub* stub = nullptr;
    if constexpr (std::is_same_v<Stub, v1::RuntimeService::Stub>) {
      stub = conn->runtime.get();
    } else {
      stub = conn->images.get();
    }
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + deadline);
    {
      std::lock_guard lock(mu);
      if (cancelled) {
        return make_error(Code::kCancelled, "{}: edgecore is stopping", what);
      }
      in_flight.insert(&context);
    }
    grpc::Status status = (stub->*method)(&context, request, response);
    {
      std::lock_guard lock(mu);
      in_flight.erase(&context);
    }
    if (status.ok()) return common::ok_status();
    if (status.error_code() == grpc::StatusCode::CANCELLED) {
      return make_error(Code::kCancelled, "{}: cancelled (edgecore is stopping)", what);
    }
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) replace(conn);
    return cri::call_error(static_cast<int>(status.error_code()), status.error_message(), what,
                           options.endpoint, deadline);
  }

  template <typename Request, typename Response>
  Status rt(grpc::Status (v1::RuntimeService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                             Response*),
            const Request& request, Response* response, std::string_view what) {
    return call(method, request, response, what, options.call_timeout);
  }
};

Result<std::unique_ptr<CriRuntime>> CriRuntime::create(CriRuntimeOptions options) {
  GANTRY_ASSIGN_OR_RETURN(options.endpoint, cri::normalise_endpoint(options.endpoint));
  if (options.call_timeout.count() <= 0 || options.pull_timeout.count() <= 0) {
    return make_error(Code::kInvalidArgument, "CRI call and pull timeouts must be positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  impl->connection = std::make_shared<Connection>(impl->options.endpoint);
  return std::unique_ptr<CriRuntime>(new CriRuntime(std::move(impl)));
}

CriRuntime::CriRuntime(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CriRuntime::~CriRuntime() = default;

void CriRuntime::cancel_calls() {
  std::lock_guard lock(impl_->mu);
  impl_->cancelled = true;
  for (grpc::ClientContext* context : impl_->in_flight) context->TryCancel();
}

const std::string& CriRuntime::endpoint() const {
  return impl_->options.endpoint;
}

Result<RuntimeVersion> CriRuntime::version() {
  v1::VersionRequest request;
  request.set_version("v1");
  v1::VersionResponse response;
  GANTRY_RETURN_IF_ERROR(
      impl_->rt(&v1::RuntimeService::Stub::Version, request, &response, "Version"));
  return RuntimeVersion{response.runtime_name(), response.runtime_version(),
                        response.runtime_api_version()};
}

Result<std::vector<RuntimeCondition>> CriRuntime::conditions() {
  v1::StatusRequest request;
  v1::StatusResponse response;
  GANTRY_RETURN_IF_ERROR(
      impl_->rt(&v1::RuntimeService::Stub::Status, request, &response, "Status"));
  std::vector<RuntimeCondition> out;
  for (const auto& c : response.status().conditions()) {
    out.push_back({c.type(), c.status(), c.reason(), c.message()});
  }
  return out;
}

// --- Sandboxes -----------------------------------------------------------------------------

Result<std::string> CriRuntime::run_pod_sandbox(const SandboxConfig& config) {
  v1::RunPodSandboxRequest request;
  GANTRY_ASSIGN_OR_RETURN(*request.mutable_config(), cri::to_cri(config));
  v1::RunPodSandboxResponse response;
  GANTRY_RETURN_IF_ERROR(impl_->rt(&v1::RuntimeService::Stub::RunPodSandbox, request, &response,
                                   fmt::format("RunPodSandbox {}/{}", config.ns, config.name)));
  return response.pod_sandbox_id();
}

namespace {
// Stop and remove are idempotent (as CRI asks; containerd 1.6 still says NotFound for an object
// that is already gone): the caller wanted it gone, and it is.
Status gone_is_ok(Status status) {
  return status.code() == Code::kNotFound ? common::ok_status() : std::move(status);
}
}  // namespace

Status CriRuntime::stop_pod_sandbox(const std::string& sandbox_id) {
  v1::StopPodSandboxRequest request;
  request.set_pod_sandbox_id(sandbox_id);
  v1::StopPodSandboxResponse response;
  return gone_is_ok(impl_->rt(&v1::RuntimeService::Stub::StopPodSandbox, request, &response,
                              "StopPodSandbox " + sandbox_id));
}

Status CriRuntime::remove_pod_sandbox(const std::string& sandbox_id) {
  v1::RemovePodSandboxRequest request;
  request.set_pod_sandbox_id(sandbox_id);
  v1::RemovePodSandboxResponse response;
  return gone_is_ok(impl_->rt(&v1::RuntimeService::Stub::RemovePodSandbox, request, &response,
                              "RemovePodSandbox " + sandbox_id));
}

Result<SandboxStatus> CriRuntime::pod_sandbox_status(const std::string& sandbox_id) {
  v1::PodSandboxStatusRequest request;
  request.set_pod_sandbox_id(sandbox_id);
  v1::PodSandboxStatusResponse response;
  GANTRY_RETURN_IF_ERROR(impl_->rt(&v1::RuntimeService::Stub::PodSandboxStatus, request, &response,
                                   "PodSandboxStatus " + sandbox_id));
  return cri::from_cri(response.status());
}

Result<std::vector<SandboxInfo>> CriRuntime::list_pod_sandboxes(
    const std::map<std::string, std::string>& labels) {
  v1::ListPodSandboxRequest request;
  for (const auto& [k, v] : labels) (*request.mutable_filter()->mutable_label_selector())[k] = v;
  v1::ListPodSandboxResponse response;
  GANTRY_RETURN_IF_ERROR(
      impl_->rt(&v1::RuntimeService::Stub::ListPodSandbox, request, &response, "ListPodSandbox"));
  std::vector<SandboxInfo> out;
  out.reserve(response.items_size());
  for (const auto& item : response.items()) out.push_back(cri::from_cri(item));
  return out;
}

// --- Containers ----------------------------------------------------------------------------

Result<std::string> CriRuntime::create_container(const std::string& sandbox_id,
                                                 const ContainerConfig& config,
                                                 const SandboxConfig& sandbox) {
  v1::CreateContainerRequest request;
  request.set_pod_sandbox_id(sandbox_id);
  GANTRY_ASSIGN_OR_RETURN(*request.mutable_config(), cri::to_cri(config, sandbox));
  GANTRY_ASSIGN_OR_RETURN(*request.mutable_sandbox_config(), cri::to_cri(sandbox));
  v1::CreateContainerResponse response;
  GANTRY_RETURN_IF_ERROR(
      impl_->rt(&v1::RuntimeService::Stub::CreateContainer, request, &response,
                fmt::format("CreateContainer {}/{}/{}", sandbox.ns, sandbox.name, config.name)));
  return response.container_id();
}

Status CriRuntime::start_container(const std::string& container_id) {
  v1::StartContainerRequest request;
  request.set_container_id(container_id);
  v1::StartContainerResponse response;
  return impl_->rt(&v1::RuntimeService::Stub::StartContainer, request, &response,
                   "StartContainer " + container_id);
}

Status CriRuntime::stop_container(const std::string& container_id, std::chrono::seconds grace) {
  v1::StopContainerRequest request;
  request.set_container_id(container_id);
  request.set_timeout(std::max<int64_t>(0, grace.count()));
  v1::StopContainerResponse response;
  auto deadline =
      impl_->options.call_timeout + std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::max(grace, std::chrono::seconds(0)));
  return gone_is_ok(impl_->call(&v1::RuntimeService::Stub::StopContainer, request, &response,
                                "StopContainer " + container_id, deadline));
}

Status CriRuntime::remove_container(const std::string& container_id) {
  v1::RemoveContainerRequest request;
  request.set_container_id(container_id);
  v1::RemoveContainerResponse response;
  return gone_is_ok(impl_->rt(&v1::RuntimeService::Stub::RemoveContainer, request, &response,
                              "RemoveContainer " + container_id));
}

Result<std::vector<ContainerInfo>> CriRuntime::list_containers(const ContainerFilter& filter) {
  v1::ListContainersRequest request;
  *request.mutable_filter() = cri::to_cri(filter);
  v1::ListContainersResponse response;
  GANTRY_RETURN_IF_ERROR(
      impl_->rt(&v1::RuntimeService::Stub::ListContainers, request, &response, "ListContainers"));
  std::vector<ContainerInfo> out;
  out.reserve(response.containers_size());
  for (const auto& c : response.containers()) out.push_back(cri::from_cri(c));
  return out;
}

Result<ContainerStatus> CriRuntime::container_status(const std::string& container_id) {
  v1::ContainerStatusRequest request;
  request.set_container_id(container_id);
  v1::ContainerStatusResponse response;
  GANTRY_RETURN_IF_ERROR(impl_->rt(&v1::RuntimeService::Stub::ContainerStatus, request, &response,
                                   "ContainerStatus " + container_id));
  auto status = cri::from_cri(response.status());
  if (status.info.image_id.empty() && !status.info.image_ref.empty()) {
    // A repo digest: its image ID is one ImageStatus away. Missing (removed image) leaves it empty.
    auto image = image_status(status.info.image_ref);
    if (image.ok() && image->has_value()) status.info.image_id = (*image)->id;
  }
  return status;
}

Result<std::string> CriRuntime::streaming_url(const StreamingRequest& r) {
  if (r.attach) {
    v1::AttachRequest request;
    request.set_container_id(r.container_id);
    request.set_stdin(r.stdin);
    request.set_tty(r.tty);
    request.set_stdout(r.stdout);
    request.set_stderr(r.stderr && !r.tty);
    v1::AttachResponse response;
    GANTRY_RETURN_IF_ERROR(impl_->rt(&v1::RuntimeService::Stub::Attach, request, &response,
                                     "Attach " + r.container_id));
    return response.url();
  }
  v1::ExecRequest request;
  request.set_container_id(r.container_id);
  for (const auto& arg : r.command) request.add_cmd(arg);
  request.set_stdin(r.stdin);
  request.set_tty(r.tty);
  request.set_stdout(r.stdout);
  request.set_stderr(r.stderr && !r.tty);
  v1::ExecResponse response;
  GANTRY_RETURN_IF_ERROR(
      impl_->rt(&v1::RuntimeService::Stub::Exec, request, &response, "Exec " + r.container_id));
  return response.url();
}

// --- Images --------------------------------------------------------------------------------

Result<std::optional<ImageInfo>> CriRuntime::image_status(const std::string& image) {
  v1::ImageStatusRequest request;
  request.mutable_image()->set_image(image);
  v1::ImageStatusResponse response;
  GANTRY_RETURN_IF_ERROR(impl_->call(&v1::ImageService::Stub::ImageStatus, request, &response,
                                     "ImageStatus " + image, impl_->options.call_timeout));
  if (!response.has_image()) return std::optional<ImageInfo>();
  return std::optional<ImageInfo>(cri::from_cri(response.image()));
}

Result<std::string> CriRuntime::pull_image(const std::string& image) {
  v1::PullImageRequest request;
  request.mutable_image()->set_image(image);
  v1::PullImageResponse response;
  GANTRY_RETURN_IF_ERROR(impl_->call(&v1::ImageService::Stub::PullImage, request, &response,
                                     "PullImage " + image, impl_->options.pull_timeout));
  return response.image_ref();
}

Status CriRuntime::remove_image(const std::string& image) {
  v1::RemoveImageRequest request;
  request.mutable_image()->set_image(image);
  v1::RemoveImageResponse response;
  return impl_->call(&v1::ImageService::Stub::RemoveImage, request, &response,
                     "RemoveImage " + image, impl_->options.call_timeout);
}

Result<std::vector<FilesystemUsage>> CriRuntime::image_fs_info() {
  v1::ImageFsInfoRequest request;
  v1::ImageFsInfoResponse response;
  GANTRY_RETURN_IF_ERROR(impl_->call(&v1::ImageService::Stub::ImageFsInfo, request, &response,
                                     "ImageFsInfo", impl_->options.call_timeout));
  std::vector<FilesystemUsage> out;
  for (const auto& fs : response.image_filesystems()) out.push_back(cri::from_cri(fs));
  return out;
}

}  // namespace gantry::edge
