// Resource kinds as data: one `Kind` describes everything the API serves for a resource —
// identity (group/version/kind, plural, short names, categories), scope, verbs, subresources,
// table columns, selectable fields, how province roles apply, where it is stored and the few
// kind-specific behaviours (status rendering, normalisation before storage, update rules,
// warnings). Discovery (/api, /apis, aggregated discovery), `kubectl api-resources`, Table output,
// routing and the province checks of the server are all derived from these descriptions.
//
// ADDING A KIND (e.g. apps/v1 Deployment):
//   1. Write cloudcore/api/kinds/<plural>.cc defining `Kind <singular>_kind()` (see
//      kinds/configmaps.cc for the smallest example, kinds/pods.cc for every hook). Fill
//      group/version/kind/plural/singular, `namespaced`, `verbs`, `columns` (empty: NAME, AGE),
//      `selectable_fields`, `scope`, `prefix` (the store key prefix, "/deployments/"), and
//      `status` (kInObject for controller-written status such as workloads).
//   2. Declare it in kinds/kinds.h and add it to `builtin_kinds()` in kinds/kinds.cc; add the file
//      to cloudcore/api/CMakeLists.txt.
//   3. Tests: a unit test that creates/gets/lists it through the server (kinds_test.cc serves
//      two test-only kinds this way: Widget, plain, and Gadget, whose status lives in the object
//      and changes only through /status), and the table columns. A new group appears in /apis and
//      in aggregated discovery by itself; `/apis/<group>/<version>/...` routes to the kind with no
//      server change.
// The server never switches on a resource name: a behaviour that only some kinds have is a field
// or hook here.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cloudcore/api/render.h"
#include "cloudcore/api/validation.h"
#include "common/base/status.h"
#include "gantry/v1/objects.pb.h"

namespace gantry::cloud::api {

// Kubernetes verbs, as a bit set.
enum Verb : uint32_t {
  kGet = 1u << 0,
  kList = 1u << 1,
  kWatch = 1u << 2,
  kCreate = 1u << 3,
  kUpdate = 1u << 4,
  kPatch = 1u << 5,
  kDelete = 1u << 6,
  kDeleteCollection = 1u << 7,
};
using Verbs = uint32_t;
inline constexpr Verbs kReadVerbs = kGet | kList | kWatch;
inline constexpr Verbs kAllVerbs =
    kGet | kList | kWatch | kCreate | kUpdate | kPatch | kDelete | kDeleteCollection;
// "create", "delete", "deletecollection", "get", "list", "patch", "update", "watch" (sorted, as
// kube-apiserver lists them).
std::vector<std::string> verb_names(Verbs verbs);

// Who besides an administrator may see or change objects of a kind. Province roles
// (`gantry:province:P:viewer|operator`) are described in docs/api.md.
enum class ProvinceScope {
  kAdminOnly,      // province roles get 403 (configmaps, secrets, events today)
  kReadableByAll,  // every authenticated user reads; administrators write (namespaces)
  kNodeLabel,      // the object's own `topology.gantry.io/province` label (nodes)
  kBoundNode,      // the province of the node named in spec.nodeName (pods)
};

// Where a kind's `status` comes from.
enum class StatusSource {
  kNone,      // no status (configmaps, secrets, events)
  kRendered,  // computed on every read by `render_status` (namespaces' phase)
  kObserved,  // a StoredStatus at `status_prefix` (written by the hub from the edge's reports),
              // rendered by `render_status`; the /status subresource writes it
  kInObject,  // kept in the stored JSON; main-resource writes keep the stored status and only
              // the /status subresource changes it (controller-written status: workloads)
};

// A write a kind refuses (Kind::admit): the HTTP code, the Status reason and message, and
// optional Status details.
struct Refusal {
  int code = 422;
  std::string reason = "Invalid";
  std::string message;
  nlohmann::json details;
};

// Read access to other stored objects for Kind::admit: the JSON of the object at a store key
// (nullopt when there is none), and every object under a key prefix.
struct StoredLookup {
  std::function<common::Result<std::optional<nlohmann::json>>(const std::string& key)> get;
  std::function<common::Result<std::vector<nlohmann::json>>(const std::string& prefix)> list;
};

struct Subresource {
  std::string name;  // "status", "log", "eviction", "scale"
  // The body's group/version/kind ("" group and empty kind: the parent's).
  std::string group;
  std::string version;
  std::string kind;
  Verbs verbs = kGet;
};

struct Kind {
  // ----- identity
  std::string group;    // "" for the core group
  std::string version;  // "v1"
  std::string kind;     // "Pod"
  std::string plural;   // "pods"
  std::string singular;
  std::vector<std::string> short_names;
  std::vector<std::string> categories;  // "all": part of `kubectl get all`
  bool namespaced = true;
  Verbs verbs = kAllVerbs;
  std::vector<Subresource> subresources;

  // ----- reading
  std::vector<TableColumn> columns;  // empty: Name, Age
  // Field selectors besides metadata.name and metadata.namespace (which every kind has).
  std::vector<std::string> selectable_fields;
  ProvinceScope scope = ProvinceScope::kAdminOnly;

  // ----- storage
  std::string prefix;         // store key prefix: prefix + [ns "/"] name; "" = not stored
  std::string status_prefix;  // kObserved: where the StoredStatus lives (same key layout)
  StatusSource status = StatusSource::kNone;
  // Kinds the edge runs (pods, nodes, configmaps, secrets) are encoded through decode_object so
  // that the hub can send them; other kinds are stored as their JSON.
  v1::ObjectKind edge_kind = v1::OBJECT_KIND_UNSPECIFIED;
  bool name_is_label = false;      // names are RFC 1123 labels (namespaces), else subdomains
  bool tracks_generation = false;  // metadata.generation counts spec changes
  // DELETE of an object bound to a node (spec.nodeName) sets deletionTimestamp and waits for the
  // edge; the hub removes it (pods).
  bool graceful_delete = false;
  // DELETE refuses while objects of namespaced kinds remain under this name (namespaces).
  bool delete_requires_empty = false;
  // Owners of dependents (workloads): DELETE honours propagationPolicy. Background (the default)
  // removes the object and the garbage collector deletes its dependents; Foreground and Orphan
  // set deletionTimestamp and the finalizer `foregroundDeletion` / `orphan`, and the collector
  // (cloudcore/controllers/workloads_gc.cc) removes the object once it has done its part.
  bool cascades = false;

  // ----- behaviour hooks (all optional)
  // Sets obj["status"] from the observed status (kObserved; null when none is stored) or from
  // the object alone (kRendered).
  std::function<void(nlohmann::json& obj, const v1::StoredStatus* observed)> render_status;
  // On create and update, before storage: normalise (Secret stringData -> data) or refuse; the
  // Status message becomes a 422 Invalid.
  std::function<common::Status(nlohmann::json& obj)> prepare;
  // On update: refuse a change Kubernetes forbids (immutable fields); 422 Invalid.
  std::function<common::Status(const nlohmann::json& old_obj, const nlohmann::json& new_obj)>
      validate_update;
  // kObserved: how a write to the /status subresource folds a Kubernetes `status` into the
  // StoredStatus (fields it cannot represent are left as they are); an error becomes a 422.
  std::function<common::Status(const nlohmann::json& status, v1::StoredStatus& observed)>
      write_status;
  // DELETE answers the object as it was (true: pods, as kube-apiserver) or a Status naming it.
  bool delete_returns_object = false;
  // Warning headers for accepted objects (fields the edge does not honour).
  std::function<std::vector<std::string>(const nlohmann::json& obj)> warnings;
  // On create (old == nullptr) and update, after `prepare`: field errors, answered as a 422
  // Invalid with details.causes (validation.h's FieldErrors).
  std::function<std::vector<FieldError>(const nlohmann::json& obj, const nlohmann::json* old)>
      validate;
  // On create and update, last before storage: rules that need other stored objects (a
  // Rollout's target must exist, one Rollout per target). A refusal is answered as it is.
  std::function<std::optional<Refusal>(const nlohmann::json& obj, const nlohmann::json* old,
                                       const StoredLookup& lookup)>
      admit;
  // A second version of a stored kind (events.k8s.io/v1 Event over the stored core v1 Event):
  // the object as this version serves it, last step of every read (kind, apiVersion,
  // resourceVersion and status already set). `prepare` converts back before storage.
  std::function<void(nlohmann::json& obj)> to_external;
  // On create only, before `prepare`: rules for new objects of this version (events.k8s.io/v1
  // requires eventTime, reportingController, ...); the Status message becomes a 422 Invalid.
  std::function<common::Status(const nlohmann::json& obj)> validate_create;
  // The object's province for kBoundNode scope is resolved by the server (registry lookup).

  // ----- derived
  std::string api_version() const { return group.empty() ? version : group + "/" + version; }
  std::string list_kind() const { return kind + "List"; }
  bool allows(Verbs v) const { return (verbs & v) == v; }
  const Subresource* subresource(std::string_view name) const;
  // Store keys: "/pods/default/web", "/nodes/n1"; list prefix "/pods/default/" or "/pods/".
  std::string key(std::string_view ns, std::string_view name) const;
  std::string status_key(std::string_view ns, std::string_view name) const;
  std::string list_prefix(std::string_view ns) const;
  // Every field selector the kind accepts.
  std::vector<std::string> field_selectors() const;
  // The columns the table uses (the default Name, Age when `columns` is empty).
  const std::vector<TableColumn>& table_columns() const;
};

// The set of kinds a server serves. Pointers to kinds stay valid for the registry's lifetime.
class KindRegistry {
 public:
  // Fails (kAlreadyExists) when the group already has a kind of that plural or Kind name.
  common::Status add(Kind kind);

  const Kind* find(std::string_view group, std::string_view version, std::string_view plural) const;
  const std::vector<std::unique_ptr<Kind>>& all() const { return kinds_; }
  // Kinds of one group/version, in registration order.
  std::vector<const Kind*> of(std::string_view group, std::string_view version) const;
  // Non-core groups, in registration order, with their versions.
  struct Group {
    std::string name;
    std::vector<std::string> versions;  // the first is preferred
  };
  std::vector<Group> groups() const;

 private:
  std::vector<std::unique_ptr<Kind>> kinds_;
};

// The kinds cloudcore serves (cloudcore/api/kinds/*.cc), built once.
const KindRegistry& builtin_kinds();

// Helpers for kind files.
TableColumn name_column();
TableColumn age_column();

}  // namespace gantry::cloud::api
