#include "common/base/backoff.h"

#include <array>
#include <catch2/catch.hpp>
#include <map>
#include <set>

namespace gantry::common {
namespace {

using namespace std::chrono_literals;

// Always returns the largest value: every delay is its window's upper end.
class MaxRandom final : public Random {
 public:
  uint64_t next() override { return ~uint64_t{0}; }
};

TEST_CASE("back-off delays stay within [0, cap] for every attempt") {
  ManualClock clock;
  SeededRandom random(1);
  Backoff backoff({.base = 1s, .cap = 60s}, clock, random);
  for (int i = 0; i < 1000; ++i) {
    auto d = backoff.next_delay();
    REQUIRE(d >= 0ms);
    REQUIRE(d <= 60s);
  }
}

TEST_CASE("the back-off window doubles from the base up to the cap") {
  ManualClock clock;
  MaxRandom random;
  Backoff backoff({.base = 1s, .cap = 60s}, clock, random);
  const std::array<std::chrono::milliseconds, 9> expected = {1s,  2s,  4s,  8s, 16s,
                                                             32s, 60s, 60s, 60s};
  for (auto e : expected) CHECK(backoff.next_delay() == e);
}

TEST_CASE("back-off delays at the top attempt spread over the whole window") {
  ManualClock clock;
  SeededRandom random(2024);
  Backoff backoff({}, clock, random);
  for (int i = 0; i < 10; ++i) (void)backoff.next_delay();  // reach the cap

  std::array<int, 10> deciles{};
  const int kDraws = 10'000;
  for (int i = 0; i < kDraws; ++i) {
    auto d = backoff.next_delay();
    REQUIRE(d <= 60s);
    ++deciles[std::min<size_t>(9, static_cast<size_t>(d.count() / 6000))];
  }
  for (int count : deciles) {
    // ~1000 each; anything between 800 and 1200 is a flat distribution.
    CHECK(count > 800);
    CHECK(count < 1200);
  }
}

TEST_CASE("the default back-off is base 1s and cap 60s") {
  ManualClock clock;
  MaxRandom random;
  Backoff backoff({}, clock, random);
  CHECK(backoff.next_delay() == 1s);
  CHECK(backoff.options().cap == 60s);
}

TEST_CASE("a connection that stayed up longer than the cap resets the back-off") {
  ManualClock clock;
  MaxRandom random;
  Backoff backoff({.base = 1s, .cap = 60s}, clock, random);
  for (int i = 0; i < 8; ++i) (void)backoff.next_delay();
  backoff.on_connected();
  clock.advance(61s);
  backoff.on_disconnected();
  CHECK(backoff.attempt() == 0);
  CHECK(backoff.next_delay() == 1s);
}

TEST_CASE("a connection that dropped within the cap keeps the back-off growing") {
  ManualClock clock;
  MaxRandom random;
  Backoff backoff({.base = 1s, .cap = 60s}, clock, random);
  for (int i = 0; i < 3; ++i) (void)backoff.next_delay();  // 1s, 2s, 4s
  backoff.on_connected();
  clock.advance(60s);  // exactly the cap is not "longer than the cap"
  backoff.on_disconnected();
  CHECK(backoff.attempt() == 3);
  CHECK(backoff.next_delay() == 8s);

  // A disconnect without a recorded connection does not reset either.
  clock.advance(1h);
  backoff.on_disconnected();
  CHECK(backoff.next_delay() == 16s);
}

TEST_CASE("the next delay after Retry-After is at least Retry-After and at most 1.5 times it") {
  ManualClock clock;
  SeededRandom random(5);
  Backoff backoff({.base = 1s, .cap = 60s}, clock, random);
  for (int i = 0; i < 1000; ++i) {
    backoff.reset();
    backoff.honour_retry_after(10s);
    auto d = backoff.next_delay();
    REQUIRE(d >= 10s);
    REQUIRE(d <= 15s);
  }
}

TEST_CASE("Retry-After applies to one delay only") {
  ManualClock clock;
  MaxRandom random;
  Backoff backoff({.base = 1s, .cap = 60s}, clock, random);
  backoff.honour_retry_after(10s);
  CHECK(backoff.next_delay() == 15s);
  CHECK(backoff.next_delay() == 2s);  // back to the back-off schedule (attempt 1)
}

TEST_CASE("Retry-After longer than the cap is still honoured") {
  ManualClock clock;
  SeededRandom random(9);
  Backoff backoff({.base = 1s, .cap = 60s}, clock, random);
  backoff.honour_retry_after(120s);
  CHECK(backoff.next_delay() >= 120s);
}

TEST_CASE("a fleet told the same Retry-After does not come back in the same second") {
  ManualClock clock;
  std::map<int64_t, int> per_second;
  for (uint64_t node = 0; node < 1000; ++node) {
    SeededRandom random(node);
    Backoff backoff({}, clock, random);
    backoff.honour_retry_after(10s);
    auto d = backoff.next_delay();
    REQUIRE(d >= 10s);
    REQUIRE(d <= 15s);
    ++per_second[std::chrono::duration_cast<std::chrono::seconds>(d).count()];
  }
  // Spread over 10..15 s: each of the first five seconds gets about a fifth of the fleet.
  for (int64_t s = 10; s < 15; ++s) CHECK(per_second[s] > 120);
}

}  // namespace
}  // namespace gantry::common
