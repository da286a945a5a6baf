// The status writer's metrics: each batch's time from arrival to durable, and its queue.
#include <catch2/catch.hpp>
#include <future>

#include "cloudcore/hub/status_writer.h"
#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"

namespace gantry::cloud {

TEST_CASE("the status writer times each batch until durable and drains its queue gauge",
          "[hub][metrics]") {
  test::TempDir dir;
  RocksStoreOptions opts;
  opts.path = dir.str();
  auto store = std::move(open_rocks_store(opts)).value();
  auto pod = decode_object(v1::OBJECT_KIND_POD,
                           R"({"metadata": {"name": "web", "uid": "uid-web"},
          "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "i"}]}})");
  REQUIRE(pod.ok());
  REQUIRE(
      store->put(keys::object_key(v1::OBJECT_KIND_POD, "default", "web"), pod->SerializeAsString())
          .ok());
  auto registry = std::move(Registry::start(*store)).value();
  common::MetricsRegistry metrics;
  auto propagation = metrics.histogram("test_propagation_seconds", "test", {0.5, 60});
  auto queued = metrics.gauge("test_queued", "test");
  REQUIRE(propagation.ok());
  REQUIRE(queued.ok());
  common::SystemClock clock;
  StatusWriter writer(*store, *registry, clock, {},
                      StatusWriterMetrics{propagation->with(), queued->with()});

  std::vector<std::future<bool>> done;
  for (uint64_t seq = 1; seq <= 3; ++seq) {
    v1::StatusDelta batch;
    batch.set_sequence(seq);
    auto* e = batch.add_entries();
    e->set_kind(v1::OBJECT_KIND_POD);
    e->set_namespace_("default");
    e->set_name("web");
    e->set_uid("uid-web");
    e->set_full(true);
    e->mutable_pod()->set_phase(seq == 3 ? v1::POD_PHASE_RUNNING : v1::POD_PHASE_PENDING);
    auto promise = std::make_shared<std::promise<bool>>();
    done.push_back(promise->get_future());
    writer.submit("n1", batch, [promise](const UpstreamPlan& plan, const Status& error) {
      promise->set_value(plan.violation.ok() && error.ok());
    });
  }
  for (auto& d : done) CHECK(d.get());
  CHECK(propagation->with().count() == 3);
  CHECK(propagation->with().sum() > 0);
  CHECK(test::eventually([&] { return queued->with().value() == 0; }));
}

}  // namespace gantry::cloud
