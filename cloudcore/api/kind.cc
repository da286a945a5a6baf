#include "cloudcore/api/kind.h"

#include <fmt/format.h>

#include <algorithm>

#include "common/base/json.h"

namespace gantry::cloud::api {

std::vector<std::string> verb_names(Verbs verbs) {
  static const std::pair<Verb, const char*> kNames[] = {
      {kCreate, "create"}, {kDelete, "delete"}, {kDeleteCollection, "deletecollection"},
      {kGet, "get"},       {kList, "list"},     {kPatch, "patch"},
      {kUpdate, "update"}, {kWatch, "watch"}};
  std::vector<std::string> out;
  for (const auto& [v, name] : kNames)
    if (verbs & v) out.emplace_back(name);
  return out;
}

const Subresource* Kind::subresource(std::string_view name) const {
  for (const auto& s : subresources)
    if (s.name == name) return &s;
  return nullptr;
}

std::string Kind::key(std::string_view ns, std::string_view name) const {
  return namespaced ? fmt::format("{}{}/{}", prefix, ns, name) : fmt::format("{}{}", prefix, name);
}

std::string Kind::status_key(std::string_view ns, std::string_view name) const {
  if (status_prefix.empty()) return "";
  return namespaced ? fmt::format("{}{}/{}", status_prefix, ns, name)
                    : fmt::format("{}{}", status_prefix, name);
}

std::string Kind::list_prefix(std::string_view ns) const {
  return namespaced && !ns.empty() ? fmt::format("{}{}/", prefix, ns) : prefix;
}

std::vector<std::string> Kind::field_selectors() const {
  std::vector<std::string> out = {"metadata.name"};
  if (namespaced) out.emplace_back("metadata.namespace");
  for (const auto& f : selectable_fields)
    if (std::find(out.begin(), out.end(), f) == out.end()) out.push_back(f);
  return out;
}

TableColumn name_column() {
  return {"Name",
          "string",
          "Name must be unique within a namespace.",
          0,
          "name",
          [](const nlohmann::json& obj, SystemTime) {
            return common::json_string_at(obj, {"metadata", "name"});
          }};
}

TableColumn age_column() {
  return {
      "Age", "string", "CreationTimestamp: when the object was created.",
      0,     "",       [](const nlohmann::json& obj, SystemTime now) { return age_of(obj, now); }};
}

const std::vector<TableColumn>& Kind::table_columns() const {
  static const std::vector<TableColumn> kDefault = {name_column(), age_column()};
  return columns.empty() ? kDefault : columns;
}

common::Status KindRegistry::add(Kind kind) {
  for (const auto& k : kinds_) {
    if (k->group != kind.group || k->version != kind.version) continue;
    if (k->plural == kind.plural || k->kind == kind.kind)
      return common::make_error(common::Code::kAlreadyExists, "{}/{} ({}) is already registered",
                                kind.api_version(), kind.plural, kind.kind);
  }
  kinds_.push_back(std::make_unique<Kind>(std::move(kind)));
  return common::ok_status();
}

const Kind* KindRegistry::find(std::string_view group, std::string_view version,
                               std::string_view plural) const {
  for (const auto& k : kinds_)
    if (k->group == group && k->version == version && k->plural == plural) return k.get();
  return nullptr;
}

std::vector<const Kind*> KindRegistry::of(std::string_view group, std::string_view version) const {
  std::vector<const Kind*> out;
  for (const auto& k : kinds_)
    if (k->group == group && k->version == version) out.push_back(k.get());
  return out;
}

std::vector<KindRegistry::Group> KindRegistry::groups() const {
  std::vector<Group> out;
  for (const auto& k : kinds_) {
    if (k->group.empty()) continue;
    auto it =
        std::find_if(out.begin(), out.end(), [&](const Group& g) { return g.name == k->group; });
    if (it == out.end()) {
      out.push_back({k->group, {k->version}});
    } else if (std::find(it->versions.begin(), it->versions.end(), k->version) ==
               it->versions.end()) {
      it->versions.push_back(k->version);
    }
  }
  // Groups that only name a subresource's body (policy/v1 for pods/eviction): served with no
  // resources of their own, as kubectl before 1.22 looks for the policy group before it evicts.
  for (const auto& k : kinds_) {
    for (const auto& s : k->subresources) {
      if (s.group.empty() || s.version.empty()) continue;
      auto it =
          std::find_if(out.begin(), out.end(), [&](const Group& g) { return g.name == s.group; });
      if (it == out.end()) out.push_back({s.group, {s.version}});
    }
  }
  return out;
}

}  // namespace gantry::cloud::api
