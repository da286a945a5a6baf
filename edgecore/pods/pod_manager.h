// The pod workers: make the runtime match the cached desired pods, with or without the cloud.
//
// One worker thread per pod (by uid), as in the kubelet: a slow image pull or a graceful stop of
// one pod never holds up another. A relist thread asks the runtime every `relist_interval` for
// the sandboxes and containers edgecore manages (two list calls for the whole node), wakes the
// workers whose containers changed, and hands pods found in the runtime but no longer desired to
// a worker that removes them. Everything a worker needs to know about what it started lives in
// the runtime (labels and annotations on sandboxes and containers), so a restarted edgecore adopts
// running containers instead of restarting them.
//
// Stopping the manager (edgecore shutting down) leaves every container running: pods on an edge
// node outlive their agent.
#pragma once

#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/base/status.h"
#include "edgecore/meta/meta_store.h"
#include "edgecore/runtime/runtime.h"
#include "edgecore/status/event_outbox.h"
#include "edgecore/status/node_probe.h"
#include "edgecore/status/status_tracker.h"

namespace gantry::edge {

struct PodManagerOptions {
  std::filesystem::path data_dir;  // pods/<uid>/volumes, logs/<ns>_<name>_<uid>
  std::string node_name;
  std::string host_ip;  // the pod IP of host-network pods
  std::chrono::milliseconds relist_interval{std::chrono::seconds(1)};
  std::chrono::milliseconds resync_interval{std::chrono::seconds(30)};
  // Restart back-off of a container that keeps ending (kubelet: 10 s doubling to 5 min, reset
  // after the container ran for 10 min).
  std::chrono::milliseconds crash_backoff_base{std::chrono::seconds(10)};
  std::chrono::milliseconds crash_backoff_cap{std::chrono::minutes(5)};
  std::chrono::milliseconds backoff_reset{std::chrono::minutes(10)};
  // Image pull back-off (ErrImagePull, then ImagePullBackOff).
  std::chrono::milliseconds pull_backoff_base{std::chrono::seconds(10)};
  std::chrono::milliseconds pull_backoff_cap{std::chrono::minutes(5)};
  // Called (from the relist thread, no lock held) when the runtime's readiness or version
  // changes, so that the node's status says so at once rather than at the next probe.
  std::function<void()> on_runtime_change;
  // Gets the pods' events as the kubelet records them (Pulling, Pulled, Failed, Created, Started,
  // Killing, BackOff, FailedMount, ...), with its reasons and messages; edgecore wires the
  // EventOutbox here. Called on the pod workers' threads. Unset: no events.
  std::function<void(EdgeEventRecord)> on_event;
  // stop() cancels the runtime's calls in flight (the runtime is not used after it).
  bool cancel_runtime_on_stop = true;
};

struct PodManagerStats {
  uint64_t sandboxes_started = 0;
  uint64_t containers_started = 0;
  uint64_t containers_restarted = 0;  // restart policy
  uint64_t containers_replaced = 0;   // spec (image) changed
  uint64_t containers_adopted = 0;    // found running after an edgecore restart
  uint64_t images_pulled = 0;
  uint64_t image_pull_failures = 0;
  uint64_t pods_removed = 0;
  // How long the last replacement left the container down: old stopped -> new started.
  std::chrono::milliseconds last_replace_interruption{0};
  size_t workers = 0;
};

// Where `kubectl logs` reads from.
struct ContainerLog {
  std::string path;
  bool running = false;
};

class PodManager {
 public:
  // `meta`, `tracker` and `runtime` must outlive the manager.
  PodManager(MetaStore& meta, StatusTracker& tracker, Runtime& runtime, PodManagerOptions options);
  ~PodManager();
  PodManager(const PodManager&) = delete;
  PodManager& operator=(const PodManager&) = delete;

  // Starts the relist thread and a worker for every cached pod. Returns at once.
  void start();
  // Stops the threads; containers keep running. Idempotent.
  void stop();

  // The runtime as the relist last saw it (for the node's RuntimeUnavailable condition).
  RuntimeView runtime_view() const;
  PodManagerStats stats() const;

  // The CRI log file of a container of a cached pod: the latest attempt, or with `previous` the
  // one before it. kNotFound with a message for kubectl when there is none.
  common::Result<ContainerLog> locate_log(const std::string& ns, const std::string& pod,
                                          const std::string& container, bool previous);

  // The ID of a running container of a cached pod (kubectl exec / attach). kNotFound for a pod
  // or container that is not here, kFailedPrecondition "container \"x\" in pod \"p\" is not
  // running" otherwise.
  common::Result<std::string> running_container(const std::string& ns, const std::string& pod,
                                                const std::string& container);

  struct Worker;

 private:
  // The runtime's attempts of a container of a cached pod, newest first (kNotFound: no such pod).
  common::Result<std::vector<ContainerInfo>> container_attempts(const std::string& ns,
                                                                const std::string& pod,
                                                                const std::string& container);
  void relist_loop();
  void relist();
  void on_cache_change(const ObjectChange& change);
  void apply_cache_change(const std::vector<v1::ObjectRef>& changed, bool replaced_all);
  void set_desired(const std::string& uid, std::optional<v1::Object> desired, const std::string& ns,
                   const std::string& name);
  void run_worker(Worker& worker);
  std::optional<v1::ConfigData> lookup_config(v1::ObjectKind kind, const std::string& ns,
                                              const std::string& name) const;

  MetaStore& meta_;
  StatusTracker& tracker_;
  Runtime& runtime_;
  PodManagerOptions options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool started_ = false;
  std::vector<v1::ObjectRef> pending_changes_;
  bool pending_replace_all_ = false;
  std::map<std::string, std::unique_ptr<Worker>> workers_;  // by pod uid
  std::map<std::string, std::string> fingerprints_;         // by pod uid: runtime state seen
  RuntimeView runtime_view_;
  PodManagerStats stats_;

  MetaStore::ObserverHandle observer_;
  std::thread relist_thread_;

  friend class PodSync;
};

}  // namespace gantry::edge
