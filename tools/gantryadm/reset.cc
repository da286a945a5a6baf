#include "tools/gantryadm/reset.h"

#include <fmt/format.h>
#include <signal.h>
#include <sys/types.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <fstream>
#include <thread>

#include "common/base/atomic_file.h"
#include "edgecore/runtime/cri_runtime.h"

namespace gantry::adm {
namespace {

namespace fs = std::filesystem;
using common::Code;
using common::make_error;
using namespace std::chrono_literals;

bool exists_no_follow(const fs::path& p) {
  std::error_code ec;
  return fs::symlink_status(p, ec).type() != fs::file_type::not_found && !ec;
}

std::string proc_comm(int pid) {
  std::ifstream in(fmt::format("/proc/{}/comm", pid));
  std::string comm;
  std::getline(in, comm);
  return comm;
}

// Gone, or a zombie waiting for its parent (it holds no files any more).
bool process_gone(int pid) {
  if (::kill(pid, 0) != 0 && errno == ESRCH) return true;
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto close = stat.rfind(')');
  if (close == std::string::npos || close + 2 >= stat.size()) return false;
  char state = stat[close + 2];
  return state == 'Z' || state == 'X';
}

bool wait_gone(int pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!process_gone(pid)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);  // polling another process' exit: there is no fd to wait on
  }
  return true;
}

// Stops the edgecore named by DIR/edgecore.pid, if it is one.
common::Status stop_edgecore(const fs::path& pid_file, const ResetOptions& options,
                             ResetReport& report) {
  auto text = common::read_file(pid_file);
  if (!text.ok()) {
    if (text.status().code() == Code::kNotFound) return common::ok_status();
    return text.status();
  }
  std::string_view digits = *text;
  while (!digits.empty() && (digits.back() == '\n' || digits.back() == ' '))
    digits.remove_suffix(1);
  int pid = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), pid);
  if (ec != std::errc() || end != digits.data() + digits.size() || pid <= 1) {
    report.warnings.push_back(fmt::format("{} does not hold a process id ('{}'): stopped nothing",
                                          pid_file.string(), digits));
    return common::ok_status();
  }
  if (process_gone(pid)) return common::ok_status();
  // A stale pid file may name a pid that was reused by something else: never signal that.
  const std::string comm = proc_comm(pid);
  if (comm != "edgecore") {
    report.warnings.push_back(
        fmt::format("{} names pid {}, which is '{}', not edgecore: left it running",
                    pid_file.string(), pid, comm));
    return common::ok_status();
  }
  if (::kill(pid, SIGTERM) != 0 && errno != ESRCH) {
    return make_error(Code::kPermissionDenied, "stopping edgecore (pid {}): {}", pid,
                      std::strerror(errno));
  }
  report.stopped_pid = pid;
  if (wait_gone(pid, options.stop_timeout)) return common::ok_status();
  report.killed = true;
  ::kill(pid, SIGKILL);
  if (wait_gone(pid, 10s)) return common::ok_status();
  return make_error(Code::kUnavailable,
                    "edgecore (pid {}) is still running after SIGTERM and SIGKILL; nothing was "
                    "removed. Check it with `ps -o pid,stat,cmd -p {}` and run reset again",
                    pid, pid);
}

// Edgecore processes with a file open under `dir` (e.g. one run by systemd, with no pid file):
// removing its cache under it would corrupt nothing on disk but leave it running on deleted files.
std::vector<int> edgecores_using(const fs::path& dir) {
  std::vector<int> pids;
  std::error_code ec;
  const fs::path canonical = fs::canonical(dir, ec);
  if (ec) return pids;
  const std::string prefix = canonical.string() + "/";
  for (const auto& proc : fs::directory_iterator("/proc", ec)) {
    const std::string name = proc.path().filename().string();
    int pid = 0;
    auto [end, parse_ec] = std::from_chars(name.data(), name.data() + name.size(), pid);
    if (parse_ec != std::errc() || end != name.data() + name.size()) continue;
    if (proc_comm(pid) != "edgecore" || process_gone(pid)) continue;
    std::error_code fd_ec;
    for (const auto& fd : fs::directory_iterator(proc.path() / "fd", fd_ec)) {
      std::error_code link_ec;
      const std::string target = fs::read_symlink(fd.path(), link_ec).string();
      if (!link_ec && target.compare(0, prefix.size(), prefix) == 0) {
        pids.push_back(pid);
        break;
      }
    }
  }
  return pids;
}

// The runtime endpoint edgecore used: edgecore.yaml's runtime.endpoint, or the default.
std::string runtime_endpoint(const fs::path& config) {
  std::string endpoint = "unix:///run/containerd/containerd.sock";
  try {
    YAML::Node root = YAML::LoadFile(config.string());
    if (root["runtime"] && root["runtime"]["endpoint"]) {
      endpoint = root["runtime"]["endpoint"].as<std::string>();
    }
  } catch (const std::exception&) {
    // No readable config: the default runtime is the one edgecore would have used.
  }
  return endpoint;
}

// Stops and removes every sandbox (with its containers) that edgecore started, and nothing else.
void remove_pods(const fs::path& dir, ResetReport& report) {
  report.runtime_endpoint = runtime_endpoint(dir / "edgecore.yaml");
  auto runtime = edge::CriRuntime::create(
      {.endpoint = report.runtime_endpoint, .call_timeout = std::chrono::seconds(10)});
  if (!runtime.ok()) {
    report.warnings.push_back(fmt::format("pods were not removed: {}", runtime.status().message()));
    return;
  }
  const std::map<std::string, std::string> ours{{edge::kLabelManagedBy, "edgecore"}};
  auto sandboxes = (*runtime)->list_pod_sandboxes(ours);
  if (!sandboxes.ok()) {
    report.warnings.push_back(fmt::format(
        "pods edgecore started may still run: {} (remove them with `crictl rmp` or `ctr -n "
        "k8s.io`, looking for the label {}=edgecore)",
        sandboxes.status().message(), edge::kLabelManagedBy));
    return;
  }
  for (const auto& sandbox : *sandboxes) {
    edge::ContainerFilter filter;
    filter.sandbox_id = sandbox.id;
    if (auto containers = (*runtime)->list_containers(filter); containers.ok()) {
      for (const auto& c : *containers) {
        (void)(*runtime)->stop_container(c.id, std::chrono::seconds(10));
        (void)(*runtime)->remove_container(c.id);
      }
    }
    (void)(*runtime)->stop_pod_sandbox(sandbox.id);
    if (auto s = (*runtime)->remove_pod_sandbox(sandbox.id); s.ok()) {
      ++report.pods_removed;
    } else {
      report.warnings.push_back(
          fmt::format("pod {}/{}: {}", sandbox.ns, sandbox.name, s.message()));
    }
  }
}

}  // namespace

common::Result<ResetReport> reset(const ResetOptions& options) {
  ResetReport report;
  const fs::path& dir = options.data_dir;
  if (dir.empty()) return make_error(Code::kInvalidArgument, "--data-dir is empty");
  if (!exists_no_follow(dir)) {
    report.dir_missing = true;
    return report;
  }
  if (!fs::is_directory(dir)) {
    return make_error(Code::kFailedPrecondition, "{} is not a directory: nothing was removed",
                      dir.string());
  }
  if (exists_no_follow(dir / "pki" / "ca.key")) {
    return make_error(Code::kFailedPrecondition,
                      "{} holds a CA key (pki/ca.key): it is cloudcore's data dir made by "
                      "`gantryadm init`, not an edge node's. reset only undoes what join and "
                      "edgecore made on an edge node; nothing was removed.",
                      dir.string());
  }
  const bool looks_like_edge =
      std::any_of(kEdgeEntries.begin(), kEdgeEntries.end(), [&](const std::string& name) {
        return name != "edgecore.pid" && exists_no_follow(dir / name);
      });
  if (!looks_like_edge) {
    return make_error(Code::kFailedPrecondition,
                      "{} does not look like a Gantry edge data dir (it has none of "
                      "edgecore.yaml, pki/, meta/); nothing was removed. Check --data-dir: it "
                      "must be the directory given to join (edgecore's data_dir).",
                      dir.string());
  }

  GANTRY_RETURN_IF_ERROR(stop_edgecore(dir / "edgecore.pid", options, report));
  if (auto pids = edgecores_using(dir); !pids.empty()) {
    return make_error(Code::kFailedPrecondition,
                      "edgecore (pid {}) is running on {} and was not started with a pid file "
                      "there; nothing was removed. Stop it first (under systemd: `systemctl "
                      "disable --now edgecore`), then run reset again.",
                      fmt::join(pids, ", "), dir.string());
  }

  // Pods go while edgecore.yaml still says which runtime ran them.
  if (exists_no_follow(dir / "meta") || exists_no_follow(dir / "pods")) remove_pods(dir, report);

  for (const std::string& name : kEdgeEntries) {
    const fs::path p = dir / name;
    if (!exists_no_follow(p)) continue;
    std::error_code ec;
    fs::remove_all(p, ec);  // a symlink is removed, never followed
    if (ec) {
      return make_error(Code::kInternal, "removing {}: {} (removed so far: {})", p.string(),
                        ec.message(), fmt::join(report.removed, ", "));
    }
    report.removed.push_back(name);
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    report.left.push_back(entry.path().filename().string());
  }
  std::sort(report.left.begin(), report.left.end());
  return report;
}

}  // namespace gantry::adm
