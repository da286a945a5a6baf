// One cloud (store + registry + hub, in process) and any number of edges (meta + status tracker
// + tunnel client, in process), over real mutual-TLS WebSockets on 127.0.0.1.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "cloudcore/hub/hub.h"
#include "cloudcore/registry/registry.h"
#include "cloudcore/store/rocks_store.h"
#include "common/base/clock.h"
#include "common/net/event_loop.h"
#include "common/pki/pki.h"
#include "edgecore/hub/edge_hub.h"
#include "edgecore/meta/meta_store.h"
#include "edgecore/status/status_tracker.h"
#include "tests/support/test_support.h"

namespace gantry::test {

struct Pem {
  std::string cert;
  std::string key;
};

class TestCluster {
 public:
  TestCluster();
  std::string ca_pem() const { return ca_.to_pem(); }
  Pem issue(const std::string& common_name) const;

 private:
  common::PrivateKey key_;
  common::Certificate ca_;
};

class Cloud {
 public:
  Cloud(const TestCluster& cluster, std::filesystem::path dir, cloud::HubOptions options = {});
  ~Cloud();
  // (Re)starts on the same store directory; after the first start, on the same port.
  void start();
  void stop();

  cloud::Store& store() { return *store_; }
  cloud::Registry& registry() { return *registry_; }
  cloud::Hub& hub() { return *hub_; }
  uint16_t port() const { return port_; }
  cloud::HubOptions& options() { return options_; }

 private:
  std::filesystem::path dir_;
  cloud::HubOptions options_;
  std::shared_ptr<common::TlsContext> tls_;
  common::EventLoop loop_{2};
  common::SystemClock clock_;
  std::unique_ptr<cloud::Store> store_;
  std::unique_ptr<cloud::Registry> registry_;
  std::unique_ptr<cloud::Hub> hub_;
  uint16_t port_ = 0;
};

class Edge {
 public:
  Edge(const TestCluster& cluster, common::EventLoop& loop, std::string name,
       std::filesystem::path dir);
  ~Edge();
  void start(uint16_t port, edge::EdgeHubOptions options = default_options());
  void stop();  // closes the tunnel; meta stays open

  static edge::EdgeHubOptions default_options();
  const std::string& name() const { return name_; }
  edge::MetaStore& meta() { return *meta_; }
  edge::StatusTracker& tracker() { return *tracker_; }
  edge::EdgeHub& hub() { return *hub_; }
  bool connected() const { return hub_ && hub_->stats().connected; }

 private:
  common::EventLoop& loop_;
  std::string name_;
  std::filesystem::path dir_;
  std::shared_ptr<common::TlsContext> tls_;
  std::unique_ptr<edge::MetaStore> meta_;
  std::unique_ptr<edge::StatusTracker> tracker_;
  std::unique_ptr<edge::EdgeHub> hub_;
  common::SystemClock clock_;
  common::SystemRandom random_;
};

// --- objects in the cloud store ------------------------------------------------------------
cloud::Revision put_pod(cloud::Store& store, const std::string& name, const std::string& node,
                        const std::string& config_map = "", const std::string& image = "busybox:1");
cloud::Revision put_config_map(cloud::Store& store, const std::string& name,
                               const std::string& value);
cloud::Revision delete_object(cloud::Store& store, v1::ObjectKind kind, const std::string& name);

// "kind/ns/name" -> revision: what the cloud says the node should have cached, and what it has.
using View = std::map<std::string, uint64_t>;
View cloud_view(cloud::Store& store, const std::string& node);
View edge_view(const edge::MetaStore& meta);

std::optional<v1::StoredStatus> stored_status(cloud::Store& store, v1::ObjectKind kind,
                                              const std::string& name);

v1::PodStatus pod_status(v1::PodPhase phase, int restarts = 0);

}  // namespace gantry::test
