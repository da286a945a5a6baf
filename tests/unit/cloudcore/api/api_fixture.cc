#include "tests/unit/cloudcore/api/api_fixture.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "common/base/atomic_file.h"
#include "common/pki/pki.h"

namespace gantry::test {

using nlohmann::json;

ApiFixture::ApiFixture(cloud::api::ApiServerOptions options) {
  auto ca_key = common::PrivateKey::generate().value();
  auto ca = common::create_ca(ca_key, "gantry-test-ca", std::chrono::hours(24)).value();
  auto key = common::PrivateKey::generate().value();
  common::CertificateSpec spec;
  spec.common_name = "gantry-cloudcore";
  spec.ip_addresses = {"127.0.0.1"};
  spec.dns_names = {"localhost"};
  spec.lifetime = std::chrono::hours(24);
  auto cert = common::issue_certificate(key.get(), spec, ca, ca_key);
  REQUIRE(cert.ok());
  std::ofstream(dir_ / "ca.crt") << ca.to_pem();

  common::TlsOptions tls;
  tls.cert_pem = cert->to_pem();
  tls.key_pem = key.to_pem();
  tls.ca_pem = ca.to_pem();
  tls.verify_peer = false;
  tls.request_client_cert = true;
  auto tls_ctx = common::TlsContext::create(common::TlsRole::kServer, tls);
  REQUIRE(tls_ctx.ok());

  cloud::RocksStoreOptions store_options;
  store_options.path = (dir_ / "store").string();
  store_options.auto_compact_interval = std::chrono::milliseconds(0);
  auto store = cloud::open_rocks_store(store_options);
  REQUIRE(store.ok());
  store_ = std::move(store).value();
  auto registry = cloud::Registry::start(*store_);
  REQUIRE(registry.ok());
  registry_ = std::move(registry).value();

  auto tokens = cloud::api::TokenAuthenticator::parse(
      std::string(kAdminToken) + ",admin,1,\"system:masters\"\n" + kZhejiangViewerToken +
      ",zj-viewer,2,\"gantry:province:zhejiang:viewer\"\n" + kJiangsuOperatorToken +
      ",js-operator,3,\"gantry:province:jiangsu:operator\"\n" + kZhejiangOperatorToken +
      ",zj-operator,4,\"gantry:province:zhejiang:operator\"\n");
  REQUIRE(tokens.ok());
  options.address = "127.0.0.1";
  options.port = 0;
  loop_.run();
  auto server = cloud::api::ApiServer::start(loop_, *tls_ctx, *store_, *registry_, clock_,
                                             std::move(tokens).value(), options);
  REQUIRE(server.ok());
  server_ = std::move(server).value();
  port_ = server_->port();
}

ApiFixture::~ApiFixture() {
  server_->stop();
  loop_.stop();
  server_.reset();
  registry_.reset();
  store_.reset();
}

std::string ApiFixture::url(const std::string& path) const {
  return "https://127.0.0.1:" + std::to_string(port_) + path;
}

void ApiFixture::put_node(const std::string& name, const std::string& province) {
  json node = {
      {"kind", "Node"},
      {"apiVersion", "v1"},
      {"metadata",
       {{"name", name},
        {"uid", "uid-" + name},
        {"creationTimestamp", "2024-01-01T00:00:00Z"},
        {"labels", {{"topology.gantry.io/province", province}, {"kubernetes.io/hostname", name}}}}},
      {"spec", json::object()}};
  auto stored = cloud::decode_object(v1::OBJECT_KIND_NODE, node.dump());
  REQUIRE(stored.ok());
  REQUIRE(store_
              ->put(cloud::keys::object_key(v1::OBJECT_KIND_NODE, "", name),
                    stored->SerializeAsString())
              .ok());
  REQUIRE(eventually([&] { return registry_->node(name).has_value(); }));
}

void ApiFixture::put_node_status(const std::string& name, bool ready, bool unreachable) {
  v1::StoredStatus st;
  st.set_generation(++generations_["node/" + name]);
  st.set_uid("uid-" + name);
  st.set_changed_at(1'700'000'000'000);
  st.set_unreachable(unreachable);
  auto* ns = st.mutable_node();
  ns->mutable_capacity()->set_cpu_millis(4000);
  ns->mutable_capacity()->set_memory_bytes(8LL << 30);
  ns->mutable_capacity()->set_pods(110);
  *ns->mutable_allocatable() = ns->capacity();
  auto* c = ns->add_conditions();
  c->set_type(v1::NODE_CONDITION_READY);
  c->set_status(ready ? v1::CONDITION_STATUS_TRUE : v1::CONDITION_STATUS_FALSE);
  c->set_last_transition_time(1'700'000'000);
  c->set_reason(ready ? "EdgeReady" : "RuntimeDown");
  auto* a = ns->mutable_addresses()->add_items();
  a->set_type(v1::ADDRESS_TYPE_INTERNAL_IP);
  a->set_address("192.168.1.10");
  ns->mutable_node_info()->set_edgecore_version("v0.1.0");
  ns->mutable_node_info()->set_architecture("amd64");
  ns->mutable_node_info()->set_operating_system("linux");
  REQUIRE(
      store_->put(cloud::keys::status_key(v1::OBJECT_KIND_NODE, "", name), st.SerializeAsString())
          .ok());
}

void ApiFixture::put_pod(const std::string& ns, const std::string& name, const std::string& node,
                         const std::string& image) {
  json pod = {{"kind", "Pod"},
              {"apiVersion", "v1"},
              {"metadata",
               {{"name", name},
                {"namespace", ns},
                {"uid", "uid-" + ns + "-" + name},
                {"creationTimestamp", "2024-01-01T00:00:00Z"},
                {"labels", {{"app", name}}}}},
              {"spec", {{"containers", {{{"name", "main"}, {"image", image}}}}}}};
  if (!node.empty()) pod["spec"]["nodeName"] = node;
  auto stored = cloud::decode_object(v1::OBJECT_KIND_POD, pod.dump());
  REQUIRE(stored.ok());
  REQUIRE(
      store_
          ->put(cloud::keys::object_key(v1::OBJECT_KIND_POD, ns, name), stored->SerializeAsString())
          .ok());
}

std::string ApiFixture::pod_uid(const std::string& ns, const std::string& name) {
  auto kv = store_->get(cloud::keys::object_key(v1::OBJECT_KIND_POD, ns, name));
  REQUIRE(kv.ok());
  REQUIRE(kv->has_value());
  v1::StoredObject so;
  REQUIRE(so.ParseFromString((*kv)->value));
  return json::parse(so.json())["metadata"]["uid"].get<std::string>();
}

void ApiFixture::put_pod_status(const std::string& ns, const std::string& name, v1::PodPhase phase,
                                bool ready, const std::string& ip, int restarts) {
  v1::StoredStatus st;
  st.set_generation(++generations_["pod/" + ns + "/" + name]);
  st.set_uid(pod_uid(ns, name));
  st.set_changed_at(1'700'000'100'000);
  auto* ps = st.mutable_pod();
  ps->set_phase(phase);
  ps->set_ready(ready);
  ps->set_pod_ip(ip);
  ps->set_start_time(1'700'000'000);
  auto* c = ps->add_containers();
  c->set_name("main");
  c->set_ready(ready);
  c->set_restart_count(restarts);
  if (phase == v1::POD_PHASE_RUNNING) {
    c->mutable_state()->mutable_running()->set_started_at(1'700'000'010);
  } else {
    c->mutable_state()->mutable_waiting()->set_reason("ContainerCreating");
  }
  REQUIRE(
      store_->put(cloud::keys::status_key(v1::OBJECT_KIND_POD, ns, name), st.SerializeAsString())
          .ok());
}

HttpResult ApiFixture::call(const std::string& method, const std::string& path,
                            const std::string& token, const std::string& body,
                            const std::string& content_type,
                            const std::vector<std::string>& headers) {
  int n = ++calls_;
  auto body_out = dir_ / ("curl-" + std::to_string(n) + ".body");
  auto head_out = dir_ / ("curl-" + std::to_string(n) + ".headers");
  auto body_in = dir_ / ("curl-" + std::to_string(n) + ".in");
  std::vector<std::string> argv = {
      "/usr/bin/curl",   "-sS", "--cacert",        ca_path(), "-X",           method,       "-o",
      body_out.string(), "-D",  head_out.string(), "-w",      "%{http_code}", "--max-time", "60"};
  if (!token.empty()) argv.insert(argv.end(), {"-H", "Authorization: Bearer " + token});
  if (!body.empty()) {
    std::ofstream(body_in, std::ios::binary) << body;
    argv.insert(argv.end(),
                {"-H", "Content-Type: " + content_type, "--data-binary", "@" + body_in.string()});
  }
  for (const auto& h : headers) argv.insert(argv.end(), {"-H", h});
  argv.push_back(url(path));
  ChildProcess curl(argv, dir_ / ("curl-" + std::to_string(n) + ".log"));
  REQUIRE(curl.wait(std::chrono::seconds(90)) == 0);
  HttpResult r;
  std::string log = curl.log();
  r.code = std::atoi(log.substr(log.size() >= 3 ? log.size() - 3 : 0).c_str());
  r.body = common::read_file(body_out).value_or("");
  r.headers = common::read_file(head_out).value_or("");
  return r;
}

}  // namespace gantry::test
