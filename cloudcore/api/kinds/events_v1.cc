// events.k8s.io/v1 Event: the stored (core v1) events in that version's shape — regarding, note,
// reportingController, deprecated* — converted on every read and back before storage, as
// kube-apiserver serves one storage in two versions (cloudcore/api/event_shapes.h).

#include "cloudcore/api/event_shapes.h"
#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/registry/keys.h"
#include "common/base/json.h"

namespace gantry::cloud::api::kinds {

Kind event_v1() {
  using nlohmann::json;
  Kind k;
  k.group = "events.k8s.io";
  k.version = "v1";
  k.kind = "Event";
  k.plural = "events";
  k.singular = "event";
  k.short_names = {"ev"};
  k.prefix = std::string(keys::kEvents);
  k.selectable_fields = {"regarding.kind",
                         "regarding.name",
                         "regarding.namespace",
                         "regarding.uid",
                         "regarding.apiVersion",
                         "regarding.resourceVersion",
                         "regarding.fieldPath",
                         "reportingController",
                         "reason",
                         "type"};
  k.to_external = [](json& obj) {
    std::string rv = common::json_string_at(obj, {"metadata", "resourceVersion"});
    obj = events_v1_from_core(obj);
    if (!rv.empty()) obj["metadata"]["resourceVersion"] = rv;
  };
  k.validate_create = [](const json& obj) { return core_from_events_v1(obj, true).status(); };
  k.prepare = [](json& obj) -> common::Status {
    auto core = core_from_events_v1(obj, false);
    if (!core.ok()) return core.status();
    obj = std::move(core).value();
    return common::ok_status();
  };
  k.columns = event_columns("regarding", "note");
  return k;
}

}  // namespace gantry::cloud::api::kinds
