// The behaviour every Store backend must have (store.h), as one suite compiled once per backend:
// store_contract_test.cc holds the tests, contract_rocks.cc / contract_etcd.cc the backends.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "cloudcore/store/store.h"

namespace gantry::cloud::contract {

struct ContractOptions {
  // Automatic compaction: keep this many revisions (and no minimum age), checked every interval.
  // 0 = off.
  uint64_t keep_revisions = 0;
  std::chrono::milliseconds auto_compact_interval{0};
};

// One backend's data (a RocksDB directory, an etcd): every open() is a store on the same data,
// so closing and opening again is a restart.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::unique_ptr<Store> open(const ContractOptions& options) = 0;
  std::unique_ptr<Store> open() { return open(ContractOptions{}); }
};

// A backend with no data yet; defined by the backend's contract_*.cc.
std::unique_ptr<Backend> make_backend();

}  // namespace gantry::cloud::contract
