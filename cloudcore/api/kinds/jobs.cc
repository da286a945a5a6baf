// batch/v1 Job: defaults, the generated selector and validation as Kubernetes (1.27+) has them,
// status written by the Job controller (cloudcore/controllers/workloads_job.cc).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>

#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/api/kinds/workload_common.h"
#include "common/base/json.h"

namespace gantry::cloud::api::kinds {

using common::Code;
using common::make_error;
using nlohmann::json;

namespace {

// The labels Kubernetes puts on a Job's pod template when it generates the selector: the legacy
// pair and the batch.kubernetes.io/ pair (the selector uses the latter).
constexpr const char* kControllerUid = "batch.kubernetes.io/controller-uid";
constexpr const char* kLegacyControllerUid = "controller-uid";
constexpr const char* kJobName = "batch.kubernetes.io/job-name";
constexpr const char* kLegacyJobName = "job-name";

bool has_condition(const json& obj, const char* type) {
  const json* conds = common::json_at(obj, {"status", "conditions"});
  if (!conds || !conds->is_array()) return false;
  for (const auto& c : *conds)
    if (c.is_object() && c.value("type", "") == type && c.value("status", "") == "True")
      return true;
  return false;
}

// Fills what Kubernetes' job strategy generates unless spec.manualSelector is true: the template
// labels naming the job and its uid, and a selector on the uid. Users' own values are kept, so a
// conflicting one is refused by the checks after it.
common::Status generate_selector(json& obj) {
  const std::string name = common::json_string_at(obj, {"metadata", "name"});
  const std::string uid = common::json_string_at(obj, {"metadata", "uid"});
  json& tmpl = obj["spec"]["template"];
  if (!tmpl.contains("metadata") || !tmpl["metadata"].is_object())
    tmpl["metadata"] = json::object();
  json& labels = tmpl["metadata"]["labels"];
  if (!labels.is_object()) labels = json::object();
  for (const char* l : {kLegacyJobName, kJobName})
    if (!labels.contains(l)) labels[l] = name;
  for (const char* l : {kLegacyControllerUid, kControllerUid})
    if (!labels.contains(l)) labels[l] = uid;
  json& sel = obj["spec"]["selector"];
  if (!sel.is_object()) sel = json::object();
  if (!sel.contains("matchLabels") || !sel["matchLabels"].is_object())
    sel["matchLabels"] = json::object();
  if (!sel["matchLabels"].contains(kControllerUid)) sel["matchLabels"][kControllerUid] = uid;
  // What validateGeneratedSelector checks.
  if (sel["matchLabels"][kControllerUid] != uid)
    return make_error(Code::kInvalidArgument,
                      "spec.selector: Invalid value: {}: `selector` not auto-generated",
                      sel.dump());
  for (const char* l : {kLegacyControllerUid, kControllerUid})
    if (labels[l] != uid)
      return make_error(Code::kInvalidArgument,
                        "spec.template.metadata.labels[{}]: Invalid value: {}: must be '{}'", l,
                        labels[l].dump(), uid);
  for (const char* l : {kLegacyJobName, kJobName})
    if (labels[l] != name)
      return make_error(Code::kInvalidArgument,
                        "spec.template.metadata.labels[{}]: Invalid value: {}: must be '{}'", l,
                        labels[l].dump(), name);
  return common::ok_status();
}

// A field that may be absent or null (a Go pointer) and otherwise must be >= 0.
common::Status check_optional_non_negative(json& spec, const char* field) {
  if (spec.contains(field) && spec[field].is_null()) {
    spec.erase(field);
    return common::ok_status();
  }
  return check_non_negative(spec, field, std::string("spec.") + field);
}

common::Status prepare_job(json& obj) {
  json& spec = obj["spec"];
  if (!spec.is_object()) return make_error(Code::kInvalidArgument, "spec: Required value");
  for (const char* f : {"parallelism", "completions", "backoffLimit", "activeDeadlineSeconds",
                        "ttlSecondsAfterFinished"})
    GANTRY_RETURN_IF_ERROR(check_optional_non_negative(spec, f));
  // Kubernetes' defaults: completions 1 only when neither is given (parallelism alone makes a
  // work-queue job, complete when one pod succeeded and none is left running).
  if (!spec.contains("completions") && !spec.contains("parallelism")) spec["completions"] = 1;
  if (!spec.contains("parallelism")) spec["parallelism"] = 1;
  if (!spec.contains("backoffLimit")) spec["backoffLimit"] = 6;
  if (spec.contains("activeDeadlineSeconds") && spec["activeDeadlineSeconds"] == 0)
    return make_error(Code::kInvalidArgument,
                      "spec.activeDeadlineSeconds: Invalid value: 0: must be greater than 0");
  if (!spec.contains("completionMode")) spec["completionMode"] = "NonIndexed";
  if (spec["completionMode"] == "Indexed")
    return make_error(Code::kInvalidArgument,
                      "spec.completionMode: Unsupported value: \"Indexed\": supported values: "
                      "\"NonIndexed\" (Gantry does not run Indexed jobs)");
  if (spec["completionMode"] != "NonIndexed")
    return make_error(Code::kInvalidArgument,
                      "spec.completionMode: Unsupported value: {}: supported values: "
                      "\"NonIndexed\", \"Indexed\"",
                      spec["completionMode"].dump());
  if (!spec.contains("suspend")) spec["suspend"] = false;
  if (!spec["suspend"].is_boolean())
    return make_error(Code::kInvalidArgument, "spec.suspend: must be a boolean");
  if (spec.contains("manualSelector") && !spec["manualSelector"].is_null() &&
      !spec["manualSelector"].is_boolean())
    return make_error(Code::kInvalidArgument, "spec.manualSelector: must be a boolean");
  if (!spec.contains("podReplacementPolicy")) spec["podReplacementPolicy"] = "TerminatingOrFailed";
  if (spec["podReplacementPolicy"] != "TerminatingOrFailed" &&
      spec["podReplacementPolicy"] != "Failed")
    return make_error(Code::kInvalidArgument,
                      "spec.podReplacementPolicy: Unsupported value: {}: supported values: "
                      "\"Failed\", \"TerminatingOrFailed\"",
                      spec["podReplacementPolicy"].dump());
  if (!spec.contains("template"))
    return make_error(Code::kInvalidArgument, "spec.template: Required value");
  if (!spec["template"].is_object())
    return make_error(Code::kInvalidArgument, "spec.template: Invalid value: must be an object");
  const bool manual = spec.value("manualSelector", json(false)) == true;
  if (!manual) GANTRY_RETURN_IF_ERROR(generate_selector(obj));
  GANTRY_RETURN_IF_ERROR(check_selector(obj));
  GANTRY_RETURN_IF_ERROR(prepare_pod_template(spec["template"], "spec.template"));
  const json& policy = spec["template"]["spec"]["restartPolicy"];
  if (policy != "Never" && policy != "OnFailure")
    return make_error(Code::kInvalidArgument,
                      "spec.template.spec.restartPolicy: Unsupported value: {}: supported values: "
                      "\"OnFailure\", \"Never\"",
                      policy.dump());
  return common::ok_status();
}

// "3/5", or for a work-queue job (no completions) "1/1" or "0/1 of 4", as kubectl prints it.
std::string completions_cell(const json& obj) {
  int64_t succeeded = common::json_int_at(obj, {"status", "succeeded"});
  const json* c = common::json_at(obj, {"spec", "completions"});
  if (c && c->is_number_integer()) return fmt::format("{}/{}", succeeded, c->get<int64_t>());
  int64_t parallelism = common::json_int_at(obj, {"spec", "parallelism"}, 0);
  if (parallelism > 1) return fmt::format("{}/1 of {}", succeeded, parallelism);
  return fmt::format("{}/1", succeeded);
}

std::string duration_cell(const json& obj, SystemTime now) {
  auto start = parse_rfc3339(common::json_string_at(obj, {"status", "startTime"}));
  if (!start) return "";
  auto end = parse_rfc3339(common::json_string_at(obj, {"status", "completionTime"}));
  int64_t until =
      end ? *end : std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  return human_age(std::chrono::seconds(std::max<int64_t>(0, until - *start)));
}

std::string status_cell(const json& obj) {
  if (has_condition(obj, "Complete")) return "Complete";
  if (has_condition(obj, "Failed")) return "Failed";
  if (common::json_at(obj, {"metadata", "deletionTimestamp"})) return "Terminating";
  if (has_condition(obj, "Suspended")) return "Suspended";
  if (has_condition(obj, "FailureTarget")) return "FailureTarget";
  return "Running";
}

// The fields Kubernetes forbids changing on a Job (suspended jobs may change parts of the
// template there; Gantry keeps the template immutable).
common::Status check_immutable(const json& old_obj, json new_obj) {
  // Compare what would be stored: the user's copy with the same defaults and generated labels.
  (void)prepare_job(new_obj);
  const std::string name = common::json_string_at(new_obj, {"metadata", "name"});
  for (const char* field : {"selector", "template", "completions", "completionMode"}) {
    const json* a = common::json_at(old_obj, {"spec", field});
    const json* b = common::json_at(new_obj, {"spec", field});
    json va = a ? *a : json(), vb = b ? *b : json();
    if (va != vb)
      return make_error(Code::kInvalidArgument,
                        "Job.batch \"{}\" is invalid: spec.{}: Invalid value: {}: field is "
                        "immutable",
                        name, field, vb.dump());
  }
  return common::ok_status();
}

}  // namespace

common::Status prepare_job_template(json& tmpl, const std::string& path) {
  if (!tmpl.is_object()) return make_error(Code::kInvalidArgument, "{}: Required value", path);
  if (!tmpl.contains("spec") || !tmpl["spec"].is_object())
    return make_error(Code::kInvalidArgument, "{}.spec: Required value", path);
  // The rules of a Job's spec, checked on a probe (the defaults and the generated selector are
  // the Job's, made when the CronJob controller creates it).
  json probe = {{"metadata", {{"name", "probe"}, {"uid", "probe"}}}, {"spec", tmpl["spec"]}};
  if (auto s = prepare_job(probe); !s.ok()) {
    std::string m = s.message();
    if (m.starts_with("spec.")) return make_error(Code::kInvalidArgument, "{}.{}", path, m);
    return make_error(Code::kInvalidArgument, "{}.spec: {}", path, m);
  }
  // Stored with its pod template's defaults, as Kubernetes stores it.
  return prepare_pod_template(tmpl["spec"]["template"], path + ".spec.template");
}

Kind job() {
  Kind k;
  k.group = "batch";
  k.version = "v1";
  k.kind = "Job";
  k.plural = "jobs";
  k.singular = "job";
  k.categories = {"all"};
  k.prefix = "/jobs/";
  k.status = StatusSource::kInObject;
  k.tracks_generation = true;
  k.cascades = true;
  k.subresources = {{"status", "", "", "", kGet | kUpdate | kPatch}};
  k.prepare = prepare_job;
  k.validate_update = check_immutable;
  k.warnings = [](const json& obj) {
    std::vector<std::string> out;
    for (const char* f : {"podFailurePolicy", "successPolicy", "backoffLimitPerIndex",
                          "maxFailedIndexes", "managedBy"})
      if (common::json_at(obj, {"spec", f}))
        out.push_back(
            fmt::format("spec.{}: stored but not honoured by Gantry's Job controller", f));
    return out;
  };
  k.columns = {
      name_column(),
      {"Status", "string", "Status of the job.", 0, "",
       [](const json& obj, SystemTime) { return json(status_cell(obj)); }},
      {"Completions", "string", "The number of pods which reached phase Succeeded.", 0, "",
       [](const json& obj, SystemTime) { return json(completions_cell(obj)); }},
      {"Duration", "string", "Time required to complete the job.", 0, "",
       [](const json& obj, SystemTime now) { return json(duration_cell(obj, now)); }},
      age_column(),
  };
  for (auto& c : wide_template_columns()) k.columns.push_back(std::move(c));
  return k;
}

}  // namespace gantry::cloud::api::kinds
