// core/v1 Event: stored as given (cloudcore's components and the edge write them).
#include <cctype>

#include "cloudcore/api/event_shapes.h"
#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/registry/keys.h"
#include "common/base/json.h"

namespace gantry::cloud::api::kinds {

std::vector<TableColumn> event_columns(const char* object_field, const char* message_field) {
  using nlohmann::json;
  auto text = [](const char* field) {
    return
        [field](const json& obj, SystemTime) { return json(common::json_string_at(obj, {field})); };
  };
  return {
      {"Last Seen", "string", "When the event was last seen.", 0, "",
       [](const json& obj, SystemTime now) { return json(event_last_seen(obj, now)); }},
      {"Type", "string", "Normal or Warning.", 0, "", text("type")},
      {"Reason", "string", "Why.", 0, "", text("reason")},
      {"Object", "string", "The object the event is about.", 0, "",
       [object_field](const json& obj, SystemTime) {
         std::string object = common::json_string_at(obj, {object_field, "kind"});
         for (auto& c : object) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
         return json(object + "/" + common::json_string_at(obj, {object_field, "name"}));
       }},
      {"Message", "string", "What happened.", 0, "", text(message_field)},
  };
}

Kind event() {
  using nlohmann::json;
  Kind k;
  k.version = "v1";
  k.kind = "Event";
  k.plural = "events";
  k.singular = "event";
  k.short_names = {"ev"};
  k.prefix = std::string(keys::kEvents);
  // kube-apiserver's (pkg/registry/core/event): `kubectl events --for` sends apiVersion too.
  k.selectable_fields = {"involvedObject.kind",       "involvedObject.name",
                         "involvedObject.namespace",  "involvedObject.uid",
                         "involvedObject.apiVersion", "involvedObject.resourceVersion",
                         "involvedObject.fieldPath",  "reason",
                         "reportingComponent",        "type"};
  k.columns = event_columns("involvedObject", "message");
  return k;
}

}  // namespace gantry::cloud::api::kinds
