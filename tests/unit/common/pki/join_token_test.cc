#include <catch2/catch.hpp>

#include "common/pki/pki.h"

namespace gantry::common {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

const std::string kHash(64, 'a');
const std::string kOtherHash(64, 'b');
const std::string kKey = "token-signing-key";
// 2026-11-20T10:00:00Z
const Clock::time_point kExpiry = Clock::from_time_t(1795168800);
const Clock::time_point kBefore = kExpiry - 1h;

JoinTokenClaims claims(Clock::time_point expires, std::string id = "t", std::string province = "") {
  JoinTokenClaims c;
  c.expires = expires;
  c.id = std::move(id);
  c.province = std::move(province);
  return c;
}

std::string good_token() {
  return make_join_token(kHash, claims(kExpiry, "t1", "guangdong"), kKey);
}

TEST_CASE("a good join token verifies and carries its claims") {
  std::string token = good_token();
  auto verified = verify_join_token(token, kHash, kKey, kBefore);
  REQUIRE(verified.ok());
  CHECK(verified->expires == kExpiry);
  CHECK(verified->province == "guangdong");
  CHECK(verified->id == "t1");
  // People copy hashes in either case; the check is on the value, not the spelling.
  CHECK(verify_join_token(token, std::string(64, 'A'), kKey, kBefore).ok());

  auto parsed = parse_join_token(token);
  REQUIRE(parsed.ok());
  CHECK(parsed->first == kHash);
  CHECK(parsed->second.province == "guangdong");
}

TEST_CASE("a token made without an id gets a random one and no province means any") {
  std::string a = make_join_token(kHash, claims(kExpiry, ""), kKey);
  std::string b = make_join_token(kHash, claims(kExpiry, ""), kKey);
  auto ca = verify_join_token(a, kHash, kKey, kBefore);
  auto cb = verify_join_token(b, kHash, kKey, kBefore);
  REQUIRE(ca.ok());
  REQUIRE(cb.ok());
  CHECK_FALSE(ca->id.empty());
  CHECK(ca->id != cb->id);
  CHECK(ca->province.empty());
}

TEST_CASE("a token's parts use only URL- and shell-safe characters") {
  std::string token = good_token();
  CHECK(token.find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") ==
        std::string::npos);
}

struct Rejection {
  std::string name;
  std::string token;
  Code code;
  std::string message_part;
};

std::string flip_char(std::string s, size_t pos) {
  s[pos] = s[pos] == 'A' ? 'B' : 'A';
  return s;
}

TEST_CASE("bad join tokens are rejected with a distinct code and an actionable message") {
  std::string good = good_token();
  size_t first_dot = good.find('.');
  size_t last_dot = good.rfind('.');
  std::string payload = good.substr(first_dot + 1, last_dot - first_dot - 1);
  std::string mac = good.substr(last_dot + 1);
  auto with_claims = [&](const std::string& json) {
    return kHash + "." + base64url_encode(json) + "." + mac;
  };

  Rejection r = GENERATE_COPY(
      Rejection{"empty", "", Code::kInvalidArgument, "empty"},
      Rejection{"no dots", "abc", Code::kInvalidArgument, "three parts"},
      Rejection{"two parts", kHash + "." + payload, Code::kInvalidArgument, "three parts"},
      Rejection{"four parts", good + ".x", Code::kInvalidArgument, "three parts"},
      Rejection{"short hash", "abcd." + payload + "." + mac, Code::kInvalidArgument, "CA hash"},
      Rejection{"uppercase hash", std::string(64, 'A') + "." + payload + "." + mac,
                Code::kInvalidArgument, "CA hash"},
      Rejection{"payload not base64url", kHash + ".%%%." + mac, Code::kInvalidArgument,
                "base64url"},
      Rejection{"payload padded", kHash + "." + payload + "==." + mac, Code::kInvalidArgument,
                "base64url"},
      Rejection{"payload not JSON", with_claims("exp=1"), Code::kInvalidArgument, "JSON"},
      Rejection{"no expiry", with_claims(R"({"id":"x"})"), Code::kInvalidArgument, "exp"},
      Rejection{"expiry is text", with_claims(R"({"exp":"soon","id":"x"})"), Code::kInvalidArgument,
                "exp"},
      Rejection{"no id", with_claims(R"({"exp":1795168800})"), Code::kInvalidArgument, "id"},
      Rejection{"signature truncated", good.substr(0, good.size() - 4), Code::kInvalidArgument,
                "signature"},
      Rejection{"other CA", make_join_token(kOtherHash, claims(kExpiry), kKey),
                Code::kPermissionDenied, "token was issued for another cluster CA"},
      Rejection{"MAC flipped", flip_char(good, good.size() - 5), Code::kUnauthenticated,
                "token signature does not match"},
      Rejection{"claims changed",
                kHash + "." + base64url_encode(R"({"exp":1795168800,"id":"t1","province":"x"})") +
                    "." + mac,
                Code::kUnauthenticated, "token signature does not match"},
      Rejection{"other signing key", make_join_token(kHash, claims(kExpiry), "another-key"),
                Code::kUnauthenticated, "token signature does not match"},
      Rejection{"expired", make_join_token(kHash, claims(kBefore - 1s), kKey),
                Code::kDeadlineExceeded, "create a new one with gantryadm gettoken"},
      Rejection{"expires exactly now", make_join_token(kHash, claims(kBefore), kKey),
                Code::kDeadlineExceeded, "token expired at 2026-11-20T09:00:00Z"});

  INFO(r.name << ": " << r.token);
  auto result = verify_join_token(r.token, kHash, kKey, kBefore);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == r.code);
  CHECK_THAT(result.status().message(), Catch::Contains(r.message_part));
  if (r.code == Code::kInvalidArgument) {
    CHECK(parse_join_token(r.token).status().code() == Code::kInvalidArgument);
  }
}

TEST_CASE("an expired token's message names the expiry time in UTC") {
  auto result = verify_join_token(good_token(), kHash, kKey, kExpiry + 1h);
  REQUIRE(result.status().code() == Code::kDeadlineExceeded);
  CHECK(result.status().message() ==
        "token expired at 2026-11-20T10:00:00Z; create a new one with gantryadm gettoken");
}

TEST_CASE("parse_join_token reads claims without the signing key") {
  // The joining edge cannot check the MAC; it still needs the hash and the claims.
  auto parsed = parse_join_token(make_join_token(kHash, claims(kExpiry), "k2"));
  REQUIRE(parsed.ok());
  CHECK(parsed->first == kHash);
  CHECK(parsed->second.expires == kExpiry);
}

TEST_CASE("base64url round trips every length and rejects non-canonical input") {
  std::string data;
  for (int i = 0; i < 40; ++i) {
    auto decoded = base64url_decode(base64url_encode(data));
    REQUIRE(decoded.has_value());
    CHECK(*decoded == data);
    data += static_cast<char>(i * 37 + 200);
  }
  CHECK(base64url_encode("\xfb\xff") == "-_8");
  CHECK_FALSE(base64url_decode("A").has_value());
  CHECK_FALSE(base64url_decode("AB==").has_value());
  CHECK_FALSE(base64url_decode("AB").has_value());  // leftover bits set: not canonical
  CHECK(base64url_decode("AA") == std::string(1, '\0'));
}

}  // namespace
}  // namespace gantry::common
