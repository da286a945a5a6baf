// The staged rollout state machine over simulated fleets: a tiny DaemonSet stand-in applies the
// partition to every reachable node (offline nodes keep what they run), pods of a bad revision
// crash or fail to pull, and the test walks the rollout the way an operator would.
#include "cloudcore/controllers/rollout_plan.h"

#include <fmt/format.h>

#include <algorithm>
#include <catch2/catch.hpp>

namespace gantry::cloud::controllers::rollout {
namespace {

constexpr int64_t kMinute = 60'000;

Step pct(int percent, bool approval = true) {
  Step s;
  s.percent = percent;
  s.pause = approval;
  return s;
}

Step province(const std::string& p, bool approval = true) {
  Step s;
  s.node_selector = {{"gantry.io/province", p}};
  s.pause = approval;
  return s;
}

// A fleet and a DaemonSet that follows the rollout's partition.
struct Sim {
  std::vector<NodeInfo> nodes;
  Spec spec;
  Status status;
  std::string target = "v1";
  int64_t now = 1'800'000'000'000;
  std::string seed = "uid-gw";
  std::set<std::string> bad;          // revisions whose pods crash-loop
  std::set<std::string> pull_fails;   // nodes where pulling the update fails
  std::set<std::string> never_ready;  // revisions whose pods stay not Ready (no error)
  std::map<int, PrePullView> pulls;   // the pre-pull jobs' reports, by step
  Decision last;

  explicit Sim(int n, const std::vector<std::string>& provinces = {"zhejiang", "jiangsu"}) {
    for (int i = 0; i < n; ++i) {
      NodeInfo x;
      x.name = fmt::format("n{:03}", i);
      x.labels = {{"gantry.io/province", provinces[static_cast<size_t>(i) % provinces.size()]}};
      x.revision = "v1";
      x.ready = true;
      nodes.push_back(x);
    }
  }

  NodeInfo& node(const std::string& name) {
    for (auto& n : nodes)
      if (n.name == name) return n;
    FAIL("no node " << name);
    return nodes[0];
  }

  // The DaemonSet controller's part: every reachable node runs what the partition wants.
  void apply() {
    Partition p = partition(spec, status, target, nodes, seed);
    if (p.hold) return;
    for (auto& n : nodes) {
      if (!n.reachable) continue;
      const std::string& want = p.desired(n.name);
      if (n.revision == want) continue;
      n.revision = want;
      n.pod_created_ms = now;
      n.failure.clear();
      n.ready = true;
      if (bad.count(want)) {
        n.ready = false;
        n.failure = "CrashLoopBackOff";
      } else if (want != status.stable_revision && pull_fails.count(n.name)) {
        n.ready = false;
        n.failure = "ErrImagePull";
      } else if (never_ready.count(want)) {
        n.ready = false;
      }
    }
  }

  // One controller pass: decide, write back the spec changes, let the DaemonSet act.
  void pass() {
    last = plan(spec, status, target, nodes, now, seed, pulls);
    status = last.status;
    if (last.reset_controls) {
      spec.approved_step = 0;
      spec.abort = false;
    }
    if (last.set_paused) spec.paused = true;
    apply();
  }
  // Passes until nothing changes any more.
  void settle() {
    for (int i = 0; i < 20; ++i) {
      auto before = nodes_state();
      Status s = status;
      pass();
      if (s == status && before == nodes_state()) return;
    }
  }
  std::vector<std::string> nodes_state() const {
    std::vector<std::string> out;
    for (const auto& n : nodes) out.push_back(n.name + n.revision + (n.ready ? "r" : ""));
    return out;
  }
  int64_t running(const std::string& rev) const {
    int64_t c = 0;
    for (const auto& n : nodes) c += n.revision == rev;
    return c;
  }
  void approve() { spec.approved_step = status.current_step; }
  void set_image(const std::string& rev) { target = rev; }
};

TEST_CASE("rollout: 10 % -> 30 % -> 100 % with an approval at each step") {
  Sim sim(20);
  sim.spec.steps = {pct(10), pct(30), pct(100, false)};
  sim.settle();
  CHECK(sim.status.phase == Phase::kCompleted);
  CHECK(sim.status.stable_revision == "v1");
  CHECK(sim.status.current_step == 0);

  sim.set_image("v2");
  sim.settle();
  CHECK(sim.status.phase == Phase::kWaitingApproval);
  CHECK(sim.status.current_step == 1);
  CHECK(sim.status.update_revision == "v2");
  CHECK(sim.running("v2") == 2);  // 10 % of 20
  CHECK(sim.status.counts.updated == 2);
  CHECK(sim.status.counts.ready == 2);
  CHECK(sim.status.counts.step_nodes == 2);
  CHECK_THAT(sim.status.message, Catch::Contains("approve"));

  // Nothing moves without an approval, however often the controller looks.
  sim.now += 60 * kMinute;
  sim.settle();
  CHECK(sim.running("v2") == 2);

  sim.approve();
  sim.settle();
  CHECK(sim.status.phase == Phase::kWaitingApproval);
  CHECK(sim.status.current_step == 2);
  CHECK(sim.running("v2") == 6);

  sim.approve();
  sim.settle();
  CHECK(sim.status.phase == Phase::kCompleted);
  CHECK(sim.running("v2") == 20);
  CHECK(sim.status.stable_revision == "v2");
  CHECK(sim.status.counts.updated == 20);
  CHECK(sim.status.counts.waiting_offline == 0);
}

TEST_CASE("rollout: the step sets are cumulative, rounded up, and the same on every pass") {
  struct Row {
    int nodes;
    std::vector<int> percents;
    std::vector<size_t> sizes;
  };
  auto row = GENERATE(Row{20, {10, 30, 100}, {2, 6, 20}}, Row{300, {10, 30, 100}, {30, 90, 300}},
                      Row{7, {10, 50, 100}, {1, 4, 7}}, Row{1, {1, 100}, {1, 1}},
                      Row{0, {50, 100}, {0, 0}});
  Sim sim(row.nodes);
  for (int p : row.percents) sim.spec.steps.push_back(pct(p));
  std::set<std::string> prev;
  for (size_t k = 1; k <= row.percents.size(); ++k) {
    auto set = step_nodes(sim.spec, static_cast<int>(k), sim.nodes, sim.seed);
    CHECK(set.size() == row.sizes[k - 1]);
    CHECK(std::includes(set.begin(), set.end(), prev.begin(), prev.end()));
    CHECK(set == step_nodes(sim.spec, static_cast<int>(k), sim.nodes, sim.seed));
    prev = set;
  }
}

TEST_CASE("rollout: one province first, then the rest") {
  Sim sim(10, {"zhejiang", "jiangsu", "anhui", "fujian", "jiangxi"});
  sim.spec.steps = {province("zhejiang"), pct(100, false)};
  sim.settle();
  sim.set_image("v2");
  sim.settle();
  REQUIRE(sim.status.phase == Phase::kWaitingApproval);
  for (const auto& n : sim.nodes)
    CHECK((n.revision == "v2") == (n.labels.at("gantry.io/province") == "zhejiang"));
  sim.approve();
  sim.settle();
  CHECK(sim.status.phase == Phase::kCompleted);
  CHECK(sim.running("v2") == 10);
}

TEST_CASE("rollout: a timed pause waits, then goes on by itself") {
  Sim sim(10);
  Step s = pct(50);
  s.pause_ms = 10 * kMinute;
  sim.spec.steps = {s, pct(100, false)};
  sim.settle();
  sim.set_image("v2");
  sim.settle();
  CHECK(sim.status.phase == Phase::kPaused);
  CHECK(sim.status.reason == kReasonStepPause);
  REQUIRE(sim.last.wake_at_ms);
  CHECK(*sim.last.wake_at_ms == sim.now + 10 * kMinute);
  sim.now += 9 * kMinute;
  sim.settle();
  CHECK(sim.running("v2") == 5);
  sim.now += kMinute;
  sim.settle();
  CHECK(sim.status.phase == Phase::kCompleted);
  CHECK(sim.running("v2") == 10);
}

TEST_CASE("rollout: crash-looping updated pods past the threshold pause it by itself") {
  struct Row {
    Threshold threshold;
    bool pauses;
  };
  // 20 nodes, first step 30 % = 6 crash-looping pods.
  auto row = GENERATE(Row{{0, false}, true}, Row{{5, false}, true}, Row{{6, false}, false},
                      Row{{50, true}, true}, Row{{100, true}, false});
  Sim sim(20);
  sim.spec.steps = {pct(30), pct(100, false)};
  sim.spec.failure_threshold = row.threshold;
  sim.settle();
  sim.bad = {"v2"};
  sim.set_image("v2");
  sim.settle();
  if (row.pauses) {
    CHECK(sim.status.phase == Phase::kPaused);
    CHECK(sim.status.reason == kReasonFailureThreshold);
    CHECK(sim.spec.paused);  // the controller paused it
    CHECK(sim.status.counts.failed == 6);
    CHECK_THAT(sim.status.message, Catch::Contains("CrashLoopBackOff"));
    CHECK(sim.running("v2") == 6);
    // Resuming with the failures still there pauses again at once.
    sim.spec.paused = false;
    sim.settle();
    CHECK(sim.status.phase == Phase::kPaused);
    CHECK(sim.spec.paused);
    CHECK(sim.running("v2") == 6);
  } else {
    // Tolerated: the failed pods count as done, the step waits for approval.
    CHECK(sim.status.phase == Phase::kWaitingApproval);
    CHECK(sim.status.counts.failed == 6);
    CHECK_FALSE(sim.spec.paused);
  }
}

TEST_CASE("rollout: pods that never become Ready fail at the progress deadline") {
  Sim sim(10);
  sim.spec.steps = {pct(20), pct(100, false)};
  sim.spec.progress_deadline_s = 300;
  sim.settle();
  sim.never_ready = {"v2"};
  sim.set_image("v2");
  sim.settle();
  CHECK(sim.status.phase == Phase::kProgressing);
  REQUIRE(sim.last.wake_at_ms);
  CHECK(*sim.last.wake_at_ms == sim.now + 300'000);
  sim.now += 300'000;
  sim.settle();
  CHECK(sim.status.phase == Phase::kPaused);
  CHECK(sim.status.reason == kReasonFailureThreshold);
  CHECK_THAT(sim.status.message, Catch::Contains("NotReadyAfterDeadline"));
}

TEST_CASE("rollout: a node whose pull fails counts as failed while it is reachable") {
  Sim sim(10);
  sim.spec.steps = {pct(100, false)};
  sim.spec.failure_threshold = {1, false};
  sim.settle();
  sim.pull_fails = {"n003"};
  sim.set_image("v2");
  sim.settle();
  // One failure is tolerated: the rollout completes, the failure is reported.
  CHECK(sim.status.phase == Phase::kCompleted);
  CHECK(sim.status.counts.failed == 1);
  REQUIRE(sim.status.failures.size() == 1);
  CHECK(sim.status.failures[0] == Failure{"n003", "ErrImagePull"});

  // A second one (a third image) pauses; a failing node that goes offline stops counting.
  sim.pull_fails = {"n003", "n004"};
  sim.set_image("v3");
  sim.settle();
  CHECK(sim.status.phase == Phase::kPaused);
  CHECK(sim.status.counts.failed == 2);
  sim.node("n004").reachable = false;
  sim.spec.paused = false;
  sim.settle();
  CHECK(sim.status.counts.failed == 1);
  CHECK(sim.status.phase == Phase::kCompleted);
}

TEST_CASE("rollout: abort sends every updated node back to stable") {
  Sim sim(20);
  sim.spec.steps = {pct(30), pct(100, false)};
  sim.settle();
  sim.set_image("v2");
  sim.settle();
  REQUIRE(sim.running("v2") == 6);
  sim.spec.abort = true;
  sim.settle();
  CHECK(sim.status.phase == Phase::kAborted);
  CHECK(sim.running("v2") == 0);
  CHECK(sim.status.stable_revision == "v1");
  CHECK(sim.status.update_revision == "v2");
  // Aborted is final for this revision: approvals change nothing.
  sim.spec.approved_step = 5;
  sim.settle();
  CHECK(sim.status.phase == Phase::kAborted);
  CHECK(sim.running("v2") == 0);
  // A fixed image starts a new run from step 1, abort cleared.
  sim.set_image("v3");
  sim.settle();
  CHECK(sim.status.phase == Phase::kWaitingApproval);
  CHECK(sim.status.current_step == 1);
  CHECK_FALSE(sim.spec.abort);
  CHECK(sim.running("v3") == 6);
}

TEST_CASE("rollout: undo during a step rolls every node back at once") {
  Sim sim(20);
  sim.spec.steps = {pct(10), pct(50), pct(100, false)};
  sim.settle();
  sim.set_image("v2");
  sim.settle();
  sim.approve();
  sim.settle();
  REQUIRE(sim.status.current_step == 2);
  REQUIRE(sim.running("v2") == 10);
  sim.set_image("v1");  // kubectl rollout undo
  sim.settle();
  CHECK(sim.status.phase == Phase::kRolledBack);
  CHECK(sim.running("v1") == 20);
  CHECK(sim.status.counts.updated == 20);  // "updated" to the target, which is v1 again
  CHECK(finished(sim.status.phase));
}

TEST_CASE("rollout: offline nodes neither stall it nor are forgotten") {
  Sim sim(20);
  sim.spec.steps = {pct(30), pct(100, false)};
  sim.settle();
  auto first = step_nodes(sim.spec, 1, sim.nodes, sim.seed);
  std::string away = *first.begin();  // in step 1, offline during it
  std::string later;                  // not in step 1, offline until the end
  for (const auto& n : sim.nodes)
    if (!first.count(n.name)) later = n.name;
  sim.node(away).reachable = false;
  sim.node(later).reachable = false;
  sim.set_image("v2");
  sim.settle();
  CHECK(sim.status.phase == Phase::kWaitingApproval);  // step 1 done without `away`
  CHECK(sim.running("v2") == 5);
  CHECK(sim.status.counts.waiting_offline == 1);  // `later` should run v1: it does
  CHECK(sim.node(away).revision == "v1");

  // `away` returns during step 1: it gets the current step's revision.
  sim.node(away).reachable = true;
  sim.settle();
  CHECK(sim.node(away).revision == "v2");
  CHECK(sim.status.counts.waiting_offline == 0);

  sim.approve();
  sim.settle();
  CHECK(sim.status.phase == Phase::kCompleted);
  CHECK(sim.running("v2") == 19);
  CHECK(sim.status.counts.waiting_offline == 1);
  CHECK_THAT(sim.status.message, Catch::Contains("1 unreachable"));
  sim.node(later).reachable = true;
  sim.settle();
  CHECK(sim.running("v2") == 20);
  CHECK(sim.status.counts.waiting_offline == 0);
}

TEST_CASE("rollout: a node offline at 10 % that returns after a rollback gets the old revision") {
  Sim sim(20);
  sim.spec.steps = {pct(10), pct(100, false)};
  sim.settle();
  sim.set_image("v2");
  sim.settle();
  auto first = step_nodes(sim.spec, 1, sim.nodes, sim.seed);
  REQUIRE(first.size() == 2);
  std::string n = *first.begin();
  REQUIRE(sim.node(n).revision == "v2");
  sim.node(n).reachable = false;  // goes offline running v2
  sim.set_image("v1");            // undo
  sim.settle();
  CHECK(sim.status.phase == Phase::kRolledBack);
  CHECK(sim.running("v2") == 1);
  CHECK(sim.status.counts.waiting_offline == 1);
  sim.node(n).reachable = true;
  sim.settle();
  CHECK(sim.node(n).revision == "v1");
  CHECK(sim.status.counts.waiting_offline == 0);
}

TEST_CASE("rollout: pause freezes it, a node returning while paused keeps its revision") {
  Sim sim(20);
  sim.spec.steps = {pct(50, false), pct(100, false)};
  sim.settle();
  auto first = step_nodes(sim.spec, 1, sim.nodes, sim.seed);
  std::string away = *first.begin();
  sim.node(away).reachable = false;
  sim.spec.paused = true;
  sim.set_image("v2");
  sim.settle();
  CHECK(sim.status.phase == Phase::kPaused);
  CHECK(sim.status.reason == kReasonPausedByUser);
  CHECK(sim.running("v2") == 0);
  sim.node(away).reachable = true;
  sim.settle();
  CHECK(sim.node(away).revision == "v1");
  sim.spec.paused = false;
  sim.settle();
  CHECK(sim.status.phase == Phase::kCompleted);
  CHECK(sim.running("v2") == 20);
}

TEST_CASE("rollout: a third template mid-run starts again at step 1 from the same stable") {
  Sim sim(20);
  sim.spec.steps = {pct(10), pct(50), pct(100, false)};
  sim.settle();
  sim.set_image("v2");
  sim.settle();
  sim.approve();
  sim.settle();
  REQUIRE(sim.status.current_step == 2);
  sim.set_image("v3");
  sim.settle();
  CHECK(sim.status.current_step == 1);
  CHECK(sim.status.phase == Phase::kWaitingApproval);
  CHECK(sim.status.stable_revision == "v1");
  CHECK(sim.running("v3") == 2);
  CHECK(sim.running("v2") == 0);       // step 2's other nodes went back to stable
  CHECK(sim.spec.approved_step == 0);  // the old run's approvals do not carry over
}

TEST_CASE("rollout: a new run clears a failure pause") {
  Sim sim(10);
  sim.spec.steps = {pct(100, false)};
  sim.settle();
  sim.bad = {"v2"};
  sim.set_image("v2");
  sim.settle();
  REQUIRE(sim.status.reason == kReasonFailureThreshold);
  Decision d = plan(sim.spec, sim.status, "v3", sim.nodes, sim.now, sim.seed);
  CHECK(d.reset_controls);
  CHECK(d.status.phase == Phase::kProgressing);
  sim.set_image("v3");
  sim.spec.paused = false;  // what reset_controls writes after a failure pause
  sim.settle();
  CHECK(sim.status.phase == Phase::kCompleted);
  CHECK(sim.running("v3") == 10);
}

TEST_CASE("rollout: created after the template changed, the old revision is stable") {
  Sim sim(10);
  sim.spec.steps = {pct(10), pct(100, false)};
  sim.target = "v2";  // set image ran before the Rollout existed; pods still run v1
  Partition early = partition(sim.spec, sim.status, "v2", sim.nodes, sim.seed);
  CHECK(early.hold);
  CHECK(early.stable == "v1");
  sim.settle();
  CHECK(sim.status.stable_revision == "v1");
  CHECK(sim.status.phase == Phase::kWaitingApproval);
  CHECK(sim.running("v2") == 1);
}

TEST_CASE("rollout: a template change the controller has not seen yet holds the fleet") {
  Sim sim(10);
  sim.spec.steps = {pct(100, false)};
  sim.settle();
  Partition p = partition(sim.spec, sim.status, "v2", sim.nodes, sim.seed);
  CHECK(p.hold);
  // ... while an undo the controller has not seen yet already means stable everywhere.
  sim.set_image("v2");
  sim.spec.steps = {pct(10), pct(100, false)};
  sim.settle();
  Partition back = partition(sim.spec, sim.status, "v1", sim.nodes, sim.seed);
  CHECK_FALSE(back.hold);
  CHECK(back.allowed.empty());
  CHECK(back.stable == "v1");
}

PrePullView pulled(int64_t desired, int64_t succeeded, int64_t pending, int64_t offline = 0,
                   int64_t failed = 0) {
  PrePullView v;
  v.observed = true;
  v.desired = desired;
  v.succeeded = succeeded;
  v.pending = pending;
  v.waiting_offline = offline;
  v.failed = failed;
  v.finished = pending == 0 && offline == 0;
  return v;
}

TEST_CASE("rollout: a step with prePull replaces nothing until its new nodes have the images") {
  Sim sim(20);
  Step first = pct(10);
  first.pre_pull = true;
  Step last = pct(100, false);
  last.pre_pull = true;
  sim.spec.steps = {first, last};
  sim.settle();
  sim.set_image("v2");
  sim.settle();
  CHECK(sim.status.phase == Phase::kProgressing);
  CHECK(sim.status.reason == kReasonPrePulling);
  CHECK(sim.running("v2") == 0);
  REQUIRE(sim.last.pre_pull);
  CHECK(sim.last.pre_pull->step == 1);
  CHECK(sim.last.pre_pull->nodes.size() == 2);  // 10 % of 20, the step's nodes
  auto step1 = step_nodes(sim.spec, 1, sim.nodes, sim.seed);
  for (const auto& n : sim.last.pre_pull->nodes) CHECK(step1.count(n));
  CHECK(sim.last.pre_pull->deadline_ms == sim.status.step_started_ms + 600'000);
  CHECK(sim.last.wake_at_ms == sim.last.pre_pull->deadline_ms);

  // Half pulled: still waiting, the count shows it.
  sim.pulls[1] = pulled(2, 1, 1);
  sim.settle();
  CHECK(sim.status.reason == kReasonPrePulling);
  CHECK(sim.status.counts.pre_pulled == 1);
  CHECK(sim.running("v2") == 0);

  // Both have the images: the step replaces its pods, then waits for approval.
  sim.pulls[1] = pulled(2, 2, 0);
  sim.settle();
  CHECK(sim.status.phase == Phase::kWaitingApproval);
  CHECK(sim.status.pre_pull_step == 1);
  CHECK(sim.status.pre_pull_result == "step 1: 2 of 2 node(s) pre-pulled");
  CHECK(sim.status.counts.pre_pulled == 2);
  CHECK(sim.running("v2") == 2);
  REQUIRE(sim.last.pre_pull);  // step 2's pre-pull starts during the wait
  CHECK(sim.last.pre_pull->step == 2);
  CHECK(sim.last.pre_pull->nodes.size() == 18);

  // Step 2 pre-pulls the other 18 before replacing them; the first two keep v2.
  sim.approve();
  sim.settle();
  CHECK(sim.status.current_step == 2);
  CHECK(sim.status.reason == kReasonPrePulling);
  REQUIRE(sim.last.pre_pull);
  CHECK(sim.last.pre_pull->step == 2);
  CHECK(sim.last.pre_pull->nodes.size() == 18);
  CHECK(sim.running("v2") == 2);
  CHECK(sim.status.counts.pre_pulled == 0);  // step 2's job has not reported yet
  sim.pulls[2] = pulled(18, 17, 0, 0, 1);    // one node's pull failed
  sim.settle();
  CHECK(sim.status.phase == Phase::kCompleted);
  CHECK(sim.running("v2") == 20);
  CHECK(sim.status.pre_pull_result == "step 2: 17 of 18 node(s) pre-pulled, 1 failed");

  // A new run starts its pre-pulls over (its jobs are new ones).
  sim.pulls.clear();
  sim.set_image("v3");
  sim.settle();
  CHECK(sim.status.pre_pull_step == 0);
  CHECK(sim.status.reason == kReasonPrePulling);
  CHECK(sim.running("v3") == 0);
}

TEST_CASE("rollout: the next step's pre-pull runs while a step waits for its approval") {
  Sim sim(20);
  Step first = pct(10);
  Step second = pct(100, false);
  second.pre_pull = true;
  sim.spec.steps = {first, second};
  sim.settle();
  sim.set_image("v2");
  sim.settle();
  CHECK(sim.status.phase == Phase::kWaitingApproval);  // step 1 has no pre-pull of its own
  CHECK(sim.running("v2") == 2);
  REQUIRE(sim.last.pre_pull);
  CHECK(sim.last.pre_pull->step == 2);
  CHECK(sim.last.pre_pull->nodes.size() == 18);
  CHECK_THAT(sim.status.message, Catch::Contains("step 2's images are pre-pulled meanwhile"));
  CHECK(sim.running("v2") == 2);  // nothing of step 2 moves before the approval
  sim.pulls[2] = pulled(18, 18, 0);
  sim.settle();
  CHECK(sim.status.phase == Phase::kWaitingApproval);
  CHECK_THAT(sim.status.message, Catch::Contains("pre-pulled meanwhile (18 of 18 done)"));
  // Approved after the pulls: step 2 goes on at once.
  sim.approve();
  sim.settle();
  CHECK(sim.status.phase == Phase::kCompleted);
  CHECK(sim.running("v2") == 20);
  CHECK(sim.status.pre_pull_result == "step 2: 18 of 18 node(s) pre-pulled");
}

TEST_CASE("rollout: prePull skips offline nodes and gives up at the progress deadline") {
  Sim sim(10);
  Step only = pct(100, false);
  only.pre_pull = true;
  sim.spec.steps = {only};
  sim.settle();
  sim.node("n003").reachable = false;
  sim.set_image("v2");
  sim.settle();
  REQUIRE(sim.last.pre_pull);
  CHECK(sim.last.pre_pull->nodes.size() == 9);  // not the offline one
  CHECK(std::find(sim.last.pre_pull->nodes.begin(), sim.last.pre_pull->nodes.end(), "n003") ==
        sim.last.pre_pull->nodes.end());
  // The job's node that went offline meanwhile does not hold it: the rest have pulled.
  sim.node("n005").reachable = false;
  sim.pulls[1] = pulled(9, 8, 0, 1);
  sim.settle();
  CHECK(sim.status.pre_pull_step == 1);
  CHECK(sim.status.pre_pull_result ==
        "step 1: 8 of 9 node(s) pre-pulled, 1 offline (pull when they return)");
  CHECK(sim.running("v2") == 8);
  // They catch up when they return, as any offline node of a rollout does.
  sim.node("n003").reachable = true;
  sim.node("n005").reachable = true;
  sim.settle();
  CHECK(sim.running("v2") == 10);
  CHECK(sim.status.phase == Phase::kCompleted);

  // A pre-pull that never reports (no job controller) holds the step until the deadline only.
  sim.set_image("v3");
  sim.pulls.clear();
  sim.settle();
  CHECK(sim.status.reason == kReasonPrePulling);
  sim.now += 599'000;
  sim.settle();
  CHECK(sim.running("v3") == 0);
  sim.now += 1'000;
  sim.settle();
  CHECK(sim.running("v3") == 10);
  CHECK(sim.status.phase == Phase::kCompleted);
  CHECK_THAT(sim.status.pre_pull_result, Catch::Contains("did not report within"));

  // One still pulling at the deadline: the step goes on and says so.
  sim.set_image("v4");
  sim.settle();
  sim.pulls[1] = pulled(10, 9, 1);
  sim.settle();
  CHECK(sim.running("v4") == 0);
  sim.now += 600'000;
  sim.settle();
  CHECK(sim.running("v4") == 10);
  CHECK(sim.status.pre_pull_result ==
        "step 1: 9 of 10 node(s) pre-pulled, 1 not done after progressDeadlineSeconds (600 s)");
}

TEST_CASE("rollout: phases have their Kubernetes-style names") {
  for (Phase p : {Phase::kProgressing, Phase::kPaused, Phase::kWaitingApproval, Phase::kCompleted,
                  Phase::kAborted, Phase::kRolledBack})
    CHECK(parse_phase(phase_name(p)) == p);
  CHECK_FALSE(parse_phase("Healthy"));
}

}  // namespace
}  // namespace gantry::cloud::controllers::rollout
