// apps/v1 Deployment: defaults and validation as Kubernetes has them, status written by the
// Deployment controller (cloudcore/controllers/workloads_deployment.cc), `scale` subresource.
#include <fmt/format.h>

#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/api/kinds/workload_common.h"
#include "common/base/json.h"

namespace gantry::cloud::api::kinds {

using common::Code;
using nlohmann::json;

Kind deployment() {
  Kind k;
  k.group = "apps";
  k.version = "v1";
  k.kind = "Deployment";
  k.plural = "deployments";
  k.singular = "deployment";
  k.short_names = {"deploy"};
  k.categories = {"all"};
  k.prefix = "/deployments/";
  k.status = StatusSource::kInObject;
  k.tracks_generation = true;
  k.cascades = true;
  k.subresources = {{"status", "", "", "", kGet | kUpdate | kPatch},
                    {"scale", "autoscaling", "v1", "Scale", kGet | kUpdate | kPatch}};
  k.prepare = [](json& obj) -> common::Status {
    json& spec = obj["spec"];
    if (!spec.is_object())
      return common::make_error(Code::kInvalidArgument, "spec: Required value");
    if (!spec.contains("replicas")) spec["replicas"] = 1;
    GANTRY_RETURN_IF_ERROR(check_non_negative(spec, "replicas", "spec.replicas"));
    for (const char* f : {"minReadySeconds", "revisionHistoryLimit"})
      GANTRY_RETURN_IF_ERROR(check_non_negative(spec, f, std::string("spec.") + f));
    if (!spec.contains("revisionHistoryLimit")) spec["revisionHistoryLimit"] = 10;
    if (!spec.contains("progressDeadlineSeconds")) spec["progressDeadlineSeconds"] = 600;
    GANTRY_RETURN_IF_ERROR(
        check_non_negative(spec, "progressDeadlineSeconds", "spec.progressDeadlineSeconds"));
    if (!spec.contains("strategy") || !spec["strategy"].is_object())
      spec["strategy"] = json::object();
    json& st = spec["strategy"];
    if (!st.contains("type")) st["type"] = "RollingUpdate";
    std::string type = st["type"].is_string() ? st["type"].get<std::string>() : "";
    if (type == "RollingUpdate") {
      if (!st.contains("rollingUpdate") || !st["rollingUpdate"].is_object())
        st["rollingUpdate"] = json::object();
      json& ru = st["rollingUpdate"];
      if (!ru.contains("maxSurge")) ru["maxSurge"] = "25%";
      if (!ru.contains("maxUnavailable")) ru["maxUnavailable"] = "25%";
      GANTRY_RETURN_IF_ERROR(
          check_int_or_percent(ru["maxSurge"], "spec.strategy.rollingUpdate.maxSurge"));
      GANTRY_RETURN_IF_ERROR(
          check_int_or_percent(ru["maxUnavailable"], "spec.strategy.rollingUpdate.maxUnavailable"));
      if ((ru["maxSurge"] == 0 || ru["maxSurge"] == "0%") &&
          (ru["maxUnavailable"] == 0 || ru["maxUnavailable"] == "0%"))
        return common::make_error(
            Code::kInvalidArgument,
            "spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when "
            "`maxSurge` is 0");
    } else if (type == "Recreate") {
      if (st.contains("rollingUpdate"))
        return common::make_error(
            Code::kInvalidArgument,
            "spec.strategy.rollingUpdate: Forbidden: may not be specified when strategy `type` "
            "is 'Recreate'");
    } else {
      return common::make_error(Code::kInvalidArgument,
                                "spec.strategy.type: Unsupported value: {}: supported values: "
                                "\"Recreate\", \"RollingUpdate\"",
                                st["type"].dump());
    }
    if (spec.contains("paused") && !spec["paused"].is_boolean())
      return common::make_error(Code::kInvalidArgument, "spec.paused: must be a boolean");
    GANTRY_RETURN_IF_ERROR(check_selector(obj));
    if (!spec.contains("template"))
      return common::make_error(Code::kInvalidArgument, "spec.template: Required value");
    return prepare_pod_template(spec["template"], "spec.template");
  };
  k.validate_update = [](const json& old_obj, const json& new_obj) {
    return check_selector_unchanged("Deployment", old_obj, new_obj);
  };
  k.columns = {
      name_column(),
      {"Ready", "string", "Number of the pods ready / desired.", 0, "",
       [](const json& obj, SystemTime) {
         return json(fmt::format("{}/{}", common::json_int_at(obj, {"status", "readyReplicas"}),
                                 common::json_int_at(obj, {"spec", "replicas"}, 1)));
       }},
      int_column("Up-to-date", "Total number of pods with the desired template.",
                 {"status", "updatedReplicas"}),
      int_column("Available", "Total number of available pods.", {"status", "availableReplicas"}),
      age_column(),
  };
  for (auto& c : wide_template_columns()) k.columns.push_back(std::move(c));
  return k;
}

}  // namespace gantry::cloud::api::kinds
