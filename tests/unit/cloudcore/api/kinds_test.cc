// Kinds as data: the built-in descriptions, discovery derived from them (legacy and aggregated),
// and a kind added as data only being served with no server change.
#include "cloudcore/api/kinds/kinds.h"

#include <catch2/catch.hpp>
#include <set>

#include "cloudcore/api/discovery.h"
#include "cloudcore/api/kind.h"
#include "common/base/json.h"
#include "tests/unit/cloudcore/api/api_fixture.h"

using namespace gantry;
using namespace gantry::test;
using namespace gantry::cloud::api;
using nlohmann::json;

namespace {

const json* resource_named(const json& list, const std::string& name) {
  for (const auto& r : list["resources"])
    if (r["name"] == name) return &r;
  return nullptr;
}

// A kind of a new group, described as data only.
Kind widget_kind() {
  Kind k;
  k.group = "example.gantry.io";
  k.version = "v1";
  k.kind = "Widget";
  k.plural = "widgets";
  k.singular = "widget";
  k.short_names = {"wd"};
  k.categories = {"all"};
  k.prefix = "/widgets/";
  k.selectable_fields = {"spec.size"};
  k.columns = {name_column(),
               {"Size", "string", "The widget's size.", 0, "",
                [](const json& obj, SystemTime) {
                  return json(common::json_string_at(obj, {"spec", "size"}));
                }},
               age_column()};
  return k;
}

// A controller-managed kind (as workloads are): status kept in the object, written only through
// its /status subresource; generation counts spec changes.
Kind gadget_kind() {
  Kind k;
  k.group = "example.gantry.io";
  k.version = "v1";
  k.kind = "Gadget";
  k.plural = "gadgets";
  k.singular = "gadget";
  k.prefix = "/gadgets/";
  k.status = StatusSource::kInObject;
  k.tracks_generation = true;
  k.subresources = {{"status", "", "", "", kGet | kUpdate | kPatch}};
  return k;
}

struct WidgetRegistry {
  KindRegistry kinds;
  WidgetRegistry() {
    for (auto make : {kinds::pod, kinds::node, kinds::namespace_, kinds::config_map, kinds::secret,
                      kinds::event, kinds::province, widget_kind, gadget_kind})
      REQUIRE(kinds.add(make()).ok());
  }
};

ApiServerOptions with_kinds(const KindRegistry& kinds) {
  ApiServerOptions o;
  o.kinds = &kinds;
  return o;
}

}  // namespace

TEST_CASE("every built-in kind is described once, with its verbs and short names", "[api][kinds]") {
  const auto& kinds = builtin_kinds();
  const Kind* pods = kinds.find("", "v1", "pods");
  REQUIRE(pods);
  CHECK(pods->kind == "Pod");
  CHECK(pods->short_names == std::vector<std::string>{"po"});
  CHECK(pods->categories == std::vector<std::string>{"all"});
  CHECK(pods->subresource("log"));
  CHECK(pods->key("default", "web") == "/pods/default/web");
  CHECK(pods->status_key("default", "web") == "/status/pods/default/web");
  const Kind* nodes = kinds.find("", "v1", "nodes");
  REQUIRE(nodes);
  CHECK_FALSE(nodes->namespaced);
  CHECK(nodes->key("", "n1") == "/nodes/n1");
  CHECK(nodes->field_selectors() ==
        std::vector<std::string>{"metadata.name", "spec.unschedulable"});
  CHECK(kinds.find("gantry.io", "v1", "provinces"));
  CHECK_FALSE(kinds.find("", "v1", "widgets"));
  CHECK(verb_names(kGet | kList | kDeleteCollection) ==
        std::vector<std::string>{"deletecollection", "get", "list"});

  KindRegistry r;
  REQUIRE(r.add(kinds::pod()).ok());
  auto again = r.add(kinds::pod());
  CHECK(again.code() == common::Code::kAlreadyExists);
}

TEST_CASE("legacy discovery lists each kind of a group version", "[api][kinds]") {
  const auto& kinds = builtin_kinds();
  auto core = api_resource_list(kinds, "", "v1");
  REQUIRE(core);
  CHECK((*core)["groupVersion"] == "v1");
  const json* pods = resource_named(*core, "pods");
  REQUIRE(pods);
  CHECK((*pods)["namespaced"] == true);
  CHECK((*pods)["shortNames"] == json({"po"}));
  CHECK((*pods)["categories"] == json({"all"}));
  REQUIRE(resource_named(*core, "pods/log"));
  CHECK((*resource_named(*core, "pods/log"))["verbs"] == json({"get"}));
  const json* ns = resource_named(*core, "namespaces");
  REQUIRE(ns);
  CHECK((*ns)["namespaced"] == false);
  CHECK_FALSE(resource_named(*core, "provinces"));
  CHECK_FALSE(api_resource_list(kinds, "", "v2"));
  CHECK_FALSE(api_resource_list(kinds, "apps", "v2"));

  json groups = api_group_list(kinds);
  // gantry.io, apps (workloads), batch (jobs), events.k8s.io, then the groups of subresource
  // bodies only.
  REQUIRE(groups["groups"].size() == 6);
  CHECK(groups["groups"][0]["name"] == "gantry.io");
  CHECK(groups["groups"][0]["preferredVersion"]["groupVersion"] == "gantry.io/v1");
  CHECK(groups["groups"][1]["name"] == "apps");
  CHECK(groups["groups"][2]["name"] == "batch");
  CHECK(groups["groups"][2]["preferredVersion"]["groupVersion"] == "batch/v1");
  CHECK(groups["groups"][3]["name"] == "events.k8s.io");
  CHECK(groups["groups"][4]["name"] == "policy");       // pods/eviction: Eviction
  CHECK(groups["groups"][5]["name"] == "autoscaling");  // deployments/scale: Scale
  // ... served with no resources, as kubectl 1.20's drain looks for the policy group.
  auto policy = api_resource_list(kinds, "policy", "v1");
  REQUIRE(policy);
  CHECK((*policy)["groupVersion"] == "policy/v1");
  CHECK((*policy)["resources"].empty());
  CHECK_FALSE(api_resource_list(kinds, "policy", "v1beta1"));
  CHECK(api_group(kinds, "events.k8s.io"));
  CHECK(api_group(kinds, "gantry.io"));
  CHECK(api_group(kinds, "apps"));
  CHECK(api_group(kinds, "batch"));
  CHECK_FALSE(api_group(kinds, "networking.k8s.io"));
  auto batch = api_resource_list(kinds, "batch", "v1");
  REQUIRE(batch);
  const json* jobs = resource_named(*batch, "jobs");
  REQUIRE(jobs);
  CHECK((*jobs)["namespaced"] == true);
  CHECK((*jobs)["kind"] == "Job");
  CHECK((*jobs)["categories"] == json({"all"}));
  CHECK_FALSE((*jobs).contains("shortNames"));
  CHECK(resource_named(*batch, "jobs/status"));
  const json* cronjobs = resource_named(*batch, "cronjobs");
  REQUIRE(cronjobs);
  CHECK((*cronjobs)["shortNames"] == json({"cj"}));
  CHECK((*cronjobs)["categories"] == json({"all"}));
  CHECK(resource_named(*batch, "cronjobs/status"));
  auto v1beta1 = api_resource_list(kinds, "batch", "v1beta1");  // kubectl < 1.21's CronJobs
  REQUIRE(v1beta1);
  CHECK(resource_named(*v1beta1, "cronjobs"));
  CHECK_FALSE(resource_named(*v1beta1, "jobs"));
}

TEST_CASE("aggregated discovery is chosen by the Accept header, as client-go asks for it",
          "[api][kinds]") {
  CHECK(aggregated_discovery_version(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/"
            "json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json") ==
        "v2");
  CHECK(aggregated_discovery_version(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,"
            "application/json") == "v2beta1");
  CHECK_FALSE(aggregated_discovery_version("application/json, */*"));
  CHECK_FALSE(aggregated_discovery_version(""));
  CHECK_FALSE(aggregated_discovery_version("application/json;g=apidiscovery.k8s.io;v=v9;as=X"));

  json core = aggregated_discovery(builtin_kinds(), true, "v2");
  CHECK(core["kind"] == "APIGroupDiscoveryList");
  CHECK(core["apiVersion"] == "apidiscovery.k8s.io/v2");
  REQUIRE(core["items"].size() == 1);
  CHECK(core["items"][0]["metadata"]["name"] == "");
  const json& v1 = core["items"][0]["versions"][0];
  CHECK(v1["version"] == "v1");
  bool saw_pods = false;
  for (const auto& r : v1["resources"]) {
    if (r["resource"] != "pods") continue;
    saw_pods = true;
    CHECK(r["scope"] == "Namespaced");
    CHECK(r["responseKind"] == json({{"group", ""}, {"version", "v1"}, {"kind", "Pod"}}));
    std::set<std::string> subs;
    for (const auto& sub : r["subresources"]) subs.insert(sub["subresource"]);
    CHECK(subs == std::set<std::string>{"attach", "eviction", "exec", "log", "status"});
  }
  CHECK(saw_pods);
  json groups = aggregated_discovery(builtin_kinds(), false, "v2beta1");
  CHECK(groups["apiVersion"] == "apidiscovery.k8s.io/v2beta1");
  CHECK(groups["items"][0]["metadata"]["name"] == "gantry.io");
}

TEST_CASE_METHOD(ApiFixture, "the server answers aggregated discovery with its content type",
                 "[api][kinds]") {
  auto agg = call("GET", "/api", kAdminToken, "", "application/json",
                  {"Accept: application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,"
                   "application/json"});
  REQUIRE(agg.code == 200);
  CHECK(agg.json()["kind"] == "APIGroupDiscoveryList");
  CHECK(agg.headers.find("application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList") !=
        std::string::npos);
  auto legacy = call("GET", "/api", kAdminToken);
  CHECK(legacy.json()["kind"] == "APIVersions");
  auto apis = call("GET", "/apis", kAdminToken, "", "application/json",
                   {"Accept: application/json;g=apidiscovery.k8s.io;v=v2beta1;as="
                    "APIGroupDiscoveryList,application/json"});
  CHECK(apis.json()["items"][0]["metadata"]["name"] == "gantry.io");
  CHECK(call("GET", "/apis/gantry.io", kAdminToken).json()["kind"] == "APIGroup");
  CHECK(call("GET", "/apis/gantry.io/v1", kAdminToken).json()["resources"][0]["name"] ==
        "provinces");
  CHECK(call("GET", "/apis/apps/v2", kAdminToken).code == 404);
  CHECK(call("GET", "/api/v2", kAdminToken).code == 404);
}

TEST_CASE("a kind added as data only is discovered, stored, listed and tabled", "[api][kinds]") {
  WidgetRegistry widgets;
  ApiFixture api(with_kinds(widgets.kinds));
  auto groups = api.call("GET", "/apis", kAdminToken).json();
  std::set<std::string> names;
  for (const auto& g : groups["groups"]) names.insert(g["name"]);
  CHECK(names.count("example.gantry.io"));
  auto list = api.call("GET", "/apis/example.gantry.io/v1", kAdminToken).json();
  REQUIRE(resource_named(list, "widgets"));
  CHECK((*resource_named(list, "widgets"))["shortNames"] == json({"wd"}));

  const std::string base = "/apis/example.gantry.io/v1/namespaces/default/widgets";
  auto created = api.call(
      "POST", base, kAdminToken,
      R"({"apiVersion":"example.gantry.io/v1","kind":"Widget","metadata":{"name":"w1"},"spec":{"size":"big"}})");
  REQUIRE(created.code == 201);
  CHECK(created.json()["apiVersion"] == "example.gantry.io/v1");
  CHECK_FALSE(created.json()["metadata"]["uid"].get<std::string>().empty());
  // The wrong apiVersion for the URL is refused.
  CHECK(api.call("POST", base, kAdminToken,
                 R"({"apiVersion":"v1","kind":"Widget","metadata":{"name":"w2"}})")
            .code == 400);
  auto got = api.call("GET", base + "/w1", kAdminToken).json();
  CHECK(got["spec"]["size"] == "big");
  auto all = api.call("GET", "/apis/example.gantry.io/v1/widgets", kAdminToken).json();
  CHECK(all["kind"] == "WidgetList");
  CHECK(all["items"].size() == 1);
  auto table =
      api.call("GET", base + "?fieldSelector=spec.size%3Dbig", kAdminToken, "", "application/json",
               {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io"})
          .json();
  REQUIRE(table["rows"].size() == 1);
  CHECK(table["columnDefinitions"][1]["name"] == "Size");
  CHECK(table["rows"][0]["cells"][1] == "big");
  // Province roles do not cover it (admin-only scope by default).
  CHECK(api.call("GET", base, kZhejiangViewerToken).code == 403);
  CHECK(api.call("DELETE", base + "/w1", kAdminToken).code == 200);
  CHECK(api.call("GET", base + "/w1", kAdminToken).code == 404);
}

TEST_CASE("a kind whose status lives in the object changes it only through /status",
          "[api][kinds]") {
  WidgetRegistry kinds;
  ApiFixture api(with_kinds(kinds.kinds));
  const std::string base = "/apis/example.gantry.io/v1/namespaces/default/gadgets";
  auto created = api.call(
      "POST", base, kAdminToken,
      R"({"apiVersion":"example.gantry.io/v1","kind":"Gadget","metadata":{"name":"g"},"spec":{"n":1},"status":{"ready":9}})");
  REQUIRE(created.code == 201);
  CHECK_FALSE(created.json().contains("status"));  // dropped on create, as kube-apiserver does
  CHECK(created.json()["metadata"]["generation"] == 1);

  auto st = api.call("PATCH", base + "/g/status", kAdminToken,
                     R"({"status":{"ready":1},"spec":{"n":5}})", "application/merge-patch+json");
  REQUIRE(st.code == 200);
  CHECK(st.json()["status"]["ready"] == 1);
  CHECK(st.json()["spec"]["n"] == 1);

  json g = api.call("GET", base + "/g", kAdminToken).json();
  g["spec"]["n"] = 2;
  g["status"]["ready"] = 7;
  auto put = api.call("PUT", base + "/g", kAdminToken, g.dump());
  REQUIRE(put.code == 200);
  CHECK(put.json()["status"]["ready"] == 1);  // the main resource ignores status
  CHECK(put.json()["spec"]["n"] == 2);
  CHECK(put.json()["metadata"]["generation"] == 2);
  CHECK(api.call("GET", base + "/g/status", kAdminToken).json()["status"]["ready"] == 1);
}
