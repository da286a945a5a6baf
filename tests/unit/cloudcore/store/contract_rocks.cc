// The store contract on RocksStore: a fresh directory per test.
#include <catch2/catch.hpp>

#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"
#include "tests/unit/cloudcore/store/store_contract.h"

namespace gantry::cloud::contract {
namespace {

class RocksBackend final : public Backend {
 public:
  std::unique_ptr<Store> open(const ContractOptions& options) override {
    RocksStoreOptions o;
    o.path = (dir_ / "store").string();
    o.auto_compact_interval = options.auto_compact_interval;
    if (options.keep_revisions != 0) {
      o.keep_revisions = options.keep_revisions;
      o.keep_duration = std::chrono::seconds(0);
    }
    auto store = open_rocks_store(o);
    INFO(store.status().to_string());
    REQUIRE(store.ok());
    return std::move(store).value();
  }

 private:
  test::TempDir dir_;
};

}  // namespace

std::unique_ptr<Backend> make_backend() {
  return std::make_unique<RocksBackend>();
}

}  // namespace gantry::cloud::contract
