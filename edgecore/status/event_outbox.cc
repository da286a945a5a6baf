#include "edgecore/status/event_outbox.h"

#include <algorithm>

namespace gantry::edge {

namespace {

int64_t unix_seconds(const common::Clock& clock) {
  return std::chrono::duration_cast<std::chrono::seconds>(clock.system_now().time_since_epoch())
      .count();
}

}  // namespace

EventOutbox::EventOutbox(common::Clock& clock, EventOutboxOptions options)
    : clock_(clock), options_(options) {}

void EventOutbox::set_on_pending(std::function<void()> callback) {
  std::lock_guard lock(mu_);
  on_pending_ = std::move(callback);
}

bool EventOutbox::due_locked(const Entry& e, std::chrono::steady_clock::time_point now) const {
  return e.pending > 0 && (!e.sent_at || now - *e.sent_at >= options_.update_interval);
}

void EventOutbox::record(EdgeEventRecord event) {
  auto now = clock_.steady_now();
  int64_t wall = unix_seconds(clock_);
  std::function<void()> notify;
  {
    std::lock_guard lock(mu_);
    ++stats_.recorded;
    Key key{event.kind,      event.ns,     event.name,   event.uid,
            event.container, event.reason, event.message};
    auto it = entries_.find(key);
    if (it == entries_.end()) {
      if (entries_.size() >= std::max<size_t>(1, options_.max_entries)) {
        // Full (a long time offline, or a node with very many failing pods): the entry seen
        // least recently goes, and the cloud is told how many occurrences were lost.
        auto oldest = std::min_element(entries_.begin(), entries_.end(), [](auto& a, auto& b) {
          return a.second.seen_at < b.second.seen_at;
        });
        dropped_unsent_ += std::max<uint32_t>(1, oldest->second.pending);
        ++stats_.dropped;
        entries_.erase(oldest);
      }
      it = entries_.emplace(std::move(key), Entry{}).first;
    }
    Entry& e = it->second;
    if (e.pending == 0) e.first_time = wall;
    ++e.pending;
    e.last_time = wall;
    e.warning = event.warning;
    e.seen_at = now;
    // Due now, or the first of a count that waits for its interval (the hub arms a timer).
    if (due_locked(e, now) || e.pending == 1) notify = on_pending_;
  }
  if (notify) notify();
}

bool EventOutbox::take(v1::StatusDelta& delta) {
  auto now = clock_.steady_now();
  std::lock_guard lock(mu_);
  bool added = false;
  size_t taken = 0;
  for (auto it = entries_.begin(); it != entries_.end();) {
    Entry& e = it->second;
    // Entries idle for a whole interval, with nothing in flight, are forgotten: the next
    // occurrence goes at once, as a first one would.
    if (e.pending == 0 && e.in_flight.empty() && e.sent_at &&
        now - *e.sent_at >= options_.update_interval) {
      it = entries_.erase(it);
      continue;
    }
    if (taken < options_.max_batch_events && due_locked(e, now)) {
      const auto& [kind, ns, name, uid, container, reason, message] = it->first;
      v1::EdgeEvent* out = delta.add_events();
      out->set_kind(static_cast<v1::ObjectKind>(kind));
      out->set_namespace_(ns);
      out->set_name(name);
      out->set_uid(uid);
      out->set_container(container);
      out->set_reason(reason);
      out->set_warning(e.warning);
      out->set_message(message);
      out->set_count(e.pending);
      out->set_first_time(e.first_time);
      out->set_last_time(e.last_time);
      e.in_flight.push_back({delta.sequence(), e.pending, e.first_time});
      e.pending = 0;
      e.sent_at = now;
      ++taken;
      ++stats_.sent;
      added = true;
    }
    ++it;
  }
  if (dropped_unsent_ > 0) {
    delta.set_events_dropped(dropped_unsent_);
    dropped_in_flight_.push_back({delta.sequence(), dropped_unsent_});
    dropped_unsent_ = 0;
    added = true;
  }
  return added;
}

void EventOutbox::settle_locked(uint64_t sequence, bool requeue_rest) {
  for (auto& [key, e] : entries_) {
    for (const auto& f : e.in_flight) {
      if (f.sequence <= sequence || !requeue_rest) continue;
      // Never durable in the cloud: counted again in the next batch.
      e.first_time = e.pending == 0 ? f.first_time : std::min(e.first_time, f.first_time);
      e.pending += f.count;
      e.sent_at.reset();
    }
    std::erase_if(e.in_flight,
                  [&](const InFlight& f) { return requeue_rest || f.sequence <= sequence; });
  }
  for (const auto& d : dropped_in_flight_)
    if (requeue_rest && d.sequence > sequence) dropped_unsent_ += d.count;
  std::erase_if(dropped_in_flight_,
                [&](const DroppedInFlight& d) { return requeue_rest || d.sequence <= sequence; });
}

void EventOutbox::on_ack(uint64_t sequence) {
  std::lock_guard lock(mu_);
  settle_locked(sequence, false);
}

void EventOutbox::on_welcome(uint64_t acked_sequence) {
  std::lock_guard lock(mu_);
  settle_locked(acked_sequence, true);
}

bool EventOutbox::has_due() const {
  auto now = clock_.steady_now();
  std::lock_guard lock(mu_);
  if (dropped_unsent_ > 0) return true;
  for (const auto& [key, e] : entries_)
    if (due_locked(e, now)) return true;
  return false;
}

std::optional<std::chrono::steady_clock::time_point> EventOutbox::next_due() const {
  std::lock_guard lock(mu_);
  std::optional<std::chrono::steady_clock::time_point> out;
  for (const auto& [key, e] : entries_) {
    if (e.pending == 0) continue;
    auto due = e.sent_at ? *e.sent_at + options_.update_interval : clock_.steady_now();
    if (!out || due < *out) out = due;
  }
  return out;
}

size_t EventOutbox::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

EventOutboxStats EventOutbox::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace gantry::edge
