// Listen and dial addresses as operators write them in configs and flags.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace gantry::common {

struct HostPort {
  std::string host;  // DNS name or IP literal, without brackets
  uint16_t port = 0;
  std::string to_string() const;  // brackets around IPv6 literals
};

// "host:port", "host" (default_port), "[::1]:10000", ":10000" (host "0.0.0.0"). Port 0 is
// allowed (tests: let the kernel pick).
Result<HostPort> parse_host_port(std::string_view text, uint16_t default_port);

}  // namespace gantry::common
