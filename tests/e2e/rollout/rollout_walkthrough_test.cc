// The walk-through of docs/workloads.md ("Rolling out an upgrade to a province"), run with the
// real kubectl against an in-process API server and the workload controllers on one RocksDB
// store. The edge is a stand-in (tests/unit/cloudcore/controllers/rollout_fleet.h): pods on
// reachable nodes report Ready, the image marked bad crash-loops. Every command run here is read
// from the document's text (a command missing there fails the test), the two manifests are taken
// from it, and the table rows and messages it prints are checked against what kubectl shows.
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cloudcore/controllers/imagepull.h"
#include "tests/unit/cloudcore/controllers/rollout_fleet.h"

namespace gantry::cloud::controllers {
namespace {

using namespace std::chrono_literals;
using gantry::test::ChildProcess;
using gantry::test::eventually;

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Words separated by any run of whitespace, joined by one space.
std::string squeeze(const std::string& text) {
  std::istringstream in(text);
  std::string word, out;
  while (in >> word) out += (out.empty() ? "" : " ") + word;
  return out;
}

// A command line as the shell splits it (single quotes only, as the document uses them).
std::vector<std::string> shell_words(const std::string& line) {
  std::vector<std::string> out;
  std::string cur;
  bool quoted = false, any = false;
  for (char c : line) {
    if (c == '\'') {
      quoted = !quoted;
      any = true;
    } else if (!quoted && (c == ' ' || c == '\t')) {
      if (any) out.push_back(cur);
      cur.clear();
      any = false;
    } else {
      cur += c;
      any = true;
    }
  }
  if (any) out.push_back(cur);
  return out;
}

std::string kubectl_binary() {
  for (const char* p : {"/usr/bin/kubectl", "/usr/local/bin/kubectl"})
    if (std::filesystem::exists(p)) return p;
  return "";
}

class Walkthrough : public test::RolloutFleet {
 public:
  Walkthrough() {
    const char* src = std::getenv("GANTRY_SOURCE_DIR");
    REQUIRE(src);
    std::string doc = read_text(std::filesystem::path(src) / "docs" / "workloads.md");
    auto begin = doc.find("## Rolling out an upgrade to a province");
    REQUIRE(begin != std::string::npos);
    auto end = doc.find("\n## ", begin + 10);
    section_ = doc.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
    squeezed_ = squeeze(section_);
    binary_ = kubectl_binary();
    REQUIRE_FALSE(binary_.empty());
    kubeconfig_ = (dir() / "kubeconfig").string();
    std::ofstream(kubeconfig_) << "apiVersion: v1\nkind: Config\nclusters:\n- name: gantry\n"
                               << "  cluster:\n    server: " << url("")
                               << "\n    certificate-authority: " << ca_path()
                               << "\nusers:\n- name: admin\n  user:\n    token: "
                               << gantry::test::kAdminToken
                               << "\ncontexts:\n- name: gantry\n  context:\n    cluster: gantry\n"
                               << "    user: admin\ncurrent-context: gantry\n";
    for (const char* file : {"gateway.yaml", "gateway-rollout.yaml"}) {
      std::string marker = std::string("# file: ") + file + "\n";
      auto at = section_.find(marker);
      REQUIRE(at != std::string::npos);
      auto stop = section_.find("```", at);
      REQUIRE(stop != std::string::npos);
      std::ofstream(dir() / file) << section_.substr(at, stop - at);
    }
  }

  // The argv of a command line of the document ("kubectl ..."; a .yaml file is the test's copy).
  std::vector<std::string> argv(const std::string& line) {
    INFO(line);
    CHECK(section_.find(line) != std::string::npos);  // the document shows this very command
    auto words = shell_words(line);
    REQUIRE(!words.empty());
    REQUIRE(words[0] == "kubectl");
    std::vector<std::string> out = {binary_, "--kubeconfig", kubeconfig_, "--cache-dir",
                                    (dir() / "kube-cache").string()};
    for (size_t i = 1; i < words.size(); ++i)
      out.push_back(words[i].ends_with(".yaml") ? (dir() / words[i]).string() : words[i]);
    return out;
  }

  // Runs a command of the document to completion: exit code and output.
  std::pair<int, std::string> run(const std::string& line) {
    ChildProcess p(argv(line), dir() / ("kubectl-" + std::to_string(++runs_) + ".log"));
    int code = p.wait(120s);
    return {code, p.log()};
  }
  std::string ok(const std::string& line) {
    auto [code, out] = run(line);
    INFO(line << "\n" << out);
    REQUIRE(code == 0);
    return out;
  }

  // The words of the `gateway` row of a table kubectl printed, "" when there is none.
  static std::string row(const std::string& out) {
    std::istringstream in(out);
    std::string line, last;
    while (std::getline(in, line))
      if (line.rfind("gateway ", 0) == 0) last = squeeze(line);
    return last;
  }
  // Whether the row (without its AGE) reads `expected`, as the document prints it.
  static bool row_is(const std::string& out, const std::string& expected) {
    std::string r = row(out);
    return r.rfind(expected + " ", 0) == 0;
  }
  // Polls a `get` command of the document until its row reads `expected`.
  bool shows(const std::string& line, const std::string& expected) {
    std::string last;
    bool ok = eventually(
        [&] {
          auto [code, out] = run(line);
          last = out;
          return code == 0 && row_is(out, expected);
        },
        90s, 50ms);
    INFO(line << " -> " << last);
    CHECK(ok);
    return ok;
  }
  // The document prints this text (an output or a row), whitespace aside.
  void printed(const std::string& text) {
    INFO(text);
    CHECK(squeezed_.find(squeeze(text)) != std::string::npos);
  }

  std::string section_, squeezed_, binary_, kubeconfig_;
  int runs_ = 0;
};

const std::string kGet = "kubectl -n toll get rollout gateway";

TEST_CASE_METHOD(Walkthrough,
                 "the rollout walk-through of docs/workloads.md runs as written with kubectl",
                 "[e2e][rollout]") {
  REQUIRE(started());
  mark_bad("registry.local/gateway:2.3");
  start_edge();

  // 1. The DaemonSet.
  ok("kubectl create namespace toll");
  CHECK(ok("kubectl apply -f gateway.yaml").find("daemonset.apps/gateway created") !=
        std::string::npos);
  REQUIRE(eventually([&] { return running("registry.local/gateway:2.1", "toll") == 10; }, 60s));
  CHECK(shows("kubectl -n toll get ds gateway", "gateway 10 10 10 10 10"));

  // 2. The Rollout.
  ok("kubectl apply -f gateway-rollout.yaml");
  printed("gateway ds/gateway 0/3 Completed 10 10 0 0");
  CHECK(shows("kubectl -n toll get rollouts", "gateway ds/gateway 0/3 Completed 10 10 0 0"));

  // 3. The upgrade, watched.
  ok("kubectl -n toll set image ds/gateway gw=registry.local/gateway:2.2");
  {
    ChildProcess watch(argv(kGet + " -w"), dir() / "watch.log");
    printed("gateway ds/gateway 1/3 WaitingApproval 1 1 0 0");
    bool seen = eventually(
        [&] {
          std::istringstream in(watch.log());
          std::string line;
          while (std::getline(in, line))
            if (squeeze(line).rfind("gateway ds/gateway 1/3 WaitingApproval 1 1 0 0 ", 0) == 0)
              return true;
          return false;
        },
        90s);
    INFO(watch.log());
    CHECK(seen);
    watch.signal(SIGTERM);
    (void)watch.wait();
  }
  CHECK(running("registry.local/gateway:2.2", "toll") == 1);
  std::string message =
      "step 1/3 done (1 of 10 nodes updated); approve with spec.approvedStep: 1 (kubectl patch "
      "rollout gateway --type merge -p '{\"spec\":{\"approvedStep\":1}}')";
  printed(message);
  CHECK(ok(kGet + " -o jsonpath='{.status.message}'") == message);

  // 4. Pause, approve, resume.
  ok("kubectl -n toll patch rollout gateway --type merge -p '{\"spec\":{\"paused\":true}}'");
  ok("kubectl -n toll patch rollout gateway --type merge -p '{\"spec\":{\"approvedStep\":1}}'");
  CHECK(shows(kGet, "gateway ds/gateway 1/3 Paused 1 1 0 0"));
  CHECK(running("registry.local/gateway:2.2", "toll") == 1);
  ok("kubectl -n toll patch rollout gateway --type merge -p '{\"spec\":{\"paused\":false}}'");
  CHECK(shows(kGet, "gateway ds/gateway 2/3 WaitingApproval 3 3 0 0"));
  CHECK(running("registry.local/gateway:2.2", "toll") == 3);

  // 5. A station still on 2.1 loses its uplink; step 2 is approved.
  std::string away;
  for (const auto& [node, image] : images("toll"))
    if (image == "registry.local/gateway:2.1" && away.empty()) away = node;
  REQUIRE_FALSE(away.empty());
  set_offline(away, true);
  ok("kubectl -n toll patch rollout gateway --type merge -p '{\"spec\":{\"approvedStep\":2}}'");
  printed("gateway ds/gateway 3/3 Completed 9 9 0 1");
  CHECK(shows(kGet, "gateway ds/gateway 3/3 Completed 9 9 0 1"));
  CHECK(images("toll")[away] == "registry.local/gateway:2.1");
  set_offline(away, false);
  printed("`10 10 0 0`");
  CHECK(shows(kGet, "gateway ds/gateway 3/3 Completed 10 10 0 0"));
  CHECK(running("registry.local/gateway:2.2", "toll") == 10);

  // 6. A bad image pauses by itself.
  ok("kubectl -n toll set image ds/gateway gw=registry.local/gateway:2.3");
  printed("gateway ds/gateway 1/3 Paused 1 0 1 0");
  CHECK(shows(kGet, "gateway ds/gateway 1/3 Paused 1 0 1 0"));
  std::string why = ok(kGet + " -o jsonpath='{.status.message}'");
  CHECK(why.rfind("paused at step 1: 1 of 1 updated pods on reachable nodes failed (threshold 0): ",
                  0) == 0);
  CHECK(
      why.ends_with(" (CrashLoopBackOff); undo, abort, fix the image or raise failureThreshold, "
                    "then resume"));
  printed("paused at step 1: 1 of 1 updated pods on reachable nodes failed (threshold 0):");
  printed("(CrashLoopBackOff); undo, abort, fix the image or raise failureThreshold, then resume");
  CHECK(get("/apis/gantry.io/v1/namespaces/toll/rollouts/gateway")["spec"]["paused"] == true);
  CHECK(running("registry.local/gateway:2.3", "toll") == 1);

  // 7. Undo.
  CHECK(ok("kubectl -n toll rollout undo ds/gateway").find("rolled back") != std::string::npos);
  CHECK(ok("kubectl -n toll rollout status ds/gateway").find("successfully rolled out") !=
        std::string::npos);
  CHECK(shows(kGet, "gateway ds/gateway 1/3 RolledBack 10 10 0 0"));
  CHECK(running("registry.local/gateway:2.2", "toll") == 10);

  // Abort instead of undo: a new run, aborted at step 1, back to 2.2 everywhere.
  ok("kubectl -n toll set image ds/gateway gw=registry.local/gateway:2.4");
  (void)shows(kGet, "gateway ds/gateway 1/3 WaitingApproval 1 1 0 0");
  ok("kubectl -n toll patch rollout gateway --type merge -p '{\"spec\":{\"abort\":true}}'");
  CHECK(shows(kGet, "gateway ds/gateway 1/3 Aborted 0 0 0 0"));  // none runs 2.4
  CHECK(eventually([&] { return running("registry.local/gateway:2.2", "toll") == 10; }, 60s));
  // Nothing left to abort: a 409 that says so.
  auto [code, out] = run(
      "kubectl -n toll patch rollout gateway --type merge -p '{\"spec\":{\"approvedStep\":1}}'");
  CHECK(code != 0);
  CHECK(out.find("nothing to approve") != std::string::npos);
}

// ----- the pre-pull example of docs/workloads.md ("Pre-pulling images", "With a Rollout"): the
// ImagePullJob controller on the same store, with a stand-in for the tunnels that holds the pull
// requests until the test lets the nodes report them pulled.
class HeldPulls : public PullTransport {
 public:
  bool connected(const std::string&) const override { return true; }
  bool send(const std::string& node, const v1::ImagePullRequest& request) override {
    std::lock_guard lock(mu_);
    queued_.emplace_back(node, request);
    return true;
  }
  void finish(ImagePullController& c) {
    std::vector<std::pair<std::string, v1::ImagePullRequest>> q;
    {
      std::lock_guard lock(mu_);
      q.swap(queued_);
    }
    for (const auto& [node, req] : q) {
      v1::ImagePullReport report;
      report.set_job(req.job());
      report.set_job_uid(req.job_uid());
      for (const auto& image : req.images()) {
        auto* r = report.add_images();
        r->set_image(image);
        r->set_phase(v1::IMAGE_PULL_PHASE_SUCCEEDED);
        r->set_image_id("sha256:" + image);
      }
      c.on_report(node, report);
    }
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<std::string, v1::ImagePullRequest>> queued_;
};

class PrePullExample : public Walkthrough {
 public:
  PrePullExample() {
    const char* src = std::getenv("GANTRY_SOURCE_DIR");
    std::string doc = read_text(std::filesystem::path(src) / "docs" / "workloads.md");
    auto begin = doc.find("**With a Rollout.**");
    REQUIRE(begin != std::string::npos);
    auto end = doc.find("\nTests:", begin);
    section_ = doc.substr(begin, end - begin);
    squeezed_ = squeeze(section_);
    std::string marker = "# file: gateway-prepull.yaml\n";
    auto at = section_.find(marker);
    REQUIRE(at != std::string::npos);
    std::ofstream(dir() / "gateway-prepull.yaml")
        << section_.substr(at, section_.find("```", at) - at);
  }
};

TEST_CASE_METHOD(PrePullExample,
                 "the Rollout pre-pull example of docs/workloads.md runs with kubectl",
                 "[e2e][rollout]") {
  REQUIRE(started());
  HeldPulls tunnels;
  ImagePullOptions po;
  po.clock = &clock_;  // the Rollout's clock: the job's deadline is counted on it
  po.tick = 5ms;
  po.status_interval = 0ms;
  auto pulls = ImagePullController::start(store(), tunnels, po);
  REQUIRE(pulls.ok());
  start_edge();
  ok("kubectl create namespace toll");
  ok("kubectl apply -f gateway.yaml");
  REQUIRE(eventually([&] { return running("registry.local/gateway:2.1", "toll") == 10; }, 60s));
  ok("kubectl apply -f gateway-prepull.yaml");
  REQUIRE(eventually(
      [&] {
        return get("/apis/gantry.io/v1/namespaces/toll/rollouts/gateway")["status"].value(
                   "phase", "") == "Completed";
      },
      60s));
  ok("kubectl -n toll set image ds/gateway gw=registry.local/gateway:2.2");
  const std::string reason =
      "kubectl -n toll get ro gateway -o jsonpath='{.status.reason}: {.status.message}'";
  const std::string waiting =
      "PrePulling: step 1/2: pre-pulling the update's images on 1 node(s) (0 done, 0 failed, 0 "
      "offline); their pods are replaced after";
  printed(waiting);
  std::string last;
  CHECK(eventually(
      [&] {
        last = ok(reason);
        return last == waiting;
      },
      60s));
  INFO(last);
  CHECK(running("registry.local/gateway:2.2", "toll") == 0);  // held until the pull is done

  // The station reports the image pulled: the step replaces its pod.
  const std::string result =
      "kubectl -n toll get ro gateway -o jsonpath='{.status.prePulled} {.status.prePullResult}'";
  printed("1 step 1: 1 of 1 node(s) pre-pulled");
  CHECK(eventually(
      [&] {
        tunnels.finish(**pulls);
        return ok(result) == "1 step 1: 1 of 1 node(s) pre-pulled";
      },
      60s));
  CHECK(eventually([&] { return running("registry.local/gateway:2.2", "toll") == 1; }, 60s));
  std::string table =
      ok("kubectl -n toll get ipj -l rollout.gantry.io/name=gateway,rollout.gantry.io/step=1");
  INFO(table);
  std::istringstream in(table);
  std::string header, row;
  std::getline(in, header);
  std::getline(in, row);
  CHECK(squeeze(header) ==
        "NAME PHASE DESIRED SUCCEEDED FAILED PULLING PENDING WAITING-OFFLINE AGE");
  CHECK(squeeze(row).rfind("gateway-prepull-", 0) == 0);
  CHECK(squeeze(row).find(" Succeeded 1 1 0 0 0 0 ") != std::string::npos);
  printed("Succeeded 1 1 0 0 0 0");
  printed("NAME PHASE DESIRED SUCCEEDED FAILED PULLING PENDING WAITING-OFFLINE AGE");
  std::string more;
  std::getline(in, more);
  CHECK(squeeze(more).empty());  // step 1's job only
  stop_edge();
}

}  // namespace
}  // namespace gantry::cloud::controllers
