// gantry.io/v1 ImagePullJob (namespaced, like the pull secrets it may name): "have these images
// on these nodes". Defaults and validation here; the controller (cloudcore/controllers/imagepull)
// sends the pulls over the tunnel and writes the status. docs/workloads.md, "Pre-pulling images".
#include <fmt/format.h>

#include "cloudcore/api/kinds/kinds.h"
#include "cloudcore/api/kinds/workload_common.h"

namespace gantry::cloud::api::kinds {

using common::Code;
using nlohmann::json;

namespace {

common::Status positive_int(const json& obj, const char* field, const std::string& path,
                            bool zero_ok) {
  if (!obj.contains(field)) return common::ok_status();
  const json& v = obj[field];
  if (!v.is_number_integer() || v.get<int64_t>() < (zero_ok ? 0 : 1))
    return common::make_error(Code::kInvalidArgument, "{}: Invalid value: {}: must be {}", path,
                              v.dump(), zero_ok ? "greater than or equal to 0" : "at least 1");
  return common::ok_status();
}

}  // namespace

Kind image_pull_job() {
  Kind k;
  k.group = "gantry.io";
  k.version = "v1";
  k.kind = "ImagePullJob";
  k.plural = "imagepulljobs";
  k.singular = "imagepulljob";
  k.short_names = {"ipj"};
  k.prefix = "/imagepulljobs/";
  k.status = StatusSource::kInObject;
  k.tracks_generation = true;
  k.subresources = {{"status", "", "", "", kGet | kUpdate | kPatch}};
  k.prepare = [](json& obj) -> common::Status {
    json& spec = obj["spec"];
    if (!spec.is_object())
      return common::make_error(Code::kInvalidArgument, "spec: Required value");
    if (!spec.contains("images") || !spec["images"].is_array() || spec["images"].empty())
      return common::make_error(Code::kInvalidArgument,
                                "spec.images: Required value: at least one image");
    for (size_t i = 0; i < spec["images"].size(); ++i) {
      const json& image = spec["images"][i];
      if (!image.is_string() || image.get<std::string>().empty() ||
          image.get<std::string>().find_first_of(" \t\n") != std::string::npos)
        return common::make_error(Code::kInvalidArgument,
                                  "spec.images[{}]: Invalid value: {}: must be an image reference",
                                  i, image.dump());
    }
    if (!spec.contains("parallelism") || !spec["parallelism"].is_object())
      spec["parallelism"] = json::object();
    json& par = spec["parallelism"];
    if (!par.contains("perProvince")) par["perProvince"] = 2;
    if (!par.contains("perNode")) par["perNode"] = 1;
    GANTRY_RETURN_IF_ERROR(positive_int(par, "perProvince", "spec.parallelism.perProvince", false));
    GANTRY_RETURN_IF_ERROR(positive_int(par, "perNode", "spec.parallelism.perNode", false));
    if (!spec.contains("retries")) spec["retries"] = 2;
    GANTRY_RETURN_IF_ERROR(positive_int(spec, "retries", "spec.retries", true));
    GANTRY_RETURN_IF_ERROR(
        positive_int(spec, "activeDeadlineSeconds", "spec.activeDeadlineSeconds", false));
    if (!spec.contains("pullPolicy")) spec["pullPolicy"] = "IfNotPresent";
    if (spec["pullPolicy"] != "IfNotPresent" && spec["pullPolicy"] != "Always")
      return common::make_error(Code::kInvalidArgument,
                                "spec.pullPolicy: Unsupported value: {}: supported values: "
                                "\"Always\", \"IfNotPresent\"",
                                spec["pullPolicy"].dump());
    if (spec.contains("selector") && !spec["selector"].is_object())
      return common::make_error(Code::kInvalidArgument,
                                "spec.selector: Invalid value: must be a label selector");
    if (spec.contains("nodeNames") && !spec["nodeNames"].is_array())
      return common::make_error(Code::kInvalidArgument,
                                "spec.nodeNames: Invalid value: must be a list of node names");
    return common::ok_status();
  };
  k.warnings = [](const json& obj) {
    std::vector<std::string> out;
    if (obj.contains("spec") && obj["spec"].contains("pullSecrets"))
      out.push_back(
          "spec.pullSecrets: registry credentials are not sent to the nodes yet; the nodes pull "
          "with their own containerd configuration");
    return out;
  };
  auto images = [](const json& obj, SystemTime) {
    std::string out;
    if (obj.contains("spec") && obj["spec"].contains("images") && obj["spec"]["images"].is_array())
      for (const auto& i : obj["spec"]["images"])
        if (i.is_string()) out += (out.empty() ? "" : ",") + i.get<std::string>();
    return json(out);
  };
  k.columns = {
      name_column(),
      {"Phase", "string", "Running, Succeeded or Failed.", 0, "",
       [](const json& obj, SystemTime) {
         std::string p = obj.contains("status") && obj["status"].contains("phase") &&
                                 obj["status"]["phase"].is_string()
                             ? obj["status"]["phase"].get<std::string>()
                             : "Pending";
         return json(p);
       }},
      int_column("Desired", "Nodes the job selects.", {"status", "desired"}),
      int_column("Succeeded", "Nodes that have every image.", {"status", "succeeded"}),
      int_column("Failed", "Nodes where a pull failed after its retries.", {"status", "failed"}),
      int_column("Pulling", "Nodes pulling now.", {"status", "pulling"}),
      int_column("Pending", "Connected nodes waiting for their turn.", {"status", "pending"}),
      int_column("Waiting-Offline", "Nodes that pull when they reconnect.",
                 {"status", "waitingOffline"}),
      age_column(),
      {"Images", "string", "The images to pull.", 1, "", images},
  };
  return k;
}

}  // namespace gantry::cloud::api::kinds
