// Workloads end to end: the kubectl commands an operator uses for Deployments and DaemonSets,
// against the real cloudcore, with edgecore running the pods on a real containerd.
#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

#include "tests/e2e/edge/edge_cluster.h"

namespace gantry::edge_test {
namespace {

using namespace std::chrono_literals;
using test::eventually;

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// A container that prints its image's marker and stops at once on SIGTERM.
constexpr const char* kScript =
    "trap 'exit 0' TERM; cat /etc/gantry-image; while true; do sleep 1; done";

// `kubectl get pods -l SELECTOR -o jsonpath=EXPR` ("" on failure).
std::string pods_field(EdgeCluster& c, const std::string& selector, const std::string& expr) {
  auto r = c.kubectl({"get", "pods", "-l", selector, "-o", "jsonpath=" + expr});
  return r.exit_code == 0 ? r.text : "";
}

// Running containers on the node of pods whose name starts with `prefix`.
size_t running_on_node(EdgeCluster& c, const std::string& prefix) {
  auto all = c.runtime().list_containers({});
  if (!all.ok()) return SIZE_MAX;
  return std::count_if(all->begin(), all->end(), [&](const edge::ContainerInfo& ci) {
    auto pod = ci.labels.find(edge::kLabelPodName);
    return ci.state == edge::ContainerState::kRunning && pod != ci.labels.end() &&
           pod->second.starts_with(prefix);
  });
}

}  // namespace

TEST_CASE("A Deployment through kubectl: created, scaled, image changed, history, undo, delete",
          "[edge][workloads]") {
  EdgeCluster c;
  c.containerd().start_registry();
  std::string v1 =
      c.containerd().push_image(c.containerd().build_image("app", "v1", "one"), "app:v1");
  std::string v2 =
      c.containerd().push_image(c.containerd().build_image("app", "v2", "two"), "app:v2");

  auto create =
      c.kubectl({"create", "deployment", "web", "--image=" + v1, "--", "sh", "-c", kScript});
  INFO(create.text);
  REQUIRE(create.exit_code == 0);
  CHECK(contains(create.text, "deployment.apps/web created"));
  auto status = c.kubectl({"rollout", "status", "deployment/web", "--timeout=120s"}, 130s);
  INFO(status.text << c.edgecore_log());
  REQUIRE(status.exit_code == 0);
  CHECK(contains(status.text, "successfully rolled out"));
  CHECK(pods_field(c, "app=web", "{.items[*].spec.nodeName}") == EdgeCluster::kNode);
  REQUIRE(eventually([&] { return contains(c.kubectl({"logs", "deployment/web"}).text, "one"); }));

  // Scaled: two replicas, both on the one node, both Running.
  REQUIRE(c.kubectl({"scale", "deployment/web", "--replicas=2"}).exit_code == 0);
  REQUIRE(eventually(
      [&] {
        return c.kubectl({"get", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}"})
                   .text == "2";
      },
      90s));
  CHECK(pods_field(c, "app=web", "{.items[*].status.phase}") == "Running Running");

  // The image changed: rollout status waits until every replica runs v2.
  REQUIRE(c.kubectl({"set", "image", "deployment/web", "*=" + v2}).exit_code == 0);
  auto status2 = c.kubectl({"rollout", "status", "deployment/web", "--timeout=180s"}, 190s);
  INFO(status2.text);
  REQUIRE(status2.exit_code == 0);
  CHECK(contains(status2.text, "successfully rolled out"));
  REQUIRE(eventually(
      [&] {
        return pods_field(c, "app=web", "{.items[*].spec.containers[0].image}") == v2 + " " + v2;
      },
      60s));
  REQUIRE(eventually([&] { return contains(c.kubectl({"logs", "deployment/web"}).text, "two"); }));

  // History through the ReplicaSets: two revisions.
  auto history = c.kubectl({"rollout", "history", "deployment/web"});
  INFO(history.text);
  REQUIRE(history.exit_code == 0);
  CHECK(contains(history.text, "REVISION"));
  CHECK(contains(history.text, "\n1 "));
  CHECK(contains(history.text, "\n2 "));
  auto rs = c.kubectl({"get", "replicasets", "-l", "app=web", "-o", "name"});
  CHECK(std::count(rs.text.begin(), rs.text.end(), '\n') == 2);

  // Undo: back to v1 (revision 3), the pods run the old image again.
  auto undo = c.kubectl({"rollout", "undo", "deployment/web"});
  INFO(undo.text);
  REQUIRE(undo.exit_code == 0);
  CHECK(contains(undo.text, "rolled back"));
  REQUIRE(c.kubectl({"rollout", "status", "deployment/web", "--timeout=180s"}, 190s).exit_code ==
          0);
  CHECK(c.kubectl({"get", "deployment", "web", "-o",
                   "jsonpath={.spec.template.spec.containers[0].image}"})
            .text == v1);
  REQUIRE(eventually(
      [&] {
        return pods_field(c, "app=web", "{.items[*].spec.containers[0].image}") == v1 + " " + v1;
      },
      60s));
  CHECK(contains(c.kubectl({"rollout", "history", "deployment/web"}).text, "\n3 "));

  // Restart: new pods of the same image (a template annotation), revision 4.
  auto before = pods_field(c, "app=web", "{.items[*].metadata.uid}");
  REQUIRE(c.kubectl({"rollout", "restart", "deployment/web"}).exit_code == 0);
  REQUIRE(c.kubectl({"rollout", "status", "deployment/web", "--timeout=180s"}, 190s).exit_code ==
          0);
  REQUIRE(eventually([&] {
    auto uids = pods_field(c, "app=web", "{.items[*].metadata.uid}");
    return std::count(uids.begin(), uids.end(), ' ') == 1 &&
           uids.find(before.substr(0, before.find(' '))) == std::string::npos;
  }));
  CHECK(contains(c.kubectl({"rollout", "history", "deployment/web"}).text, "\n4 "));

  // Delete cascades: the ReplicaSets and pods go, and so do the containers on the node.
  auto del = c.kubectl({"delete", "deployment", "web"});
  INFO(del.text);
  REQUIRE(del.exit_code == 0);
  REQUIRE(eventually(
      [&] {
        return c.kubectl({"get", "pods,replicasets", "-l", "app=web", "-o", "name"}).text.empty();
      },
      90s));
  CHECK(eventually([&] { return running_on_node(c, "web-") == 0; }));
}

TEST_CASE("A DaemonSet with a nodeSelector reaches the node when labelled and leaves when not",
          "[edge][workloads]") {
  EdgeCluster c;
  auto applied = c.kubectl_apply(fmt::format(R"(apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: gw
  namespace: default
spec:
  selector:
    matchLabels: {{app: gw}}
  template:
    metadata:
      labels: {{app: gw}}
    spec:
      nodeSelector: {{gantry.test/gateway: "yes"}}
      terminationGracePeriodSeconds: 2
      containers:
      - name: gw
        image: {}
        command: ["sh", "-c", "{}"]
)",
                                             test::kBusyboxImage, kScript));
  INFO(applied.text);
  REQUIRE(applied.exit_code == 0);
  auto ds_field = [&](const char* expr) {
    return c.kubectl({"get", "daemonset", "gw", "-o", std::string("jsonpath=") + expr}).text;
  };
  // Observed, and no node matches yet.
  REQUIRE(eventually([&] { return ds_field("{.status.observedGeneration}") == "1"; }));
  CHECK(ds_field("{.status.desiredNumberScheduled}") == "0");
  CHECK(pods_field(c, "app=gw", "{.items[*].metadata.name}").empty());

  REQUIRE(c.kubectl({"label", "node", EdgeCluster::kNode, "gantry.test/gateway=yes"}).exit_code ==
          0);
  REQUIRE(eventually([&] { return ds_field("{.status.numberReady}") == "1"; }, 90s));
  CHECK(pods_field(c, "app=gw", "{.items[*].spec.nodeName}") == EdgeCluster::kNode);
  CHECK(eventually([&] { return running_on_node(c, "gw-") == 1; }));

  REQUIRE(c.kubectl({"label", "node", EdgeCluster::kNode, "gantry.test/gateway-"}).exit_code == 0);
  REQUIRE(eventually([&] { return pods_field(c, "app=gw", "{.items[*].metadata.name}").empty(); },
                     90s));
  CHECK(ds_field("{.status.desiredNumberScheduled}") == "0");
  CHECK(eventually([&] { return running_on_node(c, "gw-") == 0; }));
}

TEST_CASE(
    "With the cloud down a power-cut edge brings its workload pods back, and the cloud's "
    "return creates no duplicates",
    "[edge][workloads]") {
  EdgeCluster c;
  REQUIRE(c.kubectl({"label", "node", EdgeCluster::kNode, "gantry.test/gateway=yes"}).exit_code ==
          0);
  REQUIRE(c.kubectl({"create", "deployment", "web", "--replicas=2",
                     std::string("--image=") + test::kBusyboxImage, "--", "sh", "-c", kScript})
              .exit_code == 0);
  REQUIRE(c.kubectl_apply(fmt::format(R"(apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: gw
  namespace: default
spec:
  selector:
    matchLabels: {{app: gw}}
  template:
    metadata:
      labels: {{app: gw}}
    spec:
      nodeSelector: {{gantry.test/gateway: "yes"}}
      containers:
      - name: gw
        image: {}
        command: ["sh", "-c", "{}"]
)",
                                      test::kBusyboxImage, kScript))
              .exit_code == 0);
  REQUIRE(c.kubectl({"rollout", "status", "deployment/web", "--timeout=120s"}, 130s).exit_code ==
          0);
  REQUIRE(c.kubectl({"rollout", "status", "daemonset/gw", "--timeout=120s"}, 130s).exit_code == 0);
  auto uids = [&] { return pods_field(c, "app in (web,gw)", "{.items[*].metadata.uid}"); };
  auto started = [&] {
    return pods_field(c, "app in (web,gw)",
                      "{.items[*].status.containerStatuses[0].state.running.startedAt}");
  };
  std::string uids_before = uids();
  std::string started_before = started();
  REQUIRE(std::count(uids_before.begin(), uids_before.end(), ' ') == 2);  // three pods

  c.kill_cloudcore();
  c.kill_edgecore();
  c.power_cut_containers();
  REQUIRE(eventually([&] { return running_on_node(c, "web-") + running_on_node(c, "gw-") == 0; }));
  c.start_edgecore();  // no cloud: the node restarts its workload pods from its own store
  INFO(c.edgecore_log());
  REQUIRE(eventually(
      [&] { return running_on_node(c, "web-") == 2 && running_on_node(c, "gw-") == 1; }, 60s));

  c.start_cloudcore();
  // The statuses of what the edge restarted offline reach the cloud ...
  REQUIRE(eventually(
      [&] {
        std::string now = started();
        return std::count(now.begin(), now.end(), ' ') == 2 && now != started_before;
      },
      60s));
  REQUIRE(eventually(
      [&] {
        return c.kubectl({"get", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}"})
                       .text == "2" &&
               c.kubectl({"get", "daemonset", "gw", "-o", "jsonpath={.status.numberReady}"}).text ==
                   "1";
      },
      60s));
  // ... and no controller made another pod: the same three pods, one ReplicaSet, three containers.
  CHECK(uids() == uids_before);
  CHECK(std::count(uids_before.begin(), uids_before.end(), ' ') == 2);
  auto rs = c.kubectl({"get", "replicasets", "-l", "app=web", "-o", "name"});
  CHECK(std::count(rs.text.begin(), rs.text.end(), '\n') == 1);
  CHECK(running_on_node(c, "web-") == 2);
  CHECK(running_on_node(c, "gw-") == 1);
}

}  // namespace gantry::edge_test
