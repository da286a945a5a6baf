// A pod's trimmed status (DESIGN.md section 4) from what the pod worker observed in the runtime.
// Pure: the phase, readiness and container states follow the kubelet's rules, so that kubectl
// shows what an operator knows from Kubernetes (Running, CrashLoopBackOff, ImagePullBackOff...).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "edgecore/runtime/runtime.h"
#include "gantry/v1/objects.pb.h"

namespace gantry::edge {

struct Waiting {
  std::string reason;  // CrashLoopBackOff, ImagePullBackOff, ErrImagePull, ContainerCreating, ...
  std::string message;
};

struct ContainerObservation {
  std::string name;
  std::string image;                        // as the manifest names it
  std::optional<ContainerStatus> current;   // the latest attempt in the runtime
  std::optional<ContainerStatus> previous;  // the attempt before it (last state)
  uint32_t restart_count = 0;
  // Set while the worker holds the container back or replaces it. With a running `current`
  // (a new image that cannot be pulled while the old container keeps serving) the container
  // shows the waiting reason and stays ready.
  std::optional<Waiting> waiting;
};

struct PodObservation {
  v1::RestartPolicy restart_policy = v1::RESTART_POLICY_ALWAYS;
  std::string pod_ip;
  int64_t start_time = 0;   // Unix seconds
  int64_t ready_since = 0;  // Unix seconds of the last change of readiness
  std::vector<ContainerObservation> containers;
  std::string reason;  // pod level, e.g. why no sandbox could be made
  std::string message;
  bool init_failed = false;  // an init container failed and will not be retried (Never): Failed
};

v1::PodStatus pod_status(const PodObservation& observation);
// Whether every container of the observation is ready (the pod's Ready condition).
bool pod_ready(const PodObservation& observation);

}  // namespace gantry::edge
