#include "common/metrics/metrics.h"

#include <sys/wait.h>

#include <array>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <thread>

#include "tests/support/test_support.h"

namespace gantry::common {
namespace {

// A small registry with every kind of metric and label values that need escaping.
void fill_sample_registry(MetricsRegistry& registry) {
  auto requests = registry
                      .counter("gantry_requests_total", "Requests handled.\nBy code \\ method.",
                               {"code", "method"})
                      .value();
  requests.with({"500", "PO\"ST\\\n"}).inc();
  requests.with({"200", "GET"}).inc(3);
  registry.counter("gantry_errors_total", "Errors seen.").value();
  registry.counter("gantry_unused_total", "Never touched.", {"x"}).value();
  registry.gauge("gantry_nodes_connected", "Edge nodes with a tunnel.").value().with().set(42);
  registry.gauge("gantry_temperature_celsius", "Board temperature.", {"zone"})
      .value()
      .with({"cpu"})
      .set(-1.5);
  auto latency =
      registry
          .histogram("gantry_request_duration_seconds", "Time to answer.", {0.25, 1, 10}, {"path"})
          .value()
          .with({"/a"});
  for (double v : {0.125, 0.25, 0.5, 20.0}) latency.observe(v);
}

TEST_CASE("render_prometheus gives the exact text exposition format") {
  MetricsRegistry registry;
  fill_sample_registry(registry);
  CHECK(registry.render_prometheus() ==
        "# HELP gantry_errors_total Errors seen.\n"
        "# TYPE gantry_errors_total counter\n"
        "gantry_errors_total 0\n"
        "# HELP gantry_nodes_connected Edge nodes with a tunnel.\n"
        "# TYPE gantry_nodes_connected gauge\n"
        "gantry_nodes_connected 42\n"
        "# HELP gantry_request_duration_seconds Time to answer.\n"
        "# TYPE gantry_request_duration_seconds histogram\n"
        "gantry_request_duration_seconds_bucket{path=\"/a\",le=\"0.25\"} 2\n"
        "gantry_request_duration_seconds_bucket{path=\"/a\",le=\"1\"} 3\n"
        "gantry_request_duration_seconds_bucket{path=\"/a\",le=\"10\"} 3\n"
        "gantry_request_duration_seconds_bucket{path=\"/a\",le=\"+Inf\"} 4\n"
        "gantry_request_duration_seconds_sum{path=\"/a\"} 20.875\n"
        "gantry_request_duration_seconds_count{path=\"/a\"} 4\n"
        "# HELP gantry_requests_total Requests handled.\\nBy code \\\\ method.\n"
        "# TYPE gantry_requests_total counter\n"
        "gantry_requests_total{code=\"200\",method=\"GET\"} 3\n"
        "gantry_requests_total{code=\"500\",method=\"PO\\\"ST\\\\\\n\"} 1\n"
        "# HELP gantry_temperature_celsius Board temperature.\n"
        "# TYPE gantry_temperature_celsius gauge\n"
        "gantry_temperature_celsius{zone=\"cpu\"} -1.5\n");
}

TEST_CASE("special gauge values render as Prometheus spells them") {
  MetricsRegistry registry;
  auto g = registry.gauge("g", "help", {"k"}).value();
  g.with({"inf"}).set(std::numeric_limits<double>::infinity());
  g.with({"nan"}).set(std::nan(""));
  g.with({"ninf"}).set(-std::numeric_limits<double>::infinity());
  g.with({"small"}).set(0.001);
  std::string text = registry.render_prometheus();
  CHECK_THAT(text, Catch::Contains("g{k=\"inf\"} +Inf\n"));
  CHECK_THAT(text, Catch::Contains("g{k=\"nan\"} NaN\n"));
  CHECK_THAT(text, Catch::Contains("g{k=\"ninf\"} -Inf\n"));
  CHECK_THAT(text, Catch::Contains("g{k=\"small\"} 0.001\n"));
}

TEST_CASE("promtool accepts the rendering without problems") {
  // promtool comes from Debian's prometheus package (tools/deps.sh); a missing tool is a failure.
  const std::filesystem::path promtool = "/usr/bin/promtool";
  INFO("promtool missing: run tools/deps.sh");
  REQUIRE(std::filesystem::exists(promtool));

  MetricsRegistry registry;
  fill_sample_registry(registry);
  registry.histogram("gantry_sync_batch_bytes", "Bytes per batch.", exponential_buckets(64, 4, 6))
      .value()
      .with()
      .observe(1000);
  test::TempDir dir;
  auto file = dir / "metrics.txt";
  {
    std::ofstream out(file);
    out << registry.render_prometheus();
  }
  std::string command = promtool.string() + " check metrics < '" + file.string() + "' 2>&1";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  std::array<char, 512> buf;
  while (size_t n = std::fread(buf.data(), 1, buf.size(), pipe)) output.append(buf.data(), n);
  int status = ::pclose(pipe);
  INFO("promtool said: " << output);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(output.empty());
}

TEST_CASE("increments from several threads are all counted") {
  MetricsRegistry registry;
  auto counter = registry.counter("hits_total", "Hits.", {"worker"}).value();
  auto shared = counter.with({"shared"});
  auto gauge = registry.gauge("in_flight", "In flight.").value().with();
  auto histogram = registry.histogram("latency_seconds", "Latency.", {1, 2}).value().with();
  constexpr int kThreads = 4;
  constexpr int kPerThread = 50'000;

  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto own = counter.with({std::to_string(t)});
      for (int i = 0; i < kPerThread; ++i) {
        shared.inc();
        own.inc();
        gauge.inc();
        gauge.dec();
        gauge.add(0.5);
        histogram.observe(i % 3);  // 0, 1, 2: exact sums
        // New series appear while others render.
        if (i % 10'000 == 0) counter.with({"late-" + std::to_string(t) + "-" + std::to_string(i)});
      }
    });
  }
  // Rendering concurrently must neither block the writers nor crash.
  for (int i = 0; i < 20; ++i) CHECK_FALSE(registry.render_prometheus().empty());
  for (auto& thread : threads) thread.join();

  CHECK(shared.value() == uint64_t{kThreads} * kPerThread);
  for (int t = 0; t < kThreads; ++t) CHECK(counter.with({std::to_string(t)}).value() == kPerThread);
  CHECK(gauge.value() == kThreads * kPerThread * 0.5);
  CHECK(histogram.count() == uint64_t{kThreads} * kPerThread);
  uint64_t twos = kPerThread / 3, ones = (kPerThread + 1) / 3;
  CHECK(histogram.sum() == double(kThreads) * (ones + 2.0 * twos));
  CHECK_THAT(registry.render_prometheus(),
             Catch::Contains("hits_total{worker=\"shared\"} 200000\n"));
}

TEST_CASE("bad names, labels, help and buckets are refused at registration") {
  struct Bad {
    std::string name;
    std::string help;
    std::vector<std::string> labels;
  };
  MetricsRegistry registry;
  Bad bad =
      GENERATE(Bad{"", "h", {}}, Bad{"1st_total", "h", {}}, Bad{"a-b_total", "h", {}},
               Bad{"rule:rate_total", "h", {}}, Bad{"requests", "h", {}}, Bad{"ok_total", "", {}},
               Bad{"ok_total", "h", {"__name"}}, Bad{"ok_total", "h", {"a-b"}},
               Bad{"ok_total", "h", {"2x"}}, Bad{"ok_total", "h", {"a", "a"}});
  INFO(bad.name << " / '" << bad.help << "'");
  CHECK(registry.counter(bad.name, bad.help, bad.labels).status().code() == Code::kInvalidArgument);

  CHECK(registry.histogram("h_seconds", "h", {1, 2}, {"le"}).status().code() ==
        Code::kInvalidArgument);
  CHECK(registry.histogram("h_seconds", "h", {2, 1}).status().code() == Code::kInvalidArgument);
  CHECK(registry.histogram("h_seconds", "h", {1, 1}).status().code() == Code::kInvalidArgument);
  CHECK(registry.histogram("h_seconds", "h", {std::nan("")}).status().code() ==
        Code::kInvalidArgument);
  CHECK(registry.render_prometheus().empty());
}

TEST_CASE("registering a name again returns the same family, a clash is refused") {
  MetricsRegistry registry;
  auto a = registry.counter("x_total", "X.", {"k"}).value();
  auto b = registry.counter("x_total", "X.", {"k"}).value();
  a.with({"v"}).inc();
  CHECK(b.with({"v"}).value() == 1);

  auto clash_type = registry.gauge("x_total", "X.", {"k"});
  CHECK(clash_type.status().code() == Code::kAlreadyExists);
  CHECK_THAT(clash_type.status().message(), Catch::Contains("counter"));
  CHECK(registry.counter("x_total", "X.", {"other"}).status().code() == Code::kAlreadyExists);

  CHECK(registry.histogram("h", "H.", {1, 2}).ok());
  CHECK(registry.histogram("h", "H.", {1, 2, std::numeric_limits<double>::infinity()}).ok());
  CHECK(registry.histogram("h", "H.", {1, 3}).status().code() == Code::kAlreadyExists);
}

TEST_CASE("a wrong number of label values is an error from try_with") {
  MetricsRegistry registry;
  auto family = registry.counter("x_total", "X.", {"a", "b"}).value();
  std::array<std::string_view, 1> one = {"only"};
  auto result = family.try_with(one);
  REQUIRE_FALSE(result.ok());
  CHECK(result.status().code() == Code::kInvalidArgument);
  CHECK_THAT(result.status().message(), Catch::Contains("x_total"));
  std::array<std::string_view, 2> two = {"1", "2"};
  CHECK(family.try_with(two).ok());
}

TEST_CASE("default-constructed handles ignore updates so metrics are optional") {
  Counter c;
  Gauge g;
  Histogram h;
  c.inc();
  g.set(3);
  h.observe(1);
  CHECK(c.value() == 0);
  CHECK(g.value() == 0);
  CHECK(h.count() == 0);
  CHECK(CounterFamily().with({"anything"}).value() == 0);
}

TEST_CASE("bucket helpers give Prometheus' defaults and geometric series") {
  CHECK(default_buckets().front() == 0.005);
  CHECK(default_buckets().back() == 10);
  CHECK(exponential_buckets(1, 2, 4) == std::vector<double>{1, 2, 4, 8});
  CHECK(exponential_buckets(0, 2, 4).empty());
}

}  // namespace
}  // namespace gantry::common
