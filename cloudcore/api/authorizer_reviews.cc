#include "cloudcore/api/authorizer_reviews.h"

#include <fmt/format.h>

namespace gantry::cloud::api {
namespace {

using common::Code;
using common::make_error;
using nlohmann::json;

// Checks kind/apiVersion (when given) and returns the body's spec (an object, maybe empty).
common::Result<json> spec_of(const json& request, const char* kind,
                             const std::string& api_version) {
  if (!request.is_object())
    return make_error(Code::kInvalidArgument, "the request body must be a {} object", kind);
  if (request.contains("kind") && request["kind"] != kind)
    return make_error(Code::kInvalidArgument, "the body's kind is {}; this URL takes {}",
                      request["kind"].dump(), kind);
  if (request.contains("apiVersion") && request["apiVersion"] != api_version)
    return make_error(Code::kInvalidArgument, "the body's apiVersion is {}; this URL takes {}",
                      request["apiVersion"].dump(), api_version);
  json spec = request.value("spec", json::object());
  if (!spec.is_object()) return make_error(Code::kInvalidArgument, "spec must be an object");
  return spec;
}

json response(const json& request, const char* kind, const std::string& api_version) {
  json out = {{"kind", kind}, {"apiVersion", api_version}};
  json meta = request.is_object() ? request.value("metadata", json::object()) : json::object();
  out["metadata"] = meta.is_object() ? meta : json::object();
  out["metadata"]["creationTimestamp"] = nullptr;
  return out;
}

common::Result<std::string> string_field(const json& obj, const char* name) {
  auto it = obj.find(name);
  if (it == obj.end() || it->is_null()) return std::string();
  if (!it->is_string()) return make_error(Code::kInvalidArgument, "{} must be a string", name);
  return it->get<std::string>();
}

}  // namespace

common::Result<json> self_subject_review(const json& request, const Identity& who,
                                         const std::string& api_version) {
  GANTRY_ASSIGN_OR_RETURN(json spec, spec_of(request, "SelfSubjectReview", api_version));
  (void)spec;
  json out = response(request, "SelfSubjectReview", api_version);
  json user = {{"username", who.user}, {"groups", who.groups}};
  if (!who.uid.empty()) user["uid"] = who.uid;
  // Every authenticated user is in system:authenticated, as kube-apiserver reports it.
  bool listed = false;
  for (const auto& g : who.groups) listed = listed || g == "system:authenticated";
  if (!listed) user["groups"].push_back("system:authenticated");
  out["status"] = {{"userInfo", user}};
  return out;
}

common::Result<json> self_subject_access_review(const json& request, const AccessDecider& decide,
                                                const std::string& api_version) {
  GANTRY_ASSIGN_OR_RETURN(json spec, spec_of(request, "SelfSubjectAccessReview", api_version));
  AccessQuery q;
  const json* resource =
      spec.contains("resourceAttributes") ? &spec["resourceAttributes"] : nullptr;
  const json* non_resource =
      spec.contains("nonResourceAttributes") ? &spec["nonResourceAttributes"] : nullptr;
  if (resource && resource->is_null()) resource = nullptr;
  if (non_resource && non_resource->is_null()) non_resource = nullptr;
  if ((resource == nullptr) == (non_resource == nullptr))
    return make_error(Code::kInvalidArgument,
                      "spec: exactly one of resourceAttributes and nonResourceAttributes is "
                      "required");
  const json& attrs = resource ? *resource : *non_resource;
  if (!attrs.is_object())
    return make_error(Code::kInvalidArgument, "spec: the attributes must be an object");
  GANTRY_ASSIGN_OR_RETURN(q.verb, string_field(attrs, "verb"));
  if (resource) {
    GANTRY_ASSIGN_OR_RETURN(q.group, string_field(attrs, "group"));
    GANTRY_ASSIGN_OR_RETURN(q.resource, string_field(attrs, "resource"));
    GANTRY_ASSIGN_OR_RETURN(q.subresource, string_field(attrs, "subresource"));
    GANTRY_ASSIGN_OR_RETURN(q.ns, string_field(attrs, "namespace"));
    GANTRY_ASSIGN_OR_RETURN(q.name, string_field(attrs, "name"));
  } else {
    GANTRY_ASSIGN_OR_RETURN(q.path, string_field(attrs, "path"));
  }
  AccessAnswer a = decide(q);
  json out = response(request, "SelfSubjectAccessReview", api_version);
  out["spec"] = spec;
  out["status"] = {{"allowed", a.allowed}};
  if (!a.reason.empty()) out["status"]["reason"] = a.reason;
  return out;
}

common::Result<json> self_subject_rules_review(const json& request, const RulesDecider& rules,
                                               const std::string& api_version) {
  GANTRY_ASSIGN_OR_RETURN(json spec, spec_of(request, "SelfSubjectRulesReview", api_version));
  GANTRY_ASSIGN_OR_RETURN(std::string ns, string_field(spec, "namespace"));
  RulesAnswer answer = rules(ns);
  json resource_rules = json::array();
  for (const auto& r : answer.rules) {
    json rule = {{"verbs", r.verbs}, {"apiGroups", r.api_groups}, {"resources", r.resources}};
    if (!r.resource_names.empty()) rule["resourceNames"] = r.resource_names;
    resource_rules.push_back(std::move(rule));
  }
  // What every authenticated caller may fetch without a resource (discovery, health).
  json non_resource =
      json::array({{{"verbs", {"get"}},
                    {"nonResourceURLs",
                     {"/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                      "/openapi/*", "/readyz", "/version", "/version/"}}}});
  json out = response(request, "SelfSubjectRulesReview", api_version);
  out["spec"] = spec;
  out["status"] = {{"resourceRules", resource_rules},
                   {"nonResourceRules", non_resource},
                   {"incomplete", answer.incomplete}};
  if (!answer.evaluation_error.empty()) out["status"]["evaluationError"] = answer.evaluation_error;
  return out;
}

}  // namespace gantry::cloud::api
