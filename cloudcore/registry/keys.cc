#include "cloudcore/registry/keys.h"

#include <fmt/format.h>

namespace gantry::cloud::keys {
namespace {

std::string_view prefix_of(v1::ObjectKind kind) {
  switch (kind) {
    case v1::OBJECT_KIND_POD:
      return kPods;
    case v1::OBJECT_KIND_CONFIG_MAP:
      return kConfigMaps;
    case v1::OBJECT_KIND_SECRET:
      return kSecrets;
    case v1::OBJECT_KIND_NODE:
      return kNodes;
    default:
      return "/unknown/";
  }
}

bool namespaced(v1::ObjectKind kind) {
  return kind != v1::OBJECT_KIND_NODE;
}

}  // namespace

std::string object_key(v1::ObjectKind kind, std::string_view ns, std::string_view name) {
  if (!namespaced(kind)) return fmt::format("{}{}", prefix_of(kind), name);
  return fmt::format("{}{}/{}", prefix_of(kind), ns, name);
}

std::string status_key(v1::ObjectKind kind, std::string_view ns, std::string_view name) {
  if (kind == v1::OBJECT_KIND_NODE) return fmt::format("{}{}", kNodeStatus, name);
  return fmt::format("{}{}/{}", kPodStatus, ns, name);
}

std::string hub_sequence_key(std::string_view node) {
  return fmt::format("{}{}", kHubSequence, node);
}

std::optional<ParsedKey> parse_key(std::string_view key) {
  ParsedKey parsed;
  constexpr std::string_view kStatus = "/status";
  if (key.starts_with(kStatus)) {
    parsed.status = true;
    key.remove_prefix(kStatus.size());
  }
  struct Prefix {
    std::string_view text;
    v1::ObjectKind kind;
  };
  static constexpr Prefix kPrefixes[] = {{kPods, v1::OBJECT_KIND_POD},
                                         {kConfigMaps, v1::OBJECT_KIND_CONFIG_MAP},
                                         {kSecrets, v1::OBJECT_KIND_SECRET},
                                         {kNodes, v1::OBJECT_KIND_NODE}};
  for (const auto& p : kPrefixes) {
    if (!key.starts_with(p.text)) continue;
    std::string_view rest = key.substr(p.text.size());
    parsed.kind = p.kind;
    if (p.kind == v1::OBJECT_KIND_NODE) {
      if (rest.empty() || rest.find('/') != std::string_view::npos) return std::nullopt;
      parsed.name = rest;
      return parsed;
    }
    auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 == rest.size())
      return std::nullopt;
    parsed.ns = rest.substr(0, slash);
    parsed.name = rest.substr(slash + 1);
    return parsed;
  }
  return std::nullopt;
}

std::string_view kind_name(v1::ObjectKind kind) {
  switch (kind) {
    case v1::OBJECT_KIND_POD:
      return "pod";
    case v1::OBJECT_KIND_CONFIG_MAP:
      return "configmap";
    case v1::OBJECT_KIND_SECRET:
      return "secret";
    case v1::OBJECT_KIND_NODE:
      return "node";
    default:
      return "unknown";
  }
}

}  // namespace gantry::cloud::keys
