#include "common/net/event_loop.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>

#include "common/net/tls.h"
#include "tests/support/test_support.h"

namespace gantry::common {
namespace {

using gantry::test::eventually;
using namespace std::chrono_literals;

TEST_CASE("posted work runs on a loop thread", "[net][event_loop]") {
  EventLoop loop(2);
  loop.run();
  std::atomic<int> ran{0};
  std::atomic<bool> on_loop{false};
  for (int i = 0; i < 100; ++i) {
    loop.post([&] {
      on_loop = loop.in_loop_thread();
      ran++;
    });
  }
  CHECK(eventually([&] { return ran == 100; }));
  CHECK(on_loop);
  CHECK_FALSE(loop.in_loop_thread());
}

TEST_CASE("a scheduled callback fires unless its handle is cancelled or dropped",
          "[net][event_loop]") {
  EventLoop loop(1);
  loop.run();
  std::atomic<bool> fired{false};
  std::atomic<bool> cancelled_fired{false};
  std::atomic<bool> dropped_fired{false};
  std::atomic<bool> detached_fired{false};
  auto keep = loop.schedule(10ms, [&] { fired = true; });
  auto cancel = loop.schedule(50ms, [&] { cancelled_fired = true; });
  cancel.cancel();
  {
    auto dropped = loop.schedule(50ms, [&] { dropped_fired = true; });
  }
  loop.schedule(20ms, [&] { detached_fired = true; }).detach();
  // A later timer that fires last tells us the earlier ones had their chance.
  std::atomic<bool> sentinel{false};
  auto last = loop.schedule(200ms, [&] { sentinel = true; });
  REQUIRE(eventually([&] { return sentinel.load(); }));
  CHECK(fired);
  CHECK(detached_fired);
  CHECK_FALSE(cancelled_fired);
  CHECK_FALSE(dropped_fired);
}

TEST_CASE("stop is idempotent and joins the threads", "[net][event_loop]") {
  EventLoop loop(3);
  loop.run();
  loop.stop();
  loop.stop();
  CHECK(loop.thread_count() == 3);
}

TEST_CASE("TLS contexts reject unusable configuration with a clear error", "[net][tls]") {
  TlsOptions no_cert;
  auto server = TlsContext::create(TlsRole::kServer, no_cert);
  REQUIRE_FALSE(server.ok());
  CHECK(server.status().code() == Code::kInvalidArgument);

  TlsOptions garbage;
  garbage.cert_pem = "not a certificate";
  garbage.key_pem = "not a key";
  auto bad = TlsContext::create(TlsRole::kServer, garbage);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("certificate"));

  TlsOptions verify_without_ca;
  verify_without_ca.verify_peer = true;
  auto client = TlsContext::create(TlsRole::kClient, verify_without_ca);
  REQUIRE_FALSE(client.ok());
  CHECK_THAT(client.status().message(), Catch::Contains("CA"));
}

TEST_CASE("node names come only from system:node: common names", "[net][tls]") {
  CHECK(node_name_from_common_name("system:node:edge-01") == "edge-01");
  CHECK_FALSE(node_name_from_common_name("system:node:").has_value());
  CHECK_FALSE(node_name_from_common_name("admin").has_value());
  CHECK_FALSE(node_name_from_common_name("xsystem:node:edge").has_value());
}

}  // namespace
}  // namespace gantry::common
