#include "cloudcore/api/event_shapes.h"

#include <fmt/format.h>

#include <cctype>
#include <utility>

#include "common/base/json.h"

namespace gantry::cloud::api {

using json = nlohmann::json;
using common::Code;
using common::make_error;

namespace {

// core name -> events.k8s.io/v1 name, for the fields that only change their name.
const std::pair<const char*, const char*> kRenamed[] = {
    {"involvedObject", "regarding"},
    {"message", "note"},
    {"reportingComponent", "reportingController"},
    {"source", "deprecatedSource"},
    {"firstTimestamp", "deprecatedFirstTimestamp"},
    {"lastTimestamp", "deprecatedLastTimestamp"},
    {"count", "deprecatedCount"},
};
// Fields of the same name in both.
const char* const kSame[] = {"metadata", "eventTime", "series",  "reportingInstance",
                             "action",   "reason",    "related", "type"};

bool empty_value(const json& v) {
  if (v.is_null()) return true;
  if (v.is_string()) return v.get_ref<const std::string&>().empty();
  if (v.is_object() || v.is_array()) return v.empty();
  if (v.is_number_integer()) return v.get<int64_t>() == 0;
  return false;
}

bool set(const json& obj, const char* field) {
  return obj.is_object() && obj.contains(field) && !empty_value(obj[field]);
}

std::string text(const json& obj, const char* field) {
  return obj.contains(field) && obj[field].is_string() ? obj[field].get<std::string>() : "";
}

// A Kubernetes qualified name ("[prefix/]name"), as reportingController must be.
bool qualified_name(const std::string& s) {
  auto slash = s.find('/');
  std::string name = slash == std::string::npos ? s : s.substr(slash + 1);
  std::string prefix = slash == std::string::npos ? "" : s.substr(0, slash);
  auto alnum = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) != 0; };
  if (name.empty() || name.size() > 63 || !alnum(name.front()) || !alnum(name.back())) return false;
  for (char c : name)
    if (!alnum(c) && c != '-' && c != '_' && c != '.') return false;
  if (slash != std::string::npos) {
    if (prefix.empty() || prefix.size() > 253) return false;
    for (char c : prefix)
      if (!(std::islower(static_cast<unsigned char>(c)) ||
            std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '.'))
        return false;
  }
  return true;
}

}  // namespace

json events_v1_from_core(const json& core) {
  json out = json::object();
  if (!core.is_object()) return out;
  out["apiVersion"] = "events.k8s.io/v1";
  out["kind"] = "Event";
  for (const char* f : kSame)
    if (set(core, f)) out[f] = core[f];
  for (const auto& [from, to] : kRenamed)
    if (set(core, from)) out[to] = core[from];
  if (!out.contains("regarding")) out["regarding"] = json::object();
  if (!out.contains("metadata")) out["metadata"] = json::object();
  // Go's metav1.MicroTime is not omitempty here: a legacy event reads `eventTime: null`.
  if (!out.contains("eventTime")) out["eventTime"] = nullptr;
  return out;
}

common::Result<json> core_from_events_v1(const json& ev, bool creating) {
  if (!ev.is_object()) return make_error(Code::kInvalidArgument, "the Event must be an object");
  if (creating) {
    auto required = [&](const char* field) -> common::Status {
      if (!set(ev, field)) return make_error(Code::kInvalidArgument, "{}: Required value", field);
      return common::ok_status();
    };
    for (const char* f :
         {"eventTime", "reportingController", "reportingInstance", "action", "reason"})
      GANTRY_RETURN_IF_ERROR(required(f));
    for (const char* f : {"reportingInstance", "action", "reason"}) {
      if (!ev[f].is_string())
        return make_error(Code::kInvalidArgument, "{}: Invalid value: must be a string", f);
      if (ev[f].get_ref<const std::string&>().size() > 128)
        return make_error(Code::kInvalidArgument, "{}: Too long: may not be more than 128 bytes",
                          f);
    }
    std::string controller = text(ev, "reportingController");
    if (!qualified_name(controller))
      return make_error(Code::kInvalidArgument,
                        "reportingController: Invalid value: \"{}\": must be a qualified name "
                        "([prefix/]name, e.g. 'example.com/MyName')",
                        controller);
    std::string type = text(ev, "type");
    if (type != "Normal" && type != "Warning")
      return make_error(
          Code::kInvalidArgument,
          "type: Unsupported value: \"{}\": supported values: \"Normal\", \"Warning\"", type);
    if (text(ev, "note").size() > 1024)
      return make_error(Code::kInvalidArgument, "note: Too long: may not be more than 1024 bytes");
    for (const char* f : {"deprecatedSource", "deprecatedFirstTimestamp", "deprecatedLastTimestamp",
                          "deprecatedCount"})
      if (set(ev, f))
        return make_error(Code::kInvalidArgument, "{}: Invalid value: needs to be unset", f);
    if (set(ev, "series")) {
      const json& series = ev["series"];
      if (!series.is_object() || !series.contains("count") ||
          !series["count"].is_number_integer() || series["count"].get<int64_t>() < 2)
        return make_error(Code::kInvalidArgument,
                          "series.count: Invalid value: should be at least 2");
      if (!set(series, "lastObservedTime"))
        return make_error(Code::kInvalidArgument, "series.lastObservedTime: Required value");
    }
  }
  json core = json::object();
  core["apiVersion"] = "v1";
  core["kind"] = "Event";
  for (const char* f : kSame)
    if (ev.contains(f)) core[f] = ev[f];
  for (const auto& [to, from] : kRenamed)
    if (ev.contains(from)) core[to] = ev[from];
  if (!core.contains("involvedObject")) core["involvedObject"] = json::object();
  if (!core.contains("metadata")) core["metadata"] = json::object();
  return core;
}

std::string event_last_seen(const json& event, SystemTime now) {
  std::optional<int64_t> last;
  auto try_time = [&](std::initializer_list<const char*> path) {
    if (!last) {
      std::string t = common::json_string_at(event, path);
      if (!t.empty()) last = parse_rfc3339(t);
    }
  };
  try_time({"series", "lastObservedTime"});
  try_time({"lastTimestamp"});
  try_time({"deprecatedLastTimestamp"});
  try_time({"eventTime"});
  if (!last) return age_of(event, now);
  auto now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  return human_age(std::chrono::seconds(std::max<int64_t>(0, now_s - *last)));
}

}  // namespace gantry::cloud::api
