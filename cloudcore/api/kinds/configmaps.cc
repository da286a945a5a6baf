// core/v1 ConfigMap: stored as given, sent to the edge for the pods that mount it.
#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/registry/keys.h"

namespace gantry::cloud::api::kinds {

Kind config_map() {
  Kind k;
  k.version = "v1";
  k.kind = "ConfigMap";
  k.plural = "configmaps";
  k.singular = "configmap";
  k.short_names = {"cm"};
  k.prefix = std::string(keys::kConfigMaps);
  k.edge_kind = v1::OBJECT_KIND_CONFIG_MAP;
  k.columns = {name_column(),
               {"Data", "string", "Number of keys.", 0, "",
                [](const nlohmann::json& obj, SystemTime) {
                  size_t n = 0;
                  for (const char* f : {"data", "binaryData"})
                    if (obj.contains(f) && obj[f].is_object()) n += obj[f].size();
                  return nlohmann::json(n);
                }},
               age_column()};
  return k;
}

}  // namespace gantry::cloud::api::kinds
