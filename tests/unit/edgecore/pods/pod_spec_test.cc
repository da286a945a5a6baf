// Manifest -> runtime config, volumes on disk, and the status rules, without a runtime.
#include "edgecore/pods/pod_spec.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <set>

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

// Every regular file under `root`, relative to it (what a refused volume must not have added).
std::set<std::string> files_under(const fs::path& root) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) out.insert(fs::relative(e.path(), root).string());
  }
  return out;
}

TEST_CASE("Unsafe configmap keys and item paths are refused and nothing is written", "[pods]") {
  CHECK(check_volume_key("app.conf").ok());
  CHECK(check_volume_key("a-b_c.D9").ok());
  CHECK(check_volume_path("conf/app.conf").ok());
  CHECK(check_volume_path(".hidden").ok());

  gantry::test::TempDir dir;
  // Deep enough that "../../../../etc/x" from the staging directory still lands inside `dir`.
  PodPaths paths{dir / "a/b/c/pods/u1", dir / "a/b/c/logs/u1"};
  auto pod = pod_with("busybox:1");
  auto* v = pod.mutable_pod()->add_volumes();
  v->set_name("conf");
  v->mutable_config_map()->set_name("app");

  struct Case {
    std::string key;     // the configmap's key
    std::string path;    // items[].path ("" = no items: the key is the file name)
    std::string quoted;  // what the error must name
  };
  auto c = GENERATE(
      Case{"../../../../etc/x", "", "../../../../etc/x"}, Case{"/etc/x", "", "/etc/x"},
      Case{"a/b", "", "a/b"}, Case{"..data", "", "..data"}, Case{"..", "", ".."},
      Case{"x y", "", "x y"}, Case{"ok", "/etc/x", "/etc/x"}, Case{"ok", "a/../../b", "a/../../b"},
      Case{"ok", "../../../../etc/x", "../../../../etc/x"}, Case{"ok", "a//b", "a//b"},
      Case{"ok", "./x", "./x"}, Case{"ok", "..data/x", "..data/x"});
  CAPTURE(c.key, c.path);
  v->mutable_config_map()->clear_items();
  if (!c.path.empty()) {
    auto* item = v->mutable_config_map()->add_items();
    item->set_key(c.key);
    item->set_path(c.path);
  }
  v1::ConfigData data;
  (*data.mutable_data())[c.key] = "pwned";
  (*data.mutable_data())["good"] = "fine";
  auto s = setup_volumes(pod, paths, [&](auto, const auto&, const auto& name) {
    return name == "app" ? std::optional<v1::ConfigData>(data) : std::nullopt;
  });
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == common::Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("\"" + c.quoted + "\"") &&
                              Catch::Contains("volume \"conf\"") &&
                              Catch::Contains("configmap ns/app"));
  CHECK(files_under(dir.path()).empty());  // not even the good key: the volume is refused whole
}

TEST_CASE("A volume name that would leave the pod's directory is refused", "[pods]") {
  gantry::test::TempDir dir;
  PodPaths paths{dir / "pods/u1", dir / "logs/u1"};
  auto pod = pod_with("busybox:1");
  auto* v = pod.mutable_pod()->add_volumes();
  v->set_name("../../../escape");
  v->mutable_empty_dir();
  auto s = setup_volumes(
      pod, paths, [](auto, const auto&, const auto&) { return std::optional<v1::ConfigData>(); });
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == common::Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("../../../escape"));
  CHECK_FALSE(fs::exists(dir / "escape"));
}

TEST_CASE("A symlink planted in a volume directory is not followed by an update", "[pods]") {
  gantry::test::TempDir dir;
  std::map<std::string, VolumeFile> files{{"conf/app.conf", {"level=1\n", 0644}}};
  // The hidden version directory the update will write: learnt from a first volume.
  REQUIRE(write_atomic_dir(dir / "probe", files).ok());
  fs::path version = fs::read_symlink(dir / "probe" / "..data");
  // In the real volume, that name (and a sub-directory's name inside a stale one) point outside.
  fs::path outside = dir / "outside";
  fs::create_directories(outside);
  fs::path vol = dir / "vol";
  fs::create_directories(vol);
  fs::create_directory_symlink(outside, vol / version);
  REQUIRE(write_atomic_dir(vol, files).ok());
  CHECK(files_under(outside).empty());
  CHECK(read(vol / "conf" / "app.conf") == "level=1\n");
  CHECK_FALSE(fs::is_symlink(vol / version));
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
