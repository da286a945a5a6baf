#include "edgecore/status/node_probe.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/statvfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
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

// "MemTotal:  1017344 kB" -> bytes, for each key asked; absent keys stay 0.
void read_meminfo(int64_t& total, int64_t& available) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    int64_t* out = line.rfind("MemTotal:", 0) == 0       ? &total
                   : line.rfind("MemAvailable:", 0) == 0 ? &available
                                                         : nullptr;
    if (!out) continue;
    std::istringstream fields(line.substr(line.find(':') + 1));
    int64_t kib = 0;
    fields >> kib;
    *out = kib * 1024;
  }
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

// Addresses of interfaces that are up, not loopback, IPv4 and global IPv6. Container bridges and
// veths of our own pods are left out: they are not how anyone reaches the node.
std::vector<std::string> interface_addresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* i = list; i; i = i->ifa_next) {
    if (!i->ifa_addr || !(i->ifa_flags & IFF_UP) || (i->ifa_flags & IFF_LOOPBACK)) continue;
    std::string name = i->ifa_name ? i->ifa_name : "";
    if (name.rfind("veth", 0) == 0 || name.rfind("cni", 0) == 0 || name.rfind("gantry", 0) == 0) {
      continue;
    }
    char text[INET6_ADDRSTRLEN] = {};
    if (i->ifa_addr->sa_family == AF_INET) {
      auto* a = reinterpret_cast<sockaddr_in*>(i->ifa_addr);
      inet_ntop(AF_INET, &a->sin_addr, text, sizeof(text));
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      auto* a = reinterpret_cast<sockaddr_in6*>(i->ifa_addr);
      if (IN6_IS_ADDR_LINKLOCAL(&a->sin6_addr) || IN6_IS_ADDR_LOOPBACK(&a->sin6_addr)) continue;
      inet_ntop(AF_INET6, &a->sin6_addr, text, sizeof(text));
    } else {
      continue;
    }
    out.emplace_back(text);
  }
  freeifaddrs(list);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string bytes_text(int64_t bytes) {
  return fmt::format("{} MiB", bytes >> 20);
}

}  // namespace

NodeReadings read_node(const std::filesystem::path& data_dir) {
  NodeReadings r;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus > 0) r.cpu_millis = cpus * 1000;
  read_meminfo(r.memory_total_bytes, r.memory_available_bytes);
  struct statvfs fs {};
  if (!data_dir.empty() && statvfs(data_dir.c_str(), &fs) == 0) {
    r.disk_total_bytes = static_cast<int64_t>(fs.f_blocks) * fs.f_frsize;
    r.disk_available_bytes = static_cast<int64_t>(fs.f_bavail) * fs.f_frsize;
  }
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0) r.hostname = host;
  r.internal_ips = interface_addresses();
  struct utsname uts {};
  if (uname(&uts) == 0) {
    r.architecture = go_arch(uts.machine);
    r.kernel_version = uts.release;
  }
  r.os_image = os_image();
  r.machine_id = first_line("/etc/machine-id");
  r.boot_id = first_line("/proc/sys/kernel/random/boot_id");
  return r;
}

void NodeProber::set_condition(v1::NodeStatus& status, v1::NodeConditionType type, bool on,
                               const std::string& reason, const std::string& message, int64_t now) {
  v1::NodeCondition next;
  next.set_type(type);
  next.set_status(on ? v1::CONDITION_STATUS_TRUE : v1::CONDITION_STATUS_FALSE);
  next.set_reason(reason);
  next.set_message(message);
  auto it = last_.find(type);
  if (it == last_.end()) {
    next.set_last_transition_time(options_.started_at ? options_.started_at : now);
  } else if (it->second.status() != next.status()) {
    next.set_last_transition_time(now);
  } else {
    next.set_last_transition_time(it->second.last_transition_time());
  }
  last_[type] = next;
  *status.add_conditions() = std::move(next);
}

v1::NodeStatus NodeProber::status(const NodeReadings& r, const RuntimeView& runtime, int64_t now) {
  v1::NodeStatus status;
  auto* capacity = status.mutable_capacity();
  capacity->set_cpu_millis(r.cpu_millis);
  capacity->set_memory_bytes(r.memory_total_bytes);
  capacity->set_pods(options_.max_pods);
  capacity->set_ephemeral_storage_bytes(r.disk_total_bytes);
  auto* allocatable = status.mutable_allocatable();
  *allocatable = *capacity;
  allocatable->set_memory_bytes(
      std::max<int64_t>(0, r.memory_total_bytes - options_.memory_available_min_bytes));
  auto disk_floor = static_cast<int64_t>(static_cast<double>(r.disk_total_bytes) *
                                         options_.disk_available_min_fraction);
  allocatable->set_ephemeral_storage_bytes(std::max<int64_t>(0, r.disk_total_bytes - disk_floor));

  // Ready says edgecore is up and in charge of its pods; a runtime that does not answer is its
  // own condition (the pods it already runs keep running, and the operator sees why no new one
  // starts).
  set_condition(status, v1::NODE_CONDITION_READY, true, "EdgecoreReady",
                "edgecore is posting ready status", now);
  // Messages name the threshold, not the reading: a reading that moves each probe would make
  // every report a change.
  bool memory_pressure =
      r.memory_total_bytes > 0 && r.memory_available_bytes < options_.memory_available_min_bytes;
  set_condition(status, v1::NODE_CONDITION_MEMORY_PRESSURE, memory_pressure,
                memory_pressure ? "EdgecoreHasInsufficientMemory" : "EdgecoreHasSufficientMemory",
                memory_pressure ? fmt::format("memory available is below {}",
                                              bytes_text(options_.memory_available_min_bytes))
                                : "",
                now);
  bool disk_pressure = r.disk_total_bytes > 0 && r.disk_available_bytes < disk_floor;
  set_condition(
      status, v1::NODE_CONDITION_DISK_PRESSURE, disk_pressure,
      disk_pressure ? "EdgecoreHasDiskPressure" : "EdgecoreHasNoDiskPressure",
      disk_pressure
          ? fmt::format("space available on the filesystem of {} is below {:.0f}%",
                        options_.data_dir.string(), options_.disk_available_min_fraction * 100)
          : "",
      now);
  set_condition(status, v1::NODE_CONDITION_RUNTIME_UNAVAILABLE, !runtime.ready,
                runtime.ready ? "RuntimeReady" : "RuntimeNotResponding",
                runtime.ready ? "" : runtime.message, now);

  auto* addresses = status.mutable_addresses();
  for (const auto& ip : r.internal_ips) {
    auto* address = addresses->add_items();
    address->set_type(v1::ADDRESS_TYPE_INTERNAL_IP);
    address->set_address(ip);
  }
  if (!r.hostname.empty()) {
    auto* address = addresses->add_items();
    address->set_type(v1::ADDRESS_TYPE_HOSTNAME);
    address->set_address(r.hostname);
  }

  auto* info = status.mutable_node_info();
  info->set_architecture(r.architecture);
  info->set_kernel_version(r.kernel_version);
  info->set_operating_system("linux");
  info->set_os_image(r.os_image);
  info->set_container_runtime_version(runtime.version);
  info->set_edgecore_version(options_.edgecore_version);
  info->set_machine_id(r.machine_id);
  info->set_boot_id(r.boot_id);
  return status;
}

}  // namespace gantry::edge
