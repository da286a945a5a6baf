#include <catch2/catch.hpp>

#include "cloudcore/api/authorizer_reviews.h"

using namespace gantry::cloud::api;
using nlohmann::json;

TEST_CASE("SelfSubjectReview tells the caller who the server thinks they are", "[api][reviews]") {
  Identity who{"zj-operator", "7", {"gantry:province:zhejiang:operator"}};
  for (const char* version : {"authentication.k8s.io/v1", "authentication.k8s.io/v1beta1",
                              "authentication.k8s.io/v1alpha1"}) {
    json request = {{"kind", "SelfSubjectReview"},
                    {"apiVersion", version},
                    {"metadata", {{"creationTimestamp", nullptr}}},
                    {"status", json::object()}};
    auto out = self_subject_review(request, who, version);
    REQUIRE(out.ok());
    CHECK((*out)["kind"] == "SelfSubjectReview");
    CHECK((*out)["apiVersion"] == version);
    const json& user = (*out)["status"]["userInfo"];
    CHECK(user["username"] == "zj-operator");
    CHECK(user["uid"] == "7");
    CHECK(user["groups"] == json({"gantry:province:zhejiang:operator", "system:authenticated"}));
  }
  CHECK_FALSE(self_subject_review(json::array(), who, "authentication.k8s.io/v1").ok());
  CHECK_FALSE(self_subject_review({{"kind", "Pod"}}, who, "authentication.k8s.io/v1").ok());
}

TEST_CASE("SelfSubjectAccessReview passes the question to the authorizer and its answer back",
          "[api][reviews]") {
  AccessQuery asked;
  AccessDecider decide = [&](const AccessQuery& q) {
    asked = q;
    return AccessAnswer{q.verb == "get", "because"};
  };
  json request = {{"kind", "SelfSubjectAccessReview"},
                  {"apiVersion", "authorization.k8s.io/v1"},
                  {"spec",
                   {{"resourceAttributes",
                     {{"namespace", "zj-apps"},
                      {"verb", "get"},
                      {"resource", "pods"},
                      {"subresource", "log"},
                      {"name", "web"}}}}}};
  auto out = self_subject_access_review(request, decide, "authorization.k8s.io/v1");
  REQUIRE(out.ok());
  CHECK(asked.ns == "zj-apps");
  CHECK(asked.resource == "pods");
  CHECK(asked.subresource == "log");
  CHECK(asked.name == "web");
  CHECK((*out)["status"]["allowed"] == true);
  CHECK((*out)["status"]["reason"] == "because");
  CHECK((*out)["spec"] == request["spec"]);

  json non_resource = {
      {"spec", {{"nonResourceAttributes", {{"path", "/healthz"}, {"verb", "get"}}}}}};
  out = self_subject_access_review(non_resource, decide, "authorization.k8s.io/v1");
  REQUIRE(out.ok());
  CHECK(asked.path == "/healthz");

  CHECK_FALSE(
      self_subject_access_review({{"spec", json::object()}}, decide, "authorization.k8s.io/v1")
          .ok());
  CHECK_FALSE(self_subject_access_review({{"spec", {{"resourceAttributes", {{"verb", 3}}}}}},
                                         decide, "authorization.k8s.io/v1")
                  .ok());
}

TEST_CASE("SelfSubjectRulesReview lists the rules the authorizer gives for the namespace",
          "[api][reviews]") {
  RulesDecider rules = [](const std::string& ns) {
    RulesAnswer a;
    if (ns == "zj-apps") a.rules.push_back({{"get", "list"}, {""}, {"pods"}, {}});
    a.incomplete = true;
    return a;
  };
  json request = {{"kind", "SelfSubjectRulesReview"},
                  {"apiVersion", "authorization.k8s.io/v1"},
                  {"spec", {{"namespace", "zj-apps"}}}};
  auto out = self_subject_rules_review(request, rules, "authorization.k8s.io/v1");
  REQUIRE(out.ok());
  const json& status = (*out)["status"];
  REQUIRE(status["resourceRules"].size() == 1);
  CHECK(status["resourceRules"][0]["resources"] == json({"pods"}));
  CHECK(status["resourceRules"][0]["verbs"] == json({"get", "list"}));
  CHECK(status["incomplete"] == true);
  CHECK_FALSE(status["nonResourceRules"].empty());
}
