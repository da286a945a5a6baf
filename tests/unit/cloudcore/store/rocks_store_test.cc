#include "cloudcore/store/rocks_store.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "tests/support/test_support.h"

namespace gantry::cloud {
namespace {

using namespace std::chrono_literals;
using test::eventually;
using test::TempDir;

RocksStoreOptions options_in(const TempDir& dir) {
  RocksStoreOptions options;
  options.path = (dir / "store").string();
  options.auto_compact_interval = 0ms;  // tests compact explicitly unless they test the policy
  return options;
}

std::unique_ptr<RocksStore> open_store(const RocksStoreOptions& options) {
  auto store = RocksStore::open(options);
  INFO(store.status().to_string());
  REQUIRE(store.ok());
  return std::move(store).value();
}

Revision must_put(Store& store, const std::string& key, const std::string& value) {
  auto rev = store.put(key, value);
  INFO(rev.status().to_string());
  REQUIRE(rev.ok());
  return *rev;
}

// (GCC's -Wextra flags designated initializers that leave members to their defaults.)
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

TEST_CASE("every successful txn gets the next revision, starting at 1, shared by its ops") {
  TempDir dir;
  auto store = open_store(options_in(dir));
  CHECK(store->current_revision() == 0);
  CHECK(must_put(*store, "/a", "1") == 1);
  CHECK(must_put(*store, "/b", "1") == 2);
  CHECK(must_put(*store, "/a", "2") == 3);

  auto txn = store->txn({Op::put("/a", "3"), Op::put("/c", "1"), Op::remove("/b")});
  REQUIRE(txn.ok());
  CHECK(txn->revision == 4);
  REQUIRE(txn->results.size() == 3);
  CHECK(txn->results[0] == KeyValue{"/a", "3", 1, 4});
  CHECK(txn->results[1] == KeyValue{"/c", "1", 4, 4});
  CHECK(txn->results[2] == KeyValue{"/b", "1", 2, 2});  // the deleted key as it was
  CHECK(store->current_revision() == 4);

  auto a = store->get("/a");
  REQUIRE(a.ok());
  REQUIRE(a->has_value());
  CHECK(**a == KeyValue{"/a", "3", 1, 4});
  CHECK_FALSE(store->get("/b")->has_value());
}

TEST_CASE("a failed precondition fails the whole txn, names key and revisions, writes nothing") {
  TempDir dir;
  auto store = open_store(options_in(dir));
  must_put(*store, "/a", "1");

  auto txn = store->txn({Op::put("/b", "new"), Op::put("/a", "2", Revision{7})});
  REQUIRE_FALSE(txn.ok());
  CHECK(txn.status().code() == Code::kFailedPrecondition);
  CHECK_THAT(txn.status().message(), Catch::Contains("/a") && Catch::Contains("7") &&
                                         Catch::Contains("current mod_revision 1"));
  CHECK_FALSE(store->get("/b")->has_value());
  CHECK(store->current_revision() == 1);

  // 0 means "must not exist".
  CHECK(store->put("/a", "x", Revision{0}).status().code() == Code::kFailedPrecondition);
  CHECK(store->put("/new", "x", Revision{0}).ok());
  CHECK(store->put("/a", "2", Revision{1}).ok());

  CHECK(store->remove("/absent").status().code() == Code::kNotFound);
  CHECK(store->txn({Op::put("/d", "1"), Op::put("/d", "2")}).status().code() ==
        Code::kInvalidArgument);
  CHECK(store->txn({}).status().code() == Code::kInvalidArgument);
  CHECK(store->put("", "x").status().code() == Code::kInvalidArgument);
  CHECK(store->put(std::string("/nul\0x", 6), "x").status().code() == Code::kInvalidArgument);
  CHECK(store->current_revision() == 3);
}

TEST_CASE("get and list at a past revision return the state as of that revision") {
  TempDir dir;
  auto store = open_store(options_in(dir));
  must_put(*store, "/k/a", "a1");       // 1
  must_put(*store, "/k/b", "b1");       // 2
  must_put(*store, "/k/a", "a2");       // 3
  REQUIRE(store->remove("/k/b").ok());  // 4
  must_put(*store, "/k/c", "c1");       // 5
  must_put(*store, "/other", "o");      // 6

  CHECK(store->get("/k/a", 1).value() == KeyValue{"/k/a", "a1", 1, 1});
  CHECK(store->get("/k/a", 2).value() == KeyValue{"/k/a", "a1", 1, 1});
  CHECK(store->get("/k/a", 3).value() == KeyValue{"/k/a", "a2", 1, 3});
  CHECK(store->get("/k/b", 3).value() == KeyValue{"/k/b", "b1", 2, 2});
  CHECK_FALSE(store->get("/k/b", 4)->has_value());
  CHECK_FALSE(store->get("/k/c", 4)->has_value());
  CHECK(store->get("/k/a", 99).status().code() == Code::kOutOfRange);

  auto at2 = store->list(under("/k/", 2));
  REQUIRE(at2.ok());
  CHECK(at2->revision == 2);
  CHECK(keys_of(*at2) == std::vector<std::string>{"/k/a", "/k/b"});
  CHECK(at2->items[0].value == "a1");

  auto at4 = store->list(under("/k/", 4));
  REQUIRE(at4.ok());
  CHECK(keys_of(*at4) == std::vector<std::string>{"/k/a"});
  CHECK(at4->items[0] == KeyValue{"/k/a", "a2", 1, 3});

  auto now = store->list(under("/k/"));
  REQUIRE(now.ok());
  CHECK(now->revision == 6);
  CHECK(keys_of(*now) == std::vector<std::string>{"/k/a", "/k/c"});

  ListOptions keys_only_options = under("/k/", 5);
  keys_only_options.keys_only = true;
  auto keys_only = store->list(keys_only_options);
  REQUIRE(keys_only.ok());
  CHECK(keys_of(*keys_only) == std::vector<std::string>{"/k/a", "/k/c"});
  CHECK(keys_only->items[0].value.empty());
  CHECK(keys_only->items[1].mod_revision == 5);
}

TEST_CASE("paging with start_after and limit returns every key exactly once at one revision") {
  TempDir dir;
  auto store = open_store(options_in(dir));
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
}

TEST_CASE("a watch sees every write of concurrent writers exactly once, in revision order") {
  TempDir dir;
  auto store = open_store(options_in(dir));
  must_put(*store, "/w/before", "not delivered");
  Collector collector;
  auto watch = store->watch("/w/", 0, collector.callbacks());
  REQUIRE(watch.ok());

  constexpr int kWriters = 4, kWrites = 150;
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

TEST_CASE("replayed events carry the same values and previous values as live events") {
  TempDir dir;
  auto store = open_store(options_in(dir));
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
  // Revision 0 means "from now", so replay from revision 1 and compare from revision 2 on.
  auto past_watch = store->watch("/k", 1, past.callbacks());
  REQUIRE(past_watch.ok());
  REQUIRE(eventually([&] { return past.batches().size() == 2; }));
  auto live_batches = live.batches();
  auto past_batches = past.batches();
  auto same = [](const Event& a, const Event& b) {
    return a.type == b.type && a.kv == b.kv && a.prev == b.prev;
  };
  for (size_t i = 0; i < 2; ++i) {
    REQUIRE(past_batches[i].size() == live_batches[i + 1].size());
    for (size_t j = 0; j < past_batches[i].size(); ++j) {
      CHECK(same(past_batches[i][j], live_batches[i + 1][j]));
    }
  }
  const Event& del = live_batches[2][0];
  CHECK(del.type == EventType::kDelete);
  CHECK(del.kv == KeyValue{"/k", "v2", 1, 3});
  CHECK(del.prev == KeyValue{"/k", "v2", 1, 2});
  CHECK(live_batches[1][0].prev == KeyValue{"/k", "v1", 1, 1});
  CHECK_FALSE(live_batches[0][0].prev.has_value());
  CHECK(from_now.event_count() == 0);  // "from now" replays nothing
}

TEST_CASE("a watch from an old revision replays history then goes live with no gap or duplicate") {
  TempDir dir;
  auto options = options_in(dir);
  options.watch_queue_limit = 1000000;  // this test is about ordering, not overflow
  auto store = open_store(options);
  for (int i = 0; i < 300; ++i) must_put(*store, fmt::format("/h/{}", i % 37), std::to_string(i));

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
  REQUIRE(eventually([&] { return store->current_revision() > 400; }));
  Collector collector;
  auto watch = store->watch("/h/", 50, collector.callbacks());
  REQUIRE(watch.ok());
  REQUIRE(eventually([&] { return store->current_revision() > 700; }));
  stop = true;
  for (auto& w : writers) w.join();

  Revision last = store->current_revision();
  REQUIRE(eventually([&] {
    auto b = collector.batches();
    return !b.empty() && b.back().front().kv.mod_revision == last;
  }));
  auto revisions = check_ordered(collector.batches());
  REQUIRE(revisions.size() == last - 50);
  for (size_t i = 0; i < revisions.size(); ++i) CHECK(revisions[i] == 51 + i);
  CHECK_FALSE(collector.error().has_value());
}

TEST_CASE("compaction drops history and reads or watches below it fail with OutOfRange") {
  TempDir dir;
  auto options = options_in(dir);
  std::optional<Revision> compacted_at;
  {
    auto store = open_store(options);
    must_put(*store, "/c/stable", "s");  // 1: only version, must survive compaction
    for (int i = 0; i < 10; ++i) must_put(*store, "/c/hot", std::to_string(i));  // 2..11
    must_put(*store, "/c/gone", "g");                                            // 12
    REQUIRE(store->remove("/c/gone").ok());                                      // 13
    must_put(*store, "/c/hot", "late");                                          // 14

    REQUIRE(store->compact(13).ok());
    compacted_at = 13;
    CHECK(store->compacted_revision() == 13);

    auto old = store->get("/c/hot", 5);
    CHECK(old.status().code() == Code::kOutOfRange);
    CHECK_THAT(old.status().message(),
               Catch::Contains("revision 5 has been compacted (oldest available 13)"));
    CHECK(store->list(under("/c/", 12)).status().code() == Code::kOutOfRange);
    Collector too_old;
    auto watch = store->watch("/c/", 12, too_old.callbacks());
    CHECK(watch.status().code() == Code::kOutOfRange);
    CHECK_THAT(watch.status().message(), Catch::Contains("revision 12 has been compacted"));

    // The state as of the compacted revision is intact.
    auto at13 = store->list(under("/c/", 13));
    REQUIRE(at13.ok());
    CHECK(keys_of(*at13) == std::vector<std::string>{"/c/hot", "/c/stable"});
    CHECK(at13->items[0] == KeyValue{"/c/hot", "9", 2, 11});
    CHECK(store->get("/c/stable", 13).value() == KeyValue{"/c/stable", "s", 1, 1});
    CHECK(store->get("/c/hot").value()->value == "late");

    Collector from13;
    auto ok_watch = store->watch("/c/", 13, from13.callbacks());
    REQUIRE(ok_watch.ok());
    REQUIRE(eventually([&] { return from13.batches().size() == 1; }));
    CHECK(from13.batches()[0][0].prev == KeyValue{"/c/hot", "9", 2, 11});

    CHECK(store->compact(100).code() == Code::kOutOfRange);
    CHECK(store->compact(3).ok());  // below the floor: nothing to do
    CHECK(store->compacted_revision() == 13);
  }
  auto reopened = open_store(options);
  CHECK(reopened->compacted_revision() == *compacted_at);
  CHECK(reopened->current_revision() == 14);
  CHECK(reopened->get("/c/hot", 12).status().code() == Code::kOutOfRange);
  CHECK(must_put(*reopened, "/c/next", "n") == 15);
}

TEST_CASE("automatic compaction keeps the configured number of revisions") {
  TempDir dir;
  auto options = options_in(dir);
  options.keep_revisions = 10;
  options.keep_duration = std::chrono::seconds(0);
  options.auto_compact_interval = 20ms;
  auto store = open_store(options);
  for (int i = 0; i < 50; ++i) must_put(*store, fmt::format("/a/{}", i % 5), std::to_string(i));
  REQUIRE(eventually([&] { return store->compacted_revision() == 40; }));
  CHECK(store->get("/a/0", 39).status().code() == Code::kOutOfRange);
  CHECK(store->get("/a/0", 40).value()->value == "35");
  auto all = store->list(under("/a/"));
  REQUIRE(all.ok());
  CHECK(all->items.size() == 5);
}

TEST_CASE("a watcher that falls behind is cancelled with a status and writers never wait for it") {
  TempDir dir;
  auto options = options_in(dir);
  options.watch_queue_limit = 10;
  auto store = open_store(options);

  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> calls{0};
  std::mutex mu;
  std::optional<Status> error;
  WatchCallbacks cbs{[&](const std::vector<Event>&) {
                       if (calls++ == 0) released.wait();  // a stuck consumer
                     },
                     [&](const Status& s) {
                       std::lock_guard lock(mu);
                       error = s;
                     }};
  auto slow = store->watch("/s/", 0, std::move(cbs));
  REQUIRE(slow.ok());
  Collector healthy;
  auto healthy_watch = store->watch("/s/", 0, healthy.callbacks());
  REQUIRE(healthy_watch.ok());

  // All of these complete although the slow watcher has not consumed anything. The healthy one
  // is let to keep up after each write (a loaded machine may not run it in time otherwise: then
  // it would fall behind too, which is not what this test is about).
  for (int i = 0; i < 50; ++i) {
    must_put(*store, "/s/x", std::to_string(i));
    REQUIRE(eventually([&] { return healthy.event_count() == static_cast<size_t>(i + 1); }));
  }
  CHECK(store->stats().watchers_overflowed == 1);
  release.set_value();

  REQUIRE(eventually([&] {
    std::lock_guard lock(mu);
    return error.has_value();
  }));
  {
    std::lock_guard lock(mu);
    CHECK(error->code() == Code::kResourceExhausted);
    CHECK_THAT(error->message(), Catch::Contains("fell behind"));
  }
  CHECK(calls.load() < 50);
  must_put(*store, "/s/x", "after");
  REQUIRE(eventually([&] { return healthy.event_count() == 51; }));
  CHECK_FALSE(healthy.error().has_value());
}

TEST_CASE("a watch handle can be destroyed from inside its own callback") {
  TempDir dir;
  auto store = open_store(options_in(dir));
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
  CHECK(calls.load() == 1);
}

TEST_CASE("closing the store ends open watches with kCancelled") {
  TempDir dir;
  auto store = open_store(options_in(dir));
  Collector collector;
  auto watch = store->watch("", 0, collector.callbacks());
  REQUIRE(watch.ok());
  must_put(*store, "/x", "1");
  store.reset();  // the handle outlives the store
  REQUIRE(collector.error().has_value());
  CHECK(collector.error()->code() == Code::kCancelled);
  CHECK(collector.event_count() == 1);
}

TEST_CASE("reopening a store restores data and revisions") {
  TempDir dir;
  auto options = options_in(dir);
  {
    auto store = open_store(options);
    for (int i = 0; i < 20; ++i) must_put(*store, fmt::format("/r/{}", i % 4), std::to_string(i));
    REQUIRE(store->remove("/r/3").ok());  // 21
  }
  auto store = open_store(options);
  CHECK(store->current_revision() == 21);
  auto all = store->list(under("/r/"));
  REQUIRE(all.ok());
  CHECK(keys_of(*all) == std::vector<std::string>{"/r/0", "/r/1", "/r/2"});
  CHECK(all->items[2] == KeyValue{"/r/2", "18", 3, 19});
  CHECK(store->get("/r/3", 20).value()->value == "19");
  CHECK(must_put(*store, "/r/new", "x") == 22);
}

// ---- kill -9 ---------------------------------------------------------------------------------

struct AckRecord {
  uint64_t revision;
  uint32_t writer;
  uint32_t index;
};

constexpr char kChildTestName[] = "kill -9 child writes until killed and reports acked revisions";
constexpr int kChildWriters = 4;

std::string ack_key(uint32_t writer, uint32_t index) {
  return fmt::format("/d/{}/{}", writer, index);
}

// Runs only inside the child the kill -9 test starts (hidden otherwise).
TEST_CASE("kill -9 child writes until killed and reports acked revisions", "[.]") {
  const char* dir = std::getenv("GANTRY_STORE_CHILD_DIR");
  const char* fd_text = std::getenv("GANTRY_STORE_CHILD_FD");
  if (dir == nullptr || fd_text == nullptr) return;
  int fd = std::atoi(fd_text);
  RocksStoreOptions options;
  options.path = dir;
  auto store = RocksStore::open(options);
  if (!store.ok()) _exit(3);
  std::vector<std::thread> writers;
  for (uint32_t w = 0; w < kChildWriters; ++w) {
    writers.emplace_back([&, w] {
      for (uint32_t i = 0;; ++i) {
        std::vector<Op> ops{Op::put(ack_key(w, i), std::string(100, 'x'))};
        if (i % 5 == 0) ops.push_back(Op::put(ack_key(w, i) + "/extra", "y"));
        auto result = (*store)->txn(std::move(ops));
        if (!result.ok()) _exit(4);
        AckRecord record{result->revision, w, i};
        // Records are smaller than PIPE_BUF, so concurrent writes do not interleave.
        if (::write(fd, &record, sizeof record) != sizeof record) _exit(5);
      }
    });
  }
  for (auto& t : writers) t.join();
}

TEST_CASE("every acknowledged write survives kill -9 and revisions keep increasing after it") {
  TempDir dir;
  std::string path = (dir / "store").string();
  // Creating the store first means the child only ever reopens (the common case after a crash).
  { open_store(options_in(dir)); }

  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    ::close(fds[0]);
    ::setenv("GANTRY_STORE_CHILD_DIR", path.c_str(), 1);
    ::setenv("GANTRY_STORE_CHILD_FD", std::to_string(fds[1]).c_str(), 1);
    // exec rather than keep running in the forked copy of this multi-threaded process.
    const char* argv[] = {"store_child", kChildTestName, nullptr};
    ::execv("/proc/self/exe", const_cast<char* const*>(argv));
    _exit(127);
  }
  ::close(fds[1]);

  std::vector<AckRecord> acked;
  auto read_records = [&](int timeout_ms) {
    pollfd pfd{fds[0], POLLIN, 0};
    if (::poll(&pfd, 1, timeout_ms) <= 0) return false;
    AckRecord buffer[256];
    ssize_t n = ::read(fds[0], buffer, sizeof buffer);
    if (n <= 0) return false;
    REQUIRE(n % sizeof(AckRecord) == 0);
    acked.insert(acked.end(), buffer, buffer + n / sizeof(AckRecord));
    return true;
  };
  auto deadline = std::chrono::steady_clock::now() + 60s;
  while (acked.size() < 2000 && std::chrono::steady_clock::now() < deadline) {
    if (!read_records(1000)) {
      int status = 0;
      if (::waitpid(child, &status, WNOHANG) == child) FAIL("the child exited: " << status);
    }
  }
  REQUIRE(::kill(child, SIGKILL) == 0);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  while (read_records(0)) {
  }
  ::close(fds[0]);
  REQUIRE(acked.size() >= 100);

  auto store = open_store(options_in(dir));
  Revision max_acked = 0;
  std::set<Revision> revisions;
  for (const auto& record : acked) {
    max_acked = std::max(max_acked, record.revision);
    CHECK(revisions.insert(record.revision).second);  // no two txns share a revision
    auto kv = store->get(ack_key(record.writer, record.index));
    REQUIRE(kv.ok());
    REQUIRE(kv->has_value());
    CHECK((*kv)->mod_revision == record.revision);
    if (record.index % 5 == 0) {
      CHECK(store->get(ack_key(record.writer, record.index) + "/extra").value()->mod_revision ==
            record.revision);
    }
  }
  Revision recovered = store->current_revision();
  CHECK(recovered >= max_acked);
  CHECK(must_put(*store, "/after-crash", "x") == recovered + 1);
  INFO("acked " << acked.size() << " writes, max revision " << max_acked << ", recovered "
                << recovered);
  SUCCEED();
}

// ---- group commit figure (hidden: run with "[.bench]") ----------------------------------------

TEST_CASE("group commit: many concurrent small writes cost few fsyncs", "[.bench]") {
  auto window = GENERATE(0ms, 2ms);
  auto threads_count = GENERATE(1, 16, 64);
  TempDir dir;
  auto options = options_in(dir);
  options.group_commit_window = window;
  auto store = open_store(options);
  const int kThreads = threads_count, kWrites = threads_count == 1 ? 500 : 16000 / threads_count;
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kWrites; ++i) {
        REQUIRE(store->put(fmt::format("/bench/{}/{}", t, i), std::string(200, 'v')).ok());
      }
    });
  }
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto stats = store->stats();
  std::printf(
      "group commit (window %d ms): %d writers x %d puts of 200 B: %llu txns in %llu "
      "fsynced batches (%.1f txns/fsync), %.0f writes/s\n",
      static_cast<int>(window.count()), kThreads, kWrites,
      static_cast<unsigned long long>(stats.txns_committed),
      static_cast<unsigned long long>(stats.batches_written),
      double(stats.txns_committed) / double(stats.batches_written),
      double(stats.txns_committed) / seconds);
  CHECK(stats.txns_committed == uint64_t(kThreads * kWrites));
  if (kThreads > 1) CHECK(stats.batches_written < stats.txns_committed);
}

}  // namespace
}  // namespace gantry::cloud
