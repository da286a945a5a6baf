// gantry.io/v1 Rollout: a staged update of one DaemonSet (by nodes) or Deployment (by replicas),
// step by step (docs/rollouts.md; docs/workloads.md, "Rolling out an upgrade to a province"). The
// state machine is cloudcore/controllers/ rollout_plan.h; the Rollout controller writes the status.
// Here: defaults, validation (422 with causes), the rules that need the store (the target exists,
// one Rollout per target, nothing to approve or abort in a finished rollout: 409) and kubectl's
// table.
#include <fmt/format.h>

#include <set>

#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/api/kinds/workload_common.h"
#include "common/base/json.h"
#include "common/base/parse.h"

namespace gantry::cloud::api::kinds {

using common::Code;
using nlohmann::json;

namespace {

constexpr int kMaxSteps = 100;

const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::string str_member(const json& obj, const char* key) {
  const json* v = member(obj, key);
  return v && v->is_string() ? v->get<std::string>() : "";
}

FieldError err(FieldErrorType type, std::string field, json value, std::string detail = "") {
  FieldError e;
  e.type = type;
  e.field = std::move(field);
  e.value = std::move(value);
  e.detail = std::move(detail);
  return e;
}

// Where a target kind is stored, and its resource name as kubectl prints it.
struct TargetKind {
  const char* kind;
  const char* prefix;
  const char* resource;
};
constexpr TargetKind kTargets[] = {{"DaemonSet", "/daemonsets/", "daemonsets.apps"},
                                   {"Deployment", "/deployments/", "deployments.apps"}};

const TargetKind* target_kind(const std::string& kind) {
  for (const auto& t : kTargets)
    if (kind == t.kind) return &t;
  return nullptr;
}

// An int >= 0 or "N%" with 0 <= N <= 100.
bool threshold_ok(const json& v) {
  if (v.is_number_integer()) return v.get<int64_t>() >= 0;
  if (!v.is_string()) return false;
  std::string s = v.get<std::string>();
  if (s.size() < 2 || s.back() != '%') return false;
  auto n = common::parse_int64(std::string_view(s).substr(0, s.size() - 1));
  return n.ok() && *n >= 0 && *n <= 100;
}

std::vector<FieldError> validate_rollout(const json& obj, const json* old) {
  std::vector<FieldError> errs;
  const json* spec = member(obj, "spec");
  if (!spec || !spec->is_object()) {
    errs.push_back(err(FieldErrorType::kRequired, "spec", nullptr));
    return errs;
  }
  const json* ref = member(*spec, "targetRef");
  std::string target_kind_name = ref ? str_member(*ref, "kind") : "";
  if (!ref || !ref->is_object()) {
    errs.push_back(err(FieldErrorType::kRequired, "spec.targetRef", nullptr));
  } else {
    std::string kind = str_member(*ref, "kind");
    std::string api = str_member(*ref, "apiVersion");
    if (kind.empty())
      errs.push_back(err(FieldErrorType::kRequired, "spec.targetRef.kind", nullptr));
    else if (!target_kind(kind))
      errs.push_back(err(FieldErrorType::kNotSupported, "spec.targetRef.kind", kind,
                         "supported values: \"DaemonSet\", \"Deployment\""));
    if (!api.empty() && api != "apps/v1")
      errs.push_back(err(FieldErrorType::kNotSupported, "spec.targetRef.apiVersion", api,
                         "supported values: \"apps/v1\""));
    if (str_member(*ref, "name").empty())
      errs.push_back(err(FieldErrorType::kRequired, "spec.targetRef.name", nullptr));
  }
  if (old) {
    const json* old_spec = member(*old, "spec");
    const json* old_ref = old_spec ? member(*old_spec, "targetRef") : nullptr;
    if (old_ref && ref &&
        (str_member(*old_ref, "kind") != str_member(*ref, "kind") ||
         str_member(*old_ref, "name") != str_member(*ref, "name")))
      errs.push_back(err(FieldErrorType::kInvalid, "spec.targetRef", *ref, "field is immutable"));
  }

  const json* steps = member(*spec, "steps");
  size_t n_steps = 0;
  if (!steps || !steps->is_array() || steps->empty()) {
    errs.push_back(err(FieldErrorType::kRequired, "spec.steps", nullptr,
                       "at least one step, the last one updating every node (percent: 100)"));
  } else if (steps->size() > kMaxSteps) {
    errs.push_back(err(FieldErrorType::kTooMany, "spec.steps", static_cast<int64_t>(steps->size()),
                       fmt::format("must have at most {} items", kMaxSteps)));
  } else {
    n_steps = steps->size();
    std::map<std::string, std::pair<int64_t, size_t>> last_percent;  // selector -> percent, index
    for (size_t i = 0; i < steps->size(); ++i) {
      const json& st = (*steps)[i];
      std::string path = fmt::format("spec.steps[{}]", i);
      if (!st.is_object()) {
        errs.push_back(err(FieldErrorType::kTypeInvalid, path, st, "must be of type object"));
        continue;
      }
      std::string sel_key;
      bool has_selector = false;
      if (const json* sel = member(st, "nodeSelector"); sel && !sel->is_null()) {
        if (target_kind_name == "Deployment") {
          errs.push_back(err(FieldErrorType::kForbidden, path + ".nodeSelector", *sel,
                             "a Deployment's update is split by percent of its replicas only"));
        } else if (!sel->is_object()) {
          errs.push_back(err(FieldErrorType::kTypeInvalid, path + ".nodeSelector", *sel,
                             "must be a map of label keys to values"));
        } else {
          for (auto it = sel->begin(); it != sel->end(); ++it) {
            std::string f = fmt::format("{}.nodeSelector[{}]", path, it.key());
            for (const auto& m : qualified_name_errors(it.key()))
              errs.push_back(err(FieldErrorType::kInvalid, f, it.key(), m));
            if (!it->is_string()) {
              errs.push_back(err(FieldErrorType::kTypeInvalid, f, *it, "must be a string"));
              continue;
            }
            for (const auto& m : label_value_errors(it->get<std::string>()))
              errs.push_back(err(FieldErrorType::kInvalid, f, *it, m));
            sel_key += it.key() + "=" + it->get<std::string>() + ",";
          }
          has_selector = !sel->empty();
        }
      }
      int64_t percent = 100;
      if (const json* p = member(st, "percent"); p && !p->is_null()) {
        if (!p->is_number_integer() || p->get<int64_t>() < 1 || p->get<int64_t>() > 100) {
          errs.push_back(err(FieldErrorType::kInvalid, path + ".percent", *p,
                             "must be an integer between 1 and 100"));
          continue;
        }
        percent = p->get<int64_t>();
      } else if (!has_selector) {
        errs.push_back(err(FieldErrorType::kRequired, path + ".percent", nullptr,
                           "a step needs a percent, a nodeSelector or both"));
        continue;
      }
      auto prev = last_percent.find(sel_key);
      if (prev != last_percent.end() && percent <= prev->second.first)
        errs.push_back(err(
            FieldErrorType::kInvalid, path + ".percent", percent,
            fmt::format("must be greater than the {} of spec.steps[{}]{}: the steps do not add up",
                        prev->second.first, prev->second.second,
                        has_selector ? " (same nodeSelector)" : "")));
      last_percent[sel_key] = {percent, i};
      if (const json* pause = member(st, "pause"); pause && !pause->is_null()) {
        if (!pause->is_object()) {
          errs.push_back(err(FieldErrorType::kTypeInvalid, path + ".pause", *pause,
                             "must be {} (wait for approval) or {duration: 10m}"));
        } else if (const json* d = member(*pause, "duration"); d && !d->is_null()) {
          auto parsed = d->is_string() ? common::parse_go_duration(d->get<std::string>())
                                       : common::Result<std::chrono::nanoseconds>(
                                             common::make_error(Code::kInvalidArgument, ""));
          if (!parsed.ok() || parsed->count() <= 0)
            errs.push_back(err(FieldErrorType::kInvalid, path + ".pause.duration", *d,
                               "must be a positive duration such as \"30s\", \"10m\" or \"1h\""));
        }
      }
      if (const json* pp = member(st, "prePull"); pp && !pp->is_null() && !pp->is_boolean())
        errs.push_back(
            err(FieldErrorType::kTypeInvalid, path + ".prePull", *pp, "must be a boolean"));
      else if (pp && pp->is_boolean() && pp->get<bool>() && target_kind_name == "Deployment")
        errs.push_back(err(FieldErrorType::kForbidden, path + ".prePull", *pp,
                           "pre-pull is per node, for DaemonSets: a Deployment's new pods go "
                           "where the scheduler puts them"));
      if (i + 1 == steps->size() && (has_selector || percent != 100))
        errs.push_back(err(FieldErrorType::kInvalid, path, st,
                           "the last step must update every node: percent 100 and no "
                           "nodeSelector (the steps do not add up)"));
    }
  }
  if (const json* ft = member(*spec, "failureThreshold");
      ft && !ft->is_null() && !threshold_ok(*ft))
    errs.push_back(err(FieldErrorType::kInvalid, "spec.failureThreshold", *ft,
                       "must be a count (an integer >= 0) or a percentage \"0%\" to \"100%\""));
  if (const json* pd = member(*spec, "progressDeadlineSeconds"); pd && !pd->is_null())
    if (!pd->is_number_integer() || pd->get<int64_t>() < 1)
      errs.push_back(err(FieldErrorType::kInvalid, "spec.progressDeadlineSeconds", *pd,
                         "must be greater than or equal to 1"));
  for (const char* b : {"paused", "abort"})
    if (const json* v = member(*spec, b); v && !v->is_null() && !v->is_boolean())
      errs.push_back(
          err(FieldErrorType::kTypeInvalid, std::string("spec.") + b, *v, "must be a boolean"));
  if (const json* a = member(*spec, "approvedStep"); a && !a->is_null()) {
    if (!a->is_number_integer() || a->get<int64_t>() < 0 ||
        (n_steps > 0 && a->get<int64_t>() > static_cast<int64_t>(n_steps)))
      errs.push_back(err(FieldErrorType::kInvalid, "spec.approvedStep", *a,
                         fmt::format("must be a step number between 0 and {}", n_steps)));
  }
  return errs;
}

std::optional<Refusal> admit_rollout(const json& obj, const json* old, const StoredLookup& lookup) {
  const json& spec = obj["spec"];
  const json& ref = spec["targetRef"];
  std::string ns = common::json_string_at(obj, {"metadata", "namespace"});
  std::string name = common::json_string_at(obj, {"metadata", "name"});
  std::string kind = str_member(ref, "kind"), target = str_member(ref, "name");
  const TargetKind* tk = target_kind(kind);
  if (!tk) return std::nullopt;  // validate has answered
  auto conflict = [&](std::string message) {
    Refusal r;
    r.code = 409;
    r.reason = "Conflict";
    r.message = std::move(message);
    r.details = {{"name", name}, {"group", "gantry.io"}, {"kind", "rollouts"}};
    return r;
  };
  if (!old) {
    auto found = lookup.get(std::string(tk->prefix) + ns + "/" + target);
    if (!found.ok()) return Refusal{503, "ServiceUnavailable", found.status().message(), nullptr};
    if (!*found) {
      FieldErrors errors = {
          err(FieldErrorType::kNotFound, "spec.targetRef.name", target,
              fmt::format("{} \"{}\" not found in namespace \"{}\"", tk->resource, target, ns))};
      json status = invalid_status("Rollout", name, errors);
      return Refusal{422, "Invalid", status["message"].get<std::string>(), status["details"]};
    }
    auto others = lookup.list("/rollouts/" + ns + "/");
    if (!others.ok()) return Refusal{503, "ServiceUnavailable", others.status().message(), nullptr};
    for (const auto& o : *others) {
      if (common::json_string_at(o, {"metadata", "name"}) == name) continue;
      if (common::json_string_at(o, {"spec", "targetRef", "kind"}) == kind &&
          common::json_string_at(o, {"spec", "targetRef", "name"}) == target)
        return conflict(fmt::format(
            "rollouts.gantry.io \"{}\" already rolls out {} \"{}\": one Rollout per workload "
            "(change that one, or delete it first)",
            common::json_string_at(o, {"metadata", "name"}), tk->resource, target));
    }
    return std::nullopt;
  }
  // Approving or aborting needs a run in progress.
  std::string phase = common::json_string_at(*old, {"status", "phase"});
  bool done = phase.empty() || phase == "Completed" || phase == "Aborted" || phase == "RolledBack";
  if (!done) return std::nullopt;
  auto int_of = [](const json& o, const char* f) {
    const json* s = member(o, "spec");
    const json* v = s ? member(*s, f) : nullptr;
    return v && v->is_number_integer() ? v->get<int64_t>() : 0;
  };
  auto bool_of = [](const json& o, const char* f) {
    const json* s = member(o, "spec");
    const json* v = s ? member(*s, f) : nullptr;
    return v && v->is_boolean() && v->get<bool>();
  };
  std::string what = phase.empty() ? "not started" : phase;
  std::string why =
      phase == "Completed" || phase.empty()
          ? fmt::format("revision {} runs everywhere",
                        or_none(common::json_string_at(*old, {"status", "stableRevision"})))
          : fmt::format("the target is at revision {}",
                        or_none(common::json_string_at(*old, {"status", "updateRevision"})));
  if (int_of(obj, "approvedStep") > int_of(*old, "approvedStep"))
    return conflict(fmt::format(
        "rollout \"{}\" is {} ({}): there is nothing to approve until {} \"{}\" changes again",
        name, what, why, tk->resource, target));
  if (bool_of(obj, "abort") && !bool_of(*old, "abort"))
    return conflict(
        fmt::format("rollout \"{}\" is {} ({}): there is nothing to abort", name, what, why));
  return std::nullopt;
}

int64_t status_int(const json& obj, const char* f) {
  const json* s = member(obj, "status");
  const json* v = s ? member(*s, f) : nullptr;
  return v && v->is_number_integer() ? v->get<int64_t>() : 0;
}

}  // namespace

Kind rollout() {
  Kind k;
  k.group = "gantry.io";
  k.version = "v1";
  k.kind = "Rollout";
  k.plural = "rollouts";
  k.singular = "rollout";
  k.short_names = {"ro"};
  k.prefix = "/rollouts/";
  k.status = StatusSource::kInObject;
  k.tracks_generation = true;
  k.subresources = {{"status", "", "", "", kGet | kUpdate | kPatch}};
  k.validate = validate_rollout;
  k.admit = admit_rollout;
  k.prepare = [](json& obj) -> common::Status {
    json& spec = obj["spec"];
    if (!spec.is_object())
      return common::make_error(Code::kInvalidArgument, "spec: Required value");
    json& ref = spec["targetRef"];
    if (ref.is_object() && !ref.contains("apiVersion")) ref["apiVersion"] = "apps/v1";
    if (!spec.contains("failureThreshold")) spec["failureThreshold"] = 0;
    if (!spec.contains("progressDeadlineSeconds")) spec["progressDeadlineSeconds"] = 600;
    for (const char* b : {"paused", "abort"})
      if (!spec.contains(b)) spec[b] = false;
    if (!spec.contains("approvedStep")) spec["approvedStep"] = 0;
    if (spec.contains("steps") && spec["steps"].is_array())
      for (auto& st : spec["steps"])
        if (st.is_object() && !st.contains("percent")) st["percent"] = 100;
    return common::ok_status();
  };
  auto text = [](std::initializer_list<const char*> path) {
    std::vector<std::string> p(path.begin(), path.end());
    return [p](const json& obj, SystemTime) {
      const json* cur = &obj;
      for (const auto& part : p) {
        if (!cur->is_object() || !cur->contains(part)) return json("<none>");
        cur = &(*cur)[part];
      }
      return cur->is_string() ? json(or_none(cur->get<std::string>())) : json(cur->dump());
    };
  };
  k.columns = {
      name_column(),
      {"Target", "string", "The workload rolled out.", 0, "",
       [](const json& obj, SystemTime) {
         std::string kind = common::json_string_at(obj, {"spec", "targetRef", "kind"});
         std::string name = common::json_string_at(obj, {"spec", "targetRef", "name"});
         std::string shortk = kind == "DaemonSet" ? "ds" : kind == "Deployment" ? "deploy" : kind;
         for (auto& c : shortk) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
         return json(shortk + "/" + name);
       }},
      {"Step", "string", "The current step of the steps.", 0, "",
       [](const json& obj, SystemTime) {
         size_t n = obj.contains("spec") && obj["spec"].contains("steps") &&
                            obj["spec"]["steps"].is_array()
                        ? obj["spec"]["steps"].size()
                        : 0;
         return json(fmt::format("{}/{}", status_int(obj, "currentStep"), n));
       }},
      {"Phase", "string", "Progressing, Paused, WaitingApproval, Completed, Aborted or RolledBack.",
       0, "", text({"status", "phase"})},
      int_column("Updated", "Nodes (replicas of a Deployment) running the update revision.",
                 {"status", "updated"}),
      int_column("Ready", "Of those, nodes whose pod is Ready.", {"status", "ready"}),
      int_column("Failed", "Updated pods on reachable nodes that failed.", {"status", "failed"}),
      int_column("Waiting-Offline",
                 "Unreachable nodes that will get their revision when they return.",
                 {"status", "waitingOffline"}),
      age_column(),
      {"Stable", "string", "The revision the fleet ran before the update.", 1, "",
       text({"status", "stableRevision"})},
      {"Update", "string", "The revision being rolled out.", 1, "",
       text({"status", "updateRevision"})},
      {"Message", "string", "What the rollout is doing or waiting for.", 1, "",
       text({"status", "message"})},
  };
  return k;
}

}  // namespace gantry::cloud::api::kinds
