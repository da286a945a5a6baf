// apps/v1 DaemonSet: defaults and validation, status written by the DaemonSet controller
// (cloudcore/controllers/workloads_daemonset.cc).
#include <fmt/format.h>

#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/api/kinds/workload_common.h"

namespace gantry::cloud::api::kinds {

using common::Code;
using nlohmann::json;

Kind daemon_set() {
  Kind k;
  k.group = "apps";
  k.version = "v1";
  k.kind = "DaemonSet";
  k.plural = "daemonsets";
  k.singular = "daemonset";
  k.short_names = {"ds"};
  k.categories = {"all"};
  k.prefix = "/daemonsets/";
  k.status = StatusSource::kInObject;
  k.tracks_generation = true;
  k.cascades = true;
  k.subresources = {{"status", "", "", "", kGet | kUpdate | kPatch}};
  k.prepare = [](json& obj) -> common::Status {
    json& spec = obj["spec"];
    if (!spec.is_object())
      return common::make_error(Code::kInvalidArgument, "spec: Required value");
    GANTRY_RETURN_IF_ERROR(check_non_negative(spec, "minReadySeconds", "spec.minReadySeconds"));
    if (!spec.contains("revisionHistoryLimit")) spec["revisionHistoryLimit"] = 10;
    GANTRY_RETURN_IF_ERROR(
        check_non_negative(spec, "revisionHistoryLimit", "spec.revisionHistoryLimit"));
    if (!spec.contains("updateStrategy") || !spec["updateStrategy"].is_object())
      spec["updateStrategy"] = json::object();
    json& st = spec["updateStrategy"];
    if (!st.contains("type")) st["type"] = "RollingUpdate";
    if (st["type"] == "RollingUpdate") {
      if (!st.contains("rollingUpdate") || !st["rollingUpdate"].is_object())
        st["rollingUpdate"] = json::object();
      json& ru = st["rollingUpdate"];
      if (!ru.contains("maxUnavailable")) ru["maxUnavailable"] = 1;
      if (!ru.contains("maxSurge")) ru["maxSurge"] = 0;
      GANTRY_RETURN_IF_ERROR(check_int_or_percent(
          ru["maxUnavailable"], "spec.updateStrategy.rollingUpdate.maxUnavailable"));
    } else if (st["type"] != "OnDelete") {
      return common::make_error(Code::kInvalidArgument,
                                "spec.updateStrategy.type: Unsupported value: {}: supported "
                                "values: \"OnDelete\", \"RollingUpdate\"",
                                st["type"].dump());
    }
    GANTRY_RETURN_IF_ERROR(check_selector(obj));
    if (!spec.contains("template"))
      return common::make_error(Code::kInvalidArgument, "spec.template: Required value");
    return prepare_pod_template(spec["template"], "spec.template");
  };
  k.validate_update = [](const json& old_obj, const json& new_obj) {
    return check_selector_unchanged("DaemonSet", old_obj, new_obj);
  };
  k.columns = {
      name_column(),
      int_column("Desired", "Nodes that should run the pod.", {"status", "desiredNumberScheduled"}),
      int_column("Current", "Nodes running at least one pod.",
                 {"status", "currentNumberScheduled"}),
      int_column("Ready", "Nodes whose pod is ready.", {"status", "numberReady"}),
      int_column("Up-to-date", "Nodes running the updated pod.",
                 {"status", "updatedNumberScheduled"}),
      int_column("Available", "Nodes whose pod is available.", {"status", "numberAvailable"}),
      {"Node Selector", "string", "The template's node selector.", 0, "",
       [](const json& obj, SystemTime) {
         std::string out;
         if (obj.contains("spec") && obj["spec"].contains("template") &&
             obj["spec"]["template"].contains("spec") &&
             obj["spec"]["template"]["spec"].contains("nodeSelector") &&
             obj["spec"]["template"]["spec"]["nodeSelector"].is_object()) {
           const json& ns = obj["spec"]["template"]["spec"]["nodeSelector"];
           for (auto it = ns.begin(); it != ns.end(); ++it)
             out += (out.empty() ? "" : ",") + it.key() + "=" +
                    (it->is_string() ? it->get<std::string>() : it->dump());
         }
         return json(or_none(out));
       }},
      age_column(),
  };
  for (auto& c : wide_template_columns()) k.columns.push_back(std::move(c));
  return k;
}

}  // namespace gantry::cloud::api::kinds
