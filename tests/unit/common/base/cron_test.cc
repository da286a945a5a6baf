// Cron schedules as Kubernetes' CronJob reads them: fields, names, steps, macros, the day-of-month
// / day-of-week rule, and the next and last scheduled minutes.
#include "common/base/cron.h"

#include <catch2/catch.hpp>

namespace gantry::common {
namespace {

// 2027-01-15T08:00:00Z, a Friday.
constexpr int64_t kFriday8am = 1'800'000'000;

TEST_CASE("cron schedules parse as Kubernetes parses them, and bad ones say why", "[base][cron]") {
  for (const char* ok : {"* * * * *", "*/5 * * * *", "0 0 1 1 *", "0 8 * * MON-FRI",
                         "15,45 */2 1-10/3 jan,Jul ?", "@hourly", "@daily", "@weekly", "@monthly",
                         "@yearly", "@annually", "@midnight", "0 0 * * 7", "5/15 * * * *"})
    CHECK(CronSchedule::parse(ok).ok());
  struct Bad {
    const char* text;
    const char* message;
  };
  for (const Bad& b :
       std::initializer_list<Bad>{{"* * * *", "expected exactly 5 fields, found 4"},
                                  {"60 * * * *", "minute out of range (0-59)"},
                                  {"* 24 * * *", "hour out of range (0-23)"},
                                  {"* * 0 * *", "day of month out of range (1-31)"},
                                  {"* * * 13 *", "month out of range (1-12)"},
                                  {"* * * * 8", "day of week out of range (0-7)"},
                                  {"*/0 * * * *", "step of range should be a positive number"},
                                  {"5-2 * * * *", "beginning of range (5) beyond end of range (2)"},
                                  {"x * * * *", "failed to parse int from x"},
                                  {"@every 5m", "unrecognized descriptor"}}) {
    auto s = CronSchedule::parse(b.text);
    INFO(b.text);
    REQUIRE_FALSE(s.ok());
    CHECK(s.status().message().find(b.message) != std::string::npos);
  }
}

TEST_CASE("the next and last scheduled minutes", "[base][cron]") {
  struct Row {
    const char* schedule;
    int64_t after;
    int64_t next;
  };
  for (const Row& r : std::initializer_list<Row>{
           {"* * * * *", kFriday8am, kFriday8am + 60},
           {"*/5 * * * *", kFriday8am + 1, kFriday8am + 300},
           {"30 8 * * *", kFriday8am, kFriday8am + 1800},
           {"0 9 * * MON", kFriday8am, kFriday8am + 3 * 86400 + 3600},    // Monday 09:00
           {"0 0 * * 0", kFriday8am, kFriday8am + 2 * 86400 - 8 * 3600},  // Sunday 00:00
           {"0 0 * * 7", kFriday8am, kFriday8am + 2 * 86400 - 8 * 3600},  // 7 is Sunday
           // Day of month and day of week both restricted: either matches (Saturday the 16th).
           {"0 0 20 * SAT", kFriday8am, kFriday8am + 86400 - 8 * 3600},
           {"@monthly", kFriday8am, 1'801'440'000},  // 2027-02-01T00:00:00Z
       }) {
    auto s = CronSchedule::parse(r.schedule);
    REQUIRE(s.ok());
    INFO(r.schedule);
    CHECK(s->next_after(r.after) == r.next);
    CHECK(s->matches(r.next));
    CHECK(s->last_between(r.after, r.next) == r.next);
    CHECK_FALSE(s->last_between(r.after, r.next - 1).has_value());
  }
  auto never = CronSchedule::parse("0 0 30 2 *");
  REQUIRE(never.ok());
  CHECK_FALSE(never->next_after(kFriday8am).has_value());
  // The last of many missed minutes is the most recent one.
  auto every5 = CronSchedule::parse("*/5 * * * *");
  REQUIRE(every5.ok());
  CHECK(every5->last_between(kFriday8am, kFriday8am + 3600 + 59) == kFriday8am + 3600);
}

}  // namespace
}  // namespace gantry::common
