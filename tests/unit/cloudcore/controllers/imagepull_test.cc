// The ImagePullJob controller against a real RocksStore and a fake tunnel: which nodes are asked
// when (parallelism per province), what offline nodes do, what the status says.
#include "cloudcore/controllers/imagepull.h"

#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"

namespace gantry::cloud::controllers {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;
using test::eventually;

class FakeTransport : public PullTransport {
 public:
  bool connected(const std::string& node) const override {
    std::lock_guard lock(mu_);
    return online_.count(node) > 0;
  }
  bool send(const std::string& node, const v1::ImagePullRequest& request) override {
    std::lock_guard lock(mu_);
    if (!online_.count(node)) return false;
    sent_.emplace_back(node, request);
    return true;
  }
  void set_online(const std::string& node, bool online) {
    std::lock_guard lock(mu_);
    if (online)
      online_.insert(node);
    else
      online_.erase(node);
  }
  std::vector<std::pair<std::string, v1::ImagePullRequest>> sent() const {
    std::lock_guard lock(mu_);
    return sent_;
  }
  size_t sent_to(const std::string& node) const {
    size_t n = 0;
    for (const auto& [to, r] : sent())
      if (to == node) ++n;
    return n;
  }
  std::set<std::string> nodes_asked() const {
    std::set<std::string> out;
    for (const auto& [to, r] : sent()) out.insert(to);
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::set<std::string> online_;
  std::vector<std::pair<std::string, v1::ImagePullRequest>> sent_;
};

class PullFixture {
 public:
  PullFixture() {
    RocksStoreOptions options;
    options.path = (dir_ / "store").string();
    store_ = open_rocks_store(options).value();
  }
  ~PullFixture() {
    if (controller_) controller_->stop();
  }
  void start(const std::string& refuse_message = "") {
    ImagePullOptions o;
    o.refuse_message = refuse_message;
    o.clock = &clock_;
    o.tick = 5ms;
    o.status_interval = 0ms;
    auto c = ImagePullController::start(*store_, transport_, o);
    REQUIRE(c.ok());
    controller_ = std::move(c).value();
  }
  void put_node(const std::string& name, const std::string& province, bool online = true) {
    json node = {{"kind", "Node"},
                 {"apiVersion", "v1"},
                 {"metadata",
                  {{"name", name},
                   {"uid", "uid-" + name},
                   {"labels", {{"topology.gantry.io/province", province}, {"role", "gw"}}}}}};
    auto stored = decode_object(v1::OBJECT_KIND_NODE, node.dump());
    REQUIRE(stored.ok());
    REQUIRE(
        store_->put(keys::object_key(v1::OBJECT_KIND_NODE, "", name), stored->SerializeAsString())
            .ok());
    transport_.set_online(name, online);
  }
  json job(const std::string& name, std::vector<std::string> images, int per_province = 2) {
    return {{"apiVersion", "gantry.io/v1"},
            {"kind", "ImagePullJob"},
            {"metadata",
             {{"name", name},
              {"namespace", "default"},
              {"uid", "uid-" + name},
              {"creationTimestamp", rfc3339(clock_.unix_ms())}}},
            {"spec",
             {{"images", images},
              {"selector", {{"matchLabels", {{"role", "gw"}}}}},
              {"parallelism", {{"perProvince", per_province}, {"perNode", 1}}},
              {"retries", 2}}}};
  }
  static std::string rfc3339(int64_t ms) {
    std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
  }
  std::string key(const std::string& name) {
    return std::string(kImagePullJobsPrefix) + "default/" + name;
  }
  void put_job(const json& obj) {
    v1::StoredObject so;
    so.set_json(obj.dump());
    REQUIRE(store_->put(key(obj["metadata"]["name"]), so.SerializeAsString()).ok());
  }
  json status(const std::string& name) {
    auto kv = store_->get(key(name));
    if (!kv.ok() || !*kv) return json::object();
    v1::StoredObject so;
    REQUIRE(so.ParseFromString((*kv)->value));
    json obj = json::parse(so.json());
    return obj.value("status", json::object());
  }
  // The node reports every image of `name` in `phase`.
  void report(const std::string& node, const std::string& name,
              const std::vector<std::string>& images, v1::ImagePullPhase phase,
              const std::string& message = "") {
    v1::ImagePullReport r;
    r.set_job("default/" + name);
    r.set_job_uid("uid-" + name);
    for (const auto& i : images) {
      auto* x = r.add_images();
      x->set_image(i);
      x->set_phase(phase);
      x->set_attempts(1);
      if (phase == v1::IMAGE_PULL_PHASE_SUCCEEDED) x->set_image_id("sha256:" + i);
      x->set_message(message);
    }
    controller_->on_report(node, r);
  }
  int64_t count(const std::string& name, const char* field) {
    return status(name).value(field, int64_t{-1});
  }

  test::TempDir dir_;
  ManualClock clock_;
  std::unique_ptr<Store> store_;
  FakeTransport transport_;
  std::unique_ptr<ImagePullController> controller_;
};

TEST_CASE_METHOD(PullFixture,
                 "At most perProvince nodes of a province pull at once, the next starts when one "
                 "finishes",
                 "[controllers][imagepull]") {
  for (int i = 0; i < 5; ++i) put_node("a" + std::to_string(i), "anhui");
  for (int i = 0; i < 2; ++i) put_node("b" + std::to_string(i), "beijing");
  start();
  std::vector<std::string> images = {"registry.local/gw:2", "registry.local/side:2"};
  put_job(job("warm", images, 2));
  REQUIRE(eventually([&] { return count("warm", "pulling") == 4; }));
  auto asked = transport_.nodes_asked();
  CHECK(asked.size() == 4);
  CHECK(asked.count("b0") == 1);
  CHECK(asked.count("b1") == 1);
  CHECK(count("warm", "desired") == 7);
  CHECK(count("warm", "pending") == 3);
  auto sent = transport_.sent();
  REQUIRE(sent.size() == 4);
  const auto& req = sent[0].second;
  CHECK(req.job() == "default/warm");
  CHECK(req.images_size() == 2);
  CHECK(req.parallelism() == 1);
  CHECK(req.retries() == 2);

  // One anhui node is done: exactly one more anhui node starts.
  std::string done;
  for (const auto& n : asked)
    if (n[0] == 'a') done = n;
  report(done, "warm", images, v1::IMAGE_PULL_PHASE_SUCCEEDED);
  REQUIRE(eventually([&] { return transport_.nodes_asked().size() == 5; }));
  REQUIRE(eventually([&] { return count("warm", "succeeded") == 1; }));
  CHECK(count("warm", "pulling") == 4);
  CHECK(status("warm")["phase"] == "Running");

  // Everyone finishes (the rest as they are asked).
  REQUIRE(eventually([&] {
    for (const auto& n : transport_.nodes_asked())
      report(n, "warm", images, v1::IMAGE_PULL_PHASE_SUCCEEDED);
    return status("warm").value("phase", "") == "Succeeded";
  }));
  json st = status("warm");
  CHECK(st["succeeded"] == 7);
  CHECK(st["failed"] == 0);
  CHECK(st.contains("completionTime"));
  REQUIRE(st["nodes"].size() == 7);
  CHECK(st["nodes"][0]["images"][0]["phase"] == "Succeeded");
  CHECK(st["nodes"][0]["images"][0]["imageID"] == "sha256:registry.local/gw:2");
  CHECK(transport_.sent().size() == 7);  // one request per node
}

TEST_CASE_METHOD(PullFixture,
                 "An offline node waits, pulls when it returns, and one that drops out while "
                 "pulling is asked again",
                 "[controllers][imagepull]") {
  put_node("n1", "zhejiang");
  put_node("n2", "zhejiang", false);
  start();
  std::vector<std::string> images = {"gw:2"};
  put_job(job("warm", images, 5));
  REQUIRE(eventually([&] { return count("warm", "pulling") == 1; }));
  CHECK(count("warm", "waitingOffline") == 1);
  CHECK(transport_.sent_to("n2") == 0);
  report("n1", "warm", images, v1::IMAGE_PULL_PHASE_SUCCEEDED);
  REQUIRE(eventually([&] { return count("warm", "succeeded") == 1; }));
  CHECK(status("warm")["phase"] == "Running");  // n2 is not forgotten

  transport_.set_online("n2", true);
  controller_->wake();
  REQUIRE(eventually([&] { return transport_.sent_to("n2") == 1; }));
  report("n2", "warm", images, v1::IMAGE_PULL_PHASE_PULLING);
  REQUIRE(eventually([&] { return count("warm", "pulling") == 1; }));
  // It drops out mid-pull: back to waiting; asked again when it returns.
  transport_.set_online("n2", false);
  REQUIRE(eventually(
      [&] { return count("warm", "waitingOffline") == 1 && count("warm", "pulling") == 0; }));
  transport_.set_online("n2", true);
  REQUIRE(eventually([&] { return transport_.sent_to("n2") == 2; }));
  report("n2", "warm", images, v1::IMAGE_PULL_PHASE_SUCCEEDED);
  REQUIRE(eventually([&] { return status("warm").value("phase", "") == "Succeeded"; }));
  CHECK(count("warm", "succeeded") == 2);
}

TEST_CASE_METHOD(PullFixture,
                 "A node whose pull failed after its retries fails the job, the deadline fails "
                 "the nodes not done",
                 "[controllers][imagepull]") {
  put_node("n1", "zhejiang");
  put_node("n2", "zhejiang");
  put_node("n3", "zhejiang", false);
  start();
  std::vector<std::string> images = {"gw:404"};
  json j = job("warm", images, 5);
  j["spec"]["activeDeadlineSeconds"] = 600;
  put_job(j);
  REQUIRE(eventually([&] { return count("warm", "pulling") == 2; }));
  report("n1", "warm", images, v1::IMAGE_PULL_PHASE_FAILED, "gw:404: not found");
  report("n2", "warm", images, v1::IMAGE_PULL_PHASE_SUCCEEDED);
  REQUIRE(eventually([&] { return count("warm", "failed") == 1; }));
  CHECK(status("warm")["phase"] == "Running");  // n3 is still to come
  json st = status("warm");
  bool found = false;
  for (const auto& n : st["nodes"])
    if (n["name"] == "n1") {
      found = true;
      CHECK(n["phase"] == "Failed");
      CHECK(n["images"][0]["message"] == "gw:404: not found");
    }
  CHECK(found);

  clock_.advance(601s);
  controller_->wake();
  REQUIRE(eventually([&] { return status("warm").value("phase", "") == "Failed"; }));
  st = status("warm");
  CHECK(st["failed"] == 2);
  CHECK(st["succeeded"] == 1);
  CHECK(st["waitingOffline"] == 0);
  for (const auto& n : st["nodes"])
    if (n["name"] == "n3") CHECK(n.value("message", "").rfind("DeadlineExceeded", 0) == 0);
  // Finished: a late node is not asked.
  transport_.set_online("n3", true);
  controller_->wake();
  CHECK_FALSE(eventually([&] { return transport_.sent_to("n3") > 0; }, 200ms));
}

TEST_CASE_METHOD(PullFixture,
                 "With several replicas (refuse_message) a job ends Failed at once, saying why, "
                 "one that had ended is left alone",
                 "[controllers][imagepull]") {
  put_node("a0", "anhui");
  json done = job("before", {"registry.local/gw:1"});
  done["status"] = {{"phase", "Succeeded"}, {"desired", 1}, {"succeeded", 1}};
  put_job(done);
  start("ImagePullJobs are not supported with several cloudcore replicas (ha) yet");
  put_job(job("warm", {"registry.local/gw:2"}));
  REQUIRE(eventually([&] { return status("warm").value("phase", "") == "Failed"; }));
  json st = status("warm");
  CHECK(st["desired"] == 0);
  bool found = false;
  for (const auto& c : st["conditions"])
    if (c["type"] == "Failed") {
      found = true;
      CHECK(c["status"] == "True");
      CHECK(c["reason"] == "NotSupported");
      CHECK_THAT(c["message"].get<std::string>(), Catch::Contains("several cloudcore replicas"));
    }
  CHECK(found);
  CHECK(transport_.sent().empty());
  CHECK(status("before")["phase"] == "Succeeded");
  CHECK(status("before")["succeeded"] == 1);
}

}  // namespace
}  // namespace gantry::cloud::controllers
