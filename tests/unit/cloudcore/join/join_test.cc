#include "cloudcore/join/join.h"

#include <catch2/catch.hpp>
#include <functional>
#include <nlohmann/json.hpp>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/store/rocks_store.h"
#include "tests/support/test_support.h"

namespace gantry::cloud {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

common::PrivateKey new_key() {
  auto key = common::PrivateKey::generate();
  REQUIRE(key.ok());
  return std::move(key).value();
}

common::Certificate new_ca(const common::PrivateKey& key) {
  auto ca = common::create_ca(key, "test-ca", 24h * 3650);
  REQUIRE(ca.ok());
  return std::move(ca).value();
}

std::string csr_for(const common::PrivateKey& key, const std::string& cn) {
  auto csr = common::create_csr(key, cn);
  REQUIRE(csr.ok());
  return *csr;
}

struct Fixture {
  test::TempDir dir;
  std::unique_ptr<Store> store;
  // Real time (whole seconds, as certificates hold it): the CA is made at the real time.
  common::ManualClock clock{
      std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now())};
  common::PrivateKey ca_key = new_key();
  common::Certificate ca = new_ca(ca_key);
  std::string signing_key = common::random_hex(32);
  common::PrivateKey node_key = new_key();
  std::unique_ptr<JoinService> service;

  explicit Fixture(JoinOptions options = {}) {
    RocksStoreOptions opts;
    opts.path = dir.str();
    auto s = open_rocks_store(opts);
    REQUIRE(s.ok());
    store = std::move(s).value();
    service = std::make_unique<JoinService>(
        *store, JoinCredentials{ca, *common::PrivateKey::from_pem(ca_key.to_pem()), signing_key},
        clock, options);
  }

  std::string token(const std::string& province = "", std::chrono::seconds ttl = 1h) {
    return common::make_join_token(
        common::ca_hash(ca), {.expires = clock.system_now() + ttl, .province = province, .id = {}},
        signing_key);
  }

  json body(const std::string& name = "edge-1", const std::string& province = "zhejiang") {
    return json{{"csr", csr_for(node_key, "system:node:" + name)},
                {"node_name", name},
                {"province", province},
                {"labels", {{"site", "gantry-17"}}}};
  }

  common::Response post(const std::string& body_text, std::optional<std::string> token,
                        const std::string& ip = "10.0.0.1") {
    common::Request r;
    r.method = "POST";
    r.path = r.target = "/v1/certificates";
    r.body = body_text;
    if (token) r.headers.emplace_back("Authorization", "Bearer " + *token);
    r.peer.remote_address = ip + ":40000";
    return service->post_certificate(r);
  }

  bool node_exists(const std::string& name) {
    auto kv = store->get(keys::object_key(v1::OBJECT_KIND_NODE, "", name));
    REQUIRE(kv.ok());
    return kv->has_value();
  }
};

std::string reason_of(const common::Response& r) {
  return json::parse(r.body).value("reason", "");
}
std::string message_of(const common::Response& r) {
  return json::parse(r.body).value("message", "");
}

TEST_CASE("a valid join gets a client certificate for system:node:NAME and creates the node") {
  Fixture f;
  auto r = f.post(f.body().dump(), f.token("zhejiang"));
  INFO(r.body);
  REQUIRE(r.status == 200);
  json out = json::parse(r.body);
  CHECK(out["ca"] == f.ca.to_pem());
  auto cert = common::Certificate::from_pem(out["certificate"].get<std::string>());
  REQUIRE(cert.ok());
  CHECK(cert->common_name() == "system:node:edge-1");
  CHECK(common::verify_certificate(*cert, {f.ca}, f.clock.system_now() + 1h).ok());
  // Default lifetime: 365 days from the (injected) clock.
  CHECK(cert->not_after() - f.clock.system_now() == std::chrono::hours(24 * 365));

  auto kv = f.store->get(keys::object_key(v1::OBJECT_KIND_NODE, "", "edge-1"));
  REQUIRE(kv.ok());
  REQUIRE(kv->has_value());
  v1::StoredObject stored;
  REQUIRE(stored.ParseFromString((*kv)->value));
  CHECK(stored.labels().at("topology.gantry.io/province") == "zhejiang");
  CHECK(stored.labels().at("kubernetes.io/hostname") == "edge-1");
  CHECK(stored.labels().at("site") == "gantry-17");
  CHECK(json::parse(stored.json())["metadata"]["annotations"].contains(kJoinedAtAnnotation));
  // A joined node has a uid, as every Kubernetes object does.
  CHECK(json::parse(stored.json())["metadata"].value("uid", "").size() == 36);
  CHECK(stored.edge().uid() == json::parse(stored.json())["metadata"]["uid"]);
}

TEST_CASE("the certificate lifetime comes from the options") {
  JoinOptions options;
  options.certificate_lifetime = 90s;
  Fixture f(options);
  auto r = f.post(f.body().dump(), f.token());
  REQUIRE(r.status == 200);
  auto cert = common::Certificate::from_pem(json::parse(r.body)["certificate"].get<std::string>());
  REQUIRE(cert.ok());
  CHECK(cert->not_after() - f.clock.system_now() == 90s);
}

TEST_CASE("GET /ca.crt serves the CA PEM") {
  Fixture f;
  common::Request r;
  r.method = "GET";
  auto resp = f.service->get_ca(r);
  CHECK(resp.status == 200);
  CHECK(resp.body == f.ca.to_pem());
}

struct RefusalCase {
  std::string what;
  int status;
  std::string reason;
  std::string message_part;  // "{expiry}" stands for the token's expiry time
  std::function<common::Response(Fixture&)> request;
};

TEST_CASE("every refusal has its HTTP code and a reason and a message and creates no node") {
  auto table = GENERATE(values<RefusalCase>({
      {"malformed JSON", 400, "MalformedRequest", "not a JSON object",
       [](Fixture& f) { return f.post("{not json", f.token()); }},
      {"node_name of the wrong type", 400, "MalformedRequest", "node_name must be a string",
       [](Fixture& f) {
         auto b = f.body();
         b["node_name"] = 7;
         return f.post(b.dump(), f.token());
       }},
      {"no token", 401, "TokenRequired", "gantryadm gettoken",
       [](Fixture& f) { return f.post(f.body().dump(), std::nullopt); }},
      {"malformed token", 401, "InvalidToken", "malformed",
       [](Fixture& f) { return f.post(f.body().dump(), "not-a-token"); }},
      {"token signed with another key", 401, "InvalidToken", "signature does not match",
       [](Fixture& f) {
         auto t = common::make_join_token(
             common::ca_hash(f.ca),
             {.expires = f.clock.system_now() + 1h, .province = {}, .id = {}},
             common::random_hex(32));
         return f.post(f.body().dump(), t);
       }},
      {"expired token", 401, "TokenExpired", "token expired at {expiry}",
       [](Fixture& f) {
         auto t = f.token("", 60s);
         f.clock.advance(61s);
         return f.post(f.body().dump(), t);
       }},
      {"token of another cluster's CA", 403, "TokenForAnotherCluster", "another cluster CA",
       [](Fixture& f) {
         auto other_key = new_key();
         auto t = common::make_join_token(
             common::ca_hash(new_ca(other_key)),
             {.expires = f.clock.system_now() + 1h, .province = {}, .id = {}}, f.signing_key);
         return f.post(f.body().dump(), t);
       }},
      {"CSR with the wrong CN", 400, "InvalidCSR", "it must be 'system:node:edge-1'",
       [](Fixture& f) {
         auto b = f.body();
         b["csr"] = csr_for(f.node_key, "system:node:edge-2");
         return f.post(b.dump(), f.token());
       }},
      {"CSR that is not a CSR", 400, "InvalidCSR", "not valid",
       [](Fixture& f) {
         auto b = f.body();
         b["csr"] =
             "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
         return f.post(b.dump(), f.token());
       }},
      {"invalid node name", 400, "InvalidNodeName", "node name 'Edge_1' is not valid",
       [](Fixture& f) { return f.post(f.body("Edge_1").dump(), f.token()); }},
      {"province mismatch", 403, "ProvinceMismatch", "this token is for province jiangsu",
       [](Fixture& f) { return f.post(f.body("edge-1", "zhejiang").dump(), f.token("jiangsu")); }},
      {"invalid label", 400, "InvalidLabel", "bad key!",
       [](Fixture& f) {
         auto b = f.body();
         b["labels"] = {{"bad key!", "x"}};
         return f.post(b.dump(), f.token());
       }},
  }));
  Fixture f;
  std::string expiry = common::format_rfc3339(f.clock.system_now() + 60s);
  auto r = table.request(f);
  INFO(table.what << ": " << r.body);
  CHECK(r.status == table.status);
  CHECK(reason_of(r) == table.reason);
  std::string part = table.message_part;
  if (auto at = part.find("{expiry}"); at != std::string::npos) part.replace(at, 8, expiry);
  CHECK_THAT(message_of(r), Catch::Matchers::Contains(part));
  CHECK_FALSE(f.node_exists("edge-1"));
}

TEST_CASE("a name that already joined is refused with 409 and the node is left as it was") {
  Fixture f;
  REQUIRE(f.post(f.body().dump(), f.token()).status == 200);
  auto before = f.store->get(keys::object_key(v1::OBJECT_KIND_NODE, "", "edge-1"));
  auto r = f.post(f.body("edge-1", "jiangsu").dump(), f.token());
  CHECK(r.status == 409);
  CHECK(reason_of(r) == "NodeNameTaken");
  CHECK(message_of(r) == "node name edge-1 is taken; choose another or delete the node");
  auto after = f.store->get(keys::object_key(v1::OBJECT_KIND_NODE, "", "edge-1"));
  CHECK((*before)->mod_revision == (*after)->mod_revision);
}

TEST_CASE("a name held by a node that connected (it has a status) is taken") {
  Fixture f;
  auto stored = decode_object(v1::OBJECT_KIND_NODE, R"({"metadata":{"name":"edge-1"}})");
  REQUIRE(stored.ok());
  REQUIRE(
      f.store
          ->put(keys::object_key(v1::OBJECT_KIND_NODE, "", "edge-1"), stored->SerializeAsString())
          .ok());
  REQUIRE(f.store->put(keys::status_key(v1::OBJECT_KIND_NODE, "", "edge-1"), "x").ok());
  auto r = f.post(f.body().dump(), f.token());
  CHECK(r.status == 409);
  CHECK(reason_of(r) == "NodeNameTaken");
}

TEST_CASE(
    "a node object prepared beforehand is never taken over: the join is refused and the "
    "object left as it was") {
  Fixture f;
  auto stored =
      decode_object(v1::OBJECT_KIND_NODE,
                    R"({"metadata":{"name":"edge-1","creationTimestamp":"2026-01-01T00:00:00Z",
                                  "labels":{"rack":"r7","topology.gantry.io/province":"jiangsu"}},
                                  "spec":{"taints":[{"key":"dedicated","effect":"NoSchedule"}]}})");
  REQUIRE(stored.ok());
  const std::string key = keys::object_key(v1::OBJECT_KIND_NODE, "", "edge-1");
  REQUIRE(f.store->put(key, stored->SerializeAsString()).ok());
  auto before = f.store->get(key);
  auto r = f.post(f.body().dump(), f.token());
  INFO(r.body);
  CHECK(r.status == 409);
  CHECK(reason_of(r) == "NodeNamePrepared");
  // The message says what was prepared and what to do.
  CHECK_THAT(message_of(r), Catch::Matchers::Contains("no join created") &&
                                Catch::Matchers::Contains("rack=r7") &&
                                Catch::Matchers::Contains("taints dedicated:NoSchedule") &&
                                Catch::Matchers::Contains("kubectl delete node edge-1"));
  auto after = f.store->get(key);
  CHECK((*before)->mod_revision == (*after)->mod_revision);
  // Once an administrator deleted it, the join goes through with only what the join itself says.
  REQUIRE(f.store->remove(key).ok());
  r = f.post(f.body().dump(), f.token());
  REQUIRE(r.status == 200);
  v1::StoredObject joined;
  REQUIRE(joined.ParseFromString((*f.store->get(key))->value));
  CHECK_FALSE(joined.labels().contains("rack"));
  CHECK(joined.labels().at("topology.gantry.io/province") == "zhejiang");
  json spec = json::parse(joined.json()).value("spec", json::object());
  CHECK_FALSE((spec.is_object() && spec.contains("taints")));
}

TEST_CASE("a name that pods are bound to is refused until they are gone") {
  size_t bound = 2;
  JoinOptions options;
  options.pods_bound_to = [&](const std::string& node) { return node == "edge-1" ? bound : 0; };
  Fixture f(options);
  auto r = f.post(f.body().dump(), f.token());
  CHECK(r.status == 409);
  CHECK(reason_of(r) == "PodsBoundToNodeName");
  CHECK_THAT(message_of(r), Catch::Matchers::Contains("2 pods are bound to node name edge-1"));
  CHECK_FALSE(f.node_exists("edge-1"));
  CHECK(f.post(f.body("edge-2").dump(), f.token()).status == 200);
  bound = 0;
  CHECK(f.post(f.body().dump(), f.token()).status == 200);
}

TEST_CASE("a joined node gets a uid and a creation time") {
  Fixture f;
  REQUIRE(f.post(f.body().dump(), f.token()).status == 200);
  REQUIRE(f.post(f.body("edge-2").dump(), f.token()).status == 200);
  auto meta_of = [&](const std::string& name) {
    v1::StoredObject stored;
    REQUIRE(stored.ParseFromString(
        (*f.store->get(keys::object_key(v1::OBJECT_KIND_NODE, "", name)))->value));
    return json::parse(stored.json())["metadata"];
  };
  std::string uid = meta_of("edge-1")["uid"];
  CHECK(uid.size() == 36);
  CHECK(uid[14] == '4');
  CHECK(uid != meta_of("edge-2")["uid"].get<std::string>());
  CHECK(meta_of("edge-1")["creationTimestamp"] == common::format_rfc3339(f.clock.system_now()));
}

TEST_CASE("a province-bound token joins its own province") {
  Fixture f;
  CHECK(f.post(f.body("edge-1", "jiangsu").dump(), f.token("jiangsu")).status == 200);
}

TEST_CASE("requests past the per-client rate get 429 with Retry-After while others still pass") {
  JoinOptions options;
  options.per_client = {1, 2};
  options.global = {100, 100};
  Fixture f(options);
  // Refusals count too: a client guessing tokens is slowed down the same way.
  CHECK(f.post("{}", std::nullopt).status == 401);
  CHECK(f.post("{}", std::nullopt).status == 401);
  auto limited = f.post("{}", std::nullopt);
  CHECK(limited.status == 429);
  CHECK(reason_of(limited) == "RateLimited");
  auto retry = limited.headers.end();
  for (auto it = limited.headers.begin(); it != limited.headers.end(); ++it)
    if (it->first == "Retry-After") retry = it;
  REQUIRE(retry != limited.headers.end());
  CHECK(retry->second == "1");
  CHECK(f.post("{}", std::nullopt, "10.0.0.2").status == 401);
  f.clock.advance(1s);
  CHECK(f.post("{}", std::nullopt).status == 401);
}

TEST_CASE("the global rate limit applies across clients") {
  common::ManualClock clock;
  JoinRateLimiter manual(clock, {100, 100}, {0.5, 3});
  CHECK_FALSE(manual.acquire("a"));
  CHECK_FALSE(manual.acquire("b"));
  CHECK_FALSE(manual.acquire("c"));
  auto wait = manual.acquire("d");
  REQUIRE(wait);
  CHECK(*wait == 2s);
  clock.advance(2s);
  CHECK_FALSE(manual.acquire("d"));
}

TEST_CASE("node names are DNS-1123 subdomains") {
  CHECK(is_dns1123_subdomain("edge-01.zj"));
  CHECK_FALSE(is_dns1123_subdomain("Edge"));
  CHECK_FALSE(is_dns1123_subdomain("-edge"));
  CHECK_FALSE(is_dns1123_subdomain("edge..1"));
  CHECK_FALSE(is_dns1123_subdomain(std::string(254, 'a')));
}

}  // namespace
}  // namespace gantry::cloud
