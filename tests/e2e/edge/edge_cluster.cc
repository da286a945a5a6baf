#include "tests/e2e/edge/edge_cluster.h"

#include <fmt/format.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "common/base/atomic_file.h"
#include "edgecore/runtime/cri_runtime.h"

namespace gantry::edge_test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

fs::path binary(const std::string& dir, const std::string& name) {
  return test::build_dir() / dir / name;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void replace_in(const fs::path& file, const std::string& from, const std::string& to) {
  std::string text = read_text(file);
  auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), to);
  REQUIRE(common::write_file_atomic(file, text).ok());
}

std::string kubectl_path() {
  for (const char* p : {"/usr/local/bin/kubectl", "/usr/bin/kubectl"}) {
    if (fs::exists(p)) return p;
  }
  return "/usr/bin/kubectl";
}

}  // namespace

EdgeCluster::EdgeCluster(std::string edge_yaml_extra) {
  containerd_ = std::make_unique<test::Containerd>();
  auto rt = edge::CriRuntime::create({.endpoint = containerd_->endpoint()});
  REQUIRE(rt.ok());
  runtime_ = std::move(*rt);

  tunnel_port_ = test::free_port();
  join_port_ = test::free_port();
  api_port_ = test::free_port();
  fs::path cloud = tmp_ / "cloud";
  auto init = adm({"init", "--data-dir", cloud.string(), "--advertise-address", "127.0.0.1"});
  INFO(init.text);
  REQUIRE(init.exit_code == 0);
  replace_in(cloud / "cloudcore.yaml", "\"0.0.0.0:10000\"",
             fmt::format("\"127.0.0.1:{}\"", tunnel_port_));
  replace_in(cloud / "cloudcore.yaml", "\"0.0.0.0:10002\"",
             fmt::format("\"127.0.0.1:{}\"", join_port_));
  replace_in(cloud / "cloudcore.yaml", "\"0.0.0.0:10443\"",
             fmt::format("\"127.0.0.1:{}\"", api_port_));
  replace_in(cloud / "admin.kubeconfig", "https://127.0.0.1:10443",
             fmt::format("https://127.0.0.1:{}", api_port_));
  start_cloudcore();

  auto token = adm({"gettoken", "--data-dir", cloud.string(), "--ttl", "1h"});
  REQUIRE(token.exit_code == 0);
  std::string token_text;
  std::istringstream lines(token.text);
  for (std::string line; std::getline(lines, line);) {
    if (line.find(' ') == std::string::npos && std::count(line.begin(), line.end(), '.') == 2) {
      token_text = line;
    }
  }
  REQUIRE_FALSE(token_text.empty());
  auto join = adm({"join", "--cloudcore", fmt::format("127.0.0.1:{}", join_port_), "--token",
                   token_text, "--node-name", kNode, "--province", "test", "--data-dir",
                   edge_dir().string(), "--runtime-endpoint", containerd_->endpoint(),
                   "--tunnel-address", fmt::format("127.0.0.1:{}", tunnel_port_)});
  INFO(join.text);
  REQUIRE(join.exit_code == 0);
  if (!edge_yaml_extra.empty()) {
    std::ofstream(edge_dir() / "edgecore.yaml", std::ios::app) << "\n" << edge_yaml_extra << "\n";
  }
  start_edgecore();
  bool ready = test::eventually(
      [&] {
        return kubectl({"get", "node", kNode, "-o",
                        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"})
                   .text == "True";
      },
      60s, 200ms);
  INFO(edgecore_log());
  REQUIRE(ready);
}

EdgeCluster::~EdgeCluster() {
  edgecore_.reset();
  cloudcore_.reset();
}

Output EdgeCluster::adm(std::vector<std::string> args) {
  args.insert(args.begin(), binary("tools/gantryadm", "gantryadm").string());
  auto r = test::run_command(args, 60s);
  return {r.exit_code, r.output};
}

void EdgeCluster::start_cloudcore() {
  cloudcore_ = std::make_unique<test::ChildProcess>(
      std::vector<std::string>{binary("cloudcore", "cloudcore").string(), "--config",
                               (tmp_ / "cloud" / "cloudcore.yaml").string()},
      tmp_ / "cloudcore.log");
  bool ready = test::eventually(
      [&] {
        return cloudcore_log().find("ready: tunnel on") != std::string::npos ||
               !cloudcore_->running();
      },
      60s);
  INFO(cloudcore_log());
  REQUIRE(ready);
  REQUIRE(cloudcore_->running());
}

void EdgeCluster::kill_cloudcore() {
  cloudcore_->signal(SIGKILL);
  cloudcore_->wait();
}

void EdgeCluster::start_edgecore() {
  edgecore_ = std::make_unique<test::ChildProcess>(
      std::vector<std::string>{binary("edgecore", "edgecore").string(), "--config",
                               (edge_dir() / "edgecore.yaml").string()},
      tmp_ / "edgecore.log");
}

void EdgeCluster::kill_edgecore() {
  edgecore_->signal(SIGKILL);
  edgecore_->wait();
}

void EdgeCluster::power_cut_containers() {
  auto tasks = containerd_->ctr({"tasks", "ls", "-q"});
  for (std::istringstream ids(tasks.output);;) {
    std::string id;
    if (!std::getline(ids, id)) break;
    if (!id.empty()) containerd_->ctr({"tasks", "kill", "-s", "SIGKILL", id});
  }
  containerd_->stop_daemon(true);
  containerd_->start_daemon();
}

std::string EdgeCluster::edgecore_log() const {
  return read_text(tmp_ / "edgecore.log");
}
std::string EdgeCluster::cloudcore_log() const {
  return read_text(tmp_ / "cloudcore.log");
}

Output EdgeCluster::kubectl(const std::vector<std::string>& args,
                            std::chrono::milliseconds timeout) {
  std::vector<std::string> argv{kubectl_path(), "--kubeconfig",
                                (tmp_ / "cloud" / "admin.kubeconfig").string()};
  argv.insert(argv.end(), args.begin(), args.end());
  auto r = test::run_command(argv, timeout);
  return {r.exit_code, r.output};
}

Output EdgeCluster::kubectl_apply(const std::string& yaml) {
  fs::path file = tmp_ / fmt::format("apply-{}.yaml", runs_++);
  std::ofstream(file) << yaml;
  return kubectl({"apply", "-f", file.string()});
}

std::string EdgeCluster::pod_field(const std::string& name, const std::string& jsonpath) {
  auto r = kubectl({"get", "pod", name, "-o", "jsonpath=" + jsonpath});
  return r.exit_code == 0 ? r.text : "";
}

std::string EdgeCluster::pod_yaml(const std::string& name, const std::string& script,
                                  const std::string& image,
                                  const std::string& restart_policy) const {
  return fmt::format(R"(apiVersion: v1
kind: Pod
metadata:
  name: {}
  namespace: default
spec:
  nodeName: {}
  restartPolicy: {}
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: {}
    command: ["sh", "-c", "{}"]
)",
                     name, kNode, restart_policy, image, script);
}

std::vector<edge::ContainerInfo> EdgeCluster::containers_of(const std::string& pod) {
  edge::ContainerFilter filter;
  filter.labels = {{edge::kLabelPodName, pod}};
  auto list = runtime_->list_containers(filter);
  return list.ok() ? *list : std::vector<edge::ContainerInfo>{};
}

std::vector<edge::ContainerInfo> EdgeCluster::running_containers_of(const std::string& pod) {
  auto all = containers_of(pod);
  std::erase_if(all, [](const auto& c) { return c.state != edge::ContainerState::kRunning; });
  return all;
}

}  // namespace gantry::edge_test
