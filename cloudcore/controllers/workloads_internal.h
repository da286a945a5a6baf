// Internals shared by the workload controllers' files (workloads*.cc): the typed cache the
// informer feeds, and the helpers every reconcile uses. Not for other components.
#pragma once

#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "cloudcore/controllers/informer.h"
#include "cloudcore/controllers/scheduling.h"
#include "cloudcore/controllers/workloads.h"
#include "gantry/v1/objects.pb.h"

namespace gantry::cloud::controllers {

using json = nlohmann::json;

struct OwnerRef {
  std::string api_version;
  std::string kind;
  std::string name;
  std::string uid;
  bool controller = false;
};

enum class WKind {
  kReplicaSet,
  kDeployment,
  kDaemonSet,
  kControllerRevision,
  kRollout,
  kJob,
  kCronJob
};
inline constexpr int kWKinds = 7;

struct PodRec {
  std::string key, ns, name, uid;
  Revision mod_revision = 0;
  std::map<std::string, std::string> labels;
  std::string node;
  bool terminating = false;
  int64_t created_ms = 0;
  // When it got its current revision: created_ms, or the time of its last in-place update.
  int64_t revised_ms = 0;
  std::vector<OwnerRef> owners;
  std::string controller_uid;                 // "" when no owner has controller: true
  std::string json;                           // the stored Kubernetes JSON
  std::map<std::string, std::string> images;  // container name -> image, as the spec says
};

struct PodStatusRec {
  v1::PodPhase phase = v1::POD_PHASE_UNSPECIFIED;
  bool ready = false;
  int64_t ready_since = 0;
  // container name -> image the edge runs (empty when the edge does not say)
  std::map<std::string, std::string> images;
  // Why the pod cannot run (a container waiting in CrashLoopBackOff, ErrImagePull, ...; "Failed"
  // for a failed pod), "" when nothing is wrong. Rollouts count these as failures.
  std::string failure;
  int64_t restarts =
      0;  // the containers' restart counts, summed (a Job with OnFailure counts them)
};

struct NodeStatusRec {
  bool unreachable = false;
  int64_t unreachable_since = 0;
};

struct ObjRec {
  std::string key, ns, name, uid;
  Revision mod_revision = 0;
  json obj;
  std::vector<OwnerRef> owners;
  std::string controller_uid;
  bool deleting = false;  // metadata.deletionTimestamp set
};

// What a reconcile knows about one pod, copied out of the cache.
struct PodView {
  const PodRec* pod = nullptr;
  std::optional<PodStatusRec> status;
  bool node_unreachable = false;
  int64_t unreachable_since = 0;
  bool active() const {
    if (pod->terminating) return false;
    if (status &&
        (status->phase == v1::POD_PHASE_SUCCEEDED || status->phase == v1::POD_PHASE_FAILED))
      return false;
    return true;
  }
  bool ready() const {
    return status && status->ready && status->phase == v1::POD_PHASE_RUNNING && images_current();
  }
  // False while a container still runs another image than the spec names (an in-place update
  // the edge has not finished, or whose new image it could not pull).
  bool images_current() const {
    if (!status) return false;
    for (const auto& [name, image] : pod->images) {
      auto it = status->images.find(name);
      if (it != status->images.end() && !it->second.empty() && it->second != image) return false;
    }
    return true;
  }
  bool available(int64_t min_ready_seconds, int64_t now_ms) const {
    if (!ready()) return false;
    if (min_ready_seconds <= 0) return true;
    return status->ready_since > 0 && status->ready_since + min_ready_seconds * 1000 <= now_ms;
  }
};

// ----- helpers (workloads_util.cc)

std::vector<OwnerRef> owners_of(const json& obj);
const OwnerRef* controller_of(const std::vector<OwnerRef>& owners);
json owner_ref_json(const std::string& kind, const std::string& name, const std::string& uid);
// metav1.LabelSelector (matchLabels, matchExpressions). An empty or missing selector matches
// nothing (apps/v1 refuses it; a controller must never claim every pod of a namespace).
bool selector_matches(const json& selector, const std::map<std::string, std::string>& labels);
std::map<std::string, std::string> string_map(const json& obj);
std::string rfc3339_ms(int64_t unix_ms);
std::optional<int64_t> parse_rfc3339_ms(const std::string& text);
std::string random_suffix(size_t n = 5);
std::string random_uid();
// The seconds of kReplaceUnreachableAfter on `obj`, nullopt when absent or not a number.
std::optional<int64_t> replace_unreachable_after(const json& obj);
// Conditions: sets (or replaces) the condition of `type`, keeping lastTransitionTime when the
// status did not change.
void set_condition(json& status, const std::string& type, const std::string& value,
                   const std::string& reason, const std::string& message, int64_t now_ms);
const json* find_condition(const json& status, const std::string& type);
// The stored JSON of a key (StoredObject.json), nullopt when the value does not parse.
std::optional<std::string> stored_json(const std::string& value);

// gantry.io/v1 ImagePullJob (controllers/imagepull.h); the Rollout's pre-pulls make them.
inline constexpr std::string_view kPrePullJobsPrefix = "/imagepulljobs/";
inline constexpr const char* kRolloutNameLabel = "rollout.gantry.io/name";
inline constexpr const char* kRolloutRevisionLabel = "rollout.gantry.io/revision";
inline constexpr const char* kRolloutStepLabel = "rollout.gantry.io/step";

// ----- Deployments (workloads_deployment.cc), shared with the Rollout controller

inline constexpr const char* kPodTemplateHash = "pod-template-hash";
// The revision (pod-template-hash) of a Deployment's pod template.
std::string deployment_revision(const json& tmpl);

// ----- DaemonSets (workloads_daemonset.cc), shared with the Rollout controller

// The revision (controller-revision-hash) of a DaemonSet's pod template.
std::string daemonset_revision(const json& tmpl);
// What a DaemonSet's pod asks of a node (its template's selector, affinity, tolerations plus the
// ones Kubernetes gives every DaemonSet pod), and whether `node` should run it.
PodRequest daemonset_pod_request(const json& tmpl);
bool daemonset_should_run(const PodRequest& req, const NodeState& node);

}  // namespace gantry::cloud::controllers
