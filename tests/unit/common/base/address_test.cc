#include "common/base/address.h"

#include <catch2/catch.hpp>

namespace gantry::common {
namespace {

TEST_CASE("addresses parse as operators write them") {
  auto [text, host, port] = GENERATE(table<std::string, std::string, int>({
      {"10.0.0.5:10000", "10.0.0.5", 10000},
      {"cloud.example", "cloud.example", 10002},
      {"[::1]:443", "::1", 443},
      {"[::1]", "::1", 10002},
      {":9000", "0.0.0.0", 9000},
      {"127.0.0.1:0", "127.0.0.1", 0},
  }));
  auto hp = parse_host_port(text, 10002);
  REQUIRE(hp.ok());
  CHECK(hp->host == host);
  CHECK(hp->port == port);
}

TEST_CASE("bad addresses are refused with an example of a good one") {
  auto text =
      GENERATE(as<std::string>{}, "", "host:", "host:99999", "host:x", "::1", "[::1", "[::1]x");
  auto hp = parse_host_port(text, 1);
  REQUIRE_FALSE(hp.ok());
  CHECK_THAT(hp.status().message(), Catch::Contains("host:port"));
}

TEST_CASE("IPv6 hosts print with brackets") {
  CHECK(HostPort{"::1", 10000}.to_string() == "[::1]:10000");
  CHECK(HostPort{"a.b", 1}.to_string() == "a.b:1");
}

}  // namespace
}  // namespace gantry::common
