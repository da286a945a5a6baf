// Three real cloudcore replicas on one real etcd (tests/support/etcd_fixture), with edgesim
// nodes spread over them (each node starts at a random replica and moves on when it fails):
// kill -9 a replica -> its nodes are on the others, Ready, their pods Running; kill -9 the
// leader -> another replica takes the controllers within the lease TTL and a pending pod is
// scheduled once. Timings are printed (docs/benchmarks.md, "Replicas"). And two replicas with
// the node on one: real kubectl reads the pod's logs (and follows them) through the other, which
// forwards the stream over the replica link.
#include <fmt/format.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "tests/support/containerd_fixture.h"  // run_command
#include "tests/support/etcd_fixture.h"
#include "tests/support/test_support.h"

namespace gantry::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using json = nlohmann::json;

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size())
    text.replace(at, from.size(), to);
  return text;
}

constexpr int kReplicas = 3;
constexpr int kNodes = 9;
constexpr int kLeaseTtl = 4;  // seconds

struct Replica {
  std::string name;
  unsigned short tunnel_port = 0, api_port = 0;
  fs::path config;
  std::unique_ptr<ChildProcess> process;
  bool alive() const { return process && process->running(); }
};

struct HaCluster {
  TempDir dir;
  Etcd etcd;
  fs::path etc = dir / "etc";
  std::string token;
  std::vector<Replica> replicas;

  explicit HaCluster(int count = kReplicas) : replicas(count) {
    auto init = run_command({(build_dir() / "tools/gantryadm/gantryadm").string(), "init",
                             "--data-dir", etc.string(), "--advertise-address", "127.0.0.1"});
    INFO(init.output);
    REQUIRE(init.ok());
    const std::string base = read_text(etc / "cloudcore.yaml");
    std::string tokens = read_text(etc / "tokens.csv");
    token = tokens.substr(0, tokens.find(','));
    for (int i = 0; i < int(replicas.size()); ++i) {
      Replica& r = replicas[i];
      r.name = fmt::format("replica-{}", i);
      r.tunnel_port = free_port();
      r.api_port = free_port();
      std::string yaml = base;
      // One data_dir each (the store is etcd; the directory holds nothing shared).
      yaml = replace_all(yaml, (etc / "data").string(), (etc / ("data-" + r.name)).string());
      yaml = replace_all(yaml, "\"0.0.0.0:10000\"", fmt::format("\"127.0.0.1:{}\"", r.tunnel_port));
      yaml = replace_all(yaml, "\"0.0.0.0:10002\"", "\"127.0.0.1:0\"");
      yaml = replace_all(yaml, "\"0.0.0.0:10443\"", fmt::format("\"127.0.0.1:{}\"", r.api_port));
      yaml = replace_all(yaml, "tunnel:\n", "tunnel:\n  heartbeat: 2s\n  node_timeout: 10s\n");
      yaml += fmt::format(
          "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://{}\"]\n"
          "    request_timeout: 2s\n"
          "ha:\n  name: {}\n  lease_ttl: {}s\n  link_listen: \"127.0.0.1:0\"\n"
          "  link_advertise: \"127.0.0.1\"\n",
          etcd.endpoint(), r.name, kLeaseTtl);
      r.config = etc / (r.name + ".yaml");
      std::ofstream(r.config) << yaml;
    }
  }

  // A kubeconfig for replica i's API (gantryadm init's admin.kubeconfig, its server moved).
  fs::path kubeconfig(int i) {
    fs::path out = etc / fmt::format("replica-{}.kubeconfig", i);
    std::ofstream(out) << replace_all(read_text(etc / "admin.kubeconfig"), "127.0.0.1:10443",
                                      fmt::format("127.0.0.1:{}", replicas[i].api_port));
    return out;
  }

  void start(int i) {
    Replica& r = replicas[i];
    r.process = std::make_unique<ChildProcess>(
        std::vector<std::string>{(build_dir() / "cloudcore/cloudcore").string(), "--config",
                                 r.config.string()},
        dir / (r.name + ".log"));
  }
  void wait_ready(int i) {
    Replica& r = replicas[i];
    bool ready = eventually(
        [&] { return r.process->log().find(" ready: ") != std::string::npos || !r.alive(); }, 90s,
        50ms);
    INFO(r.process->log());
    REQUIRE(ready);
    REQUIRE(r.alive());
  }

  // curl METHOD https://127.0.0.1:API(i)/PATH; {code, body}.
  std::pair<int, std::string> call(int i, const std::string& method, const std::string& path,
                                   const std::string& body = "") {
    std::vector<std::string> argv = {"/usr/bin/curl",
                                     "-sS",
                                     "--max-time",
                                     "10",
                                     "--cacert",
                                     (etc / "pki/ca.crt").string(),
                                     "-H",
                                     "Authorization: Bearer " + token,
                                     "-X",
                                     method,
                                     "-w",
                                     "\n%{http_code}"};
    if (!body.empty()) {
      argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
    }
    argv.push_back(fmt::format("https://127.0.0.1:{}{}", replicas[i].api_port, path));
    auto r = run_command(argv, 30s);
    auto nl = r.output.rfind('\n');
    if (nl == std::string::npos) return {0, r.output};
    return {std::atoi(r.output.c_str() + nl + 1), r.output.substr(0, nl)};
  }

  // The replicas whose /metrics say they lead.
  std::vector<int> leaders() {
    std::vector<int> out;
    for (int i = 0; i < int(replicas.size()); ++i) {
      if (!replicas[i].alive()) continue;
      auto m = call(i, "GET", "/metrics");
      if (m.first == 200 && m.second.find("\ngantry_leader 1") != std::string::npos)
        out.push_back(i);
    }
    return out;
  }
  int index_of(const std::string& name) {
    for (int i = 0; i < int(replicas.size()); ++i)
      if (replicas[i].name == name) return i;
    return -1;
  }

  // node -> replica name, from the ownership records in etcd.
  std::map<std::string, std::string> owners() {
    std::map<std::string, std::string> out;
    std::string text;
    try {
      text = etcd.etcdctl({"get", "--prefix", "/gantry/coordination/nodes/"});
    } catch (const std::exception&) {
      return out;
    }
    std::istringstream lines(text);
    std::string key, value;
    while (std::getline(lines, key) && std::getline(lines, value)) {
      auto j = json::parse(value, nullptr, false);
      if (!j.is_object() || !j.contains("replica")) continue;
      out[key.substr(key.rfind('/') + 1)] = j["replica"].get<std::string>();
    }
    return out;
  }

  // The node's Ready condition status as the API renders it ("" when none).
  std::string ready(int via, const std::string& node) {
    auto r = call(via, "GET", "/api/v1/nodes/" + node);
    if (r.first != 200) return "";
    auto j = json::parse(r.second, nullptr, false);
    if (!j.is_object()) return "";
    for (const auto& c : j["status"]["conditions"])
      if (c.value("type", "") == "Ready") return c.value("status", "");
    return "";
  }
  std::string phase(int via, const std::string& pod) {
    auto r = call(via, "GET", "/api/v1/namespaces/default/pods/" + pod);
    if (r.first != 200) return "";
    auto j = json::parse(r.second, nullptr, false);
    return j.is_object() ? j["status"].value("phase", "") : "";
  }
  std::string node_of(int via, const std::string& pod) {
    auto r = call(via, "GET", "/api/v1/namespaces/default/pods/" + pod);
    if (r.first != 200) return "";
    auto j = json::parse(r.second, nullptr, false);
    return j.is_object() ? j["spec"].value("nodeName", "") : "";
  }
};

std::string node_name(int i) {
  return fmt::format("sim-{:06d}", i);
}

// What edgesim's container log holds for pod `pod` on node `node` (three lines).
std::string sim_log(const std::string& node, const std::string& pod) {
  return fmt::format("{0}/{1}: line 1\n{0}/{1}: line 2\n{0}/{1}: line 3\n", node, pod);
}

std::string pod_json(const std::string& name, const std::string& node) {
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", name}}},
              {"spec", {{"containers", {{{"name", "app"}, {"image", "busybox"}}}}}}};
  if (!node.empty()) pod["spec"]["nodeName"] = node;
  return pod.dump();
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

TEST_CASE("three replicas on one etcd: a killed replica's nodes move, a killed leader is replaced",
          "[e2e]") {
  HaCluster c;
  for (int i = 0; i < kReplicas; ++i) c.start(i);
  for (int i = 0; i < kReplicas; ++i) c.wait_ready(i);
  // Exactly one leader.
  std::vector<int> leaders;
  REQUIRE(eventually([&] { return (leaders = c.leaders()).size() == 1; }, 30s, 200ms));
  const int leader = leaders[0];

  std::string tunnels;
  for (const auto& r : c.replicas) {
    tunnels += fmt::format("{}127.0.0.1:{}", tunnels.empty() ? "" : ",", r.tunnel_port);
  }
  ChildProcess sim({(build_dir() / "tools/edgesim/edgesim").string(),
                    "--cloudcore",
                    tunnels,
                    "--data-dir",
                    c.etc.string(),
                    "--api",
                    "-",
                    "--nodes",
                    std::to_string(kNodes),
                    "--heartbeat",
                    "2",
                    "--backoff-base",
                    "0.2",
                    "--backoff-cap",
                    "1",
                    "--churn-interval",
                    "0",
                    "--connect-timeout",
                    "60",
                    "--duration",
                    "600",
                    "--settle",
                    "1"},
                   c.dir / "edgesim.log");

  // Every node is held by some replica, and the nodes are spread over several.
  std::map<std::string, std::string> owners;
  INFO("edgesim: " << sim.log().substr(0, 4000));
  INFO("replica-0: " << c.replicas[0].process->log().substr(0, 6000));
  REQUIRE(eventually([&] { return (owners = c.owners()).size() == kNodes; }, 60s, 200ms));
  std::set<std::string> holding;
  for (const auto& [node, replica] : owners) holding.insert(replica);
  CHECK(holding.size() >= 2);

  // A pod on every node, Running (as edgesim reports it), every node Ready.
  for (int i = 0; i < kNodes; ++i) {
    auto created = c.call(leader, "POST", "/api/v1/namespaces/default/pods",
                          pod_json(fmt::format("p{}", i), node_name(i)));
    INFO(created.second);
    REQUIRE(created.first == 201);
  }
  for (int i = 0; i < kNodes; ++i) {
    INFO(node_name(i));
    REQUIRE(eventually([&] { return c.phase(leader, fmt::format("p{}", i)) == "Running"; }, 60s,
                       200ms));
    REQUIRE(eventually([&] { return c.ready(leader, node_name(i)) == "True"; }, 30s, 200ms));
  }

  // Every node's logs through every replica (the ones not holding it forward the stream).
  auto logs_everywhere = [&] {
    for (int r = 0; r < kReplicas; ++r) {
      if (!c.replicas[r].alive()) continue;
      for (int i = 0; i < kNodes; ++i) {
        INFO(c.replicas[r].name << " " << node_name(i));
        auto got = c.call(r, "GET", fmt::format("/api/v1/namespaces/default/pods/p{}/log", i));
        CHECK(got.first == 200);
        CHECK(got.second == sim_log(node_name(i), fmt::format("p{}", i)));
      }
    }
  };
  logs_everywhere();

  // kill -9 the non-leader holding the most nodes.
  int victim = -1;
  size_t most = 0;
  for (int i = 0; i < kReplicas; ++i) {
    if (i == leader) continue;
    size_t n = 0;
    for (const auto& [node, replica] : owners) n += replica == c.replicas[i].name ? 1 : 0;
    if (victim < 0 || n > most) victim = i, most = n;
  }
  std::vector<std::string> moved;
  for (const auto& [node, replica] : owners)
    if (replica == c.replicas[victim].name) moved.push_back(node);
  INFO("victim " << c.replicas[victim].name << " held " << moved.size() << " nodes");
  const auto killed = std::chrono::steady_clock::now();
  c.replicas[victim].process->signal(SIGKILL);
  REQUIRE(c.replicas[victim].process->wait(10s) == 128 + SIGKILL);
  // Its nodes reconnect elsewhere (their records now name another replica).
  REQUIRE(eventually(
      [&] {
        auto now = c.owners();
        for (const auto& node : moved) {
          auto it = now.find(node);
          if (it == now.end() || it->second == c.replicas[victim].name) return false;
        }
        return true;
      },
      60s, 100ms));
  const double reconnect_s = seconds_since(killed);
  // Ready, and their pods untouched and Running.
  for (int i = 0; i < kNodes; ++i) {
    INFO(node_name(i));
    REQUIRE(eventually([&] { return c.ready(leader, node_name(i)) == "True"; }, 30s, 200ms));
    CHECK(c.phase(leader, fmt::format("p{}", i)) == "Running");
    CHECK(c.node_of(leader, fmt::format("p{}", i)) == node_name(i));
  }
  const double ready_s = seconds_since(killed);
  logs_everywhere();  // the moved nodes through both survivors

  // kill -9 the leader: the remaining replica takes the controllers within the TTL (plus one
  // retry interval and etcd's expiry granularity).
  const int survivor = 3 - leader - victim;
  const auto leader_killed = std::chrono::steady_clock::now();
  c.replicas[leader].process->signal(SIGKILL);
  REQUIRE(c.replicas[leader].process->wait(10s) == 128 + SIGKILL);
  REQUIRE(eventually([&] { return c.leaders() == std::vector<int>{survivor}; }, 30s, 100ms));
  const double failover_s = seconds_since(leader_killed);
  CHECK(failover_s < kLeaseTtl + 3);

  // The new leader's scheduler binds a pending pod, once.
  auto pending = c.call(survivor, "POST", "/api/v1/namespaces/default/pods", pod_json("late", ""));
  INFO(pending.second);
  REQUIRE(pending.first == 201);
  std::string bound;
  REQUIRE(eventually([&] { return !(bound = c.node_of(survivor, "late")).empty(); }, 30s, 200ms));
  REQUIRE(eventually([&] { return c.phase(survivor, "late") == "Running"; }, 30s, 200ms));
  // The Scheduled event (flushed by the leader's recorder every second): exactly one.
  int scheduled = 0;
  auto count_scheduled = [&] {
    auto events = c.call(survivor, "GET", "/api/v1/namespaces/default/events");
    if (events.first != 200) return false;
    auto list = json::parse(events.second, nullptr, false);
    if (!list.is_object()) return false;
    scheduled = 0;
    for (const auto& e : list["items"])
      if (e.value("reason", "") == "Scheduled" && e["involvedObject"].value("name", "") == "late")
        scheduled += e.value("count", 1);
    return scheduled > 0;
  };
  CHECK(eventually(count_scheduled, 20s, 200ms));
  CHECK(scheduled == 1);
  // The nodes of the dead leader are back on the survivor and Ready.
  REQUIRE(eventually(
      [&] {
        auto now = c.owners();
        if (now.size() != kNodes) return false;
        for (const auto& [node, replica] : now)
          if (replica != c.replicas[survivor].name) return false;
        return true;
      },
      60s, 100ms));
  for (int i = 0; i < kNodes; ++i) {
    INFO(node_name(i));
    REQUIRE(eventually([&] { return c.ready(survivor, node_name(i)) == "True"; }, 30s, 200ms));
    CHECK(c.phase(survivor, fmt::format("p{}", i)) == "Running");
  }
  fmt::print(
      "ha e2e: {} nodes on {} replicas, lease TTL {} s: replica killed -> its {} nodes held "
      "elsewhere after {:.1f} s, all Ready after {:.1f} s; leader killed -> new leader after "
      "{:.1f} s\n",
      kNodes, kReplicas, kLeaseTtl, moved.size(), reconnect_s, ready_s, failover_s);
  CHECK(sim.running());
}

// The metric's value in replica i's /metrics (-1 when absent).
double metric(HaCluster& c, int i, const std::string& name) {
  auto m = c.call(i, "GET", "/metrics");
  if (m.first != 200) return -1;
  auto at = m.second.find("\n" + name + " ");
  return at == std::string::npos ? -1 : std::atof(m.second.c_str() + at + name.size() + 2);
}

TEST_CASE("kubectl logs and logs -f through a replica that does not hold the node", "[e2e]") {
  HaCluster c(2);
  for (int i = 0; i < 2; ++i) c.start(i);
  for (int i = 0; i < 2; ++i) c.wait_ready(i);
  // Two nodes, both connected to replica-0 only.
  ChildProcess sim({(build_dir() / "tools/edgesim/edgesim").string(),
                    "--cloudcore",
                    fmt::format("127.0.0.1:{}", c.replicas[0].tunnel_port),
                    "--data-dir",
                    c.etc.string(),
                    "--api",
                    "-",
                    "--nodes",
                    "2",
                    "--heartbeat",
                    "2",
                    "--backoff-base",
                    "0.2",
                    "--backoff-cap",
                    "1",
                    "--churn-interval",
                    "0",
                    "--connect-timeout",
                    "60",
                    "--duration",
                    "600",
                    "--settle",
                    "1"},
                   c.dir / "edgesim.log");
  INFO("edgesim: " << sim.log().substr(0, 4000));
  std::map<std::string, std::string> owners;
  REQUIRE(eventually([&] { return (owners = c.owners()).size() == 2; }, 60s, 200ms));
  for (const auto& [node, replica] : owners) CHECK(replica == "replica-0");

  // The pods are created through replica-1 (the one the nodes are not on).
  for (int i = 0; i < 2; ++i) {
    auto created = c.call(1, "POST", "/api/v1/namespaces/default/pods",
                          pod_json(fmt::format("p{}", i), node_name(i)));
    INFO(created.second);
    REQUIRE(created.first == 201);
  }
  for (int i = 0; i < 2; ++i)
    REQUIRE(eventually([&] { return c.phase(1, fmt::format("p{}", i)) == "Running"; }, 60s, 200ms));

  const std::string kubectl = "/usr/bin/kubectl";
  if (!fs::exists(kubectl)) {
    WARN("no kubectl on this machine");
    return;
  }
  const fs::path kubeconfig = c.kubeconfig(1);
  int runs = 0;
  auto run_kubectl = [&](std::vector<std::string> args) {
    std::vector<std::string> argv = {kubectl, "--kubeconfig", kubeconfig.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<ChildProcess>(argv, c.dir / fmt::format("kubectl-{}.out", ++runs));
  };

  // Every node's pod, through the replica that does not hold it.
  for (int i = 0; i < 2; ++i) {
    auto all = run_kubectl({"logs", fmt::format("p{}", i)});
    REQUIRE(all->wait(60s) == 0);
    CHECK(all->log() ==
          fmt::format("{0}/p{1}: line 1\n{0}/p{1}: line 2\n{0}/p{1}: line 3\n", node_name(i), i));
  }
  auto tail = run_kubectl({"logs", "p0", "--tail=1"});
  REQUIRE(tail->wait(60s) == 0);
  CHECK(tail->log() == node_name(0) + "/p0: line 3\n");
  // The API's own checks still come first.
  auto missing = run_kubectl({"logs", "p0", "-c", "sidecar"});
  CHECK(missing->wait(60s) != 0);
  CHECK_THAT(missing->log(), Catch::Contains("container sidecar is not valid for pod p0"));

  // -f: the lines the node adds keep arriving through the link.
  auto follow = run_kubectl({"logs", "-f", "p0"});
  REQUIRE(eventually(
      [&] { return follow->log().find(node_name(0) + "/p0: line 6\n") != std::string::npos; }, 60s,
      100ms));
  CHECK(follow->running());
  CHECK(follow->log().rfind(node_name(0) + "/p0: line 1\n", 0) == 0);
  follow->signal(SIGTERM);
  follow->wait(10s);
  // Two logs, the tail and the follow went over the link (the bad container never left replica-1).
  CHECK(metric(c, 1, "gantry_ha_link_forwarded_total") == 4);
  CHECK(metric(c, 0, "gantry_ha_link_served_total") == 4);

  // A node no replica holds: the answer names it and says so.
  sim.signal(SIGKILL);
  sim.wait(10s);
  REQUIRE(eventually([&] { return c.owners().empty(); }, 30s, 100ms));
  auto gone = c.call(1, "GET", "/api/v1/namespaces/default/pods/p0/log");
  CHECK(gone.first == 503);
  auto status = json::parse(gone.second, nullptr, false);
  REQUIRE(status.is_object());
  CHECK_THAT(status.value("message", ""),
             Catch::Contains("no cloudcore replica holds node \"" + node_name(0) + "\"'s tunnel"));
}

TEST_CASE("etcd killed and restarted: the tunnels stay, writes are 503, everything converges after",
          "[e2e]") {
  HaCluster c(2);
  for (int i = 0; i < 2; ++i) c.start(i);
  for (int i = 0; i < 2; ++i) c.wait_ready(i);
  REQUIRE(eventually([&] { return c.leaders().size() == 1; }, 30s, 200ms));
  constexpr int kEtcdNodes = 4;
  // A pod on every node first (edgesim churns the statuses of the pods it is given; it knows
  // them in the cloud's watch by their names, NODE-pN).
  auto pod_name = [](int i) { return node_name(i) + "-p0"; };
  for (int i = 0; i < kEtcdNodes; ++i) {
    auto created =
        c.call(0, "POST", "/api/v1/namespaces/default/pods", pod_json(pod_name(i), node_name(i)));
    INFO(created.second);
    REQUIRE(created.first == 201);
  }
  const fs::path report = c.dir / "edgesim-report.json";
  ChildProcess sim({(build_dir() / "tools/edgesim/edgesim").string(),
                    "--cloudcore",
                    fmt::format("127.0.0.1:{},127.0.0.1:{}", c.replicas[0].tunnel_port,
                                c.replicas[1].tunnel_port),
                    "--data-dir",
                    c.etc.string(),
                    "--api",
                    fmt::format("127.0.0.1:{}", c.replicas[0].api_port),
                    "--nodes",
                    std::to_string(kEtcdNodes),
                    "--heartbeat",
                    "2",
                    "--backoff-base",
                    "0.2",
                    "--backoff-cap",
                    "1",
                    "--churn-interval",
                    "1",
                    "--connect-timeout",
                    "60",
                    "--duration",
                    "30",
                    "--settle",
                    "60",
                    "--report",
                    report.string()},
                   c.dir / "edgesim.log");
  INFO("edgesim: " << sim.log().substr(0, 4000));
  INFO("replica-0: " << c.replicas[0].process->log().substr(0, 6000));
  INFO("replica-1: " << c.replicas[1].process->log().substr(0, 6000));
  REQUIRE(eventually([&] { return c.owners().size() == kEtcdNodes; }, 60s, 200ms));
  for (int i = 0; i < kEtcdNodes; ++i)
    REQUIRE(eventually([&] { return c.phase(0, pod_name(i)) == "Running"; }, 60s, 200ms));
  // Sums over both replicas' /metrics (a missing metric counts 0).
  auto sum = [&](const std::string& name) {
    double n = 0;
    for (int i = 0; i < 2; ++i) n += std::max(0.0, metric(c, i, name));
    return n;
  };
  REQUIRE(eventually([&] { return sum("gantry_ha_nodes_held") == kEtcdNodes; }, 30s, 200ms));
  const double sessions_before = sum("gantry_hub_sessions_opened_total");
  const double retries_before = sum("gantry_hub_status_store_retries_total");

  c.etcd.stop(/*kill=*/true);
  const auto down_at = std::chrono::steady_clock::now();
  // Writes: a Status that says the store is unreachable.
  auto write = c.call(1, "POST", "/api/v1/namespaces/default/configmaps",
                      R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"during"}})");
  CHECK(write.first == 503);
  auto status = json::parse(write.second, nullptr, false);
  REQUIRE(status.is_object());
  CHECK(status.value("kind", "") == "Status");
  CHECK_THAT(status.value("message", ""), Catch::Contains("etcd is unreachable"));
  // The leader stops its controllers (its renewals fail) while the tunnels stay with the replicas.
  CHECK(eventually([&] { return c.leaders().empty(); }, 30s, 200ms));
  // edgesim changes a status every second: some batches are held by the hubs, unacknowledged.
  CHECK(eventually([&] { return sum("gantry_hub_status_batches_held") > 0; }, 10s, 100ms));
  CHECK(sum("gantry_ha_nodes_held") == kEtcdNodes);
  CHECK(c.replicas[0].alive());
  CHECK(c.replicas[1].alive());
  const double down_s = seconds_since(down_at);

  c.etcd.start();
  const auto up_at = std::chrono::steady_clock::now();
  // The held batches are stored (and acknowledged) once etcd answers again.
  CHECK(eventually([&] { return sum("gantry_hub_status_batches_held") == 0; }, 30s, 100ms));
  const double stored_s = seconds_since(up_at);
  REQUIRE(eventually([&] { return c.leaders().size() == 1; }, 60s, 100ms));
  const double leader_s = seconds_since(up_at);
  REQUIRE(eventually([&] { return c.owners().size() == kEtcdNodes; }, 60s, 100ms));
  const double records_s = seconds_since(up_at);
  // What a user notices: not one node reconnected, neither during the outage nor after.
  CHECK(sum("gantry_hub_sessions_opened_total") == sessions_before);
  const double retries = sum("gantry_hub_status_store_retries_total") - retries_before;
  CHECK(retries > 0);
  REQUIRE(eventually(
      [&] {
        return c.call(1, "POST", "/api/v1/namespaces/default/configmaps",
                      R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"after"}})")
                   .first == 201;
      },
      60s, 200ms));
  for (int i = 0; i < kEtcdNodes; ++i) {
    INFO(node_name(i));
    CHECK(eventually([&] { return c.ready(1, node_name(i)) == "True"; }, 30s, 200ms));
    CHECK(c.phase(1, pod_name(i)) == "Running");
  }
  // edgesim ends its measurement and waits until every status change it made is acknowledged
  // and seen in the cloud's watch: nothing acknowledged was lost, no tunnel was dropped.
  REQUIRE(sim.wait(180s) == 0);
  auto r = json::parse(read_text(report), nullptr, false);
  REQUIRE(r.is_object());
  INFO(r.dump());
  CHECK(r["status"]["settled"] == true);
  CHECK(r["status"]["pods_unacked_at_end"] == 0);
  CHECK(r["status"]["pods_not_seen_in_watch_at_end"] == 0);
  CHECK(r["status"]["changes_generated"].get<int64_t>() > 0);
  CHECK(r["disconnects"] == 0);
  CHECK(sum("gantry_hub_sessions_opened_total") == sessions_before);
  fmt::print(
      "ha e2e: etcd killed for {:.1f} s with {} nodes on 2 replicas: {} reconnects, {} "
      "status store retries; after etcd is back: held statuses stored in {:.1f} s, a leader in "
      "{:.1f} s, every ownership record readable in {:.1f} s\n",
      down_s, kEtcdNodes, sum("gantry_hub_sessions_opened_total") - sessions_before, retries,
      stored_s, leader_s, records_s);
}

}  // namespace
}  // namespace gantry::test
