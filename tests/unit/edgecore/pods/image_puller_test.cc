// The edge's background pulls (ImagePullJob) against the fake runtime: what is reported, retries,
// repeated requests, and the per-node bounds.
#include "edgecore/pods/image_puller.h"

#include <catch2/catch.hpp>
#include <mutex>

#include "tests/support/test_support.h"
#include "tests/unit/edgecore/pods/fake_runtime.h"

namespace gantry::edge {
namespace {

using namespace std::chrono_literals;
using gantry::test::eventually;

struct Reports {
  std::mutex mu;
  std::vector<v1::ImagePullResult> all;
  void add(const v1::ImagePullReport& r) {
    std::lock_guard lock(mu);
    for (const auto& i : r.images()) all.push_back(i);
  }
  // The last state reported for `image`.
  std::optional<v1::ImagePullResult> last(const std::string& image) {
    std::lock_guard lock(mu);
    for (auto it = all.rbegin(); it != all.rend(); ++it)
      if (it->image() == image) return *it;
    return std::nullopt;
  }
  bool is(const std::string& image, v1::ImagePullPhase phase) {
    auto l = last(image);
    return l && l->phase() == phase;
  }
};

v1::ImagePullRequest request(std::vector<std::string> images, uint32_t parallelism = 1,
                             uint32_t retries = 2) {
  v1::ImagePullRequest r;
  r.set_job("default/warm");
  r.set_job_uid("uid-warm");
  for (auto& i : images) r.add_images(i);
  r.set_parallelism(parallelism);
  r.set_retries(retries);
  return r;
}

ImagePullerOptions options(Reports& reports, size_t max_concurrent = 2) {
  ImagePullerOptions o;
  o.max_concurrent = max_concurrent;
  o.retry_base = 10ms;
  o.retry_cap = 40ms;
  o.report = [&reports](v1::ImagePullReport r) { reports.add(r); };
  return o;
}

TEST_CASE("Requested images are pulled in the background and reported with their image ID",
          "[pods][imagepull]") {
  test::FakeRuntime runtime;
  runtime.add_pullable("gw:2");
  runtime.add_image("side:1");  // already there: not pulled again
  Reports reports;
  ImagePuller puller(runtime, options(reports));
  puller.submit(request({"gw:2", "side:1"}));
  REQUIRE(eventually([&] {
    return reports.is("gw:2", v1::IMAGE_PULL_PHASE_SUCCEEDED) &&
           reports.is("side:1", v1::IMAGE_PULL_PHASE_SUCCEEDED);
  }));
  CHECK(reports.last("gw:2")->image_id() == "gw:2");
  CHECK(reports.last("gw:2")->attempts() == 1);
  CHECK(reports.last("side:1")->message() == "already present on the node");
  CHECK(runtime.count_calls("pull_image gw:2") == 1);
  CHECK(runtime.count_calls("pull_image side:1") == 0);
  // It was reported while pulling, before it succeeded.
  {
    std::lock_guard lock(reports.mu);
    CHECK(std::any_of(reports.all.begin(), reports.all.end(), [](const auto& r) {
      return r.image() == "gw:2" && r.phase() == v1::IMAGE_PULL_PHASE_PULLING;
    }));
  }

  // The same request again (a reconnect): answered, not pulled again.
  size_t before = reports.all.size();
  puller.submit(request({"gw:2", "side:1"}));
  REQUIRE(eventually([&] { return reports.all.size() >= before + 2; }));
  CHECK(reports.is("gw:2", v1::IMAGE_PULL_PHASE_SUCCEEDED));
  CHECK(runtime.count_calls("pull_image gw:2") == 1);
}

TEST_CASE("A failing pull is retried, then reported failed with the runtime's message",
          "[pods][imagepull]") {
  test::FakeRuntime runtime;
  Reports reports;
  ImagePuller puller(runtime, options(reports));
  puller.submit(request({"gw:404"}, 1, 2));
  REQUIRE(eventually([&] { return reports.is("gw:404", v1::IMAGE_PULL_PHASE_FAILED); }));
  auto last = *reports.last("gw:404");
  CHECK(last.attempts() == 3);
  CHECK_THAT(last.message(), Catch::Contains("not found in the registry"));
  CHECK(runtime.count_calls("pull_image gw:404") == 3);
}

TEST_CASE("A pull that fails once and then works succeeds on its retry", "[pods][imagepull]") {
  test::FakeRuntime runtime;
  Reports reports;
  ImagePullerOptions o = options(reports);
  o.retry_base = 200ms;
  ImagePuller puller(runtime, o);
  puller.submit(request({"gw:2"}, 1, 3));
  REQUIRE(eventually([&] { return runtime.count_calls("pull_image gw:2") == 1; }));
  runtime.add_pullable("gw:2");  // the registry has it now
  REQUIRE(eventually([&] { return reports.is("gw:2", v1::IMAGE_PULL_PHASE_SUCCEEDED); }));
  CHECK(reports.last("gw:2")->attempts() == 2);
}

TEST_CASE("A job's images are pulled at most perNode at a time, the node at most max_concurrent",
          "[pods][imagepull]") {
  test::FakeRuntime runtime;
  for (const char* i : {"a:1", "b:1", "c:1", "d:1"}) runtime.add_pullable(i);
  runtime.hold_pulls(true);
  Reports reports;
  ImagePuller puller(runtime, options(reports, 2));
  puller.submit(request({"a:1", "b:1", "c:1"}, 1));
  REQUIRE(eventually([&] { return runtime.pulls_in_flight() == 1; }));
  CHECK_FALSE(eventually([&] { return runtime.pulls_in_flight() > 1; }, 100ms));
  // A second job gets the node's other slot.
  v1::ImagePullRequest other = request({"d:1"}, 4);
  other.set_job("default/other");
  other.set_job_uid("uid-other");
  puller.submit(other);
  REQUIRE(eventually([&] { return runtime.pulls_in_flight() == 2; }));
  runtime.hold_pulls(false);
  REQUIRE(eventually([&] {
    return reports.is("a:1", v1::IMAGE_PULL_PHASE_SUCCEEDED) &&
           reports.is("b:1", v1::IMAGE_PULL_PHASE_SUCCEEDED) &&
           reports.is("c:1", v1::IMAGE_PULL_PHASE_SUCCEEDED) &&
           reports.is("d:1", v1::IMAGE_PULL_PHASE_SUCCEEDED);
  }));
  CHECK(runtime.max_pulls_in_flight() == 2);
}

}  // namespace
}  // namespace gantry::edge
