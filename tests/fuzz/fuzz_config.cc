// YAML config files (cloudcore.yaml, edgecore.yaml): whatever the file holds, loading gives ok or
// an error that names the file, and nothing throws. The binder declares a key of every supported
// type, a section, a list of mappings and a rule between keys, as the daemons' configs do.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/config.h"
#include "common/base/logging.h"

using namespace gantry::common;
using namespace std::chrono_literals;

namespace {

struct Tunnel {
  std::string address;
  std::chrono::milliseconds heartbeat{15s};
  std::chrono::milliseconds idle_timeout{60s};
  uint32_t window = 4;
};

struct Token {
  std::string name;
  std::string role = "viewer";
};

struct Config {
  std::string node_name;
  bool insecure = false;
  int64_t offset = 0;
  uint16_t port = 0;
  double ratio = 0.5;
  ByteSize cache{ByteSize::mib(64)};
  std::vector<std::string> provinces;
  std::map<std::string, std::string> labels;
  std::string mode = "edge";
  Tunnel tunnel;
  LogConfig log;
  std::vector<Token> tokens;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view yaml(reinterpret_cast<const char*>(data), size);
  Config c;
  Status status = load_config_string(yaml, "fuzz.yaml", [&](ConfigNode& root) {
    root.field("node_name", &c.node_name)
        .field("insecure", &c.insecure)
        .field("offset", &c.offset)
        .field("port", &c.port, uint16_t{1}, uint16_t{65535})
        .field("ratio", &c.ratio, 0.0, 1.0)
        .field("cache", &c.cache, ByteSize::kib(1), ByteSize::gib(8))
        .field("provinces", &c.provinces)
        .field("labels", &c.labels)
        .one_of("mode", &c.mode, {"edge", "cloud"})
        .section("tunnel",
                 [&](ConfigNode& n) {
                   n.field("address", &c.tunnel.address)
                       .field("heartbeat", &c.tunnel.heartbeat, 1s, 10min)
                       .field("idle_timeout", &c.tunnel.idle_timeout, 1s, 1h)
                       .field("window", &c.tunnel.window);
                   if (c.tunnel.idle_timeout <= c.tunnel.heartbeat) {
                     n.fail("idle_timeout", "must be longer than heartbeat");
                   }
                 })
        .section("log", &c.log)
        .list("tokens", [&](ConfigNode& n, size_t i) {
          Token t;
          n.required("name", &t.name).one_of("role", &t.role, {"admin", "viewer"});
          c.tokens.push_back(t);
        });
  });
  if (!status.ok() && status.message().find("fuzz.yaml") == std::string::npos) __builtin_trap();
  // The value parsers on their own: what they print, they read back.
  if (size < 64) {
    if (auto d = parse_duration(yaml); d.ok()) {
      auto again = parse_duration(format_duration(*d));
      if (!again.ok() || *again != *d) __builtin_trap();
    }
    if (auto b = parse_byte_size(yaml); b.ok()) {
      auto again = parse_byte_size(format_byte_size(*b));
      if (!again.ok() || *again != *b) __builtin_trap();
    }
  }
  return 0;
}
