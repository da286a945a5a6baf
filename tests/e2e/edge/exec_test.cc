// kubectl exec and attach end to end: real kubectl (1.30+ over WebSocket v5.channel.k8s.io, 1.27
// refused with a message), real cloudcore, the tunnel, edgecore, containerd's streaming server.
// What is asserted is what the user sees: kubectl's output and its exit code.
#include <fmt/format.h>
#include <signal.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>

#include "tests/e2e/edge/edge_cluster.h"

namespace gantry::edge_test {
namespace {

using namespace std::chrono_literals;
using test::eventually;
namespace fs = std::filesystem;

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// kubectl binaries that speak WebSocket exec (1.30+). Not /usr/bin/kubectl on these machines:
// it is gcloud's dispatcher, which runs the kubectl matching the server's version (cloudcore
// says v1.28), i.e. a SPDY-only one.
std::vector<std::string> websocket_kubectls() {
  std::vector<std::string> out;
  for (const char* p :
       {"/usr/lib/google-cloud-sdk/bin/kubectl.1.30", "/usr/lib/google-cloud-sdk/bin/kubectl.1.33"})
    if (fs::exists(p)) out.emplace_back(p);
  if (out.empty()) out.emplace_back("/usr/bin/kubectl");
  return out;
}

std::string modern_kubectl() {
  return websocket_kubectls().back();
}

struct Shell {
  EdgeCluster& c;
  std::string kubectl;
  std::string kubeconfig;
  // `sh -c SCRIPT`, where $K is this kubectl with its kubeconfig.
  Output run(const std::string& script, std::chrono::milliseconds timeout = 60s) {
    // Paths without spaces (temporary directories): $K splits into the words it should.
    std::string k = kubectl + " --kubeconfig " + kubeconfig;
    auto r = test::run_command({"/bin/sh", "-c", "K=" + quote(k) + "; " + script}, timeout);
    return {r.exit_code, r.output};
  }
};

std::string write_kubeconfig(EdgeCluster& c, const std::string& name, const std::string& token) {
  std::ifstream in(c.dir() / "cloud" / "admin.kubeconfig");
  std::stringstream text;
  text << in.rdbuf();
  std::string config =
      std::regex_replace(text.str(), std::regex(R"(token: *\S+)"), "token: " + token);
  fs::path out = c.dir() / (name + ".kubeconfig");
  std::ofstream(out) << config;
  return out.string();
}

TEST_CASE("kubectl exec and attach reach a container on the edge through the tunnel",
          "[edge][exec]") {
  EdgeCluster c;
  REQUIRE(c.kubectl_apply(c.pod_yaml("box", "echo started; sleep 3600")).exit_code == 0);
  REQUIRE(eventually([&] { return c.pod_field("box", "{.status.phase}") == "Running"; }, 60s));
  const std::string admin = (c.dir() / "cloud" / "admin.kubeconfig").string();

  for (const auto& kubectl : websocket_kubectls()) {
    DYNAMIC_SECTION("with " << kubectl) {
      Shell sh{c, kubectl, admin};
      // Output on both streams, and the command's exit code as kubectl's.
      auto r = sh.run("$K exec box -- sh -c 'echo hi; echo err >&2; exit 3'");
      INFO(r.text);
      INFO(c.edgecore_log());
      CHECK(r.exit_code == 3);
      CHECK(contains(r.text, "hi\n"));
      CHECK(contains(r.text, "err\n"));

      // stdin piped in, to its end: cat sees EOF and exits 0.
      auto in = sh.run("printf 'abc\\ndef\\n' | $K exec -i box -- cat");
      INFO(in.text);
      CHECK(in.exit_code == 0);
      CHECK(in.text == "abc\ndef\n");

      // A bigger stdin and output (flow control both ways).
      auto big = sh.run("seq 1 50000 | $K exec -i box -- wc -l");
      INFO(big.text);
      CHECK(big.exit_code == 0);
      CHECK(contains(big.text, "50000"));
      auto many = sh.run("$K exec box -- seq 1 100000 | tail -n 1");
      CHECK(many.text == "100000\n");

      // A terminal (kubectl under `script`, which gives it a pty): an interactive shell.
      auto tty = sh.run(
          "printf 'tty; stty size; exit 4\\n' | script -qec \"$K exec -it box -- sh\" /dev/null");
      INFO(tty.text);
      CHECK(tty.exit_code == 4);
      CHECK(contains(tty.text, "/dev/pts/"));

      // Errors kubectl prints clearly.
      auto missing = sh.run("$K exec box -c nope -- true");
      INFO(missing.text);
      CHECK(missing.exit_code != 0);
      CHECK(contains(missing.text, "container nope is not valid for pod box"));
      auto no_pod = sh.run("$K exec ghost -- true");
      CHECK(no_pod.exit_code != 0);
      CHECK(contains(no_pod.text, "pods \"ghost\" not found"));
      auto no_cmd = sh.run("$K exec box -- /no/such/binary");
      INFO(no_cmd.text);
      CHECK(no_cmd.exit_code != 0);
      CHECK(contains(no_cmd.text, "/no/such/binary"));
    }
  }

  SECTION("kubectl attach sees the container's own output") {
    Shell sh{c, modern_kubectl(), admin};
    REQUIRE(c.kubectl_apply(c.pod_yaml("talker",
                                       "i=0; while true; do i=$((i+1)); echo line $i; "
                                       "sleep 0.2; done"))
                .exit_code == 0);
    REQUIRE(eventually([&] { return c.pod_field("talker", "{.status.phase}") == "Running"; }, 60s));
    test::ChildProcess attach({modern_kubectl(), "--kubeconfig", admin, "attach", "talker"},
                              c.dir() / "attach.log");
    CHECK(
        eventually([&] { return std::regex_search(attach.log(), std::regex("line \\d+")); }, 30s));
    attach.signal(SIGTERM);
    attach.wait();
  }

  SECTION("kubectl 1.27 (SPDY only) is told what it needs") {
    const std::string old = "/usr/lib/google-cloud-sdk/bin/kubectl.1.27";
    if (!fs::exists(old)) {
      WARN("no kubectl 1.27 here");
      return;
    }
    Shell sh{c, old, admin};
    auto r = sh.run("$K exec box -- true");
    INFO(r.text);
    CHECK(r.exit_code != 0);
    CHECK(contains(r.text, "exec needs kubectl 1.30 or newer"));
    // Errors the cloud knows come first, as with a new kubectl.
    auto missing = sh.run("$K exec box -c nope -- true");
    CHECK(contains(missing.text, "container nope is not valid for pod box"));
  }

  SECTION("a province operator may exec only into the pods of their province") {
    // The node joined province "test".
    std::ofstream(c.dir() / "cloud" / "tokens.csv", std::ios::app)
        << "\ntest-op-token,test-op,test-op,\"gantry:province:test:operator\"\n"
        << "other-op-token,other-op,other-op,\"gantry:province:other:operator\"\n"
        << "test-viewer-token,test-viewer,test-viewer,\"gantry:province:test:viewer\"\n";
    Shell mine{c, modern_kubectl(), write_kubeconfig(c, "test-op", "test-op-token")};
    Shell other{c, modern_kubectl(), write_kubeconfig(c, "other-op", "other-op-token")};
    Shell viewer{c, modern_kubectl(), write_kubeconfig(c, "test-viewer", "test-viewer-token")};
    // The token file is reloaded when it changes.
    REQUIRE(eventually([&] { return mine.run("$K exec box -- echo mine").text == "mine\n"; }, 30s));
    auto r = other.run("$K exec box -- echo theirs");
    INFO(r.text);
    CHECK(r.exit_code != 0);
    CHECK(contains(r.text, "Forbidden"));
    CHECK_FALSE(contains(r.text, "theirs"));
    auto v = viewer.run("$K exec box -- echo seen");
    INFO(v.text);
    CHECK(v.exit_code != 0);
    CHECK(contains(v.text, "Forbidden"));
  }

  SECTION("a node that goes away ends a session with a message, and then refuses new ones") {
    Shell sh{c, modern_kubectl(), admin};
    test::ChildProcess session({modern_kubectl(), "--kubeconfig", admin, "exec", "box", "--", "sh",
                                "-c", "echo ready; sleep 600"},
                               c.dir() / "dropped.log");
    REQUIRE(eventually([&] { return contains(session.log(), "ready"); }, 30s));
    c.kill_edgecore();
    int code = session.wait(60s);
    INFO(session.log());
    CHECK(code != 0);
    CHECK(code != -1);
    CHECK(contains(session.log(), "the connection to node \"edge-1\" was lost"));
    auto r = sh.run("$K exec box -- true");
    INFO(r.text);
    CHECK(r.exit_code != 0);
    CHECK(contains(r.text, "ServiceUnavailable"));
    CHECK(contains(r.text, "edge-1"));
  }
}

}  // namespace
}  // namespace gantry::edge_test
