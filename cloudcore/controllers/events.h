// The event recorder: how cloudcore's components (the scheduler, node liveness, the hub on behalf
// of edge nodes) write Kubernetes Events, as client-go's EventRecorder + EventCorrelator do.
//
// - Deduplication: an event with the same source, object, type, reason and message as one seen
//   before becomes `count + 1` and a new `lastTimestamp` on the same Event object.
// - Aggregation: more than `max_similar` events of the same source, object, type and reason but
//   different messages within `similar_window` become one event, "(combined from similar events):
//   <latest message>", counted like a duplicate.
// - Spam filter: a token bucket per involved object (and source): `burst` events, then one per
//   `refill`. Events over the limit are dropped and counted.
// - Writes are batched: record() only updates memory; a flush (every `flush_interval` on the
//   recorder's thread, or flush() in tests) writes every changed event in one store txn, so an
//   event storm costs one write per event object per interval, not one per occurrence.
// - TTL: events live `ttl` (kube-apiserver's --event-ttl, 1 h) after their last occurrence; a
//   sweep (at start, then every `sweep_interval`) deletes older ones from the store, whoever
//   wrote them.
//
// Events are stored as core v1 Event JSON under /events/NS/NAME (keys::kEvents), which the API
// serves as `v1` events (`kubectl get events`, `kubectl describe`). Events about cluster-scoped
// objects (nodes) go to the `default` namespace, as the kubelet and controllers put them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cloudcore/store/store.h"
#include "common/base/clock.h"

namespace gantry::cloud::controllers {

// What an event is about (core v1 ObjectReference).
struct ObjectReference {
  std::string kind;  // "Pod", "Node"
  std::string ns;    // "" for cluster-scoped objects
  std::string name;
  std::string uid;
  std::string api_version = "v1";
  std::string field_path;  // "spec.containers{app}" for container events
};

// The references cloudcore's events use: a pod (or one of its containers), a node.
ObjectReference pod_reference(std::string ns, std::string name, std::string uid,
                              const std::string& container = "");
ObjectReference node_reference(std::string name, std::string uid);

// Kubernetes' event type.
enum class KubeEventType { kNormal, kWarning };

struct EventRecord {
  ObjectReference object;
  KubeEventType type = KubeEventType::kNormal;
  std::string reason;     // CamelCase, as the kubelet's and the scheduler's ("FailedScheduling")
  std::string message;    // human readable; cut to 1 KiB as Kubernetes does
  std::string component;  // source.component / reportingComponent: "default-scheduler", "kubelet"
  std::string host;       // source.host / reportingInstance: the node for edge events
  // Occurrences this record stands for (an edge node aggregates before sending) and when the
  // first and last of them happened (unix ms; 0 = now).
  int64_t count = 1;
  int64_t first_ms = 0;
  int64_t last_ms = 0;
};

struct EventRecorderOptions {
  std::chrono::seconds ttl{3600};
  int burst = 25;                             // client-go: 25
  std::chrono::milliseconds refill{300'000};  // client-go: one token per 5 min
  int max_similar = 10;                       // client-go: 10 in 10 min
  std::chrono::milliseconds similar_window{600'000};
  std::chrono::milliseconds flush_interval{1'000};
  std::chrono::milliseconds sweep_interval{300'000};
  // The most events (and buckets) remembered for deduplication; the least recently seen go first.
  size_t max_cached = 65'536;
};

struct EventRecorderStats {
  uint64_t recorded = 0;      // record() calls accepted
  uint64_t deduplicated = 0;  // folded into an existing event (count + 1)
  uint64_t aggregated = 0;    // folded into a "combined from similar events" event
  uint64_t rate_limited = 0;  // dropped by the spam filter
  uint64_t written = 0;       // event objects written to the store
  uint64_t write_errors = 0;
  uint64_t expired = 0;  // deleted by the TTL sweep
};

class EventRecorder {
 public:
  // `store` and `clock` must outlive the recorder. Nothing runs until start() (tests call
  // flush() and sweep() themselves).
  EventRecorder(Store& store, common::Clock& clock, EventRecorderOptions options = {});
  ~EventRecorder();  // stops and flushes what is pending
  EventRecorder(const EventRecorder&) = delete;
  EventRecorder& operator=(const EventRecorder&) = delete;

  // Thread-safe and cheap: memory only. False when the spam filter dropped it.
  bool record(EventRecord event);

  // Writes every event changed since the last flush, in one txn.
  common::Status flush();
  // Deletes stored events whose last occurrence is older than the TTL. The number deleted.
  common::Result<size_t> sweep();

  // The recorder's thread: flush every flush_interval, sweep at once and every sweep_interval.
  void start();
  void stop();  // idempotent; flushes

  EventRecorderStats stats() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

// "Successfully assigned default/web to edge-1" and the like, as a sink a component can be given
// without knowing the recorder (tests pass a lambda). Empty: events are not recorded.
using EventSink = std::function<void(EventRecord)>;

}  // namespace gantry::cloud::controllers
