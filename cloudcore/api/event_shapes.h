// The two shapes of one Event: core `v1` (what is stored, what the recorder writes, what `kubectl
// describe` reads) and `events.k8s.io/v1` (what newer clients and controllers read and write).
// Both are views of the same stored object, as in kube-apiserver; these are its conversions
// (k8s.io/kubernetes/pkg/apis/events/v1 conversion.go) and the events.k8s.io/v1 create rules.
#pragma once

#include <nlohmann/json.hpp>

#include "cloudcore/api/render.h"
#include "common/base/status.h"

namespace gantry::cloud::api {

// core v1 -> events.k8s.io/v1: involvedObject -> regarding, message -> note, reportingComponent
// -> reportingController, source/firstTimestamp/lastTimestamp/count -> deprecated*. Empty
// fields are left out as Go's omitempty does; eventTime is always present (null when unset).
nlohmann::json events_v1_from_core(const nlohmann::json& core);

// events.k8s.io/v1 -> core v1, the reverse mapping. With `creating`, the object must be what
// kube-apiserver accepts on a create through events.k8s.io/v1: eventTime, reportingController,
// reportingInstance, action and reason set; type Normal or Warning; note at most 1 KiB; the
// deprecated* fields unset. The message names the field (a 422 for the caller).
common::Result<nlohmann::json> core_from_events_v1(const nlohmann::json& ev, bool creating);

// kubectl's LAST SEEN of an event in either shape: the age of its last occurrence (series,
// lastTimestamp, eventTime, then creation), as kube-apiserver's event printer.
std::string event_last_seen(const nlohmann::json& event, SystemTime now);

}  // namespace gantry::cloud::api
