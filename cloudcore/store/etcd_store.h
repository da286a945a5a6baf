// etcd implementation of Store: etcd v3 over gRPC (our own subset of its API, proto/etcd/), for
// several cloudcore replicas on one store. etcd 3.4 (Debian's etcd-server) is the tested version.
//
// Mapping:
// - Keys: Gantry key K is etcd key prefix + K (prefix "/gantry": "/gantry/pods/default/web").
//   The prefix must not start any other application's keys in the same etcd.
// - Revisions ARE etcd's revisions (as kube-apiserver does): a txn's revision is the etcd
//   revision its write got, get/list at R read etcd at R, watch(from) starts etcd's watch at
//   from+1. A fresh etcd is at revision 1, so the first write gets 2, and writes of other
//   applications in the same etcd make gaps; revisions stay strictly increasing.
// - txn(): one etcd Txn. Every op with expect_mod_revision adds a compare `mod == expect` (0:
//   absent), a delete without one adds `mod > 0` (the key must exist). The failure branch reads
//   the compared keys, so a failed txn says which key and both revisions, like RocksStore.
//   etcd's limits apply per txn: --max-txn-ops (128 by default) and --max-request-bytes
//   (1.5 MiB); txn_limits() reports them so batch writers (the hub's StatusWriter) split.
// - Watch: one gRPC Watch stream and one thread per watch (the thread delivers the callbacks,
//   so a slow callback back-pressures etcd over gRPC flow control instead of growing a queue),
//   prev_kv and progress notifications on. A broken stream (etcd restarted, a member lost) is
//   reopened from the revision after the last delivered one with a capped back-off, so the
//   caller sees no gap and no duplicate; only compaction of that revision (kOutOfRange), an etcd
//   cancel (kInternal) or closing the store (kCancelled) end the watch with on_error.
// - Compaction: compact(R) is etcd Compact(R, physical). compacted_revision() is learnt from etcd
//   (a watch from revision 1 is refused with the oldest watchable revision) at open, after every
//   compact() and every "compacted" answer, and every sync_interval, so compaction by another
//   replica or by etcd's own --auto-compaction is seen. Automatic policy as RocksStore's: every
//   auto_compact_interval compact to the OLDER of (current - keep_revisions) and the newest
//   revision at least keep_duration old. Several replicas compacting is harmless.
// - Errors: etcd unreachable or too slow -> kUnavailable ("etcd is unreachable ..."); a
//   compacted revision -> kOutOfRange (same message as RocksStore); a request over etcd's size or
//   ops limit -> kResourceExhausted naming the limit; etcd out of space -> kResourceExhausted.
// - current_revision() asks etcd (a linearizable count-only range); when etcd does not answer
//   it returns the last revision seen.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cloudcore/store/store.h"

namespace grpc {
class Channel;
}

namespace gantry::cloud {

struct EtcdStoreOptions {
  // "HOST:PORT", "http://HOST:PORT" or "https://HOST:PORT". Several endpoints must be IP
  // addresses (one DNS name may resolve to all members instead); gRPC picks the first that
  // answers and moves on when it fails.
  std::vector<std::string> endpoints;
  // TLS: used when ca_pem is set or an endpoint is https://; mutual when cert_pem and key_pem
  // are set. PEM contents, not file names.
  std::string ca_pem, cert_pem, key_pem;
  std::string server_name;  // the name checked in etcd's certificate ("": the endpoint's host)
  std::string prefix = "/gantry";
  std::chrono::milliseconds request_timeout{10000};
  // etcd's server limits (--max-txn-ops, --max-request-bytes), reported by txn_limits().
  size_t max_txn_ops = 128;
  size_t max_request_bytes = 1536u * 1024;
  // Compaction policy (see above); auto_compact_interval = 0 turns it off.
  uint64_t keep_revisions = 100000;
  std::chrono::seconds keep_duration{3600};
  std::chrono::milliseconds auto_compact_interval{60000};
  // How often the compacted revision is re-read from etcd.
  std::chrono::milliseconds sync_interval{10000};
  // Watch stream re-open back-off: doubles from 50 ms up to this.
  std::chrono::milliseconds watch_retry_max{2000};
};

struct EtcdStoreStats {
  uint64_t txns_committed = 0;    // successful txns
  uint64_t txns_conflicted = 0;   // failed compares (kFailedPrecondition / kNotFound)
  uint64_t requests_failed = 0;   // gRPC errors (etcd unreachable, timeouts, limits)
  uint64_t watch_reconnects = 0;  // watch streams re-opened after a break
  uint64_t compactions = 0;
};

class EtcdStore : public Store {
 public:
  // Connects and reads the current and compacted revisions; kUnavailable when no endpoint
  // answers within request_timeout, kInvalidArgument for bad options.
  static Result<std::unique_ptr<EtcdStore>> open(const EtcdStoreOptions& options);
  virtual EtcdStoreStats stats() const = 0;

  // For the lease layer (cloudcore/store/lease.h). txn() with extra conditions on keys the txn
  // does not write (each `guards` key must be at that mod revision, 0 = absent; a failed one is
  // kFailedPrecondition naming it, as an op's) and its puts bound to etcd lease `lease` (0: none).
  struct Guard {
    std::string key;
    Revision mod_revision = 0;
  };
  virtual Result<TxnResult> guarded_txn(std::vector<Op> ops, const std::vector<Guard>& guards,
                                        int64_t lease) = 0;
  // The gRPC channel to etcd (its Lease service shares the store's connection).
  virtual std::shared_ptr<grpc::Channel> channel() const = 0;
  const EtcdStoreOptions& options() const { return options_; }
  // Automatic compaction on or off (on after open when auto_compact_interval > 0): with several
  // replicas only the leader compacts.
  virtual void set_auto_compaction(bool on) = 0;

 protected:
  explicit EtcdStore(EtcdStoreOptions options) : options_(std::move(options)) {}
  EtcdStoreOptions options_;
};

Result<std::unique_ptr<Store>> open_etcd_store(const EtcdStoreOptions& options);

}  // namespace gantry::cloud
