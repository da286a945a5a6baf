#pragma once

// The OpenAPI v2 document cloudcore serves on /openapi/v2, derived from the kinds: for each kind
// its collection path with a POST operation and its item path with a PATCH operation, each with
// the write query parameters the server honours (dryRun, fieldManager, fieldValidation; force on
// PATCH) and the x-kubernetes-group-version-kind extension. kubectl before 1.27 decides from these
// whether `kubectl diff` and `--dry-run=server` may be used for a kind. There are no schema
// definitions: kubectl's client-side validation skips kinds the document does not describe, and
// the server validates every write itself (docs/validation.md).

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace gantry::cloud::api {

class KindRegistry;

// The document as JSON (Accept: application/json).
nlohmann::json openapi_v2_json(const KindRegistry& kinds, std::string_view server_version);

// The same document in the protobuf form kubectl asks for
// (application/com.github.proto-openapi.spec.v2@v1.0+protobuf).
std::string openapi_v2_protobuf(const KindRegistry& kinds, std::string_view server_version);

}  // namespace gantry::cloud::api
