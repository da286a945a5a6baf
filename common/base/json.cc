#include "common/base/json.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <string>

namespace gantry::common {
namespace {

using nlohmann::json;

struct Scan {
  size_t depth = 0;    // deepest nesting seen (capped at stop_at + 1)
  size_t at_byte = 0;  // where the cap was passed
};

// The offset of the first byte that does not belong to well-formed UTF-8 (no overlong forms, no
// surrogates, nothing past U+10FFFF), or npos. YAML streams are Unicode; yaml-cpp passes bytes
// through, and a string that is not UTF-8 would make every later dump() of the object throw.
size_t first_invalid_utf8(std::string_view text) {
  const auto* bytes = reinterpret_cast<const unsigned char*>(text.data());
  size_t i = 0;
  while (i < text.size()) {
    unsigned char lead = bytes[i];
    size_t length = 0;
    unsigned char low = 0x80;
    unsigned char high = 0xBF;
    if (lead < 0x80) {
      ++i;
      continue;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      if (lead == 0xE0) low = 0xA0;
      if (lead == 0xED) high = 0x9F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      if (lead == 0xF0) low = 0x90;
      if (lead == 0xF4) high = 0x8F;
    } else {
      return i;
    }
    if (i + length > text.size()) return i;
    for (size_t k = 1; k < length; ++k) {
      unsigned char next = bytes[i + k];
      if (next < (k == 1 ? low : 0x80) || next > (k == 1 ? high : 0xBF)) return i;
    }
    i += length;
  }
  return std::string_view::npos;
}

Scan scan_depth(std::string_view text, size_t stop_at) {
  Scan out;
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is, does not end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > out.depth) out.depth = depth;
        if (depth > stop_at) {
          out.at_byte = i;
          return out;
        }
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return out;
}

Status too_large(size_t size, size_t max) {
  return make_error(Code::kResourceExhausted, "{} bytes, more than the limit of {}", size, max);
}

// ----- YAML -------------------------------------------------------------------------------

bool one_of(std::string_view s, std::initializer_list<std::string_view> options) {
  for (std::string_view o : options)
    if (s == o) return true;
  return false;
}

// A plain (unquoted) scalar as go-yaml v2 (what kube-apiserver uses, YAML 1.1 booleans) reads it.
Result<json> plain_scalar(const std::string& s) {
  if (one_of(s, {"", "~", "null", "Null", "NULL"})) return json(nullptr);
  if (one_of(s, {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON"})) return json(true);
  if (one_of(s, {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF"}))
    return json(false);
  std::string_view digits = s;
  bool negative = false;
  if (!digits.empty() && (digits[0] == '-' || digits[0] == '+')) {
    negative = digits[0] == '-';
    digits.remove_prefix(1);
  }
  if (!digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos) {
    if (negative) {
      int64_t v = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
      if (ec == std::errc() && p == s.data() + s.size()) return json(v);
    } else {
      uint64_t v = 0;
      auto [p, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), v);
      if (ec == std::errc() && p == digits.data() + digits.size()) {
        if (v <= static_cast<uint64_t>(INT64_MAX)) return json(static_cast<int64_t>(v));
        return json(v);
      }
    }
    // Too large for 64 bits: a float, as Go would read it.
  }
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    uint64_t v = 0;
    auto [p, ec] = std::from_chars(digits.data() + 2, digits.data() + digits.size(), v, 16);
    if (ec == std::errc() && p == digits.data() + digits.size() &&
        v <= static_cast<uint64_t>(INT64_MAX))
      return json(negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v));
  }
  if (one_of(s, {".inf", ".Inf", ".INF", "+.inf", "-.inf", ".nan", ".NaN", ".NAN"}))
    return make_error(Code::kInvalidArgument, "the YAML value {} has no JSON equivalent", s);
  if (!digits.empty() &&
      (std::isdigit(static_cast<unsigned char>(digits[0])) || digits[0] == '.') &&
      digits.find_first_not_of("0123456789.eE+-") == std::string_view::npos) {
    double v = 0;
    auto [p, ec] = std::from_chars(s.data() + (s[0] == '+' ? 1 : 0), s.data() + s.size(), v);
    if (ec == std::errc() && p == s.data() + s.size() && std::isfinite(v)) return json(v);
  }
  return json(s);
}

class YamlToJson {
 public:
  explicit YamlToJson(const JsonLimits& limits) : limits_(limits) {}

  Result<json> convert(const YAML::Node& node, size_t depth) {
    if (++values_ > limits_.max_yaml_values)
      return make_error(Code::kResourceExhausted,
                        "more than {} values once YAML aliases are expanded",
                        limits_.max_yaml_values);
    switch (node.Type()) {
      case YAML::NodeType::Undefined:
      case YAML::NodeType::Null:
        return json(nullptr);
      case YAML::NodeType::Scalar:
        // yaml-cpp tags plain scalars "?" and quoted ones "!"; an explicit tag is kept as text.
        if (node.Tag() == "?") return plain_scalar(node.Scalar());
        if (node.Tag() == "tag:yaml.org,2002:int" || node.Tag() == "!!int" ||
            node.Tag() == "tag:yaml.org,2002:bool" || node.Tag() == "tag:yaml.org,2002:null" ||
            node.Tag() == "tag:yaml.org,2002:float")
          return plain_scalar(node.Scalar());
        return json(node.Scalar());
      case YAML::NodeType::Sequence: {
        if (depth >= limits_.max_depth) return too_deep();
        json out = json::array();
        for (const YAML::Node& item : node) {
          GANTRY_ASSIGN_OR_RETURN(json value, convert(item, depth + 1));
          out.push_back(std::move(value));
        }
        return out;
      }
      case YAML::NodeType::Map: {
        if (depth >= limits_.max_depth) return too_deep();
        json out = json::object();
        for (const auto& entry : node) {
          if (!entry.first.IsScalar())
            return make_error(Code::kInvalidArgument,
                              "a YAML mapping key must be a scalar to become JSON");
          GANTRY_ASSIGN_OR_RETURN(json value, convert(entry.second, depth + 1));
          out[entry.first.Scalar()] = std::move(value);
        }
        return out;
      }
    }
    return json(nullptr);
  }

 private:
  Status too_deep() const {
    return make_error(Code::kInvalidArgument, "nested more than {} levels deep", limits_.max_depth);
  }

  const JsonLimits& limits_;
  size_t values_ = 0;
};

}  // namespace

size_t json_nesting_depth(std::string_view text, size_t stop_at) {
  return scan_depth(text, stop_at).depth;
}

Result<json> parse_json(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) return too_large(text.size(), limits.max_bytes);
  Scan scan = scan_depth(text, limits.max_depth);
  if (scan.depth > limits.max_depth)
    return make_error(Code::kInvalidArgument, "nested more than {} levels deep (at byte {})",
                      limits.max_depth, scan.at_byte);
  // Exceptions stay inside this function: nlohmann's message says where the syntax broke.
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    std::string what = e.what();
    // "[json.exception.parse_error.101] parse error at line 1, column 2: ..." -> from "parse".
    if (auto bracket = what.find("] "); what.starts_with("[json.") && bracket != std::string::npos)
      what.erase(0, bracket + 2);
    return make_error(Code::kInvalidArgument, "not valid JSON: {}", what);
  }
}

Result<json> parse_yaml_as_json(std::string_view text, const JsonLimits& limits) {
  if (text.size() > limits.max_bytes) return too_large(text.size(), limits.max_bytes);
  // Flow collections ("[[[[...") are bounded here; block nesting by yaml-cpp's own depth guard
  // (DeepRecursion past 2000) and by the conversion below.
  Scan scan = scan_depth(text, limits.max_depth);
  if (scan.depth > limits.max_depth)
    return make_error(Code::kInvalidArgument, "nested more than {} levels deep (at byte {})",
                      limits.max_depth, scan.at_byte);
  if (size_t bad = first_invalid_utf8(text); bad != std::string_view::npos)
    return make_error(Code::kInvalidArgument, "not valid YAML: invalid UTF-8 at byte {}", bad);
  YAML::Node root;
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(std::string(text));
    if (docs.size() > 1)
      return make_error(Code::kInvalidArgument, "{} YAML documents; one object is expected",
                        docs.size());
    if (!docs.empty()) root = docs.front();
  } catch (const YAML::Exception& e) {
    return make_error(Code::kInvalidArgument, "not valid YAML: {}", e.what());
  }
  YamlToJson converter(limits);
  return converter.convert(root, 0);
}

const nlohmann::json* json_at(const nlohmann::json& obj, std::initializer_list<const char*> path) {
  const nlohmann::json* cur = &obj;
  for (const char* key : path) {
    if (!cur->is_object()) return nullptr;
    auto it = cur->find(key);
    if (it == cur->end()) return nullptr;
    cur = &*it;
  }
  return cur;
}

std::string json_string_at(const nlohmann::json& obj, std::initializer_list<const char*> path) {
  const nlohmann::json* v = json_at(obj, path);
  return v && v->is_string() ? v->get<std::string>() : std::string();
}

int64_t json_int_at(const nlohmann::json& obj, std::initializer_list<const char*> path,
                    int64_t fallback) {
  const nlohmann::json* v = json_at(obj, path);
  return v && v->is_number_integer() ? v->get<int64_t>() : fallback;
}

}  // namespace gantry::common
