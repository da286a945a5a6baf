// EtcdStore beyond the Store contract: what etcd itself brings (restarts, limits, other clients
// of the same etcd) and how a user sees it.
#include "cloudcore/store/etcd_store.h"

#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <mutex>

#include "tests/support/etcd_fixture.h"

namespace gantry::cloud {
namespace {

using namespace std::chrono_literals;
using test::eventually;

EtcdStoreOptions options_for(const test::Etcd& etcd) {
  EtcdStoreOptions options;
  options.endpoints = {"http://" + etcd.endpoint()};
  options.auto_compact_interval = 0ms;
  options.request_timeout = 5s;
  return options;
}

std::unique_ptr<EtcdStore> open_store(const EtcdStoreOptions& options) {
  auto store = EtcdStore::open(options);
  INFO(store.status().to_string());
  REQUIRE(store.ok());
  return std::move(store).value();
}

class Collector {
 public:
  WatchCallbacks callbacks() {
    return WatchCallbacks{[this](const std::vector<Event>& events) {
                            std::lock_guard lock(mu_);
                            for (const auto& e : events) events_.push_back(e);
                          },
                          [this](const Status& status) {
                            std::lock_guard lock(mu_);
                            error_ = status;
                          }};
  }
  std::vector<Event> events() {
    std::lock_guard lock(mu_);
    return events_;
  }
  std::optional<Status> error() {
    std::lock_guard lock(mu_);
    return error_;
  }

 private:
  std::mutex mu_;
  std::vector<Event> events_;
  std::optional<Status> error_;
};

TEST_CASE("etcd store: keys live under the prefix, revisions are etcd's own") {
  test::Etcd etcd;
  auto options = options_for(etcd);
  options.prefix = "/tenant-a";
  auto store = open_store(options);
  auto rev = store->put("/pods/default/web", "spec");
  REQUIRE(rev.ok());
  CHECK(etcd.etcdctl({"get", "/tenant-a/pods/default/web", "--print-value-only"}) == "spec\n");
  auto status = etcd.etcdctl({"endpoint", "status", "--write-out=fields"});
  CHECK_THAT(status, Catch::Contains(fmt::format("\"Revision\" : {}", *rev)));
  // Keys of other applications in the same etcd are not the store's.
  etcd.etcdctl({"put", "/other/x", "y"});
  auto all = store->list(ListOptions{});
  REQUIRE(all.ok());
  REQUIRE(all->items.size() == 1);
  CHECK(all->items[0].key == "/pods/default/web");
}

TEST_CASE("etcd store: a restarted etcd costs writes an Unavailable error, watches lose nothing") {
  test::Etcd etcd;
  auto store = open_store(options_for(etcd));
  Collector collector;
  auto watch = store->watch("/r/", 0, collector.callbacks());
  REQUIRE(watch.ok());
  REQUIRE(store->put("/r/1", "before").ok());
  REQUIRE(eventually([&] { return collector.events().size() == 1; }));

  etcd.stop(/*kill=*/true);
  auto down = store->put("/r/2", "while down");
  REQUIRE_FALSE(down.ok());
  CHECK(down.status().code() == Code::kUnavailable);
  CHECK_THAT(down.status().message(), Catch::Contains("etcd is unreachable"));
  CHECK(store->get("/r/1").status().code() == Code::kUnavailable);

  etcd.start();
  // gRPC reconnects by itself; the first writes after the restart may still see the old state.
  Status last;
  bool back = eventually(
      [&] {
        auto put = store->put("/r/3", "after");
        last = put.status();
        return put.ok();
      },
      30s, 50ms);
  INFO(last.to_string());
  REQUIRE(back);
  REQUIRE(eventually([&] { return collector.events().size() == 2; }, 30s));
  auto events = collector.events();
  CHECK(events[1].kv.key == "/r/3");
  CHECK(events[1].kv.value == "after");
  CHECK_FALSE(collector.error().has_value());
  CHECK(store->stats().watch_reconnects >= 1);
}

TEST_CASE("etcd store: a txn over etcd's limits is refused with the limit named, split_txn fits") {
  test::EtcdOptions etcd_options;
  etcd_options.max_txn_ops = 16;
  etcd_options.extra_args = {"--max-request-bytes=65536"};
  test::Etcd etcd(etcd_options);
  auto options = options_for(etcd);
  options.max_txn_ops = 16;
  options.max_request_bytes = 65536;
  auto store = open_store(options);

  std::vector<Op> many;
  for (int i = 0; i < 17; ++i) many.push_back(Op::put(fmt::format("/m/{}", i), "v"));
  auto too_many = store->txn(many);
  CHECK(too_many.status().code() == Code::kResourceExhausted);
  CHECK_THAT(too_many.status().message(), Catch::Contains("--max-txn-ops"));

  auto too_big = store->put("/big", std::string(70000, 'x'));
  CHECK(too_big.status().code() == Code::kResourceExhausted);
  CHECK_THAT(too_big.status().message(), Catch::Contains("--max-request-bytes"));

  std::vector<Op> batch;
  for (int i = 0; i < 40; ++i)
    batch.push_back(Op::put(fmt::format("/b/{:02}", i), std::string(3000, 'v')));
  auto txns = split_txn(batch, store->txn_limits());
  CHECK(txns.size() >= 3);
  for (auto& t : txns) {
    auto r = store->txn(std::move(t));
    INFO(r.status().to_string());
    REQUIRE(r.ok());
  }
  ListOptions all;
  all.prefix = "/b/";
  CHECK(store->list(all)->items.size() == 40);
}

TEST_CASE("etcd store: compaction by another client of the etcd is seen") {
  test::Etcd etcd;
  auto options = options_for(etcd);
  options.sync_interval = 50ms;
  auto store = open_store(options);
  Revision rev = 0;
  for (int i = 0; i < 10; ++i) rev = *store->put("/c/k", std::to_string(i));
  etcd.etcdctl({"compaction", std::to_string(rev - 2)});

  // A read below it says so at once, with the oldest revision left.
  auto old = store->get("/c/k", rev - 5);
  CHECK(old.status().code() == Code::kOutOfRange);
  CHECK_THAT(old.status().message(), Catch::Contains(fmt::format("oldest available {}", rev - 2)));
  CHECK(store->compacted_revision() == rev - 2);
  CHECK(store->get("/c/k", rev - 2).value()->value == "7");

  // Another store (a replica) learns it when it opens, and from its periodic check.
  auto other = open_store(options);
  CHECK(other->compacted_revision() == rev - 2);
  etcd.etcdctl({"compaction", std::to_string(rev)});
  CHECK(eventually([&] { return store->compacted_revision() == rev; }));
  CHECK(store->watch("/c/", rev - 1, Collector().callbacks()).status().code() == Code::kOutOfRange);
}

TEST_CASE("etcd store: no etcd answering means a clear Unavailable at open, bad options refused") {
  EtcdStoreOptions options;
  options.endpoints = {fmt::format("127.0.0.1:{}", test::free_port())};
  options.request_timeout = 500ms;
  auto store = EtcdStore::open(options);
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().code() == Code::kUnavailable);
  CHECK_THAT(store.status().message(),
             Catch::Contains("etcd is unreachable") && Catch::Contains(options.endpoints[0]));

  options.endpoints = {};
  CHECK(EtcdStore::open(options).status().code() == Code::kInvalidArgument);
  options.endpoints = {"etcd-0.local:2379", "etcd-1.local:2379"};
  auto names = EtcdStore::open(options);
  CHECK(names.status().code() == Code::kInvalidArgument);
  CHECK_THAT(names.status().message(), Catch::Contains("IP address"));
  options.endpoints = {"unix:///tmp/x"};
  CHECK(EtcdStore::open(options).status().code() == Code::kInvalidArgument);
}

TEST_CASE("etcd store: several endpoints: the store works while one member address is dead") {
  test::Etcd etcd;
  auto options = options_for(etcd);
  options.endpoints = {fmt::format("127.0.0.1:{}", test::free_port()), etcd.endpoint()};
  auto store = open_store(options);
  CHECK(store->put("/x", "1").ok());
  CHECK(store->get("/x").value()->value == "1");
}

}  // namespace
}  // namespace gantry::cloud
