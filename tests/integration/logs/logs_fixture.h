// `kubectl logs` end to end in one process: cloud (store, registry, hub, REST API) and one edge
// (tunnel client + LogStreams with a locator the test controls) over real mutual-TLS sockets, and
// a raw HTTPS client that reads the response only when told to (a slow reader on demand).
#pragma once

#include <openssl/ssl.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "cloudcore/api/api_server.h"
#include "edgecore/logs/log_streams.h"
#include "tests/integration/sync/sync_fixture.h"

namespace gantry::test {

inline constexpr const char* kLogsToken = "logs-admin-token-0123456789";

class LogsCluster {
 public:
  explicit LogsCluster(edge::LogStreamsOptions streams = {}, cloud::HubOptions hub = {});
  ~LogsCluster();

  // The log file of container `container` of pod default/web (the pod's container is "c").
  void set_container(const std::string& container, const std::string& path, bool running);
  void remove_container(const std::string& container);
  std::filesystem::path log_path(const std::string& name) const { return dir_ / name; }
  // A kubeconfig for the admin token against this API server.
  std::string write_kubeconfig();

  Cloud& cloud() { return *cloud_; }
  Edge& edge() { return *edge_; }
  edge::LogStreams& streams() { return *streams_; }
  cloud::api::ApiServer& api() { return *api_; }
  uint16_t api_port() const { return api_->port(); }
  void start_edge();

 private:
  TempDir dir_;
  TestCluster cluster_;
  common::EventLoop edge_loop_{1};
  common::EventLoop api_loop_{2};
  common::SystemClock clock_;
  std::mutex mu_;
  std::map<std::string, edge::LogTarget> containers_;
  std::unique_ptr<Cloud> cloud_;
  std::unique_ptr<edge::LogStreams> streams_;
  std::unique_ptr<Edge> edge_;
  std::unique_ptr<cloud::api::LogStreamer> streamer_;
  std::unique_ptr<cloud::api::ApiServer> api_;
};

// A blocking HTTPS/1.1 client on a raw socket: sends one GET, then reads only in read_for().
class HttpsReader {
 public:
  HttpsReader(uint16_t port, const std::string& target, const std::string& token = kLogsToken);
  ~HttpsReader();
  HttpsReader(const HttpsReader&) = delete;
  HttpsReader& operator=(const HttpsReader&) = delete;

  // Reads for up to `budget` (less when the connection ends); at most `max_bytes` off the socket.
  void read_for(std::chrono::milliseconds budget, size_t max_bytes = SIZE_MAX);
  // Reads until `done()` holds or the connection ends or `timeout` passes; whether done() held.
  bool read_until(const std::function<bool()>& done,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));

  int status() const { return status_; }
  const std::string& body() const { return body_; }  // de-chunked
  bool complete() const { return complete_; }        // the last chunk arrived
  bool closed() const { return closed_; }            // the connection ended
  size_t raw_bytes() const { return raw_total_; }

 private:
  void parse();

  int fd_ = -1;
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  std::string raw_;
  size_t raw_total_ = 0;
  bool headers_done_ = false;
  bool chunked_ = false;
  int status_ = 0;
  std::string body_;
  bool complete_ = false;
  bool closed_ = false;
};

}  // namespace gantry::test
