// cloudcore's revisioned key-value store: the seam behind which RocksDB lives now and etcd later.
//
// Model (etcd-like):
// - Every successful txn() gets the next global revision (1, 2, 3, ...); all of its ops share it.
//   Revision 0 means "none" / "current".
// - Keys are non-empty byte strings without NUL ("/pods/default/web"); values are opaque bytes.
// - Reads: get/list at the current revision or at any revision >= compacted_revision() and
//   <= current_revision(). The state *as of* the compacted revision stays readable; the events at
//   or below it are gone, so watch(from) needs from >= compacted_revision().
// - Watch: ordered, exactly-once event delivery per revision, replaying history first when
//   `from` is in the past, on a store-owned thread per watch with a bounded queue.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace gantry::cloud {

using common::Code;
using common::Result;
using common::Status;

using Revision = uint64_t;  // global, strictly increasing, first write gets 1; 0 = "none"

struct KeyValue {
  std::string key;
  std::string value;  // empty when listed with keys_only
  Revision create_revision = 0;
  Revision mod_revision = 0;

  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

enum class EventType { kPut, kDelete };

struct Event {
  EventType type = EventType::kPut;
  // For kPut: the new key-value. For kDelete: value and create_revision of the deleted key, with
  // mod_revision = the delete's revision.
  KeyValue kv;
  std::optional<KeyValue> prev;  // the key-value before this event, if the key existed
};

// One write in a transaction.
struct Op {
  enum class Type { kPut, kDelete } type = Type::kPut;
  std::string key;
  std::string value;
  // Optimistic concurrency: when set, the op fails unless the key's current mod_revision equals
  // it (0 = the key must not exist).
  std::optional<Revision> expect_mod_revision;

  static Op put(std::string key, std::string value, std::optional<Revision> expect = {}) {
    return Op{Type::kPut, std::move(key), std::move(value), expect};
  }
  static Op remove(std::string key, std::optional<Revision> expect = {}) {
    return Op{Type::kDelete, std::move(key), {}, expect};
  }
};

struct TxnResult {
  Revision revision = 0;  // the revision the txn got; all its ops share it
  // One entry per op, in op order. A put: the key-value as written. A delete: the key-value as
  // it was just before the delete (its last value and revisions).
  std::vector<KeyValue> results;
};

// What one txn may hold in a backend (0 = no limit): etcd refuses txns over its --max-txn-ops or
// --max-request-bytes; RocksStore has no limit. Batch writers split with split_txn().
struct TxnLimits {
  size_t max_ops = 0;
  size_t max_bytes = 0;        // the sum of op_bytes() over the txn
  size_t per_op_overhead = 0;  // counted by op_bytes() on top of key and value
  size_t op_bytes(const Op& op) const { return op.key.size() + op.value.size() + per_op_overhead; }
};

// Splits `ops` into consecutive txns, each within `limits`, keeping op order (a caller that needs
// some writes to be durable only after the others puts them last). An op over max_bytes alone
// gets a txn of its own, which the store then refuses. Empty `ops` -> no txns.
std::vector<std::vector<Op>> split_txn(std::vector<Op> ops, const TxnLimits& limits);

struct ListOptions {
  std::string prefix;       // "" = every key
  std::string start_after;  // pagination: only keys > start_after
  size_t limit = 0;         // 0 = all
  Revision at = 0;          // 0 = current; pass the first page's revision for consistent paging
  bool keys_only = false;
};

struct ListResult {
  std::vector<KeyValue> items;  // sorted by key
  Revision revision = 0;        // the revision the list was read at
  bool more = false;            // more keys after the last item (continue with start_after)
};

struct WatchCallbacks {
  // Called once per revision that touched the watched prefix, with that revision's events (in
  // op order), in strictly increasing revision order, never concurrently.
  std::function<void(const std::vector<Event>&)> on_events;
  // Called at most once, after which no more events come. kResourceExhausted: the watcher fell
  // too far behind (its queue overflowed); kOutOfRange: `from` was compacted while the watch
  // started; kCancelled/kInternal: the store closed or failed. The client should re-list and
  // watch again from the list's revision.
  std::function<void(const Status&)> on_error;
};

// RAII: the watch is cancelled when the handle is destroyed. Destroying it from inside a
// callback is allowed.
class WatchHandle {
 public:
  virtual ~WatchHandle() = default;
};

class Store {
 public:
  virtual ~Store() = default;

  // Atomic, durable (fsynced, group-committed) before it returns. Errors (nothing is written):
  // kFailedPrecondition when an expect_mod_revision does not hold (the message names the key and
  // both revisions); kNotFound when a delete names an absent key; kInvalidArgument for an empty
  // txn, an empty key, a key containing NUL, or the same key twice in one txn.
  virtual Result<TxnResult> txn(std::vector<Op> ops) = 0;
  virtual TxnLimits txn_limits() const { return {}; }

  // Metrics: sees every txn() with how long it took until durable (or until it failed) and its
  // outcome, on the calling thread. Set it before the store is shared between threads.
  using TxnObserver =
      std::function<void(std::chrono::steady_clock::duration took, const Status& outcome)>;
  void set_txn_observer(TxnObserver observer) { txn_observer_ = std::move(observer); }

  // Helpers over txn(): the revision written.
  Result<Revision> put(std::string key, std::string value, std::optional<Revision> expect = {});
  Result<Revision> remove(std::string key,
                          std::optional<Revision> expect = {});  // NotFound if absent

  // The key at revision `at` (0 = current); nullopt when it did not exist then.
  // kOutOfRange when `at` < compacted_revision() or `at` > current_revision().
  virtual Result<std::optional<KeyValue>> get(std::string_view key, Revision at = 0) const = 0;
  virtual Result<ListResult> list(const ListOptions& options) const = 0;

  virtual Revision current_revision() const = 0;
  // Events at or below it are gone; the state as of this revision is still readable.
  virtual Revision compacted_revision() const = 0;

  // Calls cbs.on_events for every revision > `from` with events under `prefix`, exactly once
  // each, in revision order, and keeps doing so for new revisions until the handle dies.
  // from = 0 means "from now" (same as from = current_revision()). A `from` in the past replays
  // history first, then continues live with no gap and no duplicate; a `from` above the current
  // revision simply waits for revisions above it.
  // kOutOfRange "revision N has been compacted (oldest available M)" when from < compacted.
  virtual Result<std::unique_ptr<WatchHandle>> watch(std::string prefix, Revision from,
                                                     WatchCallbacks cbs) = 0;

  // Drops the history at or below `up_to` (never the state as of up_to, so never the latest
  // value of a live key). up_to <= compacted_revision() is a no-op; up_to > current_revision()
  // -> kOutOfRange.
  virtual Status compact(Revision up_to) = 0;

 protected:
  // For backends: txn() as `commit(ops)`, timed and reported to the observer.
  template <typename Commit>
  Result<TxnResult> observed_txn(std::vector<Op> ops, Commit&& commit) {
    if (!txn_observer_) return commit(std::move(ops));
    auto started = std::chrono::steady_clock::now();
    Result<TxnResult> result = commit(std::move(ops));
    txn_observer_(std::chrono::steady_clock::now() - started, result.status());
    return result;
  }

 private:
  TxnObserver txn_observer_;
};

}  // namespace gantry::cloud
