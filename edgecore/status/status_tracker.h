// The edge's upstream status bookkeeping, without I/O. Per object (the node itself and each pod)
// it keeps the status the cloud acknowledged with its generation, and the latest status (the
// outbox: a new report replaces the unsent one, so ten changes while offline are one entry).
// The hub asks it for the next StatusDelta batch and tells it about acks; both are persisted in
// the MetaStore so that a restarted edge still sends deltas.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "edgecore/meta/meta_store.h"
#include "gantry/v1/tunnel.pb.h"

namespace gantry::edge {

struct StatusTrackerOptions {
  std::string node_name;
  // Upper bound of a serialized StatusDelta; a single larger entry still goes, alone.
  size_t max_batch_bytes = 64 * 1024;
};

class StatusTracker {
 public:
  // Loads the acked statuses and the outbox from `meta`.
  static Result<std::unique_ptr<StatusTracker>> load(MetaStore& meta, StatusTrackerOptions options);

  // --- Reports (any thread) -----------------------------------------------------------------
  // The full, trimmed status of a pod / of this node. Unchanged reports cost nothing.
  Status report_pod(const std::string& ns, const std::string& name, const std::string& uid,
                    const v1::PodStatus& status);
  Status report_node(const v1::NodeStatus& status);
  // The pod is gone from this edge (graceful delete finished): reported once with deleted=true.
  Status pod_deleted(const std::string& ns, const std::string& name);

  // Called (outside the tracker's lock) whenever a report leaves work in the outbox.
  void set_on_pending(std::function<void()> callback);

  // --- Sending (the hub's thread) -----------------------------------------------------------
  // Entries ready to go (not in flight, something changed), up to the byte bound, stamped with
  // `sequence`; nullopt when there is nothing to send. The entries are in flight until acked.
  std::optional<v1::StatusDelta> take_batch(uint64_t sequence);
  // StatusAck: every in-flight entry of batches <= `sequence` is settled (resync -> next send is
  // full on the named generation). Persists the new acked statuses and `sequence`.
  Status on_ack(uint64_t sequence, const std::vector<v1::ResyncRequest>& resync);
  // Welcome: batches <= acked_sequence count as acked; the rest go back to pending.
  // resend_status: the cloud holds nothing, so every status is sent again in full.
  Status on_welcome(uint64_t acked_sequence, bool resend_status);
  // A lost connection changes nothing here: in-flight entries stay in flight until the next
  // Welcome says whether the cloud made them durable.

  // --- Introspection ------------------------------------------------------------------------
  bool has_pending() const;  // something to send that is not in flight
  size_t outbox_size() const;
  size_t in_flight_count() const;

 private:
  struct Record {
    v1::ObjectKind kind = v1::OBJECT_KIND_UNSPECIFIED;
    std::string ns;
    std::string name;
    // Acked: the full status the cloud holds (oneof unset: none, send full) and its generation
    // (or the generation a resync named).
    v1::StatusEntry acked;
    std::optional<v1::StatusEntry> latest;  // the outbox
    struct InFlight {
      uint64_t sequence = 0;
      v1::StatusEntry sent;  // the full status the entry represents (not the delta)
      uint64_t base_generation = 0;
    };
    std::optional<InFlight> in_flight;
  };

  StatusTracker(MetaStore& meta, StatusTrackerOptions options)
      : meta_(meta), options_(std::move(options)) {}
  Status report(v1::StatusEntry latest);
  Record& record_for(v1::ObjectKind kind, const std::string& ns, const std::string& name);
  // The wire entry for `record`, or nullopt when nothing changed (then the outbox is dropped).
  std::optional<v1::StatusEntry> entry_for(const Record& record) const;
  void settle(Record& record, const v1::ResyncRequest* resync, StatusWrites& writes);
  bool ready_to_send(const Record& record) const;

  MetaStore& meta_;
  StatusTrackerOptions options_;
  mutable std::mutex mutex_;
  std::map<std::string, Record> records_;  // by object_key
  std::function<void()> on_pending_;
};

}  // namespace gantry::edge
