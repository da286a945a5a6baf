#include "cloudcore/api/openapi.h"

#include <cctype>
#include <vector>

#include "cloudcore/api/kind.h"
#include "openapi/openapi_v2.pb.h"

namespace gantry::cloud::api {

using json = nlohmann::json;
namespace pb = gantry::openapi::v2;

namespace {

struct Parameter {
  const char* name;
  const char* type;
  const char* description;
};

constexpr Parameter kDryRun{"dryRun", "string",
                            "When present (All), the write is validated and answered but not "
                            "stored."};
constexpr Parameter kFieldManager{"fieldManager", "string",
                                  "The name of the actor making the change."};
constexpr Parameter kFieldValidation{"fieldValidation", "string",
                                     "Ignore, Warn (the default) or Strict: what the server does "
                                     "with fields the kind does not define."};
constexpr Parameter kForce{"force", "boolean", "Accepted for apply patches."};

// One operation of the document: a path, its method and what it writes.
struct Operation {
  std::string path;
  const char* method;  // "post" or "patch"
  std::string id;
  const Kind* kind;
  std::vector<Parameter> parameters;
};

// "apps" -> "Apps", "events.k8s.io" -> "EventsK8sIo", "" -> "Core"; then the version: "AppsV1".
std::string group_version_id(const Kind& k) {
  std::string out;
  bool upper = true;
  for (char c : k.group.empty() ? std::string("core") : k.group) {
    if (c == '.' || c == '-') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(std::toupper(static_cast<unsigned char>(c))) : c;
    upper = false;
  }
  std::string version = k.version;
  if (!version.empty())
    version[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(version[0])));
  return out + version;
}

std::vector<Operation> operations(const KindRegistry& kinds) {
  std::vector<Operation> out;
  for (const auto& k : kinds.all()) {
    std::string base =
        k->group.empty() ? "/api/" + k->version : "/apis/" + k->group + "/" + k->version;
    std::string collection = base + (k->namespaced ? "/namespaces/{namespace}/" : "/") + k->plural;
    std::string suffix = group_version_id(*k) + (k->namespaced ? "Namespaced" : "") + k->kind;
    if (k->allows(kCreate))
      out.push_back({collection,
                     "post",
                     "create" + suffix,
                     k.get(),
                     {kDryRun, kFieldManager, kFieldValidation}});
    if (k->allows(kPatch))
      out.push_back({collection + "/{name}",
                     "patch",
                     "patch" + suffix,
                     k.get(),
                     {kDryRun, kFieldManager, kFieldValidation, kForce}});
  }
  return out;
}

std::string gvk_yaml(const Kind& k) {
  return "group: \"" + k.group + "\"\nkind: " + k.kind + "\nversion: " + k.version + "\n";
}

}  // namespace

json openapi_v2_json(const KindRegistry& kinds, std::string_view server_version) {
  json paths = json::object();
  for (const auto& op : operations(kinds)) {
    json parameters = json::array();
    for (const auto& p : op.parameters)
      parameters.push_back(
          {{"in", "query"}, {"name", p.name}, {"type", p.type}, {"description", p.description}});
    paths[op.path][op.method] = {
        {"operationId", op.id},
        {"parameters", std::move(parameters)},
        {"x-kubernetes-group-version-kind",
         {{"group", op.kind->group}, {"version", op.kind->version}, {"kind", op.kind->kind}}}};
  }
  return {{"swagger", "2.0"},
          {"info", {{"title", "Gantry"}, {"version", server_version}}},
          {"paths", std::move(paths)},
          {"definitions", json::object()}};
}

std::string openapi_v2_protobuf(const KindRegistry& kinds, std::string_view server_version) {
  pb::Document doc;
  doc.set_swagger("2.0");
  doc.mutable_info()->set_title("Gantry");
  doc.mutable_info()->set_version(std::string(server_version));
  for (const auto& op : operations(kinds)) {
    auto* item = doc.mutable_paths()->add_path();
    item->set_name(op.path);
    pb::Operation* o = std::string_view(op.method) == "post"
                           ? item->mutable_value()->mutable_post()
                           : item->mutable_value()->mutable_patch();
    o->set_operation_id(op.id);
    for (const auto& p : op.parameters) {
      auto* q = o->add_parameters()
                    ->mutable_parameter()
                    ->mutable_non_body_parameter()
                    ->mutable_query_parameter_sub_schema();
      q->set_in("query");
      q->set_name(p.name);
      q->set_type(p.type);
      q->set_description(p.description);
    }
    auto* ext = o->add_vendor_extension();
    ext->set_name("x-kubernetes-group-version-kind");
    ext->mutable_value()->set_yaml(gvk_yaml(*op.kind));
  }
  return doc.SerializeAsString();
}

}  // namespace gantry::cloud::api
