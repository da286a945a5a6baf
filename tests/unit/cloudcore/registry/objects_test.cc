#include "cloudcore/registry/objects.h"

#include <catch2/catch.hpp>

namespace gantry::cloud {
namespace {

TEST_CASE("a pod's JSON yields the edge manifest, its node and the configs it refers to") {
  auto stored = decode_object(v1::OBJECT_KIND_POD, R"({
    "apiVersion": "v1", "kind": "Pod",
    "metadata": {"name": "web", "namespace": "toll", "uid": "u1", "labels": {"app": "web"}},
    "spec": {
      "nodeName": "gantry-0001",
      "restartPolicy": "OnFailure",
      "containers": [{
        "name": "main", "image": "busybox:1.36", "command": ["sh", "-c"], "args": ["sleep 1"],
        "env": [{"name": "A", "value": "1"},
                {"name": "B", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "b"}}},
                {"name": "C", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "c"}}}],
        "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1", "memory": "1G"}},
        "volumeMounts": [{"name": "conf", "mountPath": "/etc/app"}]
      }],
      "volumes": [{"name": "conf", "configMap": {"name": "app-conf"}}]
    }})");
  REQUIRE(stored.ok());
  CHECK(stored->node_name() == "gantry-0001");
  CHECK(stored->edge().namespace_() == "toll");
  CHECK(stored->edge().uid() == "u1");
  const auto& pod = stored->edge().pod();
  CHECK(pod.restart_policy() == v1::RESTART_POLICY_ON_FAILURE);
  REQUIRE(pod.containers_size() == 1);
  CHECK(pod.containers(0).resources().cpu_request_millis() == 100);
  CHECK(pod.containers(0).resources().cpu_limit_millis() == 1000);
  CHECK(pod.containers(0).resources().memory_request_bytes() == 64 << 20);
  CHECK(pod.containers(0).resources().memory_limit_bytes() == 1000000000);
  CHECK(pod.containers(0).env(1).config_map_key().name() == "settings");
  std::vector<std::string> cms(stored->config_maps().begin(), stored->config_maps().end());
  CHECK(cms == std::vector<std::string>{"app-conf", "settings"});
  CHECK(stored->secrets_size() == 1);
}

TEST_CASE("bad pod JSON is refused with the field that is wrong") {
  auto [json, field] = GENERATE(table<std::string, std::string>({
      {"{", "not valid JSON"},
      {R"({"metadata": {"name": "p"}, "spec": {}})", "spec.containers"},
      {R"({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c"}]}})",
       "spec.containers[0].image"},
      {R"({"metadata": {}, "spec": {"containers": [{"name": "c", "image": "i"}]}})",
       "metadata.name"},
      {R"({"metadata": {"name": "p"}, "spec": {"restartPolicy": "Sometimes", "containers": [{"name": "c", "image": "i"}]}})",
       "spec.restartPolicy"},
      {R"({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i",
          "resources": {"limits": {"cpu": "lots"}}}]}})",
       "spec.containers[0].resources.limits.cpu"},
  }));
  auto r = decode_object(v1::OBJECT_KIND_POD, json);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == common::Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::Contains(field));
}

TEST_CASE("secret data is base64-decoded, configmap data kept as text") {
  auto secret = decode_object(
      v1::OBJECT_KIND_SECRET,
      R"({"metadata": {"name": "s"}, "data": {"k": "aGVsbG8="}, "stringData": {"t": "plain"}})");
  REQUIRE(secret.ok());
  CHECK(secret->edge().secret().data().at("k") == "hello");
  CHECK(secret->edge().secret().data().at("t") == "plain");
  auto bad = decode_object(v1::OBJECT_KIND_SECRET,
                           R"({"metadata": {"name": "s"}, "data": {"k": "not base64!"}})");
  CHECK_FALSE(bad.ok());
  auto cm = decode_object(v1::OBJECT_KIND_CONFIG_MAP,
                          R"({"metadata": {"name": "c"}, "data": {"a.conf": "x=1"}})");
  REQUIRE(cm.ok());
  CHECK(cm->edge().config_map().data().at("a.conf") == "x=1");
}

TEST_CASE("resource quantities parse as Kubernetes writes them") {
  CHECK(parse_cpu_millis("250m").value() == 250);
  CHECK(parse_cpu_millis("0.5").value() == 500);
  CHECK(parse_cpu_millis("2").value() == 2000);
  CHECK(parse_bytes_quantity("128Mi").value() == 128ll << 20);
  CHECK(parse_bytes_quantity("1e3").value() == 1000);
  CHECK(parse_bytes_quantity("1Gi").value() == 1ll << 30);
  CHECK_FALSE(parse_bytes_quantity("12 apples").ok());
  CHECK_FALSE(parse_cpu_millis("-1").ok());
}

}  // namespace
}  // namespace gantry::cloud
