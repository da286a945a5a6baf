// Bounded decoding of JSON (and YAML as JSON) from the network.
//
// nlohmann::json builds trees that its own destructor, dump(), comparison and copy walk
// recursively, and so does our patch and validation code: a body nested tens of thousands of
// levels deep overflows the stack of whichever thread touches it. Every request body, token and
// file that comes from outside goes through these functions, which check the nesting depth and
// the size in one linear scan BEFORE any tree is built.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace gantry::common {

struct JsonLimits {
  // kube-apiserver's own request body bound (3 MiB); callers with smaller bodies pass less.
  size_t max_bytes = size_t{3} * 1024 * 1024;
  // Kubernetes objects nest about 15 levels; Go's decoder stops at 10,000. 1,000 keeps every
  // recursive walk of the tree a few hundred KiB of stack at most.
  size_t max_depth = 1000;
  // Values (scalars, arrays, objects) a YAML document may expand to; aliases (`*a`) are copied
  // on conversion, so without it a few KiB of YAML can expand to gigabytes ("billion laughs").
  size_t max_yaml_values = 1'000'000;
};

// The deepest nesting of arrays/objects in `text`, scanning at most until `stop_at` is exceeded
// (then returns stop_at + 1). Strings are skipped, so brackets inside them do not count. Works on
// any input, valid JSON or not, without recursion.
size_t json_nesting_depth(std::string_view text, size_t stop_at);

// Parses `text` as one JSON value within `limits`. Errors are kInvalidArgument (bad syntax, too
// deep) or kResourceExhausted (too large), with a message fit to show the client:
// worded to follow a subject ("the request body is " + message):
//   "nested more than 1000 levels deep (at byte 1000)"
//   "not valid JSON: parse error at line 1, column 7: syntax error ..."
Result<nlohmann::json> parse_json(std::string_view text, const JsonLimits& limits = {});

// Parses one YAML document into the JSON it denotes (as kubectl's apply-patch+yaml bodies are
// read): mappings become objects (keys as strings), sequences arrays, plain scalars null / bool
// / integer / float / string by the YAML 1.2 core schema, quoted scalars strings. Bounded like
// parse_json, plus `max_yaml_values` for alias expansion.
Result<nlohmann::json> parse_yaml_as_json(std::string_view text, const JsonLimits& limits = {});

// Reading decoded objects: the value at `path` (object keys, outermost first), or nullptr / the
// fallback when a step is missing, is not an object, or the value has another type.
const nlohmann::json* json_at(const nlohmann::json& obj, std::initializer_list<const char*> path);
std::string json_string_at(const nlohmann::json& obj, std::initializer_list<const char*> path);
int64_t json_int_at(const nlohmann::json& obj, std::initializer_list<const char*> path,
                    int64_t fallback = 0);

}  // namespace gantry::common
