// CriRuntime against sockets where no runtime answers: every call comes back with an error
// within its deadline, never a hang or a crash. (Against a real containerd:
// tests/integration/runtime.)
#include "edgecore/runtime/cri_runtime.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

namespace gantry::edge {
namespace {

using common::Code;
using namespace std::chrono_literals;

std::unique_ptr<CriRuntime> runtime_at(const std::string& endpoint,
                                       std::chrono::milliseconds timeout) {
  CriRuntimeOptions options;
  options.endpoint = endpoint;
  options.call_timeout = timeout;
  options.pull_timeout = timeout;
  auto rt = CriRuntime::create(options);
  REQUIRE(rt.ok());
  return std::move(rt).value();
}

// A unix socket that accepts connections (the kernel's backlog) but never speaks.
class SilentSocket {
 public:
  explicit SilentSocket(const std::filesystem::path& path) {
    fd_ = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path.c_str());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
  }
  ~SilentSocket() { ::close(fd_); }

 private:
  int fd_ = -1;
};

TEST_CASE("an endpoint that is not a unix socket is refused at creation") {
  CriRuntimeOptions options;
  options.endpoint = "tcp://127.0.0.1:10010";
  auto rt = CriRuntime::create(options);
  REQUIRE_FALSE(rt.ok());
  CHECK(rt.status().code() == Code::kInvalidArgument);
  CHECK_THAT(rt.status().message(), Catch::Contains("tcp://127.0.0.1:10010"));
}

TEST_CASE("every call against a socket nobody serves is Unavailable at once, naming the endpoint") {
  test::TempDir dir;
  auto endpoint = "unix://" + (dir / "containerd.sock").string();
  auto rt = runtime_at(endpoint, 5s);
  CHECK(rt->endpoint() == endpoint);

  auto start = std::chrono::steady_clock::now();
  auto version = rt->version();
  REQUIRE_FALSE(version.ok());
  CHECK(version.status().code() == Code::kUnavailable);
  CHECK_THAT(version.status().message(), Catch::Contains(endpoint));
  CHECK_THAT(version.status().message(), Catch::Contains("not answering"));

  SandboxConfig sandbox;
  sandbox.name = "web";
  sandbox.ns = "default";
  ContainerConfig container;
  container.name = "app";
  container.image = "busybox";
  CHECK(rt->conditions().status().code() == Code::kUnavailable);
  CHECK(rt->run_pod_sandbox(sandbox).status().code() == Code::kUnavailable);
  CHECK(rt->stop_pod_sandbox("s").code() == Code::kUnavailable);
  CHECK(rt->remove_pod_sandbox("s").code() == Code::kUnavailable);
  CHECK(rt->pod_sandbox_status("s").status().code() == Code::kUnavailable);
  CHECK(rt->list_pod_sandboxes().status().code() == Code::kUnavailable);
  CHECK(rt->create_container("s", container, sandbox).status().code() == Code::kUnavailable);
  CHECK(rt->start_container("c").code() == Code::kUnavailable);
  CHECK(rt->stop_container("c", 1s).code() == Code::kUnavailable);
  CHECK(rt->remove_container("c").code() == Code::kUnavailable);
  CHECK(rt->list_containers().status().code() == Code::kUnavailable);
  CHECK(rt->container_status("c").status().code() == Code::kUnavailable);
  CHECK(rt->image_status("busybox").status().code() == Code::kUnavailable);
  CHECK(rt->pull_image("busybox").status().code() == Code::kUnavailable);
  CHECK(rt->remove_image("busybox").code() == Code::kUnavailable);
  CHECK(rt->image_fs_info().status().code() == Code::kUnavailable);
  // 17 calls, none of which waited for its 5 s deadline (generous bound for a loaded machine).
  CHECK(std::chrono::steady_clock::now() - start < 30s);
}

TEST_CASE("a socket that accepts but never speaks HTTP/2 fails the call instead of hanging") {
  test::TempDir dir;
  SilentSocket silent(dir / "stuck.sock");
  auto rt = runtime_at("unix://" + (dir / "stuck.sock").string(), 500ms);
  auto start = std::chrono::steady_clock::now();
  auto version = rt->version();
  auto elapsed = std::chrono::steady_clock::now() - start;
  REQUIRE_FALSE(version.ok());
  INFO(version.status().to_string());
  // No HTTP/2 settings ever come back: gRPC gives up on the connection (or at the deadline).
  // A runtime that speaks but is stuck is in tests/integration/runtime (SIGSTOPped containerd).
  CHECK((version.status().code() == Code::kDeadlineExceeded ||
         version.status().code() == Code::kUnavailable));
  CHECK(elapsed < 20s);
}

}  // namespace
}  // namespace gantry::edge
