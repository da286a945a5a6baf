#include "common/base/logging.h"

#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>

namespace gantry::common {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

TEST_CASE("json logging writes one parseable object per line with time, level, logger, msg") {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto logger = make_logger({.level = "info", .format = "json"}, "edgecore", sink);
  REQUIRE(logger.ok());
  (*logger)->info("connected to {}", "cloud:10000");
  (*logger)->warn("quote \" backslash \\ newline \n tab \t bell \x07 bad utf8 \xff end");
  (*logger)->debug("below the level: not written");
  (*logger)->flush();

  auto lines = lines_of(out.str());
  REQUIRE(lines.size() == 2);
  auto first = nlohmann::json::parse(lines[0]);
  CHECK(first["level"] == "info");
  CHECK(first["logger"] == "edgecore");
  CHECK(first["msg"] == "connected to cloud:10000");
  const std::string time = first["time"];
  // 2024-01-01T12:00:00.123Z
  CHECK(time.size() == 24);
  CHECK(time[10] == 'T');
  CHECK(time.back() == 'Z');

  auto second = nlohmann::json::parse(lines[1]);
  CHECK(second["level"] == "warn");
  CHECK(second["msg"] ==
        "quote \" backslash \\ newline \n tab \t bell \x07 bad utf8 \xef\xbf\xbd end");
}

TEST_CASE("text logging writes the level, the program and the message") {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto logger = make_logger({.level = "debug", .format = "text"}, "cloudcore", sink);
  REQUIRE(logger.ok());
  (*logger)->debug("hello {}", 42);
  (*logger)->flush();
  CHECK_THAT(out.str(), Catch::EndsWith("Z debug [cloudcore] hello 42\n"));
}

TEST_CASE("a bad log level or format names the value and the allowed ones") {
  auto s = setup_logging({.level = "verbose", .format = "text"}, "x");
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK(s.message() ==
        "log level 'verbose' is not one of: trace, debug, info, warn, error, critical, off");
  s = setup_logging({.level = "info", .format = "xml"}, "x");
  CHECK(s.message() == "log format 'xml' is not one of: text, json");
}

TEST_CASE("setup_logging installs the default logger under the program's name") {
  REQUIRE(setup_logging({.level = "warn", .format = "json"}, "gantry-test").ok());
  CHECK(spdlog::default_logger()->name() == "gantry-test");
  CHECK(spdlog::default_logger()->level() == spdlog::level::warn);
}

TEST_CASE("the log section binds level and format from a config file") {
  LogConfig log;
  Status s = load_config_string("log: {level: error, format: json}\n", "x.yaml",
                                [&](ConfigNode& n) { n.section("log", &log); });
  REQUIRE(s.ok());
  CHECK(log.level == "error");
  CHECK(log.format == "json");
}

}  // namespace
}  // namespace gantry::common
