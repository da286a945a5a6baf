// images_only_change and apply_template_images: which template changes an in-place update may
// make, and what it changes on the pod.
#include "cloudcore/controllers/inplace.h"

#include <catch2/catch.hpp>

namespace gantry::cloud::controllers {
namespace {

using json = nlohmann::json;

json tmpl(const std::string& image, const std::string& init_image = "") {
  json t = {{"metadata", {{"labels", {{"app", "gw"}}}}},
            {"spec", {{"containers", {{{"name", "gw"}, {"image", image}}}}}}};
  if (!init_image.empty())
    t["spec"]["initContainers"] = {{{"name", "setup"}, {"image", init_image}}};
  return t;
}

TEST_CASE("Only a change of container images is an images-only change", "[inplace]") {
  CHECK(images_only_change(tmpl("gw:1"), tmpl("gw:2")));
  CHECK(images_only_change(tmpl("gw:1", "init:1"), tmpl("gw:1", "init:2")));
  CHECK_FALSE(images_only_change(tmpl("gw:1"), tmpl("gw:1")));  // no change at all

  json env = tmpl("gw:2");
  env["spec"]["containers"][0]["env"] = {{{"name", "A"}, {"value", "1"}}};
  CHECK_FALSE(images_only_change(tmpl("gw:1"), env));

  json label = tmpl("gw:2");
  label["metadata"]["labels"]["tier"] = "edge";
  CHECK_FALSE(images_only_change(tmpl("gw:1"), label));

  json more = tmpl("gw:2");
  more["spec"]["containers"].push_back({{"name", "side"}, {"image", "side:1"}});
  CHECK_FALSE(images_only_change(tmpl("gw:1"), more));

  json renamed = tmpl("gw:2");
  renamed["spec"]["containers"][0]["name"] = "other";
  CHECK_FALSE(images_only_change(tmpl("gw:1"), renamed));

  json no_image = tmpl("gw:1");
  no_image["spec"]["containers"][0].erase("image");
  CHECK_FALSE(images_only_change(tmpl("gw:1"), no_image));

  // The revision labels and the ControllerRevision's marker are not part of the comparison.
  json recorded = tmpl("gw:1");
  recorded["$patch"] = "replace";
  recorded["metadata"]["labels"]["controller-revision-hash"] = "abc";
  CHECK(images_only_change(recorded, tmpl("gw:2")));
  json same_but_hash = tmpl("gw:1");
  same_but_hash["metadata"]["labels"]["pod-template-hash"] = "x";
  CHECK_FALSE(images_only_change(same_but_hash, tmpl("gw:1")));
}

TEST_CASE("Applying a template's images changes the pod's images and nothing else", "[inplace]") {
  json pod = {{"metadata", {{"name", "gw-abc"}, {"uid", "u1"}}},
              {"spec",
               {{"nodeName", "n1"},
                {"containers", {{{"name", "gw"}, {"image", "gw:1"}, {"args", {"-v"}}}}},
                {"initContainers", {{{"name", "setup"}, {"image", "init:1"}}}}}}};
  json before = pod;
  CHECK(apply_template_images(pod, tmpl("gw:2", "init:2")) == 2);
  CHECK(pod["spec"]["containers"][0]["image"] == "gw:2");
  CHECK(pod["spec"]["initContainers"][0]["image"] == "init:2");
  pod["spec"]["containers"][0]["image"] = "gw:1";
  pod["spec"]["initContainers"][0]["image"] = "init:1";
  CHECK(pod == before);
  CHECK(apply_template_images(pod, tmpl("gw:1", "init:1")) == 0);
}

TEST_CASE("The in-place annotation says true or false, else the kind's default", "[inplace]") {
  json w = {{"metadata", {{"name", "x"}}}};
  CHECK(update_in_place(w, true));
  CHECK_FALSE(update_in_place(w, false));
  w["metadata"]["annotations"]["gantry.io/update-in-place"] = "true";
  CHECK(update_in_place(w, false));
  w["metadata"]["annotations"]["gantry.io/update-in-place"] = "false";
  CHECK_FALSE(update_in_place(w, true));
}

}  // namespace
}  // namespace gantry::cloud::controllers
