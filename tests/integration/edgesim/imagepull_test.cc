// ImagePullJob across a simulated fleet, against the real cloudcore binary: the controller asks
// the connected nodes (a few per province at a time) over the tunnel, edgesim reports the pulls
// like a real node, the nodes that never connect are shown waiting offline.
#include <fmt/format.h>
#include <signal.h>
#include <sys/resource.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cloudcore/store/rocks_store.h"
#include "gantry/v1/objects.pb.h"
#include "tests/support/test_support.h"
#include "tools/edgesim/sim.h"

namespace gantry::test {
namespace {

using namespace std::chrono_literals;
using json = nlohmann::json;

TEST_CASE("edgesim: an ImagePullJob reaches every connected node and waits for the offline ones",
          "[imagepull]") {
  constexpr int kNodes = 60;      // in the store, over 29 provinces
  constexpr int kConnected = 50;  // the last 10 never connect
  rlimit limit{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &limit) == 0);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);

  TempDir dir;
  const auto cc = dir.path() / "cc";
  const uint16_t tunnel = free_port(), api = free_port(), join = free_port();
  REQUIRE(gantryadm_init_on_loopback(cc, tunnel, api, join));
  const std::string store_path = (cc / "data" / "store").string();
  sim::SeedOptions seed;
  seed.store_path = store_path;
  seed.nodes = kNodes;
  seed.pods_per_node = 1;
  REQUIRE(sim::seed_store(seed).ok());
  const std::string key = "/imagepulljobs/default/warm";
  {
    // The job, as `kubectl apply` would store it (defaults filled).
    json job = {{"apiVersion", "gantry.io/v1"},
                {"kind", "ImagePullJob"},
                {"metadata",
                 {{"name", "warm"},
                  {"namespace", "default"},
                  {"uid", "uid-warm"},
                  {"generation", 1},
                  {"creationTimestamp", "2026-12-02T10:00:00Z"}}},
                {"spec",
                 {{"images", {"registry.local/gateway:2", "registry.local/agent:2"}},
                  {"selector", {{"matchLabels", {{"gantry.io/simulated", "true"}}}}},
                  {"parallelism", {{"perProvince", 1}, {"perNode", 1}}},
                  {"retries", 2},
                  {"pullPolicy", "IfNotPresent"}}}};
    cloud::RocksStoreOptions o;
    o.path = store_path;
    auto store = cloud::open_rocks_store(o);
    REQUIRE(store.ok());
    v1::StoredObject so;
    so.set_json(job.dump());
    REQUIRE((*store)->put(key, so.SerializeAsString()).ok());
  }

  ChildProcess cloudcore({(build_dir() / "cloudcore/cloudcore").string(), "--config",
                          (cc / "cloudcore.yaml").string()},
                         dir.path() / "cloudcore.log");
  REQUIRE(eventually(
      [&] { return cloudcore.log().find("ready") != std::string::npos || !cloudcore.running(); },
      60s));
  REQUIRE(cloudcore.running());

  sim::SimOptions options;
  options.cloudcore = fmt::format("127.0.0.1:{}", tunnel);
  options.api = "-";
  options.data_dir = cc.string();
  options.nodes = kConnected;
  options.backoff_base = 200ms;
  options.backoff_cap = 2s;
  options.connect_timeout = 60s;
  options.duration = 8s;  // 2 rounds per province of 2 images x 300 ms, plus status writes
  options.churn_interval = 0ms;
  options.settle = 10s;
  options.pull_time = 300ms;
  auto report = sim::run_sim(options);
  REQUIRE(report.ok());
  INFO(report->dump(2));
  CHECK((*report)["image_pull_requests"].get<int>() >= kConnected);
  CHECK((*report)["image_pulls_done"].get<int>() >= kConnected);
  cloudcore.signal(SIGTERM);
  REQUIRE(cloudcore.wait() == 0);

  cloud::RocksStoreOptions o;
  o.path = store_path;
  auto store = cloud::open_rocks_store(o);
  REQUIRE(store.ok());
  auto kv = (*store)->get(key);
  REQUIRE(kv.ok());
  REQUIRE(kv->has_value());
  v1::StoredObject so;
  REQUIRE(so.ParseFromString((*kv)->value));
  json st = json::parse(so.json())["status"];
  INFO(st.dump(2));
  CHECK(st["desired"] == kNodes);
  CHECK(st["succeeded"] == kConnected);
  CHECK(st["failed"] == 0);
  CHECK(st["pulling"] == 0);
  CHECK(st["waitingOffline"] == kNodes - kConnected);
  CHECK(st["phase"] == "Running");  // the offline nodes are not forgotten
  bool shown = false;
  for (const auto& n : st["nodes"]) {
    if (n["phase"] != "Succeeded") continue;
    shown = true;
    CHECK(n["images"].size() == 2);
    CHECK(n["images"][0]["imageID"].get<std::string>().rfind("sha256:", 0) == 0);
  }
  CHECK(shown);
}

}  // namespace
}  // namespace gantry::test
