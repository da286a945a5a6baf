#include "common/base/config.h"

#include <fmt/format.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <set>

#include "common/base/atomic_file.h"

namespace gantry::common {

// ---------------------------------------------------------------------------------------------
// Durations and sizes

namespace {

constexpr std::string_view kDurationHint = "use e.g. 15s, 2m, 24h";
constexpr std::string_view kSizeHint = "use e.g. 512KiB, 1MiB, 10MB or a number of bytes";

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

// Reads the leading digits of `text` into *value; false on no digits or overflow.
bool take_number(std::string_view& text, uint64_t* value) {
  size_t n = 0;
  while (n < text.size() && is_digit(text[n])) ++n;
  if (n == 0) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + n, *value);
  if (ec != std::errc()) return false;
  text.remove_prefix(n);
  return true;
}

bool mul_overflows(uint64_t a, uint64_t b, uint64_t* out) {
  return __builtin_mul_overflow(a, b, out);
}

}  // namespace

Result<std::chrono::milliseconds> parse_duration(std::string_view text) {
  auto bad = [&] {
    return make_error(Code::kInvalidArgument, "'{}' is not a duration ({})", text, kDurationHint);
  };
  if (text == "0") return std::chrono::milliseconds(0);
  struct Unit {
    std::string_view name;
    uint64_t ms;
  };
  // "ms" before "m" so that the longer unit wins.
  static constexpr Unit kUnits[] = {
      {"ms", 1}, {"s", 1000}, {"m", 60'000}, {"h", 3'600'000}, {"d", 86'400'000}};
  std::string_view rest = text;
  uint64_t total = 0;
  if (rest.empty()) return bad();
  while (!rest.empty()) {
    uint64_t number = 0;
    if (!take_number(rest, &number)) return bad();
    const Unit* unit = nullptr;
    for (const Unit& u : kUnits) {
      if (rest.starts_with(u.name)) {
        unit = &u;
        break;
      }
    }
    if (unit == nullptr) return bad();
    rest.remove_prefix(unit->name.size());
    uint64_t part = 0;
    if (mul_overflows(number, unit->ms, &part) || __builtin_add_overflow(total, part, &total) ||
        total > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return make_error(Code::kInvalidArgument, "'{}' is too long a duration", text);
    }
  }
  return std::chrono::milliseconds(static_cast<int64_t>(total));
}

std::string format_duration(std::chrono::milliseconds d) {
  if (d.count() == 0) return "0s";
  std::string out;
  int64_t ms = d.count();
  if (ms < 0) {
    out = "-";
    ms = -ms;
  }
  static constexpr std::pair<int64_t, const char*> kUnits[] = {
      {86'400'000, "d"}, {3'600'000, "h"}, {60'000, "m"}, {1000, "s"}, {1, "ms"}};
  for (auto [size, name] : kUnits) {
    if (ms >= size) {
      out += fmt::format("{}{}", ms / size, name);
      ms %= size;
    }
  }
  return out;
}

namespace {
struct SizeUnit {
  std::string_view name;
  uint64_t factor;
};
constexpr SizeUnit kSizeUnits[] = {
    {"B", 1},
    {"kB", 1000},
    {"KB", 1000},
    {"MB", 1000'000},
    {"GB", 1000'000'000},
    {"TB", 1000'000'000'000},
    {"KiB", 1ULL << 10},
    {"MiB", 1ULL << 20},
    {"GiB", 1ULL << 30},
    {"TiB", 1ULL << 40},
    {"k", 1000},
    {"M", 1000'000},
    {"G", 1000'000'000},
    {"T", 1000'000'000'000},
    {"Ki", 1ULL << 10},
    {"Mi", 1ULL << 20},
    {"Gi", 1ULL << 30},
    {"Ti", 1ULL << 40},
};
}  // namespace

Result<uint64_t> parse_byte_size(std::string_view text) {
  std::string_view rest = text;
  uint64_t number = 0;
  if (!take_number(rest, &number)) {
    // All digits but too many of them: say so rather than "not a size".
    if (!text.empty() && std::all_of(text.begin(), text.end(), is_digit)) {
      return make_error(Code::kInvalidArgument, "'{}' is too large a size", text);
    }
    return make_error(Code::kInvalidArgument, "'{}' is not a byte size ({})", text, kSizeHint);
  }
  if (rest.starts_with(' ')) rest.remove_prefix(1);
  uint64_t factor = 1;
  if (!rest.empty()) {
    auto it = std::find_if(std::begin(kSizeUnits), std::end(kSizeUnits),
                           [&](const SizeUnit& u) { return u.name == rest; });
    if (it == std::end(kSizeUnits)) {
      return make_error(Code::kInvalidArgument, "'{}' is not a byte size ({})", text, kSizeHint);
    }
    factor = it->factor;
  }
  uint64_t bytes = 0;
  if (mul_overflows(number, factor, &bytes)) {
    return make_error(Code::kInvalidArgument, "'{}' is too large a size", text);
  }
  return bytes;
}

std::string format_byte_size(uint64_t bytes) {
  if (bytes == 0) return "0";
  static constexpr SizeUnit kFormatUnits[] = {
      {"TiB", 1ULL << 40},      {"GiB", 1ULL << 30},  {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10},
      {"TB", 1000'000'000'000}, {"GB", 1000'000'000}, {"MB", 1000'000},    {"kB", 1000}};
  for (const SizeUnit& u : kFormatUnits) {
    if (bytes % u.factor == 0) return fmt::format("{}{}", bytes / u.factor, u.name);
  }
  return std::to_string(bytes);
}

// ---------------------------------------------------------------------------------------------
// ConfigNode

namespace {

struct LoadContext {
  std::string name;  // the file, as errors name it
  std::vector<std::string> errors;
};

struct Entry {
  std::string key;
  YAML::Node value;
};

std::string_view kind_of(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Scalar:
      return "a single value";
    default:
      return "nothing";
  }
}

}  // namespace

struct ConfigNode::Impl {
  LoadContext* context = nullptr;
  std::string prefix;          // "tunnel." for a section, "" at the top level
  std::vector<Entry> entries;  // in document order
  std::vector<std::string> declared;
  YAML::Node current;  // the value take() found

  std::string path_of(std::string_view key) const {
    if (key.empty()) {
      return prefix.empty() ? std::string("(top level)") : prefix.substr(0, prefix.size() - 1);
    }
    return prefix + std::string(key);
  }
  void error(std::string_view key, std::string_view reason) {
    context->errors.push_back(fmt::format("{}: {}: {}", context->name, path_of(key), reason));
  }
  const Entry* find(std::string_view key) const {
    for (const Entry& e : entries) {
      if (e.key == key) return &e;
    }
    return nullptr;
  }
};

namespace {

// Fills `impl` with the entries of `node` (a mapping or null). False if it is something else.
bool load_entries(ConfigNode::Impl& impl, const YAML::Node& node, std::string_view key_for_errors);

}  // namespace

ConfigNode::ConfigNode(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ConfigNode::~ConfigNode() = default;

bool ConfigNode::take(std::string_view key, bool required) {
  impl_->declared.emplace_back(key);
  const Entry* entry = impl_->find(key);
  if (entry == nullptr) {
    if (required) impl_->error(key, "required key is missing");
    return false;
  }
  impl_->current = entry->value;
  return true;
}

namespace {

// The scalar text of `node`, or an error naming what was found instead.
bool scalar_of(ConfigNode::Impl& impl, std::string_view key, const YAML::Node& node,
               std::string_view expected, std::string* out) {
  if (node.IsScalar()) {
    *out = node.Scalar();
    return true;
  }
  if (node.IsNull()) {
    impl.error(key, fmt::format("has no value (expected {})", expected));
  } else {
    impl.error(key, fmt::format("expected {}, got {}", expected, kind_of(node)));
  }
  return false;
}

}  // namespace

bool ConfigNode::read_integer(std::string_view key, int64_t* out, int64_t min, int64_t max) {
  std::string text;
  if (!scalar_of(*impl_, key, impl_->current, "an integer", &text)) return false;
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  if (ec == std::errc::result_out_of_range ||
      (ec == std::errc() && ptr == text.data() + text.size() && (*out < min || *out > max))) {
    impl_->error(key, fmt::format("'{}' is out of range (allowed {}..{})", text, min, max));
    return false;
  }
  if (ec != std::errc() || ptr != text.data() + text.size()) {
    impl_->error(key, fmt::format("'{}' is not an integer", text));
    return false;
  }
  return true;
}

bool ConfigNode::read_integer(std::string_view key, uint64_t* out, uint64_t min, uint64_t max) {
  std::string text;
  if (!scalar_of(*impl_, key, impl_->current, "an integer", &text)) return false;
  const bool negative = text.starts_with('-');
  std::string_view digits = negative ? std::string_view(text).substr(1) : std::string_view(text);
  auto [ptr, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), *out);
  const bool whole = ec != std::errc::invalid_argument && ptr == digits.data() + digits.size();
  if (!whole) {
    impl_->error(key, fmt::format("'{}' is not an integer", text));
    return false;
  }
  if (ec == std::errc::result_out_of_range || (negative && *out != 0) || *out < min || *out > max) {
    impl_->error(key, fmt::format("'{}' is out of range (allowed {}..{})", text, min, max));
    return false;
  }
  return true;
}

bool ConfigNode::read(std::string_view key, std::string* out) {
  return scalar_of(*impl_, key, impl_->current, "a string", out);
}

bool ConfigNode::read(std::string_view key, bool* out) {
  std::string text;
  if (!scalar_of(*impl_, key, impl_->current, "true or false", &text)) return false;
  std::string lower = text;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (lower == "true" || lower == "yes" || lower == "on") {
    *out = true;
  } else if (lower == "false" || lower == "no" || lower == "off") {
    *out = false;
  } else {
    impl_->error(key, fmt::format("'{}' is not a boolean (use true or false)", text));
    return false;
  }
  return true;
}

bool ConfigNode::read(std::string_view key, double* out) {
  std::string text;
  if (!scalar_of(*impl_, key, impl_->current, "a number", &text)) return false;
  char* end = nullptr;
  errno = 0;
  *out = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE ||
      !std::isfinite(*out)) {
    impl_->error(key, fmt::format("'{}' is not a number", text));
    return false;
  }
  return true;
}

bool ConfigNode::read(std::string_view key, std::chrono::milliseconds* out) {
  std::string text;
  if (!scalar_of(*impl_, key, impl_->current, "a duration", &text)) return false;
  auto parsed = parse_duration(text);
  if (!parsed.ok()) {
    impl_->error(key, parsed.status().message());
    return false;
  }
  *out = *parsed;
  return true;
}

bool ConfigNode::read(std::string_view key, ByteSize* out) {
  std::string text;
  if (!scalar_of(*impl_, key, impl_->current, "a size", &text)) return false;
  auto parsed = parse_byte_size(text);
  if (!parsed.ok()) {
    impl_->error(key, parsed.status().message());
    return false;
  }
  out->bytes = *parsed;
  return true;
}

bool ConfigNode::read(std::string_view key, std::vector<std::string>* out) {
  const YAML::Node node = impl_->current;
  out->clear();
  if (node.IsNull()) return true;
  if (node.IsScalar()) {  // one string stands for a list of one
    std::string item;
    if (!scalar_of(*impl_, std::string(key), node, "a string", &item)) return false;
    out->push_back(std::move(item));
    return true;
  }
  if (!node.IsSequence()) {
    impl_->error(key, fmt::format("expected a list of strings, got {}", kind_of(node)));
    return false;
  }
  bool ok = true;
  for (size_t i = 0; i < node.size(); ++i) {
    std::string item;
    if (scalar_of(*impl_, fmt::format("{}[{}]", key, i), node[i], "a string", &item)) {
      out->push_back(std::move(item));
    } else {
      ok = false;
    }
  }
  return ok;
}

bool ConfigNode::read(std::string_view key, std::map<std::string, std::string>* out) {
  const YAML::Node node = impl_->current;
  out->clear();
  if (node.IsNull()) return true;
  if (!node.IsMap()) {
    impl_->error(key, fmt::format("expected a mapping of strings, got {}", kind_of(node)));
    return false;
  }
  bool ok = true;
  for (const auto& kv : node) {
    std::string k;
    if (!scalar_of(*impl_, key, kv.first, "string keys", &k)) {
      ok = false;
      continue;
    }
    std::string v;
    if (!scalar_of(*impl_, fmt::format("{}.{}", key, k), kv.second, "a string", &v)) {
      ok = false;
      continue;
    }
    if (!out->emplace(k, std::move(v)).second) {
      impl_->error(fmt::format("{}.{}", key, k), "duplicate key");
      ok = false;
    }
  }
  return ok;
}

void ConfigNode::out_of_range(std::string_view key, const std::string& min,
                              const std::string& max) {
  impl_->error(
      key, fmt::format("'{}' is out of range (allowed {}..{})", impl_->current.Scalar(), min, max));
}

std::string ConfigNode::describe(double v) {
  return fmt::format("{}", v);
}

ConfigNode& ConfigNode::one_of(std::string_view key, std::string* out,
                               std::initializer_list<std::string_view> allowed) {
  if (!take(key, false)) return *this;
  std::string value;
  if (!read(key, &value)) return *this;
  if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
    impl_->error(key, fmt::format("'{}' is not one of: {}", value, fmt::join(allowed, ", ")));
    return *this;
  }
  *out = std::move(value);
  return *this;
}

ConfigNode& ConfigNode::section(std::string_view key,
                                const std::function<void(ConfigNode&)>& bind) {
  auto impl = std::make_unique<Impl>();
  impl->context = impl_->context;
  impl->prefix = impl_->path_of(key) + ".";
  if (take(key, false) && !load_entries(*impl, impl_->current, impl_->path_of(key))) {
    return *this;
  }
  ConfigNode child(std::move(impl));
  bind(child);
  child.finish();
  return *this;
}

ConfigNode& ConfigNode::list(std::string_view key,
                             const std::function<void(ConfigNode&, size_t)>& bind) {
  if (!take(key, false)) return *this;
  const YAML::Node node = impl_->current;
  if (node.IsNull()) return *this;
  if (!node.IsSequence()) {
    impl_->error(key, fmt::format("expected a list of mappings, got {}", kind_of(node)));
    return *this;
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const std::string item_path = fmt::format("{}[{}]", impl_->path_of(key), i);
    auto impl = std::make_unique<Impl>();
    impl->context = impl_->context;
    impl->prefix = item_path + ".";
    if (!load_entries(*impl, node[i], item_path)) continue;
    ConfigNode child(std::move(impl));
    bind(child, i);
    child.finish();
  }
  return *this;
}

bool ConfigNode::has(std::string_view key) const {
  return impl_->find(key) != nullptr;
}

ConfigNode& ConfigNode::fail(std::string_view key, std::string_view reason) {
  impl_->error(key, reason);
  return *this;
}

void ConfigNode::finish() {
  for (const Entry& e : impl_->entries) {
    if (std::find(impl_->declared.begin(), impl_->declared.end(), e.key) != impl_->declared.end()) {
      continue;
    }
    if (impl_->declared.empty()) {
      impl_->error(e.key, "unknown key (nothing is expected here)");
    } else {
      impl_->error(e.key, fmt::format("unknown key (expected one of: {})",
                                      fmt::join(impl_->declared, ", ")));
    }
  }
}

namespace {

bool load_entries(ConfigNode::Impl& impl, const YAML::Node& node, std::string_view key_for_errors) {
  auto error = [&](std::string_view reason) {
    impl.context->errors.push_back(
        fmt::format("{}: {}: {}", impl.context->name, key_for_errors, reason));
  };
  if (node.IsNull()) return true;
  if (!node.IsMap()) {
    error(fmt::format("expected a mapping, got {}", kind_of(node)));
    return false;
  }
  std::set<std::string> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) {
      error(fmt::format("keys must be plain names, got {} (line {})", kind_of(kv.first),
                        kv.first.Mark().line + 1));
      continue;
    }
    const std::string& key = kv.first.Scalar();
    if (!seen.insert(key).second) {
      impl.error(key, fmt::format("duplicate key (line {})", kv.first.Mark().line + 1));
      continue;
    }
    impl.entries.push_back({key, kv.second});
  }
  return true;
}

}  // namespace

Status load_config_string(std::string_view yaml, std::string_view name, const ConfigBinder& bind) {
  LoadContext context{std::string(name), {}};
  YAML::Node document;
  try {
    document = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return make_error(Code::kInvalidArgument, "{}:{}:{}: invalid YAML: {}", name, e.mark.line + 1,
                      e.mark.column + 1, e.msg);
  }
  auto impl = std::make_unique<ConfigNode::Impl>();
  impl->context = &context;
  try {
    if (load_entries(*impl, document, "(top level)")) {
      ConfigNode root(std::move(impl));
      bind(root);
      root.finish();
    }
  } catch (const YAML::Exception& e) {
    // Not expected (every access above checks the node type first), but never let one escape.
    context.errors.push_back(
        fmt::format("{}:{}:{}: {}", name, e.mark.line + 1, e.mark.column + 1, e.msg));
  }
  if (context.errors.empty()) return ok_status();
  return Status(Code::kInvalidArgument, fmt::format("{}", fmt::join(context.errors, "\n")));
}

Status load_config_file(const std::filesystem::path& path, const ConfigBinder& bind) {
  GANTRY_ASSIGN_OR_RETURN(std::string text, read_file(path));
  return load_config_string(text, path.string(), bind);
}

}  // namespace gantry::common
