// The three patch formats kubectl sends: JSON merge patch (RFC 7386), Kubernetes strategic merge
// patch (what `kubectl apply/edit/label/annotate` send for built-in kinds) and JSON patch (RFC
// 6902).
#pragma once

#include <nlohmann/json.hpp>
#include <string_view>

#include "common/base/status.h"

namespace gantry::cloud::api {

// RFC 7386: objects merge recursively, null deletes, anything else replaces.
common::Result<nlohmann::json> apply_merge_patch(const nlohmann::json& target,
                                                 const nlohmann::json& patch);

// Strategic merge patch for the kinds served here (pods, nodes, configmaps, secrets,
// namespaces, events). Lists with a merge key (spec.containers by name, env by name, ports by
// containerPort, volumeMounts by mountPath, volumes by name, tolerations are replaced, ...)
// merge element by element; other lists are replaced. Directives: `$patch: delete|replace|merge`,
// `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`, `$retainKeys`.
common::Result<nlohmann::json> apply_strategic_merge_patch(const nlohmann::json& target,
                                                           const nlohmann::json& patch);

// RFC 6902 (add, remove, replace, move, copy, test). A failing `test` or a bad path is an error.
common::Result<nlohmann::json> apply_json_patch(const nlohmann::json& target,
                                                const nlohmann::json& patch);

}  // namespace gantry::cloud::api
