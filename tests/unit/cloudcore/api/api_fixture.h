// An in-process API server (real RocksDB store, registry, HTTPS on 127.0.0.1:0) with a test CA,
// a token file (admin, a zhejiang viewer, a jiangsu operator, a zhejiang operator) and helpers to
// seed nodes, pods and statuses the way the hub writes them, and to call the API with curl.
#pragma once

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cloudcore/api/api_server.h"
#include "cloudcore/registry/registry.h"
#include "cloudcore/store/rocks_store.h"
#include "common/base/clock.h"
#include "common/net/event_loop.h"
#include "tests/support/test_support.h"

namespace gantry::test {

inline constexpr const char* kAdminToken = "admin-token-0123456789";
inline constexpr const char* kZhejiangViewerToken = "zj-viewer-token-0123456789";
inline constexpr const char* kJiangsuOperatorToken = "js-operator-token-0123456789";
inline constexpr const char* kZhejiangOperatorToken = "zj-operator-token-0123456789";

struct HttpResult {
  int code = 0;
  std::string body;
  std::string headers;
  nlohmann::json json() const { return nlohmann::json::parse(body, nullptr, false); }
};

class ApiFixture {
 public:
  explicit ApiFixture(cloud::api::ApiServerOptions options = {});
  ~ApiFixture();

  cloud::Store& store() { return *store_; }
  cloud::Registry& registry() { return *registry_; }
  cloud::api::ApiServer& server() { return *server_; }
  uint16_t port() const { return port_; }
  const TempDir& dir() const { return dir_; }
  std::string ca_path() const { return (dir_ / "ca.crt").string(); }
  std::string url(const std::string& path) const;

  // Seeds through the store as the hub and a user would (StoredObject / StoredStatus).
  void put_node(const std::string& name, const std::string& province);
  void put_node_status(const std::string& name, bool ready, bool unreachable = false);
  void put_pod(const std::string& ns, const std::string& name, const std::string& node,
               const std::string& image = "nginx:1.25");
  void put_pod_status(const std::string& ns, const std::string& name, v1::PodPhase phase,
                      bool ready, const std::string& ip = "10.0.0.5", int restarts = 0);
  std::string pod_uid(const std::string& ns, const std::string& name);

  // curl against the server; `token` empty: no Authorization header.
  HttpResult call(const std::string& method, const std::string& path, const std::string& token,
                  const std::string& body = "",
                  const std::string& content_type = "application/json",
                  const std::vector<std::string>& headers = {});

 private:
  TempDir dir_;
  common::EventLoop loop_{2};
  common::SystemClock clock_;
  std::unique_ptr<cloud::Store> store_;
  std::unique_ptr<cloud::Registry> registry_;
  std::unique_ptr<cloud::api::ApiServer> server_;
  uint16_t port_ = 0;
  std::map<std::string, uint64_t> generations_;
  int calls_ = 0;
};

}  // namespace gantry::test
