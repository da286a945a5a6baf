// Real kubectl (the oldest and newest on the machine, and the one on PATH) against an in-process
// API server with a real store; edge reports are simulated by writing StoredStatus records the
// way the hub does.
#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cloudcore/controllers/workloads.h"
#include "cloudcore/registry/keys.h"
#include "tests/unit/cloudcore/api/api_fixture.h"
#include "tests/unit/cloudcore/api/kubectl_runner.h"

using namespace gantry;
using namespace gantry::test;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string write_file(const ApiFixture& api, const std::string& name, const std::string& text) {
  auto path = api.dir() / name;
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace

TEST_CASE("kubectl binaries exist on this machine", "[e2e][kubectl]") {
  REQUIRE_FALSE(kubectl_binaries().empty());
}

TEST_CASE("kubectl get nodes shows STATUS and PROVINCE, and filters by province",
          "[e2e][kubectl]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  api.put_node("hz-1", "zhejiang");
  api.put_node("nj-1", "jiangsu");
  api.put_node("nj-2", "jiangsu");
  api.put_node_status("hz-1", true);
  api.put_node_status("nj-1", false);
  api.put_node_status("nj-2", true, /*unreachable=*/true);
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  auto [code, out] = k.run({"get", "nodes"});
  INFO(out);
  REQUIRE(code == 0);
  CHECK(contains(out, "STATUS"));
  CHECK(contains(out, "PROVINCE"));
  CHECK(contains(out, "hz-1   Ready"));
  CHECK(contains(out, "nj-1   NotReady"));
  CHECK(contains(out, "nj-2   Unknown"));
  CHECK(contains(out, "zhejiang"));

  auto [code2, out2] = k.run({"get", "nodes", "-l", "topology.gantry.io/province=zhejiang"});
  INFO(out2);
  REQUIRE(code2 == 0);
  CHECK(contains(out2, "hz-1"));
  CHECK_FALSE(contains(out2, "nj-1"));
}

TEST_CASE("kubectl get pods -A -o wide shows READY, STATUS, IP and NODE", "[e2e][kubectl]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  api.put_node("hz-1", "zhejiang");
  api.put_pod("default", "web", "hz-1");
  api.put_pod("kube-system", "agent", "hz-1");
  api.put_pod_status("default", "web", v1::POD_PHASE_RUNNING, true, "10.9.8.7", 3);
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  auto [code, out] = k.run({"get", "pods", "-A", "-o", "wide"});
  INFO(out);
  REQUIRE(code == 0);
  for (const char* column :
       {"NAMESPACE", "NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"})
    CHECK(contains(out, column));
  CHECK(contains(out, "default"));
  CHECK(contains(out, "kube-system"));
  CHECK(contains(out, "1/1"));
  CHECK(contains(out, "Running"));
  CHECK(contains(out, "10.9.8.7"));
  CHECK(contains(out, "hz-1"));
}

TEST_CASE("kubectl apply creates then patches, and delete removes", "[e2e][kubectl]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  api.put_node("hz-1", "zhejiang");
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  std::string manifest =
      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels:\n    app: web\nspec:\n  "
      "nodeName: hz-1\n"
      "  containers:\n  - name: main\n    image: nginx:1.25\n    env:\n    - name: A\n      value: "
      "\"1\"\n";
  auto [c1, o1] = k.run({"apply", "-f", write_file(api, "pod.yaml", manifest)});
  INFO(o1);
  REQUIRE(c1 == 0);
  CHECK(contains(o1, "pod/web created"));

  std::string changed = manifest;
  changed.replace(changed.find("nginx:1.25"), 10, "nginx:1.26");
  changed.replace(changed.find("app: web"), 8, "app: web\n    tier: front");
  auto [c2, o2] = k.run({"apply", "-f", write_file(api, "pod2.yaml", changed)});
  INFO(o2);
  REQUIRE(c2 == 0);
  CHECK(contains(o2, "pod/web configured"));
  auto got = api.call("GET", "/api/v1/namespaces/default/pods/web", kAdminToken).json();
  CHECK(got["spec"]["containers"][0]["image"] == "nginx:1.26");
  CHECK(got["spec"]["containers"][0]["env"][0]["name"] == "A");
  CHECK(got["metadata"]["labels"]["tier"] == "front");
  CHECK(
      got["metadata"]["annotations"].contains("kubectl.kubernetes.io/last-applied-configuration"));

  auto [c3, o3] = k.run({"label", "pod", "web", "extra=yes"});
  INFO(o3);
  CHECK(c3 == 0);

  auto [c4, o4] = k.run({"delete", "pod", "web", "--grace-period=0", "--force"});
  INFO(o4);
  REQUIRE(c4 == 0);
  CHECK(contains(o4, "deleted"));
  CHECK(api.call("GET", "/api/v1/namespaces/default/pods/web", kAdminToken).code == 404);
}

TEST_CASE("a graceful kubectl delete leaves the pod Terminating until the edge reports it gone",
          "[e2e][kubectl]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  api.put_node("hz-1", "zhejiang");
  api.put_pod("default", "web", "hz-1");
  api.put_pod_status("default", "web", v1::POD_PHASE_RUNNING, true);
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  auto [c1, o1] = k.run({"delete", "pod", "web", "--wait=false"});
  INFO(o1);
  REQUIRE(c1 == 0);
  auto [c2, o2] = k.run({"get", "pod", "web"});
  INFO(o2);
  CHECK(contains(o2, "Terminating"));
  // What the hub does once the edge reports the pod stopped.
  REQUIRE(
      api.store()
          .txn({cloud::Op::remove(cloud::keys::object_key(v1::OBJECT_KIND_POD, "default", "web")),
                cloud::Op::remove(cloud::keys::status_key(v1::OBJECT_KIND_POD, "default", "web"))})
          .ok());
  auto [c3, o3] = k.run({"get", "pod", "web"});
  INFO(o3);
  CHECK(c3 != 0);
  CHECK(contains(o3, "NotFound"));
}

TEST_CASE("kubectl get pods -w sees a status change made by an edge", "[e2e][kubectl]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  api.put_node("hz-1", "zhejiang");
  api.put_pod("default", "web", "hz-1");
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  auto log = api.dir() / "watch.log";
  ChildProcess watch(k.argv({"get", "pods", "-w"}), log);
  REQUIRE(eventually([&] { return contains(watch.log(), "Pending"); }, std::chrono::seconds(60)));
  api.put_pod_status("default", "web", v1::POD_PHASE_RUNNING, true, "10.1.1.1");
  bool seen =
      eventually([&] { return contains(watch.log(), "Running"); }, std::chrono::seconds(60));
  INFO(watch.log());
  CHECK(seen);
  CHECK(watch.running());
}

TEST_CASE("a province token cannot see another province and kubectl prints the 403",
          "[e2e][kubectl]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  api.put_node("hz-1", "zhejiang");
  api.put_node("nj-1", "jiangsu");
  api.put_pod("default", "nj-web", "nj-1");
  Kubectl k(api, binary, kZhejiangViewerToken);
  INFO(binary);
  auto [c1, o1] = k.run({"get", "nodes"});
  INFO(o1);
  REQUIRE(c1 == 0);
  CHECK(contains(o1, "hz-1"));
  CHECK_FALSE(contains(o1, "nj-1"));
  auto [c2, o2] = k.run({"get", "node", "nj-1"});
  INFO(o2);
  CHECK(c2 != 0);
  CHECK(contains(o2, "Forbidden"));
  CHECK(contains(o2, "may see only province zhejiang"));
  auto [c3, o3] = k.run({"get", "pod", "nj-web"});
  INFO(o3);
  CHECK(c3 != 0);
  CHECK(contains(o3, "jiangsu"));
}

TEST_CASE("bad selectors and wrong kinds reach kubectl as the server's Status and change nothing",
          "[e2e][kubectl]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  api.put_node("hz-1", "zhejiang");
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  auto rev = api.store().current_revision();
  auto [c1, o1] = k.run({"get", "pods", "--field-selector", "spec.hostname=x"});
  INFO(o1);
  CHECK(c1 != 0);
  CHECK(contains(o1, "spec.hostname"));
  auto [c2, o2] = k.run({"create", "-f",
                         write_file(api, "bad.yaml",
                                    "apiVersion: v1\nkind: Pod\nmetadata:\n  name: nope\nspec:\n"
                                    "  containers:\n  - name: main\n")});
  INFO(o2);
  CHECK(c2 != 0);
  CHECK(contains(o2, "image"));
  auto [c3, o3] = k.run({"get", "--raw", "/api/v1/namespaces/default/pods/nope/log"});
  INFO(o3);
  CHECK(c3 != 0);
  CHECK(api.store().current_revision() == rev);
}

TEST_CASE("kubectl api-resources lists every kind from discovery, and get all shows pods",
          "[e2e][kubectl][kinds]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  api.put_node("hz-1", "zhejiang");
  api.put_pod("default", "web", "hz-1");
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  // kubectl >= 1.26 takes discovery from the two aggregated documents: no per-group-version GET;
  // older ones read each group-version (1.20 also the policy group, answered with no resources).
  auto [c0, o0] = k.run({"api-resources", "-v=8"});
  INFO(o0);
  REQUIRE(c0 == 0);
  if (k.minor() >= 26) {
    CHECK(contains(o0, "g=apidiscovery.k8s.io"));
    CHECK_FALSE(contains(o0, "/api/v1?timeout"));
    CHECK_FALSE(contains(o0, "/apis/gantry.io/v1?timeout"));
  } else {
    CHECK(contains(o0, "/apis/gantry.io/v1?timeout"));
    CHECK(contains(o0, "/apis/policy/v1?timeout"));
  }
  auto [c1, o1] = k.run({"api-resources"});
  INFO(o1);
  REQUIRE(c1 == 0);
  for (const char* line :
       {"pods", "nodes", "namespaces", "configmaps", "secrets", "events", "provinces"})
    CHECK(contains(o1, line));
  CHECK(contains(o1, "gantry.io/v1"));
  CHECK(contains(o1, "po"));
  CHECK(contains(o1, "Pod"));
  auto [c2, o2] = k.run({"api-resources", "--namespaced=false", "-o", "name"});
  INFO(o2);
  CHECK(contains(o2, "nodes"));
  CHECK_FALSE(contains(o2, "configmaps"));
  auto [c3, o3] = k.run({"get", "all"});
  INFO(o3);
  REQUIRE(c3 == 0);
  CHECK(contains(o3, "web"));  // pods are in category "all"
  CHECK(contains(o3, "Pending"));
}

TEST_CASE("kubectl diff and --dry-run=server change nothing", "[e2e][kubectl][dryrun]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  api.put_node("hz-1", "zhejiang");
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  std::string manifest =
      "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\nspec:\n  nodeName: hz-1\n"
      "  containers:\n  - name: main\n    image: nginx:1.25\n";
  auto [c0, o0] = k.run({"apply", "-f", write_file(api, "pod.yaml", manifest)});
  INFO(o0);
  REQUIRE(c0 == 0);
  auto rev = api.store().current_revision();

  std::string changed = manifest;
  changed.replace(changed.find("nginx:1.25"), 10, "nginx:1.26");
  auto changed_file = write_file(api, "pod2.yaml", changed);
  auto [c1, o1] = k.run({"diff", "-f", changed_file});
  INFO(o1);
  CHECK(c1 == 1);  // kubectl diff: 1 = differences found
  CHECK(contains(o1, "nginx:1.26"));

  auto [c2, o2] = k.run({"apply", "-f", changed_file, "--dry-run=server"});
  INFO(o2);
  CHECK(c2 == 0);
  CHECK(contains(o2, "server dry run"));
  auto other =
      write_file(api, "other.yaml",
                 "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n");
  auto [c3, o3] = k.run({"create", "-f", other, "--dry-run=server"});
  INFO(o3);
  CHECK(c3 == 0);
  auto [c4, o4] = k.run({"delete", "pod", "web", "--dry-run=server"});
  INFO(o4);
  CHECK(c4 == 0);
  CHECK(contains(o4, "server dry run"));

  CHECK(api.store().current_revision() == rev);
  auto got = api.call("GET", "/api/v1/namespaces/default/pods/web", kAdminToken).json();
  CHECK(got["spec"]["containers"][0]["image"] == "nginx:1.25");
  CHECK_FALSE(got["metadata"].contains("deletionTimestamp"));
  CHECK(api.call("GET", "/api/v1/namespaces/default/configmaps/cfg", kAdminToken).code == 404);
}

TEST_CASE("kubectl delete --all removes a collection", "[e2e][kubectl][delete]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  auto configmaps = [&](std::initializer_list<const char*> names) {
    std::string text;
    for (const char* name : names)
      text += std::string("---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: \"") + name +
              "\""
              "\ndata:\n  k: v\n";
    auto [c, o] = k.run({"apply", "-f", write_file(api, "cms.yaml", text)});
    INFO(o);
    REQUIRE(c == 0);
  };
  configmaps({"a", "b", "c"});
  auto [c1, o1] = k.run({"delete", "configmaps", "--all"});
  INFO(o1);
  REQUIRE(c1 == 0);
  CHECK(contains(o1, "deleted"));
  CHECK(api.call("GET", "/api/v1/namespaces/default/configmaps", kAdminToken)
            .json()["items"]
            .empty());
  // The same through the deletecollection verb, by label.
  configmaps({"x", "y"});
  auto [c2, o2] = k.run({"label", "configmap", "x", "drop=yes"});
  REQUIRE(c2 == 0);
  auto [c3, o3] =
      k.run({"delete", "--raw", "/api/v1/namespaces/default/configmaps?labelSelector=drop%3Dyes"});
  INFO(o3);
  REQUIRE(c3 == 0);
  auto left = api.call("GET", "/api/v1/namespaces/default/configmaps", kAdminToken).json()["items"];
  REQUIRE(left.size() == 1);
  CHECK(left[0]["metadata"]["name"] == "y");
}

TEST_CASE("kubectl drain cordons the node and evicts its pods through pods/eviction",
          "[e2e][kubectl][drain]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  api.put_node("hz-1", "zhejiang");
  api.put_node("hz-2", "zhejiang");
  api.put_pod("default", "web", "hz-1");
  api.put_pod("kube-system", "agent", "hz-1");
  api.put_pod("default", "other", "hz-2");
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  // Gracefully: drain waits until the pods are gone, which is when the hub removes them after the
  // edge reports them stopped; this test plays the hub.
  ChildProcess drain(k.argv({"drain", "hz-1", "--force", "--ignore-daemonsets",
                             "--delete-emptydir-data", "--timeout=90s"}),
                     api.dir() / "drain.log");
  auto terminating = [&](const char* ns, const char* name) {
    auto p =
        api.call("GET", std::string("/api/v1/namespaces/") + ns + "/pods/" + name, kAdminToken);
    return p.code == 200 && p.json()["metadata"].contains("deletionTimestamp");
  };
  REQUIRE(eventually(
      [&] { return terminating("default", "web") && terminating("kube-system", "agent"); },
      std::chrono::seconds(60)));
  for (auto [ns, name] : {std::pair{"default", "web"}, {"kube-system", "agent"}})
    REQUIRE(api.store()
                .txn({cloud::Op::remove(cloud::keys::object_key(v1::OBJECT_KIND_POD, ns, name))})
                .ok());
  int code = drain.wait(std::chrono::seconds(90));
  INFO(drain.log());
  CHECK(code == 0);
  CHECK(contains(drain.log(), "evicting pod"));
  // kubectl 1.20's last line says "node/hz-1 evicted" where later ones say "drained".
  CHECK(contains(drain.log(), k.minor() < 21 ? "node/hz-1 evicted" : "drained"));
  auto node = api.call("GET", "/api/v1/nodes/hz-1", kAdminToken).json();
  CHECK(node["spec"]["unschedulable"] == true);
  CHECK(api.call("GET", "/api/v1/namespaces/default/pods/other", kAdminToken).code == 200);
}

TEST_CASE("a typo'd field reaches kubectl as a Warning and is dropped, and Strict refuses it",
          "[e2e][kubectl][validation]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  api.put_node("hz-1", "zhejiang");
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  auto manifest = [](const std::string& name) {
    return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name +
           "\nspec:\n  nodeName: hz-1\n  contaners: []\n  containers:\n  - name: main\n"
           "    image: nginx:1.25\n";
  };
  // kubectl before 1.25 sends no fieldValidation: the server's default (Warn) drops the field
  // and kubectl prints the Warning; the rest of this case needs the --validate=strict|warn flags.
  if (k.minor() < 25) {
    auto [code, out] = k.run({"apply", "-f", write_file(api, "old.yaml", manifest("typo-old"))});
    INFO(out);
    CHECK(code == 0);
    CHECK(contains(out, "Warning: unknown field \"spec.contaners\""));
    auto got = api.call("GET", "/api/v1/namespaces/default/pods/typo-old", kAdminToken);
    REQUIRE(got.code == 200);
    CHECK_FALSE(got.json()["spec"].contains("contaners"));
    return;
  }
  // kubectl's default (--validate=strict) sends fieldValidation=Strict: kube-apiserver's 400.
  {
    auto [code, out] = k.run({"apply", "-f", write_file(api, "strict.yaml", manifest("typo"))});
    INFO(out);
    CHECK(code != 0);
    CHECK(contains(out,
                   "Pod in version \"v1\" cannot be handled as a Pod: strict decoding "
                   "error: unknown field \"spec.contaners\""));
    CHECK(api.call("GET", "/api/v1/namespaces/default/pods/typo", kAdminToken).code == 404);
  }
  // --validate=warn: dropped, and kubectl prints the server's Warning; --validate=false: dropped.
  for (const char* validate : {"--validate=warn", "--validate=false"}) {
    std::string name = std::string("typo-") + (validate[11] == 'w' ? "warn" : "off");
    auto [code, out] =
        k.run({"create", validate, "-f", write_file(api, name + ".yaml", manifest(name))});
    INFO(validate << "\n" << out);
    CHECK(code == 0);
    CHECK(contains(out, "Warning: unknown field \"spec.contaners\"") == (validate[11] == 'w'));
    auto got = api.call("GET", "/api/v1/namespaces/default/pods/" + name, kAdminToken);
    REQUIRE(got.code == 200);
    CHECK_FALSE(got.json()["spec"].contains("contaners"));
  }
  // A client that asks for Strict (here kubectl's raw POST) gets kube-apiserver's 400.
  nlohmann::json pod = {{"apiVersion", "v1"},
                        {"kind", "Pod"},
                        {"metadata", {{"name", "strict"}}},
                        {"spec",
                         {{"nodeName", "hz-1"},
                          {"contaners", nlohmann::json::array()},
                          {"containers", {{{"name", "main"}, {"image", "nginx:1.25"}}}}}}};
  auto [code, out] =
      k.run({"create", "--raw", "/api/v1/namespaces/default/pods?fieldValidation=Strict", "-f",
             write_file(api, "strict.json", pod.dump())});
  INFO(out);
  CHECK(code != 0);
  CHECK(contains(out, "strict decoding error: unknown field"));
  CHECK(contains(out, "spec.contaners"));
  CHECK(api.call("GET", "/api/v1/namespaces/default/pods/strict", kAdminToken).code == 404);
}

namespace {

// RFC 3339 in UTC, `micros` with six fraction digits (metav1.MicroTime), `ago` before now.
std::string utc_time(std::chrono::seconds ago, bool micros = false) {
  auto t = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() - ago);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof buf, micros ? "%Y-%m-%dT%H:%M:%S.000000Z" : "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

}  // namespace

TEST_CASE("kubectl get events.v1.events.k8s.io, kubectl events and describe show the same events",
          "[e2e][kubectl][events]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  api.put_node("hz-1", "zhejiang");
  api.put_pod("default", "web", "hz-1");
  std::string uid = api.pod_uid("default", "web");
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  // One event as the edge's kubelet writes it (core v1) ...
  nlohmann::json core = {{"apiVersion", "v1"},
                         {"kind", "Event"},
                         {"metadata", {{"name", "web.backoff"}, {"namespace", "default"}}},
                         {"involvedObject",
                          {{"kind", "Pod"},
                           {"namespace", "default"},
                           {"name", "web"},
                           {"uid", uid},
                           {"apiVersion", "v1"},
                           {"fieldPath", "spec.containers{main}"}}},
                         {"reason", "BackOff"},
                         {"message", "Back-off restarting failed container main"},
                         {"type", "Warning"},
                         {"count", 4},
                         {"firstTimestamp", utc_time(std::chrono::seconds(600))},
                         {"lastTimestamp", utc_time(std::chrono::seconds(120))},
                         {"source", {{"component", "kubelet"}, {"host", "hz-1"}}},
                         {"reportingComponent", "kubelet"},
                         {"reportingInstance", "hz-1"}};
  auto posted = api.call("POST", "/api/v1/namespaces/default/events", kAdminToken, core.dump());
  INFO(posted.body);
  REQUIRE(posted.code == 201);
  // ... and one created through events.k8s.io/v1 by kubectl, as a newer controller would.
  std::string manifest =
      "apiVersion: events.k8s.io/v1\nkind: Event\nmetadata:\n  name: web.sched\n"
      "eventTime: \"" +
      utc_time(std::chrono::seconds(300), true) +
      "\"\nreportingController: gantry.io/scheduler\n"
      "reportingInstance: cloudcore-0\naction: Binding\nreason: Scheduled\n"
      "type: Normal\nnote: Successfully assigned default/web to hz-1\n"
      "regarding:\n  kind: Pod\n  apiVersion: v1\n  namespace: default\n"
      "  name: web\n  uid: " +
      uid + "\n";
  auto [c0, o0] = k.run({"create", "-f", write_file(api, "event.yaml", manifest)});
  INFO(o0);
  REQUIRE(c0 == 0);
  CHECK(contains(o0, "event.events.k8s.io/web.sched created"));

  // The events.k8s.io/v1 shape, with that version's columns.
  auto [c1, o1] = k.run({"get", "events.v1.events.k8s.io"});
  INFO(o1);
  REQUIRE(c1 == 0);
  CHECK(contains(o1, "LAST SEEN"));
  CHECK(contains(o1, "BackOff"));
  CHECK(contains(o1, "Scheduled"));
  CHECK(contains(o1, "pod/web"));
  CHECK(contains(o1, "Back-off restarting failed container main"));
  auto [c2, o2] = k.run({"get", "events.v1.events.k8s.io", "web.backoff", "-o",
                         "jsonpath={.note}|{.deprecatedCount}"});
  INFO(o2);
  REQUIRE(c2 == 0);
  CHECK(contains(o2, "Back-off restarting failed container main|4"));

  // kubectl events (1.26 and later; core v1 under the hood): both, oldest first; --for and
  // --types filter. Older kubectl: `get events` shows both.
  if (k.minor() < 26) {
    auto [c3, o3] = k.run({"get", "events"});
    INFO(o3);
    REQUIRE(c3 == 0);
    CHECK(contains(o3, "BackOff"));
    CHECK(contains(o3, "Scheduled"));
  } else {
    auto [c3, o3] = k.run({"events"});
    INFO(o3);
    REQUIRE(c3 == 0);
    CHECK(contains(o3, "LAST SEEN"));
    CHECK(contains(o3, "Pod/web"));
    CHECK(contains(o3, "Successfully assigned default/web to hz-1"));
    REQUIRE(contains(o3, "BackOff"));
    CHECK(o3.find("Scheduled") < o3.find("BackOff"));
    auto [c4, o4] = k.run({"events", "--for", "pod/web", "--types=Warning"});
    INFO(o4);
    REQUIRE(c4 == 0);
    CHECK(contains(o4, "BackOff"));
    CHECK_FALSE(contains(o4, "Scheduled"));
    auto [c5, o5] = k.run({"events", "--for", "pod/other"});
    INFO(o5);
    CHECK(c5 == 0);
    CHECK_FALSE(contains(o5, "BackOff"));
  }

  // describe reads them through core v1's involvedObject field selector.
  auto [c6, o6] = k.run({"describe", "pod", "web"});
  INFO(o6);
  REQUIRE(c6 == 0);
  CHECK(contains(o6, "Events:"));
  CHECK(contains(o6, "BackOff"));
  CHECK(contains(o6, "Scheduled"));
  CHECK(contains(o6, "Successfully assigned default/web to hz-1"));
}

TEST_CASE("kubectl create configmap, secret and namespace work though kubectl 1.33 sends protobuf",
          "[e2e][kubectl][protobuf]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  // Not UTF-8, so kubectl puts it in binaryData.
  std::string file = write_file(api, "settings.bin", std::string("\xff\xfe\0\x01", 4));
  auto [c1, o1] = k.run({"create", "configmap", "app-config", "--from-literal=mode=fast",
                         "--from-file=settings.bin=" + file, "-v=7"});
  INFO(o1);
  REQUIRE(c1 == 0);
  CHECK(contains(o1, "configmap/app-config created"));
  // What kubectl 1.33's typed clients send (older ones send JSON): this is the case being tested.
  if (contains(binary, "1.33"))
    CHECK(contains(o1, "Content-Type: application/vnd.kubernetes.protobuf"));
  auto cm = api.call("GET", "/api/v1/namespaces/default/configmaps/app-config", kAdminToken);
  REQUIRE(cm.code == 200);
  CHECK(cm.json()["data"] == nlohmann::json{{"mode", "fast"}});
  CHECK(cm.json()["binaryData"]["settings.bin"] == "//4AAQ==");

  auto [c2, o2] = k.run({"create", "secret", "generic", "db", "--from-literal=password=s3cret"});
  INFO(o2);
  REQUIRE(c2 == 0);
  CHECK(contains(o2, "secret/db created"));
  auto secret = api.call("GET", "/api/v1/namespaces/default/secrets/db", kAdminToken);
  REQUIRE(secret.code == 200);
  CHECK(secret.json()["data"]["password"] == "czNjcmV0");
  CHECK(secret.json()["type"] == "Opaque");

  auto [c3, o3] = k.run({"create", "namespace", "team-a"});
  INFO(o3);
  REQUIRE(c3 == 0);
  CHECK(contains(o3, "namespace/team-a created"));
  CHECK(api.call("GET", "/api/v1/namespaces/team-a", kAdminToken).code == 200);
}

TEST_CASE("kubectl create job runs a Job that kubectl get jobs and kubectl wait follow",
          "[e2e][kubectl][job]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  auto started = cloud::controllers::WorkloadControllers::start(api.store());
  REQUIRE(started.ok());
  auto controllers = std::move(started).value();
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  auto [c0, o0] = k.run({"api-resources", "--api-group=batch"});
  INFO(o0);
  REQUIRE(c0 == 0);
  CHECK(contains(o0, "jobs"));
  CHECK(contains(o0, "batch/v1"));

  // kubectl 1.33 sends this body as protobuf; older ones as JSON.
  auto [c1, o1] =
      k.run({"create", "job", "hello", "--image=busybox:1.36", "-v=7", "--", "echo", "hi"});
  INFO(o1);
  REQUIRE(c1 == 0);
  CHECK(contains(o1, "job.batch/hello created"));
  if (contains(binary, "1.33"))
    CHECK(contains(o1, "Content-Type: application/vnd.kubernetes.protobuf"));
  auto job = api.call("GET", "/apis/batch/v1/namespaces/default/jobs/hello", kAdminToken).json();
  CHECK(job["spec"]["template"]["spec"]["restartPolicy"] == "Never");
  CHECK(job["spec"]["template"]["spec"]["containers"][0]["command"] ==
        nlohmann::json::array({"echo", "hi"}));
  CHECK(job["spec"]["backoffLimit"] == 6);

  // The controller makes its pod; the edge (simulated) reports it succeeded.
  std::string pod;
  REQUIRE(eventually([&] {
    auto pods = api.call("GET", "/api/v1/namespaces/default/pods?labelSelector=job-name%3Dhello",
                         kAdminToken)
                    .json();
    if (pods["items"].size() != 1) return false;
    pod = pods["items"][0]["metadata"]["name"];
    return true;
  }));
  auto [c2, o2] = k.run({"get", "jobs"});
  INFO(o2);
  REQUIRE(c2 == 0);
  CHECK(contains(o2, "COMPLETIONS"));
  CHECK(contains(o2, "DURATION"));
  CHECK(contains(o2, "hello"));
  CHECK(contains(o2, "0/1"));

  api.put_pod_status("default", pod, v1::POD_PHASE_SUCCEEDED, false);
  auto [c3, o3] = k.run({"wait", "--for=condition=complete", "job/hello", "--timeout=60s"});
  INFO(o3);
  CHECK(c3 == 0);
  CHECK(contains(o3, "job.batch/hello condition met"));
  auto [c4, o4] = k.run({"get", "jobs"});
  INFO(o4);
  CHECK(contains(o4, "Complete"));
  CHECK(contains(o4, "1/1"));
  // describe lists the Job's pods by its generated selector.
  auto [c5, o5] = k.run({"describe", "job", "hello"});
  INFO(o5);
  CHECK(c5 == 0);
  CHECK(contains(o5, "batch.kubernetes.io/controller-uid="));
  CHECK(contains(o5, "1 Succeeded"));
  controllers->stop();
}

TEST_CASE("kubectl create cronjob makes a CronJob that kubectl get cronjobs shows",
          "[e2e][kubectl][cronjob]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  ApiFixture api;
  Kubectl k(api, binary, kAdminToken);
  INFO(binary);
  auto [c1, o1] = k.run({"create", "cronjob", "nightly", "--image=busybox:1.36",
                         "--schedule=0 2 * * *", "--", "date"});
  INFO(o1);
  REQUIRE(c1 == 0);
  CHECK(contains(o1, "cronjob.batch/nightly created"));
  auto cj =
      api.call("GET", "/apis/batch/v1/namespaces/default/cronjobs/nightly", kAdminToken).json();
  CHECK(cj["spec"]["schedule"] == "0 2 * * *");
  CHECK(cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["command"] ==
        nlohmann::json::array({"date"}));
  auto [c2, o2] = k.run({"get", "cronjobs"});
  INFO(o2);
  REQUIRE(c2 == 0);
  CHECK(contains(o2, "SCHEDULE"));
  CHECK(contains(o2, "0 2 * * *"));
  CHECK(contains(o2, "False"));
  // kubectl create job --from=cronjob: a manual run owned by the CronJob. kubectl 1.20 reads the
  // CronJob in the preferred version (batch/v1), which its scheme does not know ("no kind
  // \"CronJob\" is registered for version \"batch/v1\""), as against any Kubernetes >= 1.21.
  if (contains(binary, "1.20")) return;
  auto [c3, o3] = k.run({"create", "job", "by-hand", "--from=cronjob/nightly"});
  INFO(o3);
  REQUIRE(c3 == 0);
  auto job = api.call("GET", "/apis/batch/v1/namespaces/default/jobs/by-hand", kAdminToken).json();
  CHECK(job["metadata"]["ownerReferences"][0]["kind"] == "CronJob");
  CHECK(job["spec"]["template"]["spec"]["containers"][0]["command"] ==
        nlohmann::json::array({"date"}));
}
