#include "cloudcore/api/kinds/workload_common.h"

#include <fmt/format.h>

#include "cloudcore/registry/objects.h"
#include "common/base/json.h"

namespace gantry::cloud::api::kinds {

using common::Code;
using common::make_error;
using nlohmann::json;

common::Status prepare_pod_template(json& tmpl, const std::string& path) {
  if (!tmpl.is_object()) return make_error(Code::kInvalidArgument, "{}: Required value", path);
  if (!tmpl.contains("spec") || !tmpl["spec"].is_object())
    return make_error(Code::kInvalidArgument, "{}.spec: Required value", path);
  json& spec = tmpl["spec"];
  if (!spec.contains("restartPolicy")) spec["restartPolicy"] = "Always";
  if (!spec.contains("terminationGracePeriodSeconds")) spec["terminationGracePeriodSeconds"] = 30;
  if (!spec.contains("dnsPolicy")) spec["dnsPolicy"] = "ClusterFirst";
  if (!spec.contains("schedulerName")) spec["schedulerName"] = "default-scheduler";
  for (const char* list : {"containers", "initContainers"}) {
    if (!spec.contains(list) || !spec[list].is_array()) continue;
    for (auto& c : spec[list]) {
      if (!c.is_object()) continue;
      if (!c.contains("imagePullPolicy")) {
        std::string image = c.value("image", "");
        auto slash = image.rfind('/');
        std::string last = slash == std::string::npos ? image : image.substr(slash + 1);
        bool latest = last.find(':') == std::string::npos || last.ends_with(":latest");
        if (image.find('@') != std::string::npos) latest = false;
        c["imagePullPolicy"] = latest ? "Always" : "IfNotPresent";
      }
      if (!c.contains("terminationMessagePath"))
        c["terminationMessagePath"] = "/dev/termination-log";
      if (!c.contains("terminationMessagePolicy")) c["terminationMessagePolicy"] = "File";
      if (!c.contains("resources")) c["resources"] = json::object();
    }
  }
  // The template must make a valid pod (the controllers create pods from it).
  json pod = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata", {{"name", "template"}, {"namespace", "default"}}},
              {"spec", spec}};
  if (tmpl.contains("metadata") && tmpl["metadata"].is_object())
    for (const char* f : {"labels", "annotations"})
      if (tmpl["metadata"].contains(f)) pod["metadata"][f] = tmpl["metadata"][f];
  auto decoded = decode_object(v1::OBJECT_KIND_POD, pod.dump());
  if (!decoded.ok()) {
    std::string m = decoded.status().message();
    if (m.starts_with("metadata.") || m.starts_with("spec."))
      return make_error(Code::kInvalidArgument, "{}.{}", path, m);
    return make_error(Code::kInvalidArgument, "{}: {}", path, m);
  }
  return common::ok_status();
}

common::Status check_selector(const json& obj) {
  const json* sel = common::json_at(obj, {"spec", "selector"});
  if (!sel || !sel->is_object())
    return make_error(Code::kInvalidArgument, "spec.selector: Required value");
  bool has_labels = sel->contains("matchLabels") && (*sel)["matchLabels"].is_object() &&
                    !(*sel)["matchLabels"].empty();
  bool has_exprs = sel->contains("matchExpressions") && (*sel)["matchExpressions"].is_array() &&
                   !(*sel)["matchExpressions"].empty();
  if (!has_labels && !has_exprs)
    return make_error(Code::kInvalidArgument,
                      "spec.selector: Invalid value: {}: empty selector is invalid for {}",
                      sel->dump(), common::json_string_at(obj, {"kind"}));
  std::map<std::string, std::string> labels;
  if (const json* l = common::json_at(obj, {"spec", "template", "metadata", "labels"});
      l && l->is_object())
    for (auto it = l->begin(); it != l->end(); ++it)
      if (it->is_string()) labels[it.key()] = it->get<std::string>();
  bool ok = true;
  if (has_labels)
    for (auto it = (*sel)["matchLabels"].begin(); it != (*sel)["matchLabels"].end(); ++it) {
      auto l = labels.find(it.key());
      if (!it->is_string() || l == labels.end() || l->second != it->get<std::string>()) ok = false;
    }
  if (has_exprs)
    for (const auto& e : (*sel)["matchExpressions"]) {
      if (!e.is_object()) {
        ok = false;
        continue;
      }
      std::string key = e.value("key", ""), op = e.value("operator", "");
      std::set<std::string> values;
      if (e.contains("values") && e["values"].is_array())
        for (const auto& v : e["values"])
          if (v.is_string()) values.insert(v.get<std::string>());
      auto l = labels.find(key);
      if (op == "In")
        ok = ok && l != labels.end() && values.count(l->second);
      else if (op == "NotIn")
        ok = ok && (l == labels.end() || !values.count(l->second));
      else if (op == "Exists")
        ok = ok && l != labels.end();
      else if (op == "DoesNotExist")
        ok = ok && l == labels.end();
      else
        return make_error(Code::kInvalidArgument,
                          "spec.selector.matchExpressions.operator: Unsupported value: \"{}\": "
                          "supported values: \"In\", \"NotIn\", \"Exists\", \"DoesNotExist\"",
                          op);
    }
  if (!ok)
    return make_error(Code::kInvalidArgument,
                      "spec.template.metadata.labels: Invalid value: {}: `selector` does not "
                      "match template `labels`",
                      json(labels).dump());
  return common::ok_status();
}

common::Status check_non_negative(const json& obj, const char* field, const std::string& path) {
  if (!obj.is_object() || !obj.contains(field)) return common::ok_status();
  const json& v = obj[field];
  if (!v.is_number_integer())
    return make_error(Code::kInvalidArgument, "{}: Invalid value: {}: must be an integer", path,
                      v.dump());
  if (v.get<int64_t>() < 0)
    return make_error(Code::kInvalidArgument,
                      "{}: Invalid value: {}: must be greater than or equal to 0", path, v.dump());
  return common::ok_status();
}

common::Status check_int_or_percent(const json& v, const std::string& path) {
  if (v.is_number_integer() && v.get<int64_t>() >= 0) return common::ok_status();
  if (v.is_string()) {
    std::string s = v.get<std::string>();
    if (s.size() >= 2 && s.back() == '%' && s.find_first_not_of("0123456789") == s.size() - 1)
      return common::ok_status();
  }
  return make_error(Code::kInvalidArgument,
                    "{}: Invalid value: {}: a non-negative integer or a percentage (e.g. '25%')",
                    path, v.dump());
}

common::Status check_selector_unchanged(const std::string& kind, const json& old_obj,
                                        const json& new_obj) {
  const json* a = common::json_at(old_obj, {"spec", "selector"});
  const json* b = common::json_at(new_obj, {"spec", "selector"});
  json na = a ? *a : json(), nb = b ? *b : json();
  if (na == nb) return common::ok_status();
  return make_error(Code::kInvalidArgument,
                    "{}.apps \"{}\" is invalid: spec.selector: Invalid value: {}: field is "
                    "immutable",
                    kind, common::json_string_at(new_obj, {"metadata", "name"}), nb.dump());
}

std::string selector_string(const json& selector) {
  std::vector<std::string> parts;
  if (!selector.is_object()) return "";
  if (selector.contains("matchLabels") && selector["matchLabels"].is_object())
    for (auto it = selector["matchLabels"].begin(); it != selector["matchLabels"].end(); ++it)
      parts.push_back(it.key() + "=" + (it->is_string() ? it->get<std::string>() : it->dump()));
  if (selector.contains("matchExpressions") && selector["matchExpressions"].is_array())
    for (const auto& e : selector["matchExpressions"]) {
      std::string key = e.value("key", ""), op = e.value("operator", "");
      std::string values;
      if (e.contains("values") && e["values"].is_array())
        for (const auto& v : e["values"])
          values += (values.empty() ? "" : ",") + v.get<std::string>();
      if (op == "In")
        parts.push_back(key + " in (" + values + ")");
      else if (op == "NotIn")
        parts.push_back(key + " notin (" + values + ")");
      else if (op == "Exists")
        parts.push_back(key);
      else if (op == "DoesNotExist")
        parts.push_back("!" + key);
    }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ",") + p;
  return out;
}

json scale_of(const json& obj) {
  json meta = json::object();
  for (const char* f : {"name", "namespace", "uid", "resourceVersion", "creationTimestamp"})
    if (obj["metadata"].contains(f)) meta[f] = obj["metadata"][f];
  const json* sel = common::json_at(obj, {"spec", "selector"});
  return {{"kind", "Scale"},
          {"apiVersion", "autoscaling/v1"},
          {"metadata", meta},
          {"spec", {{"replicas", common::json_int_at(obj, {"spec", "replicas"}, 1)}}},
          {"status",
           {{"replicas", common::json_int_at(obj, {"status", "replicas"}, 0)},
            {"selector", sel ? selector_string(*sel) : ""}}}};
}

common::Result<int64_t> replicas_of_scale(const json& scale) {
  const json* r = common::json_at(scale, {"spec", "replicas"});
  if (!r || !r->is_number_integer())
    return make_error(Code::kInvalidArgument, "spec.replicas: Required value: an integer");
  if (r->get<int64_t>() < 0)
    return make_error(Code::kInvalidArgument,
                      "spec.replicas: Invalid value: {}: must be greater than or equal to 0",
                      r->dump());
  return r->get<int64_t>();
}

namespace {
std::string join_containers(const json& obj, const char* field) {
  const json* cs = common::json_at(obj, {"spec", "template", "spec", "containers"});
  std::string out;
  if (!cs || !cs->is_array()) return out;
  for (const auto& c : *cs)
    if (c.is_object()) out += (out.empty() ? "" : ",") + c.value(field, "");
  return out;
}
}  // namespace

std::string template_containers(const json& obj) {
  return join_containers(obj, "name");
}
std::string template_images(const json& obj) {
  return join_containers(obj, "image");
}

TableColumn int_column(const char* name, const char* description,
                       std::initializer_list<const char*> path, int64_t fallback) {
  std::vector<const char*> p(path);
  return {name, "integer", description, 0, "", [p, fallback](const json& obj, SystemTime) {
            const json* cur = &obj;
            for (const char* part : p) {
              if (!cur->is_object() || !cur->contains(part)) return json(fallback);
              cur = &(*cur)[part];
            }
            return cur->is_number_integer() ? *cur : json(fallback);
          }};
}

std::vector<TableColumn> wide_template_columns() {
  return {
      {"Containers", "string", "Names of each container in the template.", 1, "",
       [](const json& obj, SystemTime) { return json(template_containers(obj)); }},
      {"Images", "string", "Images referenced by each container in the template.", 1, "",
       [](const json& obj, SystemTime) { return json(template_images(obj)); }},
      {"Selector", "string", "The label selector of the pods.", 1, "",
       [](const json& obj, SystemTime) {
         return json(obj.contains("spec") && obj["spec"].contains("selector")
                         ? selector_string(obj["spec"]["selector"])
                         : "");
       }},
  };
}

}  // namespace gantry::cloud::api::kinds
