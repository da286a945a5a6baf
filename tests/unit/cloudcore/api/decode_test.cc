// What a client notices of decoding, query-parameter parsing, defaulting and validation through
// the real API server: the status codes, messages and field paths, and that nothing was stored.
#include <catch2/catch.hpp>

#include "tests/unit/cloudcore/api/api_fixture.h"

using namespace gantry;
using namespace gantry::test;
using nlohmann::json;

namespace {

const char* kPod =
    R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},
  "spec":{"nodeName":"n1","containers":[{"name":"main","image":"nginx:1.25"}]}})";

std::string deep(size_t depth) {
  std::string body = R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"d"},"x":)";
  body += std::string(depth, '[') + std::string(depth, ']') + "}";
  return body;
}

}  // namespace

TEST_CASE_METHOD(ApiFixture, "a body nested 100000 levels deep is a 400 and cloudcore lives on",
                 "[api][decode]") {
  auto r = call("POST", "/api/v1/namespaces/default/configmaps", kAdminToken, deep(100'000));
  CHECK(r.code == 400);
  CHECK(r.json()["reason"] == "BadRequest");
  CHECK(r.json()["message"] ==
        "the request body is nested more than 1000 levels deep (at byte 1065)");
  CHECK(call("GET", "/api/v1/namespaces/default/configmaps/d", kAdminToken).code == 404);

  REQUIRE(call("POST", "/api/v1/namespaces/default/configmaps", kAdminToken,
               R"({"metadata":{"name":"c"},"data":{"a":"b"}})")
              .code == 201);
  for (const char* type : {"application/merge-patch+json", "application/strategic-merge-patch+json",
                           "application/json-patch+json"}) {
    INFO(type);
    auto p = call("PATCH", "/api/v1/namespaces/default/configmaps/c", kAdminToken,
                  std::string(100'000, '[') + std::string(100'000, ']'), type);
    CHECK(p.code == 400);
  }
  CHECK(call("GET", "/healthz", "").body == "ok");
  CHECK(call("GET", "/api/v1/namespaces/default/configmaps/c", kAdminToken).code == 200);

  auto syntax = call("POST", "/api/v1/namespaces/default/configmaps", kAdminToken, "{\"a\": tru}");
  CHECK(syntax.code == 400);
  CHECK(syntax.json()["message"].get<std::string>().starts_with(
      "the request body is not valid JSON: parse error at line 1"));
}

TEST_CASE_METHOD(ApiFixture, "objects Kubernetes refuses are 422 with the field path, unstored",
                 "[api][validation]") {
  put_node("n1", "zhejiang");
  auto key = call("POST", "/api/v1/namespaces/default/configmaps", kAdminToken,
                  R"({"metadata":{"name":"evil"},"data":{"../../../../etc/x":"pwned"}})");
  CHECK(key.code == 422);
  json status = key.json();
  CHECK(status["reason"] == "Invalid");
  CHECK(status["details"]["kind"] == "ConfigMap");
  CHECK(status["details"]["name"] == "evil");
  CHECK(status["details"]["causes"][0]["field"] == "data[../../../../etc/x]");
  CHECK(status["details"]["causes"][0]["reason"] == "FieldValueInvalid");
  CHECK(call("GET", "/api/v1/namespaces/default/configmaps/evil", kAdminToken).code == 404);

  auto dots = call("POST", "/api/v1/namespaces/default/secrets", kAdminToken,
                   R"({"metadata":{"name":"a..b"}})");
  CHECK(dots.code == 422);
  CHECK(dots.json()["details"]["causes"][0]["field"] == "metadata.name");

  auto dup = call("POST", "/api/v1/namespaces/default/pods", kAdminToken,
                  R"({"metadata":{"name":"dup"},"spec":{"containers":[
                      {"name":"a","image":"x"},{"name":"a","image":"y"}]}})");
  CHECK(dup.code == 422);
  CHECK(dup.json()["message"] ==
        R"(Pod "dup" is invalid: spec.containers[1].name: Duplicate value: "a")");

  // An update is validated as well, against the stored object.
  REQUIRE(call("POST", "/api/v1/namespaces/default/pods", kAdminToken, kPod).code == 201);
  auto patch =
      call("PATCH", "/api/v1/namespaces/default/pods/web", kAdminToken,
           R"({"spec":{"terminationGracePeriodSeconds":-5}})", "application/merge-patch+json");
  CHECK(patch.code == 422);
  CHECK(patch.json()["details"]["causes"][0]["field"] == "spec.terminationGracePeriodSeconds");
}

TEST_CASE_METHOD(ApiFixture, "defaults are filled and stored as Kubernetes does",
                 "[api][validation]") {
  put_node("n1", "zhejiang");
  auto created = call("POST", "/api/v1/namespaces/default/pods", kAdminToken, kPod);
  REQUIRE(created.code == 201);
  json spec = call("GET", "/api/v1/namespaces/default/pods/web", kAdminToken).json()["spec"];
  CHECK(spec["restartPolicy"] == "Always");
  CHECK(spec["dnsPolicy"] == "ClusterFirst");
  CHECK(spec["terminationGracePeriodSeconds"] == 30);
  CHECK(spec["schedulerName"] == "default-scheduler");
  CHECK(spec["containers"][0]["imagePullPolicy"] == "IfNotPresent");

  auto secret = call("POST", "/api/v1/namespaces/default/secrets", kAdminToken,
                     R"({"metadata":{"name":"s"},"stringData":{"password":"hunter2"}})");
  REQUIRE(secret.code == 201);
  json s = call("GET", "/api/v1/namespaces/default/secrets/s", kAdminToken).json();
  CHECK(s["type"] == "Opaque");
  CHECK(s["data"]["password"] == "aHVudGVyMg==");
  CHECK(s["metadata"]["uid"].get<std::string>().size() == 36);
  CHECK_FALSE(s["metadata"]["creationTimestamp"].get<std::string>().empty());
}
