#include "cloudcore/store/lease.h"

#include <spdlog/spdlog.h>

namespace gantry::cloud {

using common::make_error;
using common::ok_status;

Result<std::unique_ptr<LocalLeases>> LocalLeases::open(
    Store& store, common::Clock& clock, const std::vector<std::string>& ephemeral_prefixes) {
  std::unique_ptr<LocalLeases> leases(new LocalLeases(store, clock));
  for (const auto& prefix : ephemeral_prefixes) {
    if (prefix.empty()) return make_error(Code::kInvalidArgument, "an empty ephemeral prefix");
    while (true) {
      ListOptions list;
      list.prefix = prefix;
      list.keys_only = true;
      list.limit = 1000;
      GANTRY_ASSIGN_OR_RETURN(ListResult page, store.list(list));
      if (page.items.empty()) break;
      std::vector<Op> ops;
      for (auto& kv : page.items) ops.push_back(Op::remove(std::move(kv.key), kv.mod_revision));
      for (auto& part : split_txn(std::move(ops), store.txn_limits())) {
        auto r = store.txn(std::move(part));
        if (!r.ok() && r.status().code() != Code::kFailedPrecondition &&
            r.status().code() != Code::kNotFound)
          return r.status().with_context("clearing " + prefix);
      }
      if (!page.more) break;
    }
  }
  return leases;
}

Result<LeaseGrant> LocalLeases::grant(std::chrono::seconds ttl) {
  if (ttl.count() < 1) return make_error(Code::kInvalidArgument, "a lease TTL must be >= 1 s");
  std::lock_guard lock(mu_);
  expire_locked();
  LeaseId id = next_id_++;
  leases_[id] = LeaseState{ttl, clock_.steady_now() + ttl, {}};
  return LeaseGrant{id, ttl};
}

Result<std::chrono::seconds> LocalLeases::keep_alive(LeaseId id) {
  std::lock_guard lock(mu_);
  expire_locked();
  auto it = leases_.find(id);
  if (it == leases_.end()) return make_error(Code::kNotFound, "lease {:x} not found", id);
  it->second.expires = clock_.steady_now() + it->second.ttl;
  return it->second.ttl;
}

Status LocalLeases::revoke(LeaseId id) {
  std::lock_guard lock(mu_);
  expire_locked();
  if (leases_.count(id)) drop_locked(id);
  return ok_status();
}

Result<TxnResult> LocalLeases::txn(std::vector<Op> ops, const std::vector<LeaseGuard>& guards,
                                   LeaseId lease) {
  std::lock_guard lock(mu_);
  expire_locked();
  if (lease != 0 && !leases_.count(lease))
    return make_error(Code::kNotFound, "lease {:x} not found", lease);
  for (const auto& g : guards) {
    for (const auto& op : ops)
      if (op.key == g.key)
        return make_error(Code::kInvalidArgument, "key {} appears twice in one transaction", g.key);
    GANTRY_ASSIGN_OR_RETURN(auto kv, store_.get(g.key));
    Revision mod = kv ? kv->mod_revision : 0;
    if (mod != g.mod_revision)
      return make_error(Code::kFailedPrecondition,
                        "key {}: expected mod_revision {}, current mod_revision {}", g.key,
                        g.mod_revision, mod);
  }
  std::vector<std::pair<std::string, bool>> touched;  // key, put
  for (const auto& op : ops) touched.emplace_back(op.key, op.type == Op::Type::kPut);
  GANTRY_ASSIGN_OR_RETURN(TxnResult result, store_.txn(std::move(ops)));
  for (const auto& [key, put] : touched) {
    if (auto it = bound_.find(key); it != bound_.end()) {
      if (auto l = leases_.find(it->second); l != leases_.end()) l->second.keys.erase(key);
      bound_.erase(it);
    }
    if (put && lease != 0) {
      bound_[key] = lease;
      leases_[lease].keys.insert(key);
    }
  }
  return result;
}

void LocalLeases::expire() {
  std::lock_guard lock(mu_);
  expire_locked();
}

void LocalLeases::expire_locked() {
  const auto now = clock_.steady_now();
  std::vector<LeaseId> dead;
  for (const auto& [id, state] : leases_)
    if (now >= state.expires) dead.push_back(id);
  for (LeaseId id : dead) drop_locked(id);
}

void LocalLeases::drop_locked(LeaseId id) {
  auto it = leases_.find(id);
  if (it == leases_.end()) return;
  std::vector<Op> ops;
  for (const auto& key : it->second.keys) {
    bound_.erase(key);
    ops.push_back(Op::remove(key));
  }
  leases_.erase(it);
  // One txn per key: a key deleted meanwhile (NotFound) must not keep the others.
  for (auto& op : ops) {
    auto r = store_.txn({std::move(op)});
    if (!r.ok() && r.status().code() != Code::kNotFound)
      spdlog::warn("leases: deleting a key of expired lease {:x}: {}", id, r.status().to_string());
  }
}

}  // namespace gantry::cloud
