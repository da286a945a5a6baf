#include "common/base/uid.h"

#include <fmt/format.h>

#include <cstdint>
#include <random>

namespace gantry::common {

std::string new_uid() {
  // One generator per thread: no lock, and no shared mutable state between threads.
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng();
  uint64_t b = rng();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;  // variant 1 (RFC 4122)
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xffff,
                     b >> 48, b & 0xffffffffffffULL);
}

}  // namespace gantry::common
