#include "cloudcore/api/render.h"

#include <catch2/catch.hpp>

#include "cloudcore/api/kinds/kinds.h"

using namespace gantry::cloud::api;
using nlohmann::json;
namespace v1 = gantry::v1;

namespace {
const SystemTime kNow =
    SystemTime(std::chrono::seconds(1'704'067'200 + 3 * 3600));  // 2024-01-01T03:00:00Z

json pod_json() {
  return json::parse(
      R"({"metadata": {"name": "web", "namespace": "default", "creationTimestamp": "2024-01-01T00:00:00Z"},
                         "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "nginx:1.25"},
                                                                  {"name": "side", "image": "busybox"}]}})");
}
}  // namespace

TEST_CASE("a pod without a stored status reads Pending", "[api][render]") {
  json status = render_pod_status(pod_json(), nullptr);
  CHECK(status["phase"] == "Pending");
  CHECK(status["conditions"][0]["type"] == "PodScheduled");
  CHECK_FALSE(status.contains("containerStatuses"));
}

TEST_CASE("a pod's stored status renders in Kubernetes shape", "[api][render]") {
  v1::StoredStatus st;
  auto* ps = st.mutable_pod();
  ps->set_phase(v1::POD_PHASE_RUNNING);
  ps->set_ready(true);
  ps->set_pod_ip("10.1.2.3");
  ps->set_start_time(1'704'067'200);
  auto* main = ps->add_containers();
  main->set_name("main");
  main->set_ready(true);
  main->set_restart_count(2);
  main->mutable_state()->mutable_running()->set_started_at(1'704'067'260);
  main->mutable_last_state()->mutable_terminated()->set_exit_code(137);
  main->set_image_id("sha256:abc");
  auto* side = ps->add_containers();
  side->set_name("side");
  side->set_ready(false);
  side->mutable_state()->mutable_waiting()->set_reason("CrashLoopBackOff");

  json pod = pod_json();
  pod["status"] = render_pod_status(pod, &st);
  const json& s = pod["status"];
  CHECK(s["phase"] == "Running");
  CHECK(s["podIP"] == "10.1.2.3");
  CHECK(s["podIPs"][0]["ip"] == "10.1.2.3");
  CHECK(s["startTime"] == "2024-01-01T00:00:00Z");
  std::map<std::string, std::string> conditions;
  for (const auto& c : s["conditions"]) conditions[c["type"]] = c["status"];
  CHECK(conditions == std::map<std::string, std::string>{{"Initialized", "True"},
                                                         {"Ready", "True"},
                                                         {"ContainersReady", "True"},
                                                         {"PodScheduled", "True"}});
  const json& cs = s["containerStatuses"][0];
  CHECK(cs["state"]["running"]["startedAt"] == "2024-01-01T00:01:00Z");
  CHECK(cs["lastState"]["terminated"]["exitCode"] == 137);
  CHECK(cs["restartCount"] == 2);
  CHECK(cs["image"] == "nginx:1.25");  // from the spec when the edge did not say
  CHECK(cs["imageID"] == "sha256:abc");

  auto summary = summarize_pod(pod);
  CHECK(summary.ready == "1/2");
  CHECK(summary.status == "CrashLoopBackOff");
  CHECK(summary.restarts == 2);

  pod["metadata"]["deletionTimestamp"] = "2024-01-01T03:00:00Z";
  CHECK(summarize_pod(pod).status == "Terminating");
}

TEST_CASE("node Ready reads Unknown when unreachable or never reported", "[api][render]") {
  CHECK(node_status_text({{"status", render_node_status(nullptr)}}) == "Unknown");
  v1::StoredStatus st;
  auto* c = st.mutable_node()->add_conditions();
  c->set_type(v1::NODE_CONDITION_READY);
  c->set_status(v1::CONDITION_STATUS_TRUE);
  c->set_last_transition_time(1'704'067'200);
  st.mutable_node()->mutable_capacity()->set_cpu_millis(1500);
  st.mutable_node()->mutable_capacity()->set_memory_bytes(8LL << 30);
  st.mutable_node()->mutable_capacity()->set_pods(110);
  json status = render_node_status(&st);
  CHECK(node_status_text({{"status", status}}) == "Ready");
  CHECK(status["conditions"][0]["lastTransitionTime"] == "2024-01-01T00:00:00Z");
  CHECK(status["capacity"] == json({{"cpu", "1500m"}, {"memory", "8Gi"}, {"pods", "110"}}));
  c->set_status(v1::CONDITION_STATUS_FALSE);
  CHECK(node_status_text({{"status", render_node_status(&st)}}) == "NotReady");
  st.set_unreachable(true);
  CHECK(node_status_text({{"status", render_node_status(&st)}}) == "Unknown");
}

TEST_CASE("tables carry kubectl's columns and the rows' metadata", "[api][render]") {
  json node = {
      {"metadata",
       {{"name", "n1"},
        {"creationTimestamp", "2024-01-01T00:00:00Z"},
        {"labels",
         {{"topology.gantry.io/province", "zhejiang"}, {"node-role.kubernetes.io/edge", ""}}}}},
      {"status",
       {{"conditions", {{{"type", "Ready"}, {"status", "True"}}}},
        {"nodeInfo", {{"kubeletVersion", "v0.1.0"}}}}}};
  json t = render_table(kinds::node().table_columns(), {node}, "7", kNow);
  CHECK(t["kind"] == "Table");
  CHECK(t["apiVersion"] == "meta.k8s.io/v1");
  CHECK(t["metadata"]["resourceVersion"] == "7");
  std::vector<std::string> names;
  for (const auto& c : t["columnDefinitions"])
    if (c["priority"] == 0) names.push_back(c["name"]);
  CHECK(names == std::vector<std::string>{"Name", "Status", "Roles", "Age", "Version", "Province"});
  CHECK(t["rows"][0]["cells"][0] == "n1");
  CHECK(t["rows"][0]["cells"][1] == "Ready");
  CHECK(t["rows"][0]["cells"][2] == "edge");
  CHECK(t["rows"][0]["cells"][3] == "3h");
  CHECK(t["rows"][0]["cells"][5] == "zhejiang");
  CHECK(t["rows"][0]["object"]["kind"] == "PartialObjectMetadata");

  json pod = pod_json();
  pod["status"] = {{"phase", "Running"}, {"podIP", "10.0.0.9"}};
  json pt = render_table(kinds::pod().table_columns(), {pod}, "8", kNow);
  CHECK(pt["rows"][0]["cells"] ==
        json({"web", "0/2", "Running", 0, "3h", "10.0.0.9", "n1", "<none>", "<none>"}));
  CHECK(pt["rows"][0]["object"]["metadata"]["namespace"] == "default");
  CHECK(pt["columnDefinitions"][5]["priority"] == 1);
}

TEST_CASE("ages read as kubectl prints them", "[api][render]") {
  using std::chrono::seconds;
  CHECK(human_age(seconds(45)) == "45s");
  CHECK(human_age(seconds(150)) == "2m30s");
  CHECK(human_age(seconds(3600)) == "60m");
  CHECK(human_age(seconds(5 * 3600 + 120)) == "5h2m");
  CHECK(human_age(seconds(3 * 86400)) == "3d");
  CHECK(human_age(seconds(800 * 86400)) == "2y");
  CHECK(rfc3339(0) == "1970-01-01T00:00:00Z");
  CHECK(parse_rfc3339("2024-01-01T00:00:00Z") == 1'704'067'200);
}
