// Events written by the recorder, read through the REST API the way kubectl reads them: `kubectl
// describe pod` and `describe node` list events with a field selector on involvedObject.*, and
// `kubectl get events` asks for a Table.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cloudcore/controllers/events.h"
#include "tests/unit/cloudcore/api/api_fixture.h"

namespace gantry::test {
namespace {

using json = nlohmann::json;
using namespace cloud::controllers;

std::string url_escape(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

// The field selector kubectl's describe builds (k8s.io/kubectl/pkg/describe searchEvents).
std::string describe_selector(const std::string& kind, const std::string& ns,
                              const std::string& name, const std::string& uid) {
  return url_escape(
      fmt::format("involvedObject.kind={},involvedObject.name={},"
                  "involvedObject.namespace={},involvedObject.uid={}",
                  kind, name, ns, uid));
}

struct EventsApiFixture : ApiFixture {
  common::SystemClock clock;
  EventRecorder recorder{store(), clock};

  void record(ObjectReference object, const std::string& reason, const std::string& message,
              KubeEventType type = KubeEventType::kWarning, int times = 1) {
    for (int i = 0; i < times; ++i) {
      EventRecord e;
      e.object = object;
      e.type = type;
      e.reason = reason;
      e.message = message;
      e.component = "kubelet";
      e.host = "n1";
      REQUIRE(recorder.record(e));
    }
    REQUIRE(recorder.flush().ok());
  }
};

TEST_CASE_METHOD(EventsApiFixture, "kubectl describe pod finds the pod's events and only those",
                 "[events][api]") {
  put_node("n1", "zhejiang");
  put_pod("default", "web", "n1");
  put_pod("default", "db", "n1");
  std::string uid = pod_uid("default", "web");
  record(pod_reference("default", "web", uid, "main"), "BackOff",
         "Back-off restarting failed container main", KubeEventType::kWarning, 3);
  record(pod_reference("default", "web", uid, "main"), "Started", "Started container main",
         KubeEventType::kNormal);
  record(pod_reference("default", "db", pod_uid("default", "db")), "BackOff", "other pod");
  record(pod_reference("default", "web", "uid-of-an-earlier-web"), "BackOff", "earlier pod");

  auto r = call("GET",
                "/api/v1/namespaces/default/events?limit=500&fieldSelector=" +
                    describe_selector("Pod", "default", "web", uid),
                kAdminToken);
  REQUIRE(r.code == 200);
  json list = r.json();
  CHECK(list["kind"] == "EventList");
  REQUIRE(list["items"].size() == 2);
  std::map<std::string, json> by_reason;
  for (const auto& ev : list["items"]) by_reason[ev["reason"]] = ev;
  CHECK(by_reason["BackOff"]["count"] == 3);
  CHECK(by_reason["BackOff"]["type"] == "Warning");
  CHECK(by_reason["BackOff"]["involvedObject"]["fieldPath"] == "spec.containers{main}");
  CHECK(by_reason["BackOff"]["source"]["component"] == "kubelet");
  CHECK(by_reason["Started"]["count"] == 1);
  CHECK_FALSE(by_reason["BackOff"]["metadata"]["resourceVersion"].get<std::string>().empty());
  // get by name, as kubectl get event NAME -o yaml does.
  auto name = by_reason["BackOff"]["metadata"]["name"].get<std::string>();
  auto one = call("GET", "/api/v1/namespaces/default/events/" + name, kAdminToken);
  REQUIRE(one.code == 200);
  CHECK(one.json()["count"] == 3);
}

TEST_CASE_METHOD(EventsApiFixture,
                 "kubectl describe node finds node events in the default namespace, once",
                 "[events][api]") {
  put_node("n1", "zhejiang");
  record(node_reference("n1", "uid-n1"), "NodeNotReady", "Node n1 status is now: NodeNotReady");
  // describe node asks twice: with the node's uid, then with its name as the uid (the kubelet's
  // habit); an event must match one of the two only, or it is shown twice.
  auto by_uid =
      call("GET", "/api/v1/events?fieldSelector=" + describe_selector("Node", "", "n1", "uid-n1"),
           kAdminToken);
  REQUIRE(by_uid.code == 200);
  REQUIRE(by_uid.json()["items"].size() == 1);
  CHECK(by_uid.json()["items"][0]["metadata"]["namespace"] == "default");
  auto by_name =
      call("GET", "/api/v1/events?fieldSelector=" + describe_selector("Node", "", "n1", "n1"),
           kAdminToken);
  REQUIRE(by_name.code == 200);
  CHECK(by_name.json()["items"].empty());
}

TEST_CASE_METHOD(EventsApiFixture, "kubectl get events prints type, reason, object and message",
                 "[events][api]") {
  put_node("n1", "zhejiang");
  put_pod("default", "web", "n1");
  record(pod_reference("default", "web", pod_uid("default", "web")), "FailedScheduling",
         "0/3 nodes are available: 3 node(s) didn't match node selector.");
  auto r = call("GET", "/api/v1/namespaces/default/events", kAdminToken, "", "application/json",
                {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json"});
  REQUIRE(r.code == 200);
  json table = r.json();
  REQUIRE(table["kind"] == "Table");
  REQUIRE(table["rows"].size() == 1);
  std::vector<std::string> names;
  for (const auto& c : table["columnDefinitions"]) names.push_back(c["name"]);
  CHECK(names == std::vector<std::string>{"Last Seen", "Type", "Reason", "Object", "Message"});
  const json& cells = table["rows"][0]["cells"];
  CHECK(cells[1] == "Warning");
  CHECK(cells[2] == "FailedScheduling");
  CHECK(cells[3] == "pod/web");
  CHECK(cells[4] == "0/3 nodes are available: 3 node(s) didn't match node selector.");
}

TEST_CASE_METHOD(EventsApiFixture, "the same events are served as events.k8s.io/v1",
                 "[events][api]") {
  put_node("n1", "zhejiang");
  put_pod("default", "web", "n1");
  std::string uid = pod_uid("default", "web");
  record(pod_reference("default", "web", uid, "main"), "BackOff",
         "Back-off restarting failed container main", KubeEventType::kWarning, 2);

  auto discovery = call("GET", "/apis/events.k8s.io/v1", kAdminToken);
  REQUIRE(discovery.code == 200);
  json resources = discovery.json()["resources"];
  bool listed = false;
  for (const auto& r : resources)
    listed = listed || (r["name"] == "events" && r["kind"] == "Event" && r["namespaced"] == true);
  CHECK(listed);

  auto r = call("GET",
                "/apis/events.k8s.io/v1/namespaces/default/events?fieldSelector=" +
                    url_escape("regarding.name=web,regarding.uid=" + uid),
                kAdminToken);
  REQUIRE(r.code == 200);
  json list = r.json();
  CHECK(list["apiVersion"] == "events.k8s.io/v1");
  REQUIRE(list["items"].size() == 1);
  const json& ev = list["items"][0];
  CHECK(ev["apiVersion"] == "events.k8s.io/v1");
  CHECK(ev["regarding"]["name"] == "web");
  CHECK(ev["regarding"]["fieldPath"] == "spec.containers{main}");
  CHECK(ev["note"] == "Back-off restarting failed container main");
  CHECK(ev["reportingController"] == "kubelet");
  CHECK(ev["deprecatedCount"] == 2);
  CHECK_FALSE(ev.contains("involvedObject"));
  CHECK_FALSE(ev["metadata"]["resourceVersion"].get<std::string>().empty());
}

TEST_CASE_METHOD(EventsApiFixture,
                 "an events.k8s.io/v1 create is checked, stored once and read in both versions",
                 "[events][api]") {
  put_node("n1", "zhejiang");
  json ev = {{"apiVersion", "events.k8s.io/v1"},
             {"kind", "Event"},
             {"metadata", {{"name", "rollout.1"}}},
             {"eventTime", "2026-12-02T15:00:00.000000Z"},
             {"reportingController", "example.com/deployer"},
             {"reportingInstance", "deployer-1"},
             {"action", "Rollout"},
             {"reason", "Started"},
             {"regarding", {{"kind", "Node"}, {"name", "n1"}}},
             {"note", "rolling out"},
             {"type", "Normal"}};
  json bad = ev;
  bad.erase("eventTime");
  auto refused =
      call("POST", "/apis/events.k8s.io/v1/namespaces/default/events", kAdminToken, bad.dump());
  CHECK(refused.code == 422);
  CHECK_THAT(refused.json()["message"].get<std::string>(),
             Catch::Contains("eventTime: Required value"));

  auto created =
      call("POST", "/apis/events.k8s.io/v1/namespaces/default/events", kAdminToken, ev.dump());
  REQUIRE(created.code == 201);
  CHECK(created.json()["note"] == "rolling out");
  auto core = call("GET", "/api/v1/namespaces/default/events/rollout.1", kAdminToken);
  REQUIRE(core.code == 200);
  CHECK(core.json()["apiVersion"] == "v1");
  CHECK(core.json()["involvedObject"]["name"] == "n1");
  CHECK(core.json()["message"] == "rolling out");
  CHECK(core.json()["reportingComponent"] == "example.com/deployer");
  // A merge patch through events.k8s.io/v1 changes the note, kept in the core shape.
  auto patched = call("PATCH", "/apis/events.k8s.io/v1/namespaces/default/events/rollout.1",
                      kAdminToken, R"({"note":"rolled out"})", "application/merge-patch+json");
  REQUIRE(patched.code == 200);
  CHECK(patched.json()["note"] == "rolled out");
  CHECK(call("GET", "/api/v1/namespaces/default/events/rollout.1", kAdminToken).json()["message"] ==
        "rolled out");
}

}  // namespace
}  // namespace gantry::test
