#include "cloudcore/store/rocks_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/snapshot.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

namespace gantry::cloud {
namespace {

using common::make_error;
using common::ok_status;

constexpr char kMetaRevision[] = "revision";
constexpr char kMetaCompacted[] = "compacted";
constexpr char kVersionPut = 'P';
constexpr char kVersionDelete = 'D';
constexpr size_t kRevisionBytes = 8;
constexpr size_t kVersionSuffixBytes = 1 + kRevisionBytes;  // '\0' + fixed64be(rev)

// ---- encoding -------------------------------------------------------------------------------

void append_be64(std::string* out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}
void append_be32(std::string* out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8)
    out->push_back(static_cast<char>((v >> shift) & 0xff));
}
uint64_t read_be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

std::string be64(uint64_t v) {
  std::string out;
  append_be64(&out, v);
  return out;
}

// "kv" value: be64 create, be64 mod, value.
std::string encode_kv(const KeyValue& kv) {
  std::string out;
  out.reserve(16 + kv.value.size());
  append_be64(&out, kv.create_revision);
  append_be64(&out, kv.mod_revision);
  out.append(kv.value);
  return out;
}

Result<KeyValue> decode_kv(std::string_view key, const rocksdb::Slice& data, bool keys_only) {
  if (data.size() < 16) return make_error(Code::kDataLoss, "corrupt record for key {}", key);
  KeyValue kv;
  kv.key = std::string(key);
  kv.create_revision = read_be64(data.data());
  kv.mod_revision = read_be64(data.data() + 8);
  if (!keys_only) kv.value.assign(data.data() + 16, data.size() - 16);
  return kv;
}

// "versions" key: key '\0' be64(rev). Keys never contain NUL, so this sorts by (key, rev).
std::string version_key(std::string_view key, Revision rev) {
  std::string out;
  out.reserve(key.size() + kVersionSuffixBytes);
  out.append(key);
  out.push_back('\0');
  append_be64(&out, rev);
  return out;
}

struct VersionKey {
  std::string_view key;
  Revision rev = 0;
};

bool parse_version_key(const rocksdb::Slice& raw, VersionKey* out) {
  if (raw.size() < kVersionSuffixBytes + 1) return false;
  size_t key_len = raw.size() - kVersionSuffixBytes;
  if (raw.data()[key_len] != '\0') return false;
  out->key = std::string_view(raw.data(), key_len);
  out->rev = read_be64(raw.data() + key_len + 1);
  return true;
}

// "versions" value: type byte, be64 create, value.
std::string encode_version(char type, Revision create, std::string_view value) {
  std::string out;
  out.reserve(9 + value.size());
  out.push_back(type);
  append_be64(&out, create);
  out.append(value);
  return out;
}

struct Version {
  char type = kVersionPut;
  Revision create = 0;
  rocksdb::Slice value;
};

bool parse_version(const rocksdb::Slice& raw, Version* out) {
  if (raw.size() < 9) return false;
  out->type = raw.data()[0];
  if (out->type != kVersionPut && out->type != kVersionDelete) return false;
  out->create = read_be64(raw.data() + 1);
  out->value = rocksdb::Slice(raw.data() + 9, raw.size() - 9);
  return true;
}

// "history" key: be64(rev) be32(op index).
std::string history_key(Revision rev, uint32_t index) {
  std::string out;
  append_be64(&out, rev);
  append_be32(&out, index);
  return out;
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && s.compare(0, prefix.size(), prefix) == 0;
}

Status from_rocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return ok_status();
  Code code = s.IsCorruption() ? Code::kDataLoss : Code::kInternal;
  return make_error(code, "{}: {}", what, s.ToString());
}

Status validate_key(std::string_view key) {
  if (key.empty()) return make_error(Code::kInvalidArgument, "empty key");
  if (key.find('\0') != std::string_view::npos) {
    return make_error(Code::kInvalidArgument, "key contains a NUL byte");
  }
  return ok_status();
}

Status compacted_error(Revision rev, Revision compacted) {
  return make_error(Code::kOutOfRange, "revision {} has been compacted (oldest available {})", rev,
                    compacted);
}

// ---- watchers -------------------------------------------------------------------------------

using EventBatch = std::shared_ptr<const std::vector<Event>>;

struct Watcher {
  std::string prefix;
  WatchCallbacks cbs;
  Revision from = 0;        // deliver revisions > from
  Revision live_start = 0;  // revisions in (from, live_start] are replayed from history

  std::mutex mu;
  std::condition_variable cv;
  std::deque<EventBatch> queue;
  size_t queued_events = 0;
  bool stopped = false;         // the handle died: exit without a word
  std::optional<Status> error;  // deliver on_error, then exit

  std::mutex join_mu;
  std::thread thread;
};

// Stops the watcher's thread and waits for it (unless called from that very thread, e.g. a
// callback destroying its own handle: then the thread finishes on its own).
void stop_watcher(Watcher& w, std::optional<Status> error) {
  {
    std::lock_guard lock(w.mu);
    if (error) {
      if (!w.error) w.error = std::move(error);
    } else {
      w.stopped = true;
    }
  }
  w.cv.notify_all();
  std::thread thread;
  {
    // Joined outside join_mu: the callback running meanwhile may destroy its own handle.
    std::lock_guard join_lock(w.join_mu);
    if (!w.thread.joinable()) return;
    if (w.thread.get_id() == std::this_thread::get_id()) {
      w.thread.detach();
      return;
    }
    thread = std::move(w.thread);
  }
  thread.join();
}

class WatchHandleImpl final : public WatchHandle {
 public:
  explicit WatchHandleImpl(std::shared_ptr<Watcher> watcher) : watcher_(std::move(watcher)) {}
  ~WatchHandleImpl() override { stop_watcher(*watcher_, std::nullopt); }

 private:
  std::shared_ptr<Watcher> watcher_;
};

// ---- the store ------------------------------------------------------------------------------

struct PendingTxn {
  std::vector<Op> ops;
  std::promise<Result<TxnResult>> done;
};

class RocksStoreImpl final : public RocksStore {
 public:
  explicit RocksStoreImpl(RocksStoreOptions options) : options_(std::move(options)) {}
  ~RocksStoreImpl() override;

  Status open();

  Result<TxnResult> txn(std::vector<Op> ops) override {
    return observed_txn(std::move(ops),
                        [this](std::vector<Op> o) { return commit_txn(std::move(o)); });
  }
  Result<TxnResult> commit_txn(std::vector<Op> ops);
  Result<std::optional<KeyValue>> get(std::string_view key, Revision at) const override;
  Result<ListResult> list(const ListOptions& options) const override;
  Revision current_revision() const override { return current_rev_.load(); }
  Revision compacted_revision() const override { return compacted_rev_.load(); }
  Result<std::unique_ptr<WatchHandle>> watch(std::string prefix, Revision from,
                                             WatchCallbacks cbs) override;
  Status compact(Revision up_to) override;
  RocksStoreStats stats() const override;

 private:
  struct SnapshotMeta {
    Revision revision = 0;
    Revision compacted = 0;
  };

  Result<SnapshotMeta> read_meta(const rocksdb::ReadOptions& ro) const;
  Result<std::optional<KeyValue>> read_latest(std::string_view key) const;

  void writer_loop();
  void commit_batch(std::vector<std::unique_ptr<PendingTxn>>& batch);
  void publish(Revision revision, const std::vector<EventBatch>& events);

  void watcher_loop(const std::shared_ptr<Watcher>& w);
  Status replay(Watcher& w);

  Status compact_locked(Revision up_to);
  void auto_compact_loop();

  RocksStoreOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* kv_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* versions_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* history_cf_ = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;

  std::atomic<Revision> current_rev_{0};  // written under watchers_mu_ (see watch())
  std::atomic<Revision> compacted_rev_{0};
  Revision committed_rev_ = 0;  // writer thread only
  size_t last_batch_txns_ = 0;  // writer thread only

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<std::unique_ptr<PendingTxn>> queue_;
  size_t queued_ops_ = 0;
  bool closing_ = false;
  std::thread writer_;

  std::mutex watchers_mu_;
  std::vector<std::weak_ptr<Watcher>> watchers_;

  std::mutex compact_mu_;
  std::mutex auto_mu_;
  std::condition_variable auto_cv_;
  bool auto_stop_ = false;
  std::thread auto_compactor_;

  std::atomic<uint64_t> txns_committed_{0};
  std::atomic<uint64_t> batches_written_{0};
  std::atomic<uint64_t> watchers_overflowed_{0};
};

Status RocksStoreImpl::open() {
  if (options_.path.empty()) return make_error(Code::kInvalidArgument, "store path is empty");

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(options_.block_cache_bytes);
  // Index and filter blocks count against the cache too, so memory stays bounded as data grows.
  table.cache_index_and_filter_blocks = true;
  table.pin_l0_filter_and_index_blocks_in_cache = true;
  table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
  std::shared_ptr<rocksdb::TableFactory> table_factory(rocksdb::NewBlockBasedTableFactory(table));

  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.table_factory = table_factory;
  cf_options.write_buffer_size = options_.write_buffer_bytes;
  cf_options.max_write_buffer_number = 2;

  rocksdb::DBOptions db_options;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.max_background_jobs = 2;
  db_options.max_total_wal_size = 4 * options_.write_buffer_bytes;

  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors = {
      {rocksdb::kDefaultColumnFamilyName, cf_options},
      {"kv", cf_options},
      {"versions", cf_options},
      {"history", cf_options},
  };
  std::error_code dir_error;
  std::filesystem::create_directories(options_.path, dir_error);
  if (dir_error)
    return make_error(Code::kInternal, "creating store directory {}: {}", options_.path,
                      dir_error.message());
  rocksdb::DB* raw = nullptr;
  GANTRY_RETURN_IF_ERROR(
      from_rocks(rocksdb::DB::Open(db_options, options_.path, descriptors, &handles_, &raw),
                 fmt::format("opening store at {}", options_.path)));
  db_.reset(raw);
  meta_cf_ = handles_[0];
  kv_cf_ = handles_[1];
  versions_cf_ = handles_[2];
  history_cf_ = handles_[3];

  GANTRY_ASSIGN_OR_RETURN(SnapshotMeta meta, read_meta(rocksdb::ReadOptions()));
  current_rev_ = meta.revision;
  committed_rev_ = meta.revision;
  compacted_rev_ = meta.compacted;

  // A compaction interrupted by a crash leaves history at or below `compacted`: finish it.
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), history_cf_));
    it->SeekToFirst();
    if (it->Valid() && it->key().size() >= kRevisionBytes &&
        read_be64(it->key().data()) <= meta.compacted) {
      std::lock_guard lock(compact_mu_);
      GANTRY_RETURN_IF_ERROR(compact_locked(meta.compacted));
    }
  }

  writer_ = std::thread([this] { writer_loop(); });
  if (options_.auto_compact_interval.count() > 0) {
    auto_compactor_ = std::thread([this] { auto_compact_loop(); });
  }
  return ok_status();
}

RocksStoreImpl::~RocksStoreImpl() {
  if (auto_compactor_.joinable()) {
    {
      std::lock_guard lock(auto_mu_);
      auto_stop_ = true;
    }
    auto_cv_.notify_all();
    auto_compactor_.join();
  }
  if (writer_.joinable()) {
    {
      std::lock_guard lock(queue_mu_);
      closing_ = true;
    }
    queue_cv_.notify_all();
    writer_.join();  // commits what was queued before closing
  }
  std::vector<std::shared_ptr<Watcher>> watchers;
  {
    std::lock_guard lock(watchers_mu_);
    for (auto& weak : watchers_) {
      if (auto w = weak.lock()) watchers.push_back(std::move(w));
    }
    watchers_.clear();
  }
  for (auto& w : watchers) {
    stop_watcher(*w, make_error(Code::kCancelled, "the store is closing"));
  }
  if (db_) {
    for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    db_->Close().PermitUncheckedError();
  }
}

Result<RocksStoreImpl::SnapshotMeta> RocksStoreImpl::read_meta(
    const rocksdb::ReadOptions& ro) const {
  SnapshotMeta meta;
  for (auto [name, field] :
       {std::pair{kMetaRevision, &meta.revision}, std::pair{kMetaCompacted, &meta.compacted}}) {
    std::string value;
    rocksdb::Status s = db_->Get(ro, meta_cf_, name, &value);
    if (s.IsNotFound()) continue;
    GANTRY_RETURN_IF_ERROR(from_rocks(s, "reading store metadata"));
    if (value.size() != 8) return make_error(Code::kDataLoss, "corrupt store metadata {}", name);
    *field = read_be64(value.data());
  }
  return meta;
}

Result<std::optional<KeyValue>> RocksStoreImpl::read_latest(std::string_view key) const {
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), kv_cf_, key, &value);
  if (s.IsNotFound()) return std::optional<KeyValue>();
  GANTRY_RETURN_IF_ERROR(from_rocks(s, fmt::format("reading {}", key)));
  GANTRY_ASSIGN_OR_RETURN(KeyValue kv, decode_kv(key, value, false));
  return std::optional<KeyValue>(std::move(kv));
}

// ---- writes ---------------------------------------------------------------------------------

Result<TxnResult> RocksStoreImpl::commit_txn(std::vector<Op> ops) {
  if (ops.empty()) return make_error(Code::kInvalidArgument, "empty transaction");
  std::unordered_set<std::string_view> keys;
  for (const Op& op : ops) {
    GANTRY_RETURN_IF_ERROR(validate_key(op.key));
    if (!keys.insert(op.key).second) {
      return make_error(Code::kInvalidArgument, "key {} appears twice in one transaction", op.key);
    }
  }
  auto pending = std::make_unique<PendingTxn>();
  pending->ops = std::move(ops);
  std::future<Result<TxnResult>> done = pending->done.get_future();
  {
    std::lock_guard lock(queue_mu_);
    if (closing_) return make_error(Code::kUnavailable, "the store is closing");
    queued_ops_ += pending->ops.size();
    queue_.push_back(std::move(pending));
  }
  queue_cv_.notify_one();
  return done.get();
}

void RocksStoreImpl::writer_loop() {
  while (true) {
    std::vector<std::unique_ptr<PendingTxn>> batch;
    {
      std::unique_lock lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return closing_ || !queue_.empty(); });
      if (queue_.empty()) return;  // closing and drained
      if (options_.group_commit_window.count() > 0 && !closing_ && last_batch_txns_ > 1) {
        // Writers are concurrent: let more of them join this batch, one fsync for all. A lone
        // sequential writer does not pay the window (its txns queue up during fsync anyway).
        queue_cv_.wait_for(lock, options_.group_commit_window,
                           [&] { return closing_ || queued_ops_ >= options_.max_batch_ops; });
      }
      size_t ops = 0;
      while (!queue_.empty() &&
             (batch.empty() || ops + queue_.front()->ops.size() <= options_.max_batch_ops)) {
        ops += queue_.front()->ops.size();
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      queued_ops_ -= ops;
    }
    last_batch_txns_ = batch.size();
    commit_batch(batch);
  }
}

void RocksStoreImpl::commit_batch(std::vector<std::unique_ptr<PendingTxn>>& batch) {
  rocksdb::WriteBatch wb;
  // The state each key has after the earlier txns of this batch (not yet in RocksDB).
  std::unordered_map<std::string, std::optional<KeyValue>> overlay;
  std::vector<std::optional<Result<TxnResult>>> results(batch.size());
  std::vector<EventBatch> events;
  Revision rev = committed_rev_;
  Status write_status;

  for (size_t t = 0; t < batch.size(); ++t) {
    std::vector<Op>& ops = batch[t]->ops;
    std::vector<std::optional<KeyValue>> current(ops.size());
    Status check;
    for (size_t i = 0; i < ops.size() && check.ok(); ++i) {
      const Op& op = ops[i];
      if (auto it = overlay.find(op.key); it != overlay.end()) {
        current[i] = it->second;
      } else {
        auto latest = read_latest(op.key);
        if (!latest.ok()) {
          check = latest.status();
          break;
        }
        current[i] = std::move(*latest);
      }
      Revision mod = current[i] ? current[i]->mod_revision : 0;
      if (op.expect_mod_revision && *op.expect_mod_revision != mod) {
        check = make_error(Code::kFailedPrecondition,
                           "key {}: expected mod_revision {}, current mod_revision {}", op.key,
                           *op.expect_mod_revision, mod);
      } else if (op.type == Op::Type::kDelete && !current[i]) {
        check = make_error(Code::kNotFound, "key {} not found", op.key);
      }
    }
    if (!check.ok()) {
      results[t] = Result<TxnResult>(check);
      continue;
    }

    ++rev;
    TxnResult result;
    result.revision = rev;
    result.results.reserve(ops.size());
    auto txn_events = std::make_shared<std::vector<Event>>();
    txn_events->reserve(ops.size());
    for (size_t i = 0; i < ops.size(); ++i) {
      Op& op = ops[i];
      wb.Put(history_cf_, history_key(rev, static_cast<uint32_t>(i)), op.key);
      Event event;
      event.prev = current[i];
      if (op.type == Op::Type::kPut) {
        KeyValue kv{op.key, std::move(op.value), current[i] ? current[i]->create_revision : rev,
                    rev};
        wb.Put(kv_cf_, kv.key, encode_kv(kv));
        wb.Put(versions_cf_, version_key(kv.key, rev),
               encode_version(kVersionPut, kv.create_revision, kv.value));
        event.type = EventType::kPut;
        overlay[kv.key] = kv;
        result.results.push_back(kv);
        event.kv = std::move(kv);
      } else {
        const KeyValue& old = *current[i];
        wb.Delete(kv_cf_, op.key);
        wb.Put(versions_cf_, version_key(op.key, rev),
               encode_version(kVersionDelete, old.create_revision, {}));
        event.type = EventType::kDelete;
        event.kv = KeyValue{op.key, old.value, old.create_revision, rev};
        result.results.push_back(old);
        overlay[op.key] = std::nullopt;
      }
      txn_events->push_back(std::move(event));
    }
    results[t] = std::move(result);
    events.push_back(std::move(txn_events));
  }

  if (rev > committed_rev_) {
    wb.Put(meta_cf_, kMetaRevision, be64(rev));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    write_status = from_rocks(db_->Write(wo, &wb), "writing a transaction batch");
    if (write_status.ok()) {
      batches_written_.fetch_add(1);
      txns_committed_.fetch_add(events.size());
      committed_rev_ = rev;
      publish(rev, events);
    } else {
      spdlog::error("store: {}", write_status.to_string());
    }
  }

  for (size_t t = 0; t < batch.size(); ++t) {
    if (!write_status.ok() && results[t]->ok()) {
      batch[t]->done.set_value(Result<TxnResult>(write_status));
    } else {
      batch[t]->done.set_value(std::move(*results[t]));
    }
  }
}

void RocksStoreImpl::publish(Revision revision, const std::vector<EventBatch>& events) {
  std::lock_guard lock(watchers_mu_);
  current_rev_ = revision;
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    std::shared_ptr<Watcher> w = it->lock();
    if (!w) {
      it = watchers_.erase(it);
      continue;
    }
    {
      std::lock_guard wlock(w->mu);
      if (w->stopped || w->error) {
        it = watchers_.erase(it);
        continue;
      }
      for (const EventBatch& txn_events : events) {
        Revision rev = txn_events->front().kv.mod_revision;
        if (rev <= w->from) continue;
        EventBatch matching = txn_events;
        if (!w->prefix.empty()) {
          auto filtered = std::make_shared<std::vector<Event>>();
          for (const Event& e : *txn_events) {
            if (starts_with(e.kv.key, w->prefix)) filtered->push_back(e);
          }
          if (filtered->empty()) continue;
          if (filtered->size() != txn_events->size()) matching = std::move(filtered);
        }
        if (w->queued_events + matching->size() > options_.watch_queue_limit && !w->queue.empty()) {
          w->queue.clear();
          w->queued_events = 0;
          w->error = make_error(Code::kResourceExhausted,
                                "watch on prefix '{}' fell behind by more than {} events at "
                                "revision {}; re-list and watch again",
                                w->prefix, options_.watch_queue_limit, rev);
          watchers_overflowed_.fetch_add(1);
          break;
        }
        w->queued_events += matching->size();
        w->queue.push_back(std::move(matching));
      }
    }
    w->cv.notify_all();
    ++it;
  }
}

// ---- reads ----------------------------------------------------------------------------------

Result<std::optional<KeyValue>> RocksStoreImpl::get(std::string_view key, Revision at) const {
  GANTRY_RETURN_IF_ERROR(validate_key(key));
  if (at == 0) return read_latest(key);

  rocksdb::ManagedSnapshot snapshot(db_.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  GANTRY_ASSIGN_OR_RETURN(SnapshotMeta meta, read_meta(ro));
  if (at > meta.revision) {
    return make_error(Code::kOutOfRange, "revision {} is in the future (current {})", at,
                      meta.revision);
  }
  if (at < meta.compacted) return compacted_error(at, meta.compacted);

  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, versions_cf_));
  it->SeekForPrev(version_key(key, at));
  GANTRY_RETURN_IF_ERROR(from_rocks(it->status(), "reading history"));
  VersionKey vk;
  Version version;
  if (!it->Valid() || !parse_version_key(it->key(), &vk) || vk.key != key) {
    return std::optional<KeyValue>();
  }
  if (!parse_version(it->value(), &version)) {
    return make_error(Code::kDataLoss, "corrupt version of {} at {}", key, vk.rev);
  }
  if (version.type == kVersionDelete) return std::optional<KeyValue>();
  return std::optional<KeyValue>(
      KeyValue{std::string(key), version.value.ToString(), version.create, vk.rev});
}

Result<ListResult> RocksStoreImpl::list(const ListOptions& options) const {
  rocksdb::ManagedSnapshot snapshot(db_.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  GANTRY_ASSIGN_OR_RETURN(SnapshotMeta meta, read_meta(ro));
  ListResult out;
  out.revision = options.at == 0 ? meta.revision : options.at;
  if (out.revision > meta.revision) {
    return make_error(Code::kOutOfRange, "revision {} is in the future (current {})", out.revision,
                      meta.revision);
  }
  if (options.at != 0 && options.at < meta.compacted) {
    return compacted_error(options.at, meta.compacted);
  }
  const bool after = !options.start_after.empty() && options.start_after >= options.prefix;
  auto full = [&] { return options.limit != 0 && out.items.size() >= options.limit; };

  if (out.revision == meta.revision) {
    // The current state: a prefix scan of the latest values.
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, kv_cf_));
    it->Seek(after ? rocksdb::Slice(options.start_after) : rocksdb::Slice(options.prefix));
    if (after && it->Valid() && it->key() == options.start_after) it->Next();
    for (; it->Valid(); it->Next()) {
      std::string_view key(it->key().data(), it->key().size());
      if (!starts_with(key, options.prefix)) break;
      if (full()) {
        out.more = true;
        break;
      }
      GANTRY_ASSIGN_OR_RETURN(KeyValue kv, decode_kv(key, it->value(), options.keys_only));
      out.items.push_back(std::move(kv));
    }
    GANTRY_RETURN_IF_ERROR(from_rocks(it->status(), "listing"));
    return out;
  }

  // A past revision: per key, the newest version at or below it.
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, versions_cf_));
  it->Seek(after ? options.start_after + '\x01' : options.prefix);
  while (it->Valid()) {
    VersionKey vk;
    if (!parse_version_key(it->key(), &vk)) {
      return make_error(Code::kDataLoss, "corrupt version key in the store");
    }
    if (!starts_with(vk.key, options.prefix)) break;
    std::string key(vk.key);
    it->SeekForPrev(version_key(key, out.revision));
    Version version;
    if (it->Valid() && parse_version_key(it->key(), &vk) && vk.key == key) {
      if (!parse_version(it->value(), &version)) {
        return make_error(Code::kDataLoss, "corrupt version of {} at {}", key, vk.rev);
      }
      if (version.type == kVersionPut) {
        if (full()) {
          out.more = true;
          break;
        }
        KeyValue kv{key, {}, version.create, vk.rev};
        if (!options.keys_only) kv.value = version.value.ToString();
        out.items.push_back(std::move(kv));
      }
    }
    it->Seek(key + '\x01');  // the next key's first version
  }
  GANTRY_RETURN_IF_ERROR(from_rocks(it->status(), "listing history"));
  return out;
}

// ---- watch ----------------------------------------------------------------------------------

Result<std::unique_ptr<WatchHandle>> RocksStoreImpl::watch(std::string prefix, Revision from,
                                                           WatchCallbacks cbs) {
  if (!cbs.on_events)
    return make_error(Code::kInvalidArgument, "watch needs an on_events callback");
  auto w = std::make_shared<Watcher>();
  w->prefix = std::move(prefix);
  w->cbs = std::move(cbs);
  {
    // Under watchers_mu_, current_rev_ cannot move: every revision after live_start reaches this
    // watcher's queue, every one up to it is already in RocksDB for the replay.
    std::lock_guard lock(watchers_mu_);
    Revision current = current_rev_.load();
    Revision compacted = compacted_rev_.load();
    if (from == 0) from = current;
    if (from < compacted) return compacted_error(from, compacted);
    w->from = from;
    w->live_start = current;
    watchers_.push_back(w);
    std::lock_guard join_lock(w->join_mu);
    w->thread = std::thread([this, w] { watcher_loop(w); });
  }
  return std::unique_ptr<WatchHandle>(std::make_unique<WatchHandleImpl>(std::move(w)));
}

void RocksStoreImpl::watcher_loop(const std::shared_ptr<Watcher>& w) {
  if (w->from < w->live_start) {
    Status s = replay(*w);
    std::lock_guard lock(w->mu);
    if (!s.ok() && !w->error) w->error = s;
    if (w->error) {
      // The replay may have stopped early: live events after it would leave a gap.
      w->queue.clear();
      w->queued_events = 0;
    }
  }
  while (true) {
    std::unique_lock lock(w->mu);
    w->cv.wait(lock, [&] { return w->stopped || w->error || !w->queue.empty(); });
    if (w->stopped) return;
    if (w->queue.empty()) {  // so an error: committed events queued before it still go out
      Status error = *w->error;
      w->stopped = true;
      lock.unlock();
      if (w->cbs.on_error) w->cbs.on_error(error);
      return;
    }
    EventBatch next = std::move(w->queue.front());
    w->queue.pop_front();
    w->queued_events -= next->size();
    lock.unlock();
    w->cbs.on_events(*next);
  }
}

Status RocksStoreImpl::replay(Watcher& w) {
  rocksdb::ManagedSnapshot snapshot(db_.get());
  rocksdb::ReadOptions ro;
  ro.snapshot = snapshot.snapshot();
  GANTRY_ASSIGN_OR_RETURN(SnapshotMeta meta, read_meta(ro));
  if (w.from < meta.compacted) return compacted_error(w.from, meta.compacted);

  auto keep_going = [&] {
    std::lock_guard lock(w.mu);
    return !w.stopped && !w.error;
  };
  std::unique_ptr<rocksdb::Iterator> hist(db_->NewIterator(ro, history_cf_));
  std::unique_ptr<rocksdb::Iterator> vit(db_->NewIterator(ro, versions_cf_));
  std::vector<Event> pending;
  Revision pending_rev = 0;
  for (hist->Seek(be64(w.from + 1)); hist->Valid(); hist->Next()) {
    if (hist->key().size() != kRevisionBytes + 4) {
      return make_error(Code::kDataLoss, "corrupt history key in the store");
    }
    Revision rev = read_be64(hist->key().data());
    if (rev > w.live_start) break;
    if (rev != pending_rev) {
      if (!pending.empty()) {
        if (!keep_going()) return ok_status();
        w.cbs.on_events(pending);
        pending.clear();
      }
      pending_rev = rev;
    }
    std::string key = hist->value().ToString();
    if (!starts_with(key, w.prefix)) continue;

    vit->Seek(version_key(key, rev));
    VersionKey vk;
    Version version;
    if (!vit->Valid() || !parse_version_key(vit->key(), &vk) || vk.key != key || vk.rev != rev ||
        !parse_version(vit->value(), &version)) {
      GANTRY_RETURN_IF_ERROR(from_rocks(vit->status(), "replaying history"));
      return make_error(Code::kDataLoss, "history of {} at revision {} is missing", key, rev);
    }
    Event event;
    event.type = version.type == kVersionPut ? EventType::kPut : EventType::kDelete;
    event.kv = KeyValue{key, version.value.ToString(), version.create, rev};
    vit->Prev();
    Version prev;
    if (vit->Valid() && parse_version_key(vit->key(), &vk) && vk.key == key &&
        parse_version(vit->value(), &prev) && prev.type == kVersionPut) {
      event.prev = KeyValue{key, prev.value.ToString(), prev.create, vk.rev};
      if (event.type == EventType::kDelete) event.kv.value = event.prev->value;
    }
    pending.push_back(std::move(event));
  }
  GANTRY_RETURN_IF_ERROR(from_rocks(hist->status(), "replaying history"));
  if (!pending.empty() && keep_going()) w.cbs.on_events(pending);
  return ok_status();
}

// ---- compaction -----------------------------------------------------------------------------

Status RocksStoreImpl::compact(Revision up_to) {
  std::lock_guard lock(compact_mu_);
  if (up_to <= compacted_rev_.load()) return ok_status();
  if (up_to > current_rev_.load()) {
    return make_error(Code::kOutOfRange, "cannot compact to revision {}: current is {}", up_to,
                      current_rev_.load());
  }
  // Persist the new floor first: readers check it inside their snapshot, so none of them reads
  // history this compaction is about to delete.
  rocksdb::WriteOptions wo;
  wo.sync = true;
  rocksdb::WriteBatch mark;
  mark.Put(meta_cf_, kMetaCompacted, be64(up_to));
  GANTRY_RETURN_IF_ERROR(from_rocks(db_->Write(wo, &mark), "recording compaction"));
  compacted_rev_ = up_to;
  return compact_locked(up_to);
}

Status RocksStoreImpl::compact_locked(Revision up_to) {
  // Writes only ever add revisions above up_to, so this iteration is stable without a snapshot.
  std::unique_ptr<rocksdb::Iterator> hist(db_->NewIterator(rocksdb::ReadOptions(), history_cf_));
  std::unique_ptr<rocksdb::Iterator> vit(db_->NewIterator(rocksdb::ReadOptions(), versions_cf_));
  rocksdb::WriteBatch wb;
  rocksdb::WriteOptions wo;  // not synced: a crash midway is finished at the next open
  size_t pending = 0;
  for (hist->SeekToFirst(); hist->Valid(); hist->Next()) {
    if (hist->key().size() < kRevisionBytes) continue;
    Revision rev = read_be64(hist->key().data());
    if (rev > up_to) break;
    std::string key = hist->value().ToString();
    // Keep this version only if it is a put and the newest version of its key <= up_to.
    vit->Seek(version_key(key, rev + 1));
    VersionKey vk;
    bool superseded =
        vit->Valid() && parse_version_key(vit->key(), &vk) && vk.key == key && vk.rev <= up_to;
    bool drop = superseded;
    if (!superseded) {
      std::string raw;
      rocksdb::Status s =
          db_->Get(rocksdb::ReadOptions(), versions_cf_, version_key(key, rev), &raw);
      Version version;
      if (s.ok() && parse_version(raw, &version)) drop = version.type == kVersionDelete;
    }
    if (drop) wb.Delete(versions_cf_, version_key(key, rev));
    wb.Delete(history_cf_, hist->key());
    if (++pending >= 1000) {
      GANTRY_RETURN_IF_ERROR(from_rocks(db_->Write(wo, &wb), "compacting history"));
      wb.Clear();
      pending = 0;
    }
  }
  GANTRY_RETURN_IF_ERROR(from_rocks(hist->status(), "compacting history"));
  if (pending > 0) GANTRY_RETURN_IF_ERROR(from_rocks(db_->Write(wo, &wb), "compacting history"));
  return ok_status();
}

void RocksStoreImpl::auto_compact_loop() {
  using Clock = std::chrono::steady_clock;
  std::deque<std::pair<Clock::time_point, Revision>> samples;  // (when, revision seen then)
  std::unique_lock lock(auto_mu_);
  while (!auto_stop_) {
    auto_cv_.wait_for(lock, options_.auto_compact_interval, [&] { return auto_stop_; });
    if (auto_stop_) break;
    auto now = Clock::now();
    Revision current = current_rev_.load();
    samples.emplace_back(now, current);
    Revision by_count = current > options_.keep_revisions ? current - options_.keep_revisions : 0;
    Revision by_time = 0;
    if (options_.keep_duration.count() == 0) {
      by_time = current;
    } else {
      // The newest sample at least keep_duration old: everything up to it is old enough.
      auto cutoff = now - options_.keep_duration;
      while (samples.size() >= 2 && samples[1].first <= cutoff) samples.pop_front();
      if (samples.front().first <= cutoff) by_time = samples.front().second;
    }
    Revision target = std::min(by_count, by_time);
    if (target > compacted_rev_.load()) {
      lock.unlock();
      Status s = compact(target);
      if (!s.ok()) spdlog::warn("store: automatic compaction to {}: {}", target, s.to_string());
      lock.lock();
    }
  }
}

RocksStoreStats RocksStoreImpl::stats() const {
  return RocksStoreStats{txns_committed_.load(), batches_written_.load(),
                         watchers_overflowed_.load()};
}

}  // namespace

Result<std::unique_ptr<RocksStore>> RocksStore::open(const RocksStoreOptions& options) {
  auto store = std::make_unique<RocksStoreImpl>(options);
  GANTRY_RETURN_IF_ERROR(store->open());
  return std::unique_ptr<RocksStore>(std::move(store));
}

Result<std::unique_ptr<Store>> open_rocks_store(const RocksStoreOptions& options) {
  GANTRY_ASSIGN_OR_RETURN(std::unique_ptr<RocksStore> store, RocksStore::open(options));
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace gantry::cloud
