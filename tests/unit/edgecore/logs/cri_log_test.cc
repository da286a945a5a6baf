#include "edgecore/logs/cri_log.h"

#include <catch2/catch.hpp>

namespace gantry::edge {

TEST_CASE("CRI headers parse timestamp, stream, tag and where the content starts", "[logs]") {
  std::string line = "2024-01-02T03:04:05.123456789Z stderr P hello world";
  auto h = parse_cri_header(line);
  REQUIRE(h);
  CHECK(h->is_stderr);
  CHECK(h->partial);
  CHECK(line.substr(h->content_offset) == "hello world");
  CHECK(format_rfc3339_nanos(h->unix_nanos) == "2024-01-02T03:04:05.123456789Z");

  auto full = parse_cri_header("2024-01-02T03:04:05Z stdout F:x content");
  REQUIRE(full);
  CHECK_FALSE(full->partial);
  CHECK_FALSE(full->is_stderr);

  auto empty = parse_cri_header("2024-01-02T03:04:05Z stdout F");
  REQUIRE(empty);
  CHECK(empty->content_offset == std::string("2024-01-02T03:04:05Z stdout F").size());
}

TEST_CASE("malformed CRI headers are refused", "[logs]") {
  auto bad = GENERATE(as<std::string>{}, "", "hello world", "2024-01-02 stdout F x",
                      "2024-01-02T03:04:05Z stdin F x", "2024-01-02T03:04:05Z stdout X x",
                      "2024-13-02T03:04:05Z stdout F x", "2024-01-02T03:04:05 stdout F x",
                      "2024-01-02T03:04:05.Z stdout F x");
  CHECK_FALSE(parse_cri_header(bad));
}

TEST_CASE("RFC 3339 timestamps with offsets and short fractions convert to UTC", "[logs]") {
  auto utc = parse_rfc3339_nanos("2024-01-02T03:04:05.5Z");
  auto east = parse_rfc3339_nanos("2024-01-02T11:04:05.500+08:00");
  auto west = parse_rfc3339_nanos("2024-01-01T22:04:05.5-05:00");
  REQUIRE(utc);
  REQUIRE(east);
  REQUIRE(west);
  CHECK(*utc == *east);
  CHECK(*utc == *west);
  CHECK(format_rfc3339_nanos(*utc) == "2024-01-02T03:04:05.500000000Z");
  CHECK(format_rfc3339_nanos(0) == "1970-01-01T00:00:00.000000000Z");
  CHECK(parse_rfc3339_nanos("2000-02-29T23:59:59.999999999Z") ==
        std::optional<int64_t>(951868799999999999LL));
}

}  // namespace gantry::edge

namespace gantry::edge {

// Found by fuzz_cri_log: year 7571 overflowed int64 nanoseconds (undefined behaviour).
TEST_CASE("timestamps outside int64 nanoseconds (before 1677, after 2262) are refused", "[logs]") {
  CHECK_FALSE(parse_rfc3339_nanos("7571-02-30T23:00:60-23:59"));
  CHECK_FALSE(parse_rfc3339_nanos("9999-12-31T23:59:59.999999999Z"));
  CHECK_FALSE(parse_rfc3339_nanos("1000-01-01T00:00:00Z"));
  CHECK_FALSE(parse_cri_header("7571-02-30T23:00:60-23:59 stdout F x"));
  CHECK(parse_rfc3339_nanos("2262-01-01T00:00:00Z"));
}

}  // namespace gantry::edge
