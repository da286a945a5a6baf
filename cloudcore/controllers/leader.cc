#include "cloudcore/controllers/leader.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

namespace gantry::cloud::controllers {
namespace {

using common::make_error;

std::string holder_value(const std::string& identity, LeaseId lease) {
  return nlohmann::json{{"holder", identity}, {"lease", fmt::format("{:x}", lease)}}.dump();
}

// {holder, lease} from a leader key's value; a value we cannot read gives its raw text.
std::pair<std::string, std::string> parse_holder(const std::string& value) {
  auto j = nlohmann::json::parse(value, nullptr, false);
  if (!j.is_object()) return {value, ""};
  auto text = [&](const char* f) {
    auto it = j.find(f);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  return {text("holder"), text("lease")};
}

}  // namespace

LeaderElector::LeaderElector(Leases& leases, Store& store, common::Clock& clock,
                             LeaderOptions options)
    : leases_(leases), store_(store), clock_(clock), options_(std::move(options)) {
  if (options_.renew_interval.count() <= 0) options_.renew_interval = options_.ttl / 3;
  if (options_.margin.count() <= 0) options_.margin = options_.ttl / 3;
}

LeaderElector::~LeaderElector() {
  stop();
}

void LeaderElector::start() {
  std::lock_guard lock(thread_mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] {
    std::unique_lock lock(thread_mu_);
    while (!stopping_) {
      lock.unlock();
      step();
      lock.lock();
      cv_.wait_for(lock, options_.tick, [&] { return stopping_; });
    }
  });
}

void LeaderElector::stop() {
  {
    std::lock_guard lock(thread_mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  LeaseId lease = 0;
  bool was_leader = false;
  {
    std::lock_guard lock(mu_);
    was_leader = leader_;
    lease = lease_;
    lease_ = 0;
  }
  if (was_leader) demote("stopping");
  if (lease != 0) {
    // Deletes the leader key with it: a successor need not wait for the TTL.
    if (auto s = leases_.revoke(lease); !s.ok())
      spdlog::warn("leader: revoking lease {:x}: {}", lease, s.to_string());
  }
}

bool LeaderElector::leader() const {
  std::lock_guard lock(mu_);
  return leader_;
}

bool LeaderElector::may_write() const {
  auto now = clock_.steady_now();
  std::lock_guard lock(mu_);
  return leader_ && now < valid_until_ - options_.margin;
}

Revision LeaderElector::fence() const {
  std::lock_guard lock(mu_);
  return leader_ ? fence_ : 0;
}

std::string LeaderElector::holder() const {
  std::lock_guard lock(mu_);
  return holder_;
}

void LeaderElector::step() {
  const auto now = clock_.steady_now();
  // Renew first: a renewal that succeeds proves the lease (and so the key) is still ours, even
  // after a long pause (a slow on_elected); one that fails leaves the time fence to decide.
  renew(now);
  bool leader = false;
  bool expired = false;
  {
    std::lock_guard lock(mu_);
    leader = leader_;
    // The time fence: past it, the store may expire the lease at any moment.
    expired = lease_ != 0 && now >= valid_until_ - options_.margin;
  }
  if (leader && expired) {
    demote(fmt::format(
        "no renewal of the lease succeeded for {} s (TTL {} s)",
        std::chrono::duration_cast<std::chrono::seconds>(options_.ttl - options_.margin).count(),
        options_.ttl.count()));
    std::lock_guard lock(mu_);
    // The lease may still live in the store, with the key (etcd restarted: it restores its
    // leases with their full TTL). Keep renewing it: a renewal that succeeds proves the key is
    // still ours, and try_acquire takes it back at once instead of waiting out the TTL; one
    // that finds it gone (kNotFound) drops it and a new lease competes.
    next_try_ = now;
  }
  bool try_now = false;
  {
    std::lock_guard lock(mu_);
    try_now = !leader_ && now >= next_try_;
  }
  if (try_now) try_acquire(now);
}

void LeaderElector::renew(std::chrono::steady_clock::time_point now) {
  LeaseId lease = 0;
  {
    std::lock_guard lock(mu_);
    if (lease_ == 0 || now < next_renew_) return;
    lease = lease_;
  }
  auto ttl = leases_.keep_alive(lease);
  if (!ttl.ok()) {
    ++stats_.renewals_failed;
    if (ttl.status().code() == Code::kNotFound) {
      bool leader = this->leader();
      if (leader) demote("the lease expired: " + ttl.status().message());
      std::lock_guard lock(mu_);
      lease_ = 0;
      next_try_ = now;
      return;
    }
    spdlog::warn("leader: renewing the lease: {}", ttl.status().to_string());
    std::lock_guard lock(mu_);
    next_renew_ =
        now + std::min<std::chrono::milliseconds>(options_.retry_interval, options_.renew_interval);
    return;
  }
  // While leader, the key must still be ours (someone may have deleted it by hand).
  bool lost_key = false;
  std::string why;
  if (leader()) {
    auto kv = store_.get(options_.key);
    if (kv.ok()) {
      Revision fence = this->fence();
      if (!kv->has_value() || (*kv)->mod_revision != fence) {
        lost_key = true;
        why = kv->has_value() ? "the leader key was overwritten" : "the leader key was deleted";
      }
    }
  }
  {
    std::lock_guard lock(mu_);
    valid_until_ = now + *ttl;
    next_renew_ = now + options_.renew_interval;
  }
  if (lost_key) {
    demote(why);
    std::lock_guard lock(mu_);
    next_try_ = now;
  }
}

void LeaderElector::try_acquire(std::chrono::steady_clock::time_point now) {
  LeaseId lease = 0;
  {
    std::lock_guard lock(mu_);
    lease = lease_;
    next_try_ = now + options_.retry_interval;
  }
  if (lease == 0) {
    auto grant = leases_.grant(options_.ttl);
    if (!grant.ok()) {
      spdlog::warn("leader: granting a lease: {}", grant.status().to_string());
      return;
    }
    std::lock_guard lock(mu_);
    lease = lease_ = grant->id;
    valid_until_ = now + grant->ttl;
    next_renew_ = now + options_.renew_interval;
  }
  auto created = leases_.txn(
      {Op::put(options_.key, holder_value(options_.identity, lease), Revision{0})}, {}, lease);
  Revision fence = 0;
  if (created.ok()) {
    fence = created->revision;
  } else if (created.status().code() == Code::kFailedPrecondition) {
    auto kv = store_.get(options_.key);
    if (!kv.ok() || !kv->has_value()) return;  // gone meanwhile: the next try
    auto [holder, holder_lease] = parse_holder((*kv)->value);
    // Our own key, left from before a demotion while the lease lived on: ours again.
    if (holder == options_.identity && holder_lease == fmt::format("{:x}", lease)) {
      fence = (*kv)->mod_revision;
    } else {
      std::lock_guard lock(mu_);
      if (holder_ != holder)
        spdlog::info("leader: {} holds the leader lease; {} is a candidate", holder,
                     options_.identity);
      holder_ = holder;
      return;
    }
  } else {
    if (created.status().code() == Code::kNotFound) {  // the lease expired meanwhile
      std::lock_guard lock(mu_);
      lease_ = 0;
      next_try_ = now;
    }
    spdlog::warn("leader: taking the leader key: {}", created.status().to_string());
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (now >= valid_until_ - options_.margin) return;  // too late for this lease
    leader_ = true;
    fence_ = fence;
    holder_ = options_.identity;
  }
  ++stats_.elections_won;
  spdlog::info("leader: {} is the leader (lease {:x}, TTL {} s, fence revision {})",
               options_.identity, lease, options_.ttl.count(), fence);
  if (options_.on_elected && !options_.on_elected(fence)) {
    demote("the controllers did not start");
    LeaseId give_up = 0;
    {
      std::lock_guard lock(mu_);
      give_up = lease_;
      lease_ = 0;
      next_try_ = now + options_.retry_interval;
    }
    if (auto s = leases_.revoke(give_up); !s.ok())
      spdlog::warn("leader: revoking lease {:x}: {}", give_up, s.to_string());
  }
}

void LeaderElector::demote(const std::string& why) {
  {
    std::lock_guard lock(mu_);
    if (!leader_) return;
    leader_ = false;  // may_write() is false from here on
    fence_ = 0;
    holder_.clear();
  }
  ++stats_.demotions;
  spdlog::warn("leader: {} is no longer the leader: {}; stopping the controllers",
               options_.identity, why);
  if (options_.on_demoted) options_.on_demoted();
}

Periodic::Periodic(std::chrono::milliseconds interval, std::function<void()> fn) {
  thread_ = std::thread([this, interval, fn = std::move(fn)] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, interval, [&] { return stopping_; })) {
      lock.unlock();
      fn();
      lock.lock();
    }
  });
}

Periodic::~Periodic() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  thread_.join();
}

Result<TxnResult> FencedStore::txn(std::vector<Op> ops) {
  if (!elector_.may_write())
    return make_error(Code::kUnavailable,
                      "this cloudcore replica is not the leader (a controller write was refused)");
  return leases_.txn(std::move(ops), {{elector_.options().key, elector_.fence()}}, 0);
}

TxnLimits FencedStore::txn_limits() const {
  TxnLimits limits = store_.txn_limits();
  if (limits.max_ops > 1) --limits.max_ops;  // the guard's compare
  return limits;
}

Status FencedStore::compact(Revision up_to) {
  if (!elector_.may_write())
    return make_error(Code::kUnavailable, "this cloudcore replica is not the leader");
  return store_.compact(up_to);
}

}  // namespace gantry::cloud::controllers
