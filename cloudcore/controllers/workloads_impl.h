// WorkloadControllers::Impl, shared by workloads.cc (cache, queue, worker, store writes) and the
// per-kind reconcile files (workloads_replicaset.cc, ...).
#pragma once

#include <thread>

#include "cloudcore/controllers/rollout_json.h"
#include "cloudcore/controllers/rollout_plan.h"
#include "cloudcore/controllers/workloads_internal.h"

namespace gantry::cloud::controllers {

struct WorkloadControllers::Impl {
  Store& store;
  WorkloadOptions options;
  const ControllerClock& clock;
  WorkloadStats stats;
  WorkQueue queue;
  std::unique_ptr<Informer> informer;
  std::thread worker;

  // ----- the cache (guarded by `mu`; fed by the informer's handler)
  mutable std::mutex mu;
  std::unordered_map<std::string, PodRec> pods;                // by store key
  std::unordered_map<std::string, PodStatusRec> pod_status;    // by pod store key
  std::unordered_map<std::string, NodeStatusRec> node_status;  // by node name
  std::map<std::string, NodeState> nodes;  // by node name: labels, taints, cordon
  std::unordered_map<std::string, std::set<std::string>> dependents;  // owner uid -> keys
  std::unordered_map<std::string, std::set<std::string>> orphans;     // ns -> pod keys
  std::unordered_map<std::string, std::set<std::string>> pods_on_node;
  std::map<std::string, ObjRec> objs[kWKinds];          // by store key
  std::unordered_map<std::string, std::string> by_uid;  // workload uid -> store key
  // Expectations: a reconcile of this queue key wrote pods at this revision; it waits until the
  // pods watch has delivered it.
  std::unordered_map<std::string, Revision> expect;  // worker thread only

  Impl(Store& s, WorkloadOptions o);

  // cache maintenance (informer thread)
  void on_changes(const std::vector<Change>& changes, bool resync);
  void apply_pod(const std::string& key, const KeyValue* kv);
  void apply_pod_status(const std::string& key, const KeyValue* kv);
  void apply_node(const std::string& key, const KeyValue* kv);
  void apply_node_status(const std::string& key, const KeyValue* kv);
  void apply_obj(WKind kind, const std::string& key, const KeyValue* kv);
  void enqueue_owner_of(const PodRec& p);
  void enqueue_orphan_claimers(const std::string& ns,
                               const std::map<std::string, std::string>& labels);
  void enqueue_all(WKind kind);
  void index_dependent(const std::string& key, const std::string& old_ctrl,
                       const std::vector<OwnerRef>& old_owners,
                       const std::vector<OwnerRef>& owners);

  // worker
  void run();
  void process(const std::string& qkey);
  // Each returns ok, or an error (the key is retried with back-off).
  Status reconcile_replicaset(const std::string& qkey, const std::string& key);
  Status reconcile_deployment(const std::string& qkey, const std::string& key);
  Status reconcile_daemonset(const std::string& qkey, const std::string& key);
  Status collect(const std::string& qkey, const std::string& key);
  Status reconcile_rollout(const std::string& qkey, const std::string& key);
  Status reconcile_job(const std::string& qkey, const std::string& key);
  Status reconcile_cronjob(const std::string& qkey, const std::string& key);
  // Jobs (workloads_job.cc; worker thread): per Job store key, the failures last seen and when
  // the count last grew, for the delay before a failed pod is replaced.
  struct JobBackoff {
    int64_t failed = 0;
    int64_t since_ms = 0;
  };
  std::unordered_map<std::string, JobBackoff> job_backoff;

  // ----- rollouts (rollout_controller.cc; under `mu`)
  // Target store key ("/daemonsets/NS/NAME") -> the Rollouts naming it.
  std::map<std::string, std::set<std::string>> rollouts_by_target;
  std::map<std::string, std::string> target_of_rollout;
  // Re-indexes a Rollout (`obj` null: removed) and queues the workloads it concerns.
  void index_rollout(const std::string& key, const json* obj);
  // The Rollout that controls a target: the oldest of those naming it (a second one, which the
  // API refuses but a race could let in, waits with a condition).
  std::optional<std::string> controlling_rollout_locked(const std::string& target_key) const;
  // The target DaemonSet's nodes as the rollout plan sees them.
  std::vector<rollout::NodeInfo> daemonset_fleet_locked(const ObjRec& ds) const;
  // A target Deployment's replicas as the plan sees them: `spec.replicas` slots, filled with the
  // Deployment's pods (the update revision's in the order the steps take slots, seeded as the
  // Rollout's plan), so a step of p % lets p % of the replicas run the update.
  std::vector<rollout::NodeInfo> deployment_fleet_locked(const ObjRec& d,
                                                         std::string_view seed) const;
  std::vector<rollout::NodeInfo> target_fleet_locked(WKind kind, const ObjRec& target,
                                                     std::string_view seed) const;
  // The ImagePullJobs Rollouts made for their steps' pre-pulls (labelled with the Rollout's
  // name): Rollout store key -> job store key -> the job. A change queues the Rollout.
  std::map<std::string, std::map<std::string, json>> pre_pull_jobs;
  std::map<std::string, std::string> rollout_of_pre_pull;  // job store key -> Rollout store key
  void apply_pre_pull_job(const std::string& key, const KeyValue* kv);
  // Creates the ImagePullJob of `order` for the run of `revision` (and deletes those of the
  // Rollout's earlier runs).
  Status start_pre_pull(const ObjRec& ro, const json& tmpl, const std::string& revision,
                        const rollout::PrePullOrder& order,
                        const std::map<std::string, json>& jobs);

  // Copies, under `mu`, what a reconcile needs about pods.
  PodView view_locked(const PodRec& p) const;
  bool pods_seen(const std::string& qkey) const;

  // ----- store writes (worker thread)
  // A pod from `tmpl` (a PodTemplateSpec) owned by the given controller; `node` binds it.
  Result<Revision> create_pods(const std::string& ns, const json& tmpl,
                               const std::string& base_name, const json& owner_ref, size_t count,
                               const std::map<std::string, std::string>& extra_labels,
                               const std::string& node = "");
  // Deletes gracefully when bound (deletionTimestamp; the edge stops it and the hub removes it),
  // at once when not.
  Result<Revision> delete_pod(const PodRec& p);
  // In place (inplace.cc): the pod takes `new_template`'s images and `set_labels`, is marked with
  // the revision, and keeps its name, uid and node.
  Result<Revision> update_pod_in_place(const PodRec& p, const json& new_template,
                                       const std::map<std::string, std::string>& set_labels,
                                       const std::string& revision);
  // Rewrites a pod's JSON (ownerReferences changes); expects its cached revision.
  Result<Revision> rewrite_pod(const PodRec& p, const std::function<void(json&)>& edit);
  // Writes obj["status"] of a workload if it differs from `old_status`.
  Status write_status(const ObjRec& rec, const json& status);
  Result<Revision> put_object(const std::string& key, const json& obj,
                              std::optional<Revision> expect);
};

std::string queue_key(WKind kind, const std::string& key);

}  // namespace gantry::cloud::controllers
