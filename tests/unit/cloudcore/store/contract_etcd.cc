// The store contract on EtcdStore: a private etcd (tests/support/etcd_fixture) per test.
#include <catch2/catch.hpp>

#include "cloudcore/store/etcd_store.h"
#include "tests/support/etcd_fixture.h"
#include "tests/unit/cloudcore/store/store_contract.h"

namespace gantry::cloud::contract {
namespace {

class EtcdBackend final : public Backend {
 public:
  std::unique_ptr<Store> open(const ContractOptions& options) override {
    EtcdStoreOptions o;
    o.endpoints = {etcd_.endpoint()};
    o.auto_compact_interval = options.auto_compact_interval;
    if (options.keep_revisions != 0) {
      o.keep_revisions = options.keep_revisions;
      o.keep_duration = std::chrono::seconds(0);
    }
    auto store = open_etcd_store(o);
    INFO(store.status().to_string());
    REQUIRE(store.ok());
    return std::move(store).value();
  }

 private:
  test::Etcd etcd_;
};

}  // namespace

std::unique_ptr<Backend> make_backend() {
  return std::make_unique<EtcdBackend>();
}

}  // namespace gantry::cloud::contract
