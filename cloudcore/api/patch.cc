#include "cloudcore/api/patch.h"

#include <map>
#include <string>

namespace gantry::cloud::api {
namespace {

using common::Code;
using common::make_error;
using nlohmann::json;

// Merge keys of the lists that merge (patchStrategy "merge"), by path with list indexes left
// out. Lists not named here are replaced whole, as Kubernetes does for them.
const std::map<std::string, std::string>& merge_keys() {
  static const std::map<std::string, std::string> kKeys = {
      {"spec.containers", "name"},
      {"spec.initContainers", "name"},
      {"spec.ephemeralContainers", "name"},
      {"spec.volumes", "name"},
      {"spec.imagePullSecrets", "name"},
      {"spec.hostAliases", "ip"},
      {"spec.containers.env", "name"},
      {"spec.initContainers.env", "name"},
      {"spec.containers.ports", "containerPort"},
      {"spec.initContainers.ports", "containerPort"},
      {"spec.containers.volumeMounts", "mountPath"},
      {"spec.initContainers.volumeMounts", "mountPath"},
      {"spec.containers.volumeDevices", "devicePath"},
      {"spec.taints", "key"},
      {"metadata.ownerReferences", "uid"},
      {"status.conditions", "type"},
  };
  return kKeys;
}

// Lists of scalars that merge as sets.
bool merges_as_set(const std::string& path) {
  return path == "metadata.finalizers";
}

std::string child_path(const std::string& path, const std::string& key) {
  return path.empty() ? key : path + "." + key;
}

common::Result<json> merge_value(const json& target, const json& patch, const std::string& path);

common::Result<json> merge_list(const json& target, const json& patch, const std::string& path,
                                const json* order) {
  auto key_it = merge_keys().find(path);
  // A workload's pod template merges as a pod does (spec.template.spec.containers by name).
  if (key_it == merge_keys().end() && path.starts_with("spec.template."))
    key_it = merge_keys().find(path.substr(std::string_view("spec.template.").size()));
  if (key_it == merge_keys().end()) {
    if (merges_as_set(path) && target.is_array()) {
      json out = target;
      for (const auto& v : patch)
        if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
      return out;
    }
    // Replace, but drop directive entries a client may have put in.
    json out = json::array();
    for (const auto& v : patch)
      if (!(v.is_object() && v.contains("$patch"))) out.push_back(v);
    return out;
  }
  const std::string& key = key_it->second;
  for (const auto& v : patch) {
    if (v.is_object() && v.value("$patch", "") == "replace") {
      json out = json::array();
      for (const auto& e : patch)
        if (!(e.is_object() && e.contains("$patch"))) out.push_back(e);
      return out;
    }
  }
  json out = target.is_array() ? target : json::array();
  for (const auto& element : patch) {
    if (!element.is_object() || !element.contains(key))
      return make_error(Code::kInvalidArgument, "{}: every element needs the merge key \"{}\"",
                        path, key);
    const json& k = element[key];
    auto it = std::find_if(out.begin(), out.end(), [&](const json& e) {
      return e.is_object() && e.contains(key) && e[key] == k;
    });
    if (element.value("$patch", "") == "delete") {
      if (it != out.end()) out.erase(it);
      continue;
    }
    if (it == out.end()) {
      auto merged = merge_value(json::object(), element, path);
      if (!merged.ok()) return merged.status();
      out.push_back(std::move(merged).value());
    } else {
      auto merged = merge_value(*it, element, path);
      if (!merged.ok()) return merged.status();
      *it = std::move(merged).value();
    }
  }
  if (order && order->is_array()) {
    // $setElementOrder: elements named there first, in that order; the others after.
    json sorted = json::array();
    std::vector<bool> taken(out.size(), false);
    for (const auto& o : *order) {
      if (!o.is_object() || !o.contains(key)) continue;
      for (size_t i = 0; i < out.size(); ++i) {
        if (!taken[i] && out[i].is_object() && out[i].contains(key) && out[i][key] == o[key]) {
          sorted.push_back(out[i]);
          taken[i] = true;
          break;
        }
      }
    }
    for (size_t i = 0; i < out.size(); ++i)
      if (!taken[i]) sorted.push_back(out[i]);
    out = std::move(sorted);
  }
  return out;
}

common::Result<json> merge_object(const json& target, const json& patch, const std::string& path) {
  std::string directive = patch.value("$patch", "");
  if (directive == "delete") return json();  // caller removes it
  json out = target.is_object() && directive != "replace" ? target : json::object();
  if (patch.contains("$retainKeys") && patch["$retainKeys"].is_array()) {
    json kept = json::object();
    for (const auto& k : patch["$retainKeys"])
      if (k.is_string() && out.contains(k.get<std::string>()))
        kept[k.get<std::string>()] = out[k.get<std::string>()];
    out = std::move(kept);
  }
  for (auto it = patch.begin(); it != patch.end(); ++it) {
    const std::string& name = it.key();
    if (name == "$patch" || name == "$retainKeys") continue;
    if (name.starts_with("$setElementOrder/")) continue;  // used with its list below
    if (name.starts_with("$deleteFromPrimitiveList/")) {
      std::string list = name.substr(std::string_view("$deleteFromPrimitiveList/").size());
      if (out.contains(list) && out[list].is_array() && it.value().is_array()) {
        json kept = json::array();
        for (const auto& v : out[list])
          if (std::find(it.value().begin(), it.value().end(), v) == it.value().end())
            kept.push_back(v);
        out[list] = std::move(kept);
      }
      continue;
    }
    if (name.starts_with("$"))
      return make_error(Code::kInvalidArgument, "{}: unknown patch directive \"{}\"", path, name);
    const json& value = it.value();
    std::string sub = child_path(path, name);
    if (value.is_null()) {
      out.erase(name);
      continue;
    }
    const json* current = out.contains(name) ? &out[name] : nullptr;
    if (value.is_array()) {
      std::string order_key = "$setElementOrder/" + name;
      const json* order = patch.contains(order_key) ? &patch[order_key] : nullptr;
      auto merged = merge_list(current ? *current : json::array(), value, sub, order);
      if (!merged.ok()) return merged.status();
      out[name] = std::move(merged).value();
    } else if (value.is_object()) {
      auto merged = merge_object(current ? *current : json::object(), value, sub);
      if (!merged.ok()) return merged.status();
      if (merged->is_null()) {
        out.erase(name);
      } else {
        out[name] = std::move(merged).value();
      }
    } else {
      out[name] = value;
    }
  }
  return out;
}

common::Result<json> merge_value(const json& target, const json& patch, const std::string& path) {
  if (patch.is_object()) return merge_object(target, patch, path);
  return patch;
}

}  // namespace

common::Result<json> apply_merge_patch(const json& target, const json& patch) {
  if (!patch.is_object())
    return make_error(Code::kInvalidArgument, "a merge patch must be a JSON object");
  json out = target;
  out.merge_patch(patch);
  return out;
}

common::Result<json> apply_strategic_merge_patch(const json& target, const json& patch) {
  if (!patch.is_object())
    return make_error(Code::kInvalidArgument, "a strategic merge patch must be a JSON object");
  auto out = merge_object(target, patch, "");
  if (!out.ok()) return out.status();
  if (out->is_null())
    return make_error(Code::kInvalidArgument, "$patch: delete at the top level is not allowed");
  return out;
}

common::Result<json> apply_json_patch(const json& target, const json& patch) {
  if (!patch.is_array())
    return make_error(Code::kInvalidArgument, "a JSON patch must be a JSON array of operations");
  try {
    return target.patch(patch);
  } catch (const json::exception& e) {
    return make_error(Code::kInvalidArgument, "JSON patch: {}", e.what());
  }
}

}  // namespace gantry::cloud::api
