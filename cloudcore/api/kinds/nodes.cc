// core/v1 Node: the desired part (labels, taints, unschedulable) is stored as given; the status
// is what the node's edgecore reports through the hub (a StoredStatus), rendered on every read.
#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/registry/keys.h"

namespace gantry::cloud::api::kinds {

Kind node() {
  using nlohmann::json;
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
  auto info = [](const char* field) {
    return [field](const json& obj, SystemTime) {
      return json(or_none(string_at(obj, {"status", "nodeInfo", field})));
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
