// Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`, what kubectl 1.33
// sends for create configmap|secret|namespace): any bytes decode into an object or are refused
// with a message, and a decoded object always serialises. The first byte picks the kind.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cloudcore/api/protobuf_body.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static constexpr std::string_view kKinds[] = {"ConfigMap", "Secret", "Namespace", "Pod"};
  std::string_view kind = kKinds[data[0] % 4];
  std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto decoded = gantry::cloud::api::decode_protobuf_body("", kind, body);
  if (!decoded.ok()) {
    if (decoded.status().message().empty()) __builtin_trap();  // refusals say why
    return 0;
  }
  if (!decoded->is_object()) __builtin_trap();
  // Strings from the wire are not necessarily UTF-8: dump must not throw on what was accepted.
  (void)decoded->dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
  return 0;
}
