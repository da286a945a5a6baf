// apps/v1 ReplicaSet: defaults and validation, status written by the ReplicaSet controller
// (cloudcore/controllers/workloads_replicaset.cc), `scale` subresource.
#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/api/kinds/workload_common.h"

namespace gantry::cloud::api::kinds {

using common::Code;
using nlohmann::json;

Kind replica_set() {
  Kind k;
  k.group = "apps";
  k.version = "v1";
  k.kind = "ReplicaSet";
  k.plural = "replicasets";
  k.singular = "replicaset";
  k.short_names = {"rs"};
  k.categories = {"all"};
  k.prefix = "/replicasets/";
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
    GANTRY_RETURN_IF_ERROR(check_non_negative(spec, "minReadySeconds", "spec.minReadySeconds"));
    GANTRY_RETURN_IF_ERROR(check_selector(obj));
    if (!spec.contains("template"))
      return common::make_error(Code::kInvalidArgument, "spec.template: Required value");
    return prepare_pod_template(spec["template"], "spec.template");
  };
  k.validate_update = [](const json& old_obj, const json& new_obj) {
    return check_selector_unchanged("ReplicaSet", old_obj, new_obj);
  };
  k.columns = {
      name_column(),
      int_column("Desired", "Number of desired pods.", {"spec", "replicas"}, 1),
      int_column("Current", "Number of actual pods.", {"status", "replicas"}),
      int_column("Ready", "Number of ready pods.", {"status", "readyReplicas"}),
      age_column(),
  };
  for (auto& c : wide_template_columns()) k.columns.push_back(std::move(c));
  return k;
}

}  // namespace gantry::cloud::api::kinds
