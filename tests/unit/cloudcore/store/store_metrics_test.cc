// The store's txn histogram and error counter (cloudcore/store/store_metrics).
#include "cloudcore/store/store_metrics.h"

#include <catch2/catch.hpp>

#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"

using namespace gantry;
using namespace gantry::cloud;

namespace {

bool has(const std::string& text, const std::string& line) {
  return text.find(line) != std::string::npos;
}

}  // namespace

TEST_CASE("store metrics time every txn the backend ran and count only backend failures",
          "[store][metrics]") {
  test::TempDir dir;
  RocksStoreOptions options;
  options.path = (dir / "store").string();
  auto store = RocksStore::open(options);
  REQUIRE(store.ok());
  common::MetricsRegistry metrics;
  REQUIRE(instrument_store(**store, metrics).ok());

  REQUIRE((*store)->put("/a", "1").ok());
  REQUIRE((*store)->put("/b", "2").ok());
  // A conflict is the caller's business (timed, not an error); an invalid txn is not run at all.
  CHECK((*store)->put("/a", "3", Revision(999)).status().code() == Code::kFailedPrecondition);
  CHECK((*store)->txn({}).status().code() == Code::kInvalidArgument);

  std::string text = metrics.render_prometheus();
  CHECK(has(text, "# TYPE gantry_store_txn_duration_seconds histogram"));
  CHECK(has(text, "gantry_store_txn_duration_seconds_count 3\n"));
  // Error series exist at zero before any error, so rate() sees the first one.
  CHECK(has(text, "gantry_store_txn_errors_total{code=\"Unavailable\"} 0\n"));
  CHECK(has(text, "gantry_store_txn_errors_total{code=\"DataLoss\"} 0\n"));
  CHECK_FALSE(has(text, "code=\"FailedPrecondition\""));
}
