// The pieces every level-triggered controller shares:
// - WorkQueue: a keyed queue. A key is queued at most once (adding it again while queued is a
//   no-op; adding it while a worker holds it re-queues it once the worker is done), can be added
//   after a delay, and failing keys are retried with a per-key exponential back-off. Time comes
//   from an injected clock so tests never wait for real time.
// - Informer: lists some store prefixes at one revision, then follows them with one watch each,
//   and hands every change (and, after a watch error, a full re-list) to the controller's
//   handler, serialised. It remembers, per prefix, the highest revision it has delivered, so a
//   controller can tell whether the cache already shows its own last write (expectations).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "cloudcore/store/store.h"
#include "common/base/status.h"

namespace gantry::cloud::controllers {

// Time as controllers see it. Production uses the steady clock; tests use ManualClock.
class ControllerClock {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;
  virtual ~ControllerClock() = default;
  virtual TimePoint now() const = 0;
  // Unix milliseconds (for timestamps written into objects).
  virtual int64_t unix_ms() const = 0;
};

// The real clocks.
const ControllerClock& system_clock();

// A clock that moves only when told to. Thread-safe.
class ManualClock : public ControllerClock {
 public:
  explicit ManualClock(int64_t unix_ms = 1'800'000'000'000);
  TimePoint now() const override;
  int64_t unix_ms() const override;
  void advance(std::chrono::milliseconds by);

 private:
  mutable std::mutex mu_;
  TimePoint steady_;
  int64_t unix_ms_;
};

struct WorkQueueOptions {
  std::chrono::milliseconds base_delay{5};  // first retry of a failing key
  std::chrono::milliseconds max_delay{std::chrono::seconds(60)};
  // A worker waiting for a delayed key re-reads the clock at least this often (real time), so a
  // ManualClock moved forward is noticed without any extra call.
  std::chrono::milliseconds max_wait{std::chrono::milliseconds(50)};
};

class WorkQueue {
 public:
  explicit WorkQueue(const ControllerClock& clock, WorkQueueOptions options = {});

  void add(const std::string& key);
  void add_after(const std::string& key, std::chrono::milliseconds delay);
  // Retries `key` after base_delay * 2^failures (capped at max_delay); counts a failure.
  void add_rate_limited(const std::string& key);
  // Resets the failure count of `key` (call after it succeeded).
  void forget(const std::string& key);
  int failures(const std::string& key) const;

  // Blocks until a key is ready (returns it, now held by the caller) or the queue is shut down
  // (returns nullopt). Every key returned must be given back with done().
  std::optional<std::string> get();
  // Like get() but never blocks: nullopt when nothing is ready now.
  std::optional<std::string> try_get();
  void done(const std::string& key);

  void shut_down();
  bool shutting_down() const;
  size_t size() const;   // queued now (ready or not yet due), not counting keys being processed
  size_t held() const;   // keys handed to workers and not done yet
  size_t ready() const;  // queued and due now (by the clock), not counting keys being processed
  // Wakes waiting workers to re-read the clock (a test that advanced a ManualClock may call it
  // instead of waiting up to max_wait).
  void wake();

 private:
  std::optional<std::string> pop_ready_locked();

  const ControllerClock& clock_;
  WorkQueueOptions options_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::string> ready_;  // FIFO (front at ready_head_)
  size_t ready_head_ = 0;
  std::unordered_set<std::string> queued_;      // in ready_ (or to be, once processing is done)
  std::unordered_set<std::string> processing_;  // held by a worker
  std::unordered_set<std::string> dirty_;       // added while processing
  std::multimap<ControllerClock::TimePoint, std::string> delayed_;
  std::unordered_map<std::string, ControllerClock::TimePoint> delayed_at_;  // earliest per key
  std::unordered_map<std::string, int> failures_;
  bool shut_down_ = false;
};

// One change as the informer delivers it: `kv` is null for a deletion.
struct Change {
  const std::string& key;
  const KeyValue* kv;
};

struct InformerOptions {
  std::vector<std::string> prefixes;
  std::chrono::milliseconds error_backoff{std::chrono::seconds(1)};
};

class Informer {
 public:
  // Called serialised (never concurrently), from the informer's threads. `resync` is true for
  // the changes of an initial list or a re-list (every live key once, then deletions of keys that
  // disappeared meanwhile), false for watch events.
  using Handler = std::function<void(const std::vector<Change>& changes, bool resync)>;

  // Lists every prefix at one revision (the handler sees it before start returns) and follows
  // them from there.
  static common::Result<std::unique_ptr<Informer>> start(Store& store, InformerOptions options,
                                                         Handler handler);
  ~Informer();
  void stop();

  // The highest revision delivered for the prefix (at least the list's revision).
  Revision seen(const std::string& prefix) const;
  uint64_t relists() const;

  struct Impl;

 private:
  explicit Informer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gantry::cloud::controllers
