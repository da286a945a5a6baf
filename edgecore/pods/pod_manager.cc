#include "edgecore/pods/pod_manager.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <future>
#include <set>

#include "edgecore/pods/pod_spec.h"
#include "edgecore/pods/pod_status.h"
#include "edgecore/pods/volumes.h"

namespace gantry::edge {

using common::Code;
using common::make_error;
using std::chrono::milliseconds;
using std::chrono::steady_clock;
using namespace std::chrono_literals;

struct PodManager::Worker {
  std::string uid, ns, name;
  std::mutex mu;
  std::condition_variable cv;
  std::optional<v1::Object> desired;  // nullopt: remove the pod
  bool kicked = true;
  bool stop = false;
  std::atomic<bool> done{false};
  std::thread thread;

  // Owned by the worker thread.
  struct Crash {
    milliseconds delay{0};
    std::string seen;  // id of the ended container the delay was computed for
    steady_clock::time_point restart_at;

    // The container `ended` has ended: the first time it is seen the delay doubles (from `base`,
    // up to `cap`; back to `base` after a run longer than `reset`), as the kubelet's back-off.
    void on_ended(const ContainerStatus& ended, const PodManagerOptions& o,
                  steady_clock::time_point now) {
      if (seen == ended.info.id) return;
      milliseconds ran((ended.finished_at_ns - ended.started_at_ns) / 1'000'000);
      if (ran > o.backoff_reset) delay = milliseconds(0);
      delay = delay.count() == 0 ? o.crash_backoff_base : std::min(o.crash_backoff_cap, delay * 2);
      seen = ended.info.id;
      restart_at = now + delay;
    }
  };
  std::map<std::string, Crash> crashes;  // by container name
  struct Pull {
    milliseconds delay{0};
    steady_clock::time_point retry_at;
    std::string error;
  };
  std::map<std::string, Pull> pulls;  // by image
  int64_t start_time = 0;
  int64_t ready_since = 0;
  std::optional<bool> last_ready;
  std::optional<steady_clock::time_point> wake_at;
  std::string pod_ip;
  bool first_sync = true;  // containers found running now were started by an earlier edgecore
};

namespace {

int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string pod_key(const std::string& ns, const std::string& name) {
  return ns + "/" + name;
}

std::string label(const std::map<std::string, std::string>& labels, const char* key) {
  auto it = labels.find(key);
  return it == labels.end() ? "" : it->second;
}

std::chrono::seconds grace_of(const v1::PodManifest& m) {
  int64_t g = m.terminating() && m.deletion_grace_period_seconds() > 0
                  ? m.deletion_grace_period_seconds()
                  : m.termination_grace_period_seconds();
  if (g <= 0 && !m.terminating()) g = 30;
  return std::chrono::seconds(std::max<int64_t>(g, 0));
}

bool references(const v1::Object& pod, v1::ObjectKind kind, const std::string& name) {
  bool secret = kind == v1::OBJECT_KIND_SECRET;
  for (const auto& v : pod.pod().volumes()) {
    if (!secret && v.has_config_map() && v.config_map().name() == name) return true;
    if (secret && v.has_secret() && v.secret().name() == name) return true;
  }
  for (const auto* list : {&pod.pod().containers(), &pod.pod().init_containers()}) {
    for (const auto& c : *list) {
      for (const auto& e : c.env()) {
        if (!secret && e.has_config_map_key() && e.config_map_key().name() == name) return true;
        if (secret && e.has_secret_key() && e.secret_key().name() == name) return true;
      }
    }
  }
  return false;
}

// As Go prints a time.Duration, the way kubectl users know back-off messages: "10s", "2m40s".
std::string go_duration(milliseconds d) {
  if (d < 1s) return fmt::format("{}ms", d.count());
  auto total = std::chrono::duration_cast<std::chrono::seconds>(d).count();
  if (total < 60) return fmt::format("{}s", total);
  return fmt::format("{}m{}s", total / 60, total % 60);
}

ContainerFilter with_labels(std::map<std::string, std::string> labels,
                            std::string sandbox_id = "") {
  ContainerFilter f;
  f.sandbox_id = std::move(sandbox_id);
  f.labels = std::move(labels);
  return f;
}

}  // namespace

// One pass of a worker over its pod. Holds no lock while it calls the runtime.
class PodSync {
 public:
  PodSync(PodManager& manager, PodManager::Worker& worker)
      : m_(manager), w_(worker), rt_(manager.runtime_), opt_(manager.options_) {}

  // Makes the runtime match `pod`; reports the pod's status.
  void sync(const v1::Object& pod);
  // Stops and removes everything of the worker's pod. False: try again later.
  bool teardown(const std::optional<v1::Object>& pod);

 private:
  template <typename F>
  void stat(F f) {
    std::lock_guard lock(m_.mu_);
    f(m_.stats_);
  }
  // An event about the pod (container "") or one of its containers, as the kubelet words it.
  void event(const std::string& container, bool warning, std::string reason, std::string message) {
    if (!opt_.on_event) return;
    EdgeEventRecord e;
    e.ns = w_.ns;
    e.name = w_.name;
    e.uid = w_.uid;
    e.container = container;
    e.reason = std::move(reason);
    e.warning = warning;
    e.message = std::move(message);
    opt_.on_event(std::move(e));
  }
  void wake_in(milliseconds d) {
    auto t = steady_clock::now() + d;
    if (!w_.wake_at || t < *w_.wake_at) w_.wake_at = t;
  }
  // The image reference to create the container with, pulling it if needed. While a failed pull
  // backs off, the error (reason + message) comes back without pulling again.
  common::Result<std::string> ensure_image(const v1::Container& c, Waiting& why);
  // Images whose "already present" event this pass has recorded (a pass may ask twice); cleared
  // at the start of each pass.
  std::set<std::string> present_reported_;
  // Creates and starts attempt `attempt` of `c` in `sandbox`; the new container's status.
  common::Result<ContainerStatus> start_container(const v1::Object& pod, const v1::Container& c,
                                                  const std::string& sandbox_id,
                                                  const SandboxConfig& sandbox, uint32_t attempt,
                                                  const std::string& image_ref, Waiting& why);
  // The attempts of container `name` in the sandbox: the latest and the one before it (what
  // `kubectl logs --previous` reads); older ones are removed.
  struct Attempts {
    std::optional<ContainerStatus> current, previous;
    uint32_t next = 0;  // the attempt number of the next container
  };
  Attempts attempts_of(const std::vector<ContainerInfo>& all, const std::string& sandbox_id,
                       const std::string& name);
  void remove_sandbox(const SandboxInfo& sandbox, std::chrono::seconds grace);
  // Runs the init containers in order, each to a successful end. True when all are done and the
  // app containers may start; otherwise the app containers of `obs` say what holds them.
  bool run_init_containers(const v1::Object& pod, const std::string& sandbox_id,
                           const SandboxConfig& sandbox, const std::vector<ContainerInfo>& all,
                           PodObservation& obs);
  void stop_all(const std::vector<ContainerInfo>& containers, std::chrono::seconds grace);
  void report(const v1::Object& pod, PodObservation& obs);
  std::optional<v1::ConfigData> lookup(v1::ObjectKind kind, const std::string& ns,
                                       const std::string& name) {
    return m_.lookup_config(kind, ns, name);
  }

  PodManager& m_;
  PodManager::Worker& w_;
  Runtime& rt_;
  const PodManagerOptions& opt_;
};

common::Result<std::string> PodSync::ensure_image(const v1::Container& c, Waiting& why) {
  const std::string& image = c.image();
  auto present = rt_.image_status(image);
  if (!present.ok()) {
    why = {"ErrImagePull", present.status().message()};
    return present.status();
  }
  auto already_present = [&] {
    if (present_reported_.insert(image).second)
      event(c.name(), false, "Pulled",
            fmt::format("Container image \"{}\" already present on machine", image));
    return (*present)->id;
  };
  if (c.image_pull_policy() == v1::PULL_POLICY_NEVER) {
    if (*present) return already_present();
    why = {"ErrImageNeverPull",
           fmt::format("container image \"{}\" is not present with pull policy of Never", image)};
    event(c.name(), true, "ErrImageNeverPull",
          fmt::format("Container image \"{}\" is not present with pull policy of Never", image));
    return make_error(Code::kNotFound, "{}", why.message);
  }
  if (*present && c.image_pull_policy() != v1::PULL_POLICY_ALWAYS) return already_present();

  auto& pull = w_.pulls[image];
  auto now = steady_clock::now();
  if (pull.delay.count() > 0 && now < pull.retry_at) {
    if (*present) return (*present)->id;  // Always, offline: run what the node has
    why = {"ImagePullBackOff", fmt::format("Back-off pulling image \"{}\": {}", image, pull.error)};
    event(c.name(), false, "BackOff", fmt::format("Back-off pulling image \"{}\"", image));
    event(c.name(), true, "Failed", "Error: ImagePullBackOff");
    wake_in(std::chrono::duration_cast<milliseconds>(pull.retry_at - now));
    return make_error(Code::kUnavailable, "{}", why.message);
  }
  spdlog::info("pod {}/{}: pulling image {}", w_.ns, w_.name, image);
  event(c.name(), false, "Pulling", fmt::format("Pulling image \"{}\"", image));
  auto started = steady_clock::now();
  auto ref = rt_.pull_image(image);
  if (ref.ok()) {
    w_.pulls.erase(image);
    stat([](auto& s) { ++s.images_pulled; });
    auto took = std::chrono::duration_cast<milliseconds>(steady_clock::now() - started);
    spdlog::info("pod {}/{}: pulled {} in {} ms", w_.ns, w_.name, image, took.count());
    event(c.name(), false, "Pulled",
          fmt::format("Successfully pulled image \"{}\" in {}", image, go_duration(took)));
    return *ref;
  }
  stat([](auto& s) { ++s.image_pull_failures; });
  bool first_failure = pull.delay.count() == 0;
  pull.delay = pull.delay.count() == 0 ? opt_.pull_backoff_base
                                       : std::min(opt_.pull_backoff_cap, pull.delay * 2);
  pull.retry_at = steady_clock::now() + pull.delay;
  pull.error = ref.status().message();
  wake_in(pull.delay);
  spdlog::warn("pod {}/{}: pulling {} failed (next try in {} s): {}", w_.ns, w_.name, image,
               pull.delay.count() / 1000, pull.error);
  event(c.name(), true, "Failed",
        fmt::format("Failed to pull image \"{}\": {}", image, pull.error));
  if (!*present) event(c.name(), true, "Failed", "Error: ErrImagePull");
  if (*present) return (*present)->id;  // Always, offline: run what the node has
  // As the kubelet: ErrImagePull on the first failure, ImagePullBackOff while it keeps failing.
  if (first_failure) {
    why = {"ErrImagePull", pull.error};
  } else {
    why = {"ImagePullBackOff", fmt::format("Back-off pulling image \"{}\": {}", image, pull.error)};
  }
  return ref.status();
}

PodSync::Attempts PodSync::attempts_of(const std::vector<ContainerInfo>& all,
                                       const std::string& sandbox_id, const std::string& name) {
  std::vector<const ContainerInfo*> mine;
  for (const auto& info : all) {
    if (info.sandbox_id == sandbox_id && label(info.labels, kLabelContainerName) == name) {
      mine.push_back(&info);
    }
  }
  std::sort(mine.begin(), mine.end(),
            [](const auto* a, const auto* b) { return a->attempt > b->attempt; });
  for (size_t k = 2; k < mine.size(); ++k) (void)rt_.remove_container(mine[k]->id);
  Attempts out;
  if (mine.empty()) return out;
  out.next = mine[0]->attempt + 1;
  if (auto cur = rt_.container_status(mine[0]->id); cur.ok()) out.current = *cur;
  if (mine.size() > 1) {
    if (auto prev = rt_.container_status(mine[1]->id); prev.ok()) out.previous = *prev;
  }
  return out;
}

common::Result<ContainerStatus> PodSync::start_container(
    const v1::Object& pod, const v1::Container& c, const std::string& sandbox_id,
    const SandboxConfig& sandbox, uint32_t attempt, const std::string& image_ref, Waiting& why) {
  auto config = make_container_config(
      pod, c, pod_paths(opt_.data_dir, pod), attempt, image_ref,
      [this](auto k, const auto& n, const auto& s) { return lookup(k, n, s); });
  if (!config.ok()) {
    why = {"CreateContainerConfigError", config.status().message()};
    event(c.name(), true, "Failed", "Error: " + config.status().message());
    return config.status();
  }
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(sandbox.log_directory) / c.name(), ec);
  auto id = rt_.create_container(sandbox_id, *config, sandbox);
  if (!id.ok()) {
    why = {"CreateContainerError", id.status().message()};
    event(c.name(), true, "Failed", "Error: " + id.status().message());
    return id.status();
  }
  event(c.name(), false, "Created", fmt::format("Created container {}", c.name()));
  if (auto s = rt_.start_container(*id); !s.ok()) {
    why = {"RunContainerError", s.message()};
    event(c.name(), true, "Failed", "Error: " + s.message());
    return s;
  }
  event(c.name(), false, "Started", fmt::format("Started container {}", c.name()));
  stat([](auto& st) { ++st.containers_started; });
  auto status = rt_.container_status(*id);
  if (!status.ok()) why = {"ContainerCreating", status.status().message()};  // next pass sees it
  return status;
}

void PodSync::stop_all(const std::vector<ContainerInfo>& containers, std::chrono::seconds grace) {
  // In parallel: each gets the whole grace period, as in Kubernetes.
  std::vector<std::future<void>> stops;
  for (const auto& c : containers) {
    if (c.state != ContainerState::kRunning) continue;
    std::string name = label(c.labels, kLabelContainerName);
    event(name, false, "Killing", fmt::format("Stopping container {}", name));
    stops.push_back(std::async(std::launch::async, [this, id = c.id, grace] {
      if (auto s = rt_.stop_container(id, grace); !s.ok()) {
        spdlog::warn("pod {}/{}: stopping container {}: {}", w_.ns, w_.name, id, s.message());
      }
    }));
  }
  for (auto& f : stops) f.wait();
}

void PodSync::remove_sandbox(const SandboxInfo& sandbox, std::chrono::seconds grace) {
  auto containers = rt_.list_containers(with_labels({}, sandbox.id));
  if (containers.ok()) {
    stop_all(*containers, grace);
    for (const auto& c : *containers) (void)rt_.remove_container(c.id);
  }
  (void)rt_.stop_pod_sandbox(sandbox.id);
  (void)rt_.remove_pod_sandbox(sandbox.id);
}

void PodSync::report(const v1::Object& pod, PodObservation& obs) {
  bool ready = pod_ready(obs);
  if (!w_.last_ready || *w_.last_ready != ready) {
    w_.ready_since = unix_now();
    w_.last_ready = ready;
  }
  obs.ready_since = w_.ready_since;
  obs.start_time = w_.start_time;
  if (auto s = m_.tracker_.report_pod(pod.namespace_(), pod.name(), pod.uid(), pod_status(obs));
      !s.ok()) {
    spdlog::warn("pod {}/{}: status: {}", pod.namespace_(), pod.name(), s.message());
  }
}

void PodSync::sync(const v1::Object& pod) {
  present_reported_.clear();
  const v1::PodManifest& m = pod.pod();
  PodPaths paths = pod_paths(opt_.data_dir, pod);
  PodObservation obs;
  obs.restart_policy = m.restart_policy();
  for (const auto& c : m.containers()) {
    ContainerObservation o;
    o.name = c.name();
    o.image = c.image();
    obs.containers.push_back(std::move(o));
  }

  if (w_.start_time == 0) {
    auto rec = m_.meta_.get_pod_record(pod.uid());
    if (rec.ok() && *rec) w_.start_time = std::atoll((*rec)->c_str());
    if (w_.start_time == 0) {
      w_.start_time = unix_now();
      (void)m_.meta_.put_pod_record(pod.uid(), std::to_string(w_.start_time));
    }
  }

  auto fail_all = [&](const std::string& reason, const std::string& message) {
    for (auto& c : obs.containers) c.waiting = Waiting{reason, message};
    report(pod, obs);
  };

  common::Status volumes = setup_volumes(
      pod, paths, [this](auto k, const auto& n, const auto& s) { return lookup(k, n, s); });
  if (!volumes.ok())
    event("", true, "FailedMount", "MountVolume.SetUp failed: " + volumes.message());

  auto sandboxes = rt_.list_pod_sandboxes({{kLabelPodUid, pod.uid()}});
  if (!sandboxes.ok()) {
    wake_in(2s);
    return;  // the runtime is away: the relist reports it on the node
  }
  std::sort(sandboxes->begin(), sandboxes->end(),
            [](const auto& a, const auto& b) { return a.attempt > b.attempt; });
  std::string want_sandbox = sandbox_hash(pod);
  const SandboxInfo* ready = nullptr;
  for (const auto& s : *sandboxes) {
    if (s.state == SandboxState::kReady &&
        label(s.annotations, kAnnotationSpecHash) == want_sandbox) {
      ready = &s;
      break;
    }
  }
  uint32_t next_sandbox_attempt = sandboxes->empty() ? 0 : sandboxes->front().attempt + 1;

  auto all = rt_.list_containers(with_labels({{kLabelPodUid, pod.uid()}}));
  if (!all.ok()) {
    wake_in(2s);
    return;
  }

  std::string sandbox_id;
  SandboxConfig sandbox_config;
  if (!ready) {
    if (!volumes.ok()) {
      // An unsafe key or path is a bad pod spec (nothing was written); a missing configmap may
      // still come.
      fail_all(volumes.code() == Code::kInvalidArgument ? "CreateContainerConfigError"
                                                        : "ContainerCreating",
               volumes.message());
      wake_in(5s);
      return;
    }
    // Images first, so that a new sandbox replacing an old one costs the pull no downtime.
    for (size_t i = 0; i < static_cast<size_t>(m.containers_size()); ++i) {
      Waiting why;
      if (!ensure_image(m.containers(i), why).ok()) obs.containers[i].waiting = why;
    }
    for (const auto& s : *sandboxes) remove_sandbox(s, grace_of(m));
    sandbox_config = make_sandbox_config(pod, paths, next_sandbox_attempt);
    std::error_code ec;
    std::filesystem::create_directories(paths.log_dir, ec);
    auto id = m_.runtime_.run_pod_sandbox(sandbox_config);
    if (!id.ok()) {
      spdlog::warn("pod {}/{}: cannot start its sandbox: {}", pod.namespace_(), pod.name(),
                   id.status().message());
      event("", true, "FailedCreatePodSandBox",
            "Failed to create pod sandbox: " + id.status().message());
      obs.reason = "SandboxCreateFailed";
      obs.message = id.status().message();
      fail_all("ContainerCreating", id.status().message());
      wake_in(5s);
      return;
    }
    stat([](auto& s) { ++s.sandboxes_started; });
    sandbox_id = *id;
    all->clear();  // the containers of the old sandboxes are gone with them
  } else {
    sandbox_id = ready->id;
    sandbox_config = make_sandbox_config(pod, paths, ready->attempt);
    // Sandboxes that lost to the ready one (an older spec, or dead) go.
    for (const auto& s : *sandboxes) {
      if (s.id != sandbox_id) remove_sandbox(s, grace_of(m));
    }
  }
  if (m.host_network()) {
    obs.pod_ip = opt_.host_ip;
  } else if (w_.pod_ip.empty() || !ready) {
    auto st = rt_.pod_sandbox_status(sandbox_id);
    if (st.ok()) w_.pod_ip = st->ip;
    obs.pod_ip = w_.pod_ip;
  } else {
    obs.pod_ip = w_.pod_ip;
  }

  if (!run_init_containers(pod, sandbox_id, sandbox_config, *all, obs)) {
    w_.first_sync = false;
    report(pod, obs);
    return;
  }

  auto now = steady_clock::now();
  for (size_t i = 0; i < static_cast<size_t>(m.containers_size()); ++i) {
    const v1::Container& c = m.containers(i);
    ContainerObservation& o = obs.containers[i];
    if (o.waiting) continue;  // its image could not be had for the new sandbox

    Attempts attempts = attempts_of(*all, sandbox_id, c.name());
    o.current = attempts.current;
    o.previous = attempts.previous;
    // The status names the image the container runs (Kubernetes' containerStatuses[].image): during
    // an image update it stays the old one until the new container is started, and stays so when
    // the new image cannot be pulled.
    if (o.current) {
      std::string running_image = label(o.current->info.annotations, kAnnotationImage);
      if (!running_image.empty()) o.image = running_image;
    }
    uint32_t attempt = attempts.next;
    o.restart_count = attempt == 0 ? 0 : attempt - 1;
    std::string want = container_hash(c);
    bool matches = o.current && label(o.current->info.annotations, kAnnotationSpecHash) == want;

    auto create = [&](bool replacing) {
      Waiting why;
      auto image = ensure_image(c, why);
      if (!image.ok()) {
        o.waiting = why;
        return false;
      }
      auto down_since = steady_clock::now();
      if (replacing && o.current && o.current->info.state == ContainerState::kRunning) {
        event(c.name(), false, "Killing",
              fmt::format("Container {} definition changed, will be restarted", c.name()));
        if (auto s = rt_.stop_container(o.current->info.id, grace_of(m)); !s.ok()) {
          o.waiting = Waiting{"Terminating", s.message()};
          wake_in(2s);
          return false;
        }
        down_since = steady_clock::now();
      }
      auto started = start_container(pod, c, sandbox_id, sandbox_config, attempt, *image, why);
      if (!started.ok()) {
        o.waiting = why;
        wake_in(5s);
        return false;
      }
      if (replacing) {
        auto gap = std::chrono::duration_cast<milliseconds>(steady_clock::now() - down_since);
        stat([&](auto& s) {
          ++s.containers_replaced;
          s.last_replace_interruption = gap;
        });
        spdlog::info("pod {}/{}: container {} replaced ({}), down for {} ms", pod.namespace_(),
                     pod.name(), c.name(), c.image(), gap.count());
      }
      o.waiting.reset();
      o.image = c.image();
      o.restart_count = attempt;
      if (o.current) o.previous = o.current;
      o.current = *started;
      return true;
    };

    if (!o.current) {
      create(false);
      continue;
    }
    ContainerState state = o.current->info.state;
    if (state == ContainerState::kCreated) {
      if (matches && rt_.start_container(o.current->info.id).ok()) {
        auto cur = rt_.container_status(o.current->info.id);
        if (cur.ok()) o.current = *cur;
      } else {
        (void)rt_.remove_container(o.current->info.id);
        o.current.reset();
        create(false);
      }
      continue;
    }
    if (!matches) {
      // A new spec (a new image, command, ...): the new image is pulled while the old container
      // keeps running, and only then is the old one stopped.
      if (!create(true) && o.waiting && o.current->info.state == ContainerState::kRunning) {
        o.waiting->message += fmt::format(" (the running container with image {} is kept)",
                                          label(o.current->info.annotations, kAnnotationImage));
      }
      continue;
    }
    if (state == ContainerState::kRunning) {
      if (w_.first_sync) {
        stat([](auto& s) { ++s.containers_adopted; });
        spdlog::info("pod {}/{}: adopted running container {}", pod.namespace_(), pod.name(),
                     c.name());
      }
      auto& crash = w_.crashes[c.name()];
      int64_t ran_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count() -
                       o.current->started_at_ns;
      if (crash.delay.count() > 0 && ran_ns > opt_.backoff_reset.count() * 1'000'000) {
        crash = {};
      }
      continue;
    }
    // Ended.
    bool restart =
        m.restart_policy() == v1::RESTART_POLICY_ALWAYS ||
        (m.restart_policy() == v1::RESTART_POLICY_ON_FAILURE && o.current->exit_code != 0);
    if (!restart) continue;
    auto& crash = w_.crashes[c.name()];
    crash.on_ended(*o.current, opt_, now);
    if (now < crash.restart_at) {
      event(c.name(), true, "BackOff",
            fmt::format("Back-off restarting failed container {} in pod {}_{}({})", c.name(),
                        pod.name(), pod.namespace_(), pod.uid()));
      o.waiting = Waiting{
          "CrashLoopBackOff",
          fmt::format("back-off {} restarting failed container={} pod={}_{}({})",
                      go_duration(crash.delay), c.name(), pod.name(), pod.namespace_(), pod.uid())};
      wake_in(std::chrono::duration_cast<milliseconds>(crash.restart_at - now));
      continue;
    }
    if (create(false)) {
      stat([](auto& s) { ++s.containers_restarted; });
    }
  }
  if (!volumes.ok()) {
    obs.reason = "VolumeSetupFailed";
    obs.message = volumes.message();
    wake_in(5s);
  }
  w_.first_sync = false;
  report(pod, obs);
}

bool PodSync::run_init_containers(const v1::Object& pod, const std::string& sandbox_id,
                                  const SandboxConfig& sandbox,
                                  const std::vector<ContainerInfo>& all, PodObservation& obs) {
  const v1::PodManifest& m = pod.pod();
  const int count = m.init_containers_size();
  auto hold = [&](const std::string& reason, const std::string& message) {
    for (auto& o : obs.containers) {
      if (!o.waiting) o.waiting = Waiting{reason, message};
    }
    return false;
  };
  for (int i = 0; i < count; ++i) {
    const v1::Container& c = m.init_containers(i);
    const std::string progress = fmt::format("Init:{}/{}", i, count);
    Attempts attempts = attempts_of(all, sandbox_id, c.name());
    const std::optional<ContainerStatus>& cur = attempts.current;
    uint32_t attempt = attempts.next;
    auto start = [&] {
      Waiting why;
      auto image = ensure_image(c, why);
      if (image.ok() && start_container(pod, c, sandbox_id, sandbox, attempt, *image, why).ok()) {
        return hold("PodInitializing", fmt::format("init container {} is running", c.name()));
      }
      wake_in(5s);
      return hold("Init:" + why.reason,
                  fmt::format("init container {}: {}", c.name(), why.message));
    };
    if (!cur) return start();
    if (cur->info.state == ContainerState::kRunning ||
        cur->info.state == ContainerState::kCreated) {
      if (cur->info.state == ContainerState::kCreated) (void)rt_.start_container(cur->info.id);
      return hold("PodInitializing",
                  fmt::format("waiting for init container {} ({})", c.name(), progress));
    }
    if (cur->exit_code == 0) continue;  // done
    // It failed: the pod's restart policy decides (Always and OnFailure retry, with back-off).
    if (m.restart_policy() == v1::RESTART_POLICY_NEVER) {
      obs.init_failed = true;
      obs.reason = "InitContainerFailed";
      obs.message = fmt::format("init container {} exited with {}", c.name(), cur->exit_code);
      return hold("Init:Error", obs.message);
    }
    auto& crash = w_.crashes["init/" + c.name()];
    auto now = steady_clock::now();
    crash.on_ended(*cur, opt_, now);
    if (now < crash.restart_at) {
      event(c.name(), true, "BackOff",
            fmt::format("Back-off restarting failed container {} in pod {}_{}({})", c.name(),
                        pod.name(), pod.namespace_(), pod.uid()));
      wake_in(std::chrono::duration_cast<milliseconds>(crash.restart_at - now));
      return hold("Init:CrashLoopBackOff",
                  fmt::format("back-off {} restarting failed init container {} (exit code {})",
                              go_duration(crash.delay), c.name(), cur->exit_code));
    }
    stat([](auto& s) { ++s.containers_restarted; });
    return start();
  }
  return true;
}

bool PodSync::teardown(const std::optional<v1::Object>& pod) {
  std::chrono::seconds grace = pod ? grace_of(pod->pod()) : std::chrono::seconds(30);
  auto sandboxes = rt_.list_pod_sandboxes({{kLabelPodUid, w_.uid}});
  auto containers = rt_.list_containers(with_labels({{kLabelPodUid, w_.uid}}));
  if (!sandboxes.ok() || !containers.ok()) return false;
  if (!sandboxes->empty() || !containers->empty()) {
    spdlog::info("pod {}/{} ({}): stopping (grace {} s) and removing", w_.ns, w_.name, w_.uid,
                 grace.count());
  }
  stop_all(*containers, grace);
  bool ok = true;
  for (const auto& c : *containers) {
    auto s = rt_.remove_container(c.id);
    ok = ok && (s.ok() || s.code() == Code::kNotFound);
  }
  for (const auto& s : *sandboxes) {
    (void)rt_.stop_pod_sandbox(s.id);
    auto r = rt_.remove_pod_sandbox(s.id);
    ok = ok && (r.ok() || r.code() == Code::kNotFound);
  }
  if (!ok) return false;
  remove_pod_dirs(pod_paths(opt_.data_dir, w_.ns, w_.name, w_.uid));
  (void)m_.meta_.delete_pod_record(w_.uid);
  stat([](auto& s) { ++s.pods_removed; });
  if (pod && pod->pod().terminating()) {
    // The cloud removes the object once it hears the pod is gone.
    if (auto s = m_.tracker_.pod_deleted(w_.ns, w_.name); !s.ok()) {
      spdlog::warn("pod {}/{}: reporting its removal: {}", w_.ns, w_.name, s.message());
    }
  }
  return true;
}

// --- PodManager ---------------------------------------------------------------------------

PodManager::PodManager(MetaStore& meta, StatusTracker& tracker, Runtime& runtime,
                       PodManagerOptions options)
    : meta_(meta), tracker_(tracker), runtime_(runtime), options_(std::move(options)) {
  runtime_view_.message = "the container runtime has not been asked yet";
}

PodManager::~PodManager() {
  stop();
}

void PodManager::start() {
  {
    std::lock_guard lock(mu_);
    if (started_) return;
    started_ = true;
  }
  observer_ = meta_.add_observer([this](const ObjectChange& change) { on_cache_change(change); });
  apply_cache_change({}, true);
  relist_thread_ = std::thread([this] { relist_loop(); });
}

void PodManager::stop() {
  std::map<std::string, std::unique_ptr<Worker>> workers;
  {
    std::lock_guard lock(mu_);
    if (!started_ || stopping_) return;
    stopping_ = true;
    workers = std::move(workers_);
  }
  observer_.reset();
  cv_.notify_all();
  // A worker may be in a pull that takes minutes, or in a graceful stop: end those calls rather
  // than hold edgecore's shutdown (the next edgecore takes over where they were).
  if (options_.cancel_runtime_on_stop) runtime_.cancel_calls();
  if (relist_thread_.joinable()) relist_thread_.join();
  for (auto& [uid, w] : workers) {
    {
      std::lock_guard lock(w->mu);
      w->stop = true;
    }
    w->cv.notify_all();
  }
  for (auto& [uid, w] : workers) {
    if (w->thread.joinable()) w->thread.join();
  }
}

RuntimeView PodManager::runtime_view() const {
  std::lock_guard lock(mu_);
  return runtime_view_;
}

PodManagerStats PodManager::stats() const {
  std::lock_guard lock(mu_);
  PodManagerStats s = stats_;
  s.workers = workers_.size();
  return s;
}

std::optional<v1::ConfigData> PodManager::lookup_config(v1::ObjectKind kind, const std::string& ns,
                                                        const std::string& name) const {
  auto o = meta_.get_object(kind, ns, name);
  if (!o.ok() || !*o) return std::nullopt;
  return kind == v1::OBJECT_KIND_SECRET ? (*o)->secret() : (*o)->config_map();
}

void PodManager::on_cache_change(const ObjectChange& change) {
  // Runs on the hub's thread right after the write: note it and let the relist thread act.
  {
    std::lock_guard lock(mu_);
    pending_changes_.insert(pending_changes_.end(), change.changed.begin(), change.changed.end());
    pending_replace_all_ = pending_replace_all_ || change.replaced_all;
  }
  cv_.notify_all();
}

void PodManager::set_desired(const std::string& uid, std::optional<v1::Object> desired,
                             const std::string& ns, const std::string& name) {
  // Called with mu_ held.
  if (auto it = workers_.find(uid); it != workers_.end()) {
    Worker& w = *it->second;
    {
      // `done` is set under the worker's lock: a worker that has not finished takes the new
      // desired state; one that has is replaced.
      std::lock_guard lock(w.mu);
      if (!w.done) {
        w.desired = std::move(desired);
        w.kicked = true;
        w.cv.notify_all();
        return;
      }
    }
    if (w.thread.joinable()) w.thread.join();
    workers_.erase(it);
  }
  if (stopping_) return;
  auto w = std::make_unique<Worker>();
  w->uid = uid;
  w->ns = ns;
  w->name = name;
  w->desired = std::move(desired);
  Worker* raw = w.get();
  workers_[uid] = std::move(w);
  raw->thread = std::thread([this, raw] { run_worker(*raw); });
}

void PodManager::apply_cache_change(const std::vector<v1::ObjectRef>& changed, bool replaced_all) {
  std::vector<v1::Object> pods;
  if (auto list = meta_.list_objects(v1::OBJECT_KIND_POD); list.ok()) pods = std::move(*list);
  std::map<std::string, const v1::Object*> by_uid;
  std::map<std::string, const v1::Object*> by_key;
  for (const auto& p : pods) {
    by_uid[p.uid()] = &p;
    by_key[pod_key(p.namespace_(), p.name())] = &p;
  }
  std::lock_guard lock(mu_);
  if (replaced_all) {
    for (const auto& p : pods) set_desired(p.uid(), p, p.namespace_(), p.name());
    for (auto& [uid, w] : workers_) {
      if (!by_uid.count(uid)) set_desired(uid, std::nullopt, w->ns, w->name);
    }
    return;
  }
  for (const auto& ref : changed) {
    if (ref.kind() == v1::OBJECT_KIND_POD) {
      auto key = pod_key(ref.namespace_(), ref.name());
      auto cached = by_key.find(key);
      // Workers of this name with another uid (deleted and created again) go.
      std::vector<std::string> stale;
      for (auto& [uid, w] : workers_) {
        if (w->ns == ref.namespace_() && w->name == ref.name() &&
            (cached == by_key.end() || cached->second->uid() != uid)) {
          stale.push_back(uid);
        }
      }
      for (const auto& uid : stale) set_desired(uid, std::nullopt, ref.namespace_(), ref.name());
      if (cached != by_key.end()) {
        const v1::Object& p = *cached->second;
        set_desired(p.uid(), p, p.namespace_(), p.name());
      }
    } else if (ref.kind() == v1::OBJECT_KIND_CONFIG_MAP || ref.kind() == v1::OBJECT_KIND_SECRET) {
      for (const auto& p : pods) {
        if (p.namespace_() == ref.namespace_() && references(p, ref.kind(), ref.name())) {
          auto it = workers_.find(p.uid());
          if (it == workers_.end()) continue;
          {
            std::lock_guard wl(it->second->mu);
            it->second->kicked = true;
          }
          it->second->cv.notify_all();
        }
      }
    }
  }
}

void PodManager::run_worker(Worker& w) {
  PodSync sync(*this, w);
  for (;;) {
    std::optional<v1::Object> desired;
    {
      std::unique_lock lock(w.mu);
      auto deadline = steady_clock::now() + options_.resync_interval;
      if (w.wake_at && *w.wake_at < deadline) deadline = *w.wake_at;
      w.cv.wait_until(lock, deadline, [&] { return w.kicked || w.stop; });
      if (w.stop) return;
      w.kicked = false;
      desired = w.desired;
    }
    w.wake_at.reset();
    if (!desired || desired->pod().terminating()) {
      if (sync.teardown(desired)) {
        std::lock_guard lock(w.mu);
        // A pod that came back while it was being removed starts again in a new worker.
        w.done = true;
        if (!w.desired || w.desired->pod().terminating()) return;
        w.done = false;
        continue;
      }
      w.wake_at = steady_clock::now() + 2s;
      continue;
    }
    sync.sync(*desired);
  }
}

void PodManager::relist_loop() {
  for (;;) {
    std::vector<v1::ObjectRef> changes;
    bool replace_all = false;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, options_.relist_interval,
                   [&] { return stopping_ || !pending_changes_.empty() || pending_replace_all_; });
      if (stopping_) return;
      changes.swap(pending_changes_);
      replace_all = pending_replace_all_;
      pending_replace_all_ = false;
    }
    if (replace_all || !changes.empty()) apply_cache_change(changes, replace_all);
    relist();
  }
}

void PodManager::relist() {
  const std::map<std::string, std::string> managed{{kLabelManagedBy, "edgecore"}};
  auto sandboxes = runtime_.list_pod_sandboxes(managed);
  auto containers = sandboxes.ok() ? runtime_.list_containers(with_labels(managed))
                                   : Result<std::vector<ContainerInfo>>(sandboxes.status());
  std::string version;
  bool need_version = false;
  {
    std::lock_guard lock(mu_);
    need_version = runtime_view_.version.empty();
  }
  if (containers.ok() && need_version) {
    if (auto v = runtime_.version(); v.ok()) {
      version = fmt::format("{}://{}", v->runtime_name, v->runtime_version);
    }
  }

  std::unique_lock lock(mu_);
  RuntimeView before = runtime_view_;
  auto notify_change = [&] {
    if (options_.on_runtime_change &&
        (before.ready != runtime_view_.ready || before.version != runtime_view_.version)) {
      lock.unlock();
      options_.on_runtime_change();
      lock.lock();
    }
  };
  if (!containers.ok()) {
    if (runtime_view_.ready) {
      spdlog::warn("container runtime unavailable: {}", containers.status().message());
    }
    runtime_view_.ready = false;
    runtime_view_.message = containers.status().message();
    notify_change();
    return;
  }
  if (!runtime_view_.ready) spdlog::info("container runtime ready");
  runtime_view_.ready = true;
  runtime_view_.message.clear();
  if (!version.empty()) runtime_view_.version = version;
  notify_change();
  if (stopping_) return;

  // What the runtime holds per pod uid; a change wakes that pod's worker.
  std::map<std::string, std::string> seen;
  std::map<std::string, std::pair<std::string, std::string>> names;
  for (const auto& s : *sandboxes) {
    std::string uid = label(s.labels, kLabelPodUid);
    seen[uid] += fmt::format("s{}:{};", s.id, static_cast<int>(s.state));
    names[uid] = {label(s.labels, kLabelPodNamespace), label(s.labels, kLabelPodName)};
  }
  for (const auto& c : *containers) {
    std::string uid = label(c.labels, kLabelPodUid);
    seen[uid] += fmt::format("c{}:{};", c.id, static_cast<int>(c.state));
    names[uid] = {label(c.labels, kLabelPodNamespace), label(c.labels, kLabelPodName)};
  }
  for (const auto& [uid, print] : seen) {
    if (uid.empty()) continue;
    auto w = workers_.find(uid);
    if (w == workers_.end() || w->second->done) {
      // In the runtime but not desired (deleted while edgecore was down, or a leftover).
      set_desired(uid, std::nullopt, names[uid].first, names[uid].second);
      continue;
    }
    if (fingerprints_[uid] != print) {
      {
        std::lock_guard wl(w->second->mu);
        w->second->kicked = true;
      }
      w->second->cv.notify_all();
    }
    fingerprints_[uid] = print;
  }
  for (auto it = fingerprints_.begin(); it != fingerprints_.end();) {
    it = seen.count(it->first) ? std::next(it) : fingerprints_.erase(it);
  }
  // Reap workers that finished removing their pod.
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->second->done) {
      if (it->second->thread.joinable()) it->second->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

common::Result<std::vector<ContainerInfo>> PodManager::container_attempts(
    const std::string& ns, const std::string& pod, const std::string& container) {
  auto cached = meta_.get_object(v1::OBJECT_KIND_POD, ns, pod);
  if (!cached.ok()) return cached.status();
  if (!*cached) return make_error(Code::kNotFound, "pod {}/{} is not on this node", ns, pod);
  auto list = runtime_.list_containers(
      with_labels({{kLabelPodUid, (*cached)->uid()}, {kLabelContainerName, container}}));
  if (!list.ok()) return list.status();
  std::sort(list->begin(), list->end(),
            [](const auto& a, const auto& b) { return a.attempt > b.attempt; });
  return list;
}

common::Result<ContainerLog> PodManager::locate_log(const std::string& ns, const std::string& pod,
                                                    const std::string& container, bool previous) {
  auto list = container_attempts(ns, pod, container);
  if (!list.ok()) return list.status();
  size_t index = previous ? 1 : 0;
  if (list->size() <= index) {
    if (previous) {
      return make_error(Code::kInvalidArgument,
                        "previous terminated container \"{}\" in pod \"{}\" not found", container,
                        pod);
    }
    return make_error(Code::kInvalidArgument, "container \"{}\" in pod \"{}\" is waiting to start",
                      container, pod);
  }
  auto status = runtime_.container_status((*list)[index].id);
  if (!status.ok()) return status.status();
  return ContainerLog{status->log_path, status->info.state == ContainerState::kRunning};
}

common::Result<std::string> PodManager::running_container(const std::string& ns,
                                                          const std::string& pod,
                                                          const std::string& container) {
  auto list = container_attempts(ns, pod, container);
  if (!list.ok()) return list.status();
  if (list->empty() || list->front().state != ContainerState::kRunning) {
    return make_error(Code::kFailedPrecondition, "container \"{}\" in pod \"{}\" is not running",
                      container, pod);
  }
  return list->front().id;
}

}  // namespace gantry::edge
