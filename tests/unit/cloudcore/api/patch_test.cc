#include "cloudcore/api/patch.h"

#include <catch2/catch.hpp>

using namespace gantry::cloud::api;
using nlohmann::json;

namespace {
const json kPod = json::parse(R"({
  "metadata": {"name": "web", "labels": {"app": "web", "old": "x"}, "finalizers": ["a"]},
  "spec": {
    "containers": [
      {"name": "main", "image": "nginx:1.24", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
       "ports": [{"containerPort": 80}]},
      {"name": "side", "image": "busybox"}
    ],
    "volumes": [{"name": "v1", "emptyDir": {}}],
    "tolerations": [{"key": "a"}]
  }
})");
}  // namespace

TEST_CASE("JSON merge patch replaces lists and deletes with null", "[api][patch]") {
  auto out =
      apply_merge_patch(kPod, json::parse(R"({"metadata": {"labels": {"old": null, "new": "y"}},
                                                      "spec": {"containers": [{"name": "only"}]}})"));
  REQUIRE(out.ok());
  CHECK((*out)["metadata"]["labels"] == json({{"app", "web"}, {"new", "y"}}));
  CHECK((*out)["spec"]["containers"].size() == 1);
  CHECK_FALSE(apply_merge_patch(kPod, json::array()).ok());
}

TEST_CASE("strategic merge patch merges containers by name and env by name", "[api][patch]") {
  auto out = apply_strategic_merge_patch(kPod, json::parse(R"({
    "spec": {"containers": [{"name": "main", "image": "nginx:1.25", "env": [{"name": "B", "value": "3"}, {"name": "C", "value": "4"}]}]}
  })"));
  REQUIRE(out.ok());
  const json& containers = (*out)["spec"]["containers"];
  REQUIRE(containers.size() == 2);
  CHECK(containers[0]["image"] == "nginx:1.25");
  CHECK(containers[0]["ports"] == json::parse(R"([{"containerPort": 80}])"));
  CHECK(containers[0]["env"] ==
        json::parse(
            R"([{"name":"A","value":"1"},{"name":"B","value":"3"},{"name":"C","value":"4"}])"));
  CHECK(containers[1]["name"] == "side");
}

TEST_CASE("strategic merge patch honours the directives kubectl apply sends", "[api][patch]") {
  // What `kubectl apply` sends after a container was removed from the file and labels changed.
  auto out = apply_strategic_merge_patch(kPod, json::parse(R"({
    "metadata": {"labels": {"old": null}, "$deleteFromPrimitiveList/finalizers": ["a"]},
    "spec": {"$setElementOrder/containers": [{"name": "side"}, {"name": "main"}],
             "containers": [{"name": "side", "image": "busybox:2"}, {"$patch": "delete", "name": "gone"}],
             "volumes": [{"name": "v1", "$patch": "delete"}],
             "tolerations": [{"key": "b"}]}
  })"));
  REQUIRE(out.ok());
  CHECK((*out)["metadata"]["labels"] == json({{"app", "web"}}));
  CHECK((*out)["metadata"]["finalizers"] == json::array());
  CHECK((*out)["spec"]["containers"][0]["name"] == "side");
  CHECK((*out)["spec"]["containers"][0]["image"] == "busybox:2");
  CHECK((*out)["spec"]["containers"][1]["name"] == "main");
  CHECK((*out)["spec"]["volumes"] == json::array());
  CHECK((*out)["spec"]["tolerations"] ==
        json::parse(R"([{"key": "b"}])"));  // no merge key: replaced

  auto replaced = apply_strategic_merge_patch(
      kPod, json::parse(R"({"spec": {"$patch": "replace", "containers": []}})"));
  REQUIRE(replaced.ok());
  CHECK_FALSE((*replaced)["spec"].contains("volumes"));
}

TEST_CASE("strategic merge patch refuses merge-list elements without their key", "[api][patch]") {
  auto out = apply_strategic_merge_patch(
      kPod, json::parse(R"({"spec": {"containers": [{"image": "x"}]}})"));
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().message().find("spec.containers") != std::string::npos);
}

TEST_CASE("JSON patch applies operations and fails on a failing test", "[api][patch]") {
  auto out = apply_json_patch(
      kPod, json::parse(R"([{"op": "replace", "path": "/metadata/labels/app", "value": "api"}])"));
  REQUIRE(out.ok());
  CHECK((*out)["metadata"]["labels"]["app"] == "api");
  CHECK_FALSE(apply_json_patch(
                  kPod, json::parse(R"([{"op": "test", "path": "/metadata/name", "value": "db"}])"))
                  .ok());
}
