// Kubernetes' protobuf request bodies (`application/vnd.kubernetes.protobuf`), decoded into the
// JSON the rest of the server reads. kubectl >= 1.33 sends them from its typed clients —
// `kubectl create configmap|secret|namespace|job` — and does not retry with JSON after a 415, so
// kube-apiserver's behaviour (accept them) is the only one that makes those commands work.
//
// The body is the 4 bytes "k8s\0" and a runtime.Unknown message (typeMeta: apiVersion and kind;
// raw: the object's own message; contentEncoding: empty). The object's message is read by a
// field table per kind (the field numbers of k8s.io/api's generated.proto): ConfigMap, Secret and
// Namespace with ObjectMeta (labels, annotations, ownerReferences, finalizers, timestamps), and
// batch/v1 Job with the parts of its pod template kubectl and common manifests set.
// Unknown field numbers are skipped as protobuf readers do; empty strings and zero numbers are
// left out as Go's `omitempty` leaves them out of the JSON form. Other kinds answer 415 with a
// message naming the media type to send instead. Answers are JSON (every client that sends
// protobuf also accepts application/json).
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "common/base/status.h"

namespace gantry::cloud::api {

inline constexpr std::string_view kProtobufMediaType = "application/vnd.kubernetes.protobuf";

// Whether a protobuf body of `group`'s `kind` can be decoded.
bool protobuf_body_supported(std::string_view group, std::string_view kind);

// The JSON of a protobuf body of `group`'s `kind` (apiVersion and kind from the envelope). A body
// that is not such an object is kInvalidArgument with a message saying what is wrong (a 400).
common::Result<nlohmann::json> decode_protobuf_body(std::string_view group, std::string_view kind,
                                                    std::string_view body);

}  // namespace gantry::cloud::api
