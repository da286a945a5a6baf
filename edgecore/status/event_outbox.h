// The edge's events (the kubelet's Pulling, Pulled, Failed, BackOff, Created, Started, Killing,
// FailedMount, ...) on their way to the cloud, made cheap for slow links.
//
// - Coalesced per (object, container, reason, message), as the cloud's recorder deduplicates: a
//   crash-looping pod is a handful of entries whose counts grow, never a message per restart
//   (the kubelet's messages repeat word for word; the two `Failed` of a failed pull stay two).
// - An entry goes at once the first time, then its count updates at most every
//   `update_interval` (default 60 s): a pod restarting every 10 s costs a few entries a minute.
// - Bounded: at most `max_entries` entries (default 512, about 100 KiB); when full the entry
//   seen least recently is dropped and counted, and the count goes in the next batch
//   (StatusDelta.events_dropped), so a long offline spell is never a flood on reconnect.
// - Sent inside StatusDelta batches and settled by their StatusAck like statuses: counts taken by
//   a batch that was never acknowledged (the connection died) go back to the outbox on the next
//   Welcome, counted once. Kept in memory only: an edgecore restart loses the counts not yet sent
//   (events are best effort, as in Kubernetes), never a status.
// No I/O; thread-safe (pod workers record, the hub takes and settles).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/base/clock.h"
#include "gantry/v1/tunnel.pb.h"

namespace gantry::edge {

struct EventOutboxOptions {
  std::chrono::milliseconds update_interval{60'000};
  size_t max_entries = 512;
  // At most this many events in one batch (the rest wait for the next one).
  size_t max_batch_events = 64;
};

struct EventOutboxStats {
  uint64_t recorded = 0;
  uint64_t sent = 0;     // EdgeEvent messages put in batches
  uint64_t dropped = 0;  // entries dropped because the outbox was full
};

// An event as a pod worker reports it.
struct EdgeEventRecord {
  v1::ObjectKind kind = v1::OBJECT_KIND_POD;
  std::string ns, name, uid;
  std::string container;  // "" = the pod itself
  std::string reason;
  bool warning = false;
  std::string message;
};

class EventOutbox {
 public:
  explicit EventOutbox(common::Clock& clock, EventOutboxOptions options = {});

  void record(EdgeEventRecord event);
  // Called (outside the lock) when a record leaves something to send at once, or starts a count
  // that waits for its interval (next_due() then says when).
  void set_on_pending(std::function<void()> callback);

  // Moves what is due into `delta` (events and events_dropped), marking it in flight under
  // delta.sequence(). True when it added anything.
  bool take(v1::StatusDelta& delta);
  // StatusAck: batches <= sequence are durable in the cloud.
  void on_ack(uint64_t sequence);
  // Welcome: batches <= acked_sequence are durable; later in-flight counts go back to pending.
  void on_welcome(uint64_t acked_sequence);

  // Something is due now (first occurrences, or updates whose interval passed).
  bool has_due() const;
  // When the earliest update waiting for its interval is due (nullopt: none waits).
  std::optional<std::chrono::steady_clock::time_point> next_due() const;
  size_t size() const;
  EventOutboxStats stats() const;

 private:
  // kind, namespace, name, uid, container, reason, message.
  using Key =
      std::tuple<int, std::string, std::string, std::string, std::string, std::string, std::string>;
  struct InFlight {
    uint64_t sequence = 0;
    uint32_t count = 0;
    int64_t first_time = 0;
  };
  struct Entry {
    bool warning = false;
    uint32_t pending = 0;    // occurrences not yet sent
    int64_t first_time = 0;  // of the pending ones (unix seconds)
    int64_t last_time = 0;
    std::optional<std::chrono::steady_clock::time_point> sent_at;  // the last time it went
    std::chrono::steady_clock::time_point seen_at;
    std::vector<InFlight> in_flight;
  };
  bool due_locked(const Entry& e, std::chrono::steady_clock::time_point now) const;
  void settle_locked(uint64_t sequence, bool requeue_rest);

  common::Clock& clock_;
  EventOutboxOptions options_;
  mutable std::mutex mu_;
  std::map<Key, Entry> entries_;
  uint32_t dropped_unsent_ = 0;  // dropped since the last batch that reported it
  struct DroppedInFlight {
    uint64_t sequence;
    uint32_t count;
  };
  std::vector<DroppedInFlight> dropped_in_flight_;
  EventOutboxStats stats_;
  std::function<void()> on_pending_;
};

}  // namespace gantry::edge
