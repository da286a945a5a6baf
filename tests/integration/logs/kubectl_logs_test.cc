// Real kubectl (every version on the machine) against the in-process cloud + edge of
// LogsCluster: `kubectl logs` and `kubectl logs -f --tail=2`.
#include <catch2/catch.hpp>
#include <fstream>

#include "edgecore/logs/cri_log.h"
#include "tests/integration/logs/logs_fixture.h"

using namespace gantry;
using namespace gantry::test;

namespace {

std::string cri(int sec, const std::string& content, bool partial = false) {
  return edge::format_rfc3339_nanos((1704067200LL + sec) * 1'000'000'000LL) +
         (partial ? " stderr P " : " stdout F ") + content + "\n";
}

void append(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::app | std::ios::binary) << text;
}

}  // namespace

TEST_CASE("kubectl logs and kubectl logs -f --tail=2 read a container's log through the tunnel",
          "[integration][logs][kubectl]") {
  auto binaries = kubectl_binaries();
  if (binaries.empty()) {
    WARN("no kubectl on this machine");
    return;
  }
  auto binary = GENERATE_COPY(from_range(binaries));
  LogsCluster cluster;
  auto path = cluster.log_path("c-0.log");
  append(path, cri(1, "one") + cri(2, "tw", true) + cri(3, "o") + cri(4, "three"));
  cluster.set_container("c", path.string(), /*running=*/true);
  std::string kubeconfig = cluster.write_kubeconfig();
  auto kubectl = [&](std::vector<std::string> args, const std::string& log) {
    std::vector<std::string> argv = {binary, "--kubeconfig", kubeconfig};
    argv.insert(argv.end(), args.begin(), args.end());
    return std::make_unique<ChildProcess>(argv, cluster.log_path(log));
  };

  auto all = kubectl({"logs", "web"}, "kubectl-logs.out");
  CHECK(all->wait(std::chrono::seconds(60)) == 0);
  CHECK(all->log() == "one\ntwo\nthree\n");

  auto ts = kubectl({"logs", "web", "-c", "c", "--tail=1", "--timestamps"}, "kubectl-ts.out");
  CHECK(ts->wait(std::chrono::seconds(60)) == 0);
  CHECK(ts->log() == "2024-01-01T00:00:04.000000000Z three\n");

  auto missing = kubectl({"logs", "web", "-c", "sidecar"}, "kubectl-missing.out");
  CHECK(missing->wait(std::chrono::seconds(60)) != 0);
  CHECK_THAT(missing->log(), Catch::Contains("container sidecar is not valid for pod web"));

  auto follow = kubectl({"logs", "-f", "--tail=2", "web"}, "kubectl-follow.out");
  REQUIRE(eventually([&] { return follow->log() == "two\nthree\n"; }, std::chrono::seconds(60)));
  append(path, cri(5, "four"));
  REQUIRE(eventually([&] { return follow->log() == "two\nthree\nfour\n"; }));
  CHECK(follow->running());
  cluster.set_container("c", path.string(), /*running=*/false);  // the container exits
  CHECK(follow->wait(std::chrono::seconds(60)) == 0);
  CHECK(follow->log() == "two\nthree\nfour\n");
}

TEST_CASE("kubectl logs -f reports an error when the node drops mid-stream",
          "[integration][logs][kubectl]") {
  auto binaries = kubectl_binaries();
  if (binaries.empty()) {
    WARN("no kubectl on this machine");
    return;
  }
  auto binary = GENERATE_COPY(from_range(binaries));
  LogsCluster cluster;
  auto path = cluster.log_path("c-0.log");
  append(path, cri(1, "before the cut"));
  cluster.set_container("c", path.string(), /*running=*/true);
  std::string kubeconfig = cluster.write_kubeconfig();
  ChildProcess follow({binary, "--kubeconfig", kubeconfig, "logs", "-f", "web"},
                      cluster.log_path("kubectl-cut.out"));
  REQUIRE(eventually([&] { return follow.log() == "before the cut\n"; }, std::chrono::seconds(60)));
  cluster.edge().stop();
  int code = follow.wait(std::chrono::seconds(60));
  INFO(follow.log());
  CHECK(code != 0);
  CHECK(code != -1);
  CHECK_THAT(follow.log(), Catch::Contains("unexpected EOF"));
}
