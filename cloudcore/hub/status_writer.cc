#include "cloudcore/hub/status_writer.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <random>
#include <set>

#include "cloudcore/registry/keys.h"
#include "common/base/parse.h"

namespace gantry::cloud {
namespace {

constexpr size_t kMaxJobsPerCommit = 1024;

int64_t to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string encode_sequence(uint64_t seq) {
  return std::to_string(seq);
}

// A stored sequence that is not all digits (never written so) reads as 0, as before; stoull took
// " 12", "-1" (as 2^64-1) and "12abc".
uint64_t decode_sequence(const std::string& text) {
  return common::parse_uint64(text).value_or(0);
}

// The node's Ready condition as the API shows it: "True", "False", "Unknown" (silent, or no
// condition yet) or "" (no status at all).
std::string effective_ready(const std::optional<v1::StoredStatus>& st) {
  if (!st) return "";
  if (st->unreachable()) return "Unknown";
  for (const auto& c : st->node().conditions()) {
    if (c.type() != v1::NODE_CONDITION_READY) continue;
    if (c.status() == v1::CONDITION_STATUS_TRUE) return "True";
    if (c.status() == v1::CONDITION_STATUS_FALSE) return "False";
  }
  return "Unknown";
}

}  // namespace

StatusWriter::StatusWriter(Store& store, const Registry& registry, common::Clock& clock,
                           controllers::EventSink events, StatusWriterMetrics metrics,
                           StatusWriterOptions options)
    : store_(store),
      registry_(registry),
      clock_(clock),
      events_(std::move(events)),
      metrics_(std::move(metrics)),
      options_(options),
      thread_([this] { run(); }) {}

std::string StatusWriter::node_uid(const std::string& node) const {
  auto kv = store_.get(keys::object_key(v1::OBJECT_KIND_NODE, "", node));
  if (!kv.ok() || !kv->has_value()) return "";
  v1::StoredObject stored;
  if (!stored.ParseFromString((*kv)->value)) return "";
  return stored.edge().uid();
}

StatusWriter::~StatusWriter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void StatusWriter::submit(std::string node, v1::StatusDelta delta, Done done,
                          std::function<bool()> wanted) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(
        Job{std::move(node), false, false, std::move(delta), std::move(done), std::move(wanted)});
    metrics_.queued.set(double(queue_.size()));
  }
  cv_.notify_one();
}

void StatusWriter::set_unreachable(std::string node, bool unreachable) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Job{std::move(node), true, unreachable, {}, nullptr, nullptr});
    metrics_.queued.set(double(queue_.size()));
  }
  cv_.notify_one();
}

uint64_t StatusWriter::stored_sequence(const std::string& node) {
  {
    std::lock_guard lock(mu_);
    if (auto it = sequences_.find(node); it != sequences_.end()) return it->second;
  }
  auto kv = store_.get(keys::hub_sequence_key(node));
  return kv.ok() && kv->has_value() ? decode_sequence((*kv)->value) : 0;
}

Result<uint64_t> StatusWriter::load_sequence(const std::string& node, bool fresh) {
  if (!fresh) {
    std::lock_guard lock(mu_);
    if (auto it = sequences_.find(node); it != sequences_.end()) return it->second;
  }
  auto kv = store_.get(keys::hub_sequence_key(node));
  if (!kv.ok()) return kv.status();
  return kv->has_value() ? decode_sequence((*kv)->value) : 0;
}

StatusWriter::Stats StatusWriter::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void StatusWriter::run() {
  std::deque<Job> jobs;  // the round; a held one stays here between tries
  bool retry = false;
  auto delay = options_.retry_initial;
  std::mt19937_64 rng(std::random_device{}());
  std::chrono::steady_clock::time_point outage_since{};
  uint64_t outage_retries = 0;
  while (true) {
    bool stopping = false;
    {
      std::unique_lock lock(mu_);
      if (jobs.empty()) cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (jobs.empty() && queue_.empty() && stopping_) return;
      while (!queue_.empty() && jobs.size() < kMaxJobsPerCommit) {
        jobs.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      metrics_.queued.set(double(queue_.size()));
      stopping = stopping_;
    }
    if (retry) {
      // Batches whose session ended meanwhile: the edge sends them again on its next connection.
      std::erase_if(jobs, [](const Job& j) { return j.wanted && !j.wanted(); });
      if (jobs.empty()) {
        // Nothing left to hold; the next failure is a new outage (and logged).
        metrics_.held.set(0);
        retry = false;
        delay = options_.retry_initial;
        std::lock_guard lock(mu_);
        stats_.holding = false;
        continue;
      }
    }
    if (process(jobs, /*hold=*/!stopping, retry)) {
      if (retry) {
        const double held_s =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - outage_since).count();
        if (last_error_.ok())
          spdlog::info(
              "hub: the store is back after {:.1f} s: the held status batches are stored and "
              "acknowledged ({} retries)",
              held_s, outage_retries);
        else
          spdlog::warn("hub: gave up on the held status batches after {:.1f} s: {}", held_s,
                       last_error_.to_string());
        std::lock_guard lock(mu_);
        stats_.holding = false;
      }
      metrics_.held.set(0);
      jobs.clear();
      retry = false;
      delay = options_.retry_initial;
      continue;
    }
    // Held: nothing was acknowledged. Logged once per outage, not per node or per try.
    size_t batches = 0;
    std::set<std::string> nodes;
    for (const auto& j : jobs)
      if (!j.liveness) {
        ++batches;
        nodes.insert(j.node);
      }
    metrics_.held.set(double(batches));
    if (!retry) {
      outage_since = std::chrono::steady_clock::now();
      outage_retries = 0;
      spdlog::warn(
          "hub: the store is unavailable ({}); holding {} status batches of {} nodes "
          "unacknowledged (the tunnels stay up, the edges keep them) and writing them again "
          "with back-off up to {} ms",
          last_error_.to_string(), batches, nodes.size(), options_.retry_max.count());
      std::lock_guard lock(mu_);
      ++stats_.store_outages;
      stats_.holding = true;
    }
    retry = true;
    // Full jitter over the upper half: [delay/2, delay].
    const auto half = std::max<int64_t>(1, delay.count() / 2);
    const auto wait =
        std::chrono::milliseconds(half + int64_t(rng() % uint64_t(delay.count() - half + 1)));
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, wait, [&] { return stopping_; });
      ++stats_.store_retries;
    }
    metrics_.store_retries.inc();
    ++outage_retries;
    delay = std::min(delay * 2, options_.retry_max);
  }
}

bool StatusWriter::process(std::deque<Job>& jobs, bool hold, bool retry) {
  // Everything written in this round, on top of the store: later jobs read earlier ones.
  std::map<std::string, std::optional<std::string>> overlay;
  // The first read that failed: nothing of the round is written or acknowledged (a plan made
  // on a failed read would take a stored status or sequence for absent). Later reads of the
  // round do not go to the store.
  Status read_error;
  auto read = [&](const std::string& key) -> std::optional<std::string> {
    if (auto it = overlay.find(key); it != overlay.end()) return it->second;
    if (!read_error.ok()) return std::nullopt;
    auto kv = store_.get(key);
    if (!kv.ok()) {
      read_error = kv.status();
      return std::nullopt;
    }
    if (!kv->has_value()) return std::nullopt;
    return (*kv)->value;
  };
  StatusLookup lookup = [&](const std::string& key) -> std::optional<v1::StoredStatus> {
    auto bytes = read(key);
    if (!bytes) return std::nullopt;
    v1::StoredStatus status;
    if (!status.ParseFromString(*bytes)) return std::nullopt;
    return status;
  };
  int64_t now_ms = to_ms(clock_.system_now());
  std::vector<UpstreamPlan> plans(jobs.size());
  std::map<std::string, uint64_t> new_sequences;
  std::vector<std::string> finished_pods;
  uint64_t applied = 0, resyncs = 0, batches = 0;
  // Per node touched: its Ready as the round found it (for NodeReady / NodeNotReady events).
  std::map<std::string, std::string> ready_before;

  for (size_t i = 0; i < jobs.size(); ++i) {
    Job& job = jobs[i];
    std::string status_key = keys::status_key(v1::OBJECT_KIND_NODE, "", job.node);
    if (events_ && !ready_before.count(job.node))
      ready_before[job.node] = effective_ready(lookup(status_key));
    if (job.liveness) {
      auto stored = lookup(status_key);
      if (!stored && !job.unreachable) continue;
      v1::StoredStatus next = stored.value_or(v1::StoredStatus());
      if (next.unreachable() == job.unreachable) continue;
      next.set_unreachable(job.unreachable);
      next.set_unreachable_since(job.unreachable ? now_ms : 0);
      overlay[status_key] = next.SerializeAsString();
      continue;
    }
    uint64_t stored_seq = 0;
    if (new_sequences.count(job.node)) {
      stored_seq = new_sequences[job.node];
    } else if (read_error.ok()) {
      auto seq = load_sequence(job.node, /*fresh=*/retry);
      if (seq.ok())
        stored_seq = *seq;
      else
        read_error = seq.status();
    }
    plans[i] = plan_status_delta(job.node, job.delta, stored_seq, registry_, lookup, now_ms);
    const UpstreamPlan& plan = plans[i];
    if (!plan.violation.ok() || plan.duplicate) continue;
    for (const auto& [key, value] : plan.writes) overlay[key] = value;
    finished_pods.insert(finished_pods.end(), plan.finished_pods.begin(), plan.finished_pods.end());
    new_sequences[job.node] = job.delta.sequence();
    overlay[keys::hub_sequence_key(job.node)] = encode_sequence(job.delta.sequence());
    applied += plan.applied;
    resyncs += plan.ack.resync_size();
    ++batches;
  }

  // Read before the overlay's values are moved into the txn.
  std::map<std::string, std::optional<v1::StoredStatus>> after;
  for (const auto& [node, before] : ready_before)
    after[node] = lookup(keys::status_key(v1::OBJECT_KIND_NODE, "", node));

  std::vector<Op> ops;
  for (auto& [key, value] : overlay) {
    if (!read_error.ok()) break;
    if (value) {
      ops.push_back(Op::put(key, std::move(*value)));
    } else {
      auto existing = store_.get(key);
      if (!existing.ok())
        read_error = existing.status();
      else if (existing->has_value())
        ops.push_back(Op::remove(key));
    }
  }
  Status commit_error = read_error;
  if (!read_error.ok()) ops.clear();
  if (!ops.empty()) {
    // One txn, or several within the store's limits (etcd): then the sequences go last, so a
    // failure between txns leaves statuses without their sequence (the edge sends them again),
    // never a sequence without its statuses.
    std::stable_partition(ops.begin(), ops.end(), [](const Op& op) {
      return op.key.compare(0, keys::kHubSequence.size(), keys::kHubSequence) != 0;
    });
    for (auto& part : split_txn(std::move(ops), store_.txn_limits())) {
      auto result = store_.txn(std::move(part));
      if (!result.ok()) {
        commit_error = result.status();
        break;
      }
    }
  }
  const bool unavailable =
      commit_error.code() == Code::kUnavailable || commit_error.code() == Code::kDeadlineExceeded;
  if (!commit_error.ok() && unavailable && hold) {
    // Held: no ack, no event, no metric; the caller writes the round again (planned anew: a
    // part of a split round may have landed, and its statuses are read back then).
    last_error_ = commit_error;
    return false;
  }
  last_error_ = commit_error;
  if (!commit_error.ok())
    spdlog::error("hub: writing {} status batches failed: {}", batches, commit_error.to_string());
  if (commit_error.ok()) {
    std::lock_guard lock(mu_);
    for (const auto& [node, seq] : new_sequences) sequences_[node] = seq;
    ++stats_.commits;
    stats_.batches += batches;
    stats_.entries_applied += applied;
    stats_.resyncs += resyncs;
  }
  // The end of graceful deletes: the pod objects go (a user may have removed one already).
  if (commit_error.ok())
    for (const auto& key : finished_pods) {
      auto removed = store_.remove(key);
      if (!removed.ok() && removed.status().code() != Code::kNotFound)
        spdlog::warn("hub: removing {} after its graceful delete: {}", key,
                     removed.status().to_string());
    }
  if (commit_error.ok()) {
    auto durable = std::chrono::steady_clock::now();
    for (size_t i = 0; i < jobs.size(); ++i)
      if (!jobs[i].liveness && plans[i].violation.ok())
        metrics_.propagation.observe(
            std::chrono::duration<double>(durable - jobs[i].received).count());
  }
  if (commit_error.ok() && events_) record_events(jobs, plans, ready_before, after);
  for (size_t i = 0; i < jobs.size(); ++i)
    if (jobs[i].done) jobs[i].done(plans[i], commit_error);
  return true;
}

void StatusWriter::record_events(const std::deque<Job>& jobs,
                                 const std::vector<UpstreamPlan>& plans,
                                 const std::map<std::string, std::string>& ready_before,
                                 const NodeStatuses& after_round) {
  std::map<std::string, std::string> uids;
  auto uid_of = [&](const std::string& node) -> const std::string& {
    auto it = uids.find(node);
    if (it == uids.end()) it = uids.emplace(node, node_uid(node)).first;
    return it->second;
  };
  // Ready transitions, as the node lifecycle controller and the kubelet report them.
  for (const auto& [node, before] : ready_before) {
    const auto& after_status = after_round.at(node);
    std::string after = effective_ready(after_status);
    if (after == before || after.empty()) continue;
    controllers::EventRecord r;
    r.object = controllers::node_reference(node, uid_of(node));
    r.component = "node-controller";
    if (after == "True") {
      r.reason = "NodeReady";
      r.message = fmt::format("Node {} status is now: NodeReady", node);
    } else if (before == "True" || before.empty() || after == "Unknown") {
      r.reason = "NodeNotReady";
      r.message = after_status && after_status->unreachable()
                      ? fmt::format(
                            "Node {} status is now: NodeNotReady (its edgecore has been silent "
                            "past the node timeout: Ready=Unknown; its pods keep running)",
                            node)
                      : fmt::format("Node {} status is now: NodeNotReady", node);
      r.type = controllers::KubeEventType::kWarning;
    } else {
      continue;
    }
    events_(std::move(r));
  }
  uint64_t passed = 0, refused = 0;
  for (size_t i = 0; i < jobs.size(); ++i) {
    const Job& job = jobs[i];
    if (job.liveness || !plans[i].violation.ok() || plans[i].duplicate) continue;
    if (job.delta.events().empty() && job.delta.events_dropped() == 0) continue;
    size_t bad = 0;
    auto records = plan_edge_events(job.node, uid_of(job.node), job.delta, registry_, &bad);
    refused += bad;
    for (auto& r : records) {
      events_(std::move(r));
      ++passed;
    }
  }
  std::lock_guard lock(mu_);
  stats_.edge_events += passed;
  stats_.edge_events_refused += refused;
}

}  // namespace gantry::cloud
