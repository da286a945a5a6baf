// Figures for docs/benchmarks.md, measured against the real cloudcore binary. Hidden from the
// normal run ([.bench]); run by hand:
//   GANTRY_BUILD_DIR=build build/tests/integration/sync/integration_sync "[.bench]"
#include <signal.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <regex>
#include <thread>

#include "tests/integration/sync/sync_fixture.h"

namespace gantry::test {
namespace {

using namespace std::chrono_literals;

long rss_kib(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// Bytes both ways at the TCP layer (TLS and WebSocket framing included) of every established
// connection to `port`, from the kernel's tcp_info as `ss` reports it.
uint64_t socket_bytes(uint16_t port) {
  std::string cmd = fmt::format("ss -tinH state established '( dport = :{} )'", port);
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  std::string out;
  std::array<char, 4096> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  pclose(p);
  uint64_t total = 0;
  std::regex re("bytes_(acked|received):(\\d+)");
  for (std::sregex_iterator it(out.begin(), out.end(), re), end; it != end; ++it)
    total += std::stoull((*it)[2]);
  return total;
}

int env_int(const char* name, int fallback) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : fallback;
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path) << text;
}

TEST_CASE("bench: cloudcore memory per idle node session and bytes per idle node", "[.bench]") {
  const int nodes = env_int("GANTRY_BENCH_NODES", 1000);
  const int idle_seconds = env_int("GANTRY_BENCH_IDLE_SECONDS", 60);
  TestCluster cluster;
  TempDir dir;
  auto cloud_dir = dir.path() / "cloud";
  {
    cloud::RocksStoreOptions so;
    so.path = (cloud_dir / "data" / "store").string();
    auto store = cloud::open_rocks_store(so).value();
    for (int i = 0; i < nodes; ++i)
      put_pod(*store, fmt::format("pod-{}", i), fmt::format("n{}", i));
  }
  auto pem = cluster.issue("gantry-cloudcore");
  write_text(cloud_dir / "tls.crt", pem.cert);
  write_text(cloud_dir / "tls.key", pem.key);
  write_text(cloud_dir / "ca.crt", cluster.ca_pem());
  uint16_t port = free_port();
  write_text(
      cloud_dir / "cloudcore.yaml",
      fmt::format(
          "data_dir: {}\ntunnel:\n  listen: 127.0.0.1:{}\ntls:\n  cert: {}\n  key: {}\n  ca: {}\n",
          (cloud_dir / "data").string(), port, (cloud_dir / "tls.crt").string(),
          (cloud_dir / "tls.key").string(), (cloud_dir / "ca.crt").string()));
  ChildProcess cloudcore({(build_dir() / "cloudcore" / "cloudcore").string(), "--config",
                          (cloud_dir / "cloudcore.yaml").string()},
                         cloud_dir / "cloudcore.log");
  REQUIRE(eventually([&] { return cloudcore.log().find("ready") != std::string::npos; }));
  long rss_before = rss_kib(cloudcore.pid());

  common::EventLoop loop(1);
  loop.run();
  std::vector<std::unique_ptr<Edge>> edges;
  for (int i = 0; i < nodes; ++i) {
    edges.push_back(
        std::make_unique<Edge>(cluster, loop, fmt::format("n{}", i), dir.path() / "edges"));
    edges.back()->start(port);
  }
  REQUIRE(eventually(
      [&] {
        return std::all_of(edges.begin(), edges.end(), [](auto& e) { return e->connected(); });
      },
      300s, 100ms));
  // Idle means every node has its pod cached (the resync is over).
  REQUIRE(eventually(
      [&] {
        return std::all_of(edges.begin(), edges.end(),
                           [](auto& e) { return e->meta().applied_revision() > 0; });
      },
      300s, 100ms));
  long rss_after = rss_kib(cloudcore.pid());
  uint64_t bytes_start = socket_bytes(port);
  std::this_thread::sleep_for(std::chrono::seconds(idle_seconds));  // measuring idle traffic
  uint64_t bytes_end = socket_bytes(port);
  double per_node_per_second = double(bytes_end - bytes_start) / nodes / idle_seconds;
  fmt::print(
      "nodes={} cloudcore_rss_before_kib={} cloudcore_rss_after_kib={} "
      "rss_per_session_bytes={:.0f} "
      "idle_bytes_per_node_per_s={:.2f} (window {} s, TCP payload both ways: TLS + WebSocket)\n",
      nodes, rss_before, rss_after, double(rss_after - rss_before) * 1024 / nodes,
      per_node_per_second, idle_seconds);
  for (auto& e : edges) e->stop();
}

}  // namespace
}  // namespace gantry::test
