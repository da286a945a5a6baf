// libFuzzer target for the bounded JSON/YAML decoders (common/base/json.h): no input may crash,
// overflow the stack or take more than linear memory. A decoded value is also dumped and copied,
// the recursive walks that a too-deep tree would overflow.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/base/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  gantry::common::JsonLimits limits;
  limits.max_yaml_values = 100'000;
  auto parsed = gantry::common::parse_json(text, limits);
  if (parsed.ok()) {
    nlohmann::json copy = *parsed;
    (void)copy.dump();
    (void)(copy == *parsed);
  }
  // YAML bodies are rarer; fuzz them on inputs that start with a marker byte so both decoders
  // get their share of the corpus.
  if (!text.empty() && text.front() == '#') {
    auto yaml = gantry::common::parse_yaml_as_json(text, limits);
    if (yaml.ok()) (void)yaml->dump();
  }
  return 0;
}
