// batch/v1 CronJob (also served as batch/v1beta1): defaults and validation as Kubernetes has them
// (schedules in UTC only), status written by the CronJob controller
// (cloudcore/controllers/workloads_cronjob.cc).
#include <fmt/format.h>

#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/api/kinds/workload_common.h"
#include "common/base/cron.h"
#include "common/base/json.h"

namespace gantry::cloud::api::kinds {

using common::Code;
using common::make_error;
using nlohmann::json;

namespace {

common::Status prepare_cron_job(json& obj) {
  const std::string name = common::json_string_at(obj, {"metadata", "name"});
  // The Jobs are named <name>-<minutes since 1970> (11 characters).
  if (name.size() > 52)
    return make_error(Code::kInvalidArgument,
                      "metadata.name: Invalid value: \"{}\": must be no more than 52 characters",
                      name);
  json& spec = obj["spec"];
  if (!spec.is_object()) return make_error(Code::kInvalidArgument, "spec: Required value");
  if (!spec.contains("schedule") || !spec["schedule"].is_string() ||
      spec["schedule"].get<std::string>().empty())
    return make_error(Code::kInvalidArgument, "spec.schedule: Required value");
  const std::string schedule = spec["schedule"];
  if (schedule.find("TZ") != std::string::npos)
    return make_error(Code::kInvalidArgument,
                      "spec.schedule: Invalid value: \"{}\": cannot use TZ or CRON_TZ in schedule, "
                      "use timeZone field instead",
                      schedule);
  if (auto parsed = common::CronSchedule::parse(schedule); !parsed.ok())
    return make_error(Code::kInvalidArgument, "spec.schedule: Invalid value: \"{}\": {}", schedule,
                      parsed.status().message());
  if (spec.contains("timeZone") && !spec["timeZone"].is_null()) {
    if (spec["timeZone"] != "UTC" && spec["timeZone"] != "Etc/UTC")
      return make_error(Code::kInvalidArgument,
                        "spec.timeZone: Invalid value: {}: Gantry runs CronJob schedules in UTC "
                        "only (\"UTC\", \"Etc/UTC\" or no timeZone)",
                        spec["timeZone"].dump());
  }
  if (!spec.contains("concurrencyPolicy")) spec["concurrencyPolicy"] = "Allow";
  if (spec["concurrencyPolicy"] != "Allow" && spec["concurrencyPolicy"] != "Forbid" &&
      spec["concurrencyPolicy"] != "Replace")
    return make_error(Code::kInvalidArgument,
                      "spec.concurrencyPolicy: Unsupported value: {}: supported values: "
                      "\"Allow\", \"Forbid\", \"Replace\"",
                      spec["concurrencyPolicy"].dump());
  if (!spec.contains("suspend")) spec["suspend"] = false;
  if (!spec["suspend"].is_boolean())
    return make_error(Code::kInvalidArgument, "spec.suspend: must be a boolean");
  if (!spec.contains("successfulJobsHistoryLimit")) spec["successfulJobsHistoryLimit"] = 3;
  if (!spec.contains("failedJobsHistoryLimit")) spec["failedJobsHistoryLimit"] = 1;
  for (const char* f :
       {"successfulJobsHistoryLimit", "failedJobsHistoryLimit", "startingDeadlineSeconds"}) {
    if (spec.contains(f) && spec[f].is_null()) spec.erase(f);
    GANTRY_RETURN_IF_ERROR(check_non_negative(spec, f, std::string("spec.") + f));
  }
  if (!spec.contains("jobTemplate"))
    return make_error(Code::kInvalidArgument, "spec.jobTemplate: Required value");
  return prepare_job_template(spec["jobTemplate"], "spec.jobTemplate");
}

const json* job_template_containers(const json& obj) {
  return common::json_at(obj, {"spec", "jobTemplate", "spec", "template", "spec", "containers"});
}

std::string join_containers(const json& obj, const char* field) {
  std::string out;
  const json* cs = job_template_containers(obj);
  if (!cs || !cs->is_array()) return out;
  for (const auto& c : *cs)
    if (c.is_object()) out += (out.empty() ? "" : ",") + c.value(field, "");
  return out;
}

}  // namespace

namespace {

Kind cron_job_in(const char* version) {
  Kind k;
  k.group = "batch";
  k.version = version;
  k.kind = "CronJob";
  k.plural = "cronjobs";
  k.singular = "cronjob";
  k.short_names = {"cj"};
  k.categories = {"all"};
  k.prefix = "/cronjobs/";
  k.status = StatusSource::kInObject;
  k.tracks_generation = true;
  k.cascades = true;
  k.subresources = {{"status", "", "", "", kGet | kUpdate | kPatch}};
  k.prepare = [](json& obj) {
    obj["apiVersion"] = "batch/v1";  // stored as v1 whichever version wrote it
    return prepare_cron_job(obj);
  };
  k.columns = {
      name_column(),
      {"Schedule", "string", "The schedule in Cron format.", 0, "",
       [](const json& obj, SystemTime) {
         return json(common::json_string_at(obj, {"spec", "schedule"}));
       }},
      {"Timezone", "string", "The time zone of the schedule.", 0, "",
       [](const json& obj, SystemTime) {
         return json(or_none(common::json_string_at(obj, {"spec", "timeZone"})));
       }},
      {"Suspend", "boolean", "Whether the CronJob is suspended.", 0, "",
       [](const json& obj, SystemTime) {
         const json* s = common::json_at(obj, {"spec", "suspend"});
         return json(s && s->is_boolean() ? (s->get<bool>() ? "True" : "False") : "<unset>");
       }},
      {"Active", "integer", "Number of running Jobs.", 0, "",
       [](const json& obj, SystemTime) {
         const json* a = common::json_at(obj, {"status", "active"});
         return json(a && a->is_array() ? static_cast<int64_t>(a->size()) : 0);
       }},
      {"Last Schedule", "date", "When the last Job was scheduled.", 0, "",
       [](const json& obj, SystemTime now) {
         std::string last = common::json_string_at(obj, {"status", "lastScheduleTime"});
         auto t = parse_rfc3339(last);
         if (!t) return json("<none>");
         int64_t now_s =
             std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
         return json(human_age(std::chrono::seconds(std::max<int64_t>(0, now_s - *t))));
       }},
      age_column(),
      {"Containers", "string", "Names of each container in the template.", 1, "",
       [](const json& obj, SystemTime) { return json(join_containers(obj, "name")); }},
      {"Images", "string", "Images referenced by each container in the template.", 1, "",
       [](const json& obj, SystemTime) { return json(join_containers(obj, "image")); }},
      {"Selector", "string", "The label selector of the Jobs' pods.", 1, "",
       [](const json& obj, SystemTime) {
         const json* sel = common::json_at(obj, {"spec", "jobTemplate", "spec", "selector"});
         return json(or_none(sel ? selector_string(*sel) : ""));
       }},
  };
  return k;
}

}  // namespace

Kind cron_job() {
  return cron_job_in("v1");
}

// kubectl before 1.21 creates and reads CronJobs as batch/v1beta1 (`kubectl create cronjob` of
// Debian's 1.20); the fields Gantry serves are the same in both versions.
Kind cron_job_v1beta1() {
  return cron_job_in("v1beta1");
}

}  // namespace gantry::cloud::api::kinds
