#include "cloudcore/api/authorizer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <vector>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/registry.h"
#include "cloudcore/store/store.h"
#include "common/base/json.h"

namespace gantry::cloud::api {
namespace {

using nlohmann::json;

// kWorkloads: the kinds with a pod template (apps/v1 deployments, replicasets, daemonsets; batch/v1
// jobs), judged as their namespace's objects and admitted through their template as pods are.
// kControllerRevisions: written by the workload controllers only, read as workloads.
enum class Kind {
  kPods,
  kNodes,
  kNamespaces,
  kConfigMaps,
  kSecrets,
  kEvents,
  kWorkloads,
  kControllerRevisions,
  kOther
};

Kind kind_of(std::string_view resource) {
  if (resource == "pods") return Kind::kPods;
  if (resource == "nodes") return Kind::kNodes;
  if (resource == "namespaces") return Kind::kNamespaces;
  if (resource == "configmaps") return Kind::kConfigMaps;
  if (resource == "secrets") return Kind::kSecrets;
  if (resource == "events") return Kind::kEvents;
  if (resource == "deployments" || resource == "replicasets" || resource == "daemonsets" ||
      resource == "jobs" || resource == "cronjobs")
    return Kind::kWorkloads;
  if (resource == "controllerrevisions") return Kind::kControllerRevisions;
  return Kind::kOther;
}

bool namespaced(Kind k) {
  return k == Kind::kPods || k == Kind::kConfigMaps || k == Kind::kSecrets || k == Kind::kEvents ||
         k == Kind::kWorkloads || k == Kind::kControllerRevisions;
}

std::map<std::string, std::string> labels_of(const json& obj) {
  std::map<std::string, std::string> out;
  auto meta = obj.find("metadata");
  if (meta == obj.end() || !meta->is_object()) return out;
  auto labels = meta->find("labels");
  if (labels == meta->end() || !labels->is_object()) return out;
  for (auto it = labels->begin(); it != labels->end(); ++it)
    if (it->is_string()) out[it.key()] = it->get<std::string>();
  return out;
}

std::string list_of(const std::set<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out.empty() ? "<none>" : out;
}

std::string shown(const std::string& province) {
  return province.empty() ? "<none>" : province;
}

Denial forbidden(std::string message) {
  return {403, "Forbidden", std::move(message)};
}

// Secrets need an operator's role; everything else a viewer's.
bool may(const Permissions& p, Kind k, const std::string& province, bool write) {
  if (p.admin) return true;
  if (province.empty()) return false;
  return write || k == Kind::kSecrets ? p.can_write(province) : p.can_read(province);
}

std::string unlabelled_namespace(const std::string& ns) {
  return fmt::format(
      "namespace \"{}\" belongs to no province (an administrator hands a namespace to province P "
      "by labelling it {}=P)",
      ns, kProvinceLabel);
}

}  // namespace

bool is_write_verb(std::string_view verb) {
  return verb == "create" || verb == "update" || verb == "patch" || verb == "delete" ||
         verb == "deletecollection" || verb == "*";
}

std::string verb_of(std::string_view method, bool named, bool watch) {
  if (method == "GET" || method == "HEAD") return named ? "get" : watch ? "watch" : "list";
  if (method == "POST") return "create";
  if (method == "PUT") return "update";
  if (method == "PATCH") return "patch";
  if (method == "DELETE") return named ? "delete" : "deletecollection";
  return std::string(method);
}

Authorizer::Authorizer(const Store& store, const Registry& registry)
    : store_(store), registry_(registry) {}

Authorizer::NamespaceInfo Authorizer::namespace_info(const std::string& ns) const {
  NamespaceInfo info;
  if (ns.empty()) return info;
  auto obj = load("namespaces", "", ns);
  if (!obj) return info;
  info.exists = true;
  info.labels = labels_of(*obj);
  if (auto it = info.labels.find(kProvinceLabel); it != info.labels.end())
    info.province = it->second;
  return info;
}

std::optional<json> Authorizer::load(const std::string& resource, const std::string& ns,
                                     const std::string& name) const {
  Kind k = kind_of(resource);
  std::string key;
  switch (k) {
    case Kind::kPods:
      key = std::string(keys::kPods) + ns + "/" + name;
      break;
    case Kind::kConfigMaps:
      key = std::string(keys::kConfigMaps) + ns + "/" + name;
      break;
    case Kind::kSecrets:
      key = std::string(keys::kSecrets) + ns + "/" + name;
      break;
    case Kind::kEvents:
      key = std::string(keys::kEvents) + ns + "/" + name;
      break;
    case Kind::kNodes:
      key = std::string(keys::kNodes) + name;
      break;
    case Kind::kNamespaces:
      key = std::string(keys::kNamespaces) + name;
      break;
    case Kind::kWorkloads:
    case Kind::kControllerRevisions:
      key = "/" + resource + "/" + ns + "/" + name;  // the kinds' prefix (kinds/deployments.cc)
      break;
    case Kind::kOther:
      return std::nullopt;
  }
  auto kv = store_.get(key);
  if (!kv.ok() || !kv->has_value()) return std::nullopt;
  v1::StoredObject stored;
  if (!stored.ParseFromString((*kv)->value)) return std::nullopt;
  json obj = json::parse(stored.json(), nullptr, false);
  if (!obj.is_object()) return std::nullopt;
  return obj;
}

std::string Authorizer::province_of(const std::string& resource, const json& obj) const {
  Kind k = kind_of(resource);
  if (k == Kind::kNodes) return labels_of(obj)[kProvinceLabel];
  if (!namespaced(k)) return "";
  std::string province =
      namespace_info(common::json_string_at(obj, {"metadata", "namespace"})).province;
  if (!province.empty() || k != Kind::kPods) return province;
  std::string node = common::json_string_at(obj, {"spec", "nodeName"});
  if (node.empty()) return "";
  auto info = registry_.node(node);
  return info ? info->province : "";
}

std::optional<Denial> Authorizer::check_request(const Identity& who, const Permissions& p,
                                                const std::string& resource, const std::string& ns,
                                                const std::string& verb) const {
  if (p.admin) return std::nullopt;
  const bool write = is_write_verb(verb);
  const Kind k = kind_of(resource);
  const bool viewer_only = p.write_provinces.empty();
  switch (k) {
    case Kind::kNamespaces:
      if (!write) return std::nullopt;
      return forbidden(fmt::format(
          "namespaces is forbidden: user \"{}\" may not {} namespaces: administrators make them "
          "and label them ({} hands one to a province, {} sets its Pod Security level)",
          who.user, verb, kProvinceLabel, kPodSecurityEnforceLabel));
    case Kind::kNodes:
      if (!write) return std::nullopt;
      if (viewer_only)
        return forbidden(
            fmt::format("nodes is forbidden: user \"{}\" has read-only (viewer) access", who.user));
      if (verb == "create" || verb == "*")
        return forbidden(fmt::format(
            "nodes is forbidden: user \"{}\" may not create nodes: a node object is made by the "
            "node's own join (gantryadm join), which never takes over an object prepared under "
            "its name; province operators label, taint, cordon and delete their province's nodes",
            who.user));
      return std::nullopt;
    case Kind::kOther:
      return forbidden(fmt::format(
          "{} is forbidden: user \"{}\" has a province-scoped role, which does not cover {}",
          resource, who.user, resource));
    case Kind::kControllerRevisions:
      if (!write) break;
      return forbidden(fmt::format(
          "controllerrevisions is forbidden: user \"{}\" may not {} controllerrevisions: the "
          "DaemonSet and Deployment controllers write them (province roles read them)",
          who.user, verb));
    default:
      break;
  }
  // Pods, configmaps, secrets, events, workloads, controllerrevisions.
  if (write && viewer_only)
    return forbidden(fmt::format("{} is forbidden: user \"{}\" has read-only (viewer) access",
                                 resource, who.user));
  if (k == Kind::kSecrets && viewer_only)
    return forbidden(fmt::format(
        "secrets is forbidden: user \"{}\" has read-only (viewer) access, and viewers do not read "
        "secrets (as with Kubernetes' view role); operators of the namespace's province do",
        who.user));
  if (ns.empty()) return std::nullopt;  // across namespaces: filtered object by object
  NamespaceInfo info = namespace_info(ns);
  if (!info.province.empty()) {
    if (may(p, k, info.province, write)) return std::nullopt;
    return forbidden(fmt::format(
        "{} is forbidden: user \"{}\" may {} only province {}; namespace \"{}\" belongs to "
        "province \"{}\"",
        resource, who.user, write ? "change" : "see",
        list_of(write ? p.write_provinces : p.read_provinces), ns, info.province));
  }
  // A namespace of no province: pods by the province of their node, the rest for administrators.
  if (k == Kind::kPods) return std::nullopt;
  return forbidden(fmt::format("{} is forbidden: user \"{}\" may not {} {} in namespace \"{}\": {}",
                               resource, who.user, write ? "change" : "read", resource, ns,
                               unlabelled_namespace(ns)));
}

std::optional<Denial> Authorizer::check_object(const Identity& who, const Permissions& p,
                                               const std::string& resource, const json& obj,
                                               bool write) const {
  if (p.admin) return std::nullopt;
  const Kind k = kind_of(resource);
  if (k == Kind::kNamespaces) {
    if (!write) return std::nullopt;
    return check_request(who, p, resource, "", "update");
  }
  if (k == Kind::kOther) return check_request(who, p, resource, "", write ? "update" : "get");
  std::string province = province_of(resource, obj);
  if (may(p, k, province, write)) return std::nullopt;
  std::string ns = common::json_string_at(obj, {"metadata", "namespace"});
  std::string where;
  if (k == Kind::kNodes) {
    where = fmt::format("it is in province \"{}\"", shown(province));
  } else if (NamespaceInfo info = namespace_info(ns); !info.province.empty()) {
    where = fmt::format("namespace \"{}\" belongs to province \"{}\"", ns, info.province);
  } else if (k == Kind::kPods) {
    std::string node = common::json_string_at(obj, {"spec", "nodeName"});
    where = node.empty() ? fmt::format(
                               "the pod is not bound to a node and {} (set spec.nodeName to a node "
                               "of your province, or use a namespace of your province)",
                               unlabelled_namespace(ns))
                         : fmt::format("it is bound to node \"{}\" in province \"{}\"", node,
                                       shown(province));
  } else {
    where = unlabelled_namespace(ns);
  }
  std::string what = write ? "change" : "see";
  std::set<std::string> mine = write ? p.write_provinces : p.read_provinces;
  if (k == Kind::kSecrets && !write) {
    what = "read the secrets of";
    mine = p.write_provinces;
  }
  return forbidden(fmt::format("{} \"{}\" is forbidden: user \"{}\" may {} only province {}; {}",
                               resource, common::json_string_at(obj, {"metadata", "name"}),
                               who.user, what, list_of(mine), where));
}

bool Authorizer::visible(const Permissions& p, const std::string& resource, const json& obj) const {
  if (p.admin) return true;
  const Kind k = kind_of(resource);
  if (k == Kind::kNamespaces) return true;
  if (k == Kind::kOther) return false;
  return may(p, k, province_of(resource, obj), false);
}

std::optional<Denial> Authorizer::admit(const Identity& who, const Permissions& p,
                                        const std::string& resource, json& obj,
                                        const json* old) const {
  const Kind k = kind_of(resource);
  if (k == Kind::kNodes) return admit_node(obj, old, p, who.user);
  if (k != Kind::kPods && k != Kind::kWorkloads) return std::nullopt;
  PodAdmission in;
  in.permissions = &p;
  in.user = who.user;
  in.namespace_name = common::json_string_at(obj, {"metadata", "namespace"});
  in.resource = resource;
  NamespaceInfo info = namespace_info(in.namespace_name);
  in.namespace_labels = info.labels;
  in.namespace_province = info.province;
  in.may_read = [&](std::string_view what) {
    return !check_request(who, p, std::string(what), in.namespace_name, "get");
  };
  in.node_province = [this](const std::string& node) -> std::optional<std::string> {
    auto n = registry_.node(node);
    if (!n) return std::nullopt;
    return n->province;
  };
  if (k == Kind::kPods) return admit_pod(obj, old, in);

  // A workload: its pod template is admitted as the pods its controller will make from it (the
  // controllers write those pods directly, so this is where they are judged), and gets the same
  // province nodeSelector.
  // A CronJob's pod template is in its jobTemplate.
  const bool cron = resource == "cronjobs";
  auto as_pod = [&](const json& workload) -> std::optional<json> {
    const json* tmpl = cron ? common::json_at(workload, {"spec", "jobTemplate", "spec", "template"})
                            : common::json_at(workload, {"spec", "template"});
    if (!tmpl || !tmpl->is_object()) return std::nullopt;
    auto pod_spec = tmpl->find("spec");
    if (pod_spec == tmpl->end() || !pod_spec->is_object()) return std::nullopt;
    return json{{"metadata",
                 {{"name", common::json_string_at(workload, {"metadata", "name"})},
                  {"namespace", common::json_string_at(workload, {"metadata", "namespace"})}}},
                {"spec", *pod_spec}};
  };
  auto pod = as_pod(obj);
  if (!pod) return std::nullopt;  // validation refuses a workload without a template
  std::optional<json> old_pod = old ? as_pod(*old) : std::nullopt;
  in.spec_path = cron ? "spec.jobTemplate.spec.template.spec" : "spec.template.spec";
  if (auto d = admit_pod(*pod, old_pod ? &*old_pod : nullptr, in)) return d;
  json& tmpl = cron ? obj["spec"]["jobTemplate"]["spec"]["template"] : obj["spec"]["template"];
  tmpl["spec"] = std::move((*pod)["spec"]);
  return std::nullopt;
}

// ---------------------------------------------------------------------------------------------
// Reviews.

namespace {

// What every authenticated caller may GET without a resource.
bool open_path(const std::string& path) {
  static const std::set<std::string> kExact = {"/api",     "/apis",    "/healthz",
                                               "/livez",   "/readyz",  "/version",
                                               "/openapi", "/metrics", "/version/"};
  if (kExact.count(path)) return true;
  for (const char* prefix : {"/api/", "/apis/", "/openapi/", "/healthz/", "/livez/", "/readyz/"})
    if (path.starts_with(prefix)) return true;
  return false;
}

// kubectl sends the review kinds as Kubernetes protobuf: "k8s\0" then a runtime.Unknown
// {typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2}, raw being the review message. Only the
// fields a review asks with are read; the answer is JSON (clients decode by Content-Type).
bool next_field(std::string_view& in, uint32_t& field, std::string_view& bytes, bool& ok) {
  auto varint = [&](uint64_t& out) {
    out = 0;
    for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
      auto b = static_cast<uint8_t>(in.front());
      in.remove_prefix(1);
      out |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  };
  bytes = {};
  if (in.empty()) return false;
  uint64_t key = 0;
  if (!varint(key)) return ok = false;
  field = static_cast<uint32_t>(key >> 3);
  switch (key & 7) {
    case 0: {
      uint64_t v;
      if (!varint(v)) return ok = false;
      return true;
    }
    case 1:
      if (in.size() < 8) return ok = false;
      in.remove_prefix(8);
      return true;
    case 5:
      if (in.size() < 4) return ok = false;
      in.remove_prefix(4);
      return true;
    case 2: {
      uint64_t n;
      if (!varint(n) || n > in.size()) return ok = false;
      bytes = in.substr(0, n);
      in.remove_prefix(n);
      return true;
    }
    default:
      return ok = false;
  }
}

// The string fields of a message, by number.
std::map<uint32_t, std::string_view> fields_of(std::string_view message, bool& ok) {
  std::map<uint32_t, std::string_view> out;
  uint32_t field = 0;
  std::string_view bytes;
  while (next_field(message, field, bytes, ok)) out[field] = bytes;
  return out;
}

std::optional<json> review_from_protobuf(std::string_view body, const std::string& resource) {
  constexpr std::string_view kMagic("k8s\0", 4);
  if (!body.starts_with(kMagic)) return std::nullopt;
  bool ok = true;
  auto unknown = fields_of(body.substr(kMagic.size()), ok);
  auto type = fields_of(unknown[1], ok);
  auto review = fields_of(unknown[2], ok);
  if (!ok) return std::nullopt;
  json out = {{"apiVersion", std::string(type[1])}, {"kind", std::string(type[2])}};
  if (resource == "selfsubjectreviews") return out;
  auto spec = fields_of(review[2], ok);
  if (resource == "selfsubjectrulesreviews") {
    out["spec"] = {{"namespace", std::string(spec[1])}};
  } else if (spec.count(1)) {
    auto a = fields_of(spec[1], ok);
    out["spec"]["resourceAttributes"] = {
        {"namespace", std::string(a[1])}, {"verb", std::string(a[2])},
        {"group", std::string(a[3])},     {"version", std::string(a[4])},
        {"resource", std::string(a[5])},  {"subresource", std::string(a[6])},
        {"name", std::string(a[7])}};
  } else if (spec.count(2)) {
    auto a = fields_of(spec[2], ok);
    out["spec"]["nonResourceAttributes"] = {{"path", std::string(a[1])},
                                            {"verb", std::string(a[2])}};
  } else {
    out["spec"] = json::object();
  }
  if (!ok) return std::nullopt;
  return out;
}

}  // namespace

AccessAnswer Authorizer::decide(const Identity& who, const AccessQuery& q) const {
  Permissions p = permissions_of(who);
  if (p.admin)
    return {true, fmt::format("user \"{}\" is in group system:masters (administrator)", who.user)};
  if (q.resource.empty()) {
    if (!q.path.empty() && q.verb == "get" && open_path(q.path))
      return {true, "discovery and health endpoints are open to every authenticated user"};
    return {false, fmt::format("user \"{}\" has a province-scoped role, which gives no access to "
                               "{} {}",
                               who.user, q.verb, q.path.empty() ? "<no path>" : q.path)};
  }
  // The review kinds themselves, and the province aggregates.
  if ((q.group == "authorization.k8s.io" &&
       (q.resource == "selfsubjectaccessreviews" || q.resource == "selfsubjectrulesreviews")) ||
      (q.group == "authentication.k8s.io" && q.resource == "selfsubjectreviews"))
    return {q.verb == "create", q.verb == "create" ? "every user may review their own access"
                                                   : "reviews are only created"};
  if (q.group == "gantry.io" && q.resource == "provinces") {
    if (q.verb != "get" && q.verb != "list" && q.verb != "watch")
      return {false, "provinces are read-only"};
    if (!q.name.empty())
      return {p.can_read(q.name), p.can_read(q.name)
                                      ? fmt::format("province \"{}\" is yours", q.name)
                                      : fmt::format("user \"{}\" may see only province {}",
                                                    who.user, list_of(p.read_provinces))};
    return {!p.read_provinces.empty(),
            fmt::format("the list shows province {}", list_of(p.read_provinces))};
  }
  const Kind k = kind_of(q.resource);
  const bool apps = k == Kind::kWorkloads || k == Kind::kControllerRevisions;
  bool core = apps
                  ? q.group == (q.resource == "jobs" || q.resource == "cronjobs" ? "batch" : "apps")
                  : q.group.empty() || (k == Kind::kEvents && q.group == "events.k8s.io");
  if (!core || k == Kind::kOther)
    return {false,
            fmt::format("user \"{}\" has a province-scoped role, which does not cover {}{}{}",
                        who.user, q.resource, q.group.empty() ? "" : ".", q.group)};
  std::string verb = q.verb;
  if (!q.subresource.empty()) {
    if (k == Kind::kPods && q.subresource == "log") {
      if (verb != "get") return {false, "pods/log is only read (get)"};
    } else if ((k == Kind::kPods || k == Kind::kNodes || k == Kind::kWorkloads) &&
               q.subresource == "status") {
      // As the object itself.
    } else if (k == Kind::kWorkloads && q.subresource == "scale" && q.resource != "daemonsets" &&
               q.resource != "jobs" && q.resource != "cronjobs") {
      // As the object itself (kubectl scale).
    } else if (k == Kind::kPods && (q.subresource == "exec" || q.subresource == "attach")) {
      // kube asks `create` (the WebSocket GET is authorized as `get` too); either way it runs
      // something in the pod: the province's write access.
      if (verb != "create" && verb != "get")
        return {false,
                fmt::format("pods/{} is only created (or got, for WebSockets)", q.subresource)};
      verb = "create";
    } else if (k == Kind::kPods && q.subresource == "eviction") {
      if (verb != "create") return {false, "an eviction is only created"};
      verb = "delete";
    } else {
      return {false, fmt::format("{}/{} is not open to province roles", q.resource, q.subresource)};
    }
  }
  const std::string ns = namespaced(k) ? q.ns : "";
  if (auto d = check_request(who, p, q.resource, ns, verb)) return {false, d->message};
  const bool write = is_write_verb(verb);
  if (!q.name.empty() && (ns.empty() == !namespaced(k))) {
    if (auto obj = load(q.resource, ns, q.name)) {
      if (auto d = check_object(who, p, q.resource, *obj, write)) return {false, d->message};
      return {true, fmt::format("{} \"{}\" is in province \"{}\"", q.resource, q.name,
                                province_of(q.resource, *obj))};
    }
  }
  // Allowed, perhaps only for some of the objects.
  std::set<std::string> mine = write ? p.write_provinces : p.read_provinces;
  if (k == Kind::kNamespaces) return {true, "every user reads namespaces"};
  if (k == Kind::kNodes) return {true, fmt::format("only the nodes of province {}", list_of(mine))};
  if (ns.empty())
    return {true, fmt::format("only the {} of province {}", q.resource, list_of(mine))};
  NamespaceInfo info = namespace_info(ns);
  if (!info.province.empty())
    return {true, fmt::format("namespace \"{}\" belongs to province \"{}\"", ns, info.province)};
  return {true, fmt::format("only pods bound to nodes of province {} ({})", list_of(mine),
                            unlabelled_namespace(ns))};
}

RulesAnswer Authorizer::rules(const Identity& who, const std::string& ns) const {
  Permissions p = permissions_of(who);
  RulesAnswer out;
  auto rule = [&](std::vector<std::string> verbs, std::vector<std::string> groups,
                  std::vector<std::string> resources, std::vector<std::string> names = {}) {
    out.rules.push_back(
        {std::move(verbs), std::move(groups), std::move(resources), std::move(names)});
  };
  rule({"create"}, {"authorization.k8s.io"},
       {"selfsubjectaccessreviews", "selfsubjectrulesreviews"});
  rule({"create"}, {"authentication.k8s.io"}, {"selfsubjectreviews"});
  if (p.admin) {
    rule({"*"}, {"*"}, {"*"});
    return out;
  }
  const std::vector<std::string> kRead = {"get", "list", "watch"};
  const std::vector<std::string> kAll = {"create", "delete", "deletecollection", "get",
                                         "list",   "patch",  "update",           "watch"};
  rule(kRead, {""}, {"namespaces"});
  if (!p.read_provinces.empty()) {
    std::vector<std::string> provinces(p.read_provinces.begin(), p.read_provinces.end());
    rule({"get", "list"}, {"gantry.io"}, {"provinces"}, provinces);
    // Nodes: only those labelled with the caller's provinces (the rules cannot say so).
    rule(kRead, {""}, {"nodes"});
    out.incomplete = true;
  }
  if (!p.write_provinces.empty()) rule({"delete", "patch", "update"}, {""}, {"nodes"});
  NamespaceInfo info = namespace_info(ns);
  if (!info.province.empty()) {
    if (p.can_write(info.province)) {
      rule(kAll, {""}, {"pods", "configmaps", "secrets", "events"});
      rule(kAll, {"events.k8s.io"}, {"events"});
      rule({"get"}, {""}, {"pods/log"});
      rule({"create", "get"}, {""}, {"pods/exec", "pods/attach"});
      rule(kAll, {"apps"},
           {"deployments", "replicasets", "daemonsets", "deployments/scale", "replicasets/scale"});
      rule(kAll, {"batch"}, {"jobs", "cronjobs"});
      rule(kRead, {"apps"}, {"controllerrevisions"});
    } else if (p.can_read(info.province)) {
      rule(kRead, {""}, {"pods", "configmaps", "events"});
      rule(kRead, {"events.k8s.io"}, {"events"});
      rule({"get"}, {""}, {"pods/log"});
      rule(kRead, {"apps"}, {"deployments", "replicasets", "daemonsets", "controllerrevisions"});
      rule(kRead, {"batch"}, {"jobs", "cronjobs"});
    }
  } else if (!p.read_provinces.empty()) {
    // Pods bound to the caller's nodes only.
    rule(p.write_provinces.empty() ? kRead : kAll, {""}, {"pods"});
    rule({"get"}, {""}, {"pods/log"});
    if (!p.write_provinces.empty()) rule({"create", "get"}, {""}, {"pods/exec", "pods/attach"});
    out.incomplete = true;
  }
  return out;
}

std::optional<ReviewResponse> serve_review(const Authorizer& authorizer, const Identity& who,
                                           std::string_view method, std::string_view path,
                                           std::string_view body) {
  constexpr std::string_view kAuthz = "/apis/authorization.k8s.io/v1/";
  constexpr std::string_view kAuthn = "/apis/authentication.k8s.io/";
  std::string resource, api_version;
  if (path.starts_with(kAuthz)) {
    resource = std::string(path.substr(kAuthz.size()));
    api_version = "authorization.k8s.io/v1";
    if (resource != "selfsubjectaccessreviews" && resource != "selfsubjectrulesreviews")
      return std::nullopt;
  } else if (path.starts_with(kAuthn)) {
    std::string_view rest = path.substr(kAuthn.size());
    auto slash = rest.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    std::string version(rest.substr(0, slash));
    resource = std::string(rest.substr(slash + 1));
    if (resource != "selfsubjectreviews" ||
        (version != "v1" && version != "v1beta1" && version != "v1alpha1"))
      return std::nullopt;
    api_version = "authentication.k8s.io/" + version;
  } else {
    return std::nullopt;
  }
  auto status = [](int code, const char* reason, std::string message) {
    return ReviewResponse{code,
                          {{"kind", "Status"},
                           {"apiVersion", "v1"},
                           {"metadata", json::object()},
                           {"status", "Failure"},
                           {"message", std::move(message)},
                           {"reason", reason},
                           {"code", code}}};
  };
  if (method != "POST")
    return status(405, "MethodNotAllowed",
                  fmt::format("{} is only created (POST); {} is not supported", resource, method));
  auto from_protobuf = review_from_protobuf(body, resource);
  json request;
  if (from_protobuf) {
    request = std::move(*from_protobuf);
  } else {
    // The bounded decoder (common/base/json.h): a deeply nested body is a 400, not a crash.
    auto parsed = common::parse_json(body);
    if (body.empty() || !parsed.ok())
      return status(400, "BadRequest",
                    fmt::format("the request body is not a {} in JSON{}", resource,
                                parsed.ok() ? "" : ": " + parsed.status().message()));
    request = std::move(parsed).value();
  }
  auto answer = [&]() -> common::Result<json> {
    if (resource == "selfsubjectreviews") return self_subject_review(request, who, api_version);
    if (resource == "selfsubjectaccessreviews")
      return self_subject_access_review(
          request, [&](const AccessQuery& q) { return authorizer.decide(who, q); }, api_version);
    return self_subject_rules_review(
        request, [&](const std::string& ns) { return authorizer.rules(who, ns); }, api_version);
  }();
  if (!answer.ok()) return status(400, "BadRequest", answer.status().message());
  return ReviewResponse{201, std::move(answer).value()};
}

}  // namespace gantry::cloud::api
