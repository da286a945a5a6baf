// The pod workers against a fake runtime, a real MetaStore and the real StatusTracker: what an
// operator would see in the pod's status and in the runtime.
#include "edgecore/pods/pod_manager.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "edgecore/meta/meta_store.h"
#include "edgecore/status/status_tracker.h"
#include "tests/support/test_support.h"
#include "tests/unit/edgecore/pods/fake_runtime.h"

namespace gantry::edge {
namespace {

using namespace std::chrono_literals;
using gantry::test::eventually;

v1::Object make_pod(const std::string& name, const std::string& image,
                    v1::RestartPolicy policy = v1::RESTART_POLICY_ALWAYS,
                    const std::string& uid = "") {
  v1::Object o;
  o.set_kind(v1::OBJECT_KIND_POD);
  o.set_namespace_("default");
  o.set_name(name);
  o.set_uid(uid.empty() ? "uid-" + name : uid);
  auto* m = o.mutable_pod();
  m->set_restart_policy(policy);
  m->set_termination_grace_period_seconds(5);
  auto* c = m->add_containers();
  c->set_name("main");
  c->set_image(image);
  c->add_command("sleep");
  return o;
}

v1::Object make_config_map(const std::string& name, std::map<std::string, std::string> data) {
  v1::Object o;
  o.set_kind(v1::OBJECT_KIND_CONFIG_MAP);
  o.set_namespace_("default");
  o.set_name(name);
  o.set_uid("uid-cm-" + name);
  for (auto& [k, v] : data) (*o.mutable_config_map()->mutable_data())[k] = v;
  return o;
}

class PodsFixture {
 public:
  PodsFixture() {
    meta_ = std::move(MetaStore::open(dir_ / "meta")).value();
    tracker_ = std::move(StatusTracker::load(*meta_, {.node_name = "edge-1"})).value();
    runtime_.add_image("busybox:1");
    options_.data_dir = dir_.path();
    options_.node_name = "edge-1";
    options_.host_ip = "192.0.2.10";
    options_.relist_interval = 20ms;
    options_.crash_backoff_base = 100ms;
    options_.crash_backoff_cap = 400ms;
    options_.pull_backoff_base = 100ms;
    options_.pull_backoff_cap = 200ms;
  }
  ~PodsFixture() { manager_.reset(); }

  void start() {
    manager_ = std::make_unique<PodManager>(*meta_, *tracker_, runtime_, options_);
    manager_->start();
  }
  void restart_manager() {
    manager_->stop();
    manager_.reset();
    start();
  }
  void put(v1::Object o) {
    o.set_revision(++revision_);  // the cache drops a version older than the one it holds
    REQUIRE(meta_->apply_delta({o}, {}, revision_, true).ok());
  }
  void remove(const std::string& name) {
    v1::ObjectRef ref;
    ref.set_kind(v1::OBJECT_KIND_POD);
    ref.set_namespace_("default");
    ref.set_name(name);
    REQUIRE(meta_->apply_delta({}, {ref}, ++revision_, true).ok());
  }
  // The pod status last reported (the outbox holds the latest one: nothing is sent here).
  std::optional<v1::StatusEntry> entry(const std::string& name) {
    auto out = meta_->list_outbox();
    if (!out.ok()) return std::nullopt;
    for (const auto& e : *out) {
      if (e.kind() == v1::OBJECT_KIND_POD && e.name() == name) return e;
    }
    return std::nullopt;
  }
  std::optional<v1::PodStatus> status(const std::string& name) {
    auto e = entry(name);
    if (!e) return std::nullopt;
    return e->pod();
  }
  bool phase_is(const std::string& name, v1::PodPhase phase) {
    auto s = status(name);
    return s && s->phase() == phase;
  }
  std::string waiting_reason(const std::string& name) {
    auto s = status(name);
    if (!s || s->containers_size() == 0 || !s->containers(0).state().has_waiting()) return "";
    return s->containers(0).state().waiting().reason();
  }

  gantry::test::TempDir dir_;
  std::unique_ptr<MetaStore> meta_;
  std::unique_ptr<StatusTracker> tracker_;
  test::FakeRuntime runtime_;
  PodManagerOptions options_;
  std::unique_ptr<PodManager> manager_;
  uint64_t revision_ = 0;
};

TEST_CASE_METHOD(PodsFixture, "A cached pod runs and reports Running and Ready with its IP",
                 "[pods]") {
  start();
  put(make_pod("web", "busybox:1"));
  REQUIRE(eventually([&] { return phase_is("web", v1::POD_PHASE_RUNNING); }));
  auto s = *status("web");
  CHECK(s.ready());
  CHECK(s.pod_ip().rfind("10.88.0.", 0) == 0);
  CHECK(s.start_time() > 0);
  REQUIRE(s.containers_size() == 1);
  CHECK(s.containers(0).state().has_running());
  CHECK(s.containers(0).image() == "busybox:1");
  CHECK(runtime_.running().size() == 1);
  CHECK(runtime_.sandbox_count() == 1);
  auto view = manager_->runtime_view();
  CHECK(view.ready);
  CHECK(view.version == "fake://1.0");
}

TEST_CASE_METHOD(PodsFixture, "A container that keeps failing is restarted with growing back-off",
                 "[pods]") {
  start();
  put(make_pod("crash", "busybox:1"));
  REQUIRE(eventually([&] { return runtime_.running().size() == 1; }));
  std::vector<std::string> messages;
  for (int round = 0; round < 3; ++round) {
    auto running = runtime_.running();
    REQUIRE(running.size() == 1);
    runtime_.exit(running[0].info.id, 1);
    REQUIRE(eventually([&] {
      auto s = status("crash");
      return s && s->containers(0).state().has_waiting() &&
             s->containers(0).state().waiting().reason() == "CrashLoopBackOff";
    }));
    messages.push_back(status("crash")->containers(0).state().waiting().message());
    auto s = *status("crash");
    CHECK(s.containers(0).last_state().terminated().exit_code() == 1);
    REQUIRE(eventually([&] { return runtime_.running().size() == 1; }));
    REQUIRE(eventually([&] {
      auto st = status("crash");
      return st && st->containers(0).restart_count() == round + 1;
    }));
  }
  CHECK_THAT(messages[0], Catch::Contains("back-off 100ms"));
  CHECK_THAT(messages[1], Catch::Contains("back-off 200ms"));
  CHECK_THAT(messages[2], Catch::Contains("back-off 400ms"));
  CHECK(manager_->stats().containers_restarted == 3);
}

TEST_CASE_METHOD(PodsFixture, "A crash-looping container reports the kubelet's events", "[pods]") {
  std::mutex mu;
  std::vector<EdgeEventRecord> events;
  options_.on_event = [&](EdgeEventRecord e) {
    std::lock_guard lock(mu);
    events.push_back(std::move(e));
  };
  auto count = [&](const std::string& reason) {
    std::lock_guard lock(mu);
    return std::count_if(events.begin(), events.end(),
                         [&](const auto& e) { return e.reason == reason; });
  };
  start();
  put(make_pod("crash", "busybox:1"));
  REQUIRE(eventually([&] { return runtime_.running().size() == 1; }));
  REQUIRE(eventually([&] { return count("Started") == 1; }));
  {
    std::lock_guard lock(mu);
    std::vector<std::string> reasons;
    for (const auto& e : events) reasons.push_back(e.reason);
    CHECK(reasons == std::vector<std::string>{"Pulled", "Created", "Started"});
    CHECK(events[0].message == "Container image \"busybox:1\" already present on machine");
    CHECK(events[1].message == "Created container main");
    CHECK(events[2].message == "Started container main");
    for (const auto& e : events) {
      CHECK(e.ns == "default");
      CHECK(e.name == "crash");
      CHECK(e.uid == "uid-crash");
      CHECK(e.container == "main");
      CHECK_FALSE(e.warning);
    }
  }
  runtime_.exit(runtime_.running()[0].info.id, 1);
  REQUIRE(eventually([&] { return count("BackOff") >= 1; }));
  REQUIRE(eventually([&] { return count("Started") == 2; }));
  std::lock_guard lock(mu);
  auto backoff = std::find_if(events.begin(), events.end(),
                              [](const auto& e) { return e.reason == "BackOff"; });
  CHECK(backoff->warning);
  CHECK(backoff->message ==
        "Back-off restarting failed container main in pod crash_default(uid-crash)");
}

TEST_CASE_METHOD(PodsFixture, "An image that cannot be pulled reports Failed and BackOff events",
                 "[pods]") {
  std::mutex mu;
  std::vector<EdgeEventRecord> events;
  options_.on_event = [&](EdgeEventRecord e) {
    std::lock_guard lock(mu);
    events.push_back(std::move(e));
  };
  auto has = [&](const std::string& reason, const std::string& text) {
    std::lock_guard lock(mu);
    return std::any_of(events.begin(), events.end(), [&](const auto& e) {
      return e.reason == reason && e.message.find(text) != std::string::npos;
    });
  };
  start();
  put(make_pod("bad", "busybox:missing"));
  REQUIRE(eventually([&] { return has("BackOff", "Back-off pulling image \"busybox:missing\""); }));
  CHECK(has("Pulling", "Pulling image \"busybox:missing\""));
  CHECK(has("Failed", "Failed to pull image \"busybox:missing\": "));
  CHECK(has("Failed", "Error: ErrImagePull"));
  CHECK(has("Failed", "Error: ImagePullBackOff"));
}

TEST_CASE_METHOD(PodsFixture, "Restart policies Never and OnFailure end the pod", "[pods]") {
  start();
  put(make_pod("never", "busybox:1", v1::RESTART_POLICY_NEVER));
  put(make_pod("onfail", "busybox:1", v1::RESTART_POLICY_ON_FAILURE));
  REQUIRE(eventually([&] { return runtime_.running().size() == 2; }));
  for (const auto& c : runtime_.running()) {
    runtime_.exit(c.info.id, c.info.labels.at(kLabelPodName) == "never" ? 3 : 0);
  }
  REQUIRE(eventually([&] { return phase_is("never", v1::POD_PHASE_FAILED); }));
  REQUIRE(eventually([&] { return phase_is("onfail", v1::POD_PHASE_SUCCEEDED); }));
  CHECK(status("never")->containers(0).state().terminated().exit_code() == 3);
  CHECK(status("never")->containers(0).state().terminated().reason() == "Error");
  CHECK(runtime_.count_calls("create_container") == 2);  // neither was restarted
}

TEST_CASE_METHOD(PodsFixture, "A new image is pulled before the old container is stopped",
                 "[pods]") {
  runtime_.add_pullable("busybox:2");
  start();
  put(make_pod("app", "busybox:1"));
  REQUIRE(eventually([&] { return phase_is("app", v1::POD_PHASE_RUNNING); }));
  put(make_pod("app", "busybox:2"));
  REQUIRE(eventually([&] {
    auto s = status("app");
    return s && s->containers(0).image() == "busybox:2" && s->containers(0).state().has_running();
  }));
  auto calls = runtime_.calls();
  auto pull = std::find(calls.begin(), calls.end(), "pull_image busybox:2");
  auto stop = std::find_if(calls.begin(), calls.end(),
                           [](const auto& c) { return c.rfind("stop_container main", 0) == 0; });
  REQUIRE(pull != calls.end());
  REQUIRE(stop != calls.end());
  CHECK(pull < stop);
  CHECK(runtime_.running().size() == 1);
  CHECK(runtime_.running()[0].info.image == "busybox:2");
  CHECK(runtime_.sandbox_count() == 1);  // same sandbox: only the container was replaced
  CHECK(manager_->stats().containers_replaced == 1);
}

TEST_CASE_METHOD(PodsFixture, "An image that cannot be pulled leaves the old container running",
                 "[pods]") {
  start();
  put(make_pod("app", "busybox:1"));
  REQUIRE(eventually([&] { return phase_is("app", v1::POD_PHASE_RUNNING); }));
  put(make_pod("app", "busybox:missing"));
  REQUIRE(eventually([&] { return waiting_reason("app") == "ImagePullBackOff"; }));
  auto s = *status("app");
  CHECK(s.phase() == v1::POD_PHASE_RUNNING);
  CHECK(s.containers(0).ready());
  CHECK_THAT(s.containers(0).state().waiting().message(),
             Catch::Contains("the running container with image busybox:1 is kept"));
  REQUIRE(runtime_.running().size() == 1);
  CHECK(runtime_.running()[0].info.image == "busybox:1");
  CHECK(runtime_.count_calls("stop_container") == 0);
  // The status says which image still runs (the cloud counts the update as not done).
  CHECK(s.containers(0).image() == "busybox:1");
  CHECK(s.containers(0).image_id() == "sha256:busybox:1");
  CHECK(s.containers(0).restart_count() == 0);
}

TEST_CASE_METHOD(
    PodsFixture,
    "An in-place image update keeps the pod's uid, IP, sandbox and volumes and reports "
    "the new image, imageID and restart count",
    "[pods][inplace]") {
  runtime_.add_pullable("busybox:2");
  start();
  v1::Object pod = make_pod("gw", "busybox:1");
  auto* vol = pod.mutable_pod()->add_volumes();
  vol->set_name("cache");
  vol->mutable_empty_dir();
  put(pod);
  REQUIRE(eventually([&] { return phase_is("gw", v1::POD_PHASE_RUNNING); }));
  auto before = *status("gw");
  CHECK(before.containers(0).image() == "busybox:1");
  CHECK(before.containers(0).restart_count() == 0);
  // What the pod wrote in its emptyDir survives the swap.
  auto data = dir_.path() / "pods" / pod.uid() / "volumes" / "cache" / "state";
  REQUIRE(std::filesystem::exists(data.parent_path()));
  std::ofstream(data) << "kept";

  pod.mutable_pod()->mutable_containers(0)->set_image("busybox:2");  // same uid: in place
  put(pod);
  REQUIRE(eventually([&] {
    auto s = status("gw");
    return s && s->containers(0).image() == "busybox:2" && s->containers(0).state().has_running();
  }));
  auto after = *status("gw");
  CHECK(after.pod_ip() == before.pod_ip());
  CHECK(after.start_time() == before.start_time());
  CHECK(after.containers(0).restart_count() == 1);
  CHECK(after.containers(0).image_id() == "sha256:busybox:2");
  CHECK(after.containers(0).image_id() != before.containers(0).image_id());
  CHECK(after.ready());
  CHECK(entry("gw")->uid() == pod.uid());
  CHECK(runtime_.sandbox_count() == 1);
  CHECK(runtime_.count_calls("run_pod_sandbox") == 1);
  REQUIRE(runtime_.running().size() == 1);
  CHECK(runtime_.running()[0].info.image == "busybox:2");
  std::ifstream in(data);
  std::string text;
  in >> text;
  CHECK(text == "kept");
  // Pull, then stop the old container, then create the new one.
  auto calls = runtime_.calls();
  auto pull = std::find(calls.begin(), calls.end(), "pull_image busybox:2");
  auto stop = std::find_if(calls.begin(), calls.end(),
                           [](const auto& c) { return c.rfind("stop_container", 0) == 0; });
  auto create = std::find(calls.begin(), calls.end(), "create_container main busybox:2");
  REQUIRE(pull != calls.end());
  REQUIRE(stop != calls.end());
  REQUIRE(create != calls.end());
  CHECK(pull < stop);
  CHECK(stop < create);
  CHECK(manager_->stats().containers_replaced == 1);
}

TEST_CASE_METHOD(PodsFixture, "A restarted edgecore adopts running containers", "[pods]") {
  start();
  put(make_pod("web", "busybox:1"));
  REQUIRE(eventually([&] { return phase_is("web", v1::POD_PHASE_RUNNING); }));
  auto before = runtime_.running();
  auto start_time = status("web")->start_time();
  restart_manager();
  REQUIRE(eventually([&] { return manager_->stats().containers_adopted == 1; }));
  CHECK(runtime_.count_calls("create_container") == 1);
  CHECK(runtime_.count_calls("stop_container") == 0);
  REQUIRE(runtime_.running().size() == 1);
  CHECK(runtime_.running()[0].info.id == before[0].info.id);
  CHECK(status("web")->start_time() == start_time);
}

TEST_CASE_METHOD(PodsFixture, "Containers of pods no longer desired are removed", "[pods]") {
  start();
  put(make_pod("old", "busybox:1"));
  REQUIRE(eventually([&] { return runtime_.running().size() == 1; }));
  manager_->stop();
  remove("old");  // deleted while edgecore was down
  start();
  REQUIRE(
      eventually([&] { return runtime_.containers().empty() && runtime_.sandbox_count() == 0; }));
  CHECK_FALSE(std::filesystem::exists(dir_ / "pods" / "uid-old"));
}

TEST_CASE_METHOD(PodsFixture,
                 "A terminating pod is stopped with its grace period and reported gone", "[pods]") {
  start();
  put(make_pod("bye", "busybox:1"));
  REQUIRE(eventually([&] { return phase_is("bye", v1::POD_PHASE_RUNNING); }));
  auto pod = make_pod("bye", "busybox:1");
  pod.mutable_pod()->set_terminating(true);
  pod.mutable_pod()->set_deletion_grace_period_seconds(7);
  put(pod);
  REQUIRE(eventually([&] {
    auto e = entry("bye");
    return e && e->deleted();
  }));
  CHECK(runtime_.containers().empty());
  CHECK(runtime_.sandbox_count() == 0);
  CHECK(runtime_.count_calls("stop_container main 7") == 1);
}

TEST_CASE_METHOD(PodsFixture,
                 "A pod deleted and created again with the same name gets new containers",
                 "[pods]") {
  start();
  put(make_pod("web", "busybox:1", v1::RESTART_POLICY_ALWAYS, "uid-a"));
  REQUIRE(eventually([&] { return runtime_.running().size() == 1; }));
  put(make_pod("web", "busybox:1", v1::RESTART_POLICY_ALWAYS, "uid-b"));
  REQUIRE(eventually([&] {
    auto r = runtime_.running();
    return r.size() == 1 && r[0].info.labels.at(kLabelPodUid) == "uid-b" &&
           runtime_.sandbox_count() == 1;
  }));
}

TEST_CASE_METHOD(PodsFixture, "Env from configmap keys and a configMap volume that follows changes",
                 "[pods]") {
  start();
  put(make_config_map("app", {{"mode", "fast"}, {"app.conf", "level=1\n"}}));
  auto pod = make_pod("cfg", "busybox:1");
  auto* m = pod.mutable_pod();
  auto* v = m->add_volumes();
  v->set_name("conf");
  v->mutable_config_map()->set_name("app");
  auto* c = m->mutable_containers(0);
  auto* mount = c->add_volume_mounts();
  mount->set_name("conf");
  mount->set_mount_path("/etc/app");
  auto* env = c->add_env();
  env->set_name("MODE");
  env->mutable_config_map_key()->set_name("app");
  env->mutable_config_map_key()->set_key("mode");
  put(pod);
  REQUIRE(eventually([&] { return phase_is("cfg", v1::POD_PHASE_RUNNING); }));

  auto configs = runtime_.configs();
  REQUIRE(configs.size() == 1);
  const ContainerConfig& config = configs.begin()->second;
  CHECK(std::find(config.envs.begin(), config.envs.end(),
                  std::pair<std::string, std::string>{"MODE", "fast"}) != config.envs.end());
  REQUIRE(config.mounts.size() == 1);
  CHECK(config.mounts[0].read_only);
  std::filesystem::path file = std::filesystem::path(config.mounts[0].host_path) / "app.conf";
  auto read = [&] {
    std::ifstream in(file);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  CHECK(read() == "level=1\n");

  put(make_config_map("app", {{"mode", "fast"}, {"app.conf", "level=2\n"}}));
  REQUIRE(eventually([&] { return read() == "level=2\n"; }));
  CHECK(runtime_.count_calls("create_container") == 1);  // a volume update restarts nothing
}

TEST_CASE_METHOD(PodsFixture, "A missing configmap holds the container with a clear reason",
                 "[pods]") {
  start();
  auto pod = make_pod("nocfg", "busybox:1");
  auto* env = pod.mutable_pod()->mutable_containers(0)->add_env();
  env->set_name("MODE");
  env->mutable_config_map_key()->set_name("absent");
  env->mutable_config_map_key()->set_key("mode");
  put(pod);
  REQUIRE(eventually([&] { return waiting_reason("nocfg") == "CreateContainerConfigError"; }));
  CHECK_THAT(status("nocfg")->containers(0).state().waiting().message(),
             Catch::Contains("configmap \"absent\" not found"));
  put(make_config_map("absent", {{"mode", "slow"}}));
  REQUIRE(eventually([&] { return phase_is("nocfg", v1::POD_PHASE_RUNNING); }));
}

TEST_CASE_METHOD(PodsFixture,
                 "A configmap key that would leave the volume holds the pod and writes nothing",
                 "[pods]") {
  start();
  put(make_config_map("evil", {{"../../../../etc/x", "pwned"}}));
  auto pod = make_pod("evil", "busybox:1");
  auto* v = pod.mutable_pod()->add_volumes();
  v->set_name("conf");
  v->mutable_config_map()->set_name("evil");
  auto* mount = pod.mutable_pod()->mutable_containers(0)->add_volume_mounts();
  mount->set_name("conf");
  mount->set_mount_path("/etc/app");
  put(pod);
  REQUIRE(eventually([&] { return waiting_reason("evil") == "CreateContainerConfigError"; }));
  CHECK_THAT(status("evil")->containers(0).state().waiting().message(),
             Catch::Contains("\"../../../../etc/x\""));
  CHECK(runtime_.count_calls("create_container") == 0);
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir_.path())) {
    CHECK(e.path().filename() != "x");
  }
}

TEST_CASE_METHOD(PodsFixture, "A runtime that stops answering is reported and pods come back",
                 "[pods]") {
  start();
  put(make_pod("web", "busybox:1"));
  REQUIRE(eventually([&] { return phase_is("web", v1::POD_PHASE_RUNNING); }));
  runtime_.set_down(true);
  REQUIRE(eventually([&] { return !manager_->runtime_view().ready; }));
  CHECK_THAT(manager_->runtime_view().message, Catch::Contains("not answering"));
  runtime_.set_down(false);
  REQUIRE(eventually([&] { return manager_->runtime_view().ready; }));
  CHECK(runtime_.running().size() == 1);
}

TEST_CASE_METHOD(PodsFixture, "Logs are located by container for the current and previous attempt",
                 "[pods]") {
  start();
  put(make_pod("web", "busybox:1"));
  REQUIRE(eventually([&] { return runtime_.running().size() == 1; }));
  auto log = manager_->locate_log("default", "web", "main", false);
  REQUIRE(log.ok());
  CHECK(log->running);
  CHECK_THAT(log->path, Catch::EndsWith("default_web_uid-web/main/0.log"));
  auto previous = manager_->locate_log("default", "web", "main", true);
  CHECK(previous.status().code() == common::Code::kInvalidArgument);
  CHECK_THAT(previous.status().message(), Catch::Contains("previous terminated container"));
  CHECK(manager_->locate_log("default", "nope", "main", false).status().code() ==
        common::Code::kNotFound);
}

}  // namespace
}  // namespace gantry::edge

namespace gantry::edge {
namespace {

v1::Object with_init(v1::Object pod) {
  auto* init = pod.mutable_pod()->add_init_containers();
  init->set_name("setup");
  init->set_image("busybox:1");
  init->add_command("prepare");
  return pod;
}

std::optional<ContainerStatus> container_named(const test::FakeRuntime& rt,
                                               const std::string& name) {
  std::optional<ContainerStatus> latest;
  for (const auto& c : rt.containers()) {
    if (c.info.name == name && (!latest || c.info.attempt > latest->info.attempt)) latest = c;
  }
  return latest;
}

TEST_CASE_METHOD(PodsFixture, "Init containers run to completion before the app containers start",
                 "[pods]") {
  start();
  put(with_init(make_pod("init", "busybox:1")));
  REQUIRE(eventually([&] { return container_named(runtime_, "setup").has_value(); }));
  REQUIRE(eventually([&] { return waiting_reason("init") == "PodInitializing"; }));
  CHECK(phase_is("init", v1::POD_PHASE_PENDING));
  CHECK_FALSE(container_named(runtime_, "main"));
  runtime_.exit(container_named(runtime_, "setup")->info.id, 0);
  REQUIRE(eventually([&] { return phase_is("init", v1::POD_PHASE_RUNNING); }));
  CHECK(container_named(runtime_, "main")->info.state == ContainerState::kRunning);
  CHECK(runtime_.count_calls("create_container setup") == 1);  // not run again
}

TEST_CASE_METHOD(PodsFixture, "A failed init container fails a pod that never restarts", "[pods]") {
  start();
  put(with_init(make_pod("initfail", "busybox:1", v1::RESTART_POLICY_NEVER)));
  REQUIRE(eventually([&] { return container_named(runtime_, "setup").has_value(); }));
  runtime_.exit(container_named(runtime_, "setup")->info.id, 2);
  REQUIRE(eventually([&] { return phase_is("initfail", v1::POD_PHASE_FAILED); }));
  CHECK(waiting_reason("initfail") == "Init:Error");
  CHECK_THAT(status("initfail")->message(), Catch::Contains("exited with 2"));
  CHECK_FALSE(container_named(runtime_, "main"));
}

TEST_CASE_METHOD(PodsFixture, "A failing init container is retried with back-off", "[pods]") {
  start();
  put(with_init(make_pod("initloop", "busybox:1")));
  REQUIRE(eventually([&] { return container_named(runtime_, "setup").has_value(); }));
  runtime_.exit(container_named(runtime_, "setup")->info.id, 1);
  REQUIRE(eventually([&] { return waiting_reason("initloop") == "Init:CrashLoopBackOff"; }));
  REQUIRE(eventually([&] { return container_named(runtime_, "setup")->info.attempt == 1; }));
  runtime_.exit(container_named(runtime_, "setup")->info.id, 0);
  REQUIRE(eventually([&] { return phase_is("initloop", v1::POD_PHASE_RUNNING); }));
}

}  // namespace
}  // namespace gantry::edge
