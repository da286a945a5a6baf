#include "cloudcore/api/render.h"

#include <fmt/format.h>

#include <ctime>

#include "common/base/json.h"

namespace gantry::cloud::api {
namespace {

using nlohmann::json;

std::string ms_time(int64_t unix_ms) {
  return rfc3339(unix_ms / 1000);
}

json render_state(const v1::ContainerState& state) {
  json out = json::object();
  switch (state.state_case()) {
    case v1::ContainerState::kWaiting: {
      json w = json::object();
      if (!state.waiting().reason().empty()) w["reason"] = state.waiting().reason();
      if (!state.waiting().message().empty()) w["message"] = state.waiting().message();
      out["waiting"] = w;
      break;
    }
    case v1::ContainerState::kRunning:
      out["running"] = {{"startedAt", rfc3339(state.running().started_at())}};
      break;
    case v1::ContainerState::kTerminated: {
      const auto& t = state.terminated();
      json term = {{"exitCode", t.exit_code()}};
      if (!t.reason().empty()) term["reason"] = t.reason();
      if (!t.message().empty()) term["message"] = t.message();
      if (t.started_at()) term["startedAt"] = rfc3339(t.started_at());
      if (t.finished_at()) term["finishedAt"] = rfc3339(t.finished_at());
      out["terminated"] = term;
      break;
    }
    default:
      break;
  }
  return out;
}

std::string phase_name(v1::PodPhase phase) {
  switch (phase) {
    case v1::POD_PHASE_RUNNING:
      return "Running";
    case v1::POD_PHASE_SUCCEEDED:
      return "Succeeded";
    case v1::POD_PHASE_FAILED:
      return "Failed";
    case v1::POD_PHASE_UNKNOWN:
      return "Unknown";
    default:
      return "Pending";
  }
}

std::string condition_status(v1::ConditionStatus s) {
  switch (s) {
    case v1::CONDITION_STATUS_TRUE:
      return "True";
    case v1::CONDITION_STATUS_FALSE:
      return "False";
    default:
      return "Unknown";
  }
}

std::string node_condition_type(v1::NodeConditionType t) {
  switch (t) {
    case v1::NODE_CONDITION_READY:
      return "Ready";
    case v1::NODE_CONDITION_MEMORY_PRESSURE:
      return "MemoryPressure";
    case v1::NODE_CONDITION_DISK_PRESSURE:
      return "DiskPressure";
    case v1::NODE_CONDITION_PID_PRESSURE:
      return "PIDPressure";
    case v1::NODE_CONDITION_RUNTIME_UNAVAILABLE:
      return "RuntimeUnavailable";
    default:
      return "";
  }
}

json resources(const v1::ResourceList& r) {
  json out = json::object();
  if (r.cpu_millis()) out["cpu"] = cpu_quantity(r.cpu_millis());
  if (r.memory_bytes()) out["memory"] = bytes_quantity(r.memory_bytes());
  if (r.pods()) out["pods"] = std::to_string(r.pods());
  if (r.ephemeral_storage_bytes())
    out["ephemeral-storage"] = bytes_quantity(r.ephemeral_storage_bytes());
  return out;
}

std::string label(const json& obj, const std::string& key) {
  const json* labels = nullptr;
  if (obj.contains("metadata") && obj["metadata"].contains("labels"))
    labels = &obj["metadata"]["labels"];
  if (!labels || !labels->is_object() || !labels->contains(key) || !(*labels)[key].is_string())
    return "";
  return (*labels)[key].get<std::string>();
}

json partial_metadata(const json& obj) {
  json meta = obj.contains("metadata") ? obj["metadata"] : json::object();
  meta.erase("managedFields");
  return {{"kind", "PartialObjectMetadata"}, {"apiVersion", "meta.k8s.io/v1"}, {"metadata", meta}};
}

}  // namespace

std::string rfc3339(int64_t unix_seconds) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::optional<int64_t> parse_rfc3339(const std::string& text) {
  std::tm tm{};
  const char* end = strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (!end) return std::nullopt;
  return static_cast<int64_t>(timegm(&tm));
}

std::string human_age(std::chrono::seconds age) {
  int64_t s = age.count();
  if (s < 120) return fmt::format("{}s", s);
  int64_t m = s / 60;
  if (m < 10) return s % 60 ? fmt::format("{}m{}s", m, s % 60) : fmt::format("{}m", m);
  if (m < 180) return fmt::format("{}m", m);
  int64_t h = m / 60;
  if (h < 8) return m % 60 ? fmt::format("{}h{}m", h, m % 60) : fmt::format("{}h", h);
  if (h < 48) return fmt::format("{}h", h);
  int64_t d = h / 24;
  if (d < 8) return h % 24 ? fmt::format("{}d{}h", d, h % 24) : fmt::format("{}d", d);
  if (d < 365 * 2) return fmt::format("{}d", d);
  return fmt::format("{}y", d / 365);
}

std::string cpu_quantity(int64_t millis) {
  if (millis % 1000 == 0) return std::to_string(millis / 1000);
  return fmt::format("{}m", millis);
}

std::string bytes_quantity(int64_t bytes) {
  if (bytes % 1024 != 0) return std::to_string(bytes);
  if (bytes % (1024LL * 1024 * 1024) == 0)
    return fmt::format("{}Gi", bytes / (1024LL * 1024 * 1024));
  if (bytes % (1024LL * 1024) == 0) return fmt::format("{}Mi", bytes / (1024LL * 1024));
  return fmt::format("{}Ki", bytes / 1024);
}

json render_pod_status(const json& pod, const v1::StoredStatus* stored) {
  json status = json::object();
  std::string node = common::json_string_at(pod, {"spec", "nodeName"});
  const v1::PodStatus* ps = stored && stored->has_pod() ? &stored->pod() : nullptr;
  if (!ps) {
    status["phase"] = "Pending";
    if (!node.empty())
      status["conditions"] = json::array({{{"type", "PodScheduled"}, {"status", "True"}}});
    return status;
  }
  if (node.empty() && stored->generation() == 0 && ps->reason() == "Unschedulable") {
    // The scheduler's status for an unbound pod (generation 0: no edge wrote it): why no node
    // fits, as PodScheduled=False.
    status["phase"] = "Pending";
    json c = {{"type", "PodScheduled"}, {"status", "False"}, {"lastProbeTime", nullptr}};
    c["lastTransitionTime"] =
        stored->changed_at() > 0 ? json(rfc3339(stored->changed_at() / 1000)) : json(nullptr);
    if (ps->has_reason()) c["reason"] = ps->reason();
    if (ps->has_message()) c["message"] = ps->message();
    status["conditions"] = json::array({std::move(c)});
    return status;
  }
  std::string phase = phase_name(ps->phase());
  status["phase"] = phase;
  if (ps->has_reason()) status["reason"] = ps->reason();
  if (ps->has_message()) status["message"] = ps->message();
  std::string started = ps->has_start_time() ? rfc3339(ps->start_time()) : "";
  std::string ready_since = ps->has_ready_since() ? rfc3339(ps->ready_since()) : started;
  bool ready = ps->ready() && !stored->unreachable();
  auto condition = [&](const char* type, std::string value, const std::string& since) {
    json c = {{"type", type}, {"status", value}};
    c["lastProbeTime"] = nullptr;
    c["lastTransitionTime"] = since.empty() ? json(nullptr) : json(since);
    return c;
  };
  std::string ready_value = stored->unreachable() ? "Unknown" : (ready ? "True" : "False");
  status["conditions"] = json::array({
      condition("Initialized", ps->has_start_time() || phase != "Pending" ? "True" : "False",
                started),
      condition("Ready", ready_value, ready_since),
      condition("ContainersReady", ready_value, ready_since),
      condition("PodScheduled", node.empty() ? "False" : "True", started),
  });
  if (ps->has_pod_ip() && !ps->pod_ip().empty()) {
    status["podIP"] = ps->pod_ip();
    status["podIPs"] = json::array({{{"ip", ps->pod_ip()}}});
  }
  if (!started.empty()) status["startTime"] = started;
  // Container statuses in spec order; the image falls back to the spec's.
  std::map<std::string, std::string> spec_images;
  if (pod.contains("spec") && pod["spec"].contains("containers") &&
      pod["spec"]["containers"].is_array())
    for (const auto& c : pod["spec"]["containers"])
      if (c.is_object()) spec_images[c.value("name", "")] = c.value("image", "");
  json containers = json::array();
  for (const auto& c : ps->containers()) {
    json cs = {{"name", c.name()}};
    cs["state"] = c.has_state() ? render_state(c.state()) : json::object();
    cs["lastState"] = c.has_last_state() ? render_state(c.last_state()) : json::object();
    cs["ready"] = c.has_ready() && c.ready();
    cs["restartCount"] = c.has_restart_count() ? c.restart_count() : 0;
    cs["image"] = c.has_image() && !c.image().empty() ? c.image() : spec_images[c.name()];
    cs["imageID"] = c.has_image_id() ? c.image_id() : "";
    cs["started"] = c.has_state() && c.state().has_running();
    containers.push_back(std::move(cs));
  }
  if (!containers.empty()) status["containerStatuses"] = std::move(containers);
  return status;
}

json render_node_status(const v1::StoredStatus* stored) {
  json status = json::object();
  const v1::NodeStatus* ns = stored && stored->has_node() ? &stored->node() : nullptr;
  json conditions = json::array();
  bool have_ready = false;
  std::string heartbeat = stored && stored->changed_at() ? ms_time(stored->changed_at()) : "";
  if (ns) {
    for (const auto& c : ns->conditions()) {
      std::string type = node_condition_type(c.type());
      if (type.empty()) continue;
      json out = {{"type", type}, {"status", condition_status(c.status())}};
      out["lastTransitionTime"] =
          c.last_transition_time() ? json(rfc3339(c.last_transition_time())) : json(nullptr);
      out["lastHeartbeatTime"] = heartbeat.empty() ? json(nullptr) : json(heartbeat);
      if (!c.reason().empty()) out["reason"] = c.reason();
      if (!c.message().empty()) out["message"] = c.message();
      if (type == "Ready") {
        have_ready = true;
        if (stored->unreachable()) {
          out["status"] = "Unknown";
          out["reason"] = "NodeStatusUnknown";
          out["message"] =
              "The edge node stopped reporting; its workloads keep running as they were.";
          if (stored->unreachable_since())
            out["lastTransitionTime"] = ms_time(stored->unreachable_since());
        }
      }
      conditions.push_back(std::move(out));
    }
  }
  if (!have_ready) {
    json out = {{"type", "Ready"},
                {"status", "Unknown"},
                {"reason", "NodeStatusNeverUpdated"},
                {"message", "The edge node has not reported its status yet."}};
    out["lastTransitionTime"] = nullptr;
    out["lastHeartbeatTime"] = nullptr;
    if (stored && stored->unreachable()) {
      out["reason"] = "NodeStatusUnknown";
      out["message"] = "The edge node stopped reporting; its workloads keep running as they were.";
    }
    conditions.insert(conditions.begin(), std::move(out));
  }
  status["conditions"] = std::move(conditions);
  if (!ns) return status;
  status["capacity"] = resources(ns->capacity());
  status["allocatable"] = resources(ns->allocatable());
  json addresses = json::array();
  for (const auto& a : ns->addresses().items()) {
    const char* type = a.type() == v1::ADDRESS_TYPE_EXTERNAL_IP ? "ExternalIP"
                       : a.type() == v1::ADDRESS_TYPE_HOSTNAME  ? "Hostname"
                                                                : "InternalIP";
    addresses.push_back({{"type", type}, {"address", a.address()}});
  }
  status["addresses"] = std::move(addresses);
  const auto& info = ns->node_info();
  status["nodeInfo"] = {{"architecture", info.architecture()},
                        {"operatingSystem", info.operating_system()},
                        {"osImage", info.os_image()},
                        {"kernelVersion", info.kernel_version()},
                        {"containerRuntimeVersion", info.container_runtime_version()},
                        {"kubeletVersion", info.edgecore_version()},
                        {"kubeProxyVersion", ""},
                        {"machineID", info.machine_id()},
                        {"bootID", info.boot_id()},
                        {"systemUUID", ""}};
  return status;
}

PodSummary summarize_pod(const json& pod) {
  PodSummary s;
  int total = 0;
  int ready = 0;
  if (pod.contains("spec") && pod["spec"].contains("containers") &&
      pod["spec"]["containers"].is_array())
    total = static_cast<int>(pod["spec"]["containers"].size());
  const json status = pod.value("status", json::object());
  std::string reason = status.value("phase", "Pending");
  if (status.contains("reason") && status["reason"].is_string())
    reason = status["reason"].get<std::string>();
  if (status.contains("containerStatuses")) {
    for (const auto& cs : status["containerStatuses"]) {
      s.restarts += cs.value("restartCount", 0);
      if (cs.value("ready", false)) ++ready;
      const json& state =
          cs.value("state", json::object()).is_object() ? cs["state"] : json::object();
      if (state.contains("waiting") && state["waiting"].contains("reason")) {
        reason = state["waiting"]["reason"].get<std::string>();
      } else if (state.contains("terminated")) {
        const json& t = state["terminated"];
        if (t.contains("reason")) {
          reason = t["reason"].get<std::string>();
        } else {
          reason = fmt::format("ExitCode:{}", t.value("exitCode", 0));
        }
      }
    }
    // A running pod whose containers run reads Running, not the reason of an old container.
    if (status.value("phase", "") == "Running" && ready == total && total > 0) reason = "Running";
  }
  if (pod.contains("metadata") && pod["metadata"].contains("deletionTimestamp") &&
      !pod["metadata"]["deletionTimestamp"].is_null())
    reason = "Terminating";
  s.ready = fmt::format("{}/{}", ready, total);
  s.status = reason;
  return s;
}

std::string node_status_text(const json& node) {
  std::string text = "Unknown";
  if (node.contains("status") && node["status"].contains("conditions")) {
    for (const auto& c : node["status"]["conditions"]) {
      if (c.value("type", "") != "Ready") continue;
      std::string v = c.value("status", "Unknown");
      text = v == "True" ? "Ready" : v == "False" ? "NotReady" : "Unknown";
    }
  }
  if (node.contains("spec") && node["spec"].value("unschedulable", false))
    text += ",SchedulingDisabled";
  return text;
}

json render_table(const std::vector<TableColumn>& columns, const std::vector<json>& objects,
                  const std::string& resource_version, SystemTime now) {
  json definitions = json::array();
  for (const auto& c : columns)
    definitions.push_back({{"name", c.name},
                           {"type", c.type},
                           {"format", c.format},
                           {"description", c.description},
                           {"priority", c.priority}});
  json rows = json::array();
  for (const auto& obj : objects) {
    json cells = json::array();
    for (const auto& c : columns) cells.push_back(c.cell ? c.cell(obj, now) : json(""));
    rows.push_back({{"cells", std::move(cells)}, {"object", partial_metadata(obj)}});
  }
  return {{"kind", "Table"},
          {"apiVersion", "meta.k8s.io/v1"},
          {"metadata", {{"resourceVersion", resource_version}}},
          {"columnDefinitions", std::move(definitions)},
          {"rows", std::move(rows)}};
}

std::string or_none(const std::string& s) {
  return s.empty() ? std::string("<none>") : s;
}

std::string age_of(const json& obj, SystemTime now) {
  auto created = parse_rfc3339(common::json_string_at(obj, {"metadata", "creationTimestamp"}));
  if (!created) return "<unknown>";
  auto now_s = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  return human_age(std::chrono::seconds(std::max<int64_t>(0, now_s - *created)));
}

std::string label_of(const json& obj, const std::string& key) {
  return label(obj, key);
}

}  // namespace gantry::cloud::api
