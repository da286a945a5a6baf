// An in-memory Runtime for the pod workers' unit tests: containers run until the test ends them,
// images are present or pullable as the test says, and every call that changes something is
// recorded in order so that tests can check sequences (pull before stop).
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "edgecore/runtime/runtime.h"

namespace gantry::edge::test {

class FakeRuntime final : public Runtime {
 public:
  // --- What the test controls --------------------------------------------------------------
  void add_image(const std::string& image) {
    std::lock_guard lock(mu_);
    images_.insert(image);
  }
  void add_pullable(const std::string& image) {
    std::lock_guard lock(mu_);
    pullable_.insert(image);
  }
  // While held, pull_image waits (a slow registry); counts the pulls in flight.
  void hold_pulls(bool hold) {
    {
      std::lock_guard lock(mu_);
      hold_ = hold;
    }
    pull_cv_.notify_all();
  }
  size_t pulls_in_flight() const {
    std::lock_guard lock(mu_);
    return in_flight_;
  }
  size_t max_pulls_in_flight() const {
    std::lock_guard lock(mu_);
    return max_in_flight_;
  }
  void set_down(bool down) {
    std::lock_guard lock(mu_);
    down_ = down;
  }
  // The container's process ends with `code`.
  void exit(const std::string& id, int code) {
    std::lock_guard lock(mu_);
    auto& c = containers_.at(id);
    c.info.state = ContainerState::kExited;
    c.exit_code = code;
    c.finished_at_ns = now_ns();
  }

  // --- What the test inspects --------------------------------------------------------------
  std::vector<std::string> calls() const {
    std::lock_guard lock(mu_);
    return calls_;
  }
  size_t count_calls(const std::string& prefix) const {
    std::lock_guard lock(mu_);
    return std::count_if(calls_.begin(), calls_.end(),
                         [&](const auto& c) { return c.rfind(prefix, 0) == 0; });
  }
  std::vector<ContainerStatus> containers() const {
    std::lock_guard lock(mu_);
    std::vector<ContainerStatus> out;
    for (const auto& [id, c] : containers_) out.push_back(c);
    return out;
  }
  std::vector<ContainerStatus> running() const {
    auto all = containers();
    std::erase_if(all, [](const auto& c) { return c.info.state != ContainerState::kRunning; });
    return all;
  }
  size_t sandbox_count() const {
    std::lock_guard lock(mu_);
    return sandboxes_.size();
  }
  std::map<std::string, ContainerConfig> configs() const {
    std::lock_guard lock(mu_);
    return configs_;
  }

  // --- Runtime -----------------------------------------------------------------------------
  Result<RuntimeVersion> version() override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    return RuntimeVersion{"fake", "1.0", "v1"};
  }
  Result<std::string> run_pod_sandbox(const SandboxConfig& config) override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    std::string id = fmt::format("sb{}", ++next_);
    SandboxStatus s;
    s.info.id = id;
    s.info.name = config.name;
    s.info.ns = config.ns;
    s.info.uid = config.uid;
    s.info.attempt = config.attempt;
    s.info.state = SandboxState::kReady;
    s.info.labels = config.labels;
    s.info.annotations = config.annotations;
    s.ip = config.host_network ? "" : fmt::format("10.88.0.{}", next_);
    sandboxes_[id] = s;
    calls_.push_back("run_pod_sandbox " + config.name);
    return id;
  }
  Status stop_pod_sandbox(const std::string& id) override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    if (auto it = sandboxes_.find(id); it != sandboxes_.end()) {
      it->second.info.state = SandboxState::kNotReady;
    }
    for (auto& [cid, c] : containers_) {
      if (c.info.sandbox_id == id && c.info.state == ContainerState::kRunning) {
        c.info.state = ContainerState::kExited;
        c.exit_code = 137;
      }
    }
    calls_.push_back("stop_pod_sandbox " + id);
    return common::ok_status();
  }
  Status remove_pod_sandbox(const std::string& id) override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    sandboxes_.erase(id);
    std::erase_if(containers_, [&](const auto& kv) { return kv.second.info.sandbox_id == id; });
    calls_.push_back("remove_pod_sandbox " + id);
    return common::ok_status();
  }
  Result<SandboxStatus> pod_sandbox_status(const std::string& id) override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    auto it = sandboxes_.find(id);
    if (it == sandboxes_.end()) return common::make_error(common::Code::kNotFound, "no sandbox");
    return it->second;
  }
  Result<std::vector<SandboxInfo>> list_pod_sandboxes(
      const std::map<std::string, std::string>& labels) override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    std::vector<SandboxInfo> out;
    for (const auto& [id, s] : sandboxes_) {
      if (matches(s.info.labels, labels)) out.push_back(s.info);
    }
    return out;
  }
  Result<std::string> create_container(const std::string& sandbox_id, const ContainerConfig& config,
                                       const SandboxConfig& sandbox) override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    if (!images_.count(config.image) && !image_ids_.count(config.image)) {
      return common::make_error(common::Code::kNotFound, "image {} not present", config.image);
    }
    std::string id = fmt::format("c{}", ++next_);
    ContainerStatus c;
    c.info.id = id;
    c.info.sandbox_id = sandbox_id;
    c.info.name = config.name;
    c.info.attempt = config.attempt;
    c.info.image = config.image;
    c.info.image_ref = "sha256:" + config.image;
    c.info.state = ContainerState::kCreated;
    c.info.labels = config.labels;
    c.info.annotations = config.annotations;
    c.log_path = sandbox.log_directory + "/" + config.log_path;
    containers_[id] = c;
    configs_[id] = config;
    calls_.push_back(fmt::format("create_container {} {}", config.name, config.image));
    return id;
  }
  Status start_container(const std::string& id) override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    auto& c = containers_.at(id);
    c.info.state = ContainerState::kRunning;
    c.started_at_ns = now_ns();
    calls_.push_back("start_container " + c.info.name);
    return common::ok_status();
  }
  Status stop_container(const std::string& id, std::chrono::seconds grace) override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    auto it = containers_.find(id);
    if (it == containers_.end()) return common::make_error(common::Code::kNotFound, "gone");
    if (it->second.info.state == ContainerState::kRunning) {
      it->second.info.state = ContainerState::kExited;
      it->second.exit_code = 143;
      it->second.finished_at_ns = now_ns();
    }
    calls_.push_back(fmt::format("stop_container {} {}", it->second.info.name, grace.count()));
    return common::ok_status();
  }
  Status remove_container(const std::string& id) override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    containers_.erase(id);
    calls_.push_back("remove_container " + id);
    return common::ok_status();
  }
  Result<std::vector<ContainerInfo>> list_containers(const ContainerFilter& filter) override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    std::vector<ContainerInfo> out;
    for (const auto& [id, c] : containers_) {
      if (!filter.sandbox_id.empty() && c.info.sandbox_id != filter.sandbox_id) continue;
      if (matches(c.info.labels, filter.labels)) out.push_back(c.info);
    }
    return out;
  }
  Result<ContainerStatus> container_status(const std::string& id) override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    auto it = containers_.find(id);
    if (it == containers_.end()) return common::make_error(common::Code::kNotFound, "gone");
    return it->second;
  }
  Result<std::optional<ImageInfo>> image_status(const std::string& image) override {
    std::lock_guard lock(mu_);
    if (down_) return down();
    if (!images_.count(image)) return std::optional<ImageInfo>();
    return std::optional<ImageInfo>(ImageInfo{image, {image}, {}, 1});
  }
  Result<std::string> pull_image(const std::string& image) override {
    std::unique_lock lock(mu_);
    if (down_) return down();
    calls_.push_back("pull_image " + image);
    ++in_flight_;
    max_in_flight_ = std::max(max_in_flight_, in_flight_);
    pull_cv_.wait(lock, [&] { return !hold_; });
    --in_flight_;
    if (!pullable_.count(image)) {
      return common::make_error(common::Code::kNotFound, "{}: not found in the registry", image);
    }
    images_.insert(image);
    return image;
  }
  Status remove_image(const std::string& image) override {
    std::lock_guard lock(mu_);
    images_.erase(image);
    return common::ok_status();
  }
  Result<std::vector<FilesystemUsage>> image_fs_info() override {
    return std::vector<FilesystemUsage>{};
  }

 private:
  static bool matches(const std::map<std::string, std::string>& have,
                      const std::map<std::string, std::string>& want) {
    for (const auto& [k, v] : want) {
      auto it = have.find(k);
      if (it == have.end() || it->second != v) return false;
    }
    return true;
  }
  static int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
  static Status down() {
    return common::make_error(common::Code::kUnavailable, "runtime is not answering");
  }

  mutable std::mutex mu_;
  bool down_ = false;
  int next_ = 0;
  std::set<std::string> images_, pullable_, image_ids_;
  std::condition_variable pull_cv_;
  bool hold_ = false;
  size_t in_flight_ = 0, max_in_flight_ = 0;
  std::map<std::string, SandboxStatus> sandboxes_;
  std::map<std::string, ContainerStatus> containers_;
  std::map<std::string, ContainerConfig> configs_;
  std::vector<std::string> calls_;
};

}  // namespace gantry::edge::test
