#include "common/base/clock.h"

#include <cassert>
#include <limits>

namespace gantry::common {

std::chrono::steady_clock::time_point SystemClock::steady_now() const {
  return std::chrono::steady_clock::now();
}

std::chrono::system_clock::time_point SystemClock::system_now() const {
  return std::chrono::system_clock::now();
}

Clock& system_clock() {
  static SystemClock clock;
  return clock;
}

namespace {
// 2024-01-01T00:00:00Z: a fixed, recognisable start for test timestamps.
constexpr std::chrono::seconds kManualSystemStart{1704067200};
}  // namespace

ManualClock::ManualClock()
    : ManualClock(std::chrono::system_clock::time_point(kManualSystemStart)) {}

ManualClock::ManualClock(std::chrono::system_clock::time_point system_start)
    // Not zero, so that "time_point{}" used as "never" stays distinguishable from "now".
    : steady_(std::chrono::steady_clock::time_point(std::chrono::hours(1))),
      system_(system_start) {}

std::chrono::steady_clock::time_point ManualClock::steady_now() const {
  std::lock_guard lock(mu_);
  return steady_;
}

std::chrono::system_clock::time_point ManualClock::system_now() const {
  std::lock_guard lock(mu_);
  return system_;
}

void ManualClock::advance(std::chrono::steady_clock::duration d) {
  assert(d.count() >= 0 && "clocks do not go backwards");
  std::lock_guard lock(mu_);
  steady_ += d;
  system_ += std::chrono::duration_cast<std::chrono::system_clock::duration>(d);
}

void ManualClock::set_steady_now(std::chrono::steady_clock::time_point t) {
  std::lock_guard lock(mu_);
  steady_ = t;
}

void ManualClock::set_system_now(std::chrono::system_clock::time_point t) {
  std::lock_guard lock(mu_);
  system_ = t;
}

double Random::uniform01() {
  // The top 53 bits fill a double's mantissa exactly.
  return static_cast<double>(next() >> 11) * 0x1.0p-53;
}

uint64_t Random::uniform(uint64_t lo, uint64_t hi) {
  assert(lo <= hi);
  const uint64_t span = hi - lo;
  if (span == std::numeric_limits<uint64_t>::max()) return next();
  const uint64_t n = span + 1;
  // Lemire's multiply-and-shift, rejecting the few products that would favour some values.
  unsigned __int128 product = static_cast<unsigned __int128>(next()) * n;
  uint64_t low = static_cast<uint64_t>(product);
  if (low < n) {
    const uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      product = static_cast<unsigned __int128>(next()) * n;
      low = static_cast<uint64_t>(product);
    }
  }
  return lo + static_cast<uint64_t>(product >> 64);
}

SystemRandom::SystemRandom() {
  std::random_device device;
  std::seed_seq seed{device(), device(), device(), device(),
                     device(), device(), device(), device()};
  engine_.seed(seed);
}

uint64_t SystemRandom::next() {
  std::lock_guard lock(mu_);
  return engine_();
}

uint64_t SeededRandom::next() {
  std::lock_guard lock(mu_);
  // splitmix64 (Steele, Lea, Flood 2014).
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace gantry::common
