// The edge's durable state: one RocksDB with a column family per kind of record.
//   objects  kind/namespace/name -> serialized gantry.v1.Object (the cached desired state)
//   meta     "applied_revision", "acked_sequence" (written with the records they describe)
//   acked    kind/namespace/name -> StatusEntry: the status the cloud acknowledged + generation
//   outbox   kind/namespace/name -> StatusEntry: the latest status not yet acknowledged
//   pods     pod key -> opaque bytes (local pod records, owned by the pods module)
// Every write is synced before it returns: the edge acknowledges what it wrote, and a power cut
// must not lose an acknowledged write.
#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "gantry/v1/objects.pb.h"
#include "gantry/v1/tunnel.pb.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Env;
}  // namespace rocksdb

namespace gantry::edge {

using common::Result;
using common::Status;

// "pods/default/web" : the key of an object (and of its status) in every column family.
std::string object_key(v1::ObjectKind kind, std::string_view ns, std::string_view name);
std::string object_key(const v1::ObjectRef& ref);
std::string object_key(const v1::Object& object);
// Prefix of all keys of one kind ("pods/"), for listing.
std::string kind_prefix(v1::ObjectKind kind);

struct MetaOptions {
  // Sized for a 1 GB device: a few MB of memtables and block cache in total.
  size_t write_buffer_bytes = 1 << 20;        // per column family
  size_t total_write_buffer_bytes = 4 << 20;  // across column families
  size_t block_cache_bytes = 2 << 20;
  uint64_t max_total_wal_bytes = 8 << 20;
  // The file system RocksDB uses; null: the real one. Tests and fuzzers give an in-memory Env
  // (rocksdb::NewMemEnv) or one that injects faults. Must outlive the store.
  rocksdb::Env* env = nullptr;
};

// What an incremental batch did.
struct ApplyResult {
  size_t upserted = 0;
  size_t deleted = 0;
  size_t dropped = 0;  // older than the cached copy
  uint64_t applied_revision = 0;
};

// Told after a committed write which cached objects changed. `replaced_all` marks a snapshot:
// `changed` then holds every key that was or is now in the cache.
struct ObjectChange {
  std::vector<v1::ObjectRef> changed;
  bool replaced_all = false;
  uint64_t applied_revision = 0;
};
using ObjectObserver = std::function<void(const ObjectChange&)>;

// Writes to the status column families that belong together (one WriteBatch).
class StatusWrites {
 public:
  void put_acked(const v1::StatusEntry& record);
  void delete_acked(const std::string& key);
  void put_outbox(const v1::StatusEntry& record);
  void delete_outbox(const std::string& key);
  void set_acked_sequence(uint64_t sequence) { acked_sequence_ = sequence; }
  bool empty() const { return ops_.empty() && !acked_sequence_; }

 private:
  friend class MetaStore;
  struct Op {
    bool acked;  // acked CF, else outbox CF
    std::string key;
    std::optional<std::string> value;  // nullopt: delete
  };
  std::vector<Op> ops_;
  std::optional<uint64_t> acked_sequence_;
};

class MetaStore {
 public:
  // Opens (creating if needed) the database in `dir`.
  static Result<std::unique_ptr<MetaStore>> open(const std::filesystem::path& dir,
                                                 const MetaOptions& options = {});
  ~MetaStore();
  MetaStore(const MetaStore&) = delete;
  MetaStore& operator=(const MetaStore&) = delete;

  // --- Desired objects -------------------------------------------------------------------
  uint64_t applied_revision() const { return applied_revision_.load(); }

  // Incremental batch (protocol rules): an upsert is dropped when the cached copy's revision is
  // >= the incoming one; a delete is ignored when the cached copy's revision is > `revision`;
  // with `advance` the applied revision becomes max(applied, revision). One synced WriteBatch.
  Result<ApplyResult> apply_delta(const std::vector<v1::Object>& upserts,
                                  const std::vector<v1::ObjectRef>& deletes, uint64_t revision,
                                  bool advance);
  // Snapshot: the cache becomes exactly `objects` and the applied revision `revision` (which may
  // be lower than before). One synced WriteBatch.
  Status replace_all(const std::vector<v1::Object>& objects, uint64_t revision);

  Result<std::optional<v1::Object>> get_object(v1::ObjectKind kind, std::string_view ns,
                                               std::string_view name) const;
  // All cached objects of `kind` (OBJECT_KIND_UNSPECIFIED: every kind).
  Result<std::vector<v1::Object>> list_objects(
      v1::ObjectKind kind = v1::OBJECT_KIND_UNSPECIFIED) const;

  // Observers run on the writing thread after the write is durable. Remove the observer by
  // dropping the handle.
  class [[nodiscard]] ObserverHandle {
   public:
    ObserverHandle() = default;
    ObserverHandle(MetaStore* store, uint64_t id) : store_(store), id_(id) {}
    ObserverHandle(ObserverHandle&& other) noexcept { *this = std::move(other); }
    ObserverHandle& operator=(ObserverHandle&& other) noexcept;
    ~ObserverHandle() { reset(); }
    void reset();

   private:
    MetaStore* store_ = nullptr;
    uint64_t id_ = 0;
  };
  ObserverHandle add_observer(ObjectObserver observer);

  // --- Status bookkeeping ----------------------------------------------------------------
  uint64_t acked_sequence() const { return acked_sequence_.load(); }
  Status write_status(const StatusWrites& writes);
  Result<std::vector<v1::StatusEntry>> list_acked() const;
  Result<std::vector<v1::StatusEntry>> list_outbox() const;

  // --- Local pod records -----------------------------------------------------------------
  Status put_pod_record(const std::string& key, const std::string& value);
  Status delete_pod_record(const std::string& key);
  Result<std::optional<std::string>> get_pod_record(const std::string& key) const;
  Result<std::map<std::string, std::string>> list_pod_records() const;

 private:
  MetaStore() = default;
  void notify(const ObjectChange& change);
  Result<std::vector<v1::StatusEntry>> list_entries(rocksdb::ColumnFamilyHandle* cf) const;

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;  // owned; destroyed before db_
  rocksdb::ColumnFamilyHandle* objects_ = nullptr;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* acked_ = nullptr;
  rocksdb::ColumnFamilyHandle* outbox_ = nullptr;
  rocksdb::ColumnFamilyHandle* pods_ = nullptr;

  std::atomic<uint64_t> applied_revision_{0};
  std::atomic<uint64_t> acked_sequence_{0};
  // Serialises read-modify-write batches on the objects (a single writer, the hub, in practice).
  std::mutex write_mutex_;

  std::mutex observers_mutex_;
  uint64_t next_observer_id_ = 1;
  std::map<uint64_t, ObjectObserver> observers_;
};

}  // namespace gantry::edge
