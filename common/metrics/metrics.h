// Counters, gauges and histograms with labels, rendered in the Prometheus text format 0.0.4.
//
// A MetricsRegistry is passed explicitly to the modules that report (no global). Registration
// returns a family; family.with({"value", ...}) returns a handle to one labelled series. Handles
// are two pointers wide, cheap to copy, and update with relaxed atomics: keep them where the hot
// path can reach them instead of calling with() per event. The registry must outlive every family
// and handle it gave out. A default-constructed handle ignores updates, so a module can run
// without metrics.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace gantry::common {

namespace metrics_internal {

struct CounterCell {
  std::atomic<uint64_t> value{0};
};

struct GaugeCell {
  std::atomic<double> value{0};
};

struct HistogramCell {
  explicit HistogramCell(size_t buckets);
  const size_t bucket_count;                        // finite bounds + the +Inf bucket
  std::unique_ptr<std::atomic<uint64_t>[]> counts;  // per bucket, not cumulative
  std::atomic<double> sum{0};
};

enum class Type { kCounter, kGauge, kHistogram };

// One metric name: its labels and every series created so far, sorted by label values.
struct Family {
  std::string name;
  std::string help;
  Type type;
  std::vector<std::string> label_names;
  std::vector<double> bounds;  // histograms only: finite, strictly increasing

  mutable std::mutex mu;  // guards the maps, not the cells
  std::map<std::vector<std::string>, std::unique_ptr<CounterCell>> counters;
  std::map<std::vector<std::string>, std::unique_ptr<GaugeCell>> gauges;
  std::map<std::vector<std::string>, std::unique_ptr<HistogramCell>> histograms;
};

}  // namespace metrics_internal

class Counter {
 public:
  Counter() = default;
  void inc(uint64_t n = 1) const {
    if (cell_ != nullptr) cell_->value.fetch_add(n, std::memory_order_relaxed);
  }
  uint64_t value() const {
    return cell_ == nullptr ? 0 : cell_->value.load(std::memory_order_relaxed);
  }

 private:
  friend class CounterFamily;
  explicit Counter(metrics_internal::CounterCell* cell) : cell_(cell) {}
  metrics_internal::CounterCell* cell_ = nullptr;
};

class Gauge {
 public:
  Gauge() = default;
  void set(double v) const {
    if (cell_ != nullptr) cell_->value.store(v, std::memory_order_relaxed);
  }
  void add(double delta) const {
    if (cell_ != nullptr) cell_->value.fetch_add(delta, std::memory_order_relaxed);
  }
  void inc() const { add(1); }
  void dec() const { add(-1); }
  double value() const {
    return cell_ == nullptr ? 0 : cell_->value.load(std::memory_order_relaxed);
  }

 private:
  friend class GaugeFamily;
  explicit Gauge(metrics_internal::GaugeCell* cell) : cell_(cell) {}
  metrics_internal::GaugeCell* cell_ = nullptr;
};

class Histogram {
 public:
  Histogram() = default;
  // Counts `v` in the first bucket whose upper bound is >= v (NaN goes to +Inf only).
  void observe(double v) const;
  uint64_t count() const;
  double sum() const;

 private:
  friend class HistogramFamily;
  Histogram(const metrics_internal::Family* family, metrics_internal::HistogramCell* cell)
      : family_(family), cell_(cell) {}
  const metrics_internal::Family* family_ = nullptr;
  metrics_internal::HistogramCell* cell_ = nullptr;
};

// Label values are given in the order of the family's label names. A wrong number of values is a
// programming error: with() aborts with a message naming the metric; try_with() returns
// kInvalidArgument instead. Creating a series takes the family's lock; updating it does not.
class CounterFamily {
 public:
  CounterFamily() = default;
  Result<Counter> try_with(std::span<const std::string_view> label_values) const;
  Counter with(std::initializer_list<std::string_view> label_values = {}) const;

 private:
  friend class MetricsRegistry;
  explicit CounterFamily(metrics_internal::Family* f) : family_(f) {}
  metrics_internal::Family* family_ = nullptr;
};

class GaugeFamily {
 public:
  GaugeFamily() = default;
  Result<Gauge> try_with(std::span<const std::string_view> label_values) const;
  Gauge with(std::initializer_list<std::string_view> label_values = {}) const;

 private:
  friend class MetricsRegistry;
  explicit GaugeFamily(metrics_internal::Family* f) : family_(f) {}
  metrics_internal::Family* family_ = nullptr;
};

class HistogramFamily {
 public:
  HistogramFamily() = default;
  Result<Histogram> try_with(std::span<const std::string_view> label_values) const;
  Histogram with(std::initializer_list<std::string_view> label_values = {}) const;

 private:
  friend class MetricsRegistry;
  explicit HistogramFamily(metrics_internal::Family* f) : family_(f) {}
  metrics_internal::Family* family_ = nullptr;
};

// Prometheus' default latency buckets, in seconds: 0.005 ... 10.
std::vector<double> default_buckets();
// start, start*factor, ... (count bounds). Requires start > 0, factor > 1, count >= 1.
std::vector<double> exponential_buckets(double start, double factor, size_t count);

class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Registers a family, or returns the existing one when name, type, labels (and buckets) match;
  // a clash is kAlreadyExists. Names follow Prometheus ([a-zA-Z_][a-zA-Z0-9_]*; no colons, which
  // are for recording rules), counters end in "_total", help is required, label names are
  // [a-zA-Z_][a-zA-Z0-9_]* without a "__" prefix or duplicates, and histograms may not use "le".
  // A family without labels starts with its one series at zero, so it renders before first use.
  Result<CounterFamily> counter(std::string_view name, std::string_view help,
                                std::vector<std::string> label_names = {});
  Result<GaugeFamily> gauge(std::string_view name, std::string_view help,
                            std::vector<std::string> label_names = {});
  // `buckets`: finite upper bounds, strictly increasing; +Inf is always added (a trailing +Inf
  // given here is accepted and dropped).
  Result<HistogramFamily> histogram(std::string_view name, std::string_view help,
                                    std::vector<double> buckets,
                                    std::vector<std::string> label_names = {});

  // The text exposition format 0.0.4 (Content-Type: text/plain; version=0.0.4), families sorted
  // by name and series by label values. Families with no series yet are left out.
  std::string render_prometheus() const;

 private:
  Result<metrics_internal::Family*> register_family(std::string_view name, std::string_view help,
                                                    metrics_internal::Type type,
                                                    std::vector<std::string> label_names,
                                                    std::vector<double> bounds);

  mutable std::mutex mu_;
  std::map<std::string, std::unique_ptr<metrics_internal::Family>, std::less<>> families_;
};

// The Content-Type to serve render_prometheus() with.
inline constexpr std::string_view kPrometheusContentType =
    "text/plain; version=0.0.4; charset=utf-8";

}  // namespace gantry::common
