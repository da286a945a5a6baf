#include "edgecore/status/node_probe.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

namespace gantry::edge {
namespace {

std::string first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// "MemTotal:  1017344 kB" -> bytes; 0 when absent.
int64_t meminfo_bytes(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key + ":", 0) != 0) continue;
    std::istringstream fields(line.substr(key.size() + 1));
    int64_t kib = 0;
    fields >> kib;
    return kib * 1024;
  }
  return 0;
}

std::string os_image() {
  std::ifstream in("/etc/os-release");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("PRETTY_NAME=", 0) != 0) continue;
    std::string value = line.substr(12);
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    return value;
  }
  return "";
}

std::string go_arch(const std::string& machine) {
  // Kubernetes names architectures as Go does.
  if (machine == "x86_64") return "amd64";
  if (machine == "aarch64") return "arm64";
  if (machine.rfind("armv", 0) == 0) return "arm";
  return machine;
}

}  // namespace

v1::NodeStatus probe_node(const NodeProbeOptions& options) {
  v1::NodeStatus status;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  int64_t memory = meminfo_bytes("MemTotal");
  auto* capacity = status.mutable_capacity();
  if (cpus > 0) capacity->set_cpu_millis(cpus * 1000);
  capacity->set_memory_bytes(memory);
  capacity->set_pods(options.max_pods);
  *status.mutable_allocatable() = *capacity;

  auto* ready = status.add_conditions();
  ready->set_type(v1::NODE_CONDITION_READY);
  ready->set_status(v1::CONDITION_STATUS_TRUE);
  ready->set_last_transition_time(options.started_at);
  ready->set_reason("EdgecoreReady");
  auto* runtime = status.add_conditions();
  runtime->set_type(v1::NODE_CONDITION_RUNTIME_UNAVAILABLE);
  runtime->set_status(v1::CONDITION_STATUS_TRUE);
  runtime->set_last_transition_time(options.started_at);
  runtime->set_reason("NoRuntime");
  runtime->set_message("this edgecore build runs no containers yet");

  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0]) {
    auto* address = status.mutable_addresses()->add_items();
    address->set_type(v1::ADDRESS_TYPE_HOSTNAME);
    address->set_address(host);
  }

  auto* info = status.mutable_node_info();
  struct utsname uts {};
  if (uname(&uts) == 0) {
    info->set_architecture(go_arch(uts.machine));
    info->set_kernel_version(uts.release);
  }
  info->set_operating_system("linux");
  info->set_os_image(os_image());
  info->set_edgecore_version(options.edgecore_version);
  info->set_machine_id(first_line("/etc/machine-id"));
  info->set_boot_id(first_line("/proc/sys/kernel/random/boot_id"));
  return status;
}

}  // namespace gantry::edge
