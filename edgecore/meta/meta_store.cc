#include "edgecore/meta/meta_store.h"

#include <rocksdb/cache.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <rocksdb/write_buffer_manager.h>

#include <charconv>
#include <set>

namespace gantry::edge {
namespace {

using common::Code;
using common::make_error;

constexpr const char* kObjectsCf = "objects";
constexpr const char* kMetaCf = "meta";
constexpr const char* kAckedCf = "acked";
constexpr const char* kOutboxCf = "outbox";
constexpr const char* kPodsCf = "pods";
constexpr const char* kAppliedRevisionKey = "applied_revision";
constexpr const char* kAckedSequenceKey = "acked_sequence";

Status from_rocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return common::ok_status();
  Code code = s.IsCorruption() ? Code::kDataLoss
              : s.IsIOError()  ? Code::kUnavailable
              : s.IsNotFound() ? Code::kNotFound
                               : Code::kInternal;
  return make_error(code, "{}: {}", what, s.ToString());
}

std::string encode_u64(uint64_t v) {
  return std::to_string(v);
}

Result<uint64_t> decode_u64(const std::string& s, std::string_view what) {
  uint64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || ptr != s.data() + s.size()) {
    return make_error(Code::kDataLoss, "meta: {} is not a number: '{}'", what, s);
  }
  return v;
}

std::string_view kind_name(v1::ObjectKind kind) {
  switch (kind) {
    case v1::OBJECT_KIND_POD:
      return "pods";
    case v1::OBJECT_KIND_CONFIG_MAP:
      return "configmaps";
    case v1::OBJECT_KIND_SECRET:
      return "secrets";
    case v1::OBJECT_KIND_NODE:
      return "nodes";
    default:
      return "unknown";
  }
}

v1::ObjectRef ref_of(const v1::Object& o) {
  v1::ObjectRef ref;
  ref.set_kind(o.kind());
  ref.set_namespace_(o.namespace_());
  ref.set_name(o.name());
  return ref;
}

rocksdb::WriteOptions synced() {
  rocksdb::WriteOptions options;
  options.sync = true;
  return options;
}

}  // namespace

std::string object_key(v1::ObjectKind kind, std::string_view ns, std::string_view name) {
  std::string key(kind_name(kind));
  key += '/';
  key += ns;
  key += '/';
  key += name;
  return key;
}
std::string object_key(const v1::ObjectRef& ref) {
  return object_key(ref.kind(), ref.namespace_(), ref.name());
}
std::string object_key(const v1::Object& object) {
  return object_key(object.kind(), object.namespace_(), object.name());
}
std::string kind_prefix(v1::ObjectKind kind) {
  return std::string(kind_name(kind)) + "/";
}

// --- StatusWrites -----------------------------------------------------------------------------

void StatusWrites::put_acked(const v1::StatusEntry& record) {
  ops_.push_back({true, object_key(record.kind(), record.namespace_(), record.name()),
                  record.SerializeAsString()});
}
void StatusWrites::delete_acked(const std::string& key) {
  ops_.push_back({true, key, {}});
}
void StatusWrites::put_outbox(const v1::StatusEntry& record) {
  ops_.push_back({false, object_key(record.kind(), record.namespace_(), record.name()),
                  record.SerializeAsString()});
}
void StatusWrites::delete_outbox(const std::string& key) {
  ops_.push_back({false, key, {}});
}

// --- MetaStore --------------------------------------------------------------------------------

Result<std::unique_ptr<MetaStore>> MetaStore::open(const std::filesystem::path& dir,
                                                   const MetaOptions& mo) {
  std::error_code ec;
  if (mo.env == nullptr) {
    std::filesystem::create_directories(dir, ec);
    if (ec)
      return make_error(Code::kUnavailable, "meta: creating {}: {}", dir.string(), ec.message());
  }

  rocksdb::DBOptions db_options;
  if (mo.env != nullptr) db_options.env = mo.env;
  db_options.create_if_missing = true;
  db_options.create_missing_column_families = true;
  db_options.paranoid_checks = true;
  // After a power cut the WAL tail may hold a torn, never-synced record. Point-in-time recovery
  // replays up to the last intact record and opens: every write we acknowledged was synced before
  // the ack, so it lies before any torn tail and survives. kAbsoluteConsistency would refuse to
  // open on such a tail and leave an unattended node down for good.
  db_options.wal_recovery_mode = rocksdb::WALRecoveryMode::kPointInTimeRecovery;
  // A small device: bounded WAL (forces memtable flushes), few threads, small info logs. WAL file
  // recycling is left off: RocksDB 7.x disables it with point-in-time recovery anyway.
  db_options.max_total_wal_size = mo.max_total_wal_bytes;
  db_options.max_background_jobs = 2;
  db_options.max_open_files = 64;
  db_options.table_cache_numshardbits = 2;
  db_options.keep_log_file_num = 2;
  db_options.max_log_file_size = 1 << 20;
  db_options.max_manifest_file_size = 4 << 20;
  db_options.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  db_options.write_buffer_manager =
      std::make_shared<rocksdb::WriteBufferManager>(mo.total_write_buffer_bytes);

  rocksdb::BlockBasedTableOptions table;
  table.block_cache = rocksdb::NewLRUCache(mo.block_cache_bytes);
  table.cache_index_and_filter_blocks = true;
  rocksdb::ColumnFamilyOptions cf_options;
  cf_options.write_buffer_size = mo.write_buffer_bytes;
  cf_options.max_write_buffer_number = 2;
  cf_options.target_file_size_base = 4 << 20;
  cf_options.max_bytes_for_level_base = 16 << 20;
  cf_options.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));

  std::vector<rocksdb::ColumnFamilyDescriptor> families;
  for (const char* name : {rocksdb::kDefaultColumnFamilyName.c_str(), kObjectsCf, kMetaCf, kAckedCf,
                           kOutboxCf, kPodsCf}) {
    families.emplace_back(name, cf_options);
  }

  std::unique_ptr<MetaStore> store(new MetaStore());
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, dir.string(), families, &store->handles_, &raw);
  if (!s.ok()) return from_rocks(s, fmt::format("meta: opening {}", dir.string()));
  store->db_.reset(raw);
  store->objects_ = store->handles_[1];
  store->meta_ = store->handles_[2];
  store->acked_ = store->handles_[3];
  store->outbox_ = store->handles_[4];
  store->pods_ = store->handles_[5];

  for (auto [key, target] : {std::pair{kAppliedRevisionKey, &store->applied_revision_},
                             std::pair{kAckedSequenceKey, &store->acked_sequence_}}) {
    std::string value;
    s = store->db_->Get(rocksdb::ReadOptions(), store->meta_, key, &value);
    if (s.IsNotFound()) continue;
    if (!s.ok()) return from_rocks(s, "meta: reading the applied revision");
    GANTRY_ASSIGN_OR_RETURN(uint64_t v, decode_u64(value, key));
    target->store(v);
  }
  return store;
}

MetaStore::~MetaStore() {
  if (!db_) return;
  for (auto* handle : handles_) db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  db_->Close().PermitUncheckedError();
}

Result<ApplyResult> MetaStore::apply_delta(const std::vector<v1::Object>& upserts,
                                           const std::vector<v1::ObjectRef>& deletes,
                                           uint64_t revision, bool advance) {
  std::lock_guard lock(write_mutex_);
  ApplyResult result;
  ObjectChange change;
  rocksdb::WriteBatch batch;
  // Objects already staged in this batch: a batch naming one object twice is judged against the
  // staged copy, not the stored one.
  std::map<std::string, uint64_t> staged;

  auto cached_revision = [&](const std::string& key) -> Result<std::optional<uint64_t>> {
    if (auto it = staged.find(key); it != staged.end()) {
      if (it->second == 0) return std::optional<uint64_t>();
      return std::optional<uint64_t>(it->second);
    }
    std::string value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), objects_, key, &value);
    if (s.IsNotFound()) return std::optional<uint64_t>();
    if (!s.ok()) return from_rocks(s, "meta: reading " + key);
    v1::Object cached;
    if (!cached.ParseFromString(value)) {
      // An unreadable cached copy is replaced rather than blocking every later update.
      return std::optional<uint64_t>();
    }
    return std::optional<uint64_t>(cached.revision());
  };

  for (const auto& object : upserts) {
    std::string key = object_key(object);
    GANTRY_ASSIGN_OR_RETURN(auto cached, cached_revision(key));
    if (cached && *cached >= object.revision()) {
      ++result.dropped;
      continue;
    }
    batch.Put(objects_, key, object.SerializeAsString());
    staged[key] = std::max<uint64_t>(object.revision(), 1);
    change.changed.push_back(ref_of(object));
    ++result.upserted;
  }
  for (const auto& ref : deletes) {
    std::string key = object_key(ref);
    GANTRY_ASSIGN_OR_RETURN(auto cached, cached_revision(key));
    if (!cached) continue;
    if (*cached > revision) {
      ++result.dropped;
      continue;
    }
    batch.Delete(objects_, key);
    staged[key] = 0;
    change.changed.push_back(ref);
    ++result.deleted;
  }
  uint64_t new_revision = applied_revision_.load();
  if (advance && revision > new_revision) {
    new_revision = revision;
    batch.Put(meta_, kAppliedRevisionKey, encode_u64(new_revision));
  }
  if (batch.Count() > 0) {
    GANTRY_RETURN_IF_ERROR(from_rocks(db_->Write(synced(), &batch), "meta: writing objects"));
  }
  applied_revision_.store(new_revision);
  result.applied_revision = new_revision;
  change.applied_revision = new_revision;
  if (!change.changed.empty()) notify(change);
  return result;
}

Status MetaStore::replace_all(const std::vector<v1::Object>& objects, uint64_t revision) {
  std::lock_guard lock(write_mutex_);
  rocksdb::WriteBatch batch;
  ObjectChange change;
  change.replaced_all = true;
  std::set<std::string> keep;
  for (const auto& object : objects) {
    std::string key = object_key(object);
    batch.Put(objects_, key, object.SerializeAsString());
    if (keep.insert(key).second) change.changed.push_back(ref_of(object));
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), objects_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string key = it->key().ToString();
    if (keep.count(key)) continue;
    batch.Delete(objects_, key);
    v1::Object old;
    if (old.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      change.changed.push_back(ref_of(old));
    }
  }
  GANTRY_RETURN_IF_ERROR(from_rocks(it->status(), "meta: listing objects"));
  batch.Put(meta_, kAppliedRevisionKey, encode_u64(revision));
  GANTRY_RETURN_IF_ERROR(from_rocks(db_->Write(synced(), &batch), "meta: replacing objects"));
  applied_revision_.store(revision);
  change.applied_revision = revision;
  notify(change);
  return common::ok_status();
}

Result<std::optional<v1::Object>> MetaStore::get_object(v1::ObjectKind kind, std::string_view ns,
                                                        std::string_view name) const {
  std::string value;
  std::string key = object_key(kind, ns, name);
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), objects_, key, &value);
  if (s.IsNotFound()) return std::optional<v1::Object>();
  if (!s.ok()) return from_rocks(s, "meta: reading " + key);
  v1::Object object;
  if (!object.ParseFromString(value)) {
    return make_error(Code::kDataLoss, "meta: cached object {} does not parse", key);
  }
  return std::optional<v1::Object>(std::move(object));
}

Result<std::vector<v1::Object>> MetaStore::list_objects(v1::ObjectKind kind) const {
  std::vector<v1::Object> out;
  std::string prefix = kind == v1::OBJECT_KIND_UNSPECIFIED ? "" : kind_prefix(kind);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), objects_));
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    v1::Object object;
    if (!object.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return make_error(Code::kDataLoss, "meta: cached object {} does not parse",
                        it->key().ToString());
    }
    out.push_back(std::move(object));
  }
  GANTRY_RETURN_IF_ERROR(from_rocks(it->status(), "meta: listing objects"));
  return out;
}

MetaStore::ObserverHandle& MetaStore::ObserverHandle::operator=(ObserverHandle&& other) noexcept {
  if (this != &other) {
    reset();
    store_ = std::exchange(other.store_, nullptr);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void MetaStore::ObserverHandle::reset() {
  if (!store_) return;
  std::lock_guard lock(store_->observers_mutex_);
  store_->observers_.erase(id_);
  store_ = nullptr;
}

MetaStore::ObserverHandle MetaStore::add_observer(ObjectObserver observer) {
  std::lock_guard lock(observers_mutex_);
  uint64_t id = next_observer_id_++;
  observers_.emplace(id, std::move(observer));
  return ObserverHandle(this, id);
}

void MetaStore::notify(const ObjectChange& change) {
  std::vector<ObjectObserver> observers;
  {
    std::lock_guard lock(observers_mutex_);
    for (auto& [id, observer] : observers_) observers.push_back(observer);
  }
  for (auto& observer : observers) observer(change);
}

Status MetaStore::write_status(const StatusWrites& writes) {
  if (writes.empty()) return common::ok_status();
  rocksdb::WriteBatch batch;
  for (const auto& op : writes.ops_) {
    auto* cf = op.acked ? acked_ : outbox_;
    if (op.value) {
      batch.Put(cf, op.key, *op.value);
    } else {
      batch.Delete(cf, op.key);
    }
  }
  uint64_t sequence = acked_sequence_.load();
  if (writes.acked_sequence_ && *writes.acked_sequence_ != sequence) {
    sequence = *writes.acked_sequence_;
    batch.Put(meta_, kAckedSequenceKey, encode_u64(sequence));
  }
  GANTRY_RETURN_IF_ERROR(from_rocks(db_->Write(synced(), &batch), "meta: writing statuses"));
  acked_sequence_.store(sequence);
  return common::ok_status();
}

Result<std::vector<v1::StatusEntry>> MetaStore::list_entries(
    rocksdb::ColumnFamilyHandle* cf) const {
  std::vector<v1::StatusEntry> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), cf));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    v1::StatusEntry entry;
    if (!entry.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return make_error(Code::kDataLoss, "meta: status record {} does not parse",
                        it->key().ToString());
    }
    out.push_back(std::move(entry));
  }
  GANTRY_RETURN_IF_ERROR(from_rocks(it->status(), "meta: listing statuses"));
  return out;
}

Result<std::vector<v1::StatusEntry>> MetaStore::list_acked() const {
  return list_entries(acked_);
}
Result<std::vector<v1::StatusEntry>> MetaStore::list_outbox() const {
  return list_entries(outbox_);
}

Status MetaStore::put_pod_record(const std::string& key, const std::string& value) {
  return from_rocks(db_->Put(synced(), pods_, key, value), "meta: writing pod record " + key);
}

Status MetaStore::delete_pod_record(const std::string& key) {
  return from_rocks(db_->Delete(synced(), pods_, key), "meta: deleting pod record " + key);
}

Result<std::optional<std::string>> MetaStore::get_pod_record(const std::string& key) const {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), pods_, key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  if (!s.ok()) return from_rocks(s, "meta: reading pod record " + key);
  return std::optional<std::string>(std::move(value));
}

Result<std::map<std::string, std::string>> MetaStore::list_pod_records() const {
  std::map<std::string, std::string> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), pods_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    out.emplace(it->key().ToString(), it->value().ToString());
  }
  GANTRY_RETURN_IF_ERROR(from_rocks(it->status(), "meta: listing pod records"));
  return out;
}

}  // namespace gantry::edge
