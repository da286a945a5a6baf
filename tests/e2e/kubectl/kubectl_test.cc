// Real kubectl (the oldest and newest on the machine, and the one on PATH) against an in-process
// API server with a real store; edge reports are simulated by writing StoredStatus records the
// way the hub does.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "cloudcore/registry/keys.h"
#include "tests/unit/cloudcore/api/api_fixture.h"

using namespace gantry;
using namespace gantry::test;

namespace {

std::vector<std::string> kubectl_binaries() {
  std::vector<std::string> out;
  for (const char* p :
       {"/usr/lib/google-cloud-sdk/bin/kubectl.1.27", "/usr/lib/google-cloud-sdk/bin/kubectl.1.33",
        "/usr/bin/kubectl", "/usr/local/bin/kubectl"})
    if (std::filesystem::exists(p)) out.emplace_back(p);
  return out;
}

struct Kubectl {
  ApiFixture& api;
  std::string binary;
  std::string kubeconfig;
  int runs = 0;

  Kubectl(ApiFixture& a, std::string bin, const std::string& token)
      : api(a), binary(std::move(bin)) {
    kubeconfig =
        (api.dir() / ("kubeconfig-" + std::to_string(std::hash<std::string>{}(token)))).string();
    std::ofstream(kubeconfig)
        << "apiVersion: v1\nkind: Config\nclusters:\n- name: gantry\n  cluster:\n"
        << "    server: " << api.url("") << "\n    certificate-authority: " << api.ca_path()
        << "\nusers:\n- name: user\n  user:\n    token: " << token
        << "\ncontexts:\n- name: gantry\n  context:\n    cluster: gantry\n    user: user\n"
        << "current-context: gantry\n";
  }

  std::vector<std::string> argv(const std::vector<std::string>& args) const {
    std::vector<std::string> out = {binary, "--kubeconfig", kubeconfig, "--cache-dir",
                                    (api.dir() / "kube-cache").string()};
    out.insert(out.end(), args.begin(), args.end());
    return out;
  }

  // Runs to completion; returns exit code and combined output.
  std::pair<int, std::string> run(const std::vector<std::string>& args) {
    ChildProcess p(argv(args), api.dir() / ("kubectl-" + std::to_string(++runs) + ".log"));
    int code = p.wait(std::chrono::seconds(120));
    return {code, p.log()};
  }
};

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
  // kubectl >= 1.26 takes discovery from the two aggregated documents: no per-group-version GET.
  auto [c0, o0] = k.run({"api-resources", "-v=8"});
  INFO(o0);
  REQUIRE(c0 == 0);
  CHECK(contains(o0, "g=apidiscovery.k8s.io"));
  CHECK_FALSE(contains(o0, "/api/v1?timeout"));
  CHECK_FALSE(contains(o0, "/apis/gantry.io/v1?timeout"));
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
  // (`kubectl create configmap` of kubectl >= 1.3x sends protobuf, which cloudcore refuses with
  // 415: manifests are JSON/YAML.)
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
  CHECK(contains(drain.log(), "drained"));
  auto node = api.call("GET", "/api/v1/nodes/hz-1", kAdminToken).json();
  CHECK(node["spec"]["unschedulable"] == true);
  CHECK(api.call("GET", "/api/v1/namespaces/default/pods/other", kAdminToken).code == 200);
}
