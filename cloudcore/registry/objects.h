// Kubernetes JSON (what users apply) -> StoredObject (JSON + the compact edge manifest derived on
// write, so that dispatch never parses JSON).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/base/status.h"
#include "gantry/v1/objects.pb.h"

namespace gantry::cloud {

// Derives the StoredObject for an object of `kind` given as Kubernetes JSON. The JSON is kept as
// given. Errors name the field: "spec.containers[0].image: required".
common::Result<v1::StoredObject> decode_object(v1::ObjectKind kind, std::string_view json);

// Resource quantities as Kubernetes writes them: "100m", "0.5", "2" (cpu -> millicores);
// "128Mi", "1G", "1e3", "512" (memory -> bytes).
common::Result<int64_t> parse_cpu_millis(std::string_view quantity);
common::Result<int64_t> parse_bytes_quantity(std::string_view quantity);
// Any quantity in Kubernetes' grammar (an optional sign, a decimal number with an optional
// exponent, and a suffix among n u m "" k M G T P E Ki Mi Gi Ti Pi Ei) as a plain number; nothing
// if it is not one. What the API validates with; the two above are what scheduling reads.
std::optional<double> parse_quantity(std::string_view quantity);

}  // namespace gantry::cloud
