// gantryadm end to end: the real binary on real directories, and the files it writes loaded by
// the real cloudcore. Also checks that the deploy/ samples load in the binaries they configure.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "common/base/atomic_file.h"
#include "common/pki/pki.h"
#include "tests/e2e/gantryadm/process.h"
#include "tests/support/test_support.h"

namespace gantry::adm_test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::TempDir;

fs::path gantryadm() {
  return test::build_dir() / "tools" / "gantryadm" / "gantryadm";
}
fs::path cloudcore() {
  return test::build_dir() / "cloudcore" / "cloudcore";
}
fs::path edgecore() {
  return test::build_dir() / "edgecore" / "edgecore";
}

fs::path source_dir() {
  if (const char* dir = std::getenv("GANTRY_SOURCE_DIR")) return dir;
  return GANTRY_SOURCE_DIR_DEFAULT;
}

unsigned mode_of(const fs::path& p) {
  struct stat st {};
  REQUIRE(::stat(p.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// The names in `dir`, sorted ("" entries never appear).
std::vector<std::string> entries(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

RunResult adm(const TempDir& scratch, std::vector<std::string> args) {
  args.insert(args.begin(), gantryadm().string());
  return run(args, scratch.path());
}

RunResult init(const TempDir& scratch, const fs::path& dir, const std::string& addresses,
               bool force = false) {
  std::vector<std::string> args = {"init", "--data-dir", dir.string(), "--advertise-address",
                                   addresses};
  if (force) args.push_back("--force");
  return adm(scratch, args);
}

common::Certificate load_cert(const fs::path& p) {
  auto pem = common::read_file(p);
  REQUIRE(pem.ok());
  auto cert = common::Certificate::from_pem(*pem);
  REQUIRE(cert.ok());
  return *cert;
}

// Starts `binary --config config` and waits until its log has `ready_marker`; then stops it with
// SIGTERM and expects a clean exit. Fails with the log when it exits early (e.g. status 2 for a
// config it rejects).
void expect_starts(const fs::path& binary, const fs::path& config, const fs::path& log,
                   const std::string& ready_marker) {
  Background proc({binary.string(), "--config", config.string()}, log);
  bool ready = test::eventually(
      [&] { return proc.log().find(ready_marker) != std::string::npos || !proc.running(); }, 60s);
  INFO(proc.log());
  REQUIRE(ready);
  REQUIRE(proc.running());
  REQUIRE(proc.log().find(ready_marker) != std::string::npos);
  proc.signal(SIGTERM);
  CHECK(proc.wait(30s) == 0);
}

// A CA and a node certificate in `pki`, as join will leave them on an edge node.
void make_edge_pki(const fs::path& pki, const std::string& node) {
  fs::create_directories(pki);
  auto ca_key = common::PrivateKey::generate();
  REQUIRE(ca_key.ok());
  auto ca = common::create_ca(*ca_key, "test-ca", 24h);
  REQUIRE(ca.ok());
  auto key = common::PrivateKey::generate();
  REQUIRE(key.ok());
  common::CertificateSpec spec;
  spec.common_name = "system:node:" + node;
  spec.server_auth = false;
  auto cert = common::issue_certificate(key->get(), spec, *ca, *ca_key);
  REQUIRE(cert.ok());
  REQUIRE(common::write_file_atomic(pki / "ca.crt", ca->to_pem()).ok());
  REQUIRE(common::write_file_atomic(pki / "node.crt", cert->to_pem()).ok());
  REQUIRE(common::write_file_atomic(pki / "node.key", key->to_pem(), 0600).ok());
}

// deploy/edgecore.yaml with its paths moved into `dir` and cloudcore at a closed local port.
std::string edge_sample_for(const fs::path& dir) {
  std::string yaml = read_text(source_dir() / "deploy" / "edgecore.yaml");
  REQUIRE(yaml.find("/var/lib/gantry/edgecore") != std::string::npos);
  yaml = replace_all(yaml, "/var/lib/gantry/edgecore", dir.string());
  yaml = replace_all(yaml, "/etc/containerd/certs.d", (dir / "certs.d").string());
  return replace_all(yaml, "\"cloud.example.com:10000\"",
                     "\"127.0.0.1:" + std::to_string(test::free_port()) + "\"");
}

TEST_CASE("gantryadm has --help, --version and per-command help", "[e2e]") {
  TempDir scratch;
  auto help = adm(scratch, {"--help"});
  CHECK(help.exit_code == 0);
  for (const char* cmd : {"init", "gettoken", "join", "reset"})
    CHECK(help.out.find(cmd) != std::string::npos);

  auto version = adm(scratch, {"--version"});
  CHECK(version.exit_code == 0);
  CHECK(version.out.find("gantryadm ") == 0);

  auto init_help = adm(scratch, {"init", "--help"});
  CHECK(init_help.exit_code == 0);
  CHECK(init_help.out.find("--advertise-address") != std::string::npos);
  CHECK(init_help.out.find("--force") != std::string::npos);
  auto token_help = adm(scratch, {"gettoken", "--help"});
  CHECK(token_help.out.find("--ttl") != std::string::npos);
  CHECK(token_help.out.find("--province") != std::string::npos);
  CHECK(adm(scratch, {"reset", "--help"}).out.find("--data-dir") != std::string::npos);

  CHECK(adm(scratch, {}).exit_code == 2);
  CHECK(adm(scratch, {"join"}).exit_code == 2);
  CHECK(adm(scratch, {"init"}).exit_code == 2);  // --data-dir and --advertise-address required
}

TEST_CASE("init creates every file with tight permissions and a serving cert for the addresses",
          "[e2e]") {
  TempDir scratch;
  const fs::path dir = scratch / "cloud";
  auto r = init(scratch, dir, "10.20.30.40,Cloud.Example.com,fd00::7");
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  // It tells the operator what to do next.
  CHECK(r.out.find("cloudcore --config " + (dir / "cloudcore.yaml").string()) != std::string::npos);
  CHECK(r.out.find("gantryadm gettoken --data-dir " + dir.string()) != std::string::npos);
  CHECK(r.out.find("gantryadm join --cloudcore 10.20.30.40:10002") != std::string::npos);

  CHECK(entries(dir) ==
        std::vector<std::string>{"admin.kubeconfig", "cloudcore.yaml", "pki", "tokens.csv"});
  CHECK(entries(dir / "pki") == std::vector<std::string>{"ca.crt", "ca.key", "cloudcore.crt",
                                                         "cloudcore.key", "token-signing.key"});
  CHECK(mode_of(dir / "pki") == 0700);
  CHECK(mode_of(dir / "pki/ca.key") == 0600);
  CHECK(mode_of(dir / "pki/cloudcore.key") == 0600);
  CHECK(mode_of(dir / "pki/token-signing.key") == 0600);
  CHECK(mode_of(dir / "tokens.csv") == 0600);
  CHECK(mode_of(dir / "admin.kubeconfig") == 0600);
  CHECK(mode_of(dir / "pki/ca.crt") == 0644);
  CHECK(mode_of(dir / "cloudcore.yaml") == 0644);

  auto ca = load_cert(dir / "pki/ca.crt");
  CHECK(ca.is_ca());
  auto ca_key = common::PrivateKey::from_pem(read_text(dir / "pki/ca.key"));
  CHECK(ca_key.ok());
  auto serving = load_cert(dir / "pki/cloudcore.crt");
  CHECK_FALSE(serving.is_ca());
  CHECK(common::verify_certificate(serving, {ca}, std::chrono::system_clock::now()).ok());
  auto dns = serving.dns_names();
  std::sort(dns.begin(), dns.end());
  CHECK(dns == std::vector<std::string>{"cloud.example.com", "localhost"});
  auto ips = serving.ip_addresses();
  std::sort(ips.begin(), ips.end());
  CHECK(ips == std::vector<std::string>{"10.20.30.40", "127.0.0.1", "fd00::7"});
  CHECK(common::PrivateKey::from_pem(read_text(dir / "pki/cloudcore.key")).ok());
  CHECK(read_text(dir / "pki/token-signing.key").size() == 65);  // 32 bytes hex + newline

  // Kubernetes static token file: token,user,uid,"groups"
  const std::string tokens = read_text(dir / "tokens.csv");
  const std::string token = tokens.substr(0, tokens.find(','));
  CHECK(token.size() == 64);
  CHECK(tokens == token + ",admin,admin,\"system:masters\"\n");

  const std::string kubeconfig = read_text(dir / "admin.kubeconfig");
  CHECK(kubeconfig.find("server: https://10.20.30.40:10443\n") != std::string::npos);
  CHECK(kubeconfig.find("token: " + token + "\n") != std::string::npos);
  CHECK(kubeconfig.find("certificate-authority-data: LS0t") != std::string::npos);  // "---"

  const std::string yaml = read_text(dir / "cloudcore.yaml");
  CHECK(yaml.find("data_dir: \"" + (dir / "data").string() + "\"") != std::string::npos);
  CHECK(yaml.find("cert: \"" + (dir / "pki/cloudcore.crt").string() + "\"") != std::string::npos);
  CHECK(yaml.find("key: \"" + (dir / "pki/cloudcore.key").string() + "\"") != std::string::npos);
  CHECK(yaml.find("ca: \"" + (dir / "pki/ca.crt").string() + "\"") != std::string::npos);
  CHECK(yaml.find("listen: \"0.0.0.0:10000\"") != std::string::npos);
}

TEST_CASE("a second init refuses to replace the CA unless --force", "[e2e]") {
  TempDir scratch;
  const fs::path dir = scratch / "cloud";
  REQUIRE(init(scratch, dir, "10.0.0.1").exit_code == 0);
  const std::string ca_before = read_text(dir / "pki/ca.crt");

  auto again = init(scratch, dir, "10.0.0.1");
  CHECK(again.exit_code == 1);
  CHECK(again.err.find("pki/ca.crt") != std::string::npos);
  CHECK(again.err.find("--force") != std::string::npos);
  CHECK(read_text(dir / "pki/ca.crt") == ca_before);

  auto forced = init(scratch, dir, "10.0.0.2", /*force=*/true);
  INFO(forced.err);
  CHECK(forced.exit_code == 0);
  CHECK(read_text(dir / "pki/ca.crt") != ca_before);
  auto ips = load_cert(dir / "pki/cloudcore.crt").ip_addresses();
  CHECK(std::find(ips.begin(), ips.end(), "10.0.0.2") != ips.end());
  CHECK(std::find(ips.begin(), ips.end(), "10.0.0.1") == ips.end());
  // No staging leftovers.
  CHECK(entries(dir) ==
        std::vector<std::string>{"admin.kubeconfig", "cloudcore.yaml", "pki", "tokens.csv"});
}

TEST_CASE("init with a bad address writes nothing and says what is wrong", "[e2e]") {
  TempDir scratch;
  const fs::path dir = scratch / "cloud";
  auto r = init(scratch, dir, "10.0.0.1:10000");
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("'10.0.0.1:10000' is neither an IP address nor a DNS name") !=
        std::string::npos);
  CHECK_FALSE(fs::exists(dir));

  fs::create_directories(dir);
  CHECK(init(scratch, dir, "bad_name!").exit_code == 1);
  CHECK(entries(dir).empty());

  // pki/ taken by a file: moving the new files in fails, and nothing is left behind.
  fs::remove(dir);
  fs::create_directories(dir);
  write_text(dir / "pki", "a file");
  auto blocked = init(scratch, dir, "10.0.0.1");
  CHECK(blocked.exit_code == 1);
  CHECK(blocked.err.find("moving " + (dir / "pki/ca.crt").string()) != std::string::npos);
  CHECK(entries(dir) == std::vector<std::string>{"pki"});
  CHECK(read_text(dir / "pki") == "a file");

  write_text(scratch / "a-file", "x");
  auto file = init(scratch, scratch / "a-file", "10.0.0.1");
  CHECK(file.exit_code == 1);
  CHECK(file.err.find("exists and is not a directory") != std::string::npos);
}

TEST_CASE("init into an existing directory leaves the files it does not own alone", "[e2e]") {
  TempDir scratch;
  const fs::path dir = scratch / "cloud";
  fs::create_directories(dir / "pki");
  write_text(dir / "notes.txt", "mine");
  write_text(dir / "pki" / "other.pem", "not ours");
  auto r = init(scratch, dir, "10.0.0.1");
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(entries(dir) == std::vector<std::string>{"admin.kubeconfig", "cloudcore.yaml", "notes.txt",
                                                 "pki", "tokens.csv"});
  CHECK(read_text(dir / "pki" / "other.pem") == "not ours");
  // --force replaces init's own files only.
  REQUIRE(init(scratch, dir, "10.0.0.1", /*force=*/true).exit_code == 0);
  CHECK(read_text(dir / "notes.txt") == "mine");
  CHECK(entries(dir / "pki") == std::vector<std::string>{"ca.crt", "ca.key", "cloudcore.crt",
                                                         "cloudcore.key", "other.pem",
                                                         "token-signing.key"});
}

TEST_CASE(
    "gettoken prints a token that verifies against init's CA and key, with province and "
    "ttl",
    "[e2e]") {
  TempDir scratch;
  const fs::path dir = scratch / "cloud";
  REQUIRE(init(scratch, dir, "10.0.0.1").exit_code == 0);
  const auto ca = load_cert(dir / "pki/ca.crt");
  std::string key = read_text(dir / "pki/token-signing.key");
  key.pop_back();  // the newline

  const auto before = std::chrono::system_clock::now();
  auto r = adm(scratch,
               {"gettoken", "--data-dir", dir.string(), "--ttl", "2h", "--province", "zhejiang"});
  const auto after = std::chrono::system_clock::now();
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  REQUIRE(!r.out.empty());
  CHECK(r.out.back() == '\n');
  const std::string token = r.out.substr(0, r.out.size() - 1);
  CHECK(token.find('\n') == std::string::npos);  // stdout holds the token alone
  CHECK(r.err.find("for province zhejiang") != std::string::npos);

  auto claims = common::verify_join_token(token, common::ca_hash(ca), key, after);
  REQUIRE(claims.ok());
  CHECK(claims->province == "zhejiang");
  CHECK(claims->expires >= before + 2h - 1s);  // exp is whole seconds
  CHECK(claims->expires <= after + 2h);
  // It expires when the ttl says.
  auto late = common::verify_join_token(token, common::ca_hash(ca), key, after + 2h + 1s);
  CHECK(late.status().code() == common::Code::kDeadlineExceeded);

  // Default: 24h, any province.
  auto plain = adm(scratch, {"gettoken", "--data-dir", dir.string()});
  REQUIRE(plain.exit_code == 0);
  auto any = common::verify_join_token(plain.out.substr(0, plain.out.size() - 1),
                                       common::ca_hash(ca), key, std::chrono::system_clock::now());
  REQUIRE(any.ok());
  CHECK(any->province.empty());
  CHECK(any->expires > before + 23h);
  CHECK(any->expires <= std::chrono::system_clock::now() + 24h);

  // After init --force, old tokens no longer verify against the new CA.
  REQUIRE(init(scratch, dir, "10.0.0.1", /*force=*/true).exit_code == 0);
  const auto new_ca = load_cert(dir / "pki/ca.crt");
  CHECK(common::verify_join_token(token, common::ca_hash(new_ca), key, after).status().code() ==
        common::Code::kPermissionDenied);
}

TEST_CASE("gettoken refuses a bad ttl, a bad province and a directory init did not make", "[e2e]") {
  TempDir scratch;
  const fs::path dir = scratch / "cloud";
  REQUIRE(init(scratch, dir, "10.0.0.1").exit_code == 0);
  auto ttl = GENERATE(as<std::string>{}, "10x", "30s", "8761h", "0", "");
  auto r = adm(scratch, {"gettoken", "--data-dir", dir.string(), "--ttl", ttl});
  INFO(ttl << ": " << r.err);
  CHECK(r.exit_code == 1);
  CHECK(r.out.empty());
  CHECK(r.err.find("--ttl") != std::string::npos);
  if (ttl == "30s" || ttl == "8761h" || ttl == "0")
    CHECK(r.err.find("between 1m and 365d") != std::string::npos);

  auto province = adm(scratch, {"gettoken", "--data-dir", dir.string(), "--province", "bad/one"});
  CHECK(province.exit_code == 1);
  CHECK(province.err.find("not a valid province name") != std::string::npos);

  auto missing = adm(scratch, {"gettoken", "--data-dir", (scratch / "nowhere").string()});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("gantryadm init") != std::string::npos);
}

TEST_CASE("cloudcore starts with the cloudcore.yaml that init generated", "[e2e]") {
  TempDir scratch;
  const fs::path dir = scratch / "cloud";
  REQUIRE(init(scratch, dir, "127.0.0.1").exit_code == 0);
  // Only the port changes: port 0 so the test never collides with anything on 10000.
  std::string yaml = read_text(dir / "cloudcore.yaml");
  REQUIRE(yaml.find("\"0.0.0.0:10000\"") != std::string::npos);
  yaml = replace_all(yaml, "\"0.0.0.0:10002\"", "\"127.0.0.1:0\"");  // the join endpoint
  yaml = replace_all(yaml, "\"0.0.0.0:10443\"", "\"127.0.0.1:0\"");  // the REST API
  write_text(dir / "cloudcore.yaml", replace_all(yaml, "\"0.0.0.0:10000\"", "\"127.0.0.1:0\""));
  expect_starts(cloudcore(), dir / "cloudcore.yaml", scratch / "cloudcore.log", "ready");
  CHECK(fs::exists(dir / "data" / "store"));
}

TEST_CASE("deploy/cloudcore.yaml sets every option and loads in cloudcore", "[e2e]") {
  TempDir scratch;
  REQUIRE(init(scratch, scratch / "etc", "127.0.0.1").exit_code == 0);
  std::string yaml = read_text(source_dir() / "deploy" / "cloudcore.yaml");
  for (const char* key : {"data_dir:",
                          "threads:",
                          "listen:",
                          "heartbeat:",
                          "node_timeout:",
                          "max_concurrent_resyncs:",
                          "max_concurrent_handshakes:",
                          "retry_after:",
                          "max_frame:",
                          "max_queued:",
                          "cert:",
                          "key:",
                          "ca:",
                          "keep_revisions:",
                          "keep_duration:",
                          "block_cache:",
                          "level:",
                          "format:",
                          "token_file:",
                          "anonymous_health:",
                          "max_body:"}) {
    INFO(key);
    CHECK(yaml.find(key) != std::string::npos);
  }
  yaml = replace_all(yaml, "/etc/gantry", (scratch / "etc").string());
  yaml = replace_all(yaml, "/var/lib/gantry/cloudcore", (scratch / "data").string());
  REQUIRE(yaml.find("\"0.0.0.0:10000\"") != std::string::npos);
  yaml = replace_all(yaml, "\"0.0.0.0:10000\"", "\"127.0.0.1:0\"");
  yaml = replace_all(yaml, "\"0.0.0.0:10002\"", "\"127.0.0.1:0\"");  // the join endpoint
  yaml = replace_all(yaml, "\"0.0.0.0:10443\"", "\"127.0.0.1:0\"");  // the REST API
  write_text(scratch / "cloudcore.yaml", yaml);
  expect_starts(cloudcore(), scratch / "cloudcore.yaml", scratch / "cloudcore.log", "ready");
}

TEST_CASE("deploy/edgecore.yaml sets every option and loads in edgecore", "[e2e]") {
  TempDir scratch;
  const fs::path dir = scratch / "edge";
  make_edge_pki(dir / "pki", "gantry-01");
  const std::string yaml = edge_sample_for(dir);
  for (const char* key : {"node_name:",
                          "data_dir:",
                          "cloudcore:",
                          "cert:",
                          "key:",
                          "ca:",
                          "heartbeat:",
                          "base:",
                          "cap:",
                          "level:",
                          "format:",
                          "endpoint:",
                          "timeout:",
                          "pull_timeout:",
                          "relist_interval:",
                          "crash_backoff_base:",
                          "crash_backoff_cap:",
                          "node_status_interval:",
                          "config_path:",
                          "mirrors:"}) {
    INFO(key);
    CHECK(yaml.find(key) != std::string::npos);
  }
  write_text(dir / "edgecore.yaml", yaml);
  expect_starts(edgecore(), dir / "edgecore.yaml", scratch / "edgecore.log", "starting");
}

TEST_CASE("reset stops edgecore from its pid file and leaves the data dir empty", "[e2e]") {
  TempDir scratch;
  const fs::path dir = scratch / "edge";
  make_edge_pki(dir / "pki", "gantry-01");
  write_text(dir / "edgecore.yaml", edge_sample_for(dir));
  Background edge({edgecore().string(), "--config", (dir / "edgecore.yaml").string()},
                  scratch / "edgecore.log");
  REQUIRE(test::eventually([&] { return edge.log().find("starting") != std::string::npos; }, 60s));
  REQUIRE(fs::exists(dir / "meta"));
  write_text(dir / "edgecore.pid", std::to_string(edge.pid()) + "\n");

  auto r = adm(scratch, {"reset", "--data-dir", dir.string()});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("stopped edgecore (pid " + std::to_string(edge.pid())) != std::string::npos);
  CHECK(edge.wait(10s) == 0);  // it stopped cleanly on SIGTERM
  CHECK(entries(dir).empty());

  // Again: nothing Gantry-made is left, so it refuses rather than guessing.
  CHECK(adm(scratch, {"reset", "--data-dir", dir.string()}).exit_code == 1);
  // A directory that is not there is already reset.
  CHECK(adm(scratch, {"reset", "--data-dir", (scratch / "gone").string()}).exit_code == 0);
}

TEST_CASE("reset refuses while an edgecore it did not start uses the data dir", "[e2e]") {
  TempDir scratch;
  const fs::path dir = scratch / "edge";
  make_edge_pki(dir / "pki", "gantry-01");
  write_text(dir / "edgecore.yaml", edge_sample_for(dir));
  // As under systemd: no pid file.
  Background edge({edgecore().string(), "--config", (dir / "edgecore.yaml").string()},
                  scratch / "edgecore.log");
  REQUIRE(test::eventually([&] { return edge.log().find("starting") != std::string::npos; }, 60s));

  auto r = adm(scratch, {"reset", "--data-dir", dir.string()});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("edgecore (pid " + std::to_string(edge.pid()) + ") is running on") !=
        std::string::npos);
  CHECK(edge.running());
  CHECK(entries(dir) == std::vector<std::string>{"edgecore.yaml", "meta", "pki"});

  edge.signal(SIGTERM);
  REQUIRE(edge.wait(30s) == 0);
  CHECK(adm(scratch, {"reset", "--data-dir", dir.string()}).exit_code == 0);
  CHECK(entries(dir).empty());
}

TEST_CASE("reset leaves what it did not create and never signals a process that is not edgecore",
          "[e2e]") {
  TempDir scratch;
  const fs::path dir = scratch / "edge";
  fs::create_directories(dir / "meta");
  write_text(dir / "edgecore.yaml", "node_name: x\n");
  fs::create_directories(dir / "other-software");
  write_text(dir / "other-software" / "state", "keep");
  // A stale pid file naming a live process that is not edgecore.
  Background sleeper({"/bin/sleep", "300"}, scratch / "sleep.log");
  write_text(dir / "edgecore.pid", std::to_string(sleeper.pid()));

  auto r = adm(scratch, {"reset", "--data-dir", dir.string()});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("not edgecore: left it running") != std::string::npos);
  CHECK(sleeper.running());
  CHECK(r.out.find("left alone (not made by Gantry): other-software") != std::string::npos);
  CHECK(entries(dir) == std::vector<std::string>{"other-software"});
  CHECK(read_text(dir / "other-software" / "state") == "keep");
}

TEST_CASE("reset refuses a foreign directory and cloudcore's data dir, removing nothing", "[e2e]") {
  TempDir scratch;
  const fs::path foreign = scratch / "home";
  fs::create_directories(foreign / "photos");
  write_text(foreign / "notes.txt", "precious");
  auto r = adm(scratch, {"reset", "--data-dir", foreign.string()});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("does not look like a Gantry edge data dir") != std::string::npos);
  CHECK(entries(foreign) == std::vector<std::string>{"notes.txt", "photos"});

  const fs::path cloud = scratch / "cloud";
  REQUIRE(init(scratch, cloud, "10.0.0.1").exit_code == 0);
  auto c = adm(scratch, {"reset", "--data-dir", cloud.string()});
  CHECK(c.exit_code == 1);
  CHECK(c.err.find("pki/ca.key") != std::string::npos);
  CHECK(fs::exists(cloud / "pki" / "ca.key"));
}

TEST_CASE("the systemd units pass systemd-analyze verify", "[e2e]") {
  const fs::path analyze = "/usr/bin/systemd-analyze";
  if (!fs::exists(analyze)) {
    WARN("systemd-analyze is not installed: units not verified");
    return;
  }
  TempDir scratch;
  for (const auto& [unit, binary] :
       {std::pair{"cloudcore", cloudcore()}, std::pair{"edgecore", edgecore()}}) {
    INFO(unit);
    std::string text =
        read_text(source_dir() / "deploy" / "systemd" / (std::string(unit) + ".service"));
    CHECK(text.find("Type=simple\n") != std::string::npos);
    CHECK(text.find("Restart=always\n") != std::string::npos);
    CHECK(text.find("RestartSec=") != std::string::npos);
    CHECK(text.find(" --config ") != std::string::npos);
    if (std::string(unit) == "cloudcore")
      CHECK(text.find("LimitNOFILE=1048576\n") != std::string::npos);
    // verify checks that ExecStart's program exists: point it at the one just built.
    text = replace_all(text, "/usr/local/bin/" + std::string(unit), binary.string());
    const fs::path copy = scratch / (std::string(unit) + ".service");
    write_text(copy, text);
    auto r = run({analyze.string(), "verify", copy.string()}, scratch.path());
    INFO(r.out << r.err);
    CHECK(r.exit_code == 0);
    CHECK(r.err.find(std::string(unit) + ".service") == std::string::npos);  // no complaints
  }
}

}  // namespace
}  // namespace gantry::adm_test
