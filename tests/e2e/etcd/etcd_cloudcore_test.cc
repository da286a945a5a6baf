// The real cloudcore on a real etcd (store.backend: etcd): what an operator sees. gantryadm init
// makes the PKI and config, tests/support/etcd_fixture the etcd, curl talks to the REST API.
#include <fmt/format.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/support/containerd_fixture.h"  // run_command
#include "tests/support/etcd_fixture.h"
#include "tests/support/test_support.h"

namespace gantry::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size())
    text.replace(at, from.size(), to);
  return text;
}

struct Cluster {
  TempDir dir;
  Etcd etcd;
  fs::path etc = dir / "etc";
  unsigned short api_port = free_port();
  std::string token;
  std::unique_ptr<ChildProcess> cloudcore;
  int starts = 0;

  Cluster() {
    auto init = run_command({(build_dir() / "tools/gantryadm/gantryadm").string(), "init",
                             "--data-dir", etc.string(), "--advertise-address", "127.0.0.1"});
    INFO(init.output);
    REQUIRE(init.ok());
    std::string yaml = read_text(etc / "cloudcore.yaml");
    yaml = replace_all(yaml, "\"0.0.0.0:10000\"", "\"127.0.0.1:0\"");
    yaml = replace_all(yaml, "\"0.0.0.0:10002\"", "\"127.0.0.1:0\"");
    yaml = replace_all(yaml, "\"0.0.0.0:10443\"", fmt::format("\"127.0.0.1:{}\"", api_port));
    yaml += fmt::format(
        "store:\n  backend: etcd\n  etcd:\n    endpoints: [\"http://{}\"]\n"
        "    request_timeout: 2s\n",
        etcd.endpoint());
    std::ofstream(etc / "cloudcore.yaml") << yaml;
    std::string tokens = read_text(etc / "tokens.csv");
    token = tokens.substr(0, tokens.find(','));
  }

  void start() {
    cloudcore = std::make_unique<ChildProcess>(
        std::vector<std::string>{(build_dir() / "cloudcore/cloudcore").string(), "--config",
                                 (etc / "cloudcore.yaml").string()},
        dir / fmt::format("cloudcore-{}.log", ++starts));
    bool ready = eventually(
        [&] {
          return cloudcore->log().find(" ready: ") != std::string::npos || !cloudcore->running();
        },
        60s);
    INFO(cloudcore->log());
    REQUIRE(ready);
    REQUIRE(cloudcore->running());
  }

  // curl METHOD https://127.0.0.1:API/PATH; returns "CODE\nBODY".
  std::pair<int, std::string> call(const std::string& method, const std::string& path,
                                   const std::string& body = "") {
    std::vector<std::string> argv = {"/usr/bin/curl",
                                     "-sS",
                                     "--max-time",
                                     "20",
                                     "--cacert",
                                     (etc / "pki/ca.crt").string(),
                                     "-H",
                                     "Authorization: Bearer " + token,
                                     "-X",
                                     method,
                                     "-w",
                                     "\n%{http_code}"};
    if (!body.empty()) {
      argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
    }
    argv.push_back(fmt::format("https://127.0.0.1:{}{}", api_port, path));
    auto r = run_command(argv, 60s);
    auto nl = r.output.rfind('\n');
    if (nl == std::string::npos) return {0, r.output};
    return {std::atoi(r.output.c_str() + nl + 1), r.output.substr(0, nl)};
  }
};

const std::string kConfigMap =
    R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"NAME"},"data":{"k":"v"}})";

TEST_CASE("cloudcore on etcd: objects live in etcd, an etcd outage is a 503 and heals by itself",
          "[e2e]") {
  Cluster c;
  c.start();
  CHECK_THAT(c.cloudcore->log(), Catch::Contains("store etcd at http://" + c.etcd.endpoint()));

  auto created = c.call("POST", "/api/v1/namespaces/default/configmaps",
                        replace_all(kConfigMap, "NAME", "one"));
  INFO(created.second);
  REQUIRE(created.first == 201);
  CHECK_THAT(c.etcd.etcdctl({"get", "--prefix", "--keys-only", "/gantry/configmaps/"}),
             Catch::Contains("/gantry/configmaps/default/one"));
  // The resourceVersion is etcd's revision.
  auto rev = c.etcd.etcdctl({"get", "/gantry/configmaps/default/one", "--write-out=fields"});
  auto got = c.call("GET", "/api/v1/namespaces/default/configmaps/one");
  REQUIRE(got.first == 200);
  auto rv_at = got.second.find("\"resourceVersion\":\"");
  REQUIRE(rv_at != std::string::npos);
  std::string rv = got.second.substr(rv_at + 19, got.second.find('"', rv_at + 19) - rv_at - 19);
  CHECK_THAT(rev, Catch::Contains("\"ModRevision\" : " + rv));

  c.etcd.stop(/*kill=*/true);
  auto down = c.call("POST", "/api/v1/namespaces/default/configmaps",
                     replace_all(kConfigMap, "NAME", "two"));
  CHECK(down.first == 503);
  CHECK_THAT(down.second, Catch::Contains("etcd is unreachable"));
  CHECK(c.cloudcore->running());

  c.etcd.start();
  REQUIRE(eventually(
      [&] {
        return c.call("POST", "/api/v1/namespaces/default/configmaps",
                      replace_all(kConfigMap, "NAME", "three"))
                   .first == 201;
      },
      60s, 200ms));
  // The registry's watch came back too: the new object is listed (the list is served from it).
  REQUIRE(eventually(
      [&] {
        auto list = c.call("GET", "/api/v1/namespaces/default/configmaps");
        return list.first == 200 && list.second.find("\"three\"") != std::string::npos &&
               list.second.find("\"one\"") != std::string::npos;
      },
      30s, 100ms));

  // A restarted cloudcore finds everything in etcd.
  c.cloudcore->signal(SIGTERM);
  CHECK(c.cloudcore->wait(30s) == 0);
  c.start();
  auto again = c.call("GET", "/api/v1/namespaces/default/configmaps/three");
  CHECK(again.first == 200);
}

TEST_CASE("cloudcore refuses to start when no etcd answers, and says so", "[e2e]") {
  Cluster c;
  c.etcd.stop();
  ChildProcess cloudcore({(build_dir() / "cloudcore/cloudcore").string(), "--config",
                          (c.etc / "cloudcore.yaml").string()},
                         c.dir / "cloudcore.log");
  CHECK(cloudcore.wait(60s) == 1);
  CHECK_THAT(cloudcore.log(), Catch::Contains("etcd is unreachable"));
}

}  // namespace
}  // namespace gantry::test
