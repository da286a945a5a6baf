// The etcd test harness itself: a private etcd on loopback that starts, answers, keeps its data
// over a restart and goes away with its directory; a 3-member cluster that survives its leader.
#include "tests/support/etcd_fixture.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <set>

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

TEST_CASE("the etcd harness starts a 3-member cluster whose leader can be killed and replaced") {
  Etcd cluster({.members = 3});
  REQUIRE(cluster.members() == 3);
  auto endpoints = cluster.endpoints();
  CHECK(std::set<std::string>(endpoints.begin(), endpoints.end()).size() == 3);
  CHECK(cluster.healthy());
  cluster.etcdctl({"put", "/k", "v1"});
  cluster.move_leader(1);
  CHECK(cluster.leader() == 1);

  cluster.stop_member(1, /*kill=*/true);
  int leader = -1;
  REQUIRE(eventually([&] { return (leader = cluster.leader()) >= 0; }, std::chrono::seconds(20)));
  CHECK(leader != 1);
  CHECK(cluster.etcdctl({"get", "/k", "--print-value-only"}) == "v1\n");
  cluster.start_member(1);
  CHECK(cluster.healthy());
}

}  // namespace
}  // namespace gantry::test
