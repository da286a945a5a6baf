#include "edgecore/runtime/registry_mirrors.h"

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "common/base/atomic_file.h"
#include "tests/support/test_support.h"

namespace gantry::edge {
namespace {

namespace fs = std::filesystem;

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST_CASE("a mirror is REGISTRY=URL or a URL for every registry") {
  struct Case {
    std::string text, registry, endpoint;
  };
  auto c = GENERATE(values<Case>({
      {"https://mirror.example.cn", "*", "https://mirror.example.cn"},
      {"https://mirror.example.cn/", "*", "https://mirror.example.cn"},
      {"docker.io=http://10.1.0.5:5000", "docker.io", "http://10.1.0.5:5000"},
      {"Registry.Example.CN:5000=https://m.zj/v2/cache/", "registry.example.cn:5000",
       "https://m.zj/v2/cache"},
      {"*=https://[fd00::5]:5000", "*", "https://[fd00::5]:5000"},
      {"[fd00::1]:5000=http://m", "[fd00::1]:5000", "http://m"},
  }));
  INFO(c.text);
  auto m = parse_registry_mirror(c.text);
  INFO(m.status().to_string());
  REQUIRE(m.ok());
  CHECK(m->registry == c.registry);
  CHECK(m->endpoint == c.endpoint);
}

TEST_CASE("a mirror that does not parse is refused with what is wrong") {
  struct Case {
    std::string text, message;
  };
  auto c = GENERATE(values<Case>({
      {"ftp://mirror", "must be an http:// or https:// URL"},
      {"mirror.example.cn:5000", "must be an http:// or https:// URL"},
      {"", "must be an http:// or https:// URL"},
      {"https://", "has no host"},
      {"https:///v2", "has no host"},
      {"https://user:pw@mirror", "credentials in the mirror URL are not supported"},
      {"https://mirror:0", "port '0' is not a number from 1 to 65535"},
      {"https://mirror:99999", "port '99999' is not a number from 1 to 65535"},
      {"https://mirror:", "the mirror port is empty"},
      {"https://mir ror", "is not a DNS name or an IP address"},
      {"https://mirror..cn", "is not a DNS name or an IP address"},
      {"https://mirror/a\"b", "only printable characters"},
      {"https://mirror/a b", "only printable characters"},
      {"https://[zz]:5000", "is not a valid [IPv6] address"},
      {"=https://m", "the registry before '=' is empty"},
      {"../../etc=https://m", "without a scheme or path"},
      {"docker.io/library=https://m", "without a scheme or path"},
      {"http://docker.io=https://m", "without a scheme or path"},
      {"a_b..c=https://m", "registry host 'a_b..c' is not a DNS name"},
  }));
  INFO(c.text);
  auto m = parse_registry_mirror(c.text);
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == common::Code::kInvalidArgument);
  CHECK_THAT(m.status().message(), Catch::Contains(c.message));
  CHECK_THAT(m.status().message(), Catch::Contains("'" + c.text + "'"));
}

TEST_CASE("each registry gets one hosts.toml with its mirrors in order, nothing else is touched") {
  test::TempDir dir;
  const fs::path certs = dir.path() / "certs.d";
  // An operator's own file for another registry.
  fs::create_directories(certs / "own.example");
  REQUIRE(common::write_file_atomic(certs / "own.example" / "hosts.toml", "server = \"x\"\n").ok());

  std::vector<RegistryMirror> mirrors = {
      *parse_registry_mirror("registry.example.cn=http://10.1.0.5:5000"),
      *parse_registry_mirror("https://mirror.example.cn"),
      *parse_registry_mirror("registry.example.cn=https://mirror.zj.example.cn"),
      *parse_registry_mirror("registry.example.cn=http://10.1.0.5:5000"),  // twice: once
  };
  REQUIRE(write_registry_mirrors(certs, mirrors).ok());
  const std::string station = read_text(certs / "registry.example.cn" / "hosts.toml");
  auto first = station.find("[host.\"http://10.1.0.5:5000\"]");
  auto second = station.find("[host.\"https://mirror.zj.example.cn\"]");
  REQUIRE(first != std::string::npos);
  REQUIRE(second != std::string::npos);
  CHECK(first < second);
  CHECK(station.find("10.1.0.5", first + 20) == std::string::npos);  // named twice, written once
  CHECK(station.find("capabilities = [\"pull\", \"resolve\"]") != std::string::npos);
  CHECK(station.find("server") == std::string::npos);  // the registry itself stays last
  CHECK(read_text(certs / "_default" / "hosts.toml").find("[host.\"https://mirror.example.cn\"]") !=
        std::string::npos);
  CHECK(read_text(certs / "own.example" / "hosts.toml") == "server = \"x\"\n");

  // A later configuration without the station mirror removes its file, keeps the operator's.
  REQUIRE(
      write_registry_mirrors(certs, {*parse_registry_mirror("https://mirror.example.cn")}).ok());
  CHECK_FALSE(fs::exists(certs / "registry.example.cn" / "hosts.toml"));
  CHECK(fs::exists(certs / "_default" / "hosts.toml"));
  CHECK(read_text(certs / "own.example" / "hosts.toml") == "server = \"x\"\n");
  // No mirrors at all: edgecore's files go, the operator's stays.
  REQUIRE(write_registry_mirrors(certs, {}).ok());
  CHECK_FALSE(fs::exists(certs / "_default" / "hosts.toml"));
  CHECK(fs::exists(certs / "own.example" / "hosts.toml"));
}

TEST_CASE(
    "a mirror for a registry whose hosts.toml the operator wrote is refused, naming the file") {
  test::TempDir dir;
  const fs::path certs = dir.path() / "certs.d";
  fs::create_directories(certs / "docker.io");
  REQUIRE(common::write_file_atomic(certs / "docker.io" / "hosts.toml", "server = \"x\"\n").ok());
  auto s = write_registry_mirrors(certs, {*parse_registry_mirror("docker.io=https://m.example")});
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains((certs / "docker.io" / "hosts.toml").string()));
  CHECK_THAT(s.message(), Catch::Contains("was not written by edgecore"));
  CHECK(read_text(certs / "docker.io" / "hosts.toml") == "server = \"x\"\n");
}

TEST_CASE("a config path that cannot be created is an error naming it") {
  test::TempDir dir;
  REQUIRE(common::write_file_atomic(dir.path() / "file", "x").ok());
  auto s = write_registry_mirrors(dir.path() / "file" / "certs.d",
                                  {*parse_registry_mirror("https://m.example")});
  REQUIRE_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains((dir.path() / "file").string()));
}

}  // namespace
}  // namespace gantry::edge
