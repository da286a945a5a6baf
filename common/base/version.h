#pragma once

namespace gantry::common {

// Set by CMake from project(VERSION ...).
inline constexpr const char* kVersion = GANTRY_VERSION;
inline constexpr unsigned kProtocolVersion = 1;

}  // namespace gantry::common
