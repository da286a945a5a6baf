// CriRuntime against a real containerd started by tools/containerd.sh: the pod and container
// lifecycle, logs, images from a loopback registry, and what a dead, stuck or restarted
// containerd looks like to the client.
#include <fmt/format.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <fstream>
#include <future>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "edgecore/exec/exec_streams.h"
#include "edgecore/exec/spdy_exec.h"
#include "edgecore/runtime/cri_runtime.h"
#include "edgecore/runtime/registry_mirrors.h"
#include "tests/support/containerd_fixture.h"
#include "tests/support/test_support.h"

namespace gantry::edge {
namespace {

using common::Code;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kCgroupRoot = "/gantry-test";

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// SIGSTOP, then waits until every thread of the process is stopped: the stop is asynchronous, and
// on a loaded machine a thread may still answer a call for a while after kill() returned.
void stop_process(int pid) {
  REQUIRE(::kill(pid, SIGSTOP) == 0);
  REQUIRE(test::eventually([&] {
    std::error_code ec;
    for (const auto& task : fs::directory_iterator(fmt::format("/proc/{}/task", pid), ec)) {
      std::string stat = read_file(task.path() / "stat");
      auto close = stat.rfind(')');
      if (close == std::string::npos || close + 2 >= stat.size()) return false;
      if (stat[close + 2] != 'T' && stat[close + 2] != 't') return false;
    }
    return !ec;
  }));
}

std::string unique_suffix() {
  static std::atomic<int> counter{0};
  std::random_device rd;
  return std::to_string(rd() % 100000) + "-" + std::to_string(counter++);
}

template <typename F>
auto timed(const char* what, F&& f) {
  auto start = std::chrono::steady_clock::now();
  auto result = f();
  auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start);
  std::cout << "  timing: " << what << " " << ms.count() << " ms\n";
  return result;
}

class RuntimeFixture {
 public:
  RuntimeFixture() : containerd_({kCgroupRoot}) {
    CriRuntimeOptions options;
    options.endpoint = containerd_.endpoint();
    options.call_timeout = 30s;  // a loaded 2-core machine
    auto rt = CriRuntime::create(options);
    REQUIRE(rt.ok());
    rt_ = std::move(rt).value();
    // The CRI plugin says ready once it has loaded the CNI config.
    REQUIRE(test::eventually([&] { return ready(); }, 60s, 50ms));
  }

  bool ready() {
    auto conditions = rt_->conditions();
    if (!conditions.ok()) return false;
    int ready = 0;
    for (const auto& c : *conditions) {
      if ((c.type == kConditionRuntimeReady || c.type == kConditionNetworkReady) && c.status) {
        ++ready;
      }
    }
    return ready == 2;
  }

  SandboxConfig sandbox_config(const std::string& name) {
    SandboxConfig s;
    s.name = name;
    s.ns = "runtime-test";
    s.uid = name + "-" + unique_suffix();
    s.hostname = name;
    s.log_directory = (logs_ / s.uid).string();
    fs::create_directories(s.log_directory);
    s.cgroup_parent = std::string(kCgroupRoot) + "/pod" + s.uid;
    s.labels = {{kLabelPodName, s.name},
                {kLabelPodNamespace, s.ns},
                {kLabelPodUid, s.uid},
                {kLabelManagedBy, "edgecore"}};
    s.annotations = {{"gantry.io/test", "runtime"}};
    return s;
  }

  ContainerConfig container_config(const std::string& name, std::string script) {
    ContainerConfig c;
    c.name = name;
    c.image = test::kBusyboxImage;
    c.command = {"/bin/sh", "-c"};
    c.args = {std::move(script)};
    c.log_path = name + "/0.log";
    c.labels = {{kLabelContainerName, name}};
    c.annotations = {{kAnnotationSpecHash, "h-" + name}};
    return c;
  }

  std::string run_sandbox(const SandboxConfig& config) {
    auto id = rt_->run_pod_sandbox(config);
    INFO(id.status().to_string());
    REQUIRE(id.ok());
    return *id;
  }

  std::string start(const std::string& sandbox_id, const SandboxConfig& sandbox,
                    const ContainerConfig& config) {
    auto id = rt_->create_container(sandbox_id, config, sandbox);
    INFO(id.status().to_string());
    REQUIRE(id.ok());
    auto started = rt_->start_container(*id);
    INFO(started.to_string());
    REQUIRE(started.ok());
    return *id;
  }

  bool in_state(const std::string& id, ContainerState state) {
    auto s = rt_->container_status(id);
    return s.ok() && s->info.state == state;
  }

  test::Containerd containerd_;
  test::TempDir logs_;
  test::TempDir data_;
  std::unique_ptr<CriRuntime> rt_;
};

TEST_CASE_METHOD(RuntimeFixture, "the runtime reports containerd's version, CRI v1 and readiness",
                 "[containerd]") {
  auto version = rt_->version();
  INFO(version.status().to_string());
  REQUIRE(version.ok());
  CHECK(version->runtime_name == "containerd");
  CHECK_FALSE(version->runtime_version.empty());
  CHECK(version->api_version == "v1");
  CHECK(ready());

  auto fs_info = rt_->image_fs_info();
  REQUIRE(fs_info.ok());
  REQUIRE_FALSE(fs_info->empty());
  // (used_bytes is sampled by containerd in the background: 0 right after start.)
  CHECK_THAT(fs_info->front().mountpoint, Catch::Contains(containerd_.dir().string()));
}

TEST_CASE_METHOD(RuntimeFixture,
                 "a container runs its command with env and mount, then exits with its code and "
                 "its output is in the CRI log",
                 "[containerd]") {
  auto sandbox = sandbox_config("lifecycle");
  auto sandbox_id = timed("RunPodSandbox", [&] { return run_sandbox(sandbox); });

  auto status = rt_->pod_sandbox_status(sandbox_id);
  REQUIRE(status.ok());
  CHECK(status->info.state == SandboxState::kReady);
  CHECK(status->info.name == "lifecycle");
  CHECK(status->info.uid == sandbox.uid);
  CHECK(status->info.labels.at(kLabelManagedBy) == "edgecore");
  CHECK(status->info.annotations.at("gantry.io/test") == "runtime");
  CHECK_THAT(status->ip, Catch::StartsWith("10.213."));  // tools/containerd.sh's CNI subnet

  std::ofstream(data_ / "in.txt") << "from the host\n";
  auto config = container_config(
      "app",
      "echo \"hello $GREETING from $(hostname)\"; cat /data/in.txt; echo written > /data/out.txt; "
      "while [ ! -f /data/go ]; do sleep 0.05; done; echo bye >&2; exit 7");
  config.envs = {{"GREETING", "world"}};
  config.mounts = {{"/data", data_.str(), false}};
  config.working_dir = "/tmp";

  auto container_id = timed("CreateContainer", [&] {
    auto id = rt_->create_container(sandbox_id, config, sandbox);
    INFO(id.status().to_string());
    REQUIRE(id.ok());
    return *id;
  });
  CHECK(in_state(container_id, ContainerState::kCreated));
  auto started = timed("StartContainer", [&] { return rt_->start_container(container_id); });
  REQUIRE(started.ok());

  REQUIRE(test::eventually([&] { return in_state(container_id, ContainerState::kRunning); }));
  REQUIRE(test::eventually([&] { return fs::exists(data_ / "out.txt"); }));
  CHECK(read_file(data_ / "out.txt") == "written\n");

  std::ofstream(data_ / "go") << "";
  REQUIRE(test::eventually([&] { return in_state(container_id, ContainerState::kExited); }));
  auto exited = rt_->container_status(container_id);
  REQUIRE(exited.ok());
  CHECK(exited->exit_code == 7);
  CHECK(exited->reason == "Error");
  CHECK(exited->started_at_ns > 0);
  CHECK(exited->finished_at_ns >= exited->started_at_ns);
  CHECK(exited->info.name == "app");
  CHECK(exited->info.image == test::kBusyboxImage);
  CHECK(exited->info.image_id == (*rt_->image_status(test::kBusyboxImage))->id);
  CHECK(exited->info.labels.at(kLabelContainerName) == "app");
  CHECK(exited->info.annotations.at(kAnnotationSpecHash) == "h-app");
  CHECK(exited->log_path == sandbox.log_directory + "/app/0.log");

  // CRI log lines: "<RFC3339 time> stdout|stderr F <text>".
  auto log = read_file(exited->log_path);
  CHECK_THAT(log, Catch::Contains(" stdout F hello world from lifecycle"));
  CHECK_THAT(log, Catch::Contains(" stdout F from the host"));
  CHECK_THAT(log, Catch::Contains(" stderr F bye"));

  auto removed = timed("RemoveContainer", [&] { return rt_->remove_container(container_id); });
  CHECK(removed.ok());
  CHECK(rt_->container_status(container_id).status().code() == Code::kNotFound);
  CHECK(timed("StopPodSandbox", [&] { return rt_->stop_pod_sandbox(sandbox_id); }).ok());
  CHECK(timed("RemovePodSandbox", [&] { return rt_->remove_pod_sandbox(sandbox_id); }).ok());
  CHECK(rt_->pod_sandbox_status(sandbox_id).status().code() == Code::kNotFound);
  // Both are idempotent.
  CHECK(rt_->stop_pod_sandbox(sandbox_id).ok());
  CHECK(rt_->remove_pod_sandbox(sandbox_id).ok());
}

TEST_CASE_METHOD(RuntimeFixture, "a container that succeeds is Exited with code 0 and Completed",
                 "[containerd]") {
  auto sandbox = sandbox_config("done");
  auto sandbox_id = run_sandbox(sandbox);
  auto id = start(sandbox_id, sandbox, container_config("ok", "exit 0"));
  REQUIRE(test::eventually([&] { return in_state(id, ContainerState::kExited); }));
  auto s = rt_->container_status(id);
  REQUIRE(s.ok());
  CHECK(s->exit_code == 0);
  CHECK(s->reason == "Completed");
}

TEST_CASE_METHOD(RuntimeFixture,
                 "stop_container sends SIGTERM first and SIGKILL once the grace period is over",
                 "[containerd]") {
  auto sandbox = sandbox_config("stopper");
  auto sandbox_id = run_sandbox(sandbox);
  auto polite = start(sandbox_id, sandbox,
                      container_config("polite",
                                       "trap 'echo got TERM; exit 3' TERM; echo up; "
                                       "while :; do sleep 0.1; done"));
  auto stubborn = start(sandbox_id, sandbox,
                        container_config("stubborn",
                                         "trap '' TERM; echo up; "
                                         "while :; do sleep 0.1; done"));
  REQUIRE(test::eventually([&] {
    return in_state(polite, ContainerState::kRunning) &&
           in_state(stubborn, ContainerState::kRunning) &&
           read_file(fs::path(sandbox.log_directory) / "polite/0.log").find("up") !=
               std::string::npos &&
           read_file(fs::path(sandbox.log_directory) / "stubborn/0.log").find("up") !=
               std::string::npos;
  }));

  CHECK(rt_->stop_container(polite, 30s).ok());
  auto s = rt_->container_status(polite);
  REQUIRE(s.ok());
  CHECK(s->info.state == ContainerState::kExited);
  CHECK(s->exit_code == 3);
  CHECK_THAT(read_file(s->log_path), Catch::Contains("got TERM"));

  auto begin = std::chrono::steady_clock::now();
  CHECK(rt_->stop_container(stubborn, 1s).ok());
  CHECK(std::chrono::steady_clock::now() - begin >= 900ms);  // it did wait the grace period
  s = rt_->container_status(stubborn);
  REQUIRE(s.ok());
  CHECK(s->info.state == ContainerState::kExited);
  CHECK(s->exit_code == 137);  // 128 + SIGKILL

  // Stopping an exited container is fine.
  CHECK(rt_->stop_container(stubborn, 1s).ok());
}

TEST_CASE_METHOD(RuntimeFixture, "sandboxes and containers are listed by their labels",
                 "[containerd]") {
  auto a = sandbox_config("list-a");
  auto b = sandbox_config("list-b");
  b.labels["tier"] = "backend";
  auto a_id = run_sandbox(a);
  auto b_id = run_sandbox(b);
  auto a_app = start(a_id, a, container_config("app", "sleep 3600"));
  auto b_app = start(b_id, b, container_config("app", "sleep 3600"));
  auto b_side = start(b_id, b, container_config("side", "sleep 3600"));

  auto all = rt_->list_pod_sandboxes({{kLabelManagedBy, "edgecore"}});
  REQUIRE(all.ok());
  CHECK(all->size() == 2);
  auto backend = rt_->list_pod_sandboxes({{"tier", "backend"}});
  REQUIRE(backend.ok());
  REQUIRE(backend->size() == 1);
  CHECK(backend->front().id == b_id);
  CHECK(backend->front().name == "list-b");
  CHECK(backend->front().uid == b.uid);
  CHECK(backend->front().state == SandboxState::kReady);
  CHECK(backend->front().created_at_ns > 0);
  CHECK(rt_->list_pod_sandboxes({{kLabelPodUid, "nobody"}})->empty());

  auto in_b = rt_->list_containers({b_id, {}});
  REQUIRE(in_b.ok());
  CHECK(in_b->size() == 2);
  auto apps = rt_->list_containers({"", {{kLabelContainerName, "app"}}});
  REQUIRE(apps.ok());
  CHECK(apps->size() == 2);
  auto b_apps = rt_->list_containers({b_id, {{kLabelContainerName, "app"}}});
  REQUIRE(b_apps.ok());
  REQUIRE(b_apps->size() == 1);
  CHECK(b_apps->front().id == b_app);
  CHECK(b_apps->front().sandbox_id == b_id);
  CHECK(b_apps->front().state == ContainerState::kRunning);
  CHECK(b_apps->front().annotations.at(kAnnotationSpecHash) == "h-app");
  CHECK_THAT(b_apps->front().image_id, Catch::StartsWith("sha256:"));
  // Containers carry only their own labels (containerd does not copy the sandbox's): the pod
  // workers label containers with the pod's identity themselves.
  CHECK(b_apps->front().labels.count(kLabelPodName) == 0);

  CHECK(rt_->stop_container(b_side, 0s).ok());
  CHECK(rt_->remove_container(b_side).ok());
  CHECK(rt_->list_containers({b_id, {}})->size() == 1);

  // Stopping a sandbox stops its containers; removing it removes them.
  CHECK(rt_->stop_pod_sandbox(b_id).ok());
  CHECK(in_state(b_app, ContainerState::kExited));
  CHECK(rt_->pod_sandbox_status(b_id)->info.state == SandboxState::kNotReady);
  CHECK(rt_->remove_pod_sandbox(b_id).ok());
  CHECK(rt_->list_containers({b_id, {}})->empty());
  CHECK(rt_->list_pod_sandboxes({{kLabelManagedBy, "edgecore"}})->size() == 1);
  CHECK(in_state(a_app, ContainerState::kRunning));
}

TEST_CASE_METHOD(RuntimeFixture, "resources become the container's cgroup limits", "[containerd]") {
  auto sandbox = sandbox_config("limits");
  auto sandbox_id = run_sandbox(sandbox);
  auto config = container_config("app", "sleep 3600");
  config.resources.memory_limit_bytes = 64 << 20;
  config.resources.cpu_period = 100000;
  config.resources.cpu_quota = 25000;
  config.resources.cpu_shares = 256;
  auto id = start(sandbox_id, sandbox, config);
  REQUIRE(test::eventually([&] { return in_state(id, ContainerState::kRunning); }));
  // cgroupfs driver: <cgroup_parent>/<container id> in each v1 hierarchy.
  auto memory = fs::path("/sys/fs/cgroup/memory") / sandbox.cgroup_parent.substr(1) / id;
  auto cpu = fs::path("/sys/fs/cgroup/cpu") / sandbox.cgroup_parent.substr(1) / id;
  CHECK(read_file(memory / "memory.limit_in_bytes") == std::to_string(64 << 20) + "\n");
  CHECK(read_file(cpu / "cpu.cfs_quota_us") == "25000\n");
  CHECK(read_file(cpu / "cpu.cfs_period_us") == "100000\n");
  CHECK(read_file(cpu / "cpu.shares") == "256\n");
}

TEST_CASE_METHOD(RuntimeFixture, "a host-network pod sees the node's hostname and network",
                 "[containerd]") {
  auto sandbox = sandbox_config("hostnet");
  sandbox.host_network = true;
  auto sandbox_id = run_sandbox(sandbox);
  auto id = start(sandbox_id, sandbox, container_config("app", "hostname; cat /proc/net/dev"));
  REQUIRE(test::eventually([&] { return in_state(id, ContainerState::kExited); }));
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  auto log = read_file(fs::path(sandbox.log_directory) / "app/0.log");
  CHECK_THAT(log, Catch::Contains(std::string(" stdout F ") + host));
  CHECK_THAT(log, Catch::Contains("eth0"));
  CHECK(rt_->container_status(id)->exit_code == 0);
}

TEST_CASE_METHOD(RuntimeFixture, "a port mapping publishes the container's port on the node",
                 "[containerd]") {
  auto sandbox = sandbox_config("ports");
  auto host_port = test::free_port();
  sandbox.ports = {{8080, host_port, "TCP", ""}};
  auto sandbox_id = run_sandbox(sandbox);
  auto id = start(sandbox_id, sandbox,
                  container_config("web",
                                   "mkdir -p /www && echo published > /www/index.html && "
                                   "exec httpd -f -p 8080 -h /www"));
  REQUIRE(test::eventually([&] { return in_state(id, ContainerState::kRunning); }));
  auto url = "http://127.0.0.1:" + std::to_string(host_port) + "/index.html";
  std::string body;
  bool served = test::eventually(
      [&] {
        auto got = test::run_command({"/usr/bin/curl", "-fsS", "--max-time", "5", url}, 10s);
        body = got.output;
        return got.ok();
      },
      30s, 100ms);
  INFO(body);
  CHECK(served);
  CHECK_THAT(body, Catch::Contains("published"));
}

TEST_CASE_METHOD(RuntimeFixture, "image_status tells a present image from an absent one",
                 "[containerd]") {
  auto present = rt_->image_status(test::kBusyboxImage);
  REQUIRE(present.ok());
  REQUIRE(present->has_value());
  CHECK_THAT((*present)->id, Catch::StartsWith("sha256:"));
  CHECK((*present)->size_bytes > 0);
  CHECK(std::find((*present)->repo_tags.begin(), (*present)->repo_tags.end(),
                  test::kBusyboxImage) != (*present)->repo_tags.end());

  auto absent = rt_->image_status("gantry.local/absent:1");
  REQUIRE(absent.ok());
  CHECK_FALSE(absent->has_value());

  // A pull of an image nobody serves fails with a message that names it.
  auto pulled = rt_->pull_image("127.0.0.1:9/absent:1");
  REQUIRE_FALSE(pulled.ok());
  CHECK_THAT(pulled.status().message(), Catch::Contains("127.0.0.1:9/absent:1"));
  CHECK(rt_->image_status("127.0.0.1:9/absent:1")->has_value() == false);
}

TEST_CASE_METHOD(RuntimeFixture,
                 "images pull from a loopback registry: v1 and v2 have different refs and run "
                 "their own content",
                 "[containerd]") {
  // Started after containerd: containerd reads the registry's hosts.toml at pull time.
  auto registry = containerd_.start_registry();
  auto v1_archive = containerd_.build_image("gantry.test/app", "v1", "app-v1");
  auto v2_archive = containerd_.build_image("gantry.test/app", "v2", "app-v2");
  auto v1_ref = containerd_.push_image(v1_archive, "app:v1");
  auto v2_ref = containerd_.push_image(v2_archive, "app:v2");
  CHECK(v1_ref == registry + "/app:v1");

  CHECK_FALSE(rt_->image_status(v1_ref)->has_value());
  auto v1_id = timed("PullImage", [&] { return rt_->pull_image(v1_ref); });
  INFO(v1_id.status().to_string());
  REQUIRE(v1_id.ok());
  auto v2_id = rt_->pull_image(v2_ref);
  REQUIRE(v2_id.ok());
  CHECK_THAT(*v1_id, Catch::StartsWith("sha256:"));
  CHECK(*v1_id != *v2_id);
  auto status = rt_->image_status(v1_ref);
  REQUIRE(status.ok());
  REQUIRE(status->has_value());
  CHECK((*status)->id == *v1_id);
  CHECK_FALSE((*status)->repo_digests.empty());
  // Pulling again is cheap and gives the same ID.
  CHECK(*rt_->pull_image(v1_ref) == *v1_id);

  auto sandbox = sandbox_config("pulled");
  auto sandbox_id = run_sandbox(sandbox);
  auto config = container_config("app", "cat /etc/gantry-image");
  config.image = v2_ref;
  auto id = start(sandbox_id, sandbox, config);
  REQUIRE(test::eventually([&] { return in_state(id, ContainerState::kExited); }));
  auto s = rt_->container_status(id);
  REQUIRE(s.ok());
  CHECK(s->info.image_id == *v2_id);
  CHECK_THAT(s->info.image_ref, Catch::Contains("/app@sha256:"));  // containerd: the repo digest
  auto listed = rt_->list_containers({sandbox_id, {}});
  REQUIRE(listed.ok());
  REQUIRE(listed->size() == 1);
  CHECK(listed->front().image_id == *v2_id);
  CHECK_THAT(read_file(s->log_path), Catch::Contains(" stdout F app-v2"));

  // RemoveImage takes the image away (by ID: every tag of it).
  CHECK(rt_->remove_image(v1_ref).ok());
  CHECK_FALSE(rt_->image_status(v1_ref)->has_value());
  CHECK(rt_->remove_image(v1_ref).ok());  // idempotent
  CHECK(rt_->image_status(v2_ref)->has_value());
}

TEST_CASE_METHOD(RuntimeFixture,
                 "registry mirrors written by edgecore serve pulls of registries nobody can reach",
                 "[containerd]") {
  // The mirror: a loopback registry holding app:v2. The images' own registries do not exist
  // (.invalid never resolves): a pull succeeds only through the hosts.toml edgecore wrote.
  auto mirror = containerd_.start_registry();
  auto archive = containerd_.build_image("gantry.test/app", "v2", "app-v2");
  containerd_.push_image(archive, "app:v2");
  const fs::path certs = containerd_.dir() / "certs.d";  // the fixture's containerd config_path
  CHECK_FALSE(rt_->pull_image("registry.gantry.invalid/app:v2").ok());

  // A dead station mirror first, then the working one: containerd moves on in order.
  auto dead = parse_registry_mirror(
      fmt::format("registry.gantry.invalid=http://127.0.0.1:{}", test::free_port()));
  auto live = parse_registry_mirror("registry.gantry.invalid=http://" + mirror);
  REQUIRE(dead.ok());
  REQUIRE(live.ok());
  REQUIRE(write_registry_mirrors(certs, {*dead, *live}).ok());
  auto id = rt_->pull_image("registry.gantry.invalid/app:v2");
  INFO(id.status().to_string());
  REQUIRE(id.ok());
  CHECK_THAT(*id, Catch::StartsWith("sha256:"));

  // A mirror of every registry (_default) serves any other registry name.
  auto every = parse_registry_mirror("http://" + mirror);
  REQUIRE(every.ok());
  REQUIRE(write_registry_mirrors(certs, {*every}).ok());
  auto other = rt_->pull_image("other.gantry.invalid/app:v2");
  INFO(other.status().to_string());
  CHECK(other.ok());

  // Without mirrors the unreachable registry is unreachable again (the files are gone).
  REQUIRE(write_registry_mirrors(certs, {}).ok());
  CHECK(rt_->remove_image("registry.gantry.invalid/app:v2").ok());
  CHECK_FALSE(rt_->pull_image("registry.gantry.invalid/app:v2").ok());
  CHECK(fs::exists(certs / mirror / "hosts.toml"));  // the fixture's own file is untouched
}

TEST_CASE_METHOD(RuntimeFixture,
                 "after containerd restarts the same client works again and the pod is still "
                 "running",
                 "[containerd]") {
  auto sandbox = sandbox_config("survivor");
  auto sandbox_id = run_sandbox(sandbox);
  auto id = start(sandbox_id, sandbox, container_config("app", "sleep 3600"));
  REQUIRE(test::eventually([&] { return in_state(id, ContainerState::kRunning); }));

  bool kill = GENERATE(false, true);
  INFO((kill ? "SIGKILL" : "SIGTERM"));
  containerd_.stop_daemon(kill);
  auto down = rt_->version();
  REQUIRE_FALSE(down.ok());
  CHECK(down.status().code() == Code::kUnavailable);
  CHECK(rt_->container_status(id).status().code() == Code::kUnavailable);

  timed("containerd start (harness)", [&] {
    containerd_.start_daemon();
    return 0;
  });
  timed("client answers again after containerd is up", [&] {
    // The client that saw containerd gone reconnects by itself (no new CriRuntime).
    REQUIRE(test::eventually([&] { return rt_->version().ok(); }, 30s, 20ms));
    return 0;
  });
  CHECK(in_state(id, ContainerState::kRunning));
  auto sandboxes = rt_->list_pod_sandboxes({{kLabelPodUid, sandbox.uid}});
  REQUIRE(sandboxes.ok());
  REQUIRE(sandboxes->size() == 1);
  CHECK(sandboxes->front().state == SandboxState::kReady);
  // And it still manages them.
  CHECK(rt_->stop_container(id, 0s).ok());
  CHECK(in_state(id, ContainerState::kExited));
}

TEST_CASE_METHOD(RuntimeFixture, "a stuck containerd costs a call its deadline, not a hang",
                 "[containerd]") {
  auto impatient = CriRuntime::create({.endpoint = containerd_.endpoint(), .call_timeout = 1s});
  REQUIRE(impatient.ok());
  REQUIRE((*impatient)->version().ok());  // connected

  auto pid = std::stoi(read_file(containerd_.dir() / "containerd.pid"));
  stop_process(pid);
  auto begin = std::chrono::steady_clock::now();
  auto stuck = (*impatient)->list_containers();
  auto elapsed = std::chrono::steady_clock::now() - begin;
  ::kill(pid, SIGCONT);
  REQUIRE_FALSE(stuck.ok());
  CHECK(stuck.status().code() == Code::kDeadlineExceeded);
  CHECK_THAT(stuck.status().message(), Catch::Contains("ListContainers"));
  CHECK(elapsed >= 900ms);
  CHECK(elapsed < 15s);
  REQUIRE(test::eventually([&] { return (*impatient)->version().ok(); }));
}

TEST_CASE_METHOD(RuntimeFixture, "cancel_calls ends a call in flight and every later one at once",
                 "[containerd]") {
  auto patient = CriRuntime::create({.endpoint = containerd_.endpoint(), .call_timeout = 60s});
  REQUIRE(patient.ok());
  REQUIRE((*patient)->version().ok());
  auto pid = std::stoi(read_file(containerd_.dir() / "containerd.pid"));
  stop_process(pid);
  std::promise<Status> result;
  std::thread caller([&] { result.set_value((*patient)->list_containers().status()); });
  auto future = result.get_future();
  // The call is waiting on the stopped runtime; cancelling ends it long before its 60 s.
  CHECK(future.wait_for(300ms) == std::future_status::timeout);
  auto begin = std::chrono::steady_clock::now();
  (*patient)->cancel_calls();
  REQUIRE(future.wait_for(10s) == std::future_status::ready);
  auto elapsed = std::chrono::steady_clock::now() - begin;
  caller.join();
  ::kill(pid, SIGCONT);
  Status s = future.get();
  CHECK(s.code() == Code::kCancelled);
  CHECK(elapsed < 5s);
  CHECK((*patient)->version().status().code() == Code::kCancelled);
}

// --- exec / attach through containerd's streaming server (edgecore/exec) --------------------

// An io_context on a thread of its own, for SpdyExec and ExecStreams.
struct IoThread {
  boost::asio::io_context ioc;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard{
      ioc.get_executor()};
  std::thread thread{[this] { ioc.run(); }};
  ~IoThread() {
    guard.reset();
    ioc.stop();
    thread.join();
  }
};

struct ExecOutcome {
  std::mutex mu;
  std::string out, err;
  std::optional<ExecResult> result;
  bool ready = false;
  std::string text() {
    std::lock_guard lock(mu);
    return out;
  }
  bool done() {
    std::lock_guard lock(mu);
    return result.has_value();
  }
};

std::shared_ptr<SpdyExec> run_exec(boost::asio::io_context& ioc, const std::string& url,
                                   SpdyExecOptions options, ExecOutcome& outcome) {
  SpdyExec::Callbacks cbs;
  cbs.on_ready = [&outcome] {
    std::lock_guard lock(outcome.mu);
    outcome.ready = true;
  };
  cbs.on_output = [&outcome](uint32_t channel, std::string data) {
    std::lock_guard lock(outcome.mu);
    (channel == 1 ? outcome.out : outcome.err) += data;
  };
  cbs.on_end = [&outcome](ExecResult r) {
    std::lock_guard lock(outcome.mu);
    outcome.result = std::move(r);
  };
  return SpdyExec::start(ioc, url, options, std::move(cbs));
}

TEST_CASE_METHOD(RuntimeFixture,
                 "exec in a running container relays stdout, stderr, stdin with its end, a "
                 "terminal and the exit code",
                 "[containerd][exec]") {
  auto sandbox = sandbox_config("exec");
  auto sandbox_id = run_sandbox(sandbox);
  auto id = start(sandbox_id, sandbox, container_config("app", "sleep 3600"));
  REQUIRE(test::eventually([&] { return in_state(id, ContainerState::kRunning); }));
  IoThread io;

  SECTION("stdout, stderr and a non-zero exit code") {
    auto url = rt_->streaming_url(
        {.container_id = id, .command = {"sh", "-c", "echo hi; echo err >&2; exit 3"}});
    INFO(url.status().to_string());
    REQUIRE(url.ok());
    CHECK_THAT(*url, Catch::StartsWith("http://127.0.0.1:"));
    ExecOutcome o;
    auto exec = run_exec(io.ioc, *url, {}, o);
    REQUIRE(test::eventually([&] { return o.done(); }, 30s));
    std::lock_guard lock(o.mu);
    INFO(o.result->error);
    CHECK(o.result->exited);
    CHECK(o.result->exit_code == 3);
    CHECK(o.out == "hi\n");
    CHECK(o.err == "err\n");
  }

  SECTION("stdin until its end, and exit code 0") {
    auto url = rt_->streaming_url({.container_id = id, .command = {"cat"}, .stdin = true});
    REQUIRE(url.ok());
    ExecOutcome o;
    auto exec = run_exec(io.ioc, *url, {.stdin = true}, o);
    std::atomic<bool> written{false};
    exec->write_stdin("abc\n", [&] { written = true; });
    exec->write_stdin("def\n", nullptr);
    exec->close_stdin();
    REQUIRE(test::eventually([&] { return o.done(); }, 30s));
    std::lock_guard lock(o.mu);
    INFO(o.result->error);
    CHECK(o.result->exited);
    CHECK(o.result->exit_code == 0);
    CHECK(o.out == "abc\ndef\n");
    CHECK(written);
  }

  SECTION("a terminal, resized") {
    auto url = rt_->streaming_url(
        {.container_id = id, .command = {"sh"}, .tty = true, .stdin = true, .stderr = false});
    REQUIRE(url.ok());
    ExecOutcome o;
    auto exec = run_exec(io.ioc, *url, {.stdin = true, .tty = true}, o);
    exec->resize(123, 45);
    REQUIRE(test::eventually([&] {
      std::lock_guard lock(o.mu);
      return o.ready;
    }));
    exec->write_stdin("tty; stty size; exit 5\n", nullptr);
    REQUIRE(test::eventually([&] { return o.done(); }, 30s));
    std::lock_guard lock(o.mu);
    INFO(o.out);
    CHECK(o.result->exited);
    CHECK(o.result->exit_code == 5);
    CHECK_THAT(o.out, Catch::Contains("/dev/pts/"));
    CHECK_THAT(o.out, Catch::Contains("45 123"));
  }

  SECTION("output past the socket buffers waits while paused and arrives whole") {
    auto url = rt_->streaming_url(
        {.container_id = id, .command = {"sh", "-c", "seq 1 100000"}, .stderr = false});
    REQUIRE(url.ok());
    ExecOutcome o;
    auto exec = run_exec(io.ioc, *url, {.stderr = false}, o);
    exec->pause_output(true);
    std::this_thread::sleep_for(300ms);  // the process fills the buffers and blocks meanwhile
    CHECK(o.text().size() < 588895);
    exec->pause_output(false);
    REQUIRE(test::eventually([&] { return o.done(); }, 30s));
    std::lock_guard lock(o.mu);
    CHECK(o.result->exited);
    CHECK(o.out.size() == 588895);  // seq 1 100000 | wc -c
    CHECK(o.out.substr(o.out.size() - 7) == "100000\n");
  }

  SECTION("a command that is not there is an error, not an exit code") {
    auto url = rt_->streaming_url({.container_id = id, .command = {"/no/such/binary"}});
    REQUIRE(url.ok());
    ExecOutcome o;
    auto exec = run_exec(io.ioc, *url, {}, o);
    REQUIRE(test::eventually([&] { return o.done(); }, 30s));
    std::lock_guard lock(o.mu);
    INFO(o.result->error);
    CHECK(!o.result->exited);
    CHECK_THAT(o.result->error, Catch::Contains("/no/such/binary"));
  }

  SECTION("through ExecStreams: the tunnel's frames, windows both ways") {
    std::mutex mu;
    std::vector<v1::Frame> sent;
    ExecStreams streams(
        io.ioc,
        [&](const v1::ExecRequest& r) -> common::Result<std::string> {
          if (r.container() != "app")
            return common::make_error(Code::kNotFound, "container \"{}\" not found", r.container());
          return rt_->streaming_url({.container_id = id,
                                     .command = {r.command().begin(), r.command().end()},
                                     .stdin = r.stdin()});
        },
        {.max_streams = 2});
    streams.set_sender([&](const v1::Frame& f) {
      std::lock_guard lock(mu);
      sent.push_back(f);
    });
    auto open = [&](uint32_t stream_id, std::string container, std::vector<std::string> cmd,
                    bool stdin, uint32_t window) {
      v1::Frame f;
      f.mutable_stream_open()->set_id(stream_id);
      f.mutable_stream_open()->set_window(window);
      auto* e = f.mutable_stream_open()->mutable_exec();
      e->set_namespace_("ns");
      e->set_pod("p");
      e->set_container(std::move(container));
      for (auto& a : cmd) e->add_command(a);
      e->set_stdin(stdin);
      e->set_stdout(true);
      e->set_stderr(true);
      streams.on_frame(f);
    };
    auto closed = [&](uint32_t stream_id) -> std::optional<v1::StreamClose> {
      std::lock_guard lock(mu);
      for (const auto& f : sent)
        if (f.has_stream_close() && f.stream_close().id() == stream_id) return f.stream_close();
      return std::nullopt;
    };
    auto output = [&](uint32_t stream_id, uint32_t channel) {
      std::lock_guard lock(mu);
      std::string out;
      for (const auto& f : sent)
        if (f.has_stream_data() && f.stream_data().id() == stream_id &&
            f.stream_data().channel() == channel)
          out += f.stream_data().data();
      return out;
    };
    auto stdin_granted = [&](uint32_t stream_id) {
      std::lock_guard lock(mu);
      uint64_t n = 0;
      for (const auto& f : sent)
        if (f.has_stream_window() && f.stream_window().id() == stream_id)
          n += f.stream_window().bytes();
      return n;
    };

    open(1, "nope", {"true"}, false, 1024);
    REQUIRE(test::eventually([&] { return closed(1).has_value(); }));
    CHECK(closed(1)->code() == 404);
    CHECK(closed(1)->error() == "container \"nope\" not found");

    // 10 output bytes of window, stdout and stderr together: the rest waits until granted.
    // (Which of the two streams containerd delivers first is its own: stderr's "e\n" may come
    // before stdout's line and take 2 of the 10 bytes.)
    open(3, "app", {"sh", "-c", "echo 0123456789abcdef; echo e >&2; exit 4"}, false, 10);
    auto out_bytes = [&] { return output(3, 1).size() + output(3, 2).size(); };
    REQUIRE(test::eventually([&] { return out_bytes() == 10; }));
    std::this_thread::sleep_for(200ms);  // nothing more may come without a grant
    CHECK(out_bytes() == 10);
    CHECK(std::string_view("0123456789abcdef\n").starts_with(output(3, 1)));
    CHECK(std::string_view("e\n").starts_with(output(3, 2)));
    CHECK(!closed(3).has_value());
    v1::Frame grant;
    grant.mutable_stream_window()->set_id(3);
    grant.mutable_stream_window()->set_bytes(1000);
    streams.on_frame(grant);
    REQUIRE(test::eventually([&] { return closed(3).has_value(); }));
    CHECK(output(3, 1) == "0123456789abcdef\n");
    CHECK(output(3, 2) == "e\n");
    CHECK(closed(3)->exited());
    CHECK(closed(3)->exit_code() == 4);
    CHECK(closed(3)->error().empty());

    // stdin: granted at once, re-granted as written, ended by eof.
    open(5, "app", {"cat"}, true, 1 << 16);
    REQUIRE(test::eventually([&] { return stdin_granted(5) == 64 * 1024; }));
    v1::Frame in;
    in.mutable_stream_data()->set_id(5);
    in.mutable_stream_data()->set_data("abc\n");
    in.mutable_stream_data()->set_eof(true);
    streams.on_frame(in);
    REQUIRE(test::eventually([&] { return closed(5).has_value(); }));
    CHECK(output(5, 1) == "abc\n");
    CHECK(closed(5)->exited());
    CHECK(closed(5)->exit_code() == 0);
    CHECK(stdin_granted(5) == 64 * 1024 + 4);

    // At most two at once: the third is a 429; ending one by StreamClose frees a place.
    open(7, "app", {"sleep", "60"}, false, 1024);
    open(9, "app", {"sleep", "60"}, false, 1024);
    open(11, "app", {"true"}, false, 1024);
    REQUIRE(test::eventually([&] { return closed(11).has_value(); }));
    CHECK(closed(11)->code() == 429);
    REQUIRE(test::eventually([&] { return streams.open_streams() == 2; }));
    v1::Frame cancel;
    cancel.mutable_stream_close()->set_id(7);
    streams.on_frame(cancel);
    REQUIRE(test::eventually([&] { return streams.open_streams() == 1; }));
    streams.on_disconnect();
    REQUIRE(test::eventually([&] { return streams.open_streams() == 0; }));
  }
}

}  // namespace
}  // namespace gantry::edge
