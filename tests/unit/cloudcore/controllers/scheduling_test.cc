#include "cloudcore/controllers/scheduling.h"

#include <catch2/catch.hpp>

namespace gantry::cloud::controllers {
namespace {

using json = nlohmann::json;
using Op = MatchExpression::Operator;

NodeState ready_node(std::string name, std::map<std::string, std::string> labels = {}) {
  NodeState n;
  n.name = std::move(name);
  n.labels = std::move(labels);
  n.reported = true;
  n.readiness = NodeReadiness::kReady;
  n.allocatable_cpu_millis = 4000;
  n.allocatable_memory_bytes = 8LL << 30;
  n.allocatable_pods = 110;
  return n;
}

TEST_CASE("node selector matches only nodes carrying every selected label", "[controllers]") {
  auto [selector, labels, expected] =
      GENERATE(table<std::map<std::string, std::string>, std::map<std::string, std::string>, bool>({
          {{}, {}, true},
          {{}, {{"a", "1"}}, true},
          {{{"a", "1"}}, {{"a", "1"}, {"b", "2"}}, true},
          {{{"a", "1"}}, {{"a", "2"}}, false},
          {{{"a", "1"}}, {}, false},
          {{{"a", "1"}, {"b", "2"}}, {{"a", "1"}}, false},
      }));
  CHECK(matches_node_selector(selector, labels) == expected);
}

TEST_CASE("required node affinity operators In NotIn Exists DoesNotExist", "[controllers]") {
  std::map<std::string, std::string> labels = {{"zone", "east"}, {"gpu", "yes"}};
  auto [op, key, values, expected] =
      GENERATE(table<Op, std::string, std::vector<std::string>, bool>({
          {Op::kIn, "zone", {"east", "west"}, true},
          {Op::kIn, "zone", {"west"}, false},
          {Op::kIn, "missing", {"east"}, false},
          {Op::kNotIn, "zone", {"west"}, true},
          {Op::kNotIn, "zone", {"east"}, false},
          {Op::kNotIn, "missing", {"east"}, true},
          {Op::kExists, "gpu", {}, true},
          {Op::kExists, "missing", {}, false},
          {Op::kDoesNotExist, "missing", {}, true},
          {Op::kDoesNotExist, "gpu", {}, false},
      }));
  std::vector<NodeSelectorTerm> terms = {{{{key, op, values}}}};
  CHECK(matches_affinity(terms, labels) == expected);
}

TEST_CASE("affinity terms are ORed and expressions within a term ANDed", "[controllers]") {
  std::map<std::string, std::string> labels = {{"zone", "east"}};
  NodeSelectorTerm east_and_gpu{{{"zone", Op::kIn, {"east"}}, {"gpu", Op::kExists, {}}}};
  NodeSelectorTerm east{{{"zone", Op::kIn, {"east"}}}};
  CHECK_FALSE(matches_affinity({east_and_gpu}, labels));
  CHECK(matches_affinity({east_and_gpu, east}, labels));
  CHECK(matches_affinity({}, labels));
  CHECK_FALSE(matches_affinity({NodeSelectorTerm{}}, labels));
}

TEST_CASE("taints are tolerated by Equal and Exists tolerations with a matching effect",
          "[controllers]") {
  using TOp = Toleration::Operator;
  Taint taint{"dedicated", "edge", TaintEffect::kNoSchedule};
  auto [toleration, expected] = GENERATE(table<Toleration, bool>({
      {Toleration{"dedicated", TOp::kEqual, "edge", TaintEffect::kNoSchedule}, true},
      {Toleration{"dedicated", TOp::kEqual, "edge", std::nullopt}, true},
      {Toleration{"dedicated", TOp::kEqual, "other", std::nullopt}, false},
      {Toleration{"dedicated", TOp::kEqual, "edge", TaintEffect::kNoExecute}, false},
      {Toleration{"dedicated", TOp::kExists, "", std::nullopt}, true},
      {Toleration{"", TOp::kExists, "", std::nullopt}, true},
      {Toleration{"", TOp::kExists, "", TaintEffect::kNoExecute}, false},
      {Toleration{"other", TOp::kExists, "", std::nullopt}, false},
  }));
  CHECK(tolerates({toleration}, taint) == expected);
}

TEST_CASE("a pod goes only to a node that passes every filter", "[controllers]") {
  PodRequest pod;
  pod.cpu_millis = 1000;
  pod.memory_bytes = 1LL << 30;
  NodeState n = ready_node("n1", {{"role", "edge"}});
  std::string name = GENERATE(as<std::string>{}, "fits", "cordoned", "unreachable", "not-ready",
                              "never-reported", "selector", "affinity", "taint", "prefer-taint",
                              "tolerated-taint", "cpu", "memory", "pods", "unlimited");
  bool fits = true;
  if (name == "cordoned") n.cordoned = true, fits = false;
  if (name == "unreachable") n.unreachable = true, fits = false;
  if (name == "not-ready") n.readiness = NodeReadiness::kNotReady, fits = false;
  if (name == "never-reported") n.reported = false, fits = false;
  if (name == "selector") pod.node_selector = {{"role", "core"}}, fits = false;
  if (name == "affinity")
    pod.required_affinity = {{{{"role", Op::kNotIn, {"edge"}}}}}, fits = false;
  if (name == "taint") n.taints = {{"k", "v", TaintEffect::kNoExecute}}, fits = false;
  if (name == "prefer-taint") n.taints = {{"k", "v", TaintEffect::kPreferNoSchedule}};
  if (name == "tolerated-taint") {
    n.taints = {{"k", "v", TaintEffect::kNoSchedule}};
    pod.tolerations = {{"k", Toleration::Operator::kEqual, "v", TaintEffect::kNoSchedule}};
  }
  if (name == "cpu") n.requested_cpu_millis = 3500, fits = false;
  if (name == "memory") n.requested_memory_bytes = 7LL << 30 | 1, fits = false;
  if (name == "pods") n.pod_count = 110, fits = false;
  if (name == "unlimited") {
    // Resources the edge did not report do not limit.
    n.allocatable_cpu_millis = n.allocatable_memory_bytes = n.allocatable_pods = 0;
    n.requested_cpu_millis = 100000;
  }
  INFO(name);
  Decision d = schedule(pod, {n});
  CHECK(d.node.has_value() == fits);
  if (fits) CHECK(*d.node == "n1");
  if (!fits) CHECK(d.message.starts_with("0/1 nodes are available: 1 "));
}

TEST_CASE("pods of one owner spread across nodes, then the emptiest node wins", "[controllers]") {
  PodRequest pod;
  pod.owner = "rs-1";
  NodeState a = ready_node("a");
  NodeState b = ready_node("b");
  NodeState c = ready_node("c");
  a.pods_by_owner = {{"rs-1", 1}};
  a.pod_count = 1;
  b.pods_by_owner = {{"rs-1", 1}};
  b.pod_count = 1;
  c.pod_count = 5;  // busier, but has none of this owner
  CHECK(*schedule(pod, {a, b, c}).node == "c");

  c.pods_by_owner = {{"rs-1", 1}};
  CHECK(*schedule(pod, {a, b, c}).node == "a");  // tie on owner: fewest pods, then name

  PodRequest other;
  other.owner = "rs-2";
  b.pod_count = 0;
  CHECK(*schedule(other, {a, b, c}).node == "b");
}

TEST_CASE("a Ready node is preferred to one whose readiness is unknown", "[controllers]") {
  NodeState unknown = ready_node("a");
  unknown.readiness = NodeReadiness::kUnknown;
  NodeState ready = ready_node("b");
  ready.pod_count = 50;
  CHECK(*schedule(PodRequest{}, {unknown, ready}).node == "b");
  CHECK(*schedule(PodRequest{}, {unknown}).node == "a");
}

TEST_CASE("the unschedulable message counts nodes per reason", "[controllers]") {
  PodRequest pod;
  pod.node_selector = {{"role", "edge"}};
  pod.cpu_millis = 2000;
  NodeState s1 = ready_node("s1");
  NodeState s2 = ready_node("s2");
  NodeState t1 = ready_node("t1", {{"role", "edge"}});
  t1.taints = {{"dedicated", "gpu", TaintEffect::kNoSchedule}};
  NodeState r1 = ready_node("r1", {{"role", "edge"}});
  r1.requested_cpu_millis = 3000;
  NodeState u1 = ready_node("u1", {{"role", "edge"}});
  u1.unreachable = true;
  Decision d = schedule(pod, {s1, s2, t1, r1, u1});
  REQUIRE_FALSE(d.node);
  CHECK(d.message ==
        "0/5 nodes are available: 1 node(s) were unreachable, 2 node(s) didn't match node "
        "selector, 1 node(s) had untolerated taint {dedicated: gpu}, 1 Insufficient cpu.");
  CHECK(schedule(pod, {}).message == "0/0 nodes are available.");
}

TEST_CASE("pod requests, owner, selector, affinity and tolerations read from Kubernetes JSON",
          "[controllers]") {
  json pod = json::parse(R"({
    "metadata": {"name": "web", "labels": {"app": "web"},
                 "ownerReferences": [{"uid": "rs-uid", "kind": "ReplicaSet", "name": "web"}]},
    "spec": {
      "nodeSelector": {"role": "edge"},
      "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [
          {"key": "zone", "operator": "In", "values": ["east"]},
          {"key": "old", "operator": "DoesNotExist"}]},
          {"matchExpressions": [{"key": "x", "operator": "Gt", "values": ["1"]}]}]}}},
      "tolerations": [{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"},
                      {"operator": "Exists"}],
      "containers": [{"name": "a", "image": "x"}]}})");
  v1::PodManifest manifest;
  auto* a = manifest.add_containers();
  a->mutable_resources()->set_cpu_request_millis(250);
  a->mutable_resources()->set_memory_limit_bytes(1 << 20);
  auto* b = manifest.add_containers();
  b->mutable_resources()->set_cpu_request_millis(250);
  manifest.add_init_containers()->mutable_resources()->set_cpu_request_millis(800);
  PodRequest r = pod_request_from_json(pod, manifest);
  CHECK(r.owner == "rs-uid");
  CHECK(r.node_selector == std::map<std::string, std::string>{{"role", "edge"}});
  REQUIRE(r.required_affinity.size() == 2);
  CHECK(r.required_affinity[0].match_expressions.size() == 2);
  CHECK(r.required_affinity[1].match_expressions.empty());  // unknown operator: matches nothing
  CHECK(matches_affinity(r.required_affinity, {{"zone", "east"}}));
  CHECK_FALSE(matches_affinity(r.required_affinity, {{"zone", "east"}, {"old", "1"}, {"x", "5"}}));
  REQUIRE(r.tolerations.size() == 2);
  CHECK(r.tolerations[0].effect == TaintEffect::kNoSchedule);
  CHECK(r.cpu_millis == 800);          // the init container needs more than the sum
  CHECK(r.memory_bytes == (1 << 20));  // a limit without a request is the request

  pod["metadata"].erase("ownerReferences");
  CHECK(pod_request_from_json(pod, manifest).owner == "app=web");
}

TEST_CASE("node labels, taints, cordon and status read into the node state", "[controllers]") {
  json node = json::parse(R"({"metadata": {"name": "n1", "labels": {"role": "edge"}},
    "spec": {"unschedulable": true, "taints": [{"key": "k", "value": "v", "effect": "NoExecute"},
                                               {"key": "bad", "effect": "Sometimes"}]}})");
  NodeState n;
  node_spec_from_json(node, n);
  CHECK(n.labels.at("role") == "edge");
  CHECK(n.cordoned);
  REQUIRE(n.taints.size() == 1);
  CHECK(n.taints[0].effect == TaintEffect::kNoExecute);

  v1::StoredStatus status;
  status.set_unreachable(true);
  auto* ns = status.mutable_node();
  ns->mutable_allocatable()->set_cpu_millis(2000);
  ns->mutable_allocatable()->set_pods(10);
  auto* c = ns->add_conditions();
  c->set_type(v1::NODE_CONDITION_READY);
  c->set_status(v1::CONDITION_STATUS_FALSE);
  node_status_into(status, n);
  CHECK(n.reported);
  CHECK(n.unreachable);
  CHECK(n.readiness == NodeReadiness::kNotReady);
  CHECK(n.allocatable_cpu_millis == 2000);
  CHECK(n.allocatable_pods == 10);
}

}  // namespace
}  // namespace gantry::cloud::controllers
