// kill -9 of the real binaries while the sync engine is busy: nothing acknowledged is lost, the
// caches always open, and everything converges afterwards.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <fstream>
#include <random>
#include <thread>

#include "cloudcore/registry/keys.h"
#include "tests/integration/sync/sync_fixture.h"

namespace gantry::test {
namespace {

using namespace std::chrono_literals;

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream out(path);
  out << text;
  REQUIRE(out.good());
}

// Writes the PEM files for `common_name` and returns the tls: section of a config.
std::string tls_section(const TestCluster& cluster, const std::string& common_name,
                        const std::filesystem::path& dir) {
  auto pem = cluster.issue(common_name);
  write_text(dir / "tls.crt", pem.cert);
  write_text(dir / "tls.key", pem.key);
  write_text(dir / "ca.crt", cluster.ca_pem());
  return fmt::format("tls:\n  cert: {}\n  key: {}\n  ca: {}\n", (dir / "tls.crt").string(),
                     (dir / "tls.key").string(), (dir / "ca.crt").string());
}

std::filesystem::path binary(const std::string& name) {
  return build_dir() / name / name;
}

TEST_CASE("kill -9 of cloudcore while statuses arrive loses no acknowledged status") {
  TestCluster cluster;
  TempDir dir;
  auto cloud_dir = dir.path() / "cloud";
  constexpr int kPods = 20;
  {
    cloud::RocksStoreOptions so;
    so.path = (cloud_dir / "data" / "store").string();
    auto store = cloud::open_rocks_store(so).value();
    for (int i = 0; i < kPods; ++i) put_pod(*store, fmt::format("p{}", i), "node-k");
  }
  uint16_t port = free_port();
  write_text(cloud_dir / "cloudcore.yaml",
             fmt::format("data_dir: {}\ntunnel:\n  listen: 127.0.0.1:{}\n{}log:\n  level: debug\n",
                         (cloud_dir / "data").string(), port,
                         tls_section(cluster, "gantry-cloudcore", cloud_dir)));
  auto start_cloud = [&] {
    auto p = std::make_unique<ChildProcess>(
        std::vector<std::string>{binary("cloudcore").string(), "--config",
                                 (cloud_dir / "cloudcore.yaml").string()},
        cloud_dir / "cloudcore.log");
    REQUIRE(
        eventually([&] { return p->log().find("ready") != std::string::npos || !p->running(); }));
    REQUIRE(p->running());
    return p;
  };
  auto cloud = start_cloud();

  common::EventLoop loop(1);
  loop.run();
  Edge edge(cluster, loop, "node-k", dir.path() / "edge");
  edge.start(port);
  REQUIRE(eventually([&] { return edge.connected() && edge_view(edge.meta()).size() == kPods; }));

  std::atomic<bool> stop{false};
  std::atomic<int> reports{0};
  std::thread reporter([&] {
    for (int round = 1; !stop && round < 100000; ++round) {
      for (int i = 0; i < kPods && !stop; ++i) {
        auto status = pod_status(round % 2 ? v1::POD_PHASE_RUNNING : v1::POD_PHASE_FAILED, round);
        REQUIRE(edge.tracker()
                    .report_pod("default", fmt::format("p{}", i), fmt::format("uid-p{}", i), status)
                    .ok());
        ++reports;
      }
      std::this_thread::sleep_for(2ms);  // pacing the producer, not waiting for a condition
    }
  });
  // Let acknowledgements pile up, then kill cloudcore in the middle of it.
  REQUIRE(eventually([&] { return edge.meta().acked_sequence() >= 20; }, 60s));
  cloud->signal(SIGKILL);
  CHECK(cloud->wait() == 128 + SIGKILL);
  stop = true;
  reporter.join();
  edge.stop();

  auto acked = edge.meta().list_acked();
  REQUIRE(acked.ok());
  REQUIRE_FALSE(acked->empty());
  cloud::RocksStoreOptions so;
  so.path = (cloud_dir / "data" / "store").string();
  auto store = cloud::open_rocks_store(so);
  REQUIRE(store.ok());
  size_t checked = 0;
  for (const auto& entry : *acked) {
    if (entry.kind() != v1::OBJECT_KIND_POD || !entry.has_pod()) continue;
    INFO(entry.name());
    auto stored = stored_status(**store, v1::OBJECT_KIND_POD, entry.name());
    REQUIRE(stored.has_value());
    // The cloud has at least what it acknowledged (one more if it stored a batch whose ack the
    // kill swallowed).
    CHECK(stored->generation() >= entry.base_generation());
    if (stored->generation() == entry.base_generation())
      CHECK(stored->pod().SerializeAsString() == entry.pod().SerializeAsString());
    ++checked;
  }
  CHECK(checked == kPods);
}

TEST_CASE(
    "kill -9 of edgecore 50 times while deltas arrive: the cache opens, never falls behind its "
    "acks, and converges") {
  TestCluster cluster;
  TempDir dir;
  Cloud cloud(cluster, dir.path() / "cloud");
  cloud.start();
  for (int i = 0; i < 10; ++i)
    put_pod(cloud.store(), fmt::format("p{}", i), "node-x", i % 3 == 0 ? "conf" : "");
  put_config_map(cloud.store(), "conf", "0");

  auto edge_dir = dir.path() / "edge";
  write_text(edge_dir / "edgecore.yaml",
             fmt::format("node_name: node-x\ndata_dir: {}\ncloudcore: 127.0.0.1:{}\n{}backoff:\n  "
                         "base: 100ms\n  cap: 1s\n",
                         (edge_dir / "data").string(), cloud.port(),
                         tls_section(cluster, "system:node:node-x", edge_dir)));
  std::vector<std::string> argv{binary("edgecore").string(), "--config",
                                (edge_dir / "edgecore.yaml").string()};

  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::mt19937 rng(7);
    for (int n = 0; !stop && n < 200000; ++n) {
      int i = static_cast<int>(rng() % 10);
      if (rng() % 5 == 0)
        put_config_map(cloud.store(), "conf", std::to_string(n));
      else
        put_pod(cloud.store(), fmt::format("p{}", i), "node-x", i % 3 == 0 ? "conf" : "",
                fmt::format("busybox:{}", n));
      std::this_thread::sleep_for(3ms);  // pacing the producer, not waiting for a condition
    }
  });

  std::mt19937 rng(42);
  cloud::Revision max_acked = 0;
  for (int round = 0; round < 50; ++round) {
    INFO("round " << round);
    cloud::Revision before = cloud.hub().acked_revision("node-x");
    {
      ChildProcess edgecore(argv, edge_dir / "edgecore.log");
      // Wait for the edge to acknowledge something new, then kill it at a random moment.
      eventually([&] { return cloud.hub().acked_revision("node-x") > before; }, 10s);
      std::this_thread::sleep_for(std::chrono::milliseconds(rng() % 150));
      max_acked = std::max(max_acked, cloud.hub().acked_revision("node-x"));
      edgecore.signal(SIGKILL);
      REQUIRE(edgecore.wait() == 128 + SIGKILL);
    }
    auto meta = edge::MetaStore::open(edge_dir / "data" / "meta");
    REQUIRE(meta.ok());
    CHECK((*meta)->applied_revision() >= max_acked);
  }
  stop = true;
  writer.join();

  ChildProcess edgecore(argv, edge_dir / "edgecore.log");
  cloud::Revision last = cloud.store().current_revision();
  REQUIRE(eventually([&] { return cloud.hub().acked_revision("node-x") >= last; }, 60s));
  edgecore.signal(SIGTERM);
  REQUIRE(edgecore.wait() == 0);
  auto meta = edge::MetaStore::open(edge_dir / "data" / "meta");
  REQUIRE(meta.ok());
  CHECK(edge_view(**meta) == cloud_view(cloud.store(), "node-x"));
}

}  // namespace
}  // namespace gantry::test
