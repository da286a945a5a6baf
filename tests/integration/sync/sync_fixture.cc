#include "tests/integration/sync/sync_fixture.h"

#include <catch2/catch.hpp>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"

namespace gantry::test {

TestCluster::TestCluster()
    : key_(common::PrivateKey::generate().value()),
      ca_(common::create_ca(key_, "gantry-test-ca", std::chrono::hours(24)).value()) {}

Pem TestCluster::issue(const std::string& common_name) const {
  auto key = common::PrivateKey::generate().value();
  common::CertificateSpec spec;
  spec.common_name = common_name;
  spec.ip_addresses = {"127.0.0.1"};
  spec.dns_names = {"localhost"};
  spec.lifetime = std::chrono::hours(24);
  auto cert = common::issue_certificate(key.get(), spec, ca_, key_);
  REQUIRE(cert.ok());
  return {cert->to_pem(), key.to_pem()};
}

Cloud::Cloud(const TestCluster& cluster, std::filesystem::path dir, cloud::HubOptions options)
    : dir_(std::move(dir)), options_(std::move(options)) {
  auto pem = cluster.issue("gantry-cloudcore");
  common::TlsOptions tls;
  tls.cert_pem = pem.cert;
  tls.key_pem = pem.key;
  tls.ca_pem = cluster.ca_pem();
  tls.verify_peer = true;
  tls_ = common::TlsContext::create(common::TlsRole::kServer, tls).value();
  options_.address = "127.0.0.1";
  loop_.run();
}

Cloud::~Cloud() {
  stop();
}

void Cloud::start() {
  cloud::RocksStoreOptions opts;
  opts.path = (dir_ / "store").string();
  opts.auto_compact_interval = std::chrono::milliseconds(0);
  auto store = cloud::open_rocks_store(opts);
  REQUIRE(store.ok());
  store_ = std::move(store).value();
  auto registry = cloud::Registry::start(*store_);
  REQUIRE(registry.ok());
  registry_ = std::move(registry).value();
  options_.port = port_;
  auto hub = cloud::Hub::start(loop_, tls_, *store_, *registry_, clock_, options_);
  REQUIRE(hub.ok());
  hub_ = std::move(hub).value();
  port_ = hub_->port();
}

void Cloud::stop() {
  hub_.reset();
  registry_.reset();
  store_.reset();
}

Edge::Edge(const TestCluster& cluster, common::EventLoop& loop, std::string name,
           std::filesystem::path dir)
    : loop_(loop), name_(std::move(name)), dir_(std::move(dir)) {
  auto pem = cluster.issue("system:node:" + name_);
  common::TlsOptions tls;
  tls.cert_pem = pem.cert;
  tls.key_pem = pem.key;
  tls.ca_pem = cluster.ca_pem();
  tls.verify_peer = true;
  tls_ = common::TlsContext::create(common::TlsRole::kClient, tls).value();
  auto meta = edge::MetaStore::open(dir_ / name_);
  REQUIRE(meta.ok());
  meta_ = std::move(meta).value();
  edge::StatusTrackerOptions topts;
  topts.node_name = name_;
  auto tracker = edge::StatusTracker::load(*meta_, topts);
  REQUIRE(tracker.ok());
  tracker_ = std::move(tracker).value();
}

Edge::~Edge() {
  stop();
}

edge::EdgeHubOptions Edge::default_options() {
  edge::EdgeHubOptions o;
  o.host = "127.0.0.1";
  o.backoff.base = std::chrono::milliseconds(100);
  o.backoff.cap = std::chrono::milliseconds(1000);
  o.batch_interval = std::chrono::milliseconds(20);
  return o;
}

void Edge::start(uint16_t port, edge::EdgeHubOptions options) {
  options.port = port;
  hub_ = std::make_unique<edge::EdgeHub>(loop_, tls_, *meta_, *tracker_, options, clock_, random_);
  hub_->start();
}

void Edge::stop() {
  if (hub_) hub_->stop();
  hub_.reset();
}

namespace {

cloud::Revision put_object(cloud::Store& store, v1::ObjectKind kind, const std::string& name,
                           const std::string& json) {
  auto stored = cloud::decode_object(kind, json);
  REQUIRE(stored.ok());
  auto rev = store.put(cloud::keys::object_key(kind, "default", name), stored->SerializeAsString());
  REQUIRE(rev.ok());
  return *rev;
}

std::string view_key(v1::ObjectKind kind, const std::string& ns, const std::string& name) {
  return fmt::format("{}/{}/{}", cloud::keys::kind_name(kind), ns, name);
}

}  // namespace

cloud::Revision put_pod(cloud::Store& store, const std::string& name, const std::string& node,
                        const std::string& config_map, const std::string& image) {
  std::string volumes =
      config_map.empty()
          ? ""
          : fmt::format(R"(, "volumes": [{{"name": "v", "configMap": {{"name": "{}"}}}}])",
                        config_map);
  return put_object(
      store, v1::OBJECT_KIND_POD, name,
      fmt::format(R"({{"metadata": {{"name": "{}", "namespace": "default", "uid": "uid-{}"}},
                      "spec": {{"nodeName": "{}", "containers": [{{"name": "c", "image": "{}"}}]{}}}}})",
                  name, name, node, image, volumes));
}

cloud::Revision put_config_map(cloud::Store& store, const std::string& name,
                               const std::string& value) {
  return put_object(
      store, v1::OBJECT_KIND_CONFIG_MAP, name,
      fmt::format(R"({{"metadata": {{"name": "{}"}}, "data": {{"value": "{}"}}}})", name, value));
}

cloud::Revision delete_object(cloud::Store& store, v1::ObjectKind kind, const std::string& name) {
  auto rev = store.remove(cloud::keys::object_key(kind, "default", name));
  REQUIRE(rev.ok());
  return *rev;
}

View cloud_view(cloud::Store& store, const std::string& node) {
  View view;
  cloud::ListOptions opts;
  opts.prefix = std::string(cloud::keys::kPods);
  auto pods = store.list(opts);
  REQUIRE(pods.ok());
  std::set<std::string> config_maps;
  for (const auto& kv : pods->items) {
    v1::StoredObject stored;
    REQUIRE(stored.ParseFromString(kv.value));
    if (stored.node_name() != node) continue;
    view[view_key(v1::OBJECT_KIND_POD, stored.edge().namespace_(), stored.edge().name())] =
        kv.mod_revision;
    for (const auto& cm : stored.config_maps()) config_maps.insert(cm);
  }
  for (const auto& cm : config_maps) {
    auto kv = store.get(cloud::keys::object_key(v1::OBJECT_KIND_CONFIG_MAP, "default", cm));
    REQUIRE(kv.ok());
    if (kv->has_value())
      view[view_key(v1::OBJECT_KIND_CONFIG_MAP, "default", cm)] = (*kv)->mod_revision;
  }
  return view;
}

View edge_view(const edge::MetaStore& meta) {
  View view;
  auto objects = meta.list_objects();
  REQUIRE(objects.ok());
  for (const auto& obj : *objects)
    view[view_key(obj.kind(), obj.namespace_(), obj.name())] = obj.revision();
  return view;
}

std::optional<v1::StoredStatus> stored_status(cloud::Store& store, v1::ObjectKind kind,
                                              const std::string& name) {
  auto kv = store.get(cloud::keys::status_key(kind, "default", name));
  REQUIRE(kv.ok());
  if (!kv->has_value()) return std::nullopt;
  v1::StoredStatus status;
  REQUIRE(status.ParseFromString((*kv)->value));
  return status;
}

v1::PodStatus pod_status(v1::PodPhase phase, int restarts) {
  v1::PodStatus s;
  s.set_phase(phase);
  s.set_ready(phase == v1::POD_PHASE_RUNNING);
  s.set_pod_ip("10.88.0.7");
  s.set_start_time(1700000000);
  auto* c = s.add_containers();
  c->set_name("c");
  c->set_restart_count(restarts);
  c->set_ready(phase == v1::POD_PHASE_RUNNING);
  c->set_image_id("sha256:abc");
  return s;
}

}  // namespace gantry::test
