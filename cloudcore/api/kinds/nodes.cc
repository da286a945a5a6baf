// core/v1 Node: the desired part (labels, taints, unschedulable) is stored as given; the status
// is what the node's edgecore reports through the hub (a StoredStatus), rendered on every read.
#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/registry/keys.h"
#include "common/base/json.h"

namespace gantry::cloud::api::kinds {
namespace {

using nlohmann::json;

// A node status write sets the conditions (the types a StoredStatus knows); capacity, addresses
// and nodeInfo stay as the node reported them.
common::Status write_node_status(const json& status, v1::StoredStatus& observed) {
  using common::Code;
  if (!status.is_object())
    return common::make_error(Code::kInvalidArgument, "status: must be an object");
  v1::NodeStatus& ns = *observed.mutable_node();
  if (!status.contains("conditions") || status["conditions"].is_null()) return common::ok_status();
  if (!status["conditions"].is_array())
    return common::make_error(Code::kInvalidArgument, "status.conditions: must be a list");
  static const std::pair<const char*, v1::NodeConditionType> kTypes[] = {
      {"Ready", v1::NODE_CONDITION_READY},
      {"MemoryPressure", v1::NODE_CONDITION_MEMORY_PRESSURE},
      {"DiskPressure", v1::NODE_CONDITION_DISK_PRESSURE},
      {"PIDPressure", v1::NODE_CONDITION_PID_PRESSURE},
      {"RuntimeUnavailable", v1::NODE_CONDITION_RUNTIME_UNAVAILABLE}};
  google::protobuf::RepeatedPtrField<v1::NodeCondition> conditions;
  for (size_t i = 0; i < status["conditions"].size(); ++i) {
    const json& c = status["conditions"][i];
    std::string type = c.is_object() ? c.value("type", "") : "";
    v1::NodeConditionType t = v1::NODE_CONDITION_UNSPECIFIED;
    for (const auto& [name, value] : kTypes)
      if (type == name) t = value;
    if (t == v1::NODE_CONDITION_UNSPECIFIED)
      return common::make_error(Code::kInvalidArgument,
                                "status.conditions[{}].type: Unsupported value: \"{}\": supported "
                                "values: \"Ready\", \"MemoryPressure\", \"DiskPressure\", "
                                "\"PIDPressure\", \"RuntimeUnavailable\"",
                                i, type);
    std::string value = c.value("status", "");
    if (value != "True" && value != "False" && value != "Unknown")
      return common::make_error(
          Code::kInvalidArgument,
          "status.conditions[{}].status: Unsupported value: \"{}\": supported values: \"True\", "
          "\"False\", \"Unknown\"",
          i, value);
    v1::NodeCondition& out = *conditions.Add();
    out.set_type(t);
    out.set_status(value == "True"    ? v1::CONDITION_STATUS_TRUE
                   : value == "False" ? v1::CONDITION_STATUS_FALSE
                                      : v1::CONDITION_STATUS_UNKNOWN);
    if (c.contains("reason") && c["reason"].is_string()) out.set_reason(c["reason"]);
    if (c.contains("message") && c["message"].is_string()) out.set_message(c["message"]);
    if (c.contains("lastTransitionTime") && c["lastTransitionTime"].is_string())
      if (auto at = parse_rfc3339(c["lastTransitionTime"].get<std::string>()))
        out.set_last_transition_time(*at);
  }
  *ns.mutable_conditions() = std::move(conditions);
  return common::ok_status();
}

}  // namespace

Kind node() {
  Kind k;
  k.version = "v1";
  k.kind = "Node";
  k.plural = "nodes";
  k.singular = "node";
  k.short_names = {"no"};
  k.namespaced = false;
  k.scope = ProvinceScope::kNodeLabel;
  k.prefix = std::string(keys::kNodes);
  k.status_prefix = std::string(keys::kNodeStatus);
  k.status = StatusSource::kObserved;
  k.edge_kind = v1::OBJECT_KIND_NODE;
  k.tracks_generation = true;
  k.selectable_fields = {"spec.unschedulable"};
  k.render_status = [](json& obj, const v1::StoredStatus* observed) {
    obj["status"] = render_node_status(observed);
  };
  k.subresources = {{"status", "", "v1", "Node", kGet | kPatch | kUpdate}};
  k.write_status = write_node_status;
  auto info = [](const char* field) {
    return [field](const json& obj, SystemTime) {
      return json(or_none(common::json_string_at(obj, {"status", "nodeInfo", field})));
    };
  };
  k.columns = {
      name_column(),
      {"Status", "string", "The node's Ready condition.", 0, "",
       [](const json& obj, SystemTime) { return json(node_status_text(obj)); }},
      {"Roles", "string", "From the node-role.kubernetes.io/* labels.", 0, "",
       [](const json& obj, SystemTime) {
         std::string roles;
         if (obj.contains("metadata") && obj["metadata"].contains("labels") &&
             obj["metadata"]["labels"].is_object())
           for (auto it = obj["metadata"]["labels"].begin(); it != obj["metadata"]["labels"].end();
                ++it)
             if (it.key().starts_with("node-role.kubernetes.io/"))
               roles += (roles.empty() ? "" : ",") + it.key().substr(24);
         return json(or_none(roles));
       }},
      age_column(),
      {"Version", "string", "The edgecore version the node reports.", 0, "",
       info("kubeletVersion")},
      {"Province", "string", "The topology.gantry.io/province label.", 0, "",
       [](const json& obj, SystemTime) {
         return json(or_none(label_of(obj, "topology.gantry.io/province")));
       }},
      {"Internal-IP", "string", "The node's internal address.", 1, "",
       [](const json& obj, SystemTime) {
         std::string ip;
         if (obj.contains("status") && obj["status"].contains("addresses"))
           for (const auto& a : obj["status"]["addresses"])
             if (a.value("type", "") == "InternalIP" && ip.empty()) ip = a.value("address", "");
         return json(or_none(ip));
       }},
      {"OS-Image", "string", "The node's OS image.", 1, "", info("osImage")},
      {"Kernel-Version", "string", "The node's kernel.", 1, "", info("kernelVersion")},
      {"Container-Runtime", "string", "The node's container runtime.", 1, "",
       info("containerRuntimeVersion")},
  };
  return k;
}

}  // namespace gantry::cloud::api::kinds
