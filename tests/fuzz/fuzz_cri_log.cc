// CRI log records as containerd writes them (edgecore reads them back for `kubectl logs`): any
// bytes give a header or nothing, and a header's content offset lies inside the record.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "edgecore/logs/cri_log.h"

using namespace gantry::edge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto header = parse_cri_header(text)) {
    if (header->content_offset > text.size() || header->content_offset > kMaxCriHeaderBytes + 1) {
      __builtin_trap();
    }
  }
  if (auto nanos = parse_rfc3339_nanos(text); nanos && *nanos >= 0) {
    // What we print parses back to the same instant (from 1970 on: "0000-01-01T00:00:00+01:00"
    // lies in year -1, which RFC 3339 cannot write).
    auto again = parse_rfc3339_nanos(format_rfc3339_nanos(*nanos));
    if (!again || *again != *nanos) __builtin_trap();
  }
  return 0;
}
