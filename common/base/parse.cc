#include "common/base/parse.h"

#include <fmt/format.h>

#include <charconv>
#include <ctime>
#include <optional>

namespace gantry::common {
namespace {

using std::chrono::nanoseconds;
using std::chrono::system_clock;

Status bad(std::string_view detail) {
  return Status(Code::kInvalidArgument, std::string(detail));
}

bool all_digits(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

// Exactly `n` digits at text[pos...]; advances pos.
std::optional<int> fixed_digits(std::string_view text, size_t& pos, size_t n) {
  if (pos + n > text.size()) return std::nullopt;
  int v = 0;
  for (size_t i = 0; i < n; ++i) {
    char c = text[pos + i];
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + (c - '0');
  }
  pos += n;
  return v;
}

bool expect(std::string_view text, size_t& pos, char c) {
  if (pos >= text.size() || text[pos] != c) return false;
  ++pos;
  return true;
}

constexpr char kStd[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr char kUrl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string encode(std::string_view data, const char* alphabet, bool pad) {
  std::string out;
  out.reserve((data.size() + 2) / 3 * 4);
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(data[k])); };
  size_t i = 0;
  for (; i + 3 <= data.size(); i += 3) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += alphabet[v >> 18 & 63];
    out += alphabet[v >> 12 & 63];
    out += alphabet[v >> 6 & 63];
    out += alphabet[v & 63];
  }
  size_t rest = data.size() - i;
  if (rest == 1) {
    uint32_t v = byte(i) << 16;
    out += alphabet[v >> 18 & 63];
    out += alphabet[v >> 12 & 63];
    if (pad) out += "==";
  } else if (rest == 2) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
    out += alphabet[v >> 18 & 63];
    out += alphabet[v >> 12 & 63];
    out += alphabet[v >> 6 & 63];
    if (pad) out += '=';
  }
  return out;
}

int value_of(char c, bool url) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == (url ? '-' : '+')) return 62;
  if (c == (url ? '_' : '/')) return 63;
  return -1;
}

// Decodes unpadded symbols; refuses non-zero leftover bits (one encoding per byte string).
std::optional<std::string> decode_symbols(std::string_view text, bool url) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value_of(c, url);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;
  return out;
}

std::string quoted(std::string_view text) {
  constexpr size_t kMax = 100;
  std::string out = "\"";
  size_t n = 0;
  for (char c : text) {
    if (n++ == kMax) {
      out += "...";
      break;
    }
    unsigned char u = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (u < 0x20 || u == 0x7f) {
      out += fmt::format("\\x{:02x}", u);
    } else {
      out += c;
    }
  }
  return out + "\"";
}

}  // namespace

Result<int64_t> parse_int64(std::string_view text, int64_t min, int64_t max) {
  std::string_view digits = text;
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) digits.remove_prefix(1);
  if (!all_digits(digits)) return bad("must be an integer");
  int64_t v = 0;
  const char* begin = text.data() + (text[0] == '+' ? 1 : 0);
  auto [end, ec] = std::from_chars(begin, text.data() + text.size(), v);
  bool out_of_range = ec == std::errc::result_out_of_range || v < min || v > max;
  if (ec != std::errc() && !out_of_range) return bad("must be an integer");
  if (out_of_range) {
    if (min == std::numeric_limits<int64_t>::min() && max == std::numeric_limits<int64_t>::max())
      return bad("must be a 64-bit integer");
    if (max == std::numeric_limits<int64_t>::max())
      return Status(Code::kInvalidArgument,
                    fmt::format("must be greater than or equal to {}", min));
    return Status(Code::kInvalidArgument, fmt::format("must be between {} and {}", min, max));
  }
  return v;
}

Result<uint64_t> parse_uint64(std::string_view text, uint64_t max) {
  if (!all_digits(text)) return bad("must be a non-negative integer");
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec == std::errc::result_out_of_range || v > max)
    return Status(Code::kInvalidArgument, fmt::format("must be at most {}", max));
  if (ec != std::errc()) return bad("must be a non-negative integer");
  return v;
}

Result<bool> parse_bool(std::string_view text) {
  for (std::string_view t : {"1", "t", "T", "TRUE", "true", "True"})
    if (text == t) return true;
  for (std::string_view f : {"0", "f", "F", "FALSE", "false", "False"})
    if (text == f) return false;
  return bad("must be a boolean (true or false)");
}

Result<nanoseconds> parse_go_duration(std::string_view text) {
  const Status kSyntax = bad("must be a duration such as 300ms, 1.5h or 2h45m");
  std::string_view s = text;
  bool negative = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    negative = s[0] == '-';
    s.remove_prefix(1);
  }
  if (s == "0") return nanoseconds(0);
  if (s.empty()) return kSyntax;
  __int128 total = 0;
  constexpr __int128 kMax = std::numeric_limits<int64_t>::max();
  while (!s.empty()) {
    size_t i = 0;
    __int128 whole = 0;
    bool any = false;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      whole = whole * 10 + (s[i] - '0');
      if (whole > kMax) return bad("is too large for a duration");
      ++i;
      any = true;
    }
    __int128 frac = 0, scale = 1;
    if (i < s.size() && s[i] == '.') {
      ++i;
      while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
        if (scale < 1'000'000'000'000'000'000LL) {  // digits past 1e-18 cannot matter
          frac = frac * 10 + (s[i] - '0');
          scale *= 10;
        }
        ++i;
        any = true;
      }
    }
    if (!any) return kSyntax;
    size_t u = i;
    while (u < s.size() && s[u] != '.' && (s[u] < '0' || s[u] > '9')) ++u;
    std::string_view unit = s.substr(i, u - i);
    int64_t ns_per = 0;
    if (unit == "ns")
      ns_per = 1;
    else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs")
      ns_per = 1'000;
    else if (unit == "ms")
      ns_per = 1'000'000;
    else if (unit == "s")
      ns_per = 1'000'000'000;
    else if (unit == "m")
      ns_per = 60'000'000'000;
    else if (unit == "h")
      ns_per = 3'600'000'000'000;
    else if (unit.empty())
      return bad("must be a duration with a unit (ns, us, ms, s, m, h)");
    else
      return Status(Code::kInvalidArgument, fmt::format("has an unknown unit \"{}\"", unit));
    total += whole * ns_per + frac * ns_per / scale;
    if (total > kMax) return bad("is too large for a duration");
    s.remove_prefix(u);
  }
  return nanoseconds(static_cast<int64_t>(negative ? -total : total));
}

Result<system_clock::time_point> parse_rfc3339(std::string_view text) {
  const Status kSyntax =
      bad("must be an RFC 3339 time such as 2006-01-02T15:04:05Z or 2006-01-02T15:04:05+07:00");
  size_t pos = 0;
  auto year = fixed_digits(text, pos, 4);
  if (!year || !expect(text, pos, '-')) return kSyntax;
  auto month = fixed_digits(text, pos, 2);
  if (!month || !expect(text, pos, '-')) return kSyntax;
  auto day = fixed_digits(text, pos, 2);
  if (!day || !(expect(text, pos, 'T') || expect(text, pos, 't'))) return kSyntax;
  auto hour = fixed_digits(text, pos, 2);
  if (!hour || !expect(text, pos, ':')) return kSyntax;
  auto minute = fixed_digits(text, pos, 2);
  if (!minute || !expect(text, pos, ':')) return kSyntax;
  auto second = fixed_digits(text, pos, 2);
  if (!second) return kSyntax;
  int64_t frac_ns = 0;
  if (expect(text, pos, '.')) {
    size_t start = pos;
    int64_t scale = 100'000'000;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      frac_ns += (text[pos] - '0') * scale;
      scale /= 10;
      ++pos;
    }
    if (pos == start) return kSyntax;
  }
  int offset_s = 0;
  if (expect(text, pos, 'Z') || expect(text, pos, 'z')) {
  } else if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) {
    int sign = text[pos++] == '-' ? -1 : 1;
    auto oh = fixed_digits(text, pos, 2);
    if (!oh || !expect(text, pos, ':')) return kSyntax;
    auto om = fixed_digits(text, pos, 2);
    if (!om || *oh > 23 || *om > 59) return kSyntax;
    offset_s = sign * (*oh * 3600 + *om * 60);
  } else {
    return kSyntax;
  }
  if (pos != text.size()) return kSyntax;
  using namespace std::chrono;
  year_month_day ymd{std::chrono::year(*year), std::chrono::month(static_cast<unsigned>(*month)),
                     std::chrono::day(static_cast<unsigned>(*day))};
  if (!ymd.ok() || *hour > 23 || *minute > 59 || *second > 59)
    return bad("is not a valid date and time");
  auto t = sys_days(ymd) + hours(*hour) + minutes(*minute) + seconds(*second) - seconds(offset_s) +
           nanoseconds(frac_ns);
  return time_point_cast<system_clock::duration>(t);
}

std::string format_rfc3339(system_clock::time_point t) {
  time_t secs = system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string format_rfc3339_micro(system_clock::time_point t) {
  using namespace std::chrono;
  auto secs = floor<seconds>(t);
  auto micros = duration_cast<microseconds>(t - secs).count();
  time_t s = system_clock::to_time_t(system_clock::time_point(secs));
  std::tm tm{};
  gmtime_r(&s, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:06d}Z", buf, micros);
}

std::string base64_encode(std::string_view data) {
  return encode(data, kStd, /*pad=*/true);
}

Result<std::string> base64_decode(std::string_view text) {
  std::string clean;
  clean.reserve(text.size());
  for (char c : text)
    if (c != '\r' && c != '\n') clean += c;
  const Status kBad = bad("must be base64 (standard alphabet, padded)");
  if (clean.size() % 4 != 0) return kBad;
  std::string_view body = clean;
  if (body.ends_with("==")) {
    body.remove_suffix(2);
  } else if (body.ends_with("=")) {
    body.remove_suffix(1);
  }
  auto out = decode_symbols(body, /*url=*/false);
  if (!out) return kBad;
  return std::move(*out);
}

std::string base64url_encode(std::string_view data) {
  return encode(data, kUrl, /*pad=*/false);
}

std::optional<std::string> base64url_decode(std::string_view text) {
  return decode_symbols(text, /*url=*/true);
}

Status invalid_value(std::string_view name, std::string_view text, std::string_view detail) {
  return Status(Code::kInvalidArgument,
                fmt::format("{}: Invalid value: {}: {}", name, quoted(text), detail));
}

namespace {

template <typename T, typename Parse>
Result<std::optional<T>> named(std::string_view name, const std::optional<std::string>& text,
                               Parse parse) {
  if (!text) return std::optional<T>();
  Result<T> v = parse(*text);
  if (!v.ok()) return invalid_value(name, *text, v.status().message());
  return std::optional<T>(std::move(*v));
}

}  // namespace

Result<std::optional<int64_t>> parse_int64_param(std::string_view name,
                                                 const std::optional<std::string>& text,
                                                 int64_t min, int64_t max) {
  return named<int64_t>(name, text, [&](std::string_view t) { return parse_int64(t, min, max); });
}

Result<std::optional<uint64_t>> parse_uint64_param(std::string_view name,
                                                   const std::optional<std::string>& text) {
  return named<uint64_t>(name, text, [](std::string_view t) { return parse_uint64(t); });
}

Result<std::optional<bool>> parse_bool_param(std::string_view name,
                                             const std::optional<std::string>& text) {
  return named<bool>(name, text, [](std::string_view t) { return parse_bool(t); });
}

Result<std::optional<system_clock::time_point>> parse_rfc3339_param(
    std::string_view name, const std::optional<std::string>& text) {
  return named<system_clock::time_point>(name, text,
                                         [](std::string_view t) { return parse_rfc3339(t); });
}

}  // namespace gantry::common
