#include "cloudcore/controllers/node_ownership.h"

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <vector>

namespace gantry::cloud::controllers {

std::string node_ownership_key(std::string_view node) {
  return std::string(kNodeOwnershipPrefix) + std::string(node);
}

namespace {

std::string record_field(std::string_view value, const char* field) {
  auto j = nlohmann::json::parse(value, nullptr, false);
  if (!j.is_object()) return "";
  auto it = j.find(field);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

}  // namespace

std::string node_owner(std::string_view value) {
  return record_field(value, "replica");
}

std::string node_owner_link(std::string_view value) {
  return record_field(value, "link");
}

NodeOwnership::NodeOwnership(Leases& leases, Store& store, common::Clock& clock,
                             NodeOwnershipOptions options)
    : leases_(leases), store_(store), clock_(clock), options_(std::move(options)) {
  if (options_.renew_interval.count() <= 0) options_.renew_interval = options_.ttl / 3;
}

NodeOwnership::~NodeOwnership() {
  stop();
}

void NodeOwnership::held(const std::string& node) {
  {
    std::lock_guard lock(mu_);
    to_release_.erase(node);
    held_[node] = 0;
    to_write_.insert(node);
    kicked_ = true;
  }
  cv_.notify_all();
}

void NodeOwnership::released(const std::string& node) {
  {
    std::lock_guard lock(mu_);
    auto it = held_.find(node);
    if (it == held_.end()) return;
    if (it->second != 0) to_release_[node] = it->second;
    to_write_.erase(node);
    held_.erase(it);
  }
  cv_.notify_all();
}

void NodeOwnership::set_link(std::string link) {
  std::lock_guard lock(mu_);
  options_.link = std::move(link);
}

void NodeOwnership::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (!stopping_) {
      lock.unlock();
      step();
      lock.lock();
      cv_.wait_for(lock, options_.tick, [&] { return stopping_ || kicked_; });
      kicked_ = false;
    }
  });
}

void NodeOwnership::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  LeaseId lease = 0;
  {
    std::lock_guard lock(mu_);
    lease = lease_;
    lease_ = 0;
  }
  if (lease != 0) {
    if (auto s = leases_.revoke(lease); !s.ok())
      spdlog::warn("ownership: revoking lease {:x}: {}", lease, s.to_string());
  }
}

void NodeOwnership::step() {
  const auto now = clock_.steady_now();
  LeaseId lease = 0;
  bool renew = false;
  {
    std::lock_guard lock(mu_);
    lease = lease_;
    renew = lease != 0 && now >= next_renew_;
  }
  if (renew) {
    auto ttl = leases_.keep_alive(lease);
    std::lock_guard lock(mu_);
    if (ttl.ok()) {
      next_renew_ = now + options_.renew_interval;
    } else if (ttl.status().code() == Code::kNotFound) {
      // The records went with it: a new lease, and every held node written again.
      spdlog::warn("ownership: the lease of replica {} expired; writing its {} nodes again",
                   options_.replica, held_.size());
      lease = lease_ = 0;
      for (auto& [node, rev] : held_) {
        rev = 0;
        to_write_.insert(node);
      }
    } else {
      next_renew_ = now + options_.retry_interval;
    }
  }
  if (lease == 0) {
    {
      std::lock_guard lock(mu_);
      if (now < next_grant_) return;
      next_grant_ = now + options_.retry_interval;
    }
    auto grant = leases_.grant(options_.ttl);
    if (!grant.ok()) {
      spdlog::warn("ownership: granting a lease: {}", grant.status().to_string());
      return;
    }
    std::lock_guard lock(mu_);
    lease = lease_ = grant->id;
    next_renew_ = now + options_.renew_interval;
    ++stats_.leases_granted;
  }

  // Writes: every pending node in as few txns as the store allows.
  std::vector<std::string> writing;
  std::map<std::string, Revision> releasing;
  {
    std::lock_guard lock(mu_);
    if (now < next_write_) return;  // after a failure
    writing.assign(to_write_.begin(), to_write_.end());
    to_write_.clear();
    releasing.swap(to_release_);
  }
  if (!writing.empty()) {
    nlohmann::json record{{"replica", options_.replica}};
    if (!options_.link.empty()) record["link"] = options_.link;
    const std::string value = record.dump();
    std::vector<Op> ops;
    ops.reserve(writing.size());
    for (const auto& node : writing) ops.push_back(Op::put(node_ownership_key(node), value));
    std::vector<std::string> done;
    size_t at = 0;
    for (auto& part : split_txn(std::move(ops), store_.txn_limits())) {
      const size_t n = part.size();
      auto r = leases_.txn(std::move(part), {}, lease);
      std::lock_guard lock(mu_);
      if (!r.ok()) {
        ++stats_.write_failures;
        next_write_ = now + options_.retry_interval;
        spdlog::warn("ownership: writing {} node records: {}", n, r.status().to_string());
        for (size_t i = at; i < writing.size(); ++i)
          if (held_.count(writing[i])) to_write_.insert(writing[i]);
        if (r.status().code() == Code::kNotFound) lease_ = 0;  // the lease is gone
        break;
      }
      for (size_t i = 0; i < n; ++i) {
        const std::string& node = writing[at + i];
        auto it = held_.find(node);
        if (it != held_.end()) {
          it->second = r->revision;
          done.push_back(node);
        } else {
          // Released while we wrote it: delete it (if still ours).
          to_release_[node] = r->revision;
        }
      }
      stats_.records_written += n;
      at += n;
    }
    if (options_.on_recorded)
      for (const auto& node : done) options_.on_recorded(node);
  }
  for (const auto& [node, rev] : releasing) {
    auto r = leases_.txn({Op::remove(node_ownership_key(node), rev)}, {}, 0);
    std::lock_guard lock(mu_);
    if (r.ok()) {
      ++stats_.records_released;
    } else if (r.status().code() == Code::kUnavailable && !held_.count(node)) {
      to_release_.emplace(node, rev);  // again later
      next_write_ = now + options_.retry_interval;
    }
    // kFailedPrecondition / kNotFound: another replica holds it now, or the lease took it.
  }
}

size_t NodeOwnership::held_count() const {
  std::lock_guard lock(mu_);
  return held_.size();
}

bool NodeOwnership::recorded(const std::string& node) const {
  std::lock_guard lock(mu_);
  auto it = held_.find(node);
  return it != held_.end() && it->second != 0;
}

NodeOwnershipStats NodeOwnership::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

}  // namespace gantry::cloud::controllers
