#include "common/base/backoff.h"

#include <algorithm>

namespace gantry::common {

namespace {
// Past 2^40 times any sane base the ceiling is the cap anyway; bounding the count keeps the
// doubling loop short and the counter from overflowing.
constexpr int kMaxAttempt = 40;
}  // namespace

Backoff::Backoff(BackoffOptions options, const Clock& clock, Random& random)
    : options_(options), clock_(clock), random_(random) {
  if (options_.base.count() < 1) options_.base = std::chrono::milliseconds(1);
  if (options_.cap < options_.base) options_.cap = options_.base;
}

std::chrono::milliseconds Backoff::ceiling() const {
  const int64_t cap = options_.cap.count();
  int64_t c = options_.base.count();
  for (int i = 0; i < attempt_ && c < cap; ++i) c *= 2;  // c <= cap before doubling: no overflow
  return std::chrono::milliseconds(std::min(c, cap));
}

std::chrono::milliseconds Backoff::next_delay() {
  auto delay =
      std::chrono::milliseconds(random_.uniform(0, static_cast<uint64_t>(ceiling().count())));
  if (attempt_ < kMaxAttempt) ++attempt_;
  if (retry_after_) {
    const int64_t r = retry_after_->count();
    const auto floor =
        std::chrono::milliseconds(r + static_cast<int64_t>(random_.uniform(0, r / 2)));
    delay = std::max(delay, floor);
    retry_after_.reset();
  }
  return delay;
}

void Backoff::on_connected() {
  connected_at_ = clock_.steady_now();
}

void Backoff::on_disconnected() {
  if (connected_at_ && clock_.steady_now() - *connected_at_ > options_.cap) attempt_ = 0;
  connected_at_.reset();
}

void Backoff::honour_retry_after(std::chrono::milliseconds retry_after) {
  if (retry_after.count() <= 0) return;
  // Two 503s before the next attempt: the longer wait wins.
  retry_after_ = retry_after_ ? std::max(*retry_after_, retry_after) : retry_after;
}

void Backoff::reset() {
  attempt_ = 0;
  retry_after_.reset();
}

}  // namespace gantry::common
