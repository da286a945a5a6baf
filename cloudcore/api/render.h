// What the API shows: pods and nodes in full Kubernetes shape (status rendered from the trimmed
// StoredStatus the edges send), Table responses for `kubectl get`, timestamps and ages.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "gantry/v1/objects.pb.h"

namespace gantry::cloud::api {

using SystemTime = std::chrono::system_clock::time_point;

// "2024-05-01T12:00:00Z" from Unix seconds.
std::string rfc3339(int64_t unix_seconds);
std::optional<int64_t> parse_rfc3339(const std::string& text);
// kubectl's AGE: "45s", "3m", "5h", "2d", "3y".
std::string human_age(std::chrono::seconds age);

// `pod` is the stored Kubernetes JSON; its `status` is replaced by the one rendered from
// `status` (phase Pending with no conditions when nothing is stored yet).
nlohmann::json render_pod_status(const nlohmann::json& pod, const v1::StoredStatus* status);
// Ready reads Unknown when the node is marked unreachable or has never reported.
nlohmann::json render_node_status(const v1::StoredStatus* status);

// CPU millicores and bytes as Kubernetes quantities: "2", "1500m"; "4041736Ki".
std::string cpu_quantity(int64_t millis);
std::string bytes_quantity(int64_t bytes);

// One column of a kind's Table (meta.k8s.io/v1 TableColumnDefinition) and how to fill its cell
// from the fully rendered object. Priority 0 columns are printed by `kubectl get`, priority 1
// only with `-o wide`.
struct TableColumn {
  std::string name;
  std::string type = "string";
  std::string description;
  int priority = 0;
  std::string format;  // "name" for the name column
  std::function<nlohmann::json(const nlohmann::json& obj, SystemTime now)> cell;
};

// A meta.k8s.io/v1 Table with one row per (fully rendered) object; rows[].object is the
// object's PartialObjectMetadata. `now` makes AGE deterministic in tests.
nlohmann::json render_table(const std::vector<TableColumn>& columns,
                            const std::vector<nlohmann::json>& objects,
                            const std::string& resource_version, SystemTime now);

// Cell helpers for kind files (common::json_string_at reads a path): "<none>" for empty,
// kubectl's AGE of metadata.creationTimestamp, a label's value.
std::string or_none(const std::string& s);
std::string age_of(const nlohmann::json& obj, SystemTime now);
std::string label_of(const nlohmann::json& obj, const std::string& key);

// Pod READY ("1/2"), STATUS ("Running", "ContainerCreating", "Terminating", ...) and RESTARTS
// as kubectl prints them.
struct PodSummary {
  std::string ready;
  std::string status;
  int64_t restarts = 0;
};
PodSummary summarize_pod(const nlohmann::json& pod);
// "Ready", "NotReady", "Unknown" (+ ",SchedulingDisabled").
std::string node_status_text(const nlohmann::json& node);

}  // namespace gantry::cloud::api
