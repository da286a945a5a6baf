// core/v1 Event: stored as given (cloudcore's components and the edge write them).
#include <cctype>

#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/registry/keys.h"

namespace gantry::cloud::api::kinds {

Kind event() {
  using nlohmann::json;
  Kind k;
  k.version = "v1";
  k.kind = "Event";
  k.plural = "events";
  k.singular = "event";
  k.short_names = {"ev"};
  k.prefix = std::string(keys::kEvents);
  k.selectable_fields = {"involvedObject.kind",
                         "involvedObject.name",
                         "involvedObject.namespace",
                         "involvedObject.uid",
                         "reason",
                         "type"};
  auto text = [](const char* field) {
    return [field](const json& obj, SystemTime) { return json(string_at(obj, {field})); };
  };
  k.columns = {
      {"Last Seen", "string", "When the event was last seen.", 0, "",
       [](const json& obj, SystemTime now) { return json(age_of(obj, now)); }},
      {"Type", "string", "Normal or Warning.", 0, "", text("type")},
      {"Reason", "string", "Why.", 0, "", text("reason")},
      {"Object", "string", "The object the event is about.", 0, "",
       [](const json& obj, SystemTime) {
         std::string object = string_at(obj, {"involvedObject", "kind"});
         for (auto& c : object) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
         return json(object + "/" + string_at(obj, {"involvedObject", "name"}));
       }},
      {"Message", "string", "What happened.", 0, "", text("message")},
  };
  return k;
}

}  // namespace gantry::cloud::api::kinds
