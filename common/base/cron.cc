#include "common/base/cron.h"

#include <algorithm>
#include <cctype>
#include <ctime>
#include <vector>

namespace gantry::common {

namespace {

constexpr const char* kMonths[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                   "jul", "aug", "sep", "oct", "nov", "dec"};
constexpr const char* kDays[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat"};

std::vector<std::string> split(std::string_view text, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}

struct FieldSpec {
  const char* name;
  int min, max;
  const char* const* names;  // min..: names[i] is min + i (months from 1, days from 0)
  int name_count;
};

Result<int> value_of(const std::string& s, const FieldSpec& f) {
  std::string lower;
  for (char c : s) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  for (int i = 0; i < f.name_count; ++i)
    if (lower == f.names[i]) return f.min + i;
  if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 4)
    return make_error(Code::kInvalidArgument, "failed to parse int from {}", s);
  return std::stoi(s);
}

// One field into `bits` (indexed by value); returns whether it was `*` or `?`.
Result<bool> parse_field(const std::string& text, const FieldSpec& f, std::vector<bool>& bits) {
  bool star = false;
  for (const std::string& part : split(text, ',')) {
    auto slash = part.find('/');
    std::string range = part.substr(0, slash);
    int step = 1;
    if (slash != std::string::npos) {
      std::string s = part.substr(slash + 1);
      if (s.empty() || s.find_first_not_of("0123456789") != std::string::npos || s.size() > 4)
        return make_error(Code::kInvalidArgument, "failed to parse int from {}", s);
      step = std::stoi(s);
      if (step <= 0)
        return make_error(Code::kInvalidArgument, "step of range should be a positive number: {}",
                          part);
    }
    int lo = f.min, hi = f.max;
    if (range == "*" || range == "?") {
      if (slash == std::string::npos) star = true;
    } else {
      auto dash = range.find('-');
      GANTRY_ASSIGN_OR_RETURN(lo, value_of(range.substr(0, dash), f));
      if (dash != std::string::npos) {
        GANTRY_ASSIGN_OR_RETURN(hi, value_of(range.substr(dash + 1), f));
      } else {
        hi = slash == std::string::npos ? lo : f.max;
      }
    }
    if (lo < f.min || hi > f.max)
      return make_error(Code::kInvalidArgument, "{} out of range ({}-{}): {}", f.name, f.min, f.max,
                        part);
    if (lo > hi)
      return make_error(Code::kInvalidArgument,
                        "beginning of range ({}) beyond end of range ({}): {}", lo, hi, part);
    for (int v = lo; v <= hi; v += step) bits[static_cast<size_t>(v)] = true;
  }
  return star;
}

std::tm utc(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return tm;
}

}  // namespace

Result<CronSchedule> CronSchedule::parse(std::string_view input) {
  std::string text(input);
  static const std::pair<const char*, const char*> kMacros[] = {
      {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
      {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
      {"@hourly", "0 * * * *"}};
  std::string trimmed;
  {
    auto b = text.find_first_not_of(" \t");
    auto e = text.find_last_not_of(" \t");
    trimmed = b == std::string::npos ? "" : text.substr(b, e - b + 1);
  }
  if (!trimmed.empty() && trimmed[0] == '@') {
    bool found = false;
    for (const auto& [macro, expansion] : kMacros)
      if (trimmed == macro) {
        trimmed = expansion;
        found = true;
      }
    if (!found) return make_error(Code::kInvalidArgument, "unrecognized descriptor: {}", trimmed);
  }
  std::vector<std::string> fields;
  {
    std::string cur;
    for (char c : trimmed) {
      if (c == ' ' || c == '\t') {
        if (!cur.empty()) fields.push_back(cur);
        cur.clear();
      } else {
        cur.push_back(c);
      }
    }
    if (!cur.empty()) fields.push_back(cur);
  }
  if (fields.size() != 5)
    return make_error(Code::kInvalidArgument, "expected exactly 5 fields, found {}: {}",
                      fields.size(), trimmed);
  const FieldSpec specs[5] = {{"minute", 0, 59, nullptr, 0},
                              {"hour", 0, 23, nullptr, 0},
                              {"day of month", 1, 31, nullptr, 0},
                              {"month", 1, 12, kMonths, 12},
                              {"day of week", 0, 7, kDays, 7}};  // 7 is Sunday too
  CronSchedule s;
  bool stars[5] = {};
  std::vector<bool> bits[5];
  for (int i = 0; i < 5; ++i) {
    bits[i].assign(static_cast<size_t>(specs[i].max + 2), false);
    GANTRY_ASSIGN_OR_RETURN(stars[i],
                            parse_field(fields[static_cast<size_t>(i)], specs[i], bits[i]));
  }
  for (size_t v = 0; v < 60; ++v) s.minutes_[v] = bits[0][v];
  for (size_t v = 0; v < 24; ++v) s.hours_[v] = bits[1][v];
  for (size_t v = 1; v < 32; ++v) s.days_[v] = bits[2][v];
  for (size_t v = 1; v < 13; ++v) s.months_[v] = bits[3][v];
  for (size_t v = 0; v < 7; ++v) s.weekdays_[v] = bits[4][v];
  if (bits[4][7]) s.weekdays_[0] = true;
  s.days_star_ = stars[2];
  s.weekdays_star_ = stars[4];
  return s;
}

bool CronSchedule::matches(int64_t unix_seconds) const {
  std::tm tm = utc(unix_seconds);
  if (!minutes_[static_cast<size_t>(tm.tm_min)] || !hours_[static_cast<size_t>(tm.tm_hour)] ||
      !months_[static_cast<size_t>(tm.tm_mon + 1)])
    return false;
  bool dom = days_[static_cast<size_t>(tm.tm_mday)];
  bool dow = weekdays_[static_cast<size_t>(tm.tm_wday)];
  if (days_star_ || weekdays_star_) return dom && dow;
  return dom || dow;
}

std::optional<int64_t> CronSchedule::next_after(int64_t unix_seconds,
                                                int64_t horizon_seconds) const {
  int64_t t = (unix_seconds / 60 + 1) * 60;
  for (int64_t end = unix_seconds + horizon_seconds; t <= end;) {
    std::tm tm = utc(t);
    // Skip whole hours and days that cannot match.
    if (!months_[static_cast<size_t>(tm.tm_mon + 1)] ||
        !(days_star_ || weekdays_star_
              ? days_[static_cast<size_t>(tm.tm_mday)] && weekdays_[static_cast<size_t>(tm.tm_wday)]
              : days_[static_cast<size_t>(tm.tm_mday)] ||
                    weekdays_[static_cast<size_t>(tm.tm_wday)])) {
      t += 86400 - (tm.tm_hour * 3600 + tm.tm_min * 60);
      continue;
    }
    if (!hours_[static_cast<size_t>(tm.tm_hour)]) {
      t += 3600 - tm.tm_min * 60;
      continue;
    }
    if (minutes_[static_cast<size_t>(tm.tm_min)]) return t;
    t += 60;
  }
  return std::nullopt;
}

std::optional<int64_t> CronSchedule::last_between(int64_t since, int64_t unix_seconds) const {
  // Forward from `since`: each step skips what cannot match, so even a yearly schedule over
  // years is a few thousand steps.
  std::optional<int64_t> last;
  int64_t t = since;
  for (;;) {
    auto n = next_after(t, std::max<int64_t>(0, unix_seconds - t));
    if (!n || *n > unix_seconds) return last;
    last = n;
    t = *n;
  }
}

}  // namespace gantry::common
