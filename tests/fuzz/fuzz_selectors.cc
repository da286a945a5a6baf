// Label and field selectors (`?labelSelector=`, `?fieldSelector=`): any text parses or is refused
// with a message, and a parsed selector matches without crashing. The first byte picks the kind.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "cloudcore/api/selectors.h"

using gantry::cloud::api::FieldSelector;
using gantry::cloud::api::LabelSelector;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool field = (data[0] & 1) != 0;
  std::string_view text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (field) {
    auto selector = FieldSelector::parse(
        text, {"metadata.name", "metadata.namespace", "spec.nodeName", "status.phase"});
    if (!selector.ok()) {
      if (selector.status().message().empty()) __builtin_trap();  // refusals say why
      return 0;
    }
    (void)selector->matches([](const std::string& f) { return f == "metadata.name" ? "web" : ""; });
    return 0;
  }
  auto selector = LabelSelector::parse(text);
  if (!selector.ok()) {
    if (selector.status().message().empty()) __builtin_trap();
    return 0;
  }
  const std::map<std::string, std::string> labels{{"app", "web"}, {"tier", "db"}, {"env", ""}};
  (void)selector->matches(labels);
  // A requirement always names a label.
  for (const auto& requirement : selector->requirements()) {
    if (requirement.key.empty()) __builtin_trap();
  }
  return 0;
}
