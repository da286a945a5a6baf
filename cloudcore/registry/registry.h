// Typed, indexed in-memory view of the objects in cloudcore's store, fed by a store watch: pods
// by node, the configmaps and secrets each node's pods refer to, nodes by province, and the
// deletions each node still has to hear about. Dispatch and the API read it; nothing scans the
// whole store.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cloudcore/store/store.h"
#include "gantry/v1/objects.pb.h"
#include "gantry/v1/tunnel.pb.h"

namespace gantry::cloud {

using ObjectPtr = std::shared_ptr<const v1::Object>;  // revision set to the object's mod revision

// What a node has to apply to catch up: objects to upsert, objects to delete, and the revision
// it is at once it has applied them.
struct NodeChanges {
  Revision revision = 0;
  std::vector<ObjectPtr> upserts;
  std::vector<v1::ObjectRef> deletes;
  bool empty() const { return upserts.empty() && deletes.empty(); }
};

struct Resume {
  v1::ResumeMode mode = v1::RESUME_MODE_SNAPSHOT;
  NodeChanges changes;
};

// Told of every later change that concerns its node. Called on the registry's watch thread with
// the registry locked: hand the work to your own thread (post) and return; never call back into
// the registry from here.
class NodeListener {
 public:
  virtual ~NodeListener() = default;
  virtual void on_node_changes(const NodeChanges& changes) = 0;
};

struct PodInfo {
  std::string node;
  std::string uid;
  bool terminating = false;
  Revision mod_revision = 0;
};

struct NodeInfo {
  std::map<std::string, std::string> labels;
  std::string province;  // label topology.gantry.io/province
  Revision mod_revision = 0;
};

inline constexpr const char* kProvinceLabel = "topology.gantry.io/province";

class Registry {
 public:
  class Subscription {
   public:
    virtual ~Subscription() = default;
  };

  // Loads the store at its current revision, rebuilds the deletions still inside the store's
  // history, and follows the store from there.
  static common::Result<std::unique_ptr<Registry>> start(Store& store);
  ~Registry();

  // Registers `listener` for `node` and, atomically with it, computes what the node needs given
  // that it has applied everything up to `since`: incremental when `since` is within the history
  // the registry knows, a snapshot otherwise (since = 0, too old, or ahead of this store).
  [[nodiscard]] std::pair<Resume, std::unique_ptr<Subscription>> subscribe(const std::string& node,
                                                                           Revision since,
                                                                           NodeListener* listener);

  Revision revision() const;
  // Deletions older than this are forgotten: a node behind it gets a snapshot.
  Revision horizon() const;

  std::optional<PodInfo> pod(const std::string& ns, const std::string& name) const;
  std::optional<NodeInfo> node(const std::string& name) const;
  std::vector<std::string> node_names() const;
  std::vector<std::string> nodes_in_province(const std::string& province) const;
  size_t node_count() const;
  size_t pod_count() const;
  size_t pods_on_node(const std::string& node) const;

  // Forget deletions at or below `revision` (called when the store compacts its history).
  void trim_history(Revision revision);

 private:
  struct Impl;
  explicit Registry(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace gantry::cloud
