// Registry mirrors for the node's containerd: edgecore.yaml's `registry.mirrors` (written by
// `gantryadm join --registry-mirror`) becomes one hosts.toml per registry under containerd's
// registry config_path, which containerd reads at every pull (no restart). Mirrors are tried in
// the order given, then the registry itself: a station mirror, then the province's, then the
// national one, then upstream (docs/edge.md "Registry mirrors").
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace gantry::edge {

struct RegistryMirror {
  std::string registry;  // "docker.io", "registry.example.cn:5000"; "*" = every registry
  std::string endpoint;  // "https://mirror.zj.example.cn:5000", "http://10.1.2.3:5000/v2/x"
};

// "[REGISTRY=]URL": URL alone mirrors every registry. URL is http:// or https://, a host (DNS
// name, IPv4 or [IPv6]), an optional port and an optional path; REGISTRY is a host with an
// optional port. The error says what is wrong in words an operator can act on.
common::Result<RegistryMirror> parse_registry_mirror(std::string_view text);

// The hosts.toml for one registry: its mirrors in order, each with pull and resolve; the
// registry itself stays the last resort (containerd's `server` default).
std::string hosts_toml(const std::vector<std::string>& endpoints);

// Makes config_path hold one hosts.toml per registry named in `mirrors` (directory "_default"
// for "*"), written atomically, and removes the hosts.toml files edgecore wrote before for
// registries no longer named. A hosts.toml that edgecore did not write is never touched: a
// mirror for its registry is an error naming the file.
common::Status write_registry_mirrors(const std::filesystem::path& config_path,
                                      const std::vector<RegistryMirror>& mirrors);

}  // namespace gantry::edge
