#include "common/base/config.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "common/base/logging.h"
#include "tests/support/test_support.h"

namespace gantry::common {
namespace {

using namespace std::chrono_literals;

struct TunnelConfig {
  std::string address;
  std::chrono::milliseconds heartbeat = 15s;
  ByteSize max_frame = ByteSize::mib(1);
};

struct EdgeConfig {
  std::string node_name;
  uint16_t port = 10000;
  int workers = 4;
  bool autonomy = true;
  double ratio = 0.5;
  std::vector<std::string> addresses = {"default"};
  std::map<std::string, std::string> labels;
  TunnelConfig tunnel;
  LogConfig log;
};

void bind_config(ConfigNode& n, TunnelConfig& c) {
  n.required("address", &c.address)
      .field("heartbeat", &c.heartbeat, 1s, 10min)
      .field("max_frame", &c.max_frame, ByteSize::kib(1), ByteSize::mib(64));
}

void bind_config(ConfigNode& n, EdgeConfig& c) {
  n.required("node_name", &c.node_name)
      .field("port", &c.port, 1, 65535)
      .field("workers", &c.workers, 1, 64)
      .field("autonomy", &c.autonomy)
      .field("ratio", &c.ratio, 0.0, 1.0)
      .field("addresses", &c.addresses)
      .field("labels", &c.labels)
      .section("tunnel", &c.tunnel)
      .section("log", &c.log);
}

Status load(std::string_view yaml, EdgeConfig* cfg) {
  return load_config_string(yaml, "edgecore.yaml", [cfg](ConfigNode& n) { bind_config(n, *cfg); });
}

TEST_CASE("a complete config file fills every field") {
  EdgeConfig cfg;
  Status s = load(R"(
node_name: gantry-7
port: 10001
workers: 8
autonomy: false
ratio: 0.25
addresses: [10.0.0.1, "10.0.0.2"]
labels:
  topology.gantry.io/province: zhejiang
  tier: edge
tunnel:
  address: wss://cloud:10000/v1/tunnel
  heartbeat: 30s
  max_frame: 2MiB
log: {level: debug, format: json}
)",
                  &cfg);
  REQUIRE(s.ok());
  CHECK(cfg.node_name == "gantry-7");
  CHECK(cfg.port == 10001);
  CHECK(cfg.workers == 8);
  CHECK_FALSE(cfg.autonomy);
  CHECK(cfg.ratio == 0.25);
  CHECK(cfg.addresses == std::vector<std::string>{"10.0.0.1", "10.0.0.2"});
  CHECK(cfg.labels == std::map<std::string, std::string>{
                          {"topology.gantry.io/province", "zhejiang"}, {"tier", "edge"}});
  CHECK(cfg.tunnel.address == "wss://cloud:10000/v1/tunnel");
  CHECK(cfg.tunnel.heartbeat == 30s);
  CHECK(cfg.tunnel.max_frame == ByteSize::mib(2));
  CHECK(cfg.log.level == "debug");
  CHECK(cfg.log.format == "json");
}

TEST_CASE("a single string where a list of strings is expected is a list of one") {
  EdgeConfig cfg;
  REQUIRE(load("node_name: n1\ntunnel: {address: x}\naddresses: 10.0.0.9\n", &cfg).ok());
  CHECK(cfg.addresses == std::vector<std::string>{"10.0.0.9"});
  EdgeConfig bad;
  CHECK_FALSE(load("node_name: n1\ntunnel: {address: x}\naddresses: {a: b}\n", &bad).ok());
}

TEST_CASE("optional keys that are absent keep their defaults") {
  EdgeConfig cfg;
  REQUIRE(load("node_name: n1\ntunnel: {address: x}\n", &cfg).ok());
  CHECK(cfg.port == 10000);
  CHECK(cfg.workers == 4);
  CHECK(cfg.autonomy);
  CHECK(cfg.addresses == std::vector<std::string>{"default"});
  CHECK(cfg.tunnel.heartbeat == 15s);
  CHECK(cfg.tunnel.max_frame == ByteSize::mib(1));
  CHECK(cfg.log.level == "info");
  CHECK(cfg.log.format == "text");
}

TEST_CASE("config errors name the file, the key path and the reason") {
  struct Row {
    const char* what;
    const char* yaml;
    const char* error;
  };
  const Row row = GENERATE(values<Row>({
      {"unknown key", "node_name: n\ntunnel: {address: x, heartbeats: 15s}\n",
       "edgecore.yaml: tunnel.heartbeats: unknown key (expected one of: address, heartbeat, "
       "max_frame)"},
      {"unknown top-level key", "node_name: n\ntunnel: {address: x}\nnodename: m\n",
       "edgecore.yaml: nodename: unknown key (expected one of: node_name, port, workers, autonomy, "
       "ratio, addresses, labels, tunnel, log)"},
      {"wrong type: list for a string", "node_name: [a, b]\ntunnel: {address: x}\n",
       "edgecore.yaml: node_name: expected a string, got a list"},
      {"wrong type: not a boolean", "node_name: n\nautonomy: maybe\ntunnel: {address: x}\n",
       "edgecore.yaml: autonomy: 'maybe' is not a boolean (use true or false)"},
      {"wrong type: not an integer", "node_name: n\nworkers: four\ntunnel: {address: x}\n",
       "edgecore.yaml: workers: 'four' is not an integer"},
      {"wrong type: not a number", "node_name: n\nratio: half\ntunnel: {address: x}\n",
       "edgecore.yaml: ratio: 'half' is not a number"},
      {"wrong type: scalar for a section", "node_name: n\ntunnel: 5\n",
       "edgecore.yaml: tunnel: expected a mapping, got a single value"},
      {"wrong type: list item", "node_name: n\naddresses: [a, {b: c}]\ntunnel: {address: x}\n",
       "edgecore.yaml: addresses[1]: expected a string, got a mapping"},
      {"wrong type: map value", "node_name: n\nlabels: {a: [1]}\ntunnel: {address: x}\n",
       "edgecore.yaml: labels.a: expected a string, got a list"},
      {"no value", "node_name:\ntunnel: {address: x}\n",
       "edgecore.yaml: node_name: has no value (expected a string)"},
      {"bad duration", "node_name: n\ntunnel: {address: x, heartbeat: 15x}\n",
       "edgecore.yaml: tunnel.heartbeat: '15x' is not a duration (use e.g. 15s, 2m, 24h)"},
      {"duration without unit", "node_name: n\ntunnel: {address: x, heartbeat: 15}\n",
       "edgecore.yaml: tunnel.heartbeat: '15' is not a duration (use e.g. 15s, 2m, 24h)"},
      {"duration out of range", "node_name: n\ntunnel: {address: x, heartbeat: 0s}\n",
       "edgecore.yaml: tunnel.heartbeat: '0s' is out of range (allowed 1s..10m)"},
      {"bad size", "node_name: n\ntunnel: {address: x, max_frame: 1MiBs}\n",
       "edgecore.yaml: tunnel.max_frame: '1MiBs' is not a byte size (use e.g. 512KiB, 1MiB, 10MB "
       "or a number of bytes)"},
      {"size out of range", "node_name: n\ntunnel: {address: x, max_frame: 1GiB}\n",
       "edgecore.yaml: tunnel.max_frame: '1GiB' is out of range (allowed 1KiB..64MiB)"},
      {"integer out of the type's range", "node_name: n\nport: 70000\ntunnel: {address: x}\n",
       "edgecore.yaml: port: '70000' is out of range (allowed 1..65535)"},
      {"negative for an unsigned integer", "node_name: n\nport: -1\ntunnel: {address: x}\n",
       "edgecore.yaml: port: '-1' is out of range (allowed 1..65535)"},
      {"integer out of the declared range", "node_name: n\nworkers: 0\ntunnel: {address: x}\n",
       "edgecore.yaml: workers: '0' is out of range (allowed 1..64)"},
      {"huge integer", "node_name: n\nworkers: 99999999999999999999\ntunnel: {address: x}\n",
       "edgecore.yaml: workers: '99999999999999999999' is out of range (allowed 1..64)"},
      {"double out of range", "node_name: n\nratio: 1.5\ntunnel: {address: x}\n",
       "edgecore.yaml: ratio: '1.5' is out of range (allowed 0..1)"},
      {"missing required key", "tunnel: {address: x}\n",
       "edgecore.yaml: node_name: required key is missing"},
      {"missing required key in an absent section", "node_name: n\n",
       "edgecore.yaml: tunnel.address: required key is missing"},
      {"value not among the allowed ones",
       "node_name: n\ntunnel: {address: x}\nlog: {level: loud}\n",
       "edgecore.yaml: log.level: 'loud' is not one of: trace, debug, info, warn, error, critical, "
       "off"},
      {"duplicate key", "node_name: n\nnode_name: m\ntunnel: {address: x}\n",
       "edgecore.yaml: node_name: duplicate key (line 2)"},
      {"top level not a mapping", "- a\n- b\n",
       "edgecore.yaml: (top level): expected a mapping, got a list"},
  }));
  INFO(row.what);
  EdgeConfig cfg;
  Status s = load(row.yaml, &cfg);
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message() == row.error);
}

TEST_CASE("a bad value leaves the default in place") {
  EdgeConfig cfg;
  REQUIRE_FALSE(load("node_name: n\nport: 70000\ntunnel: {address: x}\n", &cfg).ok());
  CHECK(cfg.port == 10000);
}

TEST_CASE("all errors of a file are reported together, one per line") {
  EdgeConfig cfg;
  Status s = load("port: x\ntunnel: {heartbeat: 1y}\nextra: 1\n", &cfg);
  REQUIRE_FALSE(s.ok());
  CHECK(s.message() ==
        "edgecore.yaml: node_name: required key is missing\n"
        "edgecore.yaml: port: 'x' is not an integer\n"
        "edgecore.yaml: tunnel.address: required key is missing\n"
        "edgecore.yaml: tunnel.heartbeat: '1y' is not a duration (use e.g. 15s, 2m, 24h)\n"
        "edgecore.yaml: extra: unknown key (expected one of: node_name, port, workers, autonomy, "
        "ratio, addresses, labels, tunnel, log)");
}

TEST_CASE("invalid YAML is reported with the file and the line, not thrown") {
  EdgeConfig cfg;
  Status s = load("node_name: n\ntunnel: {address: x\nport: 1\n", &cfg);
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::StartsWith("edgecore.yaml:"));
  CHECK_THAT(s.message(), Catch::Contains("invalid YAML"));
  // The flow mapping opened on line 2 is found unterminated on line 3.
  CHECK_THAT(s.message(), Catch::StartsWith("edgecore.yaml:3:"));
}

TEST_CASE("an empty file is an empty mapping") {
  bool seen = false;
  std::string value = "default";
  Status s = load_config_string("", "empty.yaml", [&](ConfigNode& n) {
    seen = true;
    n.field("value", &value);
  });
  CHECK(s.ok());
  CHECK(seen);
  CHECK(value == "default");
}

struct Token {
  std::string name;
  std::string role = "viewer";
};

Status load_tokens(std::string_view yaml, std::vector<Token>* tokens) {
  return load_config_string(yaml, "tokens.yaml", [tokens](ConfigNode& n) {
    n.list("tokens", [tokens](ConfigNode& item, size_t) {
      Token& t = tokens->emplace_back();
      item.required("name", &t.name).one_of("role", &t.role, {"admin", "operator", "viewer"});
    });
  });
}

TEST_CASE("a list of mappings binds each item and names the item in errors") {
  std::vector<Token> tokens;
  REQUIRE(load_tokens("tokens:\n- {name: a, role: admin}\n- name: b\n", &tokens).ok());
  REQUIRE(tokens.size() == 2);
  CHECK(tokens[0].role == "admin");
  CHECK(tokens[1].name == "b");
  CHECK(tokens[1].role == "viewer");

  tokens.clear();
  Status s = load_tokens("tokens:\n- {name: a}\n- {role: root}\n- 5\n", &tokens);
  CHECK(s.message() ==
        "tokens.yaml: tokens[1].name: required key is missing\n"
        "tokens.yaml: tokens[1].role: 'root' is not one of: admin, operator, viewer\n"
        "tokens.yaml: tokens[2]: expected a mapping, got a single value");

  tokens.clear();
  s = load_tokens("tokens: {name: a}\n", &tokens);
  CHECK(s.message() == "tokens.yaml: tokens: expected a list of mappings, got a mapping");
}

TEST_CASE("rules between keys are reported with fail()") {
  std::chrono::milliseconds heartbeat = 15s, idle = 40s;
  Status s = load_config_string("heartbeat: 1m\n", "cloudcore.yaml", [&](ConfigNode& n) {
    n.field("heartbeat", &heartbeat).field("idle_timeout", &idle);
    if (idle <= heartbeat) n.fail("idle_timeout", "must be longer than heartbeat");
    CHECK(n.has("heartbeat"));
    CHECK_FALSE(n.has("idle_timeout"));
  });
  CHECK(s.message() == "cloudcore.yaml: idle_timeout: must be longer than heartbeat");
}

TEST_CASE("a config file is loaded from disk and errors name its path") {
  test::TempDir dir;
  const auto path = dir / "edgecore.yaml";
  std::ofstream(path) << "node_name: n\ntunnel:\n  address: x\n  heartbeat: 15x\n";
  EdgeConfig cfg;
  Status s = load_config_file(path, &cfg);
  CHECK(s.message() ==
        path.string() + ": tunnel.heartbeat: '15x' is not a duration (use e.g. 15s, 2m, 24h)");

  std::ofstream(path) << "node_name: n\ntunnel:\n  address: x\n";
  REQUIRE(load_config_file(path, &cfg).ok());
  CHECK(cfg.node_name == "n");
}

TEST_CASE("a missing config file is NotFound and names the path") {
  test::TempDir dir;
  EdgeConfig cfg;
  Status s = load_config_file(dir / "nope.yaml", &cfg);
  CHECK(s.code() == Code::kNotFound);
  CHECK_THAT(s.message(), Catch::Contains((dir / "nope.yaml").string()));
  CHECK_THAT(s.message(), Catch::Contains("No such file or directory"));
}

TEST_CASE("durations parse into milliseconds") {
  using std::chrono::milliseconds;
  auto [text, expected] = GENERATE(table<const char*, milliseconds>({
      {"500ms", 500ms},
      {"15s", 15s},
      {"2m", 2min},
      {"24h", 24h},
      {"365d", 365 * 24h},
      {"1h30m", 90min},
      {"1m500ms", 60500ms},
      {"0", 0ms},
      {"0s", 0ms},
  }));
  INFO(text);
  auto d = parse_duration(text);
  REQUIRE(d.ok());
  CHECK(*d == expected);
}

TEST_CASE("malformed durations are rejected with a hint") {
  const char* text = GENERATE("", "15", "15x", "-1s", "1.5h", "s", "15 s", "1w", "15S",
                              "99999999999999999999d", "999999999999d");
  INFO(text);
  auto d = parse_duration(text);
  REQUIRE_FALSE(d.ok());
  CHECK(d.status().code() == Code::kInvalidArgument);
  CHECK_THAT(d.status().message(), Catch::Contains(fmt::format("'{}'", text)));
}

TEST_CASE("durations format back into a form that parses to the same value") {
  auto d = GENERATE(0ms, 500ms, 15000ms, 90000ms, 86400000ms, 90061001ms);
  auto text = format_duration(d);
  INFO(text);
  CHECK(parse_duration(text).value() == d);
  CHECK(format_duration(90s) == "1m30s");
  CHECK(format_duration(24h) == "1d");
}

TEST_CASE("byte sizes parse with binary and decimal units") {
  auto [text, expected] = GENERATE(table<const char*, uint64_t>({
      {"1MiB", 1048576},
      {"512KiB", 524288},
      {"10MB", 10000000},
      {"1024", 1024},
      {"0", 0},
      {"10 MiB", 10485760},
      {"1Gi", 1073741824},
      {"2kB", 2000},
      {"7B", 7},
      {"1TiB", 1099511627776ULL},
  }));
  INFO(text);
  auto size = parse_byte_size(text);
  REQUIRE(size.ok());
  CHECK(*size == expected);
}

TEST_CASE("malformed byte sizes are rejected") {
  const char* text = GENERATE("", "MiB", "1.5MiB", "-1", "1XB", "1mib", "10  MiB",
                              "99999999999999999999", "99999999999GiB");
  INFO(text);
  auto size = parse_byte_size(text);
  REQUIRE_FALSE(size.ok());
  CHECK_THAT(size.status().message(), Catch::Contains(fmt::format("'{}'", text)));
}

TEST_CASE("byte sizes format in the largest exact unit") {
  CHECK(format_byte_size(1048576) == "1MiB");
  CHECK(format_byte_size(10000000) == "10MB");
  CHECK(format_byte_size(1000) == "1kB");
  CHECK(format_byte_size(1234) == "1234");
  CHECK(format_byte_size(0) == "0");
}

}  // namespace
}  // namespace gantry::common
