#include "edgecore/runtime/registry_mirrors.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <system_error>

#include "common/base/atomic_file.h"
#include "common/base/parse.h"

namespace gantry::edge {
namespace {

namespace fs = std::filesystem;
using common::Code;
using common::make_error;

// The first line of every hosts.toml edgecore writes: how it knows which files are its own.
constexpr std::string_view kMarker = "# Written by edgecore from edgecore.yaml registry.mirrors";
constexpr std::string_view kDefaultDir = "_default";

bool is_label_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
}

// A DNS name or an IPv4 address: labels of letters, digits, '-' and '_' separated by single dots.
bool valid_hostname(std::string_view host) {
  if (host.empty() || host.size() > 253 || host.front() == '.' || host.back() == '.') return false;
  char prev = '.';
  for (char c : host) {
    if (c == '.') {
      if (prev == '.') return false;
    } else if (!is_label_char(c)) {
      return false;
    }
    prev = c;
  }
  return true;
}

bool valid_ipv6(std::string_view host) {
  if (host.size() < 2) return false;
  return std::all_of(host.begin(), host.end(), [](char c) {
    return std::isxdigit(static_cast<unsigned char>(c)) != 0 || c == ':' || c == '.';
  });
}

// "host", "host:port", "[v6]" or "[v6]:port"; `what` names the part in errors.
common::Status check_authority(std::string_view authority, std::string_view text,
                               std::string_view what) {
  std::string_view host = authority;
  std::string_view port;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos || !valid_ipv6(authority.substr(1, close - 1))) {
      return make_error(Code::kInvalidArgument, "'{}': {} '{}' is not a valid [IPv6] address", text,
                        what, authority);
    }
    host = authority.substr(0, close + 1);
    std::string_view rest = authority.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        return make_error(Code::kInvalidArgument, "'{}': unexpected '{}' after the {} address",
                          text, rest, what);
      }
      port = rest.substr(1);
      if (port.empty()) {
        return make_error(Code::kInvalidArgument, "'{}': the {} port is empty", text, what);
      }
    }
  } else {
    if (size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      port = authority.substr(colon + 1);
      if (port.empty()) {
        return make_error(Code::kInvalidArgument, "'{}': the {} port is empty", text, what);
      }
    }
    if (!valid_hostname(host)) {
      return make_error(Code::kInvalidArgument,
                        "'{}': {} host '{}' is not a DNS name or an IP address", text, what, host);
    }
  }
  if (!port.empty()) {
    auto number = common::parse_int64(port);
    if (!number.ok() || *number < 1 || *number > 65535) {
      return make_error(Code::kInvalidArgument,
                        "'{}': {} port '{}' is not a number from 1 to 65535", text, what, port);
    }
  }
  return common::Status::ok_status();
}

common::Status check_endpoint(std::string_view url, std::string_view text) {
  std::string_view rest;
  if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return make_error(Code::kInvalidArgument,
                      "'{}': the mirror must be an http:// or https:// URL, e.g. "
                      "https://mirror.example.cn:5000",
                      text);
  }
  size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash);
  if (authority.empty()) {
    return make_error(Code::kInvalidArgument, "'{}': the mirror URL has no host", text);
  }
  if (authority.find('@') != std::string_view::npos) {
    return make_error(Code::kInvalidArgument,
                      "'{}': credentials in the mirror URL are not supported (they would be "
                      "written to a world-readable file)",
                      text);
  }
  if (auto s = check_authority(authority, text, "mirror"); !s.ok()) return s;
  for (char c : path) {
    // The URL goes into a TOML string: nothing that could end it or hide in it.
    if (static_cast<unsigned char>(c) <= 0x20 || c == '"' || c == '\\' || c == '?' || c == '#' ||
        static_cast<unsigned char>(c) >= 0x7f) {
      return make_error(Code::kInvalidArgument,
                        "'{}': the mirror URL's path may hold only printable characters without "
                        "spaces, quotes, backslashes, '?' or '#'",
                        text);
    }
  }
  return common::Status::ok_status();
}

std::string directory_of(const std::string& registry) {
  return registry == "*" ? std::string(kDefaultDir) : registry;
}

bool written_by_edgecore(const fs::path& file) {
  auto text = common::read_file(file);
  return text.ok() && std::string_view(*text).starts_with(kMarker);
}

}  // namespace

common::Result<RegistryMirror> parse_registry_mirror(std::string_view text) {
  RegistryMirror m;
  std::string_view url = text;
  // REGISTRY=URL when what follows the first '=' is a URL ('=' may appear in a URL's path).
  size_t eq = text.find('=');
  std::string_view after = eq == std::string_view::npos ? "" : text.substr(eq + 1);
  if (after.starts_with("http://") || after.starts_with("https://") || eq == 0) {
    std::string_view registry = text.substr(0, eq);
    url = text.substr(eq + 1);
    if (registry.empty()) {
      return make_error(Code::kInvalidArgument,
                        "'{}': the registry before '=' is empty (write REGISTRY=URL, or the URL "
                        "alone to mirror every registry)",
                        text);
    }
    if (registry != "*") {
      if (registry.find("://") != std::string_view::npos ||
          registry.find('/') != std::string_view::npos) {
        return make_error(Code::kInvalidArgument,
                          "'{}': the registry is a host with an optional port, e.g. docker.io or "
                          "registry.example.cn:5000, without a scheme or path",
                          text);
      }
      if (auto s = check_authority(registry, text, "registry"); !s.ok()) return s;
    }
    m.registry = std::string(registry);
    std::transform(m.registry.begin(), m.registry.end(), m.registry.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  } else {
    m.registry = "*";
  }
  if (auto s = check_endpoint(url, text); !s.ok()) return s;
  m.endpoint = std::string(url);
  // "https://host/" is "https://host"; containerd appends the API path itself.
  const size_t authority_at = m.endpoint.find("://") + 3;
  while (m.endpoint.size() > authority_at + 1 && m.endpoint.back() == '/') m.endpoint.pop_back();
  return m;
}

std::string hosts_toml(const std::vector<std::string>& endpoints) {
  std::string out = fmt::format(
      "{}; edits are overwritten.\n"
      "# Mirrors in order, then the registry itself.\n",
      kMarker);
  for (const std::string& endpoint : endpoints) {
    out += fmt::format("\n[host.\"{}\"]\n  capabilities = [\"pull\", \"resolve\"]\n", endpoint);
  }
  return out;
}

common::Status write_registry_mirrors(const fs::path& config_path,
                                      const std::vector<RegistryMirror>& mirrors) {
  std::map<std::string, std::vector<std::string>> by_dir;  // directory -> endpoints in order
  for (const RegistryMirror& m : mirrors) {
    auto& endpoints = by_dir[directory_of(m.registry)];
    if (std::find(endpoints.begin(), endpoints.end(), m.endpoint) == endpoints.end()) {
      endpoints.push_back(m.endpoint);
    }
  }
  for (const auto& [dir, endpoints] : by_dir) {
    fs::path file = config_path / dir / "hosts.toml";
    std::error_code ec;
    if (fs::exists(file, ec) && !written_by_edgecore(file)) {
      return make_error(Code::kFailedPrecondition,
                        "{} exists and was not written by edgecore: remove it, or drop the mirror "
                        "for {} from edgecore.yaml",
                        file.string(), dir == kDefaultDir ? "every registry" : dir);
    }
    fs::create_directories(file.parent_path(), ec);
    if (ec) {
      return make_error(Code::kInternal, "creating {}: {}", file.parent_path().string(),
                        ec.message());
    }
    if (auto s = common::write_file_atomic(file, hosts_toml(endpoints), 0644); !s.ok()) return s;
  }
  // What an earlier configuration wrote and this one no longer names.
  std::error_code ec;
  if (!fs::is_directory(config_path, ec)) return common::Status::ok_status();
  for (const auto& entry : fs::directory_iterator(config_path, ec)) {
    std::string dir = entry.path().filename().string();
    fs::path file = entry.path() / "hosts.toml";
    if (by_dir.contains(dir) || !written_by_edgecore(file)) continue;
    fs::remove(file, ec);
    if (ec) return make_error(Code::kInternal, "removing {}: {}", file.string(), ec.message());
    fs::remove(entry.path(), ec);  // only if empty; an error here is harmless
    ec.clear();
  }
  return common::Status::ok_status();
}

}  // namespace gantry::edge
