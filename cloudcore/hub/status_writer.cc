#include "cloudcore/hub/status_writer.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <map>
#include <optional>

#include "cloudcore/registry/keys.h"

namespace gantry::cloud {
namespace {

constexpr size_t kMaxJobsPerCommit = 1024;

int64_t to_ms(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

std::string encode_sequence(uint64_t seq) {
  return std::to_string(seq);
}

uint64_t decode_sequence(const std::string& text) {
  try {
    return std::stoull(text);
  } catch (...) {
    return 0;
  }
}

}  // namespace

StatusWriter::StatusWriter(Store& store, const Registry& registry, common::Clock& clock)
    : store_(store), registry_(registry), clock_(clock), thread_([this] { run(); }) {}

StatusWriter::~StatusWriter() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void StatusWriter::submit(std::string node, v1::StatusDelta delta, Done done) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Job{std::move(node), false, false, std::move(delta), std::move(done)});
  }
  cv_.notify_one();
}

void StatusWriter::set_unreachable(std::string node, bool unreachable) {
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Job{std::move(node), true, unreachable, {}, nullptr});
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

StatusWriter::Stats StatusWriter::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void StatusWriter::run() {
  std::deque<Job> jobs;
  while (true) {
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty() && stopping_) return;
      while (!queue_.empty() && jobs.size() < kMaxJobsPerCommit) {
        jobs.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    process(jobs);
    jobs.clear();
  }
}

void StatusWriter::process(std::deque<Job>& jobs) {
  // Everything written in this round, on top of the store: later jobs read earlier ones.
  std::map<std::string, std::optional<std::string>> overlay;
  auto read = [&](const std::string& key) -> std::optional<std::string> {
    if (auto it = overlay.find(key); it != overlay.end()) return it->second;
    auto kv = store_.get(key);
    if (!kv.ok() || !kv->has_value()) return std::nullopt;
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

  for (size_t i = 0; i < jobs.size(); ++i) {
    Job& job = jobs[i];
    std::string status_key = keys::status_key(v1::OBJECT_KIND_NODE, "", job.node);
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
    uint64_t stored_seq =
        new_sequences.count(job.node) ? new_sequences[job.node] : stored_sequence(job.node);
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

  std::vector<Op> ops;
  for (auto& [key, value] : overlay) {
    if (value) {
      ops.push_back(Op::put(key, std::move(*value)));
    } else {
      auto existing = store_.get(key);
      if (existing.ok() && existing->has_value()) ops.push_back(Op::remove(key));
    }
  }
  Status commit_error;
  if (!ops.empty()) {
    auto result = store_.txn(std::move(ops));
    if (!result.ok()) {
      commit_error = result.status();
      spdlog::error("hub: writing {} status batches failed: {}", batches, commit_error.to_string());
    }
  }
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
  for (size_t i = 0; i < jobs.size(); ++i)
    if (jobs[i].done) jobs[i].done(plans[i], commit_error);
}

}  // namespace gantry::cloud
