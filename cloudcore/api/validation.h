// Defaulting and validation of API objects, as kube-apiserver does them for the kinds we serve.
//
// validate_object returns field errors worded like kube-apiserver's (field path, "Invalid
// value: ...", "Required value", ...); invalid_status turns them into the 422 `Invalid` Status
// with `details.causes` that kubectl prints. default_object fills what Kubernetes fills on
// create and update (restartPolicy, dnsPolicy, imagePullPolicy, Secret type, ...). Both work on
// the JSON object as the client sent it (after the kind/apiVersion/name/namespace of the URL were
// applied) and know nothing of the store or of callers' permissions (see admission.h for those).
#pragma once

#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gantry::cloud::api {

// k8s.io/apimachinery/pkg/util/validation/field ErrorType.
enum class FieldErrorType {
  kNotFound,
  kRequired,
  kDuplicate,
  kInvalid,
  kNotSupported,
  kForbidden,
  kTooLong,
  kTooMany,
  kTypeInvalid,
};

struct FieldError {
  FieldErrorType type = FieldErrorType::kInvalid;
  std::string field;     // "spec.containers[0].name", "data[../x]"
  nlohmann::json value;  // the bad value (shown for the types that show one)
  std::string detail;

  // "FieldValueInvalid", "FieldValueRequired", ... (Status details.causes[].reason).
  std::string reason() const;
  // `Invalid value: "a..b": a lowercase RFC 1123 subdomain must ...` (causes[].message).
  std::string body() const;
  // field + ": " + body (what kube-apiserver joins into the Status message).
  std::string message() const;
};
using FieldErrors = std::vector<FieldError>;

// The 422 Status: {"kind":"Status",...,"reason":"Invalid","message":"Pod \"web\" is invalid:
// spec.containers[0].name: Required value","details":{"name":"web","kind":"Pod","causes":[...]},
// "code":422}. More than one error: the message lists them in brackets, as Kubernetes does.
nlohmann::json invalid_status(std::string_view kind, std::string_view name,
                              const FieldErrors& errors);
// Just the message of invalid_status.
std::string invalid_message(std::string_view kind, std::string_view name,
                            const FieldErrors& errors);

// Fills Kubernetes' defaults for `kind` ("Pod", "Secret", ...) in place. Idempotent, and never
// overrides what the client set. Unknown kinds are left alone.
void default_object(std::string_view kind, nlohmann::json& obj);

// Sets what the server owns on create: metadata.uid (a new UUID) and creationTimestamp (`now`).
void set_create_metadata(nlohmann::json& obj, std::chrono::system_clock::time_point now);

// Validates `obj` as kind `kind`. `old`: the stored object on update/patch (immutable fields
// are compared with it), nullptr on create. Empty result: valid.
FieldErrors validate_object(std::string_view kind, const nlohmann::json& obj,
                            const nlohmann::json* old = nullptr);

// Limits Kubernetes applies (core/v1 MaxSecretSize, apimachinery TotalAnnotationSizeLimitB).
inline constexpr size_t kMaxConfigSize = size_t{1} << 20;
inline constexpr size_t kMaxAnnotationsSize = size_t{256} << 10;

// The rule checks, each returning kube-apiserver's messages (empty: valid); exposed for the
// other parts of the API (selectors, admission) and for tests.
std::vector<std::string> dns1123_label_errors(std::string_view value);
std::vector<std::string> dns1123_subdomain_errors(std::string_view value);
std::vector<std::string> qualified_name_errors(std::string_view value);  // label/annotation keys
std::vector<std::string> label_value_errors(std::string_view value);
std::vector<std::string> config_map_key_errors(std::string_view value);
std::vector<std::string> env_var_name_errors(std::string_view value);
std::vector<std::string> port_name_errors(std::string_view value);  // IANA_SVC_NAME

}  // namespace gantry::cloud::api
