// Cron schedules as Kubernetes' CronJob reads them (robfig/cron's standard parser): five fields
// "minute hour day-of-month month day-of-week" with `*`, `?`, lists, ranges, steps and month/day
// names, or one of @yearly/@annually, @monthly, @weekly, @daily/@midnight, @hourly. When both the
// day of month and the day of week are restricted, a day matching either matches (as cron does).
// Times are Unix seconds, in UTC.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace gantry::common {

class CronSchedule {
 public:
  // kInvalidArgument with what is wrong ("expected exactly 5 fields, found 4: ...").
  static Result<CronSchedule> parse(std::string_view text);

  // Whether the minute starting at `unix_seconds` (rounded down to the minute) is scheduled.
  bool matches(int64_t unix_seconds) const;
  // The first scheduled minute strictly after `unix_seconds`; nullopt when none comes within
  // `horizon_seconds` (a schedule such as "0 0 30 2 *" never comes).
  std::optional<int64_t> next_after(int64_t unix_seconds,
                                    int64_t horizon_seconds = 5 * 366 * 86400) const;
  // The last scheduled minute at or before `unix_seconds` and strictly after `since`.
  std::optional<int64_t> last_between(int64_t since, int64_t unix_seconds) const;

 private:
  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;    // 1..31
  std::bitset<13> months_;  // 1..12
  std::bitset<7> weekdays_;
  bool days_star_ = false;
  bool weekdays_star_ = false;
};

}  // namespace gantry::common
