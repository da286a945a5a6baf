// Events end to end: a pod whose image cannot be pulled, on a real containerd, and what `kubectl
// describe pod` then shows — the kubelet's Failed and BackOff events, sent by edgecore through
// the tunnel and written by cloudcore.
#include <catch2/catch.hpp>

#include "tests/e2e/edge/edge_cluster.h"

namespace gantry::edge_test {
namespace {

using namespace std::chrono_literals;
using test::eventually;

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

TEST_CASE(
    "kubectl describe pod shows why a pod with a bad image does not start, describe node its "
    "events",
    "[edge]") {
  EdgeCluster c;
  // Nothing listens on port 1: the pull fails at once, every time.
  const std::string image = "127.0.0.1:1/gantry/absent:1";
  REQUIRE(c.kubectl_apply(c.pod_yaml("badimage", "true", image)).exit_code == 0);
  Output described;
  bool shown = eventually(
      [&] {
        described = c.kubectl({"describe", "pod", "badimage"});
        return contains(described.text, "Failed to pull image \"" + image + "\"") &&
               contains(described.text, "Back-off pulling image \"" + image + "\"");
      },
      90s, 500ms);
  INFO(described.text);
  INFO(c.edgecore_log());
  REQUIRE(shown);
  // The Events table as kubectl prints it: type, reason, source, message.
  CHECK(contains(described.text, "Events:"));
  CHECK(contains(described.text, "Warning  Failed"));
  CHECK(contains(described.text, "kubelet"));
  CHECK(contains(described.text, "Pulling image \"" + image + "\""));
  CHECK(contains(described.text, "Error: ErrImagePull"));
  CHECK(contains(described.text, "Normal   BackOff"));
  // And `kubectl get events` lists them for the pod.
  auto events = c.kubectl({"get", "events", "--field-selector", "involvedObject.name=badimage"});
  CHECK(events.exit_code == 0);
  CHECK(contains(events.text, "pod/badimage"));
  // The node's own events: it became Ready when its edgecore first reported.
  Output node;
  CHECK(eventually(
      [&] {
        node = c.kubectl({"describe", "node", EdgeCluster::kNode});
        return contains(node.text, "NodeReady") &&
               contains(node.text,
                        std::string("Node ") + EdgeCluster::kNode + " status is now: NodeReady");
      },
      30s, 500ms));
  INFO(node.text);
}

}  // namespace
}  // namespace gantry::edge_test
