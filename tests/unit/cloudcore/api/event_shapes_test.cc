// One Event, two shapes: core v1 as stored and events.k8s.io/v1, and what a create through
// events.k8s.io/v1 must carry.
#include "cloudcore/api/event_shapes.h"

#include <catch2/catch.hpp>

namespace gantry::cloud::api {
namespace {

using json = nlohmann::json;

json core_event() {
  return {{"apiVersion", "v1"},
          {"kind", "Event"},
          {"metadata", {{"name", "web.17c3"}, {"namespace", "default"}, {"uid", "e-1"}}},
          {"involvedObject",
           {{"kind", "Pod"}, {"namespace", "default"}, {"name", "web"}, {"uid", "uid-web"}}},
          {"reason", "BackOff"},
          {"message", "Back-off restarting failed container main"},
          {"source", {{"component", "kubelet"}, {"host", "edge-1"}}},
          {"firstTimestamp", "2026-12-02T15:00:00Z"},
          {"lastTimestamp", "2026-12-02T15:04:00Z"},
          {"count", 5},
          {"type", "Warning"},
          {"eventTime", nullptr},
          {"reportingComponent", "kubelet"},
          {"reportingInstance", "edge-1"}};
}

TEST_CASE("A stored event reads as events.k8s.io/v1 with regarding, note and deprecated fields",
          "[events][api]") {
  json ev = events_v1_from_core(core_event());
  CHECK(ev["apiVersion"] == "events.k8s.io/v1");
  CHECK(ev["kind"] == "Event");
  CHECK(ev["regarding"]["name"] == "web");
  CHECK(ev["note"] == "Back-off restarting failed container main");
  CHECK(ev["reportingController"] == "kubelet");
  CHECK(ev["reportingInstance"] == "edge-1");
  CHECK(ev["deprecatedSource"]["host"] == "edge-1");
  CHECK(ev["deprecatedFirstTimestamp"] == "2026-12-02T15:00:00Z");
  CHECK(ev["deprecatedLastTimestamp"] == "2026-12-02T15:04:00Z");
  CHECK(ev["deprecatedCount"] == 5);
  CHECK(ev["eventTime"].is_null());
  CHECK(ev["metadata"]["name"] == "web.17c3");
  for (const char* core_only : {"involvedObject", "message", "source", "count", "firstTimestamp"})
    CHECK_FALSE(ev.contains(core_only));
  // And back, unchanged.
  auto back = core_from_events_v1(ev, false);
  REQUIRE(back.ok());
  CHECK(*back == core_event());
}

TEST_CASE("A create through events.k8s.io/v1 is checked as kube-apiserver checks it",
          "[events][api]") {
  json good = {{"apiVersion", "events.k8s.io/v1"},
               {"kind", "Event"},
               {"metadata", {{"name", "x.1"}, {"namespace", "default"}}},
               {"eventTime", "2026-12-02T15:00:00.000000Z"},
               {"reportingController", "example.com/deployer"},
               {"reportingInstance", "deployer-1"},
               {"action", "Rollout"},
               {"reason", "Started"},
               {"regarding", {{"kind", "Pod"}, {"name", "web"}, {"namespace", "default"}}},
               {"note", "rolling out"},
               {"type", "Normal"}};
  auto core = core_from_events_v1(good, true);
  REQUIRE(core.ok());
  CHECK((*core)["apiVersion"] == "v1");
  CHECK((*core)["involvedObject"]["name"] == "web");
  CHECK((*core)["message"] == "rolling out");
  CHECK((*core)["reportingComponent"] == "example.com/deployer");
  CHECK((*core)["eventTime"] == "2026-12-02T15:00:00.000000Z");

  struct Case {
    const char* field;
    json value;  // null: removed
    const char* message;
  };
  auto c = GENERATE(Case{"eventTime", nullptr, "eventTime: Required value"},
                    Case{"reportingController", nullptr, "reportingController: Required value"},
                    Case{"reportingController", "not a name!", "must be a qualified name"},
                    Case{"reportingInstance", nullptr, "reportingInstance: Required value"},
                    Case{"action", nullptr, "action: Required value"},
                    Case{"reason", std::string(129, 'r'), "reason: Too long"},
                    Case{"type", "Fatal", "type: Unsupported value: \"Fatal\""},
                    Case{"note", std::string(1025, 'n'), "note: Too long"},
                    Case{"deprecatedCount", 3, "deprecatedCount: Invalid value: needs to be unset"},
                    Case{"series", json{{"count", 1}}, "series.count"});
  CAPTURE(c.field);
  json bad = good;
  if (c.value.is_null()) {
    bad.erase(c.field);
  } else {
    bad[c.field] = c.value;
  }
  auto r = core_from_events_v1(bad, true);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == common::Code::kInvalidArgument);
  CHECK_THAT(r.status().message(), Catch::Contains(c.message));
  // An update of a stored event (the recorder's count) is not held to the create rules.
  CHECK(core_from_events_v1(bad, false).ok());
}

}  // namespace
}  // namespace gantry::cloud::api
