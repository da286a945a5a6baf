// Name rules shared by every place that accepts a node or object name.
#pragma once

#include <string_view>

namespace gantry::common {

// Kubernetes' DNS-1123 subdomain: at most 253 characters, dot-separated labels of 1-63 lowercase
// letters, digits and '-', not starting or ending with '-'. Node names must be one.
bool is_dns1123_subdomain(std::string_view name);

}  // namespace gantry::common
