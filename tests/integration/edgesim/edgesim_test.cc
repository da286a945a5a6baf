// The fleet simulator against the real cloudcore binary: a small fleet connects, every node reads
// Ready in the cloud, and every status change the simulated pods make arrives in the cloud's
// watch. Keeps the simulator (and the benchmarks built on it) from rotting.
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "tests/support/test_support.h"
#include "tools/edgesim/sim.h"

namespace gantry::test {
namespace {

using namespace std::chrono_literals;

TEST_CASE("edgesim: 300 nodes with 5 pods each all get Ready and every status change arrives") {
  constexpr int kNodes = 300;
  constexpr int kPods = 5;
  rlimit limit{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &limit) == 0);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  REQUIRE(limit.rlim_cur > 2 * kNodes + 100);

  TempDir dir;
  const auto cc = dir.path() / "cc";
  const uint16_t tunnel = free_port(), api = free_port(), join = free_port();
  REQUIRE(gantryadm_init_on_loopback(cc, tunnel, api, join));
  sim::SeedOptions seed;
  seed.store_path = (cc / "data" / "store").string();
  seed.nodes = kNodes;
  seed.pods_per_node = kPods;
  auto seeded = sim::seed_store(seed);
  REQUIRE(seeded.ok());
  REQUIRE((*seeded)["seeded_pods"] == kNodes * kPods);

  ChildProcess cloudcore({(build_dir() / "cloudcore/cloudcore").string(), "--config",
                          (cc / "cloudcore.yaml").string()},
                         dir.path() / "cloudcore.log");
  REQUIRE(eventually(
      [&] { return cloudcore.log().find("ready") != std::string::npos || !cloudcore.running(); },
      60s));
  REQUIRE(cloudcore.running());

  sim::SimOptions options;
  options.cloudcore = fmt::format("127.0.0.1:{}", tunnel);
  options.api = fmt::format("127.0.0.1:{}", api);
  options.data_dir = cc.string();
  options.nodes = kNodes;
  options.backoff_base = 200ms;
  options.backoff_cap = 2s;
  options.connect_timeout = 60s;
  options.duration = 15s;
  // 1,500 pods, each changing every 10 s on average: ~2,000 changes in the window.
  options.churn_interval = 10s;
  options.settle = 30s;
  auto report = sim::run_sim(options);
  REQUIRE(report.ok());
  const auto& r = *report;
  INFO(r.dump(2));
  CHECK(r["all_resynced_at_start"] == true);
  CHECK(r["pods"] == kNodes * kPods);
  CHECK(r["resynced"] == kNodes);
  CHECK(r["cloud_watch"]["nodes_ready"] == kNodes);
  CHECK(r["cloud_watch"]["not_ready_events"] == 0);
  CHECK(r["status"]["changes_generated"].get<int>() > 500);
  CHECK(r["status"]["pods_unacked_at_end"] == 0);
  CHECK(r["status"]["pods_not_seen_in_watch_at_end"] == 0);
  CHECK(r["status"]["settled"] == true);
  CHECK(r["propagation_ms"]["count"].get<int>() > 0);
  CHECK(r["errors"].empty());
  CHECK(r["disconnects"] == 0);
  CHECK(r["wire"]["connections_at_window_start"] == kNodes);
  cloudcore.signal(SIGTERM);
  CHECK(cloudcore.wait() == 0);
}

}  // namespace
}  // namespace gantry::test
