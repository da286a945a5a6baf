// pods/log against a scripted LogStreamer (what the hub does is tested over a real tunnel in
// tests/integration/logs).
#include <catch2/catch.hpp>
#include <fstream>
#include <mutex>
#include <thread>

#include "tests/unit/cloudcore/api/api_fixture.h"

using namespace gantry;
using namespace gantry::test;
using gantry::cloud::api::LogStreamer;

namespace {

// Each open() records the request and plays `script` from another thread, as the hub would.
class ScriptedStreamer final : public LogStreamer {
 public:
  struct Step {
    enum Kind { kReady, kData, kClose, kWaitConsumed } kind;
    std::string text;
    uint32_t code = 0;
  };
  std::vector<Step> script;
  std::optional<common::Status> refuse;

  ~ScriptedStreamer() override {
    for (auto& t : threads_) t.join();
  }

  common::Result<std::unique_ptr<Stream>> open(const std::string& node,
                                               const v1::LogRequest& request,
                                               Callbacks callbacks) override {
    {
      std::lock_guard lock(mu_);
      nodes.push_back(node);
      requests.push_back(request);
    }
    if (refuse) return *refuse;
    auto stream = std::make_unique<FakeStream>(this);
    threads_.emplace_back([this, callbacks = std::move(callbacks), script = script] {
      for (const auto& step : script) {
        if (step.kind == Step::kReady) callbacks.on_ready();
        if (step.kind == Step::kData) callbacks.on_data(step.text);
        if (step.kind == Step::kClose) callbacks.on_close(step.text, step.code);
        if (step.kind == Step::kWaitConsumed) {
          // The client took the bytes: that is what lets a node send more.
          CHECK(eventually([&] { return consumed.load() >= step.code; }));
        }
      }
    });
    return std::unique_ptr<Stream>(std::move(stream));
  }

  v1::LogRequest last() {
    std::lock_guard lock(mu_);
    REQUIRE_FALSE(requests.empty());
    return requests.back();
  }

  std::mutex mu_;
  std::vector<std::string> nodes;
  std::vector<v1::LogRequest> requests;
  std::atomic<size_t> consumed{0};
  std::atomic<int> destroyed{0};

 private:
  struct FakeStream final : Stream {
    explicit FakeStream(ScriptedStreamer* s) : owner(s) {}
    ~FakeStream() override { ++owner->destroyed; }
    void consumed(size_t bytes) override { owner->consumed += bytes; }
    ScriptedStreamer* owner;
  };
  std::vector<std::thread> threads_;
};

struct LogsFixture {
  ScriptedStreamer streamer;
  std::unique_ptr<ApiFixture> api;
  LogsFixture() {
    cloud::api::ApiServerOptions options;
    options.logs = &streamer;
    api = std::make_unique<ApiFixture>(options);
    api->put_node("n1", "zhejiang");
    api->put_node("n2", "jiangsu");
    api->put_pod("default", "web", "n1");
  }
  ~LogsFixture() { api.reset(); }
  HttpResult get(const std::string& query, const std::string& pod = "web",
                 const std::string& token = kAdminToken) {
    return api->call("GET", "/api/v1/namespaces/default/pods/" + pod + "/log" + query, token);
  }
};

}  // namespace

TEST_CASE("pods/log streams the node's output as text/plain with the query mapped to the request",
          "[api][logs]") {
  LogsFixture fx;
  fx.streamer.script = {{ScriptedStreamer::Step::kReady, ""},
                        {ScriptedStreamer::Step::kData, "hello\n"},
                        {ScriptedStreamer::Step::kData, "world\n"},
                        {ScriptedStreamer::Step::kWaitConsumed, "", 12},
                        {ScriptedStreamer::Step::kClose, "", 0}};
  auto r =
      fx.get("?follow=true&tailLines=2&limitBytes=100&timestamps=1&sinceSeconds=60&previous=false");
  CHECK(r.code == 200);
  CHECK(r.body == "hello\nworld\n");
  CHECK(r.headers.find("text/plain") != std::string::npos);
  auto req = fx.streamer.last();
  CHECK(fx.streamer.nodes.back() == "n1");
  CHECK(req.namespace_() == "default");
  CHECK(req.pod() == "web");
  CHECK(req.container() == "main");  // the only container
  CHECK(req.follow());
  CHECK(req.tail_lines() == 2);
  CHECK(req.limit_bytes() == 100);
  CHECK(req.timestamps());
  CHECK(req.since_seconds() == 60);
  CHECK_FALSE(req.previous());
  CHECK(fx.streamer.consumed.load() == 12);  // what reached the client was granted back
  CHECK(eventually([&] { return fx.streamer.destroyed.load() == 1; }));
  CHECK(eventually([&] { return fx.api->server().stats().logs_open.load() == 0; }));

  fx.get("");
  CHECK(fx.streamer.last().tail_lines() == -1);  // no tailLines: everything
}

TEST_CASE("pods/log answers the node's refusal as a Status with its code", "[api][logs]") {
  LogsFixture fx;
  fx.streamer.script = {
      {ScriptedStreamer::Step::kClose, "container \"main\" in pod default/web not found", 404}};
  auto r = fx.get("");
  CHECK(r.code == 404);
  CHECK(r.json()["kind"] == "Status");
  CHECK(r.json()["reason"] == "NotFound");
  CHECK(r.json()["message"] == "container \"main\" in pod default/web not found");
}

TEST_CASE("pods/log with an error after output cuts the body short (the client sees an error)",
          "[api][logs]") {
  LogsFixture fx;
  fx.streamer.script = {
      {ScriptedStreamer::Step::kData, "partial\n"},
      {ScriptedStreamer::Step::kClose, "the connection to node \"n1\" was lost", 503}};
  auto body = fx.api->dir() / "cut.body";
  ChildProcess curl({"/usr/bin/curl", "-sS", "--cacert", fx.api->ca_path(), "-o", body.string(),
                     "-H", std::string("Authorization: Bearer ") + kAdminToken,
                     fx.api->url("/api/v1/namespaces/default/pods/web/log?follow=true")},
                    fx.api->dir() / "cut.log");
  CHECK(curl.wait(std::chrono::seconds(60)) == 18);  // CURLE_PARTIAL_FILE: not a complete response
  std::ifstream in(body);
  std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(got == "partial\n");
}

TEST_CASE("pods/log of an empty log is an empty 200", "[api][logs]") {
  LogsFixture fx;
  fx.streamer.script = {{ScriptedStreamer::Step::kClose, "", 0}};
  auto r = fx.get("");
  CHECK(r.code == 200);
  CHECK(r.body.empty());
}

TEST_CASE("pods/log for an offline node says since when, as 503", "[api][logs]") {
  LogsFixture fx;
  fx.streamer.refuse = common::Status(
      common::Code::kUnavailable, "node \"n1\" is offline since 2024-01-01T00:00:00Z (5m0s ago)");
  auto r = fx.get("");
  CHECK(r.code == 503);
  CHECK(r.json()["reason"] == "ServiceUnavailable");
  CHECK(r.json()["message"] ==
        "cannot read the logs of pod \"web\": node \"n1\" is offline since 2024-01-01T00:00:00Z "
        "(5m0s ago)");
}

TEST_CASE("pods/log refuses bad requests before asking the node", "[api][logs]") {
  LogsFixture fx;
  // A pod with two containers and an init container, and an unscheduled pod.
  auto created = fx.api->call("POST", "/api/v1/namespaces/default/pods", kAdminToken,
                              R"({"metadata":{"name":"two"},"spec":{"nodeName":"n1",
                                  "initContainers":[{"name":"init","image":"x"}],
                                  "containers":[{"name":"a","image":"x"},{"name":"b","image":"x"}]}})");
  REQUIRE(created.code == 201);
  REQUIRE(
      fx.api
          ->call(
              "POST", "/api/v1/namespaces/default/pods", kAdminToken,
              R"({"metadata":{"name":"pending"},"spec":{"containers":[{"name":"a","image":"x"}]}})")
          .code == 201);

  auto r = fx.get("", "two");
  CHECK(r.code == 400);
  CHECK(r.json()["message"] ==
        "a container name must be specified for pod two, choose one of: [a b] or one of the init "
        "containers: [init]");
  r = fx.get("?container=c", "two");
  CHECK(r.code == 400);
  CHECK(r.json()["message"] == "container c is not valid for pod two");
  r = fx.get("", "pending");
  CHECK(r.code == 400);
  CHECK(r.json()["message"].get<std::string>().starts_with(
      "pod pending does not have a host assigned"));
  r = fx.get("", "nope");
  CHECK(r.code == 404);
  for (const char* q :
       {"?tailLines=-1", "?tailLines=x", "?limitBytes=0", "?sinceSeconds=0", "?follow=maybe",
        "?sinceSeconds=5&sinceTime=2024-01-01T00:00:00Z", "?sinceTime=yesterday"}) {
    INFO(q);
    CHECK(fx.get(q).code == 400);
  }
  CHECK(fx.streamer.requests.empty());

  fx.streamer.script = {{ScriptedStreamer::Step::kClose, "", 0}};
  CHECK(fx.get("?container=init", "two").code == 200);
  CHECK(fx.streamer.last().container() == "init");
  CHECK(fx.get("?sinceTime=2000-01-01T00:00:00Z").code == 200);
  CHECK(fx.streamer.last().since_seconds() > 700'000'000);
}

TEST_CASE("pods/log follows the province rules of GET pod", "[api][logs]") {
  LogsFixture fx;
  fx.streamer.script = {{ScriptedStreamer::Step::kClose, "", 0}};
  fx.api->put_pod("default", "js-pod", "n2");
  CHECK(fx.get("", "web", kZhejiangViewerToken).code == 200);
  auto r = fx.get("", "js-pod", kZhejiangViewerToken);
  CHECK(r.code == 403);
  CHECK(fx.streamer.requests.size() == 1);
}
