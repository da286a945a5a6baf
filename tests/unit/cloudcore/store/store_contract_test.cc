// The Store contract (cloudcore/store/store.h), run on every backend: the same file is compiled
// with contract_rocks.cc (unit) and with contract_etcd.cc (integration, a real etcd).
//
// Revisions are written relative to the revision a fresh store starts at (`base`): RocksStore
// starts at 0, etcd at 1. Within one store used by nobody else they are consecutive.
#include "tests/unit/cloudcore/store/store_contract.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/support/test_support.h"

namespace gantry::cloud::contract {
namespace {

using namespace std::chrono_literals;
using test::eventually;

Revision must_put(Store& store, const std::string& key, const std::string& value) {
  auto rev = store.put(key, value);
  INFO(rev.status().to_string());
  REQUIRE(rev.ok());
  return *rev;
}

ListOptions under(std::string prefix, Revision at = 0, size_t limit = 0) {
  ListOptions options;
  options.prefix = std::move(prefix);
  options.at = at;
  options.limit = limit;
  return options;
}

std::vector<std::string> keys_of(const ListResult& list) {
  std::vector<std::string> keys;
  for (const auto& kv : list.items) keys.push_back(kv.key);
  return keys;
}

// Collects what a watch delivers, one entry per callback (= per revision).
class Collector {
 public:
  WatchCallbacks callbacks() {
    return WatchCallbacks{[this](const std::vector<Event>& events) {
                            std::lock_guard lock(mu_);
                            batches_.push_back(events);
                          },
                          [this](const Status& status) {
                            std::lock_guard lock(mu_);
                            error_ = status;
                          }};
  }
  std::vector<std::vector<Event>> batches() {
    std::lock_guard lock(mu_);
    return batches_;
  }
  size_t event_count() {
    std::lock_guard lock(mu_);
    size_t n = 0;
    for (const auto& b : batches_) n += b.size();
    return n;
  }
  std::optional<Status> error() {
    std::lock_guard lock(mu_);
    return error_;
  }

 private:
  std::mutex mu_;
  std::vector<std::vector<Event>> batches_;
  std::optional<Status> error_;
};

// Every callback holds one revision, revisions strictly increase, all events of a callback share
// it. Returns the revisions in delivery order.
std::vector<Revision> check_ordered(const std::vector<std::vector<Event>>& batches) {
  std::vector<Revision> revisions;
  for (const auto& batch : batches) {
    REQUIRE_FALSE(batch.empty());
    Revision rev = batch.front().kv.mod_revision;
    for (const auto& e : batch) REQUIRE(e.kv.mod_revision == rev);
    if (!revisions.empty()) REQUIRE(rev > revisions.back());
    revisions.push_back(rev);
  }
  return revisions;
}

TEST_CASE("contract: every successful txn gets the next revision, shared by its ops") {
  auto backend = make_backend();
  auto store = backend->open();
  const Revision b = store->current_revision();
  CHECK(must_put(*store, "/a", "1") == b + 1);
  CHECK(must_put(*store, "/b", "1") == b + 2);
  CHECK(must_put(*store, "/a", "2") == b + 3);

  auto txn = store->txn({Op::put("/a", "3"), Op::put("/c", "1"), Op::remove("/b")});
  REQUIRE(txn.ok());
  CHECK(txn->revision == b + 4);
  REQUIRE(txn->results.size() == 3);
  CHECK(txn->results[0] == KeyValue{"/a", "3", b + 1, b + 4});
  CHECK(txn->results[1] == KeyValue{"/c", "1", b + 4, b + 4});
  CHECK(txn->results[2] == KeyValue{"/b", "1", b + 2, b + 2});  // the deleted key as it was
  CHECK(store->current_revision() == b + 4);

  auto a = store->get("/a");
  REQUIRE(a.ok());
  REQUIRE(a->has_value());
  CHECK(**a == KeyValue{"/a", "3", b + 1, b + 4});
  CHECK_FALSE(store->get("/b")->has_value());
  // A deleted key that comes back starts a new life.
  CHECK(store->put("/b", "again").ok());
  CHECK(store->get("/b").value()->create_revision == b + 5);
}

TEST_CASE("contract: a failed precondition fails the whole txn, names key and revisions") {
  auto backend = make_backend();
  auto store = backend->open();
  const Revision b = store->current_revision();
  must_put(*store, "/a", "1");

  auto txn = store->txn({Op::put("/b", "new"), Op::put("/a", "2", Revision{b + 7})});
  REQUIRE_FALSE(txn.ok());
  CHECK(txn.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(txn.status().message(),
             Catch::Contains("/a") && Catch::Contains(std::to_string(b + 7)) &&
                 Catch::Contains(fmt::format("current mod_revision {}", b + 1)));
  CHECK_FALSE(store->get("/b")->has_value());
  CHECK(store->current_revision() == b + 1);

  // 0 means "must not exist".
  CHECK(store->put("/a", "x", Revision{0}).status().code() == Code::kFailedPrecondition);
  CHECK(store->put("/new", "x", Revision{0}).ok());
  CHECK(store->put("/a", "2", Revision{b + 1}).ok());

  auto absent = store->remove("/absent");
  CHECK(absent.status().code() == Code::kNotFound);
  CHECK_THAT(absent.status().message(), Catch::Contains("/absent"));
  CHECK(store->txn({Op::put("/e", "1"), Op::remove("/absent")}).status().code() == Code::kNotFound);
  CHECK_FALSE(store->get("/e")->has_value());
  CHECK(store->txn({Op::put("/d", "1"), Op::put("/d", "2")}).status().code() ==
        Code::kInvalidArgument);
  CHECK(store->txn({}).status().code() == Code::kInvalidArgument);
  CHECK(store->put("", "x").status().code() == Code::kInvalidArgument);
  CHECK(store->put(std::string("/nul\0x", 6), "x").status().code() == Code::kInvalidArgument);
  CHECK(store->current_revision() == b + 3);
}

TEST_CASE("contract: concurrent conflicting txns: exactly one of each race wins, none is lost") {
  auto backend = make_backend();
  auto store = backend->open();
  must_put(*store, "/counter", "0");
  constexpr int kThreads = 4, kIncrements = 25;
  std::atomic<int> conflicts{0};
  std::mutex mu;
  std::set<Revision> revisions;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int done = 0; done < kIncrements;) {
        auto cur = store->get("/counter");
        REQUIRE(cur.ok());
        int value = std::stoi((*cur)->value);
        auto rev = store->put("/counter", std::to_string(value + 1), (*cur)->mod_revision);
        if (rev.ok()) {
          ++done;
          std::lock_guard lock(mu);
          CHECK(revisions.insert(*rev).second);
        } else {
          REQUIRE(rev.status().code() == Code::kFailedPrecondition);
          ++conflicts;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(store->get("/counter").value()->value == std::to_string(kThreads * kIncrements));
  CHECK(revisions.size() == size_t{kThreads * kIncrements});
}

TEST_CASE("contract: get and list at a past revision return the state as of that revision") {
  auto backend = make_backend();
  auto store = backend->open();
  const Revision b = store->current_revision();
  must_put(*store, "/k/a", "a1");       // 1
  must_put(*store, "/k/b", "b1");       // 2
  must_put(*store, "/k/a", "a2");       // 3
  REQUIRE(store->remove("/k/b").ok());  // 4
  must_put(*store, "/k/c", "c1");       // 5
  must_put(*store, "/other", "o");      // 6

  CHECK(store->get("/k/a", b + 1).value() == KeyValue{"/k/a", "a1", b + 1, b + 1});
  CHECK(store->get("/k/a", b + 2).value() == KeyValue{"/k/a", "a1", b + 1, b + 1});
  CHECK(store->get("/k/a", b + 3).value() == KeyValue{"/k/a", "a2", b + 1, b + 3});
  CHECK(store->get("/k/b", b + 3).value() == KeyValue{"/k/b", "b1", b + 2, b + 2});
  CHECK_FALSE(store->get("/k/b", b + 4)->has_value());
  CHECK_FALSE(store->get("/k/c", b + 4)->has_value());
  auto future = store->get("/k/a", b + 99);
  CHECK(future.status().code() == Code::kOutOfRange);
  CHECK_THAT(future.status().message(), Catch::Contains("future"));
  CHECK(store->list(under("/k/", b + 99)).status().code() == Code::kOutOfRange);

  auto at2 = store->list(under("/k/", b + 2));
  REQUIRE(at2.ok());
  CHECK(at2->revision == b + 2);
  CHECK(keys_of(*at2) == std::vector<std::string>{"/k/a", "/k/b"});
  CHECK(at2->items[0].value == "a1");

  auto at4 = store->list(under("/k/", b + 4));
  REQUIRE(at4.ok());
  CHECK(keys_of(*at4) == std::vector<std::string>{"/k/a"});
  CHECK(at4->items[0] == KeyValue{"/k/a", "a2", b + 1, b + 3});

  auto now = store->list(under("/k/"));
  REQUIRE(now.ok());
  CHECK(now->revision == b + 6);
  CHECK(keys_of(*now) == std::vector<std::string>{"/k/a", "/k/c"});

  auto everything = store->list(under(""));
  REQUIRE(everything.ok());
  CHECK(keys_of(*everything) == std::vector<std::string>{"/k/a", "/k/c", "/other"});

  ListOptions keys_only_options = under("/k/", b + 5);
  keys_only_options.keys_only = true;
  auto keys_only = store->list(keys_only_options);
  REQUIRE(keys_only.ok());
  CHECK(keys_of(*keys_only) == std::vector<std::string>{"/k/a", "/k/c"});
  CHECK(keys_only->items[0].value.empty());
  CHECK(keys_only->items[1].mod_revision == b + 5);
}

TEST_CASE("contract: paging with start_after and limit returns every key once at one revision") {
  auto backend = make_backend();
  auto store = backend->open();
  std::vector<std::string> expected;
  for (int i = 0; i < 25; ++i) {
    std::string key = fmt::format("/p/{:02}", i);
    expected.push_back(key);
    must_put(*store, key, "v");
  }
  must_put(*store, "/p", "not under /p/");
  must_put(*store, "/q/x", "v");
  Revision listed_at = store->current_revision();

  auto page_all = [&](Revision at) {
    std::vector<std::string> seen;
    ListOptions options = under("/p/", at, 7);
    int pages = 0;
    while (true) {
      auto page = store->list(options);
      REQUIRE(page.ok());
      ++pages;
      CHECK(page->items.size() <= 7);
      for (const auto& kv : page->items) seen.push_back(kv.key);
      if (!page->more) break;
      CHECK(page->items.size() == 7);
      options.start_after = page->items.back().key;
      options.at = page->revision;  // keep paging at the first page's revision
    }
    CHECK(pages == 4);
    return seen;
  };

  SECTION("at the current revision") {
    CHECK(page_all(0) == expected);
  }
  SECTION("at a past revision, with writes in between") {
    must_put(*store, "/p/00a", "later");
    REQUIRE(store->remove("/p/03").ok());
    CHECK(page_all(listed_at) == expected);
  }
  SECTION("a limit equal to the count says there is no more") {
    auto all = store->list(under("/p/", 0, 25));
    REQUIRE(all.ok());
    CHECK(all->items.size() == 25);
    CHECK_FALSE(all->more);
  }
  SECTION("start_after past the last key lists nothing, at a revision") {
    ListOptions options = under("/p/");
    options.start_after = "/p/99";
    auto none = store->list(options);
    REQUIRE(none.ok());
    CHECK(none->items.empty());
    CHECK_FALSE(none->more);
    CHECK(none->revision == listed_at);
  }
}

TEST_CASE("contract: a watch sees every write of concurrent writers once, in revision order") {
  auto backend = make_backend();
  auto store = backend->open();
  must_put(*store, "/w/before", "not delivered");
  Collector collector;
  auto watch = store->watch("/w/", 0, collector.callbacks());
  REQUIRE(watch.ok());

  constexpr int kWriters = 4, kWrites = 60;
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        REQUIRE(store->put(fmt::format("/w/{}/{}", t, i), "v").ok());
        if (i % 10 == 0) REQUIRE(store->put(fmt::format("/elsewhere/{}/{}", t, i), "v").ok());
      }
    });
  }
  for (auto& w : writers) w.join();

  REQUIRE(eventually([&] { return collector.event_count() >= kWriters * kWrites; }));
  auto batches = collector.batches();
  check_ordered(batches);
  std::set<std::string> keys;
  for (const auto& batch : batches) {
    for (const auto& e : batch) {
      CHECK(e.type == EventType::kPut);
      CHECK(e.kv.key.rfind("/w/", 0) == 0);
      CHECK(keys.insert(e.kv.key).second);  // exactly once
    }
  }
  CHECK(keys.size() == size_t{kWriters * kWrites});
  CHECK(collector.event_count() == size_t{kWriters * kWrites});
  CHECK_FALSE(collector.error().has_value());
}

TEST_CASE("contract: replayed events carry the same values and previous values as live ones") {
  auto backend = make_backend();
  auto store = backend->open();
  const Revision b = store->current_revision();
  Collector live;
  auto live_watch = store->watch("/k", 0, live.callbacks());
  REQUIRE(live_watch.ok());
  must_put(*store, "/k", "v1");
  must_put(*store, "/k", "v2");
  REQUIRE(store->txn({Op::remove("/k"), Op::put("/k2", "x")}).ok());
  REQUIRE(eventually([&] { return live.batches().size() == 3; }));

  Collector from_now;
  auto from_now_watch = store->watch("/k", 0, from_now.callbacks());
  REQUIRE(from_now_watch.ok());

  Collector past;
  auto past_watch = store->watch("/k", b + 1, past.callbacks());
  REQUIRE(past_watch.ok());
  REQUIRE(eventually([&] { return past.batches().size() == 2; }));
  auto live_batches = live.batches();
  auto past_batches = past.batches();
  auto same = [](const Event& x, const Event& y) {
    return x.type == y.type && x.kv == y.kv && x.prev == y.prev;
  };
  for (size_t i = 0; i < 2; ++i) {
    REQUIRE(past_batches[i].size() == live_batches[i + 1].size());
    for (size_t j = 0; j < past_batches[i].size(); ++j) {
      CHECK(same(past_batches[i][j], live_batches[i + 1][j]));
    }
  }
  REQUIRE(live_batches[2].size() == 2);  // both ops of the txn, in op order
  const Event& del = live_batches[2][0];
  CHECK(del.type == EventType::kDelete);
  CHECK(del.kv == KeyValue{"/k", "v2", b + 1, b + 3});
  CHECK(del.prev == KeyValue{"/k", "v2", b + 1, b + 2});
  CHECK(live_batches[2][1].kv == KeyValue{"/k2", "x", b + 3, b + 3});
  CHECK(live_batches[1][0].prev == KeyValue{"/k", "v1", b + 1, b + 1});
  CHECK_FALSE(live_batches[0][0].prev.has_value());
  CHECK(from_now.event_count() == 0);  // "from now" replays nothing
}

TEST_CASE("contract: a watch from an old revision replays history, then goes live, no gap") {
  auto backend = make_backend();
  auto store = backend->open();
  const Revision b = store->current_revision();
  for (int i = 0; i < 100; ++i) must_put(*store, fmt::format("/h/{}", i % 37), std::to_string(i));

  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 3; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop && i < 2000; ++i) {
        REQUIRE(store->put(fmt::format("/h/{}/{}", t, i % 50), std::to_string(i)).ok());
      }
    });
  }
  // Start while the writers run, so the switch from history to live happens under load.
  REQUIRE(eventually([&] { return store->current_revision() > b + 150; }, 60s));
  Collector collector;
  auto watch = store->watch("/h/", b + 50, collector.callbacks());
  REQUIRE(watch.ok());
  REQUIRE(eventually([&] { return store->current_revision() > b + 300; }, 60s));
  stop = true;
  for (auto& w : writers) w.join();

  Revision last = store->current_revision();
  REQUIRE(eventually([&] {
    auto batches = collector.batches();
    return !batches.empty() && batches.back().front().kv.mod_revision == last;
  }));
  auto revisions = check_ordered(collector.batches());
  REQUIRE(revisions.size() == last - (b + 50));
  for (size_t i = 0; i < revisions.size(); ++i) CHECK(revisions[i] == b + 51 + i);
  CHECK_FALSE(collector.error().has_value());
}

TEST_CASE("contract: a watch from a revision above the current one waits for it") {
  auto backend = make_backend();
  auto store = backend->open();
  const Revision b = store->current_revision();
  Collector collector;
  auto watch = store->watch("/f/", b + 2, collector.callbacks());
  REQUIRE(watch.ok());
  must_put(*store, "/f/1", "skipped");  // b+1
  must_put(*store, "/f/2", "skipped");  // b+2
  must_put(*store, "/f/3", "seen");     // b+3
  REQUIRE(eventually([&] { return collector.event_count() == 1; }));
  CHECK(collector.batches()[0][0].kv.key == "/f/3");
}

TEST_CASE("contract: compaction drops history, reads or watches below it fail with OutOfRange") {
  auto backend = make_backend();
  Revision b = 0;
  {
    auto store = backend->open();
    b = store->current_revision();
    must_put(*store, "/c/stable", "s");  // 1: only version, must survive compaction
    for (int i = 0; i < 10; ++i) must_put(*store, "/c/hot", std::to_string(i));  // 2..11
    must_put(*store, "/c/gone", "g");                                            // 12
    REQUIRE(store->remove("/c/gone").ok());                                      // 13
    must_put(*store, "/c/hot", "late");                                          // 14

    REQUIRE(store->compact(b + 13).ok());
    CHECK(store->compacted_revision() == b + 13);

    auto old = store->get("/c/hot", b + 5);
    CHECK(old.status().code() == Code::kOutOfRange);
    CHECK_THAT(old.status().message(),
               Catch::Contains(fmt::format("revision {} has been compacted (oldest available {})",
                                           b + 5, b + 13)));
    CHECK(store->list(under("/c/", b + 12)).status().code() == Code::kOutOfRange);
    Collector too_old;
    auto watch = store->watch("/c/", b + 12, too_old.callbacks());
    CHECK(watch.status().code() == Code::kOutOfRange);
    CHECK_THAT(watch.status().message(),
               Catch::Contains(fmt::format("revision {} has been compacted", b + 12)));

    // The state as of the compacted revision is intact.
    auto at13 = store->list(under("/c/", b + 13));
    REQUIRE(at13.ok());
    CHECK(keys_of(*at13) == std::vector<std::string>{"/c/hot", "/c/stable"});
    CHECK(at13->items[0] == KeyValue{"/c/hot", "9", b + 2, b + 11});
    CHECK(store->get("/c/stable", b + 13).value() == KeyValue{"/c/stable", "s", b + 1, b + 1});
    CHECK(store->get("/c/hot").value()->value == "late");

    Collector from13;
    auto ok_watch = store->watch("/c/", b + 13, from13.callbacks());
    REQUIRE(ok_watch.ok());
    REQUIRE(eventually([&] { return from13.batches().size() == 1; }));
    CHECK(from13.batches()[0][0].prev == KeyValue{"/c/hot", "9", b + 2, b + 11});

    CHECK(store->compact(b + 100).code() == Code::kOutOfRange);
    CHECK(store->compact(b + 3).ok());  // below the floor: nothing to do
    CHECK(store->compacted_revision() == b + 13);
  }
  auto reopened = backend->open();
  CHECK(reopened->compacted_revision() == b + 13);
  CHECK(reopened->current_revision() == b + 14);
  CHECK(reopened->get("/c/hot", b + 12).status().code() == Code::kOutOfRange);
  CHECK(must_put(*reopened, "/c/next", "n") == b + 15);
}

TEST_CASE("contract: automatic compaction keeps the configured number of revisions") {
  auto backend = make_backend();
  ContractOptions options;
  options.keep_revisions = 10;
  options.auto_compact_interval = 20ms;
  auto store = backend->open(options);
  const Revision b = store->current_revision();
  for (int i = 0; i < 50; ++i) must_put(*store, fmt::format("/a/{}", i % 5), std::to_string(i));
  REQUIRE(eventually([&] { return store->compacted_revision() == b + 40; }));
  CHECK(store->get("/a/0", b + 39).status().code() == Code::kOutOfRange);
  CHECK(store->get("/a/0", b + 40).value()->value == "35");
  auto all = store->list(under("/a/"));
  REQUIRE(all.ok());
  CHECK(all->items.size() == 5);
}

TEST_CASE("contract: a watch handle can be destroyed from inside its own callback") {
  auto backend = make_backend();
  auto store = backend->open();
  std::unique_ptr<WatchHandle> handle;
  std::mutex mu;
  std::atomic<int> calls{0};
  WatchCallbacks cbs{[&](const std::vector<Event>&) {
                       ++calls;
                       std::lock_guard lock(mu);
                       handle.reset();
                     },
                     nullptr};
  {
    std::lock_guard lock(mu);
    auto watch = store->watch("", 0, std::move(cbs));
    REQUIRE(watch.ok());
    handle = std::move(watch).value();
  }
  must_put(*store, "/x", "1");
  REQUIRE(eventually([&] {
    std::lock_guard lock(mu);
    return handle == nullptr;
  }));
  must_put(*store, "/x", "2");
  Collector after;  // the second write was delivered to a watch opened before it...
  auto probe = store->watch("/x", store->current_revision() - 1, after.callbacks());
  REQUIRE(probe.ok());
  REQUIRE(eventually([&] { return after.event_count() == 1; }));
  CHECK(calls.load() == 1);  // ...but not to the destroyed one
}

TEST_CASE("contract: closing the store ends open watches with kCancelled") {
  auto backend = make_backend();
  auto store = backend->open();
  Collector collector;
  auto watch = store->watch("", 0, collector.callbacks());
  REQUIRE(watch.ok());
  must_put(*store, "/x", "1");
  REQUIRE(eventually([&] { return collector.event_count() == 1; }));
  store.reset();  // the handle outlives the store
  REQUIRE(collector.error().has_value());
  CHECK(collector.error()->code() == Code::kCancelled);
  CHECK(collector.event_count() == 1);
}

TEST_CASE("contract: reopening a store restores data and revisions") {
  auto backend = make_backend();
  Revision b = 0;
  {
    auto store = backend->open();
    b = store->current_revision();
    for (int i = 0; i < 20; ++i) must_put(*store, fmt::format("/r/{}", i % 4), std::to_string(i));
    REQUIRE(store->remove("/r/3").ok());  // 21
  }
  auto store = backend->open();
  CHECK(store->current_revision() == b + 21);
  auto all = store->list(under("/r/"));
  REQUIRE(all.ok());
  CHECK(keys_of(*all) == std::vector<std::string>{"/r/0", "/r/1", "/r/2"});
  CHECK(all->items[2] == KeyValue{"/r/2", "18", b + 3, b + 19});
  CHECK(store->get("/r/3", b + 20).value()->value == "19");
  CHECK(must_put(*store, "/r/new", "x") == b + 22);
}

TEST_CASE("contract: split_txn keeps op order within the store's txn limits") {
  auto backend = make_backend();
  auto store = backend->open();
  TxnLimits limits = store->txn_limits();
  if (limits.max_ops == 0) limits.max_ops = 100;  // RocksStore has none: test the splitter
  std::vector<Op> ops;
  for (size_t i = 0; i < limits.max_ops * 2 + 3; ++i)
    ops.push_back(Op::put(fmt::format("/s/{:05}", i), "v"));
  auto txns = split_txn(std::move(ops), limits);
  REQUIRE(txns.size() == 3);
  CHECK(txns[0].size() == limits.max_ops);
  CHECK(txns[2].size() == 3);
  CHECK(txns[1].front().key == fmt::format("/s/{:05}", limits.max_ops));
  for (auto& t : txns) REQUIRE(store->txn(std::move(t)).ok());
  auto all = store->list(under("/s/"));
  REQUIRE(all.ok());
  CHECK(all->items.size() == limits.max_ops * 2 + 3);
}

// Not a contract, a measurement (docs/benchmarks.md): the same code on each backend.
//   build/tests/unit/cloudcore/store/unit_cloudcore_store_contract_rocks "[.bench]"
//   build/tests/unit/cloudcore/store/integration_store_contract_etcd "[.bench]"
TEST_CASE("bench: write throughput and watch latency", "[.bench]") {
  auto backend = make_backend();
  auto store = backend->open();
  auto seconds_since = [](std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  for (int writers : {1, 16, 64}) {
    const int per_writer = writers == 1 ? 500 : 16000 / writers;
    auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> threads;
    for (int t = 0; t < writers; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < per_writer; ++i)
          REQUIRE(store->put(fmt::format("/bench/{}/{}", t, i), std::string(200, 'v')).ok());
      });
    }
    for (auto& t : threads) t.join();
    std::printf("%d writers x %d puts of 200 B: %.0f txn/s\n", writers, per_writer,
                double(writers * per_writer) / seconds_since(start));
  }
  {
    // Status-writer-like: one writer, txns of 100 puts of 500 B.
    auto start = std::chrono::steady_clock::now();
    constexpr int kTxns = 100;
    for (int t = 0; t < kTxns; ++t) {
      std::vector<Op> ops;
      for (int i = 0; i < 100; ++i)
        ops.push_back(Op::put(fmt::format("/bench/status/{}", i), std::string(500, 's')));
      REQUIRE(store->txn(std::move(ops)).ok());
    }
    std::printf("1 writer, txns of 100 puts of 500 B: %.0f puts/s\n",
                kTxns * 100 / seconds_since(start));
  }
  {
    // Watch latency: put -> on_events, one write at a time.
    std::mutex mu;
    std::condition_variable cv;
    Revision seen = 0;
    std::chrono::steady_clock::time_point delivered;
    auto watch = store->watch("/lat/", 0,
                              WatchCallbacks{[&](const std::vector<Event>& events) {
                                               std::lock_guard lock(mu);
                                               seen = events.front().kv.mod_revision;
                                               delivered = std::chrono::steady_clock::now();
                                               cv.notify_all();
                                             },
                                             nullptr});
    REQUIRE(watch.ok());
    std::vector<double> ms;
    for (int i = 0; i < 300; ++i) {
      auto start = std::chrono::steady_clock::now();
      Revision rev = must_put(*store, "/lat/k", std::to_string(i));
      std::unique_lock lock(mu);
      REQUIRE(cv.wait_for(lock, 10s, [&] { return seen >= rev; }));
      ms.push_back(std::chrono::duration<double, std::milli>(delivered - start).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf(
        "watch latency (put start -> event delivered), 300 writes: p50 %.2f ms, p99 %.2f ms\n",
        ms[ms.size() / 2], ms[ms.size() * 99 / 100]);
  }
}

}  // namespace
}  // namespace gantry::cloud::contract
