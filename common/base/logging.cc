#include "common/base/logging.h"

#include <fmt/format.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <time.h>

#include <array>
#include <chrono>

namespace gantry::common {

namespace {

struct LevelName {
  std::string_view name;
  spdlog::level::level_enum level;
};
constexpr std::array<LevelName, 7> kLevels = {{
    {"trace", spdlog::level::trace},
    {"debug", spdlog::level::debug},
    {"info", spdlog::level::info},
    {"warn", spdlog::level::warn},
    {"error", spdlog::level::err},
    {"critical", spdlog::level::critical},
    {"off", spdlog::level::off},
}};
constexpr std::string_view kAllowedLevels = "trace, debug, info, warn, error, critical, off";

std::string_view level_name(spdlog::level::level_enum level) {
  for (const LevelName& l : kLevels) {
    if (l.level == level) return l.name;
  }
  return "unknown";
}

void append(spdlog::memory_buf_t& dest, std::string_view s) {
  dest.append(s.data(), s.data() + s.size());
}

// UTC, millisecond precision, RFC 3339.
void append_time(spdlog::memory_buf_t& dest, std::chrono::system_clock::time_point t) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch());
  const time_t secs = static_cast<time_t>(std::chrono::floor<std::chrono::seconds>(ms).count());
  const int64_t millis = ms.count() - static_cast<int64_t>(secs) * 1000;
  struct tm tm {};
  gmtime_r(&secs, &tm);
  fmt::format_to(std::back_inserter(dest), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                 millis);
}

// Length of the valid UTF-8 sequence at the start of `s`, or 0 if it is not valid.
size_t utf8_sequence_length(std::string_view s) {
  const auto b = [&](size_t i) { return static_cast<unsigned char>(s[i]); };
  const auto cont = [&](size_t i) { return i < s.size() && (b(i) & 0xC0) == 0x80; };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return cont(1) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xE0 && b(1) < 0xA0) return 0;   // overlong
    if (c == 0xED && b(1) >= 0xA0) return 0;  // surrogates
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xF0 && b(1) < 0x90) return 0;   // overlong
    if (c == 0xF4 && b(1) >= 0x90) return 0;  // past U+10FFFF
    return 4;
  }
  return 0;
}

void append_json_string(spdlog::memory_buf_t& dest, std::string_view s) {
  dest.push_back('"');
  while (!s.empty()) {
    const unsigned char c = static_cast<unsigned char>(s[0]);
    size_t n = 1;
    switch (c) {
      case '"':
        append(dest, "\\\"");
        break;
      case '\\':
        append(dest, "\\\\");
        break;
      case '\n':
        append(dest, "\\n");
        break;
      case '\r':
        append(dest, "\\r");
        break;
      case '\t':
        append(dest, "\\t");
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          fmt::format_to(std::back_inserter(dest), "\\u{:04x}", c);
        } else if ((n = utf8_sequence_length(s)) == 0) {
          append(dest, "\\ufffd");
          n = 1;
        } else {
          append(dest, s.substr(0, n));
        }
    }
    s.remove_prefix(n);
  }
  dest.push_back('"');
}

class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
    append(dest, "{\"time\":\"");
    append_time(dest, msg.time);
    append(dest, "\",\"level\":\"");
    append(dest, level_name(msg.level));
    append(dest, "\",\"logger\":");
    append_json_string(dest, std::string_view(msg.logger_name.data(), msg.logger_name.size()));
    append(dest, ",\"msg\":");
    append_json_string(dest, std::string_view(msg.payload.data(), msg.payload.size()));
    append(dest, "}\n");
  }
  std::unique_ptr<spdlog::formatter> clone() const override {
    return std::make_unique<JsonFormatter>();
  }
};

}  // namespace

void bind_config(ConfigNode& node, LogConfig& config) {
  node.one_of("level", &config.level,
              {"trace", "debug", "info", "warn", "error", "critical", "off"})
      .one_of("format", &config.format, {"text", "json"});
}

Status validate_log_config(const LogConfig& config) {
  bool known = false;
  for (const LevelName& l : kLevels) known = known || l.name == config.level;
  if (!known) {
    return make_error(Code::kInvalidArgument, "log level '{}' is not one of: {}", config.level,
                      kAllowedLevels);
  }
  if (config.format != "text" && config.format != "json") {
    return make_error(Code::kInvalidArgument, "log format '{}' is not one of: text, json",
                      config.format);
  }
  return ok_status();
}

Result<std::shared_ptr<spdlog::logger>> make_logger(const LogConfig& config,
                                                    std::string_view program,
                                                    spdlog::sink_ptr sink) {
  GANTRY_RETURN_IF_ERROR(validate_log_config(config));
  auto logger = std::make_shared<spdlog::logger>(std::string(program), std::move(sink));
  if (config.format == "json") {
    logger->set_formatter(std::make_unique<JsonFormatter>());
  } else {
    logger->set_formatter(std::make_unique<spdlog::pattern_formatter>(
        "%Y-%m-%dT%H:%M:%S.%eZ %^%l%$ [%n] %v", spdlog::pattern_time_type::utc));
  }
  for (const LevelName& l : kLevels) {
    if (l.name == config.level) logger->set_level(l.level);
  }
  // Warnings and errors reach the sink at once, even through a buffering sink.
  logger->flush_on(spdlog::level::warn);
  return logger;
}

Status setup_logging(const LogConfig& config, std::string_view program) {
  GANTRY_RETURN_IF_ERROR(validate_log_config(config));
  spdlog::sink_ptr sink;
  if (config.format == "json") {
    sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
  } else {
    sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  }
  GANTRY_ASSIGN_OR_RETURN(auto logger, make_logger(config, program, std::move(sink)));
  spdlog::set_default_logger(std::move(logger));
  return ok_status();
}

}  // namespace gantry::common
