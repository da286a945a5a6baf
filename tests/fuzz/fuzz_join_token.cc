// Join tokens (`gantryadm join --token`, checked by cloudcore's /join): any text is parsed or
// refused without crashing, a forged token never verifies, and a token we make verifies.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/pki/pki.h"

using namespace gantry::common;

namespace {
const std::string kCaHash(64, 'a');
const std::string kKey = "0123456789abcdef0123456789abcdef";

bool valid_utf8(const std::string& text) {
  try {
    (void)nlohmann::json(text).dump();
    return true;
  } catch (const nlohmann::json::exception&) {
    return false;
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto now = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  (void)parse_join_token(text);
  // Fuzzed bytes cannot carry our MAC: verifying must refuse them.
  if (verify_join_token(text, kCaHash, kKey, now).ok()) __builtin_trap();
  (void)base64url_decode(text);

  // The fuzzed bytes as the claims of a real token: what is made verifies, to the same claims.
  JoinTokenClaims claims;
  claims.expires = now + std::chrono::hours(1);
  claims.province = std::string(text.substr(0, size / 2));
  claims.id = std::string(text.substr(size / 2));
  std::string token = make_join_token(kCaHash, claims, kKey);
  if (token.size() > 4096) return 0;  // refused by design
  auto verified = verify_join_token(token, kCaHash, kKey, now);
  if (!verified.ok()) __builtin_trap();
  // Invalid UTF-8 in a claim is replaced (U+FFFD) when the token is made: compare valid text only.
  if (valid_utf8(claims.province) && valid_utf8(claims.id) &&
      (verified->province != claims.province ||
       (!claims.id.empty() && verified->id != claims.id))) {
    __builtin_trap();
  }
  return 0;
}
