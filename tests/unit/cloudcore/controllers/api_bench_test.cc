// How the REST API renders what the scheduler writes, and (hidden, [.bench]) list and watch
// latency through the REST API with 10,000 nodes and 50,000 pods in the store.
//   build-*/tests/unit/cloudcore/controllers/unit_cloudcore_controllers "[.bench]"
#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cloudcore/api/render.h"
#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "common/base/atomic_file.h"
#include "tests/unit/cloudcore/api/api_fixture.h"

namespace gantry::test {
namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

TEST_CASE("an unbound pod's scheduler status renders as PodScheduled False with the reason",
          "[controllers][api]") {
  json pod = {{"metadata", {{"name", "p"}}}, {"spec", {{"containers", json::array()}}}};
  v1::StoredStatus st;  // as the scheduler writes it: generation 0
  st.set_changed_at(1'700'000'000'000);
  st.mutable_pod()->set_phase(v1::POD_PHASE_PENDING);
  st.mutable_pod()->set_reason("Unschedulable");
  st.mutable_pod()->set_message("0/1 nodes are available: 1 Insufficient cpu.");
  json status = cloud::api::render_pod_status(pod, &st);
  CHECK(status["phase"] == "Pending");
  REQUIRE(status["conditions"].size() == 1);
  CHECK(status["conditions"][0]["type"] == "PodScheduled");
  CHECK(status["conditions"][0]["status"] == "False");
  CHECK(status["conditions"][0]["reason"] == "Unschedulable");
  CHECK(status["conditions"][0]["message"] == "0/1 nodes are available: 1 Insufficient cpu.");
  CHECK_FALSE(status.contains("reason"));  // kubectl's STATUS column reads Pending, as upstream
  pod["status"] = status;
  CHECK(cloud::api::summarize_pod(pod).status == "Pending");
}

struct Timed {
  int code = 0;
  double first_byte_ms = 0;
  double total_ms = 0;
  size_t bytes = 0;
  std::string body;
};

// curl's own timings (no process start-up in the figure).
Timed timed_get(ApiFixture& f, const std::string& path, const std::string& header = "") {
  auto out = f.dir() / "bench.body";
  std::string cmd = "/usr/bin/curl -sS --cacert " + f.ca_path() + " -H 'Authorization: Bearer " +
                    kAdminToken + "'" + (header.empty() ? "" : " -H '" + header + "'") + " -o " +
                    out.string() +
                    " -w '%{http_code} %{time_starttransfer} %{time_total} %{size_download}' '" +
                    f.url(path) + "'";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p);
  Timed t;
  double first = 0, total = 0, size = 0;
  REQUIRE(fscanf(p, "%d %lf %lf %lf", &t.code, &first, &total, &size) == 4);
  pclose(p);
  t.first_byte_ms = first * 1000;
  t.total_ms = total * 1000;
  t.bytes = static_cast<size_t>(size);
  t.body = common::read_file(out).value_or("");
  return t;
}

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * v.size()))];
}

TEST_CASE("REST list and watch latency at 10000 nodes and 50000 pods", "[.bench][controllers]") {
  // GANTRY_BENCH_NODES scales it down (5 pods per node).
  const int kNodes =
      std::getenv("GANTRY_BENCH_NODES") ? std::atoi(std::getenv("GANTRY_BENCH_NODES")) : 10000;
  constexpr int kPodsPerNode = 5;
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // figures survive a kill
  ApiFixture f;
  auto seed_start = SteadyClock::now();
  std::vector<cloud::Op> ops;
  auto flush = [&] {
    if (ops.empty()) return;
    REQUIRE(f.store().txn(std::move(ops)).ok());
    ops.clear();
  };
  for (int n = 0; n < kNodes; ++n) {
    std::string name = fmt::format("edge-{:05}", n);
    json node = {{"kind", "Node"},
                 {"apiVersion", "v1"},
                 {"metadata",
                  {{"name", name},
                   {"uid", "uid-" + name},
                   {"creationTimestamp", "2024-01-01T00:00:00Z"},
                   {"labels", {{"topology.gantry.io/province", n % 2 ? "zhejiang" : "jiangsu"}}}}},
                 {"spec", json::object()}};
    ops.push_back(cloud::Op::put(
        cloud::keys::object_key(v1::OBJECT_KIND_NODE, "", name),
        cloud::decode_object(v1::OBJECT_KIND_NODE, node.dump())->SerializeAsString()));
    v1::StoredStatus st;
    st.set_generation(1);
    auto* ns = st.mutable_node();
    ns->mutable_allocatable()->set_cpu_millis(4000);
    ns->mutable_allocatable()->set_memory_bytes(1LL << 30);
    ns->mutable_allocatable()->set_pods(110);
    *ns->mutable_capacity() = ns->allocatable();
    auto* c = ns->add_conditions();
    c->set_type(v1::NODE_CONDITION_READY);
    c->set_status(v1::CONDITION_STATUS_TRUE);
    ns->mutable_node_info()->set_edgecore_version("v0.1.0");
    ops.push_back(cloud::Op::put(cloud::keys::status_key(v1::OBJECT_KIND_NODE, "", name),
                                 st.SerializeAsString()));
    for (int i = 0; i < kPodsPerNode; ++i) {
      std::string pod_name = fmt::format("app-{:05}-{}", n, i);
      json pod = {
          {"kind", "Pod"},
          {"apiVersion", "v1"},
          {"metadata",
           {{"name", pod_name},
            {"namespace", "default"},
            {"uid", "uid-" + pod_name},
            {"creationTimestamp", "2024-01-01T00:00:00Z"},
            {"labels", {{"app", "app"}}}}},
          {"spec",
           {{"nodeName", name}, {"containers", {{{"name", "main"}, {"image", "nginx:1.25"}}}}}}};
      ops.push_back(cloud::Op::put(
          cloud::keys::object_key(v1::OBJECT_KIND_POD, "default", pod_name),
          cloud::decode_object(v1::OBJECT_KIND_POD, pod.dump())->SerializeAsString()));
      v1::StoredStatus ps;
      ps.set_generation(1);
      ps.set_uid("uid-" + pod_name);
      ps.mutable_pod()->set_phase(v1::POD_PHASE_RUNNING);
      ps.mutable_pod()->set_ready(true);
      ps.mutable_pod()->set_pod_ip("10.0.0.1");
      ps.mutable_pod()->set_start_time(1'700'000'000);
      ops.push_back(
          cloud::Op::put(cloud::keys::status_key(v1::OBJECT_KIND_POD, "default", pod_name),
                         ps.SerializeAsString()));
    }
    if (ops.size() >= 2000) flush();
  }
  flush();
  REQUIRE(eventually(
      [&] { return f.registry().pod_count() == static_cast<size_t>(kNodes * kPodsPerNode); },
      std::chrono::minutes(5)));
  double seed_s = std::chrono::duration<double>(SteadyClock::now() - seed_start).count();
  std::printf("seeded %d nodes, %d pods (+ statuses) in %.1f s\n", kNodes, kNodes * kPodsPerNode,
              seed_s);

  Timed health = timed_get(f, "/healthz");
  std::printf("baseline GET /healthz: %.1f ms total (TLS handshake included)\n", health.total_ms);

  std::vector<double> first_pages;
  for (int i = 0; i < 5; ++i) {
    Timed t = timed_get(f, "/api/v1/pods?limit=500");
    REQUIRE(t.code == 200);
    first_pages.push_back(t.total_ms);
  }
  std::printf("GET /api/v1/pods?limit=500 (first page): median %.1f ms, max %.1f ms\n",
              percentile(first_pages, 0.5), percentile(first_pages, 1.0));

  auto full_start = SteadyClock::now();
  std::string cont;
  int pages = 0;
  size_t items = 0;
  size_t bytes = 0;
  do {
    Timed t = timed_get(f, "/api/v1/pods?limit=500" + (cont.empty() ? "" : "&continue=" + cont));
    REQUIRE(t.code == 200);
    json page = json::parse(t.body);
    items += page["items"].size();
    bytes += t.bytes;
    cont = page["metadata"].value("continue", "");
    ++pages;
  } while (!cont.empty());
  double full_ms =
      std::chrono::duration<double, std::milli>(SteadyClock::now() - full_start).count();
  CHECK(items == static_cast<size_t>(kNodes * kPodsPerNode));
  std::printf(
      "full paged pod list (limit=500): %d pages, %zu pods, %.1f MB, %.0f ms wall (curl per "
      "page)\n",
      pages, items, bytes / 1e6, full_ms);

  std::vector<double> tables;
  size_t table_bytes = 0;
  for (int i = 0; i < 3; ++i) {
    Timed t = timed_get(f, "/api/v1/nodes", "Accept: application/json;as=Table;v=v1;g=meta.k8s.io");
    CHECK(t.code == 200);
    if (t.code != 200) {
      std::printf("GET /api/v1/nodes as Table: HTTP %d after %.1f ms\n", t.code, t.total_ms);
      break;
    }
    tables.push_back(t.total_ms);
    table_bytes = t.bytes;
  }
  std::printf("GET /api/v1/nodes as Table (%d rows, %.1f MB): median total %.1f ms\n", kNodes,
              table_bytes / 1e6, tables.empty() ? 0.0 : percentile(tables, 0.5));

  // Watch: a pod status write (as the hub makes it) to the JSON line on the client.
  std::string rv = std::to_string(f.store().current_revision());
  ChildProcess watch({"/usr/bin/curl", "-sSN", "--max-time", "300", "--cacert", f.ca_path(), "-H",
                      std::string("Authorization: Bearer ") + kAdminToken,
                      f.url("/api/v1/pods?watch=1&resourceVersion=" + rv)},
                     f.dir() / "watch.log");
  auto watch_log = f.dir() / "watch.log";
  std::vector<double> latencies;
  for (int i = 0; i <= 30; ++i) {  // the first one waits for curl to start: not counted
    std::string pod_name = fmt::format("app-{:05}-0", i * (kNodes / 31));
    v1::StoredStatus ps;
    ps.set_generation(2 + i);
    ps.set_uid("uid-" + pod_name);
    ps.mutable_pod()->set_phase(v1::POD_PHASE_RUNNING);
    ps.mutable_pod()->set_ready(true);
    ps.mutable_pod()->set_pod_ip(fmt::format("10.1.{}.{}", i / 200, i % 200));
    auto t0 = SteadyClock::now();
    REQUIRE(f.store()
                .put(cloud::keys::status_key(v1::OBJECT_KIND_POD, "default", pod_name),
                     ps.SerializeAsString())
                .ok());
    // The log file is the curl's stdout; polled every millisecond (the figure's resolution).
    REQUIRE(eventually(
        [&] {
          return common::read_file(watch_log).value_or("").find("\"" + pod_name + "\"") !=
                 std::string::npos;
        },
        std::chrono::seconds(60), std::chrono::milliseconds(1)));
    if (i > 0)
      latencies.push_back(
          std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
  }
  std::printf(
      "watch latency, store write (fsynced) -> JSON line at the client, %zu events: "
      "median %.1f ms, p90 %.1f ms, max %.1f ms\n",
      latencies.size(), percentile(latencies, 0.5), percentile(latencies, 0.9),
      percentile(latencies, 1.0));
}

}  // namespace
}  // namespace gantry::test
