#include "common/metrics/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <set>

namespace gantry::common {

using metrics_internal::CounterCell;
using metrics_internal::Family;
using metrics_internal::GaugeCell;
using metrics_internal::HistogramCell;
using metrics_internal::Type;

static_assert(std::atomic<double>::is_always_lock_free, "gauges must be lock-free");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "counters must be lock-free");

namespace {

std::string_view type_name(Type type) {
  switch (type) {
    case Type::kCounter:
      return "counter";
    case Type::kGauge:
      return "gauge";
    case Type::kHistogram:
      return "histogram";
  }
  return "untyped";
}

bool valid_identifier(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    bool digit = c >= '0' && c <= '9';
    if (!alpha && !(digit && i > 0)) return false;
  }
  return true;
}

// Go's strconv.ParseFloat, which Prometheus uses, reads what {} prints plus these three words.
std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

void append_escaped_help(std::string& out, std::string_view help) {
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

void append_escaped_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

// {a="x",b="y"} plus an optional trailing le="..."; nothing when there are no labels at all.
void append_labels(std::string& out, const std::vector<std::string>& names,
                   const std::vector<std::string>& values, std::string_view le = {}) {
  if (names.empty() && le.empty()) return;
  out += '{';
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    append_escaped_label_value(out, values[i]);
    out += '"';
  }
  if (!le.empty()) {
    if (!names.empty()) out += ',';
    out += "le=\"";
    out += le;
    out += '"';
  }
  out += '}';
}

void append_sample(std::string& out, const Family& f, std::string_view suffix,
                   const std::vector<std::string>& values, std::string_view value,
                   std::string_view le = {}) {
  out += f.name;
  out += suffix;
  append_labels(out, f.label_names, values, le);
  out += ' ';
  out += value;
  out += '\n';
}

void render_family(std::string& out, const Family& f) {
  std::lock_guard lock(f.mu);
  bool empty = f.type == Type::kCounter ? f.counters.empty()
               : f.type == Type::kGauge ? f.gauges.empty()
                                        : f.histograms.empty();
  if (empty) return;
  out += "# HELP ";
  out += f.name;
  out += ' ';
  append_escaped_help(out, f.help);
  out += "\n# TYPE ";
  out += f.name;
  out += ' ';
  out += type_name(f.type);
  out += '\n';
  switch (f.type) {
    case Type::kCounter:
      for (const auto& [values, cell] : f.counters) {
        append_sample(out, f, "", values,
                      std::to_string(cell->value.load(std::memory_order_relaxed)));
      }
      break;
    case Type::kGauge:
      for (const auto& [values, cell] : f.gauges) {
        append_sample(out, f, "", values,
                      format_value(cell->value.load(std::memory_order_relaxed)));
      }
      break;
    case Type::kHistogram:
      for (const auto& [values, cell] : f.histograms) {
        // _count is the +Inf bucket so the two always agree, even while observations race.
        uint64_t cumulative = 0;
        for (size_t i = 0; i < cell->bucket_count; ++i) {
          cumulative += cell->counts[i].load(std::memory_order_relaxed);
          std::string le = i < f.bounds.size() ? format_value(f.bounds[i]) : "+Inf";
          append_sample(out, f, "_bucket", values, std::to_string(cumulative), le);
        }
        append_sample(out, f, "_sum", values,
                      format_value(cell->sum.load(std::memory_order_relaxed)));
        append_sample(out, f, "_count", values, std::to_string(cumulative));
      }
      break;
  }
}

Status check_label_values(const Family& f, size_t given) {
  if (given != f.label_names.size()) {
    return make_error(Code::kInvalidArgument, "metric {} has {} label(s) ({}), got {} value(s)",
                      f.name, f.label_names.size(), fmt::join(f.label_names, ", "), given);
  }
  return ok_status();
}

template <typename Cell, typename Make>
Cell* find_or_create(const Family& f,
                     std::map<std::vector<std::string>, std::unique_ptr<Cell>>& cells,
                     std::span<const std::string_view> values, Make make) {
  std::vector<std::string> key(values.begin(), values.end());
  std::lock_guard lock(f.mu);
  auto it = cells.find(key);
  if (it == cells.end()) it = cells.emplace(std::move(key), make()).first;
  return it->second.get();
}

template <typename Handle>
Handle value_or_abort(Result<Handle> result) {
  if (!result.ok()) {
    // A label count mismatch is a bug in the caller's code, not a runtime condition.
    std::fprintf(stderr, "metrics: %s\n", result.status().message().c_str());
    std::abort();
  }
  return std::move(result).value();
}

}  // namespace

namespace metrics_internal {
HistogramCell::HistogramCell(size_t buckets)
    : bucket_count(buckets), counts(new std::atomic<uint64_t>[buckets]) {
  for (size_t i = 0; i < buckets; ++i) counts[i].store(0, std::memory_order_relaxed);
}
}  // namespace metrics_internal

// ---- Handles ----

void Histogram::observe(double v) const {
  if (cell_ == nullptr) return;
  const std::vector<double>& bounds = family_->bounds;
  size_t bucket =
      std::isnan(v)
          ? bounds.size()
          : static_cast<size_t>(std::lower_bound(bounds.begin(), bounds.end(), v) - bounds.begin());
  cell_->counts[bucket].fetch_add(1, std::memory_order_relaxed);
  cell_->sum.fetch_add(v, std::memory_order_relaxed);
}

uint64_t Histogram::count() const {
  if (cell_ == nullptr) return 0;
  uint64_t total = 0;
  for (size_t i = 0; i < cell_->bucket_count; ++i) {
    total += cell_->counts[i].load(std::memory_order_relaxed);
  }
  return total;
}

double Histogram::sum() const {
  return cell_ == nullptr ? 0 : cell_->sum.load(std::memory_order_relaxed);
}

Result<Counter> CounterFamily::try_with(std::span<const std::string_view> label_values) const {
  if (family_ == nullptr) return Counter();
  GANTRY_RETURN_IF_ERROR(check_label_values(*family_, label_values.size()));
  return Counter(find_or_create(*family_, family_->counters, label_values,
                                [] { return std::make_unique<CounterCell>(); }));
}

Counter CounterFamily::with(std::initializer_list<std::string_view> label_values) const {
  return value_or_abort(try_with({label_values.begin(), label_values.size()}));
}

Result<Gauge> GaugeFamily::try_with(std::span<const std::string_view> label_values) const {
  if (family_ == nullptr) return Gauge();
  GANTRY_RETURN_IF_ERROR(check_label_values(*family_, label_values.size()));
  return Gauge(find_or_create(*family_, family_->gauges, label_values,
                              [] { return std::make_unique<GaugeCell>(); }));
}

Gauge GaugeFamily::with(std::initializer_list<std::string_view> label_values) const {
  return value_or_abort(try_with({label_values.begin(), label_values.size()}));
}

Result<Histogram> HistogramFamily::try_with(std::span<const std::string_view> label_values) const {
  if (family_ == nullptr) return Histogram();
  GANTRY_RETURN_IF_ERROR(check_label_values(*family_, label_values.size()));
  size_t buckets = family_->bounds.size() + 1;
  return Histogram(family_, find_or_create(*family_, family_->histograms, label_values, [=] {
                     return std::make_unique<HistogramCell>(buckets);
                   }));
}

Histogram HistogramFamily::with(std::initializer_list<std::string_view> label_values) const {
  return value_or_abort(try_with({label_values.begin(), label_values.size()}));
}

// ---- Buckets ----

std::vector<double> default_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::vector<double> exponential_buckets(double start, double factor, size_t count) {
  std::vector<double> out;
  if (!(start > 0) || !(factor > 1)) return out;
  out.reserve(count);
  for (double v = start; out.size() < count; v *= factor) out.push_back(v);
  return out;
}

// ---- Registry ----

MetricsRegistry::MetricsRegistry() = default;
MetricsRegistry::~MetricsRegistry() = default;

Result<metrics_internal::Family*> MetricsRegistry::register_family(
    std::string_view name, std::string_view help, Type type, std::vector<std::string> label_names,
    std::vector<double> bounds) {
  if (!valid_identifier(name)) {
    return make_error(Code::kInvalidArgument, "metric name '{}' must match [a-zA-Z_][a-zA-Z0-9_]*",
                      name);
  }
  if (type == Type::kCounter && !name.ends_with("_total")) {
    return make_error(Code::kInvalidArgument, "counter name '{}' must end in _total", name);
  }
  if (help.empty()) return make_error(Code::kInvalidArgument, "metric {} needs a help text", name);
  std::set<std::string_view> seen;
  for (const std::string& label : label_names) {
    if (!valid_identifier(label) || label.starts_with("__")) {
      return make_error(Code::kInvalidArgument,
                        "label name '{}' of metric {} must match [a-zA-Z_][a-zA-Z0-9_]* and "
                        "not start with __",
                        label, name);
    }
    if (type == Type::kHistogram && label == "le") {
      return make_error(Code::kInvalidArgument, "histogram {} may not use the label 'le'", name);
    }
    if (!seen.insert(label).second) {
      return make_error(Code::kInvalidArgument, "metric {} lists label '{}' twice", name, label);
    }
  }
  if (type == Type::kHistogram) {
    if (!bounds.empty() && std::isinf(bounds.back()) && bounds.back() > 0) bounds.pop_back();
    for (size_t i = 0; i < bounds.size(); ++i) {
      if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i] > bounds[i - 1]))) {
        return make_error(Code::kInvalidArgument,
                          "histogram {} buckets must be finite and strictly increasing", name);
      }
    }
  }

  std::lock_guard lock(mu_);
  if (auto it = families_.find(name); it != families_.end()) {
    Family& existing = *it->second;
    if (existing.type != type || existing.label_names != label_names || existing.bounds != bounds) {
      return make_error(Code::kAlreadyExists,
                        "metric {} is already registered as a {} with labels ({})", name,
                        type_name(existing.type), fmt::join(existing.label_names, ", "));
    }
    return &existing;
  }
  auto family = std::make_unique<Family>();
  family->name = std::string(name);
  family->help = std::string(help);
  family->type = type;
  family->label_names = std::move(label_names);
  family->bounds = std::move(bounds);
  Family* raw = family.get();
  families_.emplace(family->name, std::move(family));
  return raw;
}

Result<CounterFamily> MetricsRegistry::counter(std::string_view name, std::string_view help,
                                               std::vector<std::string> label_names) {
  GANTRY_ASSIGN_OR_RETURN(Family * f,
                          register_family(name, help, Type::kCounter, std::move(label_names), {}));
  CounterFamily family(f);
  if (f->label_names.empty()) family.with();
  return family;
}

Result<GaugeFamily> MetricsRegistry::gauge(std::string_view name, std::string_view help,
                                           std::vector<std::string> label_names) {
  GANTRY_ASSIGN_OR_RETURN(Family * f,
                          register_family(name, help, Type::kGauge, std::move(label_names), {}));
  GaugeFamily family(f);
  if (f->label_names.empty()) family.with();
  return family;
}

Result<HistogramFamily> MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                                   std::vector<double> buckets,
                                                   std::vector<std::string> label_names) {
  GANTRY_ASSIGN_OR_RETURN(Family * f, register_family(name, help, Type::kHistogram,
                                                      std::move(label_names), std::move(buckets)));
  HistogramFamily family(f);
  if (f->label_names.empty()) family.with();
  return family;
}

std::string MetricsRegistry::render_prometheus() const {
  std::string out;
  std::lock_guard lock(mu_);
  for (const auto& [name, family] : families_) render_family(out, *family);
  return out;
}

}  // namespace gantry::common
