// Manifest -> runtime config, volumes on disk, and the status rules, without a runtime.
#include "edgecore/pods/pod_spec.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "edgecore/pods/pod_status.h"
#include "edgecore/pods/volumes.h"
#include "tests/support/test_support.h"

namespace gantry::edge {
namespace {

namespace fs = std::filesystem;

v1::Object pod_with(const std::string& image) {
  v1::Object o;
  o.set_kind(v1::OBJECT_KIND_POD);
  o.set_namespace_("ns");
  o.set_name("p");
  o.set_uid("u1");
  auto* c = o.mutable_pod()->add_containers();
  c->set_name("app");
  c->set_image(image);
  return o;
}

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST_CASE("Resources become Linux resources as Kubernetes converts them", "[pods]") {
  v1::Resources r;
  r.set_cpu_request_millis(250);
  r.set_cpu_limit_millis(500);
  r.set_memory_limit_bytes(64 << 20);
  auto l = linux_resources(r);
  CHECK(l.cpu_shares == 256);
  CHECK(l.cpu_period == 100000);
  CHECK(l.cpu_quota == 50000);
  CHECK(l.memory_limit_bytes == (64 << 20));
  auto none = linux_resources({});
  CHECK(none.cpu_shares == 2);
  CHECK(none.cpu_quota == 0);
}

TEST_CASE("A changed image changes the container hash but a changed label does not", "[pods]") {
  auto a = pod_with("busybox:1");
  auto b = pod_with("busybox:2");
  CHECK(container_hash(a.pod().containers(0)) != container_hash(b.pod().containers(0)));
  auto c = pod_with("busybox:1");
  (*c.mutable_pod()->mutable_labels())["tier"] = "web";
  CHECK(container_hash(a.pod().containers(0)) == container_hash(c.pod().containers(0)));
  CHECK(sandbox_hash(a) == sandbox_hash(c));
  c.mutable_pod()->set_host_network(true);
  CHECK(sandbox_hash(a) != sandbox_hash(c));
}

TEST_CASE("A subPath that leaves its volume is refused", "[pods]") {
  auto pod = pod_with("busybox:1");
  auto* v = pod.mutable_pod()->add_volumes();
  v->set_name("data");
  v->mutable_empty_dir();
  auto* m = pod.mutable_pod()->mutable_containers(0)->add_volume_mounts();
  m->set_name("data");
  m->set_mount_path("/data");
  m->set_sub_path("../../etc");
  PodPaths paths{"/tmp/x/pods/u1", "/tmp/x/logs/u1"};
  auto config = make_container_config(
      pod, pod.pod().containers(0), paths, 0, "",
      [](auto, const auto&, const auto&) { return std::optional<v1::ConfigData>(); });
  REQUIRE_FALSE(config.ok());
  CHECK_THAT(config.status().message(), Catch::Contains("subPath"));
  m->set_sub_path("cache");
  config = make_container_config(
      pod, pod.pod().containers(0), paths, 0, "",
      [](auto, const auto&, const auto&) { return std::optional<v1::ConfigData>(); });
  REQUIRE(config.ok());
  CHECK(config->mounts[0].host_path == "/tmp/x/pods/u1/volumes/data/cache");
  CHECK_FALSE(config->mounts[0].read_only);
}

TEST_CASE("An atomic volume update swaps all files at once and drops removed keys", "[pods]") {
  gantry::test::TempDir dir;
  fs::path vol = dir / "vol";
  REQUIRE(write_atomic_dir(vol, {{"a", {"1", 0644}}, {"b", {"2", 0600}}}).ok());
  CHECK(read(vol / "a") == "1");
  CHECK(read(vol / "b") == "2");
  CHECK((fs::status(vol / "b").permissions() & fs::perms::all) == fs::perms(0600));
  auto first = fs::read_symlink(vol / "..data");
  REQUIRE(write_atomic_dir(vol, {{"a", {"1", 0644}}, {"b", {"2", 0600}}}).ok());
  CHECK(fs::read_symlink(vol / "..data") == first);  // unchanged content: nothing rewritten
  REQUIRE(write_atomic_dir(vol, {{"a", {"3", 0644}}}).ok());
  CHECK(read(vol / "a") == "3");
  // A new mode alone (a changed defaultMode) is a new version too.
  REQUIRE(write_atomic_dir(vol, {{"a", {"3", 0600}}}).ok());
  CHECK((fs::status(vol / "a").permissions() & fs::perms::all) == fs::perms(0600));
  REQUIRE(write_atomic_dir(vol, {{"a", {"3", 0644}}}).ok());
  CHECK_FALSE(fs::exists(vol / "b"));
  CHECK_FALSE(fs::exists(vol / first));  // the old version is gone
}

TEST_CASE("The pod phase follows the kubelet's rules", "[pods]") {
  auto container = [](ContainerState state, int exit_code) {
    ContainerObservation c;
    c.name = "c";
    ContainerStatus s;
    s.info.state = state;
    s.exit_code = exit_code;
    c.current = s;
    return c;
  };
  struct Row {
    v1::RestartPolicy policy;
    ContainerState state;
    int exit_code;
    v1::PodPhase phase;
  };
  auto row = GENERATE(
      Row{v1::RESTART_POLICY_ALWAYS, ContainerState::kRunning, 0, v1::POD_PHASE_RUNNING},
      Row{v1::RESTART_POLICY_ALWAYS, ContainerState::kExited, 1, v1::POD_PHASE_RUNNING},
      Row{v1::RESTART_POLICY_NEVER, ContainerState::kExited, 0, v1::POD_PHASE_SUCCEEDED},
      Row{v1::RESTART_POLICY_NEVER, ContainerState::kExited, 2, v1::POD_PHASE_FAILED},
      Row{v1::RESTART_POLICY_ON_FAILURE, ContainerState::kExited, 0, v1::POD_PHASE_SUCCEEDED},
      Row{v1::RESTART_POLICY_ON_FAILURE, ContainerState::kExited, 2, v1::POD_PHASE_RUNNING},
      Row{v1::RESTART_POLICY_ALWAYS, ContainerState::kCreated, 0, v1::POD_PHASE_PENDING});
  PodObservation o;
  o.restart_policy = row.policy;
  o.containers.push_back(container(row.state, row.exit_code));
  auto s = pod_status(o);
  CHECK(s.phase() == row.phase);
  CHECK(s.ready() == (row.state == ContainerState::kRunning));
}

TEST_CASE("A container in back-off shows the reason and its last end", "[pods]") {
  PodObservation o;
  ContainerObservation c;
  c.name = "c";
  ContainerStatus ended;
  ended.info.state = ContainerState::kExited;
  ended.exit_code = 1;
  c.current = ended;
  c.restart_count = 4;
  c.waiting = Waiting{"CrashLoopBackOff", "back-off 40s"};
  o.containers.push_back(c);
  auto s = pod_status(o);
  CHECK(s.phase() == v1::POD_PHASE_RUNNING);
  CHECK_FALSE(s.ready());
  CHECK(s.containers(0).state().waiting().reason() == "CrashLoopBackOff");
  CHECK(s.containers(0).last_state().terminated().exit_code() == 1);
  CHECK(s.containers(0).restart_count() == 4);
}

}  // namespace
}  // namespace gantry::edge
