// core/v1 Secret: `stringData` is folded into base64 `data` before storage, as kube-apiserver
// does; sent to the edge for the pods that mount it.
#include <fmt/format.h>

#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/registry/keys.h"
#include "common/base/parse.h"

namespace gantry::cloud::api::kinds {
Kind secret() {
  using nlohmann::json;
  Kind k;
  k.version = "v1";
  k.kind = "Secret";
  k.plural = "secrets";
  k.singular = "secret";
  k.prefix = std::string(keys::kSecrets);
  k.edge_kind = v1::OBJECT_KIND_SECRET;
  k.selectable_fields = {"type"};
  k.prepare = [](json& obj) -> common::Status {
    if (!obj.contains("stringData")) return common::ok_status();
    if (!obj["stringData"].is_object())
      return common::make_error(common::Code::kInvalidArgument,
                                "stringData: must be a map of strings");
    if (!obj.contains("data") || !obj["data"].is_object()) obj["data"] = json::object();
    for (auto it = obj["stringData"].begin(); it != obj["stringData"].end(); ++it) {
      if (!it.value().is_string())
        return common::make_error(common::Code::kInvalidArgument, "stringData.{}: must be a string",
                                  it.key());
      obj["data"][it.key()] = common::base64_encode(it.value().get_ref<const std::string&>());
    }
    obj.erase("stringData");
    return common::ok_status();
  };
  k.columns = {
      name_column(),
      {"Type", "string", "The secret's type.", 0, "",
       [](const json& obj, SystemTime) { return json(obj.value("type", "Opaque")); }},
      {"Data", "string", "Number of keys.", 0, "",
       [](const json& obj, SystemTime) {
         return json(obj.contains("data") && obj["data"].is_object() ? obj["data"].size() : 0);
       }},
      age_column()};
  return k;
}

}  // namespace gantry::cloud::api::kinds
