#include "cloudcore/controllers/inplace.h"

#include <fmt/format.h>

#include "cloudcore/controllers/workloads_impl.h"
#include "common/base/json.h"

namespace gantry::cloud::controllers {

namespace {

using json = nlohmann::json;

constexpr const char* kImageLists[] = {"containers", "initContainers"};

// The template as compared: metadata reduced to labels (without the revision hashes) and
// annotations, empty maps dropped, the ControllerRevision's "$patch" marker dropped.
json normalized(const json& tmpl) {
  json out = json::object();
  if (!tmpl.is_object()) return out;
  if (tmpl.contains("metadata") && tmpl["metadata"].is_object()) {
    const json& meta = tmpl["metadata"];
    for (const char* f : {"labels", "annotations"}) {
      if (!meta.contains(f) || !meta[f].is_object()) continue;
      json m = meta[f];
      m.erase("controller-revision-hash");
      m.erase("pod-template-hash");
      m.erase(kInPlaceUpdated);
      if (!m.empty()) out["metadata"][f] = std::move(m);
    }
  }
  if (tmpl.contains("spec") && tmpl["spec"].is_object()) out["spec"] = tmpl["spec"];
  return out;
}

}  // namespace

bool images_only_change(const json& old_template, const json& new_template) {
  json a = normalized(old_template);
  json b = normalized(new_template);
  if (a == b) return false;  // no change at all
  bool images_differ = false;
  for (const char* list : kImageLists) {
    bool in_a = a.contains("spec") && a["spec"].contains(list);
    bool in_b = b.contains("spec") && b["spec"].contains(list);
    if (in_a != in_b) return false;
    if (!in_a) continue;
    json& ca = a["spec"][list];
    json& cb = b["spec"][list];
    if (!ca.is_array() || !cb.is_array() || ca.size() != cb.size()) return false;
    for (size_t i = 0; i < ca.size(); ++i) {
      if (!ca[i].is_object() || !cb[i].is_object()) return false;
      if (ca[i].value("name", "") != cb[i].value("name", "")) return false;
      json ia = ca[i].contains("image") ? ca[i]["image"] : json();
      json ib = cb[i].contains("image") ? cb[i]["image"] : json();
      if (!ib.is_string() || ib.get<std::string>().empty()) return false;  // nothing to run
      if (ia != ib) images_differ = true;
      ca[i].erase("image");
      cb[i].erase("image");
    }
  }
  return images_differ && a == b;
}

int apply_template_images(json& pod, const json& new_template) {
  if (!pod.is_object() || !pod.contains("spec") || !new_template.is_object() ||
      !new_template.contains("spec"))
    return 0;
  int changed = 0;
  for (const char* list : kImageLists) {
    if (!pod["spec"].contains(list) || !new_template["spec"].contains(list)) continue;
    json& mine = pod["spec"][list];
    const json& theirs = new_template["spec"][list];
    if (!mine.is_array() || !theirs.is_array()) continue;
    for (auto& c : mine) {
      if (!c.is_object()) continue;
      for (const auto& t : theirs) {
        if (!t.is_object() || t.value("name", "") != c.value("name", "")) continue;
        if (t.contains("image") && c.value("image", "") != t["image"]) {
          c["image"] = t["image"];
          ++changed;
        }
      }
    }
  }
  return changed;
}

bool update_in_place(const json& workload, bool fallback) {
  std::string v = common::json_string_at(workload, {"metadata", "annotations", kUpdateInPlace});
  if (v == "true") return true;
  if (v == "false") return false;
  return fallback;
}

json template_of_pod(const json& pod) {
  json tmpl = json::object();
  if (!pod.is_object()) return tmpl;
  if (pod.contains("metadata") && pod["metadata"].is_object()) {
    for (const char* f : {"labels", "annotations"})
      if (pod["metadata"].contains(f)) tmpl["metadata"][f] = pod["metadata"][f];
  }
  if (pod.contains("spec")) {
    tmpl["spec"] = pod["spec"];
    if (tmpl["spec"].is_object()) tmpl["spec"].erase("nodeName");
  }
  return tmpl;
}

Result<Revision> WorkloadControllers::Impl::update_pod_in_place(
    const PodRec& p, const json& new_template, const std::map<std::string, std::string>& set_labels,
    const std::string& revision) {
  int64_t now_ms = clock.unix_ms();
  auto r = rewrite_pod(p, [&](json& obj) {
    apply_template_images(obj, new_template);
    for (const auto& [k, v] : set_labels) obj["metadata"]["labels"][k] = v;
    obj["metadata"]["annotations"][kInPlaceUpdated] = fmt::format("{} {}", revision, now_ms);
    obj["metadata"]["generation"] = common::json_int_at(obj, {"metadata", "generation"}, 1) + 1;
  });
  if (r.ok()) ++stats.pods_updated_in_place;
  return r;
}

}  // namespace gantry::cloud::controllers
