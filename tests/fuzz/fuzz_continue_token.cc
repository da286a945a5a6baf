// List continue tokens (`?continue=`): the client sends back what we gave it, or anything else.
// Anything decodes to a token or is refused; a token we encode decodes to itself.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "cloudcore/api/continue_token.h"

using namespace gantry::cloud::api;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto token = decode_continue(text);
  if (token.ok()) {
    auto again = decode_continue(encode_continue(*token));
    if (!again.ok() || again->revision != token->revision || again->last_key != token->last_key) {
      __builtin_trap();
    }
  }
  // Round trip of any key that is text (store keys are object names, validated as such; JSON
  // cannot carry other bytes, and nlohmann throws on them).
  bool text_key = true;
  try {
    (void)nlohmann::json(std::string(text)).dump();
  } catch (const nlohmann::json::exception&) {
    text_key = false;
  }
  if (!text_key) return 0;
  ContinueToken made{size, std::string(text)};
  std::string encoded = encode_continue(made);
  if (encoded.size() > 8192) return 0;  // refused by design
  auto back = decode_continue(encoded);
  if (!back.ok() || back->last_key != made.last_key) __builtin_trap();
  return 0;
}
