#include "edgecore/status/status_tracker.h"

#include <google/protobuf/util/message_differencer.h>

#include "proto/gantry/v1/status_delta.h"

namespace gantry::edge {
namespace {

using google::protobuf::util::MessageDifferencer;

bool has_status(const v1::StatusEntry& e) {
  return e.has_pod() || e.has_node();
}

// Same uid, deletion mark and status (kind/name/generation are not compared).
bool same_status(const v1::StatusEntry& a, const v1::StatusEntry& b) {
  if (a.uid() != b.uid() || a.deleted() != b.deleted()) return false;
  if (a.status_case() != b.status_case()) return false;
  if (a.has_pod()) return MessageDifferencer::Equals(a.pod(), b.pod());
  if (a.has_node()) return MessageDifferencer::Equals(a.node(), b.node());
  return true;
}

// Protobuf's overhead for one repeated message field element (tag + length varint).
size_t framed_size(size_t n) {
  return n + 1 + (n < 128 ? 1 : n < 16384 ? 2 : 3);
}

}  // namespace

Result<std::unique_ptr<StatusTracker>> StatusTracker::load(MetaStore& meta,
                                                           StatusTrackerOptions options) {
  std::unique_ptr<StatusTracker> tracker(new StatusTracker(meta, std::move(options)));
  GANTRY_ASSIGN_OR_RETURN(auto acked, meta.list_acked());
  for (auto& entry : acked) {
    Record& r = tracker->record_for(entry.kind(), entry.namespace_(), entry.name());
    r.acked = std::move(entry);
  }
  GANTRY_ASSIGN_OR_RETURN(auto outbox, meta.list_outbox());
  for (auto& entry : outbox) {
    Record& r = tracker->record_for(entry.kind(), entry.namespace_(), entry.name());
    r.latest = std::move(entry);
  }
  return tracker;
}

StatusTracker::Record& StatusTracker::record_for(v1::ObjectKind kind, const std::string& ns,
                                                 const std::string& name) {
  auto [it, inserted] = records_.try_emplace(object_key(kind, ns, name));
  if (inserted) {
    Record& r = it->second;
    r.kind = kind;
    r.ns = ns;
    r.name = name;
    r.acked.set_kind(kind);
    r.acked.set_namespace_(ns);
    r.acked.set_name(name);
  }
  return it->second;
}

void StatusTracker::set_on_pending(std::function<void()> callback) {
  std::lock_guard lock(mutex_);
  on_pending_ = std::move(callback);
}

Status StatusTracker::report_pod(const std::string& ns, const std::string& name,
                                 const std::string& uid, const v1::PodStatus& status) {
  v1::StatusEntry latest;
  latest.set_kind(v1::OBJECT_KIND_POD);
  latest.set_namespace_(ns);
  latest.set_name(name);
  latest.set_uid(uid);
  *latest.mutable_pod() = status;
  return report(std::move(latest));
}

Status StatusTracker::report_node(const v1::NodeStatus& status) {
  v1::StatusEntry latest;
  latest.set_kind(v1::OBJECT_KIND_NODE);
  latest.set_name(options_.node_name);
  *latest.mutable_node() = status;
  return report(std::move(latest));
}

Status StatusTracker::pod_deleted(const std::string& ns, const std::string& name) {
  v1::StatusEntry latest;
  {
    std::lock_guard lock(mutex_);
    auto it = records_.find(object_key(v1::OBJECT_KIND_POD, ns, name));
    // The deletion carries the last known status so that a full entry is still complete.
    if (it != records_.end()) {
      if (it->second.latest) {
        latest = *it->second.latest;
      } else if (has_status(it->second.acked)) {
        latest = it->second.acked;
        latest.clear_base_generation();
      }
    }
  }
  latest.set_kind(v1::OBJECT_KIND_POD);
  latest.set_namespace_(ns);
  latest.set_name(name);
  latest.set_full(false);
  latest.set_deleted(true);
  if (!latest.has_pod()) latest.mutable_pod();
  return report(std::move(latest));
}

Status StatusTracker::report(v1::StatusEntry latest) {
  std::function<void()> notify;
  {
    std::lock_guard lock(mutex_);
    Record& r = record_for(latest.kind(), latest.namespace_(), latest.name());
    if (r.latest ? same_status(*r.latest, latest)
                 : (has_status(r.acked) && same_status(r.acked, latest))) {
      return common::ok_status();
    }
    StatusWrites writes;
    writes.put_outbox(latest);
    GANTRY_RETURN_IF_ERROR(meta_.write_status(writes));
    r.latest = std::move(latest);
    if (!r.in_flight) notify = on_pending_;
  }
  if (notify) notify();
  return common::ok_status();
}

std::optional<v1::StatusEntry> StatusTracker::entry_for(const Record& r) const {
  const v1::StatusEntry& latest = *r.latest;
  v1::StatusEntry entry;
  entry.set_kind(r.kind);
  entry.set_namespace_(r.ns);
  entry.set_name(r.name);
  entry.set_base_generation(r.acked.base_generation());
  entry.set_deleted(latest.deleted());

  bool full = !has_status(r.acked) || r.acked.status_case() != latest.status_case() ||
              r.acked.uid() != latest.uid();
  if (!full && latest.has_pod()) full = !v1::can_diff(r.acked.pod(), latest.pod());
  if (!full && latest.has_node()) full = !v1::can_diff(r.acked.node(), latest.node());
  if (full) {
    entry.set_full(true);
    entry.set_uid(latest.uid());
    if (latest.has_pod()) *entry.mutable_pod() = latest.pod();
    if (latest.has_node()) *entry.mutable_node() = latest.node();
    return entry;
  }
  bool empty = true;
  if (latest.has_pod()) {
    *entry.mutable_pod() = v1::diff(r.acked.pod(), latest.pod());
    empty = v1::is_empty(entry.pod());
  } else {
    *entry.mutable_node() = v1::diff(r.acked.node(), latest.node());
    empty = v1::is_empty(entry.node());
  }
  if (empty && !latest.deleted()) return std::nullopt;
  return entry;
}

bool StatusTracker::ready_to_send(const Record& r) const {
  return r.latest && !r.in_flight;
}

std::optional<v1::StatusDelta> StatusTracker::take_batch(uint64_t sequence) {
  std::lock_guard lock(mutex_);
  v1::StatusDelta batch;
  batch.set_sequence(sequence);
  size_t bytes = 10;  // the sequence field, at most
  StatusWrites cleanup;
  for (auto& [key, r] : records_) {
    if (!ready_to_send(r)) continue;
    auto entry = entry_for(r);
    if (!entry) {
      // Back to what the cloud already holds: nothing to send.
      r.latest.reset();
      cleanup.delete_outbox(key);
      continue;
    }
    size_t size = framed_size(entry->ByteSizeLong());
    if (batch.entries_size() > 0 && bytes + size > options_.max_batch_bytes) break;
    bytes += size;
    r.in_flight = Record::InFlight{sequence, *r.latest, entry->base_generation()};
    *batch.add_entries() = std::move(*entry);
  }
  // Dropping a stale outbox record is an optimisation: if it fails, the record is judged again
  // after a restart.
  meta_.write_status(cleanup).ignore_error();
  if (batch.entries_size() == 0) return std::nullopt;
  return batch;
}

void StatusTracker::settle(Record& r, const v1::ResyncRequest* resync, StatusWrites& writes) {
  const std::string key = object_key(r.kind, r.ns, r.name);
  Record::InFlight sent = std::move(*r.in_flight);
  r.in_flight.reset();
  v1::StatusEntry acked;
  acked.set_kind(r.kind);
  acked.set_namespace_(r.ns);
  acked.set_name(r.name);
  if (resync) {
    // The cloud holds another generation: the next send is full, based on it.
    acked.set_base_generation(resync->generation());
    r.acked = acked;
    writes.put_acked(acked);
    return;
  }
  if (sent.sent.deleted()) {
    // The cloud forgets the pod: a later pod of the same name starts from nothing.
    r.acked = acked;
    writes.delete_acked(key);
    if (r.latest && same_status(*r.latest, sent.sent)) {
      writes.delete_outbox(key);
      records_.erase(key);
    }
    return;
  }
  acked = sent.sent;
  acked.set_base_generation(sent.base_generation + 1);
  acked.set_full(false);
  r.acked = acked;
  writes.put_acked(acked);
  if (r.latest && same_status(*r.latest, sent.sent)) {
    r.latest.reset();
    writes.delete_outbox(key);
  }
}

Status StatusTracker::on_ack(uint64_t sequence, const std::vector<v1::ResyncRequest>& resync) {
  std::lock_guard lock(mutex_);
  std::map<std::string, const v1::ResyncRequest*> named;
  for (const auto& request : resync)
    named[object_key(request.kind(), request.namespace_(), request.name())] = &request;

  StatusWrites writes;
  std::vector<std::string> keys;
  for (auto& [key, r] : records_) keys.push_back(key);
  for (const auto& key : keys) {
    auto it = records_.find(key);
    Record& r = it->second;
    auto request = named.find(key);
    const v1::ResyncRequest* resync_request = request == named.end() ? nullptr : request->second;
    if (r.in_flight && r.in_flight->sequence <= sequence) {
      settle(r, resync_request, writes);
    } else if (resync_request && !r.in_flight) {
      // Named although not in flight: still honour it, resending what we hold in full.
      if (!r.latest && has_status(r.acked)) {
        v1::StatusEntry latest = r.acked;
        latest.clear_base_generation();
        writes.put_outbox(latest);
        r.latest = std::move(latest);
      }
      r.acked.clear_pod();
      r.acked.clear_node();
      r.acked.clear_uid();
      r.acked.set_base_generation(resync_request->generation());
      writes.put_acked(r.acked);
    }
  }
  writes.set_acked_sequence(std::max(meta_.acked_sequence(), sequence));
  return meta_.write_status(writes);
}

Status StatusTracker::on_welcome(uint64_t acked_sequence, bool resend_status) {
  std::lock_guard lock(mutex_);
  StatusWrites writes;
  std::vector<std::string> keys;
  for (auto& [key, r] : records_) keys.push_back(key);
  for (const auto& key : keys) {
    auto it = records_.find(key);
    Record& r = it->second;
    if (!r.in_flight) continue;
    if (r.in_flight->sequence <= acked_sequence) {
      settle(r, nullptr, writes);  // may erase the record
    } else {
      r.in_flight.reset();
    }
  }
  if (resend_status) {
    for (auto& [key, r] : records_) {
      if (!r.latest && has_status(r.acked)) {
        v1::StatusEntry latest = r.acked;
        latest.clear_base_generation();
        writes.put_outbox(latest);
        r.latest = std::move(latest);
      }
      r.acked.clear_pod();
      r.acked.clear_node();
      r.acked.clear_uid();
      r.acked.set_base_generation(0);
      writes.delete_acked(key);
    }
  }
  writes.set_acked_sequence(std::max(meta_.acked_sequence(), acked_sequence));
  return meta_.write_status(writes);
}

bool StatusTracker::has_pending() const {
  std::lock_guard lock(mutex_);
  for (const auto& [key, r] : records_) {
    if (ready_to_send(r)) return true;
  }
  return false;
}

size_t StatusTracker::outbox_size() const {
  std::lock_guard lock(mutex_);
  size_t n = 0;
  for (const auto& [key, r] : records_) n += r.latest ? 1 : 0;
  return n;
}

size_t StatusTracker::in_flight_count() const {
  std::lock_guard lock(mutex_);
  size_t n = 0;
  for (const auto& [key, r] : records_) n += r.in_flight ? 1 : 0;
  return n;
}

}  // namespace gantry::edge
