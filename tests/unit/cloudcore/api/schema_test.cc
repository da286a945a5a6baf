// Unknown fields (cloudcore/api/schema.h): pruned per kind, and what fieldValidation=Ignore|Warn|
// Strict tells the client, through the pure functions and through the real API server.
#include "cloudcore/api/schema.h"

#include <catch2/catch.hpp>

#include "tests/unit/cloudcore/api/api_fixture.h"

using namespace gantry;
using namespace gantry::test;
using gantry::cloud::api::FieldValidation;
using nlohmann::json;

namespace {

const char* kPods = "/api/v1/namespaces/default/pods";
const char* kDeployments = "/apis/apps/v1/namespaces/default/deployments";

json typo_pod(const std::string& name) {
  return {{"apiVersion", "v1"},
          {"kind", "Pod"},
          {"metadata", {{"name", name}, {"labelz", {{"a", "b"}}}}},
          {"spec",
           {{"nodeName", "n1"},
            {"containers", {{{"name", "main"}, {"image", "nginx:1.25"}, {"imagePullPolice", "x"}}}},
            {"contaners", json::array()}}}};
}

json typo_deployment(const std::string& name) {
  return {{"apiVersion", "apps/v1"},
          {"kind", "Deployment"},
          {"metadata", {{"name", name}}},
          {"spec",
           {{"replicas", 1},
            {"selector", {{"matchLabels", {{"app", name}}}}},
            {"strategy", {{"type", "RollingUpdate"}, {"rollingUpdate", {{"maxSurje", 1}}}}},
            {"template",
             {{"metadata", {{"labels", {{"app", name}}}}},
              {"spec",
               {{"containers", {{{"name", "main"}, {"image", "nginx:1.25"}}}},
                {"restartPolicyy", "Always"}}}}}}}};
}

// The unknown-field Warning headers of an answer, as sent (quotes escaped).
std::vector<std::string> warnings_of(const std::string& headers) {
  std::vector<std::string> out;
  size_t at = 0;
  while ((at = headers.find("Warning: 299 - \"", at)) != std::string::npos) {
    at += 16;
    size_t end = headers.find("\"\r\n", at);
    // Only the unknown-field warnings (the kinds add their own, e.g. on securityContext).
    std::string text = headers.substr(at, end - at);
    if (text.starts_with("unknown field")) out.push_back(text);
  }
  return out;
}

}  // namespace

TEST_CASE("prune_unknown_fields drops what the kind's schema does not have, naming each path",
          "[api][schema]") {
  using cloud::api::prune_unknown_fields;
  struct Case {
    const char* group;
    const char* kind;
    json object;
    std::vector<std::string> unknown;
  };
  const std::vector<Case> cases = {
      {"",
       "Pod",
       typo_pod("p"),
       {"metadata.labelz", "spec.containers[0].imagePullPolice", "spec.contaners"}},
      {"",
       "ConfigMap",
       {{"metadata", {{"name", "c"}}}, {"data", {{"k", "v"}}}, {"dat", 1}},
       {"dat"}},
      {"", "Secret", {{"stringData", {{"k", "v"}}}, {"typ", "Opaque"}}, {"typ"}},
      {"", "Node", {{"spec", {{"unschedulable", true}, {"taint", json::array()}}}}, {"spec.taint"}},
      {"", "Namespace", {{"spec", {{"finalizer", json::array()}}}}, {"spec.finalizer"}},
      {"", "Event", {{"involvedObject", {{"kind", "Pod"}, {"nam", "x"}}}}, {"involvedObject.nam"}},
      {"apps",
       "Deployment",
       typo_deployment("d"),
       {"spec.strategy.rollingUpdate.maxSurje", "spec.template.spec.restartPolicyy"}},
      {"apps", "ReplicaSet", {{"spec", {{"replicas", 1}, {"replica", 2}}}}, {"spec.replica"}},
      {"apps",
       "DaemonSet",
       {{"spec", {{"updateStrategy", {{"type", "OnDelete"}, {"rollingupdate", json::object()}}}}}},
       {"spec.updateStrategy.rollingupdate"}},
      {"apps",
       "ControllerRevision",
       {{"revision", 1}, {"data", {{"anything", 1}}}, {"revisions", 2}},
       {"revisions"}},
      {"batch",
       "Job",
       {{"spec", {{"completions", 1}, {"backofLimit", 2}, {"podFailurePolicy", {{"rules", 1}}}}}},
       {"spec.backofLimit"}},
      {"batch",
       "CronJob",
       {{"spec",
         {{"schedule", "@daily"},
          {"jobTemplate",
           {{"spec", {{"template", {{"spec", {{"restartPolicy", "Never"}}}}}}}, {"specc", 1}}}}}},
       {"spec.jobTemplate.specc"}},
      // Maps keep every key; x-kubernetes-preserve-unknown-fields parts (status, probes) are kept.
      {"",
       "Pod",
       {{"metadata", {{"labels", {{"any-key", "v"}}}}},
        {"status", {{"whatever", 1}}},
        {"spec", {{"containers", {{{"name", "c"}, {"livenessProbe", {{"madeUp", 1}}}}}}}}},
       {}},
      // A kind without a schema is left alone.
      {"gantry.io", "Province", {{"anything", 1}}, {}},
      // One Kind name, two groups: each its own fields.
      {"events.k8s.io",
       "Event",
       {{"regarding", {{"kind", "Pod"}, {"name", "x"}}}, {"note", "n"}, {"message", "m"}},
       {"message"}},
      {"", "Event", {{"involvedObject", {{"name", "x"}}}, {"note", "n"}}, {"note"}},
  };
  for (auto c : cases) {
    INFO(c.group << " " << c.kind << " " << c.object.dump());
    json before = c.object;
    CHECK(prune_unknown_fields(c.group, c.kind, c.object) == c.unknown);
    if (c.unknown.empty()) CHECK(c.object == before);
    // Pruning twice finds nothing more.
    CHECK(prune_unknown_fields(c.group, c.kind, c.object).empty());
  }
}

TEST_CASE("fieldValidation parses as kube-apiserver does and judges the unknown fields",
          "[api][schema]") {
  using cloud::api::judge_unknown_fields;
  using cloud::api::parse_field_validation;
  CHECK(*parse_field_validation(std::nullopt) == FieldValidation::kWarn);
  CHECK(*parse_field_validation(std::string("")) == FieldValidation::kWarn);
  CHECK(*parse_field_validation(std::string("Strict")) == FieldValidation::kStrict);
  CHECK(*parse_field_validation(std::string("Ignore")) == FieldValidation::kIgnore);
  auto bad = parse_field_validation(std::string("strict"));
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Matchers::Contains("fieldValidation"));

  const std::vector<std::string> two = {"spec.contaners", "metadata.labelz"};
  CHECK(judge_unknown_fields(FieldValidation::kIgnore, two).warnings.empty());
  CHECK_FALSE(judge_unknown_fields(FieldValidation::kIgnore, two).error);
  CHECK(judge_unknown_fields(FieldValidation::kWarn, two).warnings ==
        std::vector<std::string>{"unknown field \"spec.contaners\"",
                                 "unknown field \"metadata.labelz\""});
  CHECK(judge_unknown_fields(FieldValidation::kStrict, two).error ==
        "strict decoding error: unknown field \"spec.contaners\", unknown field "
        "\"metadata.labelz\"");
  CHECK_FALSE(judge_unknown_fields(FieldValidation::kStrict, {}).error);
}

TEST_CASE_METHOD(ApiFixture,
                 "unknown fields through the server: dropped with a warning by default, refused "
                 "with Strict, silent with Ignore",
                 "[api][schema]") {
  put_node("n1", "zhejiang");
  // Warn (no parameter, as kube-apiserver defaults): 201, one Warning per field, not stored.
  auto warned = call("POST", kPods, kAdminToken, typo_pod("warned").dump());
  REQUIRE(warned.code == 201);
  CHECK(warnings_of(warned.headers) ==
        std::vector<std::string>{"unknown field \\\"metadata.labelz\\\"",
                                 "unknown field \\\"spec.containers[0].imagePullPolice\\\"",
                                 "unknown field \\\"spec.contaners\\\""});
  auto stored = call("GET", std::string(kPods) + "/warned", kAdminToken).json();
  CHECK_FALSE(stored["spec"].contains("contaners"));
  CHECK_FALSE(stored["metadata"].contains("labelz"));
  CHECK_FALSE(stored["spec"]["containers"][0].contains("imagePullPolice"));

  // Strict: 400 as kube-apiserver words it, nothing stored.
  auto strict = call("POST", std::string(kPods) + "?fieldValidation=Strict", kAdminToken,
                     typo_pod("strict").dump());
  CHECK(strict.code == 400);
  CHECK(strict.json()["reason"] == "BadRequest");
  CHECK(strict.json()["message"] ==
        "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field "
        "\"metadata.labelz\", unknown field \"spec.containers[0].imagePullPolice\", unknown field "
        "\"spec.contaners\"");
  CHECK(call("GET", std::string(kPods) + "/strict", kAdminToken).code == 404);

  // Ignore: dropped without a word.
  auto ignored = call("POST", std::string(kPods) + "?fieldValidation=Ignore", kAdminToken,
                      typo_pod("ignored").dump());
  CHECK(ignored.code == 201);
  CHECK(warnings_of(ignored.headers).empty());

  // A bad value is a 400 naming the parameter.
  auto bogus = call("POST", std::string(kPods) + "?fieldValidation=Loud", kAdminToken,
                    typo_pod("bogus").dump());
  CHECK(bogus.code == 400);
  CHECK_THAT(bogus.json()["message"].get<std::string>(),
             Catch::Matchers::Contains("fieldValidation"));

  // Update (PUT) as create: 400 under Strict.
  json put = call("GET", std::string(kPods) + "/warned", kAdminToken).json();
  put["spec"]["contaners"] = json::array();
  CHECK(call("PUT", std::string(kPods) + "/warned?fieldValidation=Strict", kAdminToken, put.dump())
            .code == 400);
  auto put_warned = call("PUT", std::string(kPods) + "/warned", kAdminToken, put.dump());
  CHECK(put_warned.code == 200);
  CHECK(warnings_of(put_warned.headers).size() == 1);

  // Patches: under Strict 422 on the field "patch" (kube-apiserver's answer), else dropped.
  for (const char* type :
       {"application/merge-patch+json", "application/strategic-merge-patch+json"}) {
    INFO(type);
    auto p = call("PATCH", std::string(kPods) + "/warned?fieldValidation=Strict", kAdminToken,
                  R"({"spec":{"nodeSelectr":{"a":"b"}}})", type);
    CHECK(p.code == 422);
    CHECK(p.json()["reason"] == "Invalid");
    CHECK_THAT(
        p.json()["message"].get<std::string>(),
        Catch::Matchers::Contains("strict decoding error: unknown field \"spec.nodeSelectr\""));
    CHECK(p.json()["details"]["causes"][0]["field"] == "patch");
    auto w = call("PATCH", std::string(kPods) + "/warned", kAdminToken,
                  R"({"metadata":{"labels":{"x":"y"}},"spec":{"nodeSelectr":{"a":"b"}}})", type);
    CHECK(w.code == 200);
    CHECK(warnings_of(w.headers) ==
          std::vector<std::string>{"unknown field \\\"spec.nodeSelectr\\\""});
    CHECK_FALSE(w.json()["spec"].contains("nodeSelectr"));
  }
  auto json_patch = call("PATCH", std::string(kPods) + "/warned?fieldValidation=Strict",
                         kAdminToken, R"([{"op":"add","path":"/spec/hostNetwrk","value":true}])",
                         "application/json-patch+json");
  CHECK(json_patch.code == 422);

  // apps/v1: the template is pruned too.
  auto d = call("POST", kDeployments, kAdminToken, typo_deployment("web").dump());
  REQUIRE(d.code == 201);
  CHECK(warnings_of(d.headers).size() == 2);
  CHECK_FALSE(d.json()["spec"]["template"]["spec"].contains("restartPolicyy"));
  CHECK(call("POST", std::string(kDeployments) + "?fieldValidation=Strict", kAdminToken,
             typo_deployment("web2").dump())
            .code == 400);
  // dryRun with Strict: refused the same, nothing stored either way.
  CHECK(call("POST", std::string(kDeployments) + "?fieldValidation=Strict&dryRun=All", kAdminToken,
             typo_deployment("web3").dump())
            .code == 400);
}
