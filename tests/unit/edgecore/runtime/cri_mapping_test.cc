#include "edgecore/runtime/cri_mapping.h"

#include <catch2/catch.hpp>

namespace gantry::edge {
namespace {

namespace v1 = runtime::v1;
using common::Code;

SandboxConfig web_sandbox() {
  SandboxConfig s;
  s.name = "web";
  s.ns = "shop";
  s.uid = "u-1";
  s.attempt = 2;
  s.hostname = "web";
  s.log_directory = "/var/log/pods/shop_web_u-1";
  s.ports = {{8080, 30080, "TCP", ""}, {53, 5353, "udp", "127.0.0.1"}};
  s.labels = {{kLabelPodName, "web"}, {kLabelManagedBy, "edgecore"}};
  s.annotations = {{"a", "b"}};
  s.cgroup_parent = "/gantry/podu-1";
  return s;
}

TEST_CASE("a sandbox config maps to CRI with metadata, ports, labels, cgroup and pod network") {
  auto cri = cri::to_cri(web_sandbox());
  REQUIRE(cri.ok());
  CHECK(cri->metadata().name() == "web");
  CHECK(cri->metadata().namespace_() == "shop");
  CHECK(cri->metadata().uid() == "u-1");
  CHECK(cri->metadata().attempt() == 2);
  CHECK(cri->hostname() == "web");
  CHECK(cri->log_directory() == "/var/log/pods/shop_web_u-1");
  REQUIRE(cri->port_mappings_size() == 2);
  CHECK(cri->port_mappings(0).protocol() == v1::TCP);
  CHECK(cri->port_mappings(0).container_port() == 8080);
  CHECK(cri->port_mappings(0).host_port() == 30080);
  CHECK(cri->port_mappings(1).protocol() == v1::UDP);
  CHECK(cri->port_mappings(1).host_ip() == "127.0.0.1");
  CHECK(cri->labels().at(kLabelManagedBy) == "edgecore");
  CHECK(cri->annotations().at("a") == "b");
  CHECK(cri->linux().cgroup_parent() == "/gantry/podu-1");
  const auto& ns = cri->linux().security_context().namespace_options();
  CHECK(ns.network() == v1::POD);
  CHECK(ns.pid() == v1::CONTAINER);
  CHECK(ns.ipc() == v1::POD);
}

TEST_CASE("a host-network sandbox uses the node's network namespace and sets no hostname") {
  auto config = web_sandbox();
  config.host_network = true;
  auto cri = cri::to_cri(config);
  REQUIRE(cri.ok());
  CHECK(cri->linux().security_context().namespace_options().network() == v1::NODE);
  CHECK(cri->hostname().empty());

  ContainerConfig c;
  c.name = "app";
  c.image = "busybox";
  auto container = cri::to_cri(c, config);
  REQUIRE(container.ok());
  CHECK(container->linux().security_context().namespace_options().network() == v1::NODE);
}

TEST_CASE("an unknown port protocol is an invalid argument") {
  auto config = web_sandbox();
  config.ports[0].protocol = "QUIC";
  auto cri = cri::to_cri(config);
  REQUIRE_FALSE(cri.ok());
  CHECK(cri.status().code() == Code::kInvalidArgument);
  CHECK_THAT(cri.status().message(), Catch::Contains("QUIC"));
}

TEST_CASE("a container config maps command, env order, mounts, resources and log path") {
  ContainerConfig c;
  c.name = "app";
  c.attempt = 3;
  c.image = "gantry.local/busybox:1";
  c.command = {"sh", "-c"};
  c.args = {"echo hi"};
  c.working_dir = "/work";
  c.envs = {{"Z", "1"}, {"A", "2"}};
  c.mounts = {{"/data", "/host/data", false}, {"/etc/cfg", "/host/cfg", true}};
  c.log_path = "app/3.log";
  c.tty = true;
  c.stdin_open = true;
  c.resources = {100000, 50000, 512, 64 << 20};
  c.labels = {{kLabelContainerName, "app"}};
  c.annotations = {{kAnnotationSpecHash, "abc"}};
  auto cri = cri::to_cri(c, web_sandbox());
  REQUIRE(cri.ok());
  CHECK(cri->metadata().name() == "app");
  CHECK(cri->metadata().attempt() == 3);
  CHECK(cri->image().image() == "gantry.local/busybox:1");
  CHECK(std::vector<std::string>(cri->command().begin(), cri->command().end()) == c.command);
  CHECK(std::vector<std::string>(cri->args().begin(), cri->args().end()) == c.args);
  CHECK(cri->working_dir() == "/work");
  REQUIRE(cri->envs_size() == 2);
  CHECK(cri->envs(0).key() == "Z");  // order kept: later entries may refer to earlier ones
  CHECK(cri->envs(1).value() == "2");
  REQUIRE(cri->mounts_size() == 2);
  CHECK(cri->mounts(0).container_path() == "/data");
  CHECK(cri->mounts(0).host_path() == "/host/data");
  CHECK_FALSE(cri->mounts(0).readonly());
  CHECK(cri->mounts(1).readonly());
  CHECK(cri->log_path() == "app/3.log");
  CHECK(cri->tty());
  CHECK(cri->stdin());
  const auto& r = cri->linux().resources();
  CHECK(r.cpu_period() == 100000);
  CHECK(r.cpu_quota() == 50000);
  CHECK(r.cpu_shares() == 512);
  CHECK(r.memory_limit_in_bytes() == 64 << 20);
  CHECK(cri->labels().at(kLabelContainerName) == "app");
  CHECK(cri->annotations().at(kAnnotationSpecHash) == "abc");
  CHECK(cri->linux().security_context().namespace_options().network() == v1::POD);
}

TEST_CASE("a container without an image is refused before any call") {
  ContainerConfig c;
  c.name = "app";
  auto cri = cri::to_cri(c, web_sandbox());
  REQUIRE_FALSE(cri.ok());
  CHECK(cri.status().code() == Code::kInvalidArgument);
}

TEST_CASE("CRI statuses map back to our types") {
  v1::ContainerStatus s;
  s.set_id("c1");
  s.mutable_metadata()->set_name("app");
  s.mutable_metadata()->set_attempt(1);
  s.set_state(v1::CONTAINER_EXITED);
  s.set_created_at(10);
  s.set_started_at(20);
  s.set_finished_at(30);
  s.set_exit_code(7);
  s.set_reason("Error");
  s.set_message("boom");
  s.set_log_path("/var/log/pods/x/app/1.log");
  s.mutable_image()->set_image("busybox");
  s.set_image_ref("sha256:abc");
  (*s.mutable_labels())["k"] = "v";
  auto out = cri::from_cri(s);
  CHECK(out.info.id == "c1");
  CHECK(out.info.name == "app");
  CHECK(out.info.attempt == 1);
  CHECK(out.info.state == ContainerState::kExited);
  CHECK(out.info.image == "busybox");
  CHECK(out.info.image_ref == "sha256:abc");
  CHECK(out.info.labels.at("k") == "v");
  CHECK(out.started_at_ns == 20);
  CHECK(out.finished_at_ns == 30);
  CHECK(out.exit_code == 7);
  CHECK(out.reason == "Error");
  CHECK(out.message == "boom");
  CHECK(out.log_path == "/var/log/pods/x/app/1.log");

  v1::PodSandboxStatus p;
  p.set_id("s1");
  p.mutable_metadata()->set_name("web");
  p.mutable_metadata()->set_namespace_("shop");
  p.set_state(v1::SANDBOX_NOTREADY);
  p.mutable_network()->set_ip("10.0.0.5");
  auto sandbox = cri::from_cri(p);
  CHECK(sandbox.info.ns == "shop");
  CHECK(sandbox.info.state == SandboxState::kNotReady);
  CHECK(sandbox.ip == "10.0.0.5");

  CHECK(cri::from_cri(v1::CONTAINER_CREATED) == ContainerState::kCreated);
  CHECK(cri::from_cri(v1::CONTAINER_RUNNING) == ContainerState::kRunning);
  CHECK(cri::from_cri(v1::CONTAINER_UNKNOWN) == ContainerState::kUnknown);
}

TEST_CASE("gRPC failures map to our codes with the endpoint and the call in the message") {
  constexpr std::string_view kEndpoint = "unix:///run/containerd/containerd.sock";
  auto unavailable =
      cri::call_error(14, "connection refused", "Version", kEndpoint, std::chrono::seconds(10));
  CHECK(unavailable.code() == Code::kUnavailable);
  CHECK_THAT(unavailable.message(), Catch::Contains(std::string(kEndpoint)));
  CHECK_THAT(unavailable.message(), Catch::Contains("not answering"));
  CHECK_THAT(unavailable.message(), Catch::Contains("connection refused"));

  auto deadline = cri::call_error(4, "Deadline Exceeded", "RunPodSandbox shop/web", kEndpoint,
                                  std::chrono::seconds(10));
  CHECK(deadline.code() == Code::kDeadlineExceeded);
  CHECK_THAT(deadline.message(), Catch::Contains("RunPodSandbox shop/web"));
  CHECK_THAT(deadline.message(), Catch::Contains("10000 ms"));

  auto not_found = cri::call_error(5, "container \"x\" not found", "ContainerStatus x", kEndpoint,
                                   std::chrono::seconds(10));
  CHECK(not_found.code() == Code::kNotFound);
  CHECK(not_found.message() == "ContainerStatus x: container \"x\" not found");

  CHECK(cri::call_error(2, "runc failed", "StartContainer c", kEndpoint, {}).code() ==
        Code::kInternal);
  CHECK(cri::call_error(12, "unknown service runtime.v1.RuntimeService", "Version", kEndpoint, {})
            .code() == Code::kUnimplemented);
  CHECK(cri::call_error(3, "bad", "x", kEndpoint, {}).code() == Code::kInvalidArgument);
  CHECK(cri::call_error(9, "bad", "x", kEndpoint, {}).code() == Code::kFailedPrecondition);
}

TEST_CASE("endpoints are unix sockets given as unix:// URLs or absolute paths") {
  CHECK(*cri::normalise_endpoint("unix:///run/containerd/containerd.sock") ==
        "unix:///run/containerd/containerd.sock");
  CHECK(*cri::normalise_endpoint("/tmp/x/containerd.sock") == "unix:///tmp/x/containerd.sock");
  CHECK(cri::normalise_endpoint("tcp://127.0.0.1:1234").status().code() == Code::kInvalidArgument);
  CHECK(cri::normalise_endpoint("unix://relative.sock").status().code() == Code::kInvalidArgument);
  CHECK(cri::normalise_endpoint("").status().code() == Code::kInvalidArgument);
}

}  // namespace
}  // namespace gantry::edge
