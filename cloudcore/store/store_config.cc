#include "cloudcore/store/store_config.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>

#include "cloudcore/store/etcd_store.h"
#include "cloudcore/store/rocks_store.h"
#include "common/base/atomic_file.h"

namespace gantry::cloud {

using namespace std::chrono_literals;
using ms = std::chrono::milliseconds;

void bind_config(common::ConfigNode& n, StoreConfig& c) {
  n.one_of("backend", &c.backend, {"rocksdb", "etcd"})
      .field("keep_revisions", &c.keep_revisions, uint64_t{1000}, uint64_t{100000000})
      .field("keep_duration", &c.keep_duration, ms(1min), ms(24h * 30))
      .field("block_cache", &c.block_cache, common::ByteSize::mib(8), common::ByteSize::gib(64))
      .section("etcd", [&](common::ConfigNode& e) {
        e.field("endpoints", &c.etcd.endpoints)
            .field("prefix", &c.etcd.prefix)
            .field("request_timeout", &c.etcd.request_timeout, ms(100), ms(10min))
            .field("max_txn_ops", &c.etcd.max_txn_ops, uint64_t{1}, uint64_t{1000000})
            .field("max_request_bytes", &c.etcd.max_request_bytes, common::ByteSize::kib(64),
                   common::ByteSize::mib(2047))
            .section("tls", [&](common::ConfigNode& t) {
              t.field("ca", &c.etcd.tls.ca)
                  .field("cert", &c.etcd.tls.cert)
                  .field("key", &c.etcd.tls.key)
                  .field("server_name", &c.etcd.tls.server_name);
              if (c.etcd.tls.cert.empty() != c.etcd.tls.key.empty())
                t.fail(c.etcd.tls.cert.empty() ? "cert" : "key",
                       "cert and key go together (client certificate for etcd)");
            });
        if (c.backend == "etcd" && c.etcd.endpoints.empty())
          e.fail("endpoints", "required when store.backend is etcd (e.g. [127.0.0.1:2379])");
        if (!c.etcd.prefix.empty() && c.etcd.prefix.front() != '/')
          e.fail("prefix", "must start with '/' (e.g. /gantry)");
      });
}

Result<std::unique_ptr<Store>> open_configured_store(const StoreConfig& config,
                                                     const std::string& data_dir,
                                                     std::string* where) {
  auto keep_duration = std::chrono::duration_cast<std::chrono::seconds>(config.keep_duration);
  if (config.backend == "etcd") {
    EtcdStoreOptions options;
    options.endpoints = config.etcd.endpoints;
    options.prefix = config.etcd.prefix;
    options.request_timeout = config.etcd.request_timeout;
    options.max_txn_ops = config.etcd.max_txn_ops;
    options.max_request_bytes = config.etcd.max_request_bytes.bytes;
    options.keep_revisions = config.keep_revisions;
    options.keep_duration = keep_duration;
    options.server_name = config.etcd.tls.server_name;
    for (auto [path, out, key] :
         {std::tuple{&config.etcd.tls.ca, &options.ca_pem, "store.etcd.tls.ca"},
          std::tuple{&config.etcd.tls.cert, &options.cert_pem, "store.etcd.tls.cert"},
          std::tuple{&config.etcd.tls.key, &options.key_pem, "store.etcd.tls.key"}}) {
      if (path->empty()) continue;
      auto pem = common::read_file(*path);
      if (!pem.ok()) return pem.status().with_context(key);
      *out = std::move(pem).value();
    }
    if (where)
      *where = fmt::format("etcd at {} (keys under {})", fmt::join(options.endpoints, ","),
                           options.prefix);
    return open_etcd_store(options);
  }
  RocksStoreOptions options;
  options.path = (std::filesystem::path(data_dir) / "store").string();
  options.keep_revisions = config.keep_revisions;
  options.keep_duration = keep_duration;
  options.block_cache_bytes = config.block_cache.bytes;
  // The registry follows every write; let it fall well behind before the store gives up on it.
  options.watch_queue_limit = 1000000;
  if (where) *where = "rocksdb at " + options.path;
  return open_rocks_store(options);
}

}  // namespace gantry::cloud
