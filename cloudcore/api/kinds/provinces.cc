// gantry.io/v1 Province: per-province aggregates computed from the registry and the statuses
// (docs/api.md, "Provinces"). Not stored: the server answers get and list itself.
#include "cloudcore/api/kinds/kinds.h"
#include "common/base/json.h"

namespace gantry::cloud::api::kinds {

Kind province() {
  using nlohmann::json;
  Kind k;
  k.group = "gantry.io";
  k.version = "v1";
  k.kind = "Province";
  k.plural = "provinces";
  k.singular = "province";
  k.namespaced = false;
  k.verbs = kGet | kList;
  k.scope = ProvinceScope::kNodeLabel;
  auto count = [](std::initializer_list<const char*> path) {
    std::vector<std::string> p(path.begin(), path.end());
    return [p](const json& obj, SystemTime) {
      const json* cur = &obj;
      for (const auto& part : p) {
        if (!cur->is_object() || !cur->contains(part)) return json(0);
        cur = &(*cur)[part];
      }
      return *cur;
    };
  };
  k.columns = {
      {"Name", "string", "The province.", 0, "name",
       [](const json& obj, SystemTime) {
         return json(common::json_string_at(obj, {"metadata", "name"}));
       }},
      {"Nodes", "string", "Nodes labelled with the province.", 0, "",
       count({"status", "nodes", "total"})},
      {"Ready", "string", "Nodes whose Ready condition is True.", 0, "",
       count({"status", "nodes", "ready"})},
      {"Not-Ready", "string", "Nodes whose Ready condition is False.", 0, "",
       count({"status", "nodes", "notReady"})},
      {"Unknown", "string", "Nodes that have not reported or went silent.", 0, "",
       count({"status", "nodes", "unknown"})},
      {"Pods", "string", "Pods bound to the province's nodes.", 0, "",
       count({"status", "pods", "total"})},
      {"Last-Change", "string", "The last status change reported.", 0, "",
       [](const json& obj, SystemTime) {
         return json(or_none(common::json_string_at(obj, {"status", "lastChange"})));
       }},
  };
  return k;
}

}  // namespace gantry::cloud::api::kinds
