// batch/v1 Jobs end to end: the real cloudcore (Job controller, scheduler), edgecore and
// containerd, and kubectl. A Job whose container exits 0 completes; one whose container exits 1
// is retried after the back-off and fails at its backoffLimit.
#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "tests/e2e/edge/edge_cluster.h"

using namespace std::chrono_literals;
using gantry::edge_test::EdgeCluster;
using gantry::test::eventually;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string job_yaml(const std::string& name, const std::string& script, int backoff_limit) {
  return fmt::format(R"(apiVersion: batch/v1
kind: Job
metadata:
  name: {}
  namespace: default
spec:
  backoffLimit: {}
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: {}
        command: ["sh", "-c", "{}"]
)",
                     name, backoff_limit, gantry::test::kBusyboxImage, script);
}

}  // namespace

TEST_CASE("A Job runs to completion on the edge and a failing one backs off to its limit",
          "[edge][job]") {
  EdgeCluster c;
  auto started = std::chrono::steady_clock::now();
  auto r = c.kubectl_apply(job_yaml("ok", "echo counted; exit 0", 6));
  INFO(r.text);
  REQUIRE(r.exit_code == 0);
  auto done = c.kubectl({"wait", "--for=condition=complete", "job/ok", "--timeout=120s"}, 130s);
  INFO(done.text);
  INFO(c.cloudcore_log());
  REQUIRE(done.exit_code == 0);
  // Figure for docs/benchmarks.md: kubectl apply -> Complete seen by kubectl wait.
  WARN(fmt::format("job latency (kubectl apply -> condition Complete): {} ms",
                   std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - started)
                       .count()));
  auto got = c.kubectl({"get", "job", "ok"});
  CHECK(contains(got.text, "Complete"));
  CHECK(contains(got.text, "1/1"));
  auto logs = c.kubectl({"logs", "job/ok"});
  CHECK(contains(logs.text, "counted"));

  // backoffLimit 1: the first failure is retried (after 10 s), the second fails the Job.
  r = c.kubectl_apply(job_yaml("bad", "exit 1", 1));
  REQUIRE(r.exit_code == 0);
  auto failed = c.kubectl({"wait", "--for=condition=failed", "job/bad", "--timeout=120s"}, 130s);
  INFO(failed.text);
  REQUIRE(failed.exit_code == 0);
  auto reason = c.kubectl(
      {"get", "job", "bad", "-o", "jsonpath={.status.conditions[?(@.type==\"Failed\")].reason}"});
  CHECK(reason.text == "BackoffLimitExceeded");
  auto count = c.kubectl({"get", "job", "bad", "-o", "jsonpath={.status.failed}"});
  CHECK(count.text == "2");
  auto pods = c.kubectl({"get", "pods", "-l", "job-name=bad", "-o", "name"});
  CHECK(std::count(pods.text.begin(), pods.text.end(), '\n') == 2);
}

TEST_CASE("A Job pod that ends offline completes its Job when the cloud returns, no second pod",
          "[edge][job]") {
  EdgeCluster c;
  REQUIRE(c.kubectl_apply(job_yaml("offline", "echo up; sleep 8; echo done", 6)).exit_code == 0);
  std::string pod;
  REQUIRE(eventually(
      [&] {
        auto out = c.kubectl(
            {"get", "pods", "-l", "job-name=offline", "-o", "jsonpath={.items[0].metadata.name}"});
        pod = out.exit_code == 0 ? out.text : "";
        return !pod.empty() && c.pod_field(pod, "{.status.phase}") == "Running";
      },
      60s));
  c.kill_cloudcore();
  c.kill_edgecore();   // SIGKILL; the container keeps running under containerd
  c.start_edgecore();  // no cloud
  // The pod runs to its end offline.
  REQUIRE(eventually([&] { return c.running_containers_of(pod).empty(); }, 60s));
  c.start_cloudcore();
  auto done = c.kubectl({"wait", "--for=condition=complete", "job/offline", "--timeout=90s"}, 100s);
  INFO(done.text);
  INFO(c.edgecore_log());
  REQUIRE(done.exit_code == 0);
  auto pods = c.kubectl({"get", "pods", "-l", "job-name=offline", "-o", "name"});
  CHECK(std::count(pods.text.begin(), pods.text.end(), '\n') == 1);
  CHECK(c.kubectl({"get", "job", "offline", "-o", "jsonpath={.status.succeeded}"}).text == "1");
}
