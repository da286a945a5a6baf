#include "cloudcore/store/store_metrics.h"

namespace gantry::cloud {

Status instrument_store(Store& store, common::MetricsRegistry& metrics) {
  // 0.5 ms (a batched RocksDB commit on an SSD) to 16 s (an etcd stuck past its timeout).
  auto latency = metrics.histogram(
      "gantry_store_txn_duration_seconds",
      "Store transactions: time until durable (group commit and fsync included) or failed.",
      common::exponential_buckets(0.0005, 2, 16));
  if (!latency.ok()) return latency.status();
  auto errors = metrics.counter(
      "gantry_store_txn_errors_total",
      "Store transactions the backend failed (not conflicts or invalid input), by code.", {"code"});
  if (!errors.ok()) return errors.status();
  // The codes backends fail with, at zero from the start: rate() sees the first error.
  for (Code code : {Code::kUnavailable, Code::kDeadlineExceeded, Code::kResourceExhausted,
                    Code::kInternal, Code::kDataLoss})
    errors->with({common::code_name(code)});
  store.set_txn_observer([histogram = latency->with(), errors = *errors](
                             std::chrono::steady_clock::duration took, const Status& outcome) {
    switch (outcome.code()) {
      case Code::kInvalidArgument:  // refused before the backend ran it
        return;
      case Code::kOk:
      case Code::kFailedPrecondition:  // an expect_mod_revision that did not hold
      case Code::kNotFound:            // a delete of an absent key
        break;
      default:
        errors.with({common::code_name(outcome.code())}).inc();
        break;
    }
    histogram.observe(std::chrono::duration<double>(took).count());
  });
  return {};
}

}  // namespace gantry::cloud
