// Writing CRI-format log files for the log tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

#include "edgecore/logs/cri_log.h"

namespace gantry::edge::test {

// One CRI record for second `sec` after 2024-01-01T00:00:00Z.
inline std::string cri(int sec, const std::string& content, bool partial = false,
                       const char* stream = "stdout") {
  int64_t base = 1704067200LL * 1'000'000'000LL;
  return format_rfc3339_nanos(base + sec * 1'000'000'000LL) + " " + stream +
         (partial ? " P " : " F ") + content + "\n";
}

inline void append(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::app | std::ios::binary) << text;
}

}  // namespace gantry::edge::test
