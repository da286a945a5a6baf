#include "tests/support/containerd_fixture.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace gantry::test {

namespace {

constexpr const char* kLockFile = "/run/lock/gantry-containerd.lock";
// Another build tree's containerd tests may hold the machine for a while; each of their cases
// releases it, so waits are one case long.
constexpr auto kLockWait = std::chrono::minutes(10);

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// The last line of the script's output (it prints the endpoint last).
std::string last_line(const std::string& output) {
  std::string text = trim(output);
  auto pos = text.rfind('\n');
  return pos == std::string::npos ? text : text.substr(pos + 1);
}

}  // namespace

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  TempDir out_dir;
  auto log = out_dir / "output";
  CommandResult result;
  {
    ChildProcess child(argv, log);
    result.exit_code = child.wait(timeout);
  }  // killed here if it is still running
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  result.output = text.str();
  return result;
}

std::filesystem::path containerd_script() {
  if (const char* src = std::getenv("GANTRY_SOURCE_DIR")) {
    return std::filesystem::path(src) / "tools" / "containerd.sh";
  }
  // Run by hand: look upwards from the working directory and from the test binary (build trees
  // live inside the source tree).
  std::error_code ec;
  for (const auto& start : {std::filesystem::current_path(ec),
                            std::filesystem::read_symlink("/proc/self/exe", ec).parent_path()}) {
    for (auto dir = start; !dir.empty(); dir = dir.parent_path()) {
      auto candidate = dir / "tools" / "containerd.sh";
      if (std::filesystem::exists(candidate, ec)) return candidate;
      if (dir == dir.root_path()) break;
    }
  }
  return "tools/containerd.sh";
}

Containerd::Containerd(const std::vector<std::string>& cgroup_roots) {
  lock_fd_ = ::open(kLockFile, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) throw std::runtime_error(std::string("cannot open ") + kLockFile);
  bool locked = eventually([&] { return ::flock(lock_fd_, LOCK_EX | LOCK_NB) == 0; }, kLockWait,
                           std::chrono::milliseconds(50));
  if (!locked) {
    ::close(lock_fd_);
    throw std::runtime_error(
        "another test's containerd held /run/lock/gantry-containerd.lock for 10 minutes");
  }
  if (!cgroup_roots.empty()) {
    std::ofstream roots(dir() / "cgroup-roots");
    for (const auto& root : cgroup_roots) roots << root << "\n";
  }
  // We hold the machine lock: a containerd still running is one a dead test left behind.
  auto started = script({"start", dir().string(), "--replace-stale"});
  if (!started.ok()) {
    script({"clean", dir().string()});
    ::close(lock_fd_);
    throw std::runtime_error("tools/containerd.sh start failed (" +
                             std::to_string(started.exit_code) + "): " + started.output);
  }
  endpoint_ = last_line(started.output);
}

Containerd::~Containerd() {
  auto cleaned = script({"clean", dir().string()});
  if (!cleaned.ok()) {
    std::cerr << "tools/containerd.sh clean " << dir() << " failed: " << cleaned.output << "\n";
  }
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the flock
}

CommandResult Containerd::script(const std::vector<std::string>& args,
                                 std::chrono::milliseconds timeout) const {
  std::vector<std::string> argv{"/bin/bash", containerd_script().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, timeout);
}

void Containerd::must(const std::vector<std::string>& args, const char* what) const {
  auto result = script(args);
  if (!result.ok()) {
    throw std::runtime_error(std::string(what) + " failed (" + std::to_string(result.exit_code) +
                             "): " + result.output);
  }
}

CommandResult Containerd::ctr(const std::vector<std::string>& args) const {
  std::vector<std::string> all{"ctr", dir().string()};
  all.insert(all.end(), args.begin(), args.end());
  return script(all);
}

void Containerd::stop_daemon(bool kill) {
  std::vector<std::string> args{"daemon-stop", dir().string()};
  if (kill) args.push_back("--kill");
  must(args, "tools/containerd.sh daemon-stop");
}

void Containerd::start_daemon() {
  auto started = script({"start", dir().string()});
  if (!started.ok()) {
    throw std::runtime_error("tools/containerd.sh start (again) failed: " + started.output);
  }
  endpoint_ = last_line(started.output);
}

bool Containerd::daemon_answers() const {
  return script({"status", dir().string()}).ok();
}

std::filesystem::path Containerd::build_image(const std::string& name, const std::string& tag,
                                              const std::string& marker) const {
  std::string file;
  std::string label = name;
  label.append("_").append(tag).append("_").append(marker);
  for (char c : label) {
    file += (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') ? c : '_';
  }
  auto archive = dir() / "images" / (file + ".tar");
  must({"image", name, tag, archive.string(), marker}, "tools/containerd.sh image");
  return archive;
}

void Containerd::import_image(const std::filesystem::path& archive) const {
  auto result = ctr({"images", "import", archive.string()});
  if (!result.ok()) throw std::runtime_error("ctr images import failed: " + result.output);
}

std::string Containerd::start_registry() {
  if (!registry_.empty()) return registry_;
  auto port = std::to_string(free_port());
  must({"registry-start", dir().string(), port}, "tools/containerd.sh registry-start");
  registry_ = "127.0.0.1:" + port;
  return registry_;
}

std::string Containerd::push_image(const std::filesystem::path& archive,
                                   const std::string& name_tag) const {
  if (registry_.empty()) throw std::runtime_error("push_image before start_registry");
  auto port = registry_.substr(registry_.find(':') + 1);
  must({"registry-push", dir().string(), port, archive.string(), name_tag},
       "tools/containerd.sh registry-push");
  return registry_ + "/" + name_tag;
}

void Containerd::stop_registry() {
  if (registry_.empty()) return;
  must({"registry-stop", dir().string()}, "tools/containerd.sh registry-stop");
  registry_.clear();
}

}  // namespace gantry::test
