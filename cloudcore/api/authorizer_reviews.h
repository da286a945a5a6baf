// The self-review kinds kubectl asks before acting: `kubectl auth can-i` (authorization.k8s.io/v1
// SelfSubjectAccessReview; with --list SelfSubjectRulesReview) and `kubectl auth whoami`
// (authentication.k8s.io SelfSubjectReview, v1 from kubectl 1.28, v1beta1 and v1alpha1 before).
// Request JSON + identity -> response JSON; the decisions come from the authorizer through
// AccessQuery / rules callbacks, so a review answers exactly what a request would meet.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cloudcore/api/auth.h"
#include "common/base/status.h"

namespace gantry::cloud::api {

// One question: may the caller do `verb` on `resource` (of `group`), named `name` ("" : any) in
// namespace `ns` ("" : all namespaces, or a cluster-scoped resource)?
struct AccessQuery {
  std::string verb;
  std::string group;
  std::string resource;
  std::string subresource;
  std::string ns;
  std::string name;
  std::string path;  // set instead of the resource fields for a non-resource URL ("/healthz")
};
struct AccessAnswer {
  bool allowed = false;
  std::string reason;  // why, in words a province user can act on
};
using AccessDecider = std::function<AccessAnswer(const AccessQuery&)>;

// A rule of a SelfSubjectRulesReview (Kubernetes' ResourceRule).
struct ResourceRule {
  std::vector<std::string> verbs;
  std::vector<std::string> api_groups;
  std::vector<std::string> resources;
  std::vector<std::string> resource_names;
};
struct RulesAnswer {
  std::vector<ResourceRule> rules;
  bool incomplete = false;  // some access depends on the object (its node, its label)
  std::string evaluation_error;
};
using RulesDecider = std::function<RulesAnswer(const std::string& ns)>;

// `api_version` as the URL has it ("authentication.k8s.io/v1"). kInvalidArgument for a body
// that is not such a review.
common::Result<nlohmann::json> self_subject_review(const nlohmann::json& request,
                                                   const Identity& who,
                                                   const std::string& api_version);
common::Result<nlohmann::json> self_subject_access_review(const nlohmann::json& request,
                                                          const AccessDecider& decide,
                                                          const std::string& api_version);
common::Result<nlohmann::json> self_subject_rules_review(const nlohmann::json& request,
                                                         const RulesDecider& rules,
                                                         const std::string& api_version);

}  // namespace gantry::cloud::api
