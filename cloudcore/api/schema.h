// The fields each kind has (core/v1 as Kubernetes defines them), used to drop unknown fields
// before anything is stored, and to tell the client about them the way kube-apiserver does with
// `fieldValidation` (Ignore / Warn / Strict — kubectl >= 1.27 sends Strict).
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace gantry::cloud::api {

struct Schema {
  enum class Type {
    kObject,  // fixed properties; others are unknown
    kMap,     // any keys, values of `items`
    kArray,   // items of `items`
    kString,
    kInteger,
    kNumber,
    kBoolean,
    kQuantity,  // int-or-string (resource quantities, probe ports)
    kAny,       // anything; kept as sent (x-kubernetes-preserve-unknown-fields)
  };
  Type type = Type::kAny;
  std::string description;
  std::map<std::string, std::shared_ptr<const Schema>> properties;  // kObject
  std::shared_ptr<const Schema> items;                              // kMap, kArray
  std::string ref;  // a named definition ("io.k8s.api.core.v1.Container"), for OpenAPI
};

// The schema of `kind` ("Pod", "ConfigMap", ...) of `group` ("" for core, "apps",
// "events.k8s.io": one Kind name can have two shapes); nullptr for kinds without one (then nothing
// is pruned).
const Schema* schema_for(std::string_view group, std::string_view kind);
// The kinds with a schema: "Pod" for the core group, "group/Kind" for the others.
std::vector<std::string> schema_kinds();

enum class FieldValidation { kIgnore, kWarn, kStrict };

// The `fieldValidation` query parameter; absent: Warn (kube-apiserver's default). A bad value is
// the 400 message kube-apiserver gives.
common::Result<FieldValidation> parse_field_validation(const std::optional<std::string>& value);

// Removes every field of `obj` that the schema of `group`'s `kind` does not have, and returns their
// paths
// ("spec.contaners", "spec.containers[0].imagePullPolice"), in document order.
std::vector<std::string> prune_unknown_fields(std::string_view group, std::string_view kind,
                                              nlohmann::json& obj);

// What the client is told about `unknown` fields under `mode`:
// Strict: an error message (`strict decoding error: unknown field "spec.contaners"`);
// Warn: one Warning text per field (`unknown field "spec.contaners"`); Ignore: nothing.
struct UnknownFieldVerdict {
  std::optional<std::string> error;
  std::vector<std::string> warnings;
};
UnknownFieldVerdict judge_unknown_fields(FieldValidation mode,
                                         const std::vector<std::string>& unknown);

}  // namespace gantry::cloud::api
