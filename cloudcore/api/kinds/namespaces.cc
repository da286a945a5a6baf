// core/v1 Namespace: readable by every user; removed only when empty (no cascading yet).
#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/registry/keys.h"
#include "common/base/json.h"

namespace gantry::cloud::api::kinds {

Kind namespace_() {
  using nlohmann::json;
  Kind k;
  k.version = "v1";
  k.kind = "Namespace";
  k.plural = "namespaces";
  k.singular = "namespace";
  k.short_names = {"ns"};
  k.namespaced = false;
  k.verbs = kAllVerbs & ~kDeleteCollection;  // as kube-apiserver
  k.scope = ProvinceScope::kReadableByAll;
  k.prefix = std::string(keys::kNamespaces);
  k.name_is_label = true;
  k.delete_requires_empty = true;
  k.status = StatusSource::kRendered;
  k.selectable_fields = {"status.phase"};
  k.render_status = [](json& obj, const v1::StoredStatus*) {
    bool deleting = obj["metadata"].contains("deletionTimestamp");
    obj["status"] = {{"phase", deleting ? "Terminating" : "Active"}};
  };
  k.columns = {name_column(),
               {"Status", "string", "The namespace's phase.", 0, "",
                [](const json& obj, SystemTime) {
                  return json(common::json_string_at(obj, {"status", "phase"}));
                }},
               age_column()};
  return k;
}

}  // namespace gantry::cloud::api::kinds
