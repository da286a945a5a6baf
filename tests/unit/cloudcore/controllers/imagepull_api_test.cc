// gantry.io/v1 ImagePullJob through the API with its controller on the same store (a fake tunnel
// that answers every request at once): defaults, 422s, the status and `kubectl get` columns.
#include <catch2/catch.hpp>
#include <mutex>

#include "cloudcore/controllers/imagepull.h"
#include "tests/unit/cloudcore/api/api_fixture.h"
#include "tests/unit/cloudcore/controllers/pull_reports.h"

namespace gantry::cloud::controllers {
namespace {

using json = nlohmann::json;
using test::ApiFixture;
using test::eventually;
using test::kAdminToken;

const char* kJobs = "/apis/gantry.io/v1/namespaces/default/imagepulljobs";

// Every node is connected and has every image as soon as it is asked.
class InstantNodes : public PullTransport {
 public:
  bool connected(const std::string&) const override { return true; }
  bool send(const std::string& node, const v1::ImagePullRequest& request) override {
    std::lock_guard lock(mu_);
    pending_.emplace_back(node, request);
    return true;
  }
  void answer(ImagePullController& c) {
    std::vector<std::pair<std::string, v1::ImagePullRequest>> todo;
    {
      std::lock_guard lock(mu_);
      todo.swap(pending_);
    }
    for (const auto& [node, req] : todo) c.on_report(node, gantry::test::pulled_report(req));
  }

 private:
  std::mutex mu_;
  std::vector<std::pair<std::string, v1::ImagePullRequest>> pending_;
};

class PullApi : public ApiFixture {
 public:
  PullApi() {
    ImagePullOptions o;
    o.tick = std::chrono::milliseconds(5);
    o.status_interval = std::chrono::milliseconds(0);
    auto c = ImagePullController::start(store(), nodes_, o);
    REQUIRE(c.ok());
    controller_ = std::move(c).value();
  }
  ~PullApi() { controller_->stop(); }

  InstantNodes nodes_;
  std::unique_ptr<ImagePullController> controller_;
};

TEST_CASE_METHOD(PullApi, "an ImagePullJob created through the API is defaulted, run and listed",
                 "[controllers][imagepull][api]") {
  put_node("n1", "zhejiang");
  put_node("n2", "anhui");
  json job = {{"apiVersion", "gantry.io/v1"},
              {"kind", "ImagePullJob"},
              {"metadata", {{"name", "warm"}}},
              {"spec", {{"images", {"registry.local/gateway:2"}}}}};
  auto created = call("POST", kJobs, kAdminToken, job.dump());
  REQUIRE(created.code == 201);
  json spec = created.json()["spec"];
  CHECK(spec["parallelism"]["perProvince"] == 2);
  CHECK(spec["parallelism"]["perNode"] == 1);
  CHECK(spec["retries"] == 2);
  CHECK(spec["pullPolicy"] == "IfNotPresent");

  REQUIRE(eventually([&] {
    nodes_.answer(*controller_);
    json st = call("GET", std::string(kJobs) + "/warm", kAdminToken).json()["status"];
    return st.value("phase", "") == "Succeeded" && st.value("succeeded", 0) == 2;
  }));

  auto table = call("GET", kJobs, kAdminToken, "", "application/json",
                    {"Accept: application/json;as=Table;v=v1;g=meta.k8s.io"});
  json t = table.json();
  std::vector<std::string> names;
  for (const auto& c : t["columnDefinitions"])
    if (c["priority"] == 0) names.push_back(c["name"]);
  CHECK(names == std::vector<std::string>{"Name", "Phase", "Desired", "Succeeded", "Failed",
                                          "Pulling", "Pending", "Waiting-Offline", "Age"});
  REQUIRE(t["rows"].size() == 1);
  CHECK(t["rows"][0]["cells"][1] == "Succeeded");
  CHECK(t["rows"][0]["cells"][2] == 2);
}

TEST_CASE_METHOD(PullApi, "bad ImagePullJobs are 422 and store nothing",
                 "[controllers][imagepull][api]") {
  auto post = [&](json spec) {
    json job = {{"apiVersion", "gantry.io/v1"},
                {"kind", "ImagePullJob"},
                {"metadata", {{"name", "bad"}}},
                {"spec", std::move(spec)}};
    return call("POST", kJobs, kAdminToken, job.dump());
  };
  CHECK(post(json::object()).code == 422);
  CHECK(post({{"images", json::array()}}).code == 422);
  CHECK(post({{"images", {""}}}).code == 422);
  CHECK(post({{"images", {"a:1"}}, {"parallelism", {{"perProvince", 0}}}}).code == 422);
  CHECK(post({{"images", {"a:1"}}, {"retries", -1}}).code == 422);
  CHECK(post({{"images", {"a:1"}}, {"pullPolicy", "Never"}}).code == 422);
  CHECK(call("GET", std::string(kJobs) + "/bad", kAdminToken).code == 404);
}

}  // namespace
}  // namespace gantry::cloud::controllers
