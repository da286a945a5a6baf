// Where each kind of object lives in cloudcore's store. Desired state and observed state are kept
// under separate keys so that an edge's status write never conflicts with a user's spec write and
// dispatch never sends a node its own status back.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "gantry/v1/objects.pb.h"

namespace gantry::cloud::keys {

inline constexpr std::string_view kPods = "/pods/";
inline constexpr std::string_view kConfigMaps = "/configmaps/";
inline constexpr std::string_view kSecrets = "/secrets/";
inline constexpr std::string_view kNodes = "/nodes/";
inline constexpr std::string_view kNamespaces = "/namespaces/";
inline constexpr std::string_view kEvents = "/events/";  // /events/NS/NAME
inline constexpr std::string_view kPodStatus = "/status/pods/";
inline constexpr std::string_view kNodeStatus = "/status/nodes/";
// Per node: the last upstream sequence applied (written with the statuses of that batch).
inline constexpr std::string_view kHubSequence = "/hub/sequence/";

// "/pods/default/web", "/nodes/n1" (namespace ignored for nodes).
std::string object_key(v1::ObjectKind kind, std::string_view ns, std::string_view name);
// "/status/pods/default/web", "/status/nodes/n1".
std::string status_key(v1::ObjectKind kind, std::string_view ns, std::string_view name);
std::string hub_sequence_key(std::string_view node);

struct ParsedKey {
  v1::ObjectKind kind = v1::OBJECT_KIND_UNSPECIFIED;
  bool status = false;  // under /status/
  std::string ns;
  std::string name;
};
// Reads a key back; nullopt for keys that are not objects or statuses.
std::optional<ParsedKey> parse_key(std::string_view key);

std::string_view kind_name(v1::ObjectKind kind);  // "pod", "configmap", ...

}  // namespace gantry::cloud::keys
