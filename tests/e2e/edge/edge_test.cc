// The edge runtime end to end: kubectl against the real cloudcore, edgecore running pods on a real
// containerd. What is asserted is what an operator sees: kubectl's output and what runs on the
// node.
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <fstream>
#include <functional>
#include <regex>
#include <sstream>

#include "tests/e2e/edge/edge_cluster.h"

namespace gantry::edge_test {
namespace {

using namespace std::chrono_literals;
using test::eventually;

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

TEST_CASE("A pod applied in the cloud runs on the edge and reports Running and its logs come back",
          "[edge]") {
  EdgeCluster c;
  auto started = std::chrono::steady_clock::now();
  auto r = c.kubectl_apply(c.pod_yaml(
      "hello",
      "echo hello from gantry; i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"));
  INFO(r.text);
  REQUIRE(r.exit_code == 0);
  bool running =
      eventually([&] { return c.pod_field("hello", "{.status.phase}") == "Running"; }, 60s, 50ms);
  auto latency = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  INFO(c.edgecore_log());
  REQUIRE(running);
  // Figure for docs/edge.md: cloud apply -> Running seen through the API.
  WARN(fmt::format("pod start latency (kubectl apply -> Running in the API): {} ms",
                   latency.count()));
  REQUIRE(eventually([&] {
    return c.pod_field("hello", "{.status.conditions[?(@.type==\"Ready\")].status}") == "True";
  }));
  std::string ip = c.pod_field("hello", "{.status.podIP}");
  CHECK(std::regex_match(ip, std::regex(R"(\d+\.\d+\.\d+\.\d+)")));
  auto on_node = c.running_containers_of("hello");
  REQUIRE(on_node.size() == 1);
  CHECK(on_node[0].labels.at(edge::kLabelPodNamespace) == "default");

  // kubectl logs, with --tail, then -f until two more ticks arrive.
  REQUIRE(eventually([&] { return contains(c.kubectl({"logs", "hello"}).text, "tick 2"); }));
  auto logs = c.kubectl({"logs", "hello"});
  CHECK(logs.exit_code == 0);
  CHECK(contains(logs.text, "hello from gantry"));
  auto tail = c.kubectl({"logs", "hello", "--tail=1"});
  CHECK(std::count(tail.text.begin(), tail.text.end(), '\n') == 1);
  CHECK(contains(tail.text, "tick"));

  test::ChildProcess follow(
      {"/usr/bin/env", "kubectl", "--kubeconfig", (c.dir() / "cloud" / "admin.kubeconfig").string(),
       "logs", "-f", "hello", "--tail=1"},
      c.dir() / "follow.log");
  auto ticks = [&] {
    static const std::regex tick(R"(tick (\d+))");
    std::string text = follow.log();
    std::vector<int> seen;
    for (std::sregex_iterator it(text.begin(), text.end(), tick), end; it != end; ++it) {
      seen.push_back(std::stoi((*it)[1]));
    }
    return seen;
  };
  REQUIRE(eventually([&] { return ticks().size() >= 3; }, 30s, 100ms));
  auto seen = ticks();
  CHECK(seen[2] == seen[0] + 2);  // followed in order, nothing lost
  follow.signal(SIGTERM);
  follow.wait();
}

TEST_CASE("A container that exits 1 is restarted with growing back-off and shows CrashLoopBackOff",
          "[edge]") {
  EdgeCluster c("pods:\n  crash_backoff_base: 1s\n  crash_backoff_cap: 8s");
  REQUIRE(c.kubectl_apply(c.pod_yaml("crash", "echo boom; exit 1")).exit_code == 0);
  // Reason, message and restart count from one read, so that they belong together.
  std::vector<std::string> messages;
  int restarts = 0;
  bool looped = eventually(
      [&] {
        std::string fields = c.pod_field("crash",
                                         "{.status.containerStatuses[0].state.waiting.reason}|"
                                         "{.status.containerStatuses[0].state.waiting.message}|"
                                         "{.status.containerStatuses[0].restartCount}");
        std::vector<std::string> parts;
        std::stringstream in(fields);
        for (std::string part; std::getline(in, part, '|');) parts.push_back(part);
        if (parts.size() != 3) return false;
        const std::string& message = parts[1];
        if (parts[0] == "CrashLoopBackOff" && !message.empty() &&
            (messages.empty() || messages.back() != message)) {
          messages.push_back(message);
        }
        restarts = std::atoi(parts[2].c_str());
        return restarts >= 3 && messages.size() >= 2;
      },
      120s, 100ms);
  INFO(c.edgecore_log());
  INFO(fmt::format("restarts {}; messages: {}", restarts, fmt::join(messages, " | ")));
  REQUIRE(looped);
  // The back-off grows from the base (1s) by doubling up to the cap (8s). A loaded machine may poll
  // past some of the waits, so what is checked is that every delay seen is a step of that series
  // and that they grow.
  std::vector<int> delays;
  static const std::regex delay_re(R"(back-off (\d+)s)");
  for (const auto& m : messages) {
    std::smatch match;
    if (std::regex_search(m, match, delay_re)) delays.push_back(std::stoi(match[1]));
  }
  REQUIRE(delays.size() >= 2);
  for (int d : delays) CHECK((d == 1 || d == 2 || d == 4 || d == 8));
  CHECK(delays.front() <= 2);
  CHECK(std::adjacent_find(delays.begin(), delays.end(), std::greater_equal<>()) == delays.end());
  // kubectl's STATUS column (the server's Table) says so while the container waits.
  CHECK(eventually(
      [&] {
        return contains(c.kubectl({"get", "pod", "crash"}).text, "CrashLoopBackOff");
      },
      60s, 100ms));
  CHECK(c.pod_field("crash", "{.status.containerStatuses[0].lastState.terminated.exitCode}") ==
        "1");
  auto previous = c.kubectl({"logs", "crash", "--previous"});
  CHECK(contains(previous.text, "boom"));
}

TEST_CASE("With the cloud down a killed edgecore and a restarted machine bring the pod back",
          "[edge]") {
  EdgeCluster c;
  REQUIRE(c.kubectl_apply(c.pod_yaml("keep", "echo up; sleep 3600")).exit_code == 0);
  REQUIRE(eventually([&] { return c.pod_field("keep", "{.status.phase}") == "Running"; }, 60s));
  REQUIRE(c.running_containers_of("keep").size() == 1);
  std::string started_before =
      c.pod_field("keep", "{.status.containerStatuses[0].state.running.startedAt}");
  REQUIRE_FALSE(started_before.empty());

  c.kill_cloudcore();
  c.kill_edgecore();
  c.power_cut_containers();
  REQUIRE(eventually([&] { return c.running_containers_of("keep").empty(); }, 30s));

  auto started = std::chrono::steady_clock::now();
  c.start_edgecore();  // no cloud
  bool back = eventually([&] { return c.running_containers_of("keep").size() == 1; }, 60s, 50ms);
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - started);
  INFO(c.edgecore_log());
  REQUIRE(back);
  WARN(fmt::format("offline recovery after a machine-like restart: {} ms", took.count()));
  CHECK(took < 30s);
  std::string id = c.running_containers_of("keep")[0].id;

  c.start_cloudcore();
  REQUIRE(eventually(
      [&] {
        return c.pod_field("keep", "{.status.phase}") == "Running" &&
               c.pod_field("keep", "{.status.conditions[?(@.type==\"Ready\")].status}") == "True";
      },
      60s));
  // What happened offline reached the cloud: the container the edge started on its own.
  REQUIRE(eventually(
      [&] {
        std::string now =
            c.pod_field("keep", "{.status.containerStatuses[0].state.running.startedAt}");
        return !now.empty() && now != started_before;
      },
      60s));
  // The cloud's return recreates nothing.
  auto after = c.running_containers_of("keep");
  REQUIRE(after.size() == 1);
  CHECK(after[0].id == id);
  CHECK(c.containers_of("keep").size() <= 2);
}

TEST_CASE(
    "A new image is pulled before the old container stops and a missing one leaves it running",
    "[edge]") {
  EdgeCluster c;
  std::string registry = c.containerd().start_registry();
  std::string v1 =
      c.containerd().push_image(c.containerd().build_image("app", "v1", "one"), "app:v1");
  std::string v2 =
      c.containerd().push_image(c.containerd().build_image("app", "v2", "two"), "app:v2");
  REQUIRE(c.kubectl_apply(c.pod_yaml("app", "cat /etc/gantry-image; sleep 3600", v1)).exit_code ==
          0);
  REQUIRE(eventually([&] { return c.pod_field("app", "{.status.phase}") == "Running"; }, 90s));
  REQUIRE(eventually([&] { return contains(c.kubectl({"logs", "app"}).text, "one"); }));

  REQUIRE(c.kubectl_apply(c.pod_yaml("app", "cat /etc/gantry-image; sleep 3600", v2)).exit_code ==
          0);
  REQUIRE(eventually(
      [&] {
        return c.pod_field("app", "{.status.containerStatuses[0].image}") == v2 &&
               c.pod_field("app", "{.status.containerStatuses[0].state.running.startedAt}") != "";
      },
      90s));
  REQUIRE(eventually([&] { return contains(c.kubectl({"logs", "app"}).text, "two"); }));
  std::string log = c.edgecore_log();
  auto pulled = log.find("pulled " + v2);
  auto replaced = log.find("container main replaced");
  INFO(log);
  REQUIRE(pulled != std::string::npos);
  REQUIRE(replaced != std::string::npos);
  CHECK(pulled < replaced);
  std::smatch m;
  REQUIRE(std::regex_search(log, m, std::regex(R"(replaced \([^)]*\), down for (\d+) ms)")));
  WARN(fmt::format("image change interruption (old stopped -> new started): {} ms", m[1].str()));

  // An image the registry does not have: the v2 container keeps running.
  std::string missing = registry + "/app:v404";
  std::string running_id = c.running_containers_of("app").at(0).id;
  REQUIRE(
      c.kubectl_apply(c.pod_yaml("app", "cat /etc/gantry-image; sleep 3600", missing)).exit_code ==
      0);
  REQUIRE(eventually(
      [&] {
        std::string reason =
            c.pod_field("app", "{.status.containerStatuses[0].state.waiting.reason}");
        return reason == "ErrImagePull" || reason == "ImagePullBackOff";
      },
      90s));
  CHECK(c.pod_field("app", "{.status.phase}") == "Running");
  auto still = c.running_containers_of("app");
  REQUIRE(still.size() == 1);
  CHECK(still[0].id == running_id);
}

TEST_CASE("A configMap volume changes on the edge when the configmap changes in the cloud",
          "[edge]") {
  EdgeCluster c;
  auto configmap = [](const std::string& value) {
    return fmt::format(R"(apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  namespace: default
data:
  greeting: "{}"
)",
                       value);
  };
  REQUIRE(c.kubectl_apply(configmap("first")).exit_code == 0);
  std::string pod =
      c.pod_yaml("reader", "while true; do cat /etc/app/greeting; echo; sleep 1; done") +
      R"(    volumeMounts:
    - name: conf
      mountPath: /etc/app
  volumes:
  - name: conf
    configMap:
      name: app-config
)";
  REQUIRE(c.kubectl_apply(pod).exit_code == 0);
  REQUIRE(eventually([&] { return contains(c.kubectl({"logs", "reader"}).text, "first"); }, 60s));
  REQUIRE(c.kubectl_apply(configmap("second")).exit_code == 0);
  INFO(c.edgecore_log());
  REQUIRE(eventually(
      [&] {
        return contains(c.kubectl({"logs", "reader", "--tail=2"}).text, "second");
      },
      60s));
  CHECK(c.containers_of("reader").size() == 1);  // updated in place, not restarted
}

TEST_CASE("A pod deleted in the cloud is stopped and removed on the edge and then disappears",
          "[edge]") {
  EdgeCluster c;
  REQUIRE(c.kubectl_apply(c.pod_yaml("gone", "sleep 3600")).exit_code == 0);
  REQUIRE(eventually([&] { return c.pod_field("gone", "{.status.phase}") == "Running"; }, 60s));
  REQUIRE(c.running_containers_of("gone").size() == 1);
  auto del = c.kubectl({"delete", "pod", "gone", "--wait=false"});
  INFO(del.text);
  REQUIRE(del.exit_code == 0);
  INFO(c.edgecore_log());
  REQUIRE(eventually([&] { return c.containers_of("gone").empty(); }, 60s));
  REQUIRE(eventually(
      [&] {
        return contains(c.kubectl({"get", "pod", "gone"}).text, "NotFound");
      },
      60s));
}

}  // namespace
}  // namespace gantry::edge_test
