#include "cloudcore/controllers/informer.h"

#include <algorithm>

namespace gantry::cloud::controllers {

namespace {

class SystemClock : public ControllerClock {
 public:
  TimePoint now() const override { return std::chrono::steady_clock::now(); }
  int64_t unix_ms() const override {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

}  // namespace

const ControllerClock& system_clock() {
  static const SystemClock clock;
  return clock;
}

ManualClock::ManualClock(int64_t unix_ms) : steady_(TimePoint{}), unix_ms_(unix_ms) {}

ControllerClock::TimePoint ManualClock::now() const {
  std::lock_guard lock(mu_);
  return steady_;
}

int64_t ManualClock::unix_ms() const {
  std::lock_guard lock(mu_);
  return unix_ms_;
}

void ManualClock::advance(std::chrono::milliseconds by) {
  std::lock_guard lock(mu_);
  steady_ += by;
  unix_ms_ += by.count();
}

// ---------------------------------------------------------------------------------------------
// WorkQueue

WorkQueue::WorkQueue(const ControllerClock& clock, WorkQueueOptions options)
    : clock_(clock), options_(options) {}

void WorkQueue::add(const std::string& key) {
  std::lock_guard lock(mu_);
  if (shut_down_) return;
  if (processing_.count(key)) {
    dirty_.insert(key);
    return;
  }
  if (!queued_.insert(key).second) return;
  ready_.push_back(key);
  cv_.notify_one();
}

void WorkQueue::add_after(const std::string& key, std::chrono::milliseconds delay) {
  if (delay.count() <= 0) return add(key);
  std::lock_guard lock(mu_);
  if (shut_down_) return;
  auto due = clock_.now() + delay;
  auto it = delayed_at_.find(key);
  if (it != delayed_at_.end()) {
    if (it->second <= due) return;  // an earlier wake-up is already planned
    for (auto d = delayed_.lower_bound(it->second); d != delayed_.end() && d->first == it->second;
         ++d) {
      if (d->second == key) {
        delayed_.erase(d);
        break;
      }
    }
  }
  delayed_at_[key] = due;
  delayed_.emplace(due, key);
  cv_.notify_one();
}

void WorkQueue::add_rate_limited(const std::string& key) {
  int n;
  {
    std::lock_guard lock(mu_);
    n = failures_[key]++;
  }
  auto delay = options_.base_delay * (int64_t{1} << std::min(n, 30));
  add_after(key, std::min<std::chrono::milliseconds>(delay, options_.max_delay));
}

void WorkQueue::forget(const std::string& key) {
  std::lock_guard lock(mu_);
  failures_.erase(key);
}

int WorkQueue::failures(const std::string& key) const {
  std::lock_guard lock(mu_);
  auto it = failures_.find(key);
  return it == failures_.end() ? 0 : it->second;
}

std::optional<std::string> WorkQueue::pop_ready_locked() {
  auto now = clock_.now();
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    std::string key = delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    delayed_at_.erase(key);
    if (processing_.count(key)) {
      dirty_.insert(key);
    } else if (queued_.insert(key).second) {
      ready_.push_back(key);
    }
  }
  if (ready_head_ == ready_.size()) return std::nullopt;
  std::string key = std::move(ready_[ready_head_++]);
  if (ready_head_ > 1024 && ready_head_ * 2 > ready_.size()) {
    ready_.erase(ready_.begin(), ready_.begin() + static_cast<std::ptrdiff_t>(ready_head_));
    ready_head_ = 0;
  }
  queued_.erase(key);
  processing_.insert(key);
  return key;
}

std::optional<std::string> WorkQueue::get() {
  std::unique_lock lock(mu_);
  for (;;) {
    if (shut_down_) return std::nullopt;
    if (auto key = pop_ready_locked()) return key;
    auto wait = options_.max_wait;
    if (!delayed_.empty()) {
      auto until = std::chrono::duration_cast<std::chrono::milliseconds>(delayed_.begin()->first -
                                                                         clock_.now());
      wait = std::clamp(until, std::chrono::milliseconds(1), options_.max_wait);
    }
    cv_.wait_for(lock, wait);
  }
}

std::optional<std::string> WorkQueue::try_get() {
  std::lock_guard lock(mu_);
  if (shut_down_) return std::nullopt;
  return pop_ready_locked();
}

void WorkQueue::done(const std::string& key) {
  std::lock_guard lock(mu_);
  processing_.erase(key);
  if (dirty_.erase(key) && !shut_down_ && queued_.insert(key).second) {
    ready_.push_back(key);
    cv_.notify_one();
  }
}

void WorkQueue::shut_down() {
  std::lock_guard lock(mu_);
  shut_down_ = true;
  cv_.notify_all();
}

bool WorkQueue::shutting_down() const {
  std::lock_guard lock(mu_);
  return shut_down_;
}

size_t WorkQueue::size() const {
  std::lock_guard lock(mu_);
  return (ready_.size() - ready_head_) + delayed_at_.size();
}

size_t WorkQueue::held() const {
  std::lock_guard lock(mu_);
  return processing_.size();
}

size_t WorkQueue::ready() const {
  std::lock_guard lock(mu_);
  auto now = clock_.now();
  size_t due = 0;
  for (auto it = delayed_.begin(); it != delayed_.end() && it->first <= now; ++it) ++due;
  return (ready_.size() - ready_head_) + due;
}

void WorkQueue::wake() {
  std::lock_guard lock(mu_);
  cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// Informer

struct Informer::Impl {
  Store& store;
  InformerOptions options;
  Handler handler;

  mutable std::mutex mu;  // serialises the handler; guards everything below
  std::condition_variable cv;
  std::unordered_map<std::string, Revision> known;  // live key -> mod revision
  std::map<std::string, Revision> seen;             // prefix -> highest delivered
  uint64_t generation = 0;                          // bumped by every (re)list
  bool relist_needed = false;
  bool stopping = false;
  uint64_t relists = 0;
  std::vector<std::unique_ptr<WatchHandle>> watches;  // touched by start/relist thread only
  std::thread thread;

  Impl(Store& s, InformerOptions o, Handler h)
      : store(s), options(std::move(o)), handler(std::move(h)) {}

  void on_events(uint64_t gen, const std::string& prefix, const std::vector<Event>& events) {
    std::lock_guard lock(mu);
    if (gen != generation || stopping) return;
    std::vector<Change> changes;
    changes.reserve(events.size());
    Revision rev = 0;
    for (const auto& ev : events) {
      rev = std::max(rev, ev.kv.mod_revision);
      if (ev.type == EventType::kDelete) {
        known.erase(ev.kv.key);
        changes.push_back({ev.kv.key, nullptr});
      } else {
        known[ev.kv.key] = ev.kv.mod_revision;
        changes.push_back({ev.kv.key, &ev.kv});
      }
    }
    if (!changes.empty()) handler(changes, false);
    auto& s = seen[prefix];
    s = std::max(s, rev);
  }

  void on_error(uint64_t gen) {
    std::lock_guard lock(mu);
    if (gen != generation) return;
    relist_needed = true;
    cv.notify_all();
  }

  // Lists every prefix at one revision, replaces the cache, watches from there.
  Status list_and_watch() {
    watches.clear();  // outside `mu`: a callback may be waiting for it
    Revision at = store.current_revision();
    std::vector<std::pair<std::string, ListResult>> lists;
    for (const auto& prefix : options.prefixes) {
      ListOptions lo;
      lo.prefix = prefix;
      lo.at = at;
      GANTRY_ASSIGN_OR_RETURN(auto list, store.list(lo));
      lists.emplace_back(prefix, std::move(list));
    }
    uint64_t gen;
    {
      std::lock_guard lock(mu);
      gen = ++generation;
      std::unordered_map<std::string, Revision> fresh;
      std::vector<Change> changes;
      for (const auto& [prefix, list] : lists) {
        for (const auto& kv : list.items) {
          fresh[kv.key] = kv.mod_revision;
          changes.push_back({kv.key, &kv});
        }
        seen[prefix] = at;
      }
      std::vector<std::string> gone;
      for (const auto& [key, rev] : known)
        if (!fresh.count(key)) gone.push_back(key);
      for (const auto& key : gone) changes.push_back({key, nullptr});
      known = std::move(fresh);
      relist_needed = false;
      handler(changes, true);
    }
    for (const auto& prefix : options.prefixes) {
      WatchCallbacks cbs;
      cbs.on_events = [this, gen, prefix](const std::vector<Event>& events) {
        on_events(gen, prefix, events);
      };
      cbs.on_error = [this, gen](const Status&) { on_error(gen); };
      auto handle = store.watch(prefix, at, std::move(cbs));
      if (!handle.ok()) {
        watches.clear();
        return handle.status();
      }
      watches.push_back(std::move(*handle));
    }
    return common::ok_status();
  }

  void run() {
    for (;;) {
      {
        std::unique_lock lock(mu);
        cv.wait(lock, [&] { return stopping || relist_needed; });
        if (stopping) return;
        ++relists;
      }
      while (!list_and_watch().ok()) {
        std::unique_lock lock(mu);
        relist_needed = true;
        cv.wait_for(lock, options.error_backoff, [&] { return stopping; });
        if (stopping) return;
      }
    }
  }
};

common::Result<std::unique_ptr<Informer>> Informer::start(Store& store, InformerOptions options,
                                                          Handler handler) {
  auto impl = std::make_unique<Impl>(store, std::move(options), std::move(handler));
  GANTRY_RETURN_IF_ERROR(impl->list_and_watch());
  std::unique_ptr<Informer> informer(new Informer(std::move(impl)));
  Impl* raw = informer->impl_.get();
  raw->thread = std::thread([raw] { raw->run(); });
  return informer;
}

Informer::Informer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Informer::~Informer() {
  stop();
}

void Informer::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    impl_->cv.notify_all();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  impl_->watches.clear();
}

Revision Informer::seen(const std::string& prefix) const {
  std::lock_guard lock(impl_->mu);
  auto it = impl_->seen.find(prefix);
  return it == impl_->seen.end() ? 0 : it->second;
}

uint64_t Informer::relists() const {
  std::lock_guard lock(impl_->mu);
  return impl_->relists;
}

}  // namespace gantry::cloud::controllers
