// Discovery documents derived from a KindRegistry: legacy discovery (/api, /api/v1, /apis,
// /apis/<g>, /apis/<g>/<v>) and aggregated discovery (apidiscovery.k8s.io v2 and v2beta1, which
// kubectl >= 1.26 asks for first on /api and /apis).
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "cloudcore/api/kind.h"

namespace gantry::cloud::api {

// GET /api
nlohmann::json api_versions(const std::string& server_address);
// GET /apis
nlohmann::json api_group_list(const KindRegistry& kinds);
// GET /apis/<group>; nullopt when the group is not served.
std::optional<nlohmann::json> api_group(const KindRegistry& kinds, std::string_view group);
// GET /api/v1 (group "") or /apis/<group>/<version>; nullopt when not served.
std::optional<nlohmann::json> api_resource_list(const KindRegistry& kinds, std::string_view group,
                                                std::string_view version);

// The aggregated-discovery version an Accept header asks for before any plain JSON ("v2" or
// "v2beta1"), or nullopt (answer legacy discovery).
std::optional<std::string> aggregated_discovery_version(std::string_view accept);
// APIGroupDiscoveryList for /api (core = true: the core group only) or /apis (every other
// group), in `version` ("v2" or "v2beta1"; the shapes are the same).
nlohmann::json aggregated_discovery(const KindRegistry& kinds, bool core,
                                    const std::string& version);
// The Content-Type of that answer: clients use it to tell aggregated from legacy documents.
std::string aggregated_discovery_content_type(const std::string& version);

}  // namespace gantry::cloud::api
