#include "cloudcore/api/discovery.h"

#include <fmt/format.h>

#include <algorithm>

namespace gantry::cloud::api {
namespace {

using nlohmann::json;

json group_version(const std::string& group, const std::string& version) {
  return {{"groupVersion", group.empty() ? version : group + "/" + version}, {"version", version}};
}

json legacy_resource(const Kind& k) {
  json r = {{"name", k.plural},
            {"singularName", k.singular},
            {"namespaced", k.namespaced},
            {"kind", k.kind},
            {"verbs", verb_names(k.verbs)}};
  if (!k.short_names.empty()) r["shortNames"] = k.short_names;
  if (!k.categories.empty()) r["categories"] = k.categories;
  return r;
}

json legacy_subresource(const Kind& k, const Subresource& s) {
  json r = {{"name", k.plural + "/" + s.name},
            {"singularName", ""},
            {"namespaced", k.namespaced},
            {"kind", s.kind.empty() ? k.kind : s.kind},
            {"verbs", verb_names(s.verbs)}};
  if (!s.group.empty() || (!s.version.empty() && s.version != k.version)) {
    r["group"] = s.group;
    r["version"] = s.version;
  }
  return r;
}

json discovery_resource(const Kind& k) {
  json r = {{"resource", k.plural},
            {"responseKind", {{"group", k.group}, {"version", k.version}, {"kind", k.kind}}},
            {"scope", k.namespaced ? "Namespaced" : "Cluster"},
            {"singularResource", k.singular},
            {"verbs", verb_names(k.verbs)}};
  if (!k.short_names.empty()) r["shortNames"] = k.short_names;
  if (!k.categories.empty()) r["categories"] = k.categories;
  if (!k.subresources.empty()) {
    json subs = json::array();
    for (const auto& s : k.subresources) {
      subs.push_back({{"subresource", s.name},
                      {"responseKind",
                       {{"group", s.kind.empty() ? k.group : s.group},
                        {"version", s.version.empty() ? k.version : s.version},
                        {"kind", s.kind.empty() ? k.kind : s.kind}}},
                      {"verbs", verb_names(s.verbs)}});
    }
    r["subresources"] = std::move(subs);
  }
  return r;
}

json discovery_group(const KindRegistry& kinds, const std::string& group,
                     const std::vector<std::string>& versions) {
  json vs = json::array();
  for (const auto& v : versions) {
    json resources = json::array();
    for (const Kind* k : kinds.of(group, v)) resources.push_back(discovery_resource(*k));
    vs.push_back({{"version", v}, {"resources", std::move(resources)}, {"freshness", "Current"}});
  }
  json meta = json::object();
  meta["name"] = group;
  meta["creationTimestamp"] = nullptr;
  return {{"metadata", std::move(meta)}, {"versions", std::move(vs)}};
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

json api_versions(const std::string& server_address) {
  return {{"kind", "APIVersions"},
          {"versions", {"v1"}},
          {"serverAddressByClientCIDRs",
           {{{"clientCIDR", "0.0.0.0/0"}, {"serverAddress", server_address}}}}};
}

json api_group_list(const KindRegistry& kinds) {
  json groups = json::array();
  for (const auto& g : kinds.groups()) {
    json versions = json::array();
    for (const auto& v : g.versions) versions.push_back(group_version(g.name, v));
    groups.push_back({{"name", g.name},
                      {"versions", std::move(versions)},
                      {"preferredVersion", group_version(g.name, g.versions.front())}});
  }
  return {{"kind", "APIGroupList"}, {"apiVersion", "v1"}, {"groups", std::move(groups)}};
}

std::optional<json> api_group(const KindRegistry& kinds, std::string_view group) {
  for (const auto& g : kinds.groups()) {
    if (g.name != group) continue;
    json versions = json::array();
    for (const auto& v : g.versions) versions.push_back(group_version(g.name, v));
    return json{{"kind", "APIGroup"},
                {"apiVersion", "v1"},
                {"name", g.name},
                {"versions", std::move(versions)},
                {"preferredVersion", group_version(g.name, g.versions.front())}};
  }
  return std::nullopt;
}

std::optional<json> api_resource_list(const KindRegistry& kinds, std::string_view group,
                                      std::string_view version) {
  auto of = kinds.of(group, version);
  if (of.empty()) {
    // A group served only for a subresource's body (policy/v1) has an empty list.
    auto groups = kinds.groups();
    bool served = std::any_of(groups.begin(), groups.end(), [&](const KindRegistry::Group& g) {
      return g.name == group &&
             std::find(g.versions.begin(), g.versions.end(), version) != g.versions.end();
    });
    if (!served) return std::nullopt;
  }
  json resources = json::array();
  for (const Kind* k : of) {
    resources.push_back(legacy_resource(*k));
    for (const auto& s : k->subresources) resources.push_back(legacy_subresource(*k, s));
  }
  std::string gv = group.empty() ? std::string(version) : fmt::format("{}/{}", group, version);
  return json{{"kind", "APIResourceList"},
              {"apiVersion", "v1"},
              {"groupVersion", gv},
              {"resources", std::move(resources)}};
}

std::optional<std::string> aggregated_discovery_version(std::string_view accept) {
  size_t start = 0;
  while (start <= accept.size()) {
    size_t comma = accept.find(',', start);
    std::string_view item = accept.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    // media type and parameters
    std::string type;
    std::string g, v, as;
    size_t pos = 0;
    bool first = true;
    while (pos <= item.size()) {
      size_t semi = item.find(';', pos);
      std::string part = trim(
          item.substr(pos, semi == std::string_view::npos ? std::string_view::npos : semi - pos));
      if (first) {
        type = part;
        first = false;
      } else if (auto eq = part.find('='); eq != std::string::npos) {
        std::string key = trim(std::string_view(part).substr(0, eq));
        std::string value = trim(std::string_view(part).substr(eq + 1));
        if (key == "g") g = value;
        if (key == "v") v = value;
        if (key == "as") as = value;
      }
      if (semi == std::string_view::npos) break;
      pos = semi + 1;
    }
    if (type == "application/json" || type == "*/*" || type == "application/*") {
      if (g.empty() && as.empty()) return std::nullopt;  // plain JSON preferred: legacy
      if (g == "apidiscovery.k8s.io" && as == "APIGroupDiscoveryList" &&
          (v == "v2" || v == "v2beta1"))
        return v;
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return std::nullopt;
}

json aggregated_discovery(const KindRegistry& kinds, bool core, const std::string& version) {
  json items = json::array();
  if (core) {
    items.push_back(discovery_group(kinds, "", {"v1"}));
  } else {
    for (const auto& g : kinds.groups())
      items.push_back(discovery_group(kinds, g.name, g.versions));
  }
  return {{"kind", "APIGroupDiscoveryList"},
          {"apiVersion", "apidiscovery.k8s.io/" + version},
          {"metadata", json::object()},
          {"items", std::move(items)}};
}

std::string aggregated_discovery_content_type(const std::string& version) {
  return fmt::format("application/json;g=apidiscovery.k8s.io;v={};as=APIGroupDiscoveryList",
                     version);
}

}  // namespace gantry::cloud::api
