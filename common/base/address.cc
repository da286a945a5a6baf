#include "common/base/address.h"

#include <charconv>

namespace gantry::common {

std::string HostPort::to_string() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Result<HostPort> parse_host_port(std::string_view text, uint16_t default_port) {
  auto bad = [&] {
    return make_error(Code::kInvalidArgument,
                      "'{}' is not host:port (e.g. 10.0.0.5:10000, [::1]:10000)", text);
  };
  HostPort out;
  out.port = default_port;
  std::string_view port;
  if (text.starts_with('[')) {
    auto close = text.find(']');
    if (close == std::string_view::npos) return bad();
    out.host = std::string(text.substr(1, close - 1));
    std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return bad();
      port = rest.substr(1);
      if (port.empty()) return bad();
    }
  } else if (auto colon = text.rfind(':'); colon != std::string_view::npos) {
    if (text.find(':') != colon) return bad();  // a bare IPv6 literal needs brackets
    out.host = std::string(text.substr(0, colon));
    port = text.substr(colon + 1);
    if (port.empty()) return bad();
    if (out.host.empty()) out.host = "0.0.0.0";
  } else {
    out.host = std::string(text);
  }
  if (out.host.empty()) return bad();
  if (!port.empty()) {
    unsigned value = 0;
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
    if (ec != std::errc() || ptr != port.data() + port.size() || value > 65535) return bad();
    out.port = static_cast<uint16_t>(value);
  }
  return out;
}

}  // namespace gantry::common
