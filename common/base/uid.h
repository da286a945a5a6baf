// Object UIDs: random (version 4) UUIDs, as Kubernetes gives every object in metadata.uid.
#pragma once

#include <string>

namespace gantry::common {

// "7f2b6c1e-3d4a-4b5c-9e8f-0a1b2c3d4e5f". Thread-safe; seeded from std::random_device.
std::string new_uid();

}  // namespace gantry::common
