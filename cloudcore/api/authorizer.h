// Who may do what through the REST API: the roles of auth.h applied to each kind, with namespaces
// that belong to a province. A Namespace labelled topology.gantry.io/province=P (the label nodes
// carry) belongs to province P, and so does everything namespaced in it: P's viewers read its
// pods, configmaps and events, P's operators also read its secrets and create, change and delete
// its pods, configmaps, secrets and events. In a namespace without that label a pod belongs to the
// province of the node it is bound to (unbound: to nobody); its configmaps, secrets and events are
// for administrators. Nodes belong to the province of their label; only a join (or an admin)
// creates them. Namespaces are read by every role and written by administrators only (their
// province and Pod Security labels decide what province roles may do in them).
//
// The same decisions answer requests (check_request, check_object, visible), admission of pod and
// node writes (admit) and the SelfSubject reviews (decide, rules), so `kubectl auth can-i` tells a
// province user exactly what a request would meet.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "cloudcore/api/admission.h"
#include "cloudcore/api/auth.h"
#include "cloudcore/api/authorizer_reviews.h"

namespace gantry::cloud {
class Store;
class Registry;
}  // namespace gantry::cloud

namespace gantry::cloud::api {

// "create", "update", "patch", "delete", "deletecollection" and "*".
bool is_write_verb(std::string_view verb);
// The Kubernetes verb of an HTTP request on a resource: GET on a name is "get", without one
// "list" (or "watch"), POST "create", PUT "update", PATCH "patch", DELETE "delete" (without a
// name "deletecollection").
std::string verb_of(std::string_view method, bool named, bool watch = false);

class Authorizer {
 public:
  // Both must outlive the authorizer. Thread-safe: every call only reads them.
  Authorizer(const Store& store, const Registry& registry);

  struct NamespaceInfo {
    bool exists = false;
    std::map<std::string, std::string> labels;
    std::string province;  // "" : the namespace belongs to no province
  };
  NamespaceInfo namespace_info(const std::string& ns) const;

  // Before any object is read: may the caller `verb` `resource` ("pods") in `ns` ("" : every
  // namespace, or a cluster-scoped resource) at all? What passes may still be limited per
  // object: lists are filtered with visible(), single objects judged with check_object().
  std::optional<Denial> check_request(const Identity& who, const Permissions& p,
                                      const std::string& resource, const std::string& ns,
                                      const std::string& verb) const;
  // One object: as stored for a read; for a write, call it for the object as it is and as it will
  // be (a node may not be moved out of the caller's provinces).
  std::optional<Denial> check_object(const Identity& who, const Permissions& p,
                                     const std::string& resource, const nlohmann::json& obj,
                                     bool write) const;
  // Whether a list or watch shows `obj` to the caller.
  bool visible(const Permissions& p, const std::string& resource, const nlohmann::json& obj) const;
  // The province `obj` belongs to ("" : none; then only administrators reach it).
  std::string province_of(const std::string& resource, const nlohmann::json& obj) const;

  // Admission of a create (old == nullptr) or an update of a pod (Pod Security Standards of its
  // namespace, configmaps and secrets only as the caller may read them, nodes of the namespace's
  // province; see admission.h) or a node (the annotation only a join writes). May change `obj`:
  // an unbound pod of a province's namespace gets that province in its nodeSelector.
  std::optional<Denial> admit(const Identity& who, const Permissions& p,
                              const std::string& resource, nlohmann::json& obj,
                              const nlohmann::json* old) const;

  // For SelfSubjectAccessReview and SelfSubjectRulesReview.
  AccessAnswer decide(const Identity& who, const AccessQuery& q) const;
  RulesAnswer rules(const Identity& who, const std::string& ns) const;

 private:
  std::optional<nlohmann::json> load(const std::string& resource, const std::string& ns,
                                     const std::string& name) const;

  const Store& store_;
  const Registry& registry_;
};

// The review endpoints, for an authenticated caller:
//   POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews   (kubectl auth can-i)
//   POST /apis/authorization.k8s.io/v1/selfsubjectrulesreviews    (kubectl auth can-i --list)
//   POST /apis/authentication.k8s.io/{v1,v1beta1,v1alpha1}/selfsubjectreviews (kubectl auth whoami)
// nullopt when `path` is none of them; otherwise the code and the JSON to answer (the review, 201
// as kube-apiserver answers a create, or a Status).
struct ReviewResponse {
  int code = 201;
  nlohmann::json body;
};
std::optional<ReviewResponse> serve_review(const Authorizer& authorizer, const Identity& who,
                                           std::string_view method, std::string_view path,
                                           std::string_view body);

}  // namespace gantry::cloud::api
