// The side door of a prepared node name: what a province-A operator (or anyone) prepares under a
// node name is never inherited by a province-B node that joins under that name. Through the real
// API server, the real join service and the pod garbage collector on one store.
#include <catch2/catch.hpp>

#include "cloudcore/controllers/node_gc.h"
#include "cloudcore/join/join.h"
#include "cloudcore/registry/keys.h"
#include "tests/unit/cloudcore/api/api_fixture.h"

using namespace gantry;
using namespace gantry::test;
using nlohmann::json;
using namespace std::chrono_literals;

namespace {

struct JoinBeside : ApiFixture {
  common::ManualClock gc_clock;
  // Whole seconds of real time, as certificates hold it.
  common::ManualClock join_clock{
      std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now())};
  common::PrivateKey ca_key = common::PrivateKey::generate().value();
  common::Certificate ca = common::create_ca(ca_key, "join-ca", 24h).value();
  std::string signing_key = common::random_hex(32);
  std::unique_ptr<cloud::JoinService> join;
  std::unique_ptr<cloud::controllers::NodeGc> gc;

  JoinBeside() {
    cloud::JoinOptions options;
    options.pods_bound_to = [this](const std::string& node) {
      return registry().pods_on_node(node);
    };
    join = std::make_unique<cloud::JoinService>(
        store(),
        cloud::JoinCredentials{ca, *common::PrivateKey::from_pem(ca_key.to_pem()), signing_key},
        join_clock, options);
    cloud::controllers::NodeGcOptions gc_options;
    gc_options.run_thread = false;
    auto started = cloud::controllers::NodeGc::start(store(), gc_clock, gc_options);
    REQUIRE(started.ok());
    gc = std::move(started).value();
  }

  // A province-B (jiangsu) node joining as `name`.
  common::Response join_as(const std::string& name, const std::string& province = "jiangsu") {
    auto key = common::PrivateKey::generate().value();
    common::Request r;
    r.method = "POST";
    r.path = r.target = "/v1/certificates";
    r.body = json{{"csr", common::create_csr(key, "system:node:" + name).value()},
                  {"node_name", name},
                  {"province", province}}
                 .dump();
    std::string token = common::make_join_token(
        common::ca_hash(ca),
        {.expires = join_clock.system_now() + 1h, .province = province, .id = {}}, signing_key);
    r.headers.emplace_back("Authorization", "Bearer " + token);
    r.peer.remote_address = "10.0.0.9:40000";
    return join->post_certificate(r);
  }

  json node_json(const std::string& name) {
    auto r = call("GET", "/api/v1/nodes/" + name, kAdminToken);
    REQUIRE(r.code == 200);
    return r.json();
  }
};

std::string reason_of(const common::Response& r) {
  return json::parse(r.body).value("reason", "");
}

}  // namespace

TEST_CASE_METHOD(JoinBeside,
                 "a node name prepared in province A is not inherited by a province-B node",
                 "[api][isolation][join]") {
  put_node("zj1", "zhejiang");
  // A's operator cannot prepare a node object at all ...
  const std::string squat =
      R"({"apiVersion":"v1","kind":"Node","metadata":{"name":"gantry-0042","labels":{"topology.gantry.io/province":"zhejiang","lane":"3"}},
          "spec":{"taints":[{"key":"zhejiang-only","effect":"NoSchedule"}]}})";
  CHECK(call("POST", "/api/v1/nodes", kZhejiangOperatorToken, squat).code == 403);
  // ... and an object an administrator prepared is not taken over by B's join: refused, left alone.
  REQUIRE(call("POST", "/api/v1/nodes", kAdminToken, squat).code == 201);
  auto r = join_as("gantry-0042");
  INFO(r.body);
  CHECK(r.status == 409);
  CHECK(reason_of(r) == "NodeNamePrepared");
  CHECK_THAT(r.body, Catch::Matchers::Contains("lane=3") &&
                         Catch::Matchers::Contains("zhejiang-only:NoSchedule"));
  CHECK(node_json("gantry-0042")["metadata"]["labels"]["topology.gantry.io/province"] ==
        "zhejiang");
  // Deleted by the administrator, the name joins clean: B's province, none of A's labels or taints.
  REQUIRE(call("DELETE", "/api/v1/nodes/gantry-0042", kAdminToken).code == 200);
  REQUIRE(join_as("gantry-0042").status == 200);
  json joined = node_json("gantry-0042");
  CHECK(joined["metadata"]["labels"]["topology.gantry.io/province"] == "jiangsu");
  CHECK_FALSE(joined["metadata"]["labels"].contains("lane"));
  CHECK_FALSE((joined["spec"].is_object() && joined["spec"].contains("taints")));
  CHECK_FALSE(joined["metadata"].value("uid", "").empty());
}

TEST_CASE_METHOD(JoinBeside,
                 "pods bound to a deleted province-A node are not inherited by a province-B node "
                 "joining under its name: refused until they are garbage-collected",
                 "[api][isolation][join]") {
  put_node("zj-7", "zhejiang");
  put_node("zj-8", "zhejiang");
  const std::string pod =
      R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web"},
          "spec":{"nodeName":"zj-7","containers":[{"name":"main","image":"nginx"}]}})";
  REQUIRE(call("POST", "/api/v1/namespaces/default/pods", kZhejiangOperatorToken, pod).code == 201);
  put_pod("default", "other", "zj-8");
  put_pod_status("default", "web", v1::POD_PHASE_RUNNING, true);
  REQUIRE(eventually([&] { return registry().pods_on_node("zj-7") == 1; }));

  // A's operator deletes its node; its pod stays bound to the name for now.
  REQUIRE(call("DELETE", "/api/v1/nodes/zj-7", kZhejiangOperatorToken).code == 200);
  REQUIRE(eventually([&] { return gc->missing_nodes() == 1; }));
  auto r = join_as("zj-7");
  CHECK(r.status == 409);
  CHECK(reason_of(r) == "PodsBoundToNodeName");
  CHECK_THAT(r.body, Catch::Matchers::Contains("1 pod is bound to node name zj-7"));

  // Not before the quarantine ...
  gc_clock.advance(39s);
  CHECK(gc->run_once() == 0);
  CHECK(call("GET", "/api/v1/namespaces/default/pods/web", kAdminToken).code == 200);
  // ... then the pod (and its status) go; the pod of a node that exists stays.
  gc_clock.advance(2s);
  CHECK(gc->run_once() == 1);
  CHECK(call("GET", "/api/v1/namespaces/default/pods/web", kAdminToken).code == 404);
  CHECK_FALSE(
      store().get(cloud::keys::status_key(v1::OBJECT_KIND_POD, "default", "web"))->has_value());
  CHECK(call("GET", "/api/v1/namespaces/default/pods/other", kAdminToken).code == 200);
  REQUIRE(eventually([&] { return registry().pods_on_node("zj-7") == 0; }));

  // Now B's node joins under the name and finds nothing of A's.
  REQUIRE(join_as("zj-7").status == 200);
  auto pods = call("GET", "/api/v1/pods?fieldSelector=spec.nodeName%3Dzj-7", kAdminToken).json();
  CHECK(pods["items"].empty());
}
