// apps/v1 ControllerRevision: the DaemonSet controller writes one per template (history for
// `kubectl rollout history|undo daemonset`); data and revision are immutable.
#include <fmt/format.h>

#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/api/kinds/workload_common.h"
#include "common/base/json.h"

namespace gantry::cloud::api::kinds {

using common::Code;
using nlohmann::json;

Kind controller_revision() {
  Kind k;
  k.group = "apps";
  k.version = "v1";
  k.kind = "ControllerRevision";
  k.plural = "controllerrevisions";
  k.singular = "controllerrevision";
  k.prefix = "/controllerrevisions/";
  k.prepare = [](json& obj) -> common::Status {
    if (!obj.contains("revision") || !obj["revision"].is_number_integer())
      return common::make_error(Code::kInvalidArgument, "revision: Required value");
    return check_non_negative(obj, "revision", "revision");
  };
  k.validate_update = [](const json& old_obj, const json& new_obj) -> common::Status {
    if (old_obj.value("data", json()) != new_obj.value("data", json()))
      return common::make_error(Code::kInvalidArgument,
                                "ControllerRevision.apps \"{}\" is invalid: data: Invalid value: "
                                "field is immutable",
                                common::json_string_at(new_obj, {"metadata", "name"}));
    return common::ok_status();
  };
  k.columns = {
      name_column(),
      {"Controller", "string", "The object that owns this revision.", 0, "",
       [](const json& obj, SystemTime) {
         if (obj.contains("metadata") && obj["metadata"].contains("ownerReferences"))
           for (const auto& r : obj["metadata"]["ownerReferences"])
             if (r.value("controller", false)) {
               std::string kind = r.value("kind", "");
               for (auto& c : kind)
                 c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
               return json(kind + ".apps/" + r.value("name", ""));
             }
         return json("<none>");
       }},
      int_column("Revision", "The revision number.", {"revision"}),
      age_column(),
  };
  return k;
}

}  // namespace gantry::cloud::api::kinds
