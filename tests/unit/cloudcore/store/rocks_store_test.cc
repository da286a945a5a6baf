// RocksStore beyond the Store contract (store_contract_test.cc, run on every backend): watcher
// overflow, durability under kill -9, group commit.
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
