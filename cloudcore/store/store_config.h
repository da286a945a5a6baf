// cloudcore's `store:` config section and the store it selects:
//
//   store:
//     backend: rocksdb          # rocksdb (embedded, the default) | etcd
//     keep_revisions: 100000    # compaction policy, both backends
//     keep_duration: 1h
//     block_cache: 64MiB        # rocksdb only
//     etcd:                     # etcd only
//       endpoints: [https://10.0.0.1:2379, https://10.0.0.2:2379, https://10.0.0.3:2379]
//       prefix: /gantry
//       request_timeout: 10s
//       max_txn_ops: 128        # etcd's --max-txn-ops
//       max_request_bytes: 1536KiB  # etcd's --max-request-bytes
//       tls: {ca: /etc/gantry/etcd-ca.crt, cert: ..., key: ..., server_name: etcd.local}
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cloudcore/store/store.h"
#include "common/base/config.h"

namespace gantry::cloud {

struct StoreConfig {
  std::string backend = "rocksdb";
  uint64_t keep_revisions = 100000;
  std::chrono::milliseconds keep_duration{std::chrono::hours(1)};
  common::ByteSize block_cache = common::ByteSize::mib(64);
  struct Etcd {
    std::vector<std::string> endpoints;
    std::string prefix = "/gantry";
    std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
    uint64_t max_txn_ops = 128;
    common::ByteSize max_request_bytes = common::ByteSize::kib(1536);
    struct Tls {
      std::string ca, cert, key, server_name;
    } tls;
  } etcd;
};

void bind_config(common::ConfigNode& n, StoreConfig& c);

// Opens the configured store: RocksDB under data_dir/store, or etcd (TLS files read here).
// `where` gets a description for the log ("rocksdb at /var/lib/...", "etcd at https://...").
Result<std::unique_ptr<Store>> open_configured_store(const StoreConfig& config,
                                                     const std::string& data_dir,
                                                     std::string* where);

}  // namespace gantry::cloud
