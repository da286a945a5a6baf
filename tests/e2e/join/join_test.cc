// gantryadm join end to end with the real binaries: gantryadm init -> cloudcore (join endpoint and
// tunnel on free ports) -> gantryadm gettoken -> gantryadm join -> edgecore with the written
// edgecore.yaml connects. Every refusal prints its message and leaves the edge dir untouched.
#include <fmt/format.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "cloudcore/registry/keys.h"
#include "cloudcore/store/rocks_store.h"
#include "common/base/atomic_file.h"
#include "common/pki/pki.h"
#include "tests/support/test_support.h"

namespace gantry::join_test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::ChildProcess;
using test::TempDir;

fs::path binary(const std::string& dir, const std::string& name) {
  return test::build_dir() / dir / name;
}

// GET on cloudcore's REST API (its port read from the log) with the admin token from tokens.csv.
std::string api_get(const std::string& cloudcore_log, const fs::path& tokens_csv,
                    const std::string& path) {
  std::smatch m;
  static const std::regex port_re("api: listening on port (\\d+)");
  if (!std::regex_search(cloudcore_log, m, port_re)) return "";
  std::ifstream tokens(tokens_csv);
  std::string line;
  std::getline(tokens, line);
  while (!line.empty() && line[0] == '#') std::getline(tokens, line);
  std::string token = line.substr(0, line.find(','));
  std::string cmd =
      fmt::format("curl -sk --max-time 5 -H 'Authorization: Bearer {}' https://127.0.0.1:{}{}",
                  token, m[1].str(), path);
  std::string out;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[4096];
    while (size_t n = fread(buf, 1, sizeof buf, f)) out.append(buf, n);
    pclose(f);
  }
  return out;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string replace_once(std::string text, const std::string& from, const std::string& to) {
  auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

struct Run {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

// gettoken prints the token on stdout and a note on stderr; ChildProcess merges them, so the
// token is the line that has two dots and no spaces.
std::string token_line(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(' ') == std::string::npos && std::count(line.begin(), line.end(), '.') == 2)
      return line;
  }
  FAIL("no token in: " << text);
  return {};
}

struct Cluster {
  TempDir tmp;
  fs::path cloud = tmp / "cloud";
  uint16_t tunnel_port = test::free_port();
  uint16_t join_port = test::free_port();
  std::unique_ptr<ChildProcess> cloudcore;
  int runs = 0;

  Cluster() {
    REQUIRE(
        adm({"init", "--data-dir", cloud.string(), "--advertise-address", "127.0.0.1"}).exit_code ==
        0);
    std::string yaml = read_text(cloud / "cloudcore.yaml");
    yaml = replace_once(yaml, "\"0.0.0.0:10000\"", fmt::format("\"127.0.0.1:{}\"", tunnel_port));
    // The refusal tests join many times from one address: lift the per-client rate limit.
    yaml = replace_once(yaml, "\"0.0.0.0:10002\"",
                        fmt::format("\"127.0.0.1:{}\"\n  rate_per_client: 100\n"
                                    "  burst_per_client: 100",
                                    join_port));
    yaml = replace_once(yaml, "\"0.0.0.0:10443\"", "\"127.0.0.1:0\"");  // the REST API
    yaml = replace_once(yaml, "level: info", "level: debug");
    REQUIRE(common::write_file_atomic(cloud / "cloudcore.yaml", yaml).ok());
    start_cloudcore();
  }

  void start_cloudcore() {
    cloudcore = std::make_unique<ChildProcess>(
        std::vector<std::string>{binary("cloudcore", "cloudcore").string(), "--config",
                                 (cloud / "cloudcore.yaml").string()},
        tmp / "cloudcore.log");
    bool ready = test::eventually(
        [&] {
          return log().find("ready: tunnel on") != std::string::npos || !cloudcore->running();
        },
        60s);
    INFO(log());
    REQUIRE(ready);
    REQUIRE(cloudcore->running());
    REQUIRE(log().find("join: endpoint ready") != std::string::npos);
  }

  std::string log() const { return read_text(tmp / "cloudcore.log"); }

  Run adm(std::vector<std::string> args) {
    args.insert(args.begin(), binary("tools/gantryadm", "gantryadm").string());
    const fs::path out = tmp / fmt::format("adm-{}.log", runs++);
    ChildProcess p(args, out);
    Run r;
    r.exit_code = p.wait(60s);
    r.output = read_text(out);
    return r;
  }

  std::string token(const std::string& province = "") {
    std::vector<std::string> args = {"gettoken", "--data-dir", cloud.string()};
    if (!province.empty()) args.insert(args.end(), {"--province", province});
    args.insert(args.begin(), binary("tools/gantryadm", "gantryadm").string());
    const fs::path out = tmp / fmt::format("token-{}.out", runs++);
    ChildProcess p(args, out);
    REQUIRE(p.wait(60s) == 0);
    return token_line(read_text(out));
  }

  Run join(const fs::path& dir, const std::string& name, const std::string& province,
           const std::string& token, std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"join",
                                     "--token",
                                     token,
                                     "--node-name",
                                     name,
                                     "--province",
                                     province,
                                     "--data-dir",
                                     dir.string(),
                                     "--tunnel-address",
                                     fmt::format("127.0.0.1:{}", tunnel_port)};
    // `extra` may name another --cloudcore (the option is given once).
    if (std::none_of(extra.begin(), extra.end(),
                     [](const std::string& a) { return a.rfind("--cloudcore", 0) == 0; }))
      args.push_back(fmt::format("--cloudcore=127.0.0.1:{}", join_port));
    args.insert(args.end(), extra.begin(), extra.end());
    return adm(args);
  }
};

void expect_untouched(const fs::path& dir) {
  CHECK_FALSE(fs::exists(dir / "edgecore.yaml"));
  CHECK_FALSE(fs::exists(dir / "pki"));
  CHECK_FALSE(fs::exists(dir / ".join-tmp"));
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

TEST_CASE(
    "init then cloudcore then gettoken then join gives a node object and a connected edgecore",
    "[e2e]") {
  Cluster c;
  const std::string token = c.token("zhejiang");
  const fs::path edge = c.tmp / "edge";
  // Mirrors: the station's, then the province's, for one registry; a national one for all.
  const fs::path certs = c.tmp / "certs.d";
  Run r = c.join(edge, "edge-1", "zhejiang", token,
                 {"--labels", "site=g17,lane=3", "--registry-config-path", certs.string(),
                  "--registry-mirror", "registry.example.cn=http://10.1.0.5:5000",
                  "--registry-mirror", "registry.example.cn=https://mirror.zj.example.cn/",
                  "--registry-mirror", "https://mirror.example.cn"});
  INFO(r.output << "\ncloudcore:\n" << c.log());
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("Node edge-1 joined province zhejiang") != std::string::npos);
  // No systemd here: it says how to start edgecore so that reset can stop it.
  CHECK(r.output.find("--config '" + (edge / "edgecore.yaml").string() + "'") != std::string::npos);
  CHECK(r.output.find("edgecore.pid") != std::string::npos);
  CHECK(mode_of(edge / "pki" / "node.key") == 0600);
  CHECK_FALSE(fs::exists(edge / ".join-tmp"));

  auto cert = common::Certificate::from_pem(read_text(edge / "pki" / "node.crt"));
  REQUIRE(cert.ok());
  CHECK(cert->common_name() == "system:node:edge-1");
  CHECK(read_text(edge / "pki" / "ca.crt") == read_text(c.cloud / "pki" / "ca.crt"));

  ChildProcess edgecore(
      {binary("edgecore", "edgecore").string(), "--config", (edge / "edgecore.yaml").string()},
      c.tmp / "edgecore.log");
  bool connected = test::eventually(
      [&] { return c.log().find("hub: node edge-1 connected") != std::string::npos; }, 60s);
  INFO("edgecore:\n" << read_text(c.tmp / "edgecore.log"));
  CHECK(connected);
  // edgecore wrote containerd's hosts.toml per registry, mirrors in the order given.
  const std::string station = read_text(certs / "registry.example.cn" / "hosts.toml");
  CHECK(station.find("[host.\"http://10.1.0.5:5000\"]") <
        station.find("[host.\"https://mirror.zj.example.cn\"]"));
  CHECK(station.find("https://mirror.zj.example.cn\"]") != std::string::npos);
  CHECK(read_text(certs / "_default" / "hosts.toml").find("[host.\"https://mirror.example.cn\"]") !=
        std::string::npos);
  // The node reads Ready in the API once its first status arrived.
  std::string node_json;
  bool ready = test::eventually(
      [&] {
        node_json = api_get(c.log(), c.cloud / "tokens.csv", "/api/v1/nodes/edge-1");
        return std::regex_search(
            node_json,
            std::regex(R"("type":"Ready"[^}]*"status":"True"|"status":"True"[^}]*"type":"Ready")"));
      },
      60s, 100ms);
  INFO("node from the API: " << node_json);
  CHECK(ready);
  edgecore.signal(SIGTERM);
  CHECK(edgecore.wait(30s) == 0);
  c.cloudcore->signal(SIGTERM);
  REQUIRE(c.cloudcore->wait(30s) == 0);

  // The node object as join wrote it, read from cloudcore's store.
  cloud::RocksStoreOptions options;
  options.path = (c.cloud / "data" / "store").string();
  auto store = cloud::open_rocks_store(options);
  REQUIRE(store.ok());
  auto kv = (*store)->get(cloud::keys::object_key(v1::OBJECT_KIND_NODE, "", "edge-1"));
  REQUIRE(kv.ok());
  REQUIRE(kv->has_value());
  v1::StoredObject node;
  REQUIRE(node.ParseFromString((*kv)->value));
  CHECK(node.labels().at("topology.gantry.io/province") == "zhejiang");
  CHECK(node.labels().at("site") == "g17");
  CHECK(node.labels().at("lane") == "3");
  // It connected: the hub stored its status.
  auto status = (*store)->get(cloud::keys::status_key(v1::OBJECT_KIND_NODE, "", "edge-1"));
  REQUIRE(status.ok());
  CHECK(status->has_value());
}

TEST_CASE("each refusal prints its message and leaves the data dir without config or keys",
          "[e2e]") {
  Cluster c;
  const std::string any = c.token();
  // A name that is already taken.
  REQUIRE(c.join(c.tmp / "first", "taken-1", "zhejiang", any).exit_code == 0);

  // A token for another cluster: its own init, its own CA.
  TempDir other;
  REQUIRE(
      c.adm({"init", "--data-dir", (other / "cloud").string(), "--advertise-address", "127.0.0.1"})
          .exit_code == 0);
  Run other_token = c.adm({"gettoken", "--data-dir", (other / "cloud").string()});
  REQUIRE(other_token.exit_code == 0);

  // An expired token signed with this cluster's key (gettoken's shortest ttl is a minute).
  auto signing_key = common::read_file(c.cloud / "pki" / "token-signing.key");
  REQUIRE(signing_key.ok());
  std::string key_hex = *signing_key;
  while (!key_hex.empty() && std::isspace(static_cast<unsigned char>(key_hex.back())))
    key_hex.pop_back();
  auto ca = common::Certificate::from_pem(read_text(c.cloud / "pki" / "ca.crt"));
  REQUIRE(ca.ok());
  const auto expired_at =
      std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now()) - 1h;
  const std::string expired =
      common::make_join_token(common::ca_hash(*ca), {expired_at, "", ""}, key_hex);

  struct Case {
    std::string what, name, province, token;
    std::vector<std::string> extra;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"cloudcore unreachable",
       "edge-2",
       "zhejiang",
       any,
       {fmt::format("--cloudcore=127.0.0.1:{}", test::free_port())},
       "cannot reach cloudcore at 127.0.0.1:"},
      {"CA of another cluster",
       "edge-2",
       "zhejiang",
       token_line(other_token.output),
       {},
       fmt::format("the CA served by 127.0.0.1:{} does not match the token: possible "
                   "interception; check the address or get a new token",
                   c.join_port)},
      {"expired token",
       "edge-2",
       "zhejiang",
       expired,
       {},
       "join token expired at " + common::format_rfc3339(expired_at)},
      {"name taken",
       "taken-1",
       "zhejiang",
       any,
       {},
       "node name taken-1 is taken; choose another or delete the node"},
      {"province mismatch",
       "edge-2",
       "zhejiang",
       c.token("jiangsu"),
       {},
       "this token is for province jiangsu"},
      {"invalid node name", "Edge_2", "zhejiang", any, {}, "--node-name 'Edge_2' is not valid"},
      {"not a token", "edge-2", "zhejiang", "garbage", {}, "--token is not a join token"},
      {"a mirror URL that does not parse",
       "edge-2",
       "zhejiang",
       any,
       {"--registry-mirror", "docker.io=ftp://mirror.zj"},
       "--registry-mirror 'docker.io=ftp://mirror.zj': the mirror must be an http:// or https:// "
       "URL"},
  };
  for (const Case& k : cases) {
    const fs::path dir = c.tmp / ("edge-" + std::to_string(&k - cases.data()));
    Run r = c.join(dir, k.name, k.province, k.token, k.extra);
    INFO(k.what << ":\n" << r.output);
    CHECK(r.exit_code == 1);
    CHECK(r.output.find(k.message) != std::string::npos);
    expect_untouched(dir);
  }
  // "unreachable" names the address it tried.
  Run r = c.join(c.tmp / "edge-x", "edge-2", "zhejiang", any, {"--cloudcore=127.0.0.1:1"});
  CHECK(r.output.find("(tried 127.0.0.1:1)") != std::string::npos);
}

TEST_CASE("a second node with the same name is refused, the first keeps working", "[e2e]") {
  Cluster c;
  const std::string token = c.token();
  REQUIRE(c.join(c.tmp / "a", "gantry-01", "zhejiang", token).exit_code == 0);
  Run second = c.join(c.tmp / "b", "gantry-01", "jiangsu", token);
  CHECK(second.exit_code == 1);
  CHECK(second.output.find("node name gantry-01 is taken") != std::string::npos);
  expect_untouched(c.tmp / "b");
  // The same data dir cannot join twice either: reset first.
  Run again = c.join(c.tmp / "a", "gantry-02", "zhejiang", token);
  CHECK(again.exit_code == 1);
  CHECK(again.output.find("gantryadm reset --data-dir") != std::string::npos);
}

TEST_CASE("a province-bound token joins its province and cannot join another", "[e2e]") {
  Cluster c;
  const std::string token = c.token("jiangsu");
  Run wrong = c.join(c.tmp / "a", "edge-a", "zhejiang", token);
  CHECK(wrong.exit_code == 1);
  CHECK(wrong.output.find("this token is for province jiangsu") != std::string::npos);
  expect_untouched(c.tmp / "a");
  Run right = c.join(c.tmp / "b", "edge-b", "jiangsu", token);
  INFO(right.output);
  CHECK(right.exit_code == 0);
}

}  // namespace
}  // namespace gantry::join_test

namespace gantry::join_test {
namespace {

TEST_CASE("the start command join prints runs edgecore and reset stops it and removes the join",
          "[e2e]") {
  Cluster c;
  const fs::path edge = c.tmp / "edge";
  Run r = c.join(edge, "edge-run", "zhejiang", c.token());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  std::istringstream lines(r.output);
  std::string line, command;
  while (std::getline(lines, line)) {
    if (line.rfind("  nohup ", 0) == 0) command = line;
  }
  REQUIRE_FALSE(command.empty());
  ChildProcess shell({"/bin/sh", "-c", command}, c.tmp / "shell.log");
  CHECK(shell.wait(30s) == 0);
  CHECK(test::eventually(
      [&] { return c.log().find("hub: node edge-run connected") != std::string::npos; }, 60s));
  REQUIRE(fs::exists(edge / "edgecore.pid"));

  Run reset = c.adm({"reset", "--data-dir", edge.string()});
  INFO(reset.output);
  CHECK(reset.exit_code == 0);
  CHECK(reset.output.find("stopped edgecore") != std::string::npos);
  for (const char* entry : {"edgecore.yaml", "pki", "edgecore.pid", "meta"})
    CHECK_FALSE(fs::exists(edge / entry));
}

// The HTTP code of GET `path` on cloudcore's REST API with `token`.
int api_code(const std::string& cloudcore_log, const std::string& token, const std::string& path) {
  std::smatch m;
  static const std::regex port_re("api: listening on port (\\d+)");
  if (!std::regex_search(cloudcore_log, m, port_re)) return -1;
  std::string cmd = fmt::format(
      "curl -sk -o /dev/null -w '%{{http_code}}' --max-time 5 -H 'Authorization: Bearer {}' "
      "https://127.0.0.1:{}{}",
      token, m[1].str(), path);
  std::string out;
  if (FILE* f = popen(cmd.c_str(), "r")) {
    char buf[64];
    while (size_t n = fread(buf, 1, sizeof buf, f)) out.append(buf, n);
    pclose(f);
  }
  return std::atoi(out.c_str());
}

TEST_CASE(
    "cloudcore reads the API token file again on SIGHUP and when it changes, and a broken file "
    "keeps the tokens in force",
    "[e2e]") {
  Cluster c;
  const fs::path tokens = c.cloud / "tokens.csv";
  const std::string original = read_text(tokens);
  const std::string kNew = "ops-token-0123456789abcdef";
  CHECK(api_code(c.log(), kNew, "/api/v1/nodes") == 401);

  // A new line, then SIGHUP: the new token works at once (no need to wait for the poll).
  REQUIRE(common::write_file_atomic(
              tokens, original + kNew + ",zj-ops,9,\"gantry:province:zhejiang:operator\"\n")
              .ok());
  c.cloudcore->signal(SIGHUP);
  CHECK(test::eventually([&] { return api_code(c.log(), kNew, "/api/v1/nodes") == 200; }, 10s,
                         200ms));
  CHECK(c.log().find("SIGHUP received") != std::string::npos);

  // A file that does not parse is not applied: both tokens keep working, the log says why.
  REQUIRE(common::write_file_atomic(tokens, original + kNew + ",broken,\"unterminated\n").ok());
  c.cloudcore->signal(SIGHUP);
  CHECK(test::eventually(
      [&] { return c.log().find("keeping the 2 tokens in force") != std::string::npos; }, 10s,
      200ms));
  CHECK(api_code(c.log(), kNew, "/api/v1/nodes") == 200);
  CHECK(c.cloudcore->running());

  // Without a signal: the change is seen by the poll (api.token_reload_interval, 10 s).
  REQUIRE(common::write_file_atomic(tokens, original).ok());
  CHECK(test::eventually([&] { return api_code(c.log(), kNew, "/api/v1/nodes") == 401; }, 40s,
                         200ms));
  CHECK(c.log().find("reloaded: 1 tokens (were 2)") != std::string::npos);
}

}  // namespace
}  // namespace gantry::join_test
