// The Kubernetes-compatible REST API (:10443): discovery, CRUD with selectors and pagination,
// patches, watch, Table output, token auth with province-scoped roles, province aggregates.
// Objects live in the Store as serialized v1::StoredObject (desired) and v1::StoredStatus
// (observed, written by the hub); this server renders them in Kubernetes shape.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "cloudcore/api/auth.h"
#include "cloudcore/api/kind.h"
#include "cloudcore/api/log_streamer.h"
#include "cloudcore/registry/registry.h"
#include "cloudcore/store/store.h"
#include "common/base/clock.h"
#include "common/base/status.h"
#include "common/net/event_loop.h"
#include "common/net/http_server.h"
#include "common/net/tls.h"

namespace gantry::cloud::api {

struct ApiServerOptions {
  std::string address = "0.0.0.0";
  uint16_t port = 10443;  // 0: the kernel picks (tests)
  // /healthz, /readyz, /livez, /version and /metrics answer without a token.
  bool anonymous_health = true;
  // The Prometheus text for GET /metrics (unset: 404).
  std::function<std::string()> metrics;
  std::chrono::milliseconds bookmark_interval{std::chrono::seconds(60)};
  std::chrono::seconds max_watch_timeout{std::chrono::minutes(30)};
  size_t max_body_bytes = 3 * 1024 * 1024;  // past it: 413
  size_t max_list_limit = 5000;             // larger ?limit= values are capped
  // Container logs from the edge (pods/log), and exec/attach sessions (pods/exec, pods/attach).
  // Not owned; must outlive the server. Unset: 501.
  LogStreamer* logs = nullptr;
  // The kinds served (not owned; must outlive the server). Unset: builtin_kinds().
  const KindRegistry* kinds = nullptr;
  // Sees every answered request and how long its handler took (metrics: RequestMetrics).
  std::function<void(const common::Request&, const common::Response&,
                     std::chrono::steady_clock::duration)>
      observe;
};

struct ApiServerStats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> unauthorized{0};
  std::atomic<uint64_t> forbidden{0};
  std::atomic<int64_t> watches_open{0};
  std::atomic<uint64_t> log_requests{0};
  std::atomic<int64_t> logs_open{0};       // pods/log responses in progress
  std::atomic<uint64_t> exec_requests{0};  // pods/exec and pods/attach
  std::atomic<int64_t> exec_open{0};       // exec/attach sessions in progress
};

class ApiServer {
 public:
  // `tls` should request but not require client certificates (tokens are the credential).
  // Creates the namespaces "default" and "kube-system" when they are missing.
  static common::Result<std::unique_ptr<ApiServer>> start(common::EventLoop& loop,
                                                          std::shared_ptr<common::TlsContext> tls,
                                                          Store& store, Registry& registry,
                                                          common::Clock& clock,
                                                          TokenAuthenticator tokens,
                                                          ApiServerOptions options);
  ~ApiServer();
  ApiServer(const ApiServer&) = delete;
  ApiServer& operator=(const ApiServer&) = delete;

  uint16_t port() const;
  const ApiServerStats& stats() const;
  // Closes the listener, every connection and every watch. Idempotent.
  void stop();

  struct Impl;

 private:
  explicit ApiServer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace gantry::cloud::api
