// The node's trimmed NodeStatus: what the machine is (CPUs, memory, the data dir's filesystem,
// addresses, kernel/OS/arch, runtime version) and how it is doing (MemoryPressure, DiskPressure,
// RuntimeUnavailable). Reading the machine (read_node) is kept apart from turning readings into a
// status (NodeProber) so that the thresholds and transition times can be tested with made-up
// readings.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gantry/v1/objects.pb.h"

namespace gantry::edge {

struct NodeProbeOptions {
  std::string edgecore_version;
  int64_t max_pods = 110;
  int64_t started_at = 0;          // Unix seconds: transition time of the first conditions
  std::filesystem::path data_dir;  // its filesystem is the node's ephemeral storage
  // Kubelet's default hard eviction thresholds: pressure below these, and allocatable is
  // capacity minus them.
  int64_t memory_available_min_bytes = 100 << 20;
  double disk_available_min_fraction = 0.10;
};

// What the machine says right now. Zero / empty where it could not be read.
struct NodeReadings {
  int64_t cpu_millis = 0;
  int64_t memory_total_bytes = 0;
  int64_t memory_available_bytes = 0;
  int64_t disk_total_bytes = 0;
  int64_t disk_available_bytes = 0;
  std::string hostname;
  std::vector<std::string> internal_ips;  // non-loopback interface addresses, sorted
  std::string architecture, kernel_version, os_image, machine_id, boot_id;
};
NodeReadings read_node(const std::filesystem::path& data_dir);

// The container runtime as the pod workers last saw it.
struct RuntimeView {
  bool ready = false;
  std::string version;  // "containerd://1.6.20"
  std::string message;  // why it is not ready
};

// Keeps the last conditions so that a condition's transition time moves only when its status
// does: two probes of an unchanged node give equal statuses, and reporting them costs nothing.
class NodeProber {
 public:
  explicit NodeProber(NodeProbeOptions options) : options_(std::move(options)) {}
  v1::NodeStatus status(const NodeReadings& readings, const RuntimeView& runtime,
                        int64_t now_seconds);

 private:
  void set_condition(v1::NodeStatus& status, v1::NodeConditionType type, bool on,
                     const std::string& reason, const std::string& message, int64_t now);

  NodeProbeOptions options_;
  std::map<int, v1::NodeCondition> last_;  // by NodeConditionType
};

}  // namespace gantry::edge
