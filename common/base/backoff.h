// Exponential back-off with full jitter for reconnect loops (DESIGN.md §4 "Reconnect").
#pragma once

#include <chrono>
#include <optional>

#include "common/base/clock.h"

namespace gantry::common {

struct BackoffOptions {
  std::chrono::milliseconds base{std::chrono::seconds(1)};
  std::chrono::milliseconds cap{std::chrono::seconds(60)};
};

// Not thread-safe: one Backoff per reconnect loop.
//
//   delay(attempt) = uniform(0, min(cap, base * 2^attempt))     ("full jitter")
//
// Full jitter spreads a fleet that lost its link at the same instant over the whole window
// instead of bringing it back in synchronised waves.
//
// The attempt count is reset only when a connection stayed up longer than `cap`: a peer that
// accepts and then drops us straight away must not pull us back to one-second retries.
//
// After `honour_retry_after(r)` the next delay is max(backoff delay, r + uniform(0, r/2)): the
// server's Retry-After is a floor, and the added jitter of up to half of it spreads a fleet told
// the same Retry-After over r..1.5r instead of all returning in the same second. Such a delay may
// exceed `cap`: the server asked for it.
class Backoff {
 public:
  Backoff(BackoffOptions options, const Clock& clock, Random& random);

  // The time to wait before the next attempt; each call counts one attempt.
  std::chrono::milliseconds next_delay();

  // A connection came up (call when the session is established, not when the TCP connect is).
  void on_connected();
  // The connection went down: resets the attempt count if it had been up longer than `cap`.
  void on_disconnected();

  // The server answered "Retry-After: <retry_after>": applies to the next delay only.
  void honour_retry_after(std::chrono::milliseconds retry_after);

  // Forgets all attempts (e.g. after an operator-triggered reconnect).
  void reset();

  int attempt() const { return attempt_; }
  const BackoffOptions& options() const { return options_; }

 private:
  // min(cap, base * 2^attempt_), without overflow.
  std::chrono::milliseconds ceiling() const;

  BackoffOptions options_;
  const Clock& clock_;
  Random& random_;
  int attempt_ = 0;
  std::optional<std::chrono::steady_clock::time_point> connected_at_;
  std::optional<std::chrono::milliseconds> retry_after_;
};

}  // namespace gantry::common
