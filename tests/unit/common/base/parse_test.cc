#include "common/base/parse.h"

#include <catch2/catch.hpp>

namespace gantry::common {
namespace {

using namespace std::chrono_literals;
using std::chrono::system_clock;

TEST_CASE("parse_int64 takes the whole text or nothing") {
  CHECK(*parse_int64("30") == 30);
  CHECK(*parse_int64("-5") == -5);
  CHECK(*parse_int64("+7") == 7);
  CHECK(*parse_int64("9223372036854775807") == INT64_MAX);
  for (const char* bad : {"", "abc", "1a", " 1", "1 ", "0x10", "1e3", "1.5", "-", "+", "--1"}) {
    INFO(bad);
    auto r = parse_int64(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message() == "must be an integer");
  }
  CHECK(parse_int64("9223372036854775808").status().message() == "must be a 64-bit integer");
  CHECK(parse_int64("-1", 0).status().message() == "must be greater than or equal to 0");
  CHECK(parse_int64("70000", 1, 65535).status().message() == "must be between 1 and 65535");
}

TEST_CASE("parse_uint64 refuses signs and overflow") {
  CHECK(*parse_uint64("18446744073709551615") == UINT64_MAX);
  CHECK_FALSE(parse_uint64("-1").ok());
  CHECK_FALSE(parse_uint64("+1").ok());
  CHECK_FALSE(parse_uint64("18446744073709551616").ok());
  CHECK(parse_uint64("11", 10).status().message() == "must be at most 10");
}

TEST_CASE("parse_bool accepts what Go's strconv.ParseBool accepts") {
  for (const char* t : {"1", "t", "T", "true", "TRUE", "True"}) CHECK(*parse_bool(t));
  for (const char* f : {"0", "f", "F", "false", "FALSE", "False"}) CHECK_FALSE(*parse_bool(f));
  for (const char* bad : {"", "yes", "tRUE", "2", "on"}) CHECK_FALSE(parse_bool(bad).ok());
}

TEST_CASE("parse_go_duration reads Go durations") {
  CHECK(*parse_go_duration("0") == 0ns);
  CHECK(*parse_go_duration("300ms") == 300ms);
  CHECK(*parse_go_duration("1.5h") == 90min);
  CHECK(*parse_go_duration("2h45m") == 165min);
  CHECK(*parse_go_duration("-10s") == -10s);
  CHECK(*parse_go_duration("1us") == 1us);
  CHECK(*parse_go_duration("1\xc2\xb5s") == 1us);
  CHECK(*parse_go_duration(".5s") == 500ms);
  for (const char* bad : {"", "10", "s", "1x", "1.s.", "-", "1h 2m", "5d"}) {
    INFO(bad);
    CHECK_FALSE(parse_go_duration(bad).ok());
  }
  CHECK_FALSE(parse_go_duration("10000000h").ok());  // past int64 nanoseconds
}

TEST_CASE("parse_rfc3339 reads the times Kubernetes writes, and refuses the rest") {
  auto epoch = [](int64_t s) { return system_clock::time_point(std::chrono::seconds(s)); };
  CHECK(*parse_rfc3339("1970-01-01T00:00:00Z") == epoch(0));
  CHECK(*parse_rfc3339("2026-12-02T14:44:00Z") == epoch(1796222640));
  CHECK(*parse_rfc3339("2026-12-02T16:44:00+02:00") == epoch(1796222640));
  CHECK(*parse_rfc3339("2026-12-02t14:44:00z") == epoch(1796222640));
  CHECK(*parse_rfc3339("2026-12-02T14:44:00.25Z") == epoch(1796222640) + 250ms);
  for (const char* bad :
       {"", "2026-12-02", "2026-12-02T14:44:00", "2026-12-02 14:44:00Z", "2026-13-02T14:44:00Z",
        "2026-02-30T14:44:00Z", "2026-12-02T24:00:00Z", "2026-12-02T14:44:00+0200",
        "2026-12-02T14:44:00Zjunk", "26-12-02T1:4:0Z", "2026-12-02T14:44:00.Z"}) {
    INFO(bad);
    CHECK_FALSE(parse_rfc3339(bad).ok());
  }
}

TEST_CASE("format_rfc3339 and format_rfc3339_micro round-trip through parse_rfc3339") {
  auto t = system_clock::time_point(std::chrono::seconds(1796222640)) + 123456us;
  CHECK(format_rfc3339(t) == "2026-12-02T14:44:00Z");
  CHECK(format_rfc3339_micro(t) == "2026-12-02T14:44:00.123456Z");
  CHECK(*parse_rfc3339(format_rfc3339_micro(t)) == t);
}

TEST_CASE("base64 is strict, as Go's StdEncoding") {
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(*base64_decode("Zm9vYmFy") == "foobar");
  CHECK(*base64_decode("Zm9v\r\nYmFy") == "foobar");
  CHECK(*base64_decode("Zg==") == "f");
  CHECK(*base64_decode("") == "");
  for (const char* bad : {"Zg", "Zg=", "Z===", "Zm9v YmFy", "Zh==", "Zm9v!", "=Zg="}) {
    INFO(bad);
    CHECK_FALSE(base64_decode(bad).ok());
  }
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  CHECK(*base64_decode(base64_encode(all)) == all);
  CHECK(*base64url_decode(base64url_encode(all)) == all);
  CHECK(base64url_encode("\xfb\xff") == "-_8");
  CHECK_FALSE(base64url_decode("-_8=").has_value());
}

TEST_CASE("invalid_value names the field and quotes the value as kube-apiserver does") {
  Status s = invalid_value("gracePeriodSeconds", "abc", "must be an integer");
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message() == R"(gracePeriodSeconds: Invalid value: "abc": must be an integer)");
  CHECK(invalid_value("x", "a\"b\n", "d").message() == R"(x: Invalid value: "a\"b\x0a": d)");
}

TEST_CASE("named parameters: absent stays absent, a bad value names the parameter") {
  CHECK_FALSE(parse_int64_param("limit", std::nullopt)->has_value());
  CHECK(**parse_int64_param("limit", std::string("500"), 0) == 500);
  auto bad = parse_int64_param("gracePeriodSeconds", std::string("abc"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message() ==
        R"(gracePeriodSeconds: Invalid value: "abc": must be an integer)");
  CHECK(parse_int64_param("limit", std::string("-1"), 0).status().message() ==
        R"(limit: Invalid value: "-1": must be greater than or equal to 0)");
  CHECK(parse_uint64_param("resourceVersion", std::string("12x")).status().message() ==
        R"(resourceVersion: Invalid value: "12x": must be a non-negative integer)");
  CHECK(**parse_bool_param("watch", std::string("1")));
  CHECK_FALSE(parse_bool_param("watch", std::string("yes")).ok());
  CHECK(parse_rfc3339_param("sinceTime", std::string("yesterday"))
            .status()
            .message()
            .starts_with(R"(sinceTime: Invalid value: "yesterday": must be an RFC 3339 time)"));
}

}  // namespace
}  // namespace gantry::common
