// pods/log over a real tunnel: REST API -> hub -> mTLS WebSocket -> edge hub -> LogStreams -> a
// CRI log file the test writes.
#include <catch2/catch.hpp>
#include <fstream>
#include <iostream>

#include "edgecore/logs/cri_log.h"
#include "tests/integration/logs/logs_fixture.h"

using namespace gantry;
using namespace gantry::test;

namespace {

std::string cri(int sec, const std::string& content) {
  return edge::format_rfc3339_nanos((1704067200LL + sec) * 1'000'000'000LL) + " stdout F " +
         content + "\n";
}

void append(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::app | std::ios::binary) << text;
}

const std::string kLog = "/api/v1/namespaces/default/pods/web/log";

}  // namespace

TEST_CASE("kubectl logs --tail over the tunnel gives the last lines of the container's log",
          "[integration][logs]") {
  LogsCluster cluster;
  auto path = cluster.log_path("c-0.log");
  for (int i = 1; i <= 5; ++i) append(path, cri(i, "line " + std::to_string(i)));
  cluster.set_container("c", path.string(), /*running=*/false);

  HttpsReader r(cluster.api_port(), kLog + "?tailLines=2");
  REQUIRE(r.read_until([&] { return r.complete(); }));
  CHECK(r.status() == 200);
  CHECK(r.body() == "line 4\nline 5\n");

  HttpsReader ts(cluster.api_port(), kLog + "?container=c&tailLines=1&timestamps=true");
  REQUIRE(ts.read_until([&] { return ts.complete(); }));
  CHECK(ts.body() == "2024-01-01T00:00:05.000000000Z line 5\n");

  cluster.remove_container("c");
  HttpsReader missing(cluster.api_port(), kLog);
  missing.read_until([&] { return missing.closed(); });
  CHECK(missing.status() == 404);
  CHECK_THAT(missing.body(), Catch::Contains("container \\\"c\\\" in pod default/web not found"));
  CHECK(eventually([&] { return cluster.cloud().hub().stats().log_streams_open.load() == 0; }));
  CHECK(cluster.streams().open_streams() == 0);
}

TEST_CASE(
    "kubectl logs -f sends lines appended after the request and ends when the container "
    "stopped",
    "[integration][logs]") {
  LogsCluster cluster;
  auto path = cluster.log_path("c-0.log");
  append(path, cri(1, "old") + cri(2, "recent"));
  cluster.set_container("c", path.string(), /*running=*/true);

  HttpsReader r(cluster.api_port(), kLog + "?follow=true&tailLines=1");
  REQUIRE(r.read_until([&] { return r.body() == "recent\n"; }));
  CHECK(r.status() == 200);
  append(path, cri(3, "appended"));
  REQUIRE(r.read_until([&] { return r.body() == "recent\nappended\n"; }));
  append(path, cri(4, "last words"));
  cluster.set_container("c", path.string(), /*running=*/false);
  REQUIRE(r.read_until([&] { return r.complete(); }));
  CHECK(r.body() == "recent\nappended\nlast words\n");
  CHECK(eventually([&] { return cluster.streams().open_streams() == 0; }));
}

TEST_CASE("a client that leaves ends the followed stream on the edge", "[integration][logs]") {
  LogsCluster cluster;
  auto path = cluster.log_path("c-0.log");
  append(path, cri(1, "hello"));
  cluster.set_container("c", path.string(), true);
  {
    HttpsReader r(cluster.api_port(), kLog + "?follow=1");
    REQUIRE(r.read_until([&] { return r.body() == "hello\n"; }));
    CHECK(cluster.streams().open_streams() == 1);
  }  // the client goes away
  CHECK(eventually([&] { return cluster.streams().open_streams() == 0; }));
  CHECK(eventually([&] { return cluster.cloud().hub().stats().log_streams_open.load() == 0; }));
  CHECK(eventually([&] { return cluster.api().stats().logs_open.load() == 0; }));
}

TEST_CASE("a slow reader holds the edge at the window and nothing piles up or is lost",
          "[integration][logs]") {
  LogsCluster cluster;
  auto path = cluster.log_path("c-0.log");
  std::string expected;
  {
    std::ofstream out(path, std::ios::binary);
    const std::string pad(200, 'x');
    for (int i = 0; expected.size() < (24u << 20); ++i) {
      std::string line = std::to_string(i) + " " + pad;
      out << cri(i % 86400, line);
      expected += line + "\n";
    }
  }
  cluster.set_container("c", path.string(), false);
  HttpsReader r(cluster.api_port(), kLog);
  r.read_for(std::chrono::milliseconds(200), 64 * 1024);  // headers and a little, then stall
  REQUIRE(r.status() == 200);
  // The edge runs out of credit while the client sleeps: the log is not read ahead.
  REQUIRE(eventually([&] { return cluster.streams().stats().waiting_for_window == 1; },
                     std::chrono::seconds(60)));
  uint64_t sent_while_stalled = cluster.streams().stats().bytes_sent;
  CHECK(sent_while_stalled < expected.size());
  std::cout << "slow reader: edge stopped after " << sent_while_stalled << " of " << expected.size()
            << " bytes (client had read " << r.raw_bytes() << "; the rest sits in socket buffers "
            << "and one 64 KiB window)\n";

  auto start = std::chrono::steady_clock::now();
  REQUIRE(r.read_until([&] { return r.complete(); }, std::chrono::seconds(240)));
  auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  CHECK(r.body().size() == expected.size());
  CHECK(r.body() == expected);
  std::cout << "slow reader: all " << expected.size() << " bytes arrived " << took
            << " s after the client resumed (" << expected.size() / took / 1e6
            << " MB/s through API, hub, tunnel and edge)\n";
}

TEST_CASE("a node that disconnects mid-stream ends the HTTP body with an error",
          "[integration][logs]") {
  LogsCluster cluster;
  auto path = cluster.log_path("c-0.log");
  append(path, cri(1, "before the cut"));
  cluster.set_container("c", path.string(), true);
  HttpsReader r(cluster.api_port(), kLog + "?follow=true");
  REQUIRE(r.read_until([&] { return r.body() == "before the cut\n"; }));
  cluster.edge().stop();
  r.read_until([&] { return r.closed(); });
  CHECK(r.closed());
  CHECK_FALSE(r.complete());  // truncated: no last chunk, so the client reports an error
  CHECK(r.body() == "before the cut\n");

  // While it is away, a request says the node is offline and since when.
  REQUIRE(eventually([&] { return !cluster.cloud().hub().connected("edge-1"); }));
  HttpsReader offline(cluster.api_port(), kLog);
  offline.read_until([&] { return offline.closed(); });
  CHECK(offline.status() == 503);
  CHECK_THAT(offline.body(), Catch::Contains("node \\\"edge-1\\\" is offline since"));

  // Back online: logs work again.
  cluster.start_edge();
  REQUIRE(eventually([&] { return cluster.cloud().hub().connected("edge-1"); }));
  HttpsReader again(cluster.api_port(), kLog);
  REQUIRE(again.read_until([&] { return again.complete(); }));
  CHECK(again.body() == "before the cut\n");
}

TEST_CASE("streams past the edge's cap are refused with 429 while the others keep going",
          "[integration][logs]") {
  edge::LogStreamsOptions options;
  options.max_streams = 2;
  LogsCluster cluster(options);
  auto path = cluster.log_path("c-0.log");
  append(path, cri(1, "x"));
  cluster.set_container("c", path.string(), true);
  HttpsReader a(cluster.api_port(), kLog + "?follow=true");
  HttpsReader b(cluster.api_port(), kLog + "?follow=true");
  REQUIRE(a.read_until([&] { return a.body() == "x\n"; }));
  REQUIRE(b.read_until([&] { return b.body() == "x\n"; }));
  HttpsReader c(cluster.api_port(), kLog + "?follow=true");
  c.read_until([&] { return c.closed(); });
  CHECK(c.status() == 429);
  CHECK_THAT(c.body(), Catch::Contains("too many log streams"));
  append(path, cri(2, "y"));
  CHECK(a.read_until([&] { return a.body() == "x\ny\n"; }));
  CHECK(b.read_until([&] { return b.body() == "x\ny\n"; }));
}
