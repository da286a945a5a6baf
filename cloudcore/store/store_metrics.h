// The store's metrics: gantry_store_txn_duration_seconds (every txn until durable or failed)
// and gantry_store_txn_errors_total{code} (txns the backend failed: unreachable, timed out, disk;
// not a caller's conflict or bad input).
#pragma once

#include "cloudcore/store/store.h"
#include "common/metrics/metrics.h"

namespace gantry::cloud {

// Registers the families in `metrics` (which must outlive the store) and sets the store's txn
// observer. Call before the store is shared between threads.
Status instrument_store(Store& store, common::MetricsRegistry& metrics);

}  // namespace gantry::cloud
