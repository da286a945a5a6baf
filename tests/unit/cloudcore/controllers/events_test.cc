// The event recorder against a real RocksStore and a manual clock: what `kubectl get events`
// would show after repeated, similar and too many events, and after the TTL.
#include "cloudcore/controllers/events.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "cloudcore/registry/keys.h"
#include "cloudcore/store/rocks_store.h"
#include "gantry/v1/objects.pb.h"
#include "tests/support/test_support.h"

namespace gantry::cloud::controllers {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

class RecorderFixture {
 public:
  RecorderFixture() {
    RocksStoreOptions options;
    options.path = (dir_ / "store").string();
    store_ = open_rocks_store(options).value();
  }

  EventRecorder& recorder(EventRecorderOptions options = {}) {
    recorder_ = std::make_unique<EventRecorder>(*store_, clock_, options);
    return *recorder_;
  }

  // Every stored event, as the API serves it.
  std::vector<json> events() {
    ListOptions lo;
    lo.prefix = std::string(keys::kEvents);
    auto list = store_->list(lo);
    REQUIRE(list.ok());
    std::vector<json> out;
    for (const auto& kv : list->items) {
      v1::StoredObject stored;
      REQUIRE(stored.ParseFromString(kv.value));
      out.push_back(json::parse(stored.json()));
      CHECK(kv.key == std::string(keys::kEvents) +
                          out.back()["metadata"]["namespace"].get<std::string>() + "/" +
                          out.back()["metadata"]["name"].get<std::string>());
    }
    return out;
  }

  static EventRecord backoff(const std::string& pod, std::string message = "") {
    EventRecord e;
    e.object = pod_reference("default", pod, "uid-" + pod, "main");
    e.type = KubeEventType::kWarning;
    e.reason = "BackOff";
    e.message = message.empty() ? "Back-off restarting failed container main" : message;
    e.component = "kubelet";
    e.host = "edge-1";
    return e;
  }

  gantry::test::TempDir dir_;
  std::unique_ptr<Store> store_;
  common::ManualClock clock_;
  std::unique_ptr<EventRecorder> recorder_;
};

TEST_CASE_METHOD(RecorderFixture, "A repeated event is one Event with a count and a last time",
                 "[events]") {
  auto& r = recorder();
  REQUIRE(r.record(backoff("web")));
  REQUIRE(r.flush().ok());
  auto first = events();
  REQUIRE(first.size() == 1);
  const json& ev = first[0];
  CHECK(ev["kind"] == "Event");
  CHECK(ev["apiVersion"] == "v1");
  CHECK(ev["metadata"]["namespace"] == "default");
  CHECK(ev["metadata"]["name"].get<std::string>().rfind("web.", 0) == 0);
  CHECK(ev["involvedObject"] == json{{"kind", "Pod"},
                                     {"namespace", "default"},
                                     {"name", "web"},
                                     {"uid", "uid-web"},
                                     {"apiVersion", "v1"},
                                     {"fieldPath", "spec.containers{main}"}});
  CHECK(ev["type"] == "Warning");
  CHECK(ev["reason"] == "BackOff");
  CHECK(ev["count"] == 1);
  CHECK(ev["source"] == json{{"component", "kubelet"}, {"host", "edge-1"}});
  CHECK(ev["firstTimestamp"] == "2024-01-01T00:00:00Z");

  for (int i = 0; i < 4; ++i) {
    clock_.advance(10s);
    REQUIRE(r.record(backoff("web")));
  }
  REQUIRE(r.flush().ok());
  auto after = events();
  REQUIRE(after.size() == 1);
  CHECK(after[0]["metadata"]["name"] == ev["metadata"]["name"]);
  CHECK(after[0]["count"] == 5);
  CHECK(after[0]["firstTimestamp"] == "2024-01-01T00:00:00Z");
  CHECK(after[0]["lastTimestamp"] == "2024-01-01T00:00:40Z");
  CHECK(r.stats().deduplicated == 4);

  // Another object, another reason or another message: other events.
  REQUIRE(r.record(backoff("db")));
  auto pulled = backoff("web", "Successfully pulled image \"busybox:1\"");
  pulled.type = KubeEventType::kNormal;
  pulled.reason = "Pulled";
  REQUIRE(r.record(pulled));
  REQUIRE(r.flush().ok());
  CHECK(events().size() == 3);
}

TEST_CASE_METHOD(RecorderFixture, "Counts aggregated on the edge add up, with the edge's times",
                 "[events]") {
  auto& r = recorder();
  auto e = backoff("web");
  e.count = 7;
  e.first_ms = 1704067200000 - 60'000;  // a minute before the clock
  e.last_ms = 1704067200000 - 5'000;
  REQUIRE(r.record(e));
  e.count = 3;
  e.first_ms = e.last_ms;
  e.last_ms = 1704067200000;
  REQUIRE(r.record(e));
  REQUIRE(r.flush().ok());
  auto ev = events();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["count"] == 10);
  CHECK(ev[0]["firstTimestamp"] == "2023-12-31T23:59:00Z");
  CHECK(ev[0]["lastTimestamp"] == "2024-01-01T00:00:00Z");
}

TEST_CASE_METHOD(RecorderFixture, "Many similar events with different messages are combined",
                 "[events]") {
  EventRecorderOptions options;
  options.burst = 100;  // the spam filter is tested below
  auto& r = recorder(options);
  for (int i = 0; i < 30; ++i) {
    auto e = backoff("web", "0/" + std::to_string(i) + " nodes are available");
    e.reason = "FailedScheduling";
    e.component = "default-scheduler";
    e.host = "";
    clock_.advance(1s);
    r.record(e);
  }
  REQUIRE(r.flush().ok());
  auto ev = events();
  // Nine distinct ones, then one combined event counting the rest (client-go's aggregator).
  REQUIRE(ev.size() == 10);
  int combined = 0;
  for (const auto& e : ev) {
    auto msg = e["message"].get<std::string>();
    if (msg.rfind("(combined from similar events): ", 0) == 0) {
      ++combined;
      CHECK(e["count"] == 21);
      CHECK(msg == "(combined from similar events): 0/29 nodes are available");
    } else {
      CHECK(e["count"] == 1);
    }
  }
  CHECK(combined == 1);
}

TEST_CASE_METHOD(RecorderFixture, "Events of one object are rate limited by a token bucket",
                 "[events]") {
  EventRecorderOptions options;
  options.burst = 5;
  options.refill = 10s;
  auto& r = recorder(options);
  int accepted = 0;
  for (int i = 0; i < 20; ++i) accepted += r.record(backoff("web", "m" + std::to_string(i % 3)));
  CHECK(accepted == 5);
  CHECK(r.stats().rate_limited == 15);
  // Another object has its own bucket.
  CHECK(r.record(backoff("db")));
  // One token back every 10 s.
  clock_.advance(10s);
  CHECK(r.record(backoff("web", "m0")));
  CHECK_FALSE(r.record(backoff("web", "m0")));
  clock_.advance(1h);  // full again, never more than the burst
  accepted = 0;
  for (int i = 0; i < 20; ++i) accepted += r.record(backoff("web", "m0"));
  CHECK(accepted == 5);
}

TEST_CASE_METHOD(RecorderFixture, "Events expire an hour after their last occurrence", "[events]") {
  auto& r = recorder();
  REQUIRE(r.record(backoff("old")));
  REQUIRE(r.flush().ok());
  // An event someone created through the API long ago expires too.
  json foreign = {{"kind", "Event"},
                  {"apiVersion", "v1"},
                  {"metadata", {{"name", "x.1"}, {"namespace", "ops"}}},
                  {"lastTimestamp", "2023-12-31T22:00:00Z"}};
  v1::StoredObject stored;
  stored.set_json(foreign.dump());
  REQUIRE(store_->put(std::string(keys::kEvents) + "ops/x.1", stored.SerializeAsString()).ok());

  clock_.advance(50min);
  REQUIRE(r.record(backoff("recent")));
  REQUIRE(r.flush().ok());
  REQUIRE(events().size() == 3);
  auto swept = r.sweep();
  REQUIRE(swept.ok());
  CHECK(*swept == 1);  // the foreign one
  CHECK(events().size() == 2);

  clock_.advance(11min);  // "old" is now 61 minutes old, "recent" 11
  swept = r.sweep();
  REQUIRE(swept.ok());
  CHECK(*swept == 1);
  auto left = events();
  REQUIRE(left.size() == 1);
  CHECK(left[0]["involvedObject"]["name"] == "recent");

  // "old" happening again now is a new Event (the expired one is forgotten), count 1.
  REQUIRE(r.record(backoff("old")));
  REQUIRE(r.flush().ok());
  for (const auto& e : events()) CHECK(e["count"] == 1);
  CHECK(r.stats().expired == 2);
}

TEST_CASE_METHOD(RecorderFixture, "Node events go to the default namespace", "[events]") {
  auto& r = recorder();
  EventRecord e;
  e.object = node_reference("edge-7", "uid-edge-7");
  e.type = KubeEventType::kWarning;
  e.reason = "NodeNotReady";
  e.message = "Node edge-7 status is now: NodeNotReady";
  e.component = "node-controller";
  REQUIRE(r.record(e));
  REQUIRE(r.flush().ok());
  auto ev = events();
  REQUIRE(ev.size() == 1);
  CHECK(ev[0]["metadata"]["namespace"] == "default");
  CHECK_FALSE(ev[0]["involvedObject"].contains("namespace"));
  CHECK(ev[0]["source"] == json{{"component", "node-controller"}});
}

TEST_CASE_METHOD(RecorderFixture, "The recorder's thread writes events without a flush call",
                 "[events]") {
  EventRecorderOptions options;
  options.flush_interval = 10ms;
  auto& r = recorder(options);
  r.start();
  REQUIRE(r.record(backoff("web")));
  CHECK(gantry::test::eventually([&] { return events().size() == 1; }));
  r.stop();
}

}  // namespace
}  // namespace gantry::cloud::controllers
