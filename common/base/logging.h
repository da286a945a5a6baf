// Process logging on spdlog: human-readable text or one JSON object per line, on stderr.
#pragma once

#include <spdlog/logger.h>

#include <memory>
#include <string>
#include <string_view>

#include "common/base/config.h"
#include "common/base/status.h"

namespace gantry::common {

struct LogConfig {
  std::string level = "info";   // trace, debug, info, warn, error, critical, off
  std::string format = "text";  // text, json
};

// Binds `level` and `format` of a config section: `root.section("log", &cfg.log)`.
void bind_config(ConfigNode& node, LogConfig& config);

// Checks the level and format, naming the bad value and the allowed ones.
Status validate_log_config(const LogConfig& config);

// A logger named `program` writing to `sink` in the configured format:
//   text: 2024-01-01T12:00:00.123Z info [edgecore] connected to cloudcore
//   json: {"time":"2024-01-01T12:00:00.123Z","level":"info","logger":"edgecore","msg":"..."}
// Times are UTC. JSON strings are escaped; invalid UTF-8 becomes U+FFFD.
Result<std::shared_ptr<spdlog::logger>> make_logger(const LogConfig& config,
                                                    std::string_view program,
                                                    spdlog::sink_ptr sink);

// make_logger() on stderr (coloured levels in text format when stderr is a terminal), installed
// as spdlog's default logger so that spdlog::info(...) etc. use it.
Status setup_logging(const LogConfig& config, std::string_view program);

}  // namespace gantry::common
