// Time and randomness as injected dependencies, so that timing and jitter are testable.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>

namespace gantry::common {

class Clock {
 public:
  virtual ~Clock() = default;
  // For intervals and deadlines: never jumps.
  virtual std::chrono::steady_clock::time_point steady_now() const = 0;
  // For timestamps shown to people or stored (certificate validity, status times).
  virtual std::chrono::system_clock::time_point system_now() const = 0;
};

// The real clocks.
class SystemClock final : public Clock {
 public:
  std::chrono::steady_clock::time_point steady_now() const override;
  std::chrono::system_clock::time_point system_now() const override;
};

// A process-wide SystemClock; it holds no state, so sharing it is harmless.
Clock& system_clock();

// A clock that only moves when told to. Thread-safe.
class ManualClock final : public Clock {
 public:
  // Starts at an arbitrary steady point and at `system_start` (default 2024-01-01T00:00:00Z).
  ManualClock();
  explicit ManualClock(std::chrono::system_clock::time_point system_start);

  std::chrono::steady_clock::time_point steady_now() const override;
  std::chrono::system_clock::time_point system_now() const override;

  // Moves both clocks forward by `d` (which must not be negative).
  void advance(std::chrono::steady_clock::duration d);
  void set_steady_now(std::chrono::steady_clock::time_point t);
  void set_system_now(std::chrono::system_clock::time_point t);

 private:
  mutable std::mutex mu_;
  std::chrono::steady_clock::time_point steady_;
  std::chrono::system_clock::time_point system_;
};

// A source of uniformly distributed random numbers (jitter, ids).
class Random {
 public:
  virtual ~Random() = default;
  // 64 uniformly distributed bits.
  virtual uint64_t next() = 0;

  // Uniform in [0, 1).
  double uniform01();
  // Uniform in [lo, hi], both inclusive, without modulo bias. Requires lo <= hi.
  uint64_t uniform(uint64_t lo, uint64_t hi);
};

// mt19937_64 seeded from std::random_device. Thread-safe.
class SystemRandom final : public Random {
 public:
  SystemRandom();
  uint64_t next() override;

 private:
  std::mutex mu_;
  std::mt19937_64 engine_;
};

// A deterministic sequence (splitmix64) from a seed: the same seed gives the same numbers on
// every platform. For tests and simulations. Thread-safe.
class SeededRandom final : public Random {
 public:
  explicit SeededRandom(uint64_t seed) : state_(seed) {}
  uint64_t next() override;

 private:
  std::mutex mu_;
  uint64_t state_;
};

}  // namespace gantry::common
