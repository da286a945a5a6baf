#include "cloudcore/api/continue_token.h"

#include <openssl/evp.h>

#include <nlohmann/json.hpp>

#include "common/base/json.h"

namespace gantry::cloud::api {

std::string encode_continue(const ContinueToken& token) {
  std::string raw =
      nlohmann::json{{"v", 1}, {"rv", token.revision}, {"start", token.last_key}}.dump();
  std::string out(4 * ((raw.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(raw.data()),
                          static_cast<int>(raw.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

common::Result<ContinueToken> decode_continue(std::string_view text) {
  auto bad = common::make_error(common::Code::kInvalidArgument,
                                "the continue token is not valid; start a new list without it");
  if (text.empty() || text.size() % 4 != 0 || text.size() > 8192) return bad;
  std::string raw(text.size() / 4 * 3 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(raw.data()),
                          reinterpret_cast<const unsigned char*>(text.data()),
                          static_cast<int>(text.size()));
  if (n < 0) return bad;
  size_t size = static_cast<size_t>(n);
  // EVP_DecodeBlock counts the padding as zero bytes (at most two; "====" decodes to nothing).
  size_t padding = 0;
  for (size_t i = text.size(); i > 0 && text[i - 1] == '='; --i) ++padding;
  if (padding > 2 || padding > size) return bad;
  size -= padding;
  raw.resize(size);
  auto parsed = common::parse_json(raw);
  nlohmann::json j =
      parsed.ok() ? std::move(*parsed) : nlohmann::json(nlohmann::json::value_t::discarded);
  // No json::value(): it throws when "v" is there but not a number.
  if (j.is_discarded() || !j.is_object() || !j.contains("v") || !j["v"].is_number_integer() ||
      j["v"].get<int64_t>() != 1 || !j.contains("rv") || !j["rv"].is_number_unsigned() ||
      !j.contains("start") || !j["start"].is_string())
    return bad;
  return ContinueToken{j["rv"].get<Revision>(), j["start"].get<std::string>()};
}

}  // namespace gantry::cloud::api
