#include "edgecore/pods/pod_status.h"

namespace gantry::edge {
namespace {

int64_t seconds(int64_t ns) {
  return ns / 1'000'000'000;
}

void terminated(const ContainerStatus& s, v1::ContainerState& out) {
  auto* t = out.mutable_terminated();
  t->set_exit_code(s.exit_code);
  std::string reason = s.reason;
  if (reason.empty()) reason = s.exit_code == 0 ? "Completed" : "Error";
  t->set_reason(reason);
  if (!s.message.empty()) t->set_message(s.message);
  t->set_started_at(seconds(s.started_at_ns));
  t->set_finished_at(seconds(s.finished_at_ns));
}

bool running(const std::optional<ContainerStatus>& s) {
  return s && s->info.state == ContainerState::kRunning;
}
bool exited(const std::optional<ContainerStatus>& s) {
  return s && s->info.state == ContainerState::kExited;
}

bool container_ready(const ContainerObservation& c) {
  return running(c.current);
}

}  // namespace

bool pod_ready(const PodObservation& o) {
  if (o.containers.empty()) return false;
  for (const auto& c : o.containers) {
    if (!container_ready(c)) return false;
  }
  return true;
}

v1::PodStatus pod_status(const PodObservation& o) {
  v1::PodStatus out;
  int waiting = 0, run = 0, stopped = 0, succeeded = 0, failed = 0;
  for (const auto& c : o.containers) {
    auto* cs = out.add_containers();
    cs->set_name(c.name);
    cs->set_image(c.image);
    cs->set_restart_count(static_cast<int32_t>(c.restart_count));
    cs->set_ready(container_ready(c));
    if (c.current && !c.current->info.image_ref.empty())
      cs->set_image_id(c.current->info.image_ref);
    else
      cs->set_image_id("");
    v1::ContainerState state;
    v1::ContainerState last;
    bool has_last = false;
    if (c.previous && c.previous->info.state == ContainerState::kExited) {
      terminated(*c.previous, last);
      has_last = true;
    }
    if (running(c.current)) {
      ++run;
      if (c.waiting) {
        state.mutable_waiting()->set_reason(c.waiting->reason);
        state.mutable_waiting()->set_message(c.waiting->message);
      } else {
        state.mutable_running()->set_started_at(seconds(c.current->started_at_ns));
      }
    } else if (c.waiting) {
      state.mutable_waiting()->set_reason(c.waiting->reason);
      if (!c.waiting->message.empty()) state.mutable_waiting()->set_message(c.waiting->message);
      if (exited(c.current)) {  // held back after it ended: the end is its last state
        terminated(*c.current, last);
        has_last = true;
      }
      if (has_last) {
        ++stopped;
        (last.terminated().exit_code() == 0 ? succeeded : failed) += 1;
      } else {
        ++waiting;
      }
    } else if (exited(c.current)) {
      terminated(*c.current, state);
      ++stopped;
      (c.current->exit_code == 0 ? succeeded : failed) += 1;
    } else {
      state.mutable_waiting()->set_reason("ContainerCreating");
      ++waiting;
    }
    *cs->mutable_state() = state;
    if (has_last) *cs->mutable_last_state() = last;
  }

  v1::PodPhase phase = v1::POD_PHASE_PENDING;
  if (o.init_failed) {
    phase = v1::POD_PHASE_FAILED;
  } else if (waiting > 0 || o.containers.empty()) {
    phase = v1::POD_PHASE_PENDING;
  } else if (run > 0) {
    phase = v1::POD_PHASE_RUNNING;
  } else if (stopped > 0) {
    switch (o.restart_policy) {
      case v1::RESTART_POLICY_ALWAYS:
        phase = v1::POD_PHASE_RUNNING;
        break;
      case v1::RESTART_POLICY_NEVER:
        phase = failed > 0 ? v1::POD_PHASE_FAILED : v1::POD_PHASE_SUCCEEDED;
        break;
      default:
        phase = failed > 0 ? v1::POD_PHASE_RUNNING : v1::POD_PHASE_SUCCEEDED;
    }
  }
  out.set_phase(phase);
  out.set_ready(pod_ready(o));
  out.set_pod_ip(o.pod_ip);
  if (o.start_time > 0) out.set_start_time(o.start_time);
  if (o.ready_since > 0) out.set_ready_since(o.ready_since);
  out.set_reason(o.reason);
  out.set_message(o.message);
  return out;
}

}  // namespace gantry::edge
