// The etcd test harness itself: a private etcd on loopback that starts, answers, keeps its data
// over a restart and goes away with its directory.
#include "tests/support/etcd_fixture.h"

#include <catch2/catch.hpp>
#include <filesystem>

namespace gantry::test {
namespace {

TEST_CASE("the etcd harness starts a private etcd that keeps its data over a restart") {
  std::filesystem::path data;
  {
    Etcd etcd;
    data = etcd.data_dir();
    CHECK(etcd.healthy());
    CHECK(etcd.endpoint().rfind("127.0.0.1:", 0) == 0);
    etcd.etcdctl({"put", "/k", "v1"});
    CHECK(etcd.etcdctl({"get", "/k", "--print-value-only"}) == "v1\n");

    etcd.stop();
    CHECK_FALSE(etcd.healthy());
    etcd.start();
    CHECK(etcd.healthy());
    CHECK(etcd.etcdctl({"get", "/k", "--print-value-only"}) == "v1\n");

    etcd.stop(/*kill=*/true);
    etcd.start();
    CHECK(etcd.etcdctl({"get", "/k", "--print-value-only"}) == "v1\n");
  }
  CHECK_FALSE(std::filesystem::exists(data));
}

TEST_CASE("two harness etcds run side by side on their own ports") {
  Etcd a, b;
  CHECK(a.endpoint() != b.endpoint());
  a.etcdctl({"put", "/k", "a"});
  CHECK(b.etcdctl({"get", "/k", "--print-value-only"}).empty());
}

}  // namespace
}  // namespace gantry::test
