// YAML configuration: modules declare what they read, the loader rejects everything else.
//
//   struct TunnelConfig { std::string address; std::chrono::milliseconds heartbeat{15s}; };
//   struct EdgeConfig { std::string node_name; TunnelConfig tunnel; LogConfig log; };
//
//   void bind_config(ConfigNode& n, TunnelConfig& c) {
//     n.required("address", &c.address).field("heartbeat", &c.heartbeat, 1s, 10min);
//   }
//   Status load(const std::filesystem::path& path, EdgeConfig& cfg) {
//     return load_config_file(path, [&](ConfigNode& root) {
//       root.required("node_name", &cfg.node_name)
//           .section("tunnel", &cfg.tunnel)  // calls bind_config(ConfigNode&, TunnelConfig&)
//           .section("log", &cfg.log);
//     });
//   }
//
// Optional keys keep the value already in the struct (the default). Every error names the file,
// the key path and the reason, e.g.
//   edgecore.yaml: tunnel.heartbeat: '15x' is not a duration (use e.g. 15s, 2m, 24h)
// All errors of a file are reported at once, one per line. Nothing here throws.
#pragma once

#include <chrono>
#include <compare>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <initializer_list>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/base/status.h"

namespace gantry::common {

// A number of bytes, parsed from "512KiB", "1MiB", "10MB" or a plain integer.
struct ByteSize {
  uint64_t bytes = 0;

  static constexpr ByteSize kib(uint64_t n) { return {n << 10}; }
  static constexpr ByteSize mib(uint64_t n) { return {n << 20}; }
  static constexpr ByteSize gib(uint64_t n) { return {n << 30}; }
  friend constexpr auto operator<=>(const ByteSize&, const ByteSize&) = default;
};

// "500ms", "15s", "2m", "24h", "365d", and combinations such as "1h30m"; "0" is zero. Units:
// ms, s, m (minutes), h, d (24 h). Whole numbers only; no negative durations.
Result<std::chrono::milliseconds> parse_duration(std::string_view text);
// The shortest exact form that parse_duration reads back: 90000ms -> "1m30s".
std::string format_duration(std::chrono::milliseconds d);

// A plain integer (bytes) or an integer with a unit: B; kB/KB, MB, GB, TB (powers of 1000);
// KiB, MiB, GiB, TiB (powers of 1024); Kubernetes' k, M, G, T and Ki, Mi, Gi, Ti. "10 MiB" (one
// space) is accepted. Whole numbers only.
Result<uint64_t> parse_byte_size(std::string_view text);
// "1MiB" when exact in a binary unit, else "10MB" when exact in a decimal unit, else bytes.
std::string format_byte_size(uint64_t bytes);

// Value types that field(key, out, min, max) can bound.
template <typename T>
concept ConfigBoundable = (std::integral<T> && !std::same_as<T, bool>) || std::floating_point<T> ||
                          std::same_as<T, std::chrono::milliseconds> || std::same_as<T, ByteSize>;

// One mapping in a config file (the top level or a section), handed to the code that binds it.
class ConfigNode {
 public:
  ~ConfigNode();
  ConfigNode(const ConfigNode&) = delete;
  ConfigNode& operator=(const ConfigNode&) = delete;

  // Supported value types T: std::string, bool, integers (range-checked against T, and against
  // [min, max] when given), double, std::chrono::milliseconds (durations), ByteSize,
  // std::vector<std::string>, std::map<std::string, std::string>.

  // An optional key: when absent, *out keeps its value.
  template <typename T>
  ConfigNode& field(std::string_view key, T* out) {
    return bind(key, out, false, nullptr, nullptr);
  }
  // An optional key whose value must lie in [min, max] (integers, double, durations, sizes).
  template <ConfigBoundable T>
  ConfigNode& field(std::string_view key, T* out, std::type_identity_t<T> min,
                    std::type_identity_t<T> max) {
    return bind(key, out, false, &min, &max);
  }
  // A key that must be present.
  template <typename T>
  ConfigNode& required(std::string_view key, T* out) {
    return bind(key, out, true, nullptr, nullptr);
  }
  template <ConfigBoundable T>
  ConfigNode& required(std::string_view key, T* out, std::type_identity_t<T> min,
                       std::type_identity_t<T> max) {
    return bind(key, out, true, &min, &max);
  }
  // An optional string key restricted to `allowed` (e.g. log levels).
  ConfigNode& one_of(std::string_view key, std::string* out,
                     std::initializer_list<std::string_view> allowed);

  // A nested mapping. `bind` always runs, with an empty section when the key is absent, so that
  // required keys inside it are reported and optional ones keep their defaults.
  ConfigNode& section(std::string_view key, const std::function<void(ConfigNode&)>& bind);
  // The same, through `bind_config(ConfigNode&, T&)` found next to T.
  template <typename T>
  requires requires(ConfigNode& n, T& c) { bind_config(n, c); }
  ConfigNode& section(std::string_view key, T* cfg) {
    return section(key, [cfg](ConfigNode& n) { bind_config(n, *cfg); });
  }

  // A list of mappings, e.g. `tokens: [{name: a, role: admin}]`: `bind` runs once per item with
  // its index, and errors name the item (`tokens[1].role`). An absent key binds nothing.
  ConfigNode& list(std::string_view key, const std::function<void(ConfigNode&, size_t)>& bind);

  // Whether `key` is present in this mapping (for rules between keys).
  bool has(std::string_view key) const;
  // Reports a rule the values break, e.g. fail("idle_timeout", "must be longer than heartbeat").
  // An empty key names this section itself.
  ConfigNode& fail(std::string_view key, std::string_view reason);

  // Opaque: defined in config.cc.
  struct Impl;

 private:
  explicit ConfigNode(std::unique_ptr<Impl> impl);
  friend Status load_config_string(std::string_view yaml, std::string_view name,
                                   const std::function<void(ConfigNode&)>& bind);

  template <typename T>
  ConfigNode& bind(std::string_view key, T* out, bool required, std::type_identity_t<const T*> min,
                   std::type_identity_t<const T*> max) {
    if (!take(key, required)) return *this;
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      using Wide = std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>;
      Wide value = 0;
      if (read_integer(key, &value, min ? *min : std::numeric_limits<T>::min(),
                       max ? *max : std::numeric_limits<T>::max())) {
        *out = static_cast<T>(value);
      }
    } else {
      T value{};
      if (!read(key, &value)) return *this;
      if constexpr (ConfigBoundable<T>) {
        if ((min && value < *min) || (max && *max < value)) {
          out_of_range(key, describe(*min), describe(*max));
          return *this;
        }
      }
      *out = std::move(value);
    }
    return *this;
  }

  // Looks `key` up and marks it as known. False when it is absent (an error if required).
  bool take(std::string_view key, bool required);
  // Parse the value found by take(); false (with the error recorded) when it does not parse.
  bool read_integer(std::string_view key, int64_t* out, int64_t min, int64_t max);
  bool read_integer(std::string_view key, uint64_t* out, uint64_t min, uint64_t max);
  bool read(std::string_view key, std::string* out);
  bool read(std::string_view key, bool* out);
  bool read(std::string_view key, double* out);
  bool read(std::string_view key, std::chrono::milliseconds* out);
  bool read(std::string_view key, ByteSize* out);
  bool read(std::string_view key, std::vector<std::string>* out);
  bool read(std::string_view key, std::map<std::string, std::string>* out);
  void out_of_range(std::string_view key, const std::string& min, const std::string& max);
  static std::string describe(double v);
  static std::string describe(std::chrono::milliseconds v) { return format_duration(v); }
  static std::string describe(ByteSize v) { return format_byte_size(v.bytes); }
  // Reports keys present but never declared; called once binding is done.
  void finish();

  std::unique_ptr<Impl> impl_;
};

using ConfigBinder = std::function<void(ConfigNode&)>;

// Parses `yaml` (named `name` in errors, e.g. the file name) and runs `bind` on the top level.
Status load_config_string(std::string_view yaml, std::string_view name, const ConfigBinder& bind);
// Reads and parses the file at `path` (named by that path in errors).
Status load_config_file(const std::filesystem::path& path, const ConfigBinder& bind);

template <typename T>
requires requires(ConfigNode& n, T& c) {
  bind_config(n, c);
}
Status load_config_file(const std::filesystem::path& path, T* cfg) {
  return load_config_file(path, [cfg](ConfigNode& n) { bind_config(n, *cfg); });
}

}  // namespace gantry::common
