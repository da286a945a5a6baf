#include "cloudcore/controllers/events.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <condition_variable>
#include <ctime>
#include <list>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>
#include <vector>

#include "cloudcore/registry/keys.h"
#include "gantry/v1/objects.pb.h"

namespace gantry::cloud::controllers {

using json = nlohmann::json;

namespace {

constexpr size_t kMaxMessageBytes = 1024;
constexpr size_t kOpsPerTxn = 500;

std::string rfc3339(int64_t unix_ms) {
  std::time_t t = static_cast<std::time_t>(unix_ms / 1000);
  std::tm tm{};
  gmtime_r(&t, &tm);
  return fmt::format("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

// "2026-12-02T15:04:05Z" or with fractional seconds / an offset: unix ms (nullopt: not a time).
std::optional<int64_t> parse_rfc3339_ms(const std::string& s) {
  std::tm tm{};
  int consumed = 0;
  if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                  &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6)
    return std::nullopt;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  int64_t secs = static_cast<int64_t>(timegm(&tm));
  size_t i = static_cast<size_t>(consumed);
  if (i < s.size() && s[i] == '.') {
    ++i;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) ++i;
  }
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) {
    int hh = 0, mm = 0;
    if (std::sscanf(s.c_str() + i + 1, "%2d:%2d", &hh, &mm) != 2) return std::nullopt;
    int64_t off = (hh * 60 + mm) * 60;
    secs += s[i] == '+' ? -off : off;
  }
  return secs * 1000;
}

std::string random_uid() {
  static thread_local std::mt19937_64 rng{std::random_device{}()};
  uint64_t a = rng(), b = rng();
  a = (a & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;
  b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
  return fmt::format("{:08x}-{:04x}-{:04x}-{:04x}-{:012x}", a >> 32, (a >> 16) & 0xffff, a & 0xffff,
                     b >> 48, b & 0xffffffffffffULL);
}

// The spam filter's key: the source and the object (client-go's getSpamKey).
std::string spam_key(const EventRecord& e) {
  const auto& o = e.object;
  return fmt::format("{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}", e.component, e.host, o.kind, o.ns,
                     o.name, o.uid, o.api_version);
}

// The aggregator's key: everything but the message (client-go's EventAggregatorByReasonFunc).
std::string similar_key(const EventRecord& e) {
  return fmt::format("{}\x1f{}\x1f{}", spam_key(e), e.type == KubeEventType::kWarning ? "W" : "N",
                     e.reason);
}

}  // namespace

ObjectReference pod_reference(std::string ns, std::string name, std::string uid,
                              const std::string& container) {
  ObjectReference r;
  r.kind = "Pod";
  r.ns = std::move(ns);
  r.name = std::move(name);
  r.uid = std::move(uid);
  if (!container.empty()) r.field_path = "spec.containers{" + container + "}";
  return r;
}

ObjectReference node_reference(std::string name, std::string uid) {
  ObjectReference r;
  r.kind = "Node";
  r.name = std::move(name);
  r.uid = std::move(uid);
  return r;
}

struct EventRecorder::Impl {
  Store& store;
  common::Clock& clock;
  EventRecorderOptions options;

  struct Cached {
    std::string key;  // dedup key (in `events`)
    std::string name, ns, uid;
    EventRecord record;  // count/first/last are the event's totals
    int64_t created_ms = 0;
    bool dirty = false;
  };
  struct Similar {
    std::set<std::string> messages;
    int64_t window_start = 0;
  };
  struct Bucket {
    double tokens = 0;
    int64_t last_ms = 0;
  };

  mutable std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::list<Cached> lru;  // most recently seen first
  std::unordered_map<std::string, std::list<Cached>::iterator> events;
  std::unordered_map<std::string, Similar> similar;
  std::unordered_map<std::string, Bucket> buckets;
  // Writes waiting for the next flush (key -> value): dirty events pushed out of the cache, and
  // writes of a failed flush.
  std::map<std::string, std::string> pending_writes;
  uint64_t name_sequence = 0;
  EventRecorderStats stats;
  std::thread thread;

  Impl(Store& s, common::Clock& c, EventRecorderOptions o)
      : store(s), clock(c), options(std::move(o)) {}

  int64_t now_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               clock.system_now().time_since_epoch())
        .count();
  }

  std::string key_of(const Cached& c) const {
    return fmt::format("{}{}/{}", keys::kEvents, c.ns, c.name);
  }

  std::string render(const Cached& c) const {
    const EventRecord& r = c.record;
    json ref = {
        {"kind", r.object.kind}, {"name", r.object.name}, {"apiVersion", r.object.api_version}};
    if (!r.object.ns.empty()) ref["namespace"] = r.object.ns;
    if (!r.object.uid.empty()) ref["uid"] = r.object.uid;
    if (!r.object.field_path.empty()) ref["fieldPath"] = r.object.field_path;
    json source = {{"component", r.component}};
    if (!r.host.empty()) source["host"] = r.host;
    json ev = {{"kind", "Event"},
               {"apiVersion", "v1"},
               {"metadata",
                {{"name", c.name},
                 {"namespace", c.ns},
                 {"uid", c.uid},
                 {"creationTimestamp", rfc3339(c.created_ms)}}},
               {"involvedObject", std::move(ref)},
               {"reason", r.reason},
               {"message", r.message},
               {"source", std::move(source)},
               {"firstTimestamp", rfc3339(r.first_ms)},
               {"lastTimestamp", rfc3339(r.last_ms)},
               {"count", r.count},
               {"type", r.type == KubeEventType::kWarning ? "Warning" : "Normal"},
               {"eventTime", nullptr},
               {"reportingComponent", r.component},
               {"reportingInstance", r.host}};
    v1::StoredObject stored;
    stored.set_json(ev.dump());
    return stored.SerializeAsString();
  }

  // `mu` held.
  bool take_token(const EventRecord& e, int64_t now) {
    auto [it, fresh] = buckets.try_emplace(spam_key(e));
    Bucket& b = it->second;
    if (fresh) {
      b.tokens = options.burst;
    } else if (now > b.last_ms && options.refill.count() > 0) {
      b.tokens = std::min<double>(
          options.burst, b.tokens + static_cast<double>(now - b.last_ms) / options.refill.count());
    }
    b.last_ms = std::max(b.last_ms, now);
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  // `mu` held. The dedup key, with the message replaced when the aggregator combines it.
  std::string correlate(EventRecord& e, int64_t now) {
    std::string agg = similar_key(e);
    Similar& s = similar[agg];
    if (now - s.window_start > options.similar_window.count()) {
      s.messages.clear();
      s.window_start = now;
    }
    s.messages.insert(e.message);
    if (static_cast<int>(s.messages.size()) < options.max_similar) {
      return fmt::format("{}\x1f{}\x1f{}", agg, e.object.field_path, e.message);
    }
    s.messages.erase(s.messages.begin());  // do not grow past the bound
    e.message = "(combined from similar events): " + e.message;
    ++stats.aggregated;
    return agg;  // every further similar event lands on the combined one
  }

  void evict_over_bound() {
    while (lru.size() > options.max_cached) {
      Cached& c = lru.back();
      if (c.dirty) pending_writes[key_of(c)] = render(c);
      events.erase(c.key);
      lru.pop_back();
    }
    if (buckets.size() > options.max_cached * 2) {
      // Buckets that are full again hold nothing a fresh one would not.
      int64_t now = now_ms();
      for (auto it = buckets.begin(); it != buckets.end();) {
        bool full = static_cast<double>(now - it->second.last_ms) >=
                    options.burst * static_cast<double>(options.refill.count());
        it = full ? buckets.erase(it) : std::next(it);
      }
    }
    if (similar.size() > options.max_cached * 2) {
      int64_t now = now_ms();
      for (auto it = similar.begin(); it != similar.end();) {
        bool old = now - it->second.window_start > options.similar_window.count();
        it = old ? similar.erase(it) : std::next(it);
      }
    }
  }

  bool record(EventRecord e) {
    int64_t now = now_ms();
    if (e.last_ms == 0) e.last_ms = now;
    if (e.first_ms == 0 || e.first_ms > e.last_ms) e.first_ms = e.last_ms;
    if (e.count < 1) e.count = 1;
    if (e.message.size() > kMaxMessageBytes) e.message.resize(kMaxMessageBytes);
    std::lock_guard lock(mu);
    if (!take_token(e, now)) {
      ++stats.rate_limited;
      return false;
    }
    ++stats.recorded;
    std::string key = correlate(e, now);
    if (auto it = events.find(key); it != events.end()) {
      Cached& c = *it->second;
      c.record.count += e.count;
      c.record.last_ms = std::max(c.record.last_ms, e.last_ms);
      c.record.first_ms = std::min(c.record.first_ms, e.first_ms);
      c.record.message = e.message;
      c.dirty = true;
      lru.splice(lru.begin(), lru, it->second);
      ++stats.deduplicated;
      return true;
    }
    Cached c;
    c.key = key;
    c.ns = e.object.ns.empty() ? "default" : e.object.ns;
    // client-go: "<object>.<unix nanoseconds in hex>"; a sequence keeps names apart within one
    // clock tick.
    int64_t ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(clock.system_now().time_since_epoch())
            .count();
    c.name = fmt::format("{}.{:x}", e.object.name, static_cast<uint64_t>(ns) + name_sequence++);
    c.uid = random_uid();
    c.created_ms = now;
    c.record = std::move(e);
    c.dirty = true;
    lru.push_front(std::move(c));
    events[key] = lru.begin();
    evict_over_bound();
    return true;
  }

  common::Status flush() {
    std::map<std::string, std::string> writes;
    {
      std::lock_guard lock(mu);
      writes.swap(pending_writes);
      for (auto& c : lru) {
        if (!c.dirty) continue;
        writes[key_of(c)] = render(c);
        c.dirty = false;
      }
    }
    common::Status first;
    auto it = writes.begin();
    while (it != writes.end()) {
      std::vector<Op> chunk;
      auto from = it;
      for (; it != writes.end() && chunk.size() < kOpsPerTxn; ++it)
        chunk.push_back(Op::put(it->first, it->second));
      size_t n = chunk.size();
      auto r = store.txn(std::move(chunk));
      std::lock_guard lock(mu);
      if (r.ok()) {
        stats.written += n;
        continue;
      }
      ++stats.write_errors;
      if (first.ok()) first = r.status();
      // Kept for the next flush unless a newer version of the event is already waiting.
      for (auto k = from; k != it; ++k) pending_writes.emplace(k->first, std::move(k->second));
    }
    return first;
  }

  common::Result<size_t> sweep() {
    int64_t cutoff =
        now_ms() - std::chrono::duration_cast<std::chrono::milliseconds>(options.ttl).count();
    {
      std::lock_guard lock(mu);
      for (auto it = lru.begin(); it != lru.end();) {
        if (!it->dirty && it->record.last_ms < cutoff) {
          events.erase(it->key);
          it = lru.erase(it);
        } else {
          ++it;
        }
      }
    }
    size_t removed = 0;
    ListOptions lo;
    lo.prefix = std::string(keys::kEvents);
    lo.limit = 1000;
    for (;;) {
      GANTRY_ASSIGN_OR_RETURN(auto page, store.list(lo));
      std::vector<Op> ops;
      for (const auto& kv : page.items) {
        v1::StoredObject stored;
        if (!stored.ParseFromString(kv.value)) continue;
        json ev = json::parse(stored.json(), nullptr, false);
        if (!ev.is_object()) continue;
        std::optional<int64_t> last;
        for (const char* field : {"lastTimestamp", "eventTime", "firstTimestamp"}) {
          if (ev.contains(field) && ev[field].is_string()) {
            last = parse_rfc3339_ms(ev[field].get<std::string>());
            if (last) break;
          }
        }
        if (!last && ev.contains("metadata") && ev["metadata"].is_object() &&
            ev["metadata"].contains("creationTimestamp") &&
            ev["metadata"]["creationTimestamp"].is_string())
          last = parse_rfc3339_ms(ev["metadata"]["creationTimestamp"].get<std::string>());
        if (last && *last < cutoff) ops.push_back(Op::remove(kv.key, kv.mod_revision));
      }
      if (!ops.empty()) {
        size_t n = ops.size();
        auto r = store.txn(ops);
        if (r.ok()) {
          removed += n;
        } else {
          // One of them changed meanwhile (a new occurrence): delete the others one by one.
          for (auto& op : ops) {
            if (store.txn({op}).ok()) ++removed;
          }
        }
      }
      if (!page.more || page.items.empty()) break;
      lo.start_after = page.items.back().key;
      lo.at = page.revision;
    }
    std::lock_guard lock(mu);
    stats.expired += removed;
    return removed;
  }

  void run() {
    auto next_sweep = clock.steady_now();
    std::unique_lock lock(mu);
    while (!stopping) {
      lock.unlock();
      // sweep_interval 0: start() never sweeps; another component does (the leader, with
      // several replicas).
      if (options.sweep_interval.count() > 0 && clock.steady_now() >= next_sweep) {
        if (auto r = sweep(); !r.ok()) {
          spdlog::warn("events: TTL sweep: {}", r.status().message());
        } else if (*r > 0) {
          spdlog::info("events: {} expired events deleted", *r);
        }
        next_sweep = clock.steady_now() + options.sweep_interval;
      }
      if (auto s = flush(); !s.ok()) spdlog::warn("events: writing events: {}", s.message());
      lock.lock();
      cv.wait_for(lock, options.flush_interval, [&] { return stopping; });
    }
  }
};

EventRecorder::EventRecorder(Store& store, common::Clock& clock, EventRecorderOptions options)
    : impl_(std::make_unique<Impl>(store, clock, std::move(options))) {}

EventRecorder::~EventRecorder() {
  stop();
}

bool EventRecorder::record(EventRecord event) {
  return impl_->record(std::move(event));
}

common::Status EventRecorder::flush() {
  return impl_->flush();
}

common::Result<size_t> EventRecorder::sweep() {
  return impl_->sweep();
}

void EventRecorder::start() {
  std::lock_guard lock(impl_->mu);
  if (impl_->thread.joinable() || impl_->stopping) return;
  impl_->thread = std::thread([this] { impl_->run(); });
}

void EventRecorder::stop() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopping = true;
    impl_->cv.notify_all();
  }
  if (impl_->thread.joinable()) impl_->thread.join();
  (void)impl_->flush();
}

EventRecorderStats EventRecorder::stats() const {
  std::lock_guard lock(impl_->mu);
  return impl_->stats;
}

}  // namespace gantry::cloud::controllers
