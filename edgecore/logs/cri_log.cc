#include "edgecore/logs/cri_log.h"

#include <fmt/format.h>

#include <limits>

namespace gantry::edge {
namespace {

constexpr int64_t kNanosPerSecond = 1'000'000'000;

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

void civil_from_days(int64_t z, int64_t* y, unsigned* m, unsigned* d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *d = doy - (153 * mp + 2) / 5 + 1;
  *m = mp < 10 ? mp + 3 : mp - 9;
  *y = static_cast<int64_t>(yoe) + era * 400 + (*m <= 2);
}

bool digits(std::string_view text, size_t pos, size_t n, int* out) {
  if (pos + n > text.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    v = v * 10 + (text[i] - '0');
  }
  *out = v;
  return true;
}

}  // namespace

std::optional<int64_t> parse_rfc3339_nanos(std::string_view t) {
  int year, month, day, hour, minute, second;
  if (!digits(t, 0, 4, &year) || t.size() < 20 || t[4] != '-' || !digits(t, 5, 2, &month) ||
      t[7] != '-' || !digits(t, 8, 2, &day) || (t[10] != 'T' && t[10] != 't') ||
      !digits(t, 11, 2, &hour) || t[13] != ':' || !digits(t, 14, 2, &minute) || t[16] != ':' ||
      !digits(t, 17, 2, &second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
    return std::nullopt;
  size_t pos = 19;
  int64_t nanos = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    size_t n = 0;
    while (pos < t.size() && t[pos] >= '0' && t[pos] <= '9') {
      if (n < 9) nanos = nanos * 10 + (t[pos] - '0');
      ++n;
      ++pos;
    }
    if (n == 0) return std::nullopt;
    for (size_t i = n; i < 9; ++i) nanos *= 10;
  }
  int64_t offset_seconds = 0;
  if (pos < t.size() && (t[pos] == 'Z' || t[pos] == 'z')) {
    ++pos;
  } else if (pos < t.size() && (t[pos] == '+' || t[pos] == '-')) {
    int oh, om;
    if (!digits(t, pos + 1, 2, &oh) || pos + 3 >= t.size() || t[pos + 3] != ':' ||
        !digits(t, pos + 4, 2, &om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_seconds = (t[pos] == '-' ? -1 : 1) * (int64_t{oh} * 3600 + int64_t{om} * 60);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != t.size()) return std::nullopt;
  int64_t days = days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  int64_t seconds =
      days * 86400 + int64_t{hour} * 3600 + int64_t{minute} * 60 + second - offset_seconds;
  // Nanoseconds since 1970 fit int64 from 1677 to 2262: a year outside is not a log record's.
  constexpr int64_t kMaxSeconds = std::numeric_limits<int64_t>::max() / kNanosPerSecond - 1;
  if (seconds > kMaxSeconds || seconds < -kMaxSeconds) return std::nullopt;
  return seconds * kNanosPerSecond + nanos;
}

std::string format_rfc3339_nanos(int64_t unix_nanos) {
  int64_t seconds = unix_nanos / kNanosPerSecond;
  int64_t nanos = unix_nanos % kNanosPerSecond;
  if (nanos < 0) {
    nanos += kNanosPerSecond;
    --seconds;
  }
  int64_t days = seconds / 86400;
  int64_t rem = seconds % 86400;
  if (rem < 0) {
    rem += 86400;
    --days;
  }
  int64_t y;
  unsigned m, d;
  civil_from_days(days, &y, &m, &d);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z", y, m, d, rem / 3600,
                     (rem / 60) % 60, rem % 60, nanos);
}

std::optional<CriHeader> parse_cri_header(std::string_view text) {
  CriHeader h;
  size_t ts_end = text.find(' ');
  if (ts_end == std::string_view::npos || ts_end > kMaxCriHeaderBytes) return std::nullopt;
  auto ts = parse_rfc3339_nanos(text.substr(0, ts_end));
  if (!ts) return std::nullopt;
  h.unix_nanos = *ts;
  size_t stream_end = text.find(' ', ts_end + 1);
  if (stream_end == std::string_view::npos) return std::nullopt;
  std::string_view stream = text.substr(ts_end + 1, stream_end - ts_end - 1);
  if (stream == "stderr") {
    h.is_stderr = true;
  } else if (stream != "stdout") {
    return std::nullopt;
  }
  size_t tags_start = stream_end + 1;
  size_t tags_end = text.find(' ', tags_start);
  std::string_view tags =
      text.substr(tags_start, tags_end == std::string_view::npos ? std::string_view::npos
                                                                 : tags_end - tags_start);
  std::string_view first = tags.substr(0, tags.find(':'));
  if (first == "P") {
    h.partial = true;
  } else if (first != "F") {
    return std::nullopt;
  }
  h.content_offset = tags_end == std::string_view::npos ? text.size() : tags_end + 1;
  if (h.content_offset > kMaxCriHeaderBytes) return std::nullopt;
  return h;
}

}  // namespace gantry::edge
