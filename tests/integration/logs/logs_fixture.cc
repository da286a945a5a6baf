#include "tests/integration/logs/logs_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "cloudcore/hub/hub.h"
#include "cloudcore/hub/hub_log_streamer.h"

namespace gantry::test {

LogsCluster::LogsCluster(edge::LogStreamsOptions streams, cloud::HubOptions hub) {
  cloud_ = std::make_unique<Cloud>(cluster_, dir_ / "cloud", hub);
  cloud_->start();
  put_pod(cloud_->store(), "web", "edge-1");

  streams_ = std::make_unique<edge::LogStreams>(
      [this](const v1::LogRequest& r) -> common::Result<edge::LogTarget> {
        std::lock_guard lock(mu_);
        if (r.namespace_() != "default" || r.pod() != "web")
          return common::make_error(common::Code::kNotFound, "pod {}/{} is not on this node",
                                    r.namespace_(), r.pod());
        auto it = containers_.find(r.container());
        if (it == containers_.end())
          return common::make_error(common::Code::kNotFound,
                                    "container \"{}\" in pod default/web not found", r.container());
        return it->second;
      },
      clock_, streams);
  edge_loop_.run();
  edge_ = std::make_unique<Edge>(cluster_, edge_loop_, "edge-1", dir_ / "edge");
  start_edge();

  auto pem = cluster_.issue("gantry-api");
  common::TlsOptions tls;
  tls.cert_pem = pem.cert;
  tls.key_pem = pem.key;
  tls.ca_pem = cluster_.ca_pem();
  tls.verify_peer = false;
  auto server_tls = common::TlsContext::create(common::TlsRole::kServer, tls);
  REQUIRE(server_tls.ok());
  auto tokens = cloud::api::TokenAuthenticator::parse(std::string(kLogsToken) +
                                                      ",admin,1,\"system:masters\"\n");
  REQUIRE(tokens.ok());
  streamer_ = std::make_unique<cloud::HubLogStreamer>(cloud_->hub());
  cloud::api::ApiServerOptions options;
  options.address = "127.0.0.1";
  options.port = 0;
  options.logs = streamer_.get();
  api_loop_.run();
  auto api =
      cloud::api::ApiServer::start(api_loop_, *server_tls, cloud_->store(), cloud_->registry(),
                                   clock_, std::move(tokens).value(), options);
  REQUIRE(api.ok());
  api_ = std::move(api).value();
  REQUIRE(eventually([&] { return edge_->connected() && cloud_->hub().connected("edge-1"); }));
}

void LogsCluster::start_edge() {
  auto options = Edge::default_options();
  options.streams = streams_.get();
  edge_->start(cloud_->port(), options);
}

LogsCluster::~LogsCluster() {
  api_->stop();
  edge_->stop();
  cloud_->stop();
  api_loop_.stop();
  edge_loop_.stop();
}

std::string LogsCluster::write_kubeconfig() {
  auto ca = dir_ / "ca.crt";
  std::ofstream(ca) << cluster_.ca_pem();
  auto path = dir_ / "kubeconfig";
  std::ofstream(path) << "apiVersion: v1\nkind: Config\nclusters:\n- name: gantry\n  cluster:\n"
                      << "    server: https://127.0.0.1:" << api_port()
                      << "\n    certificate-authority: " << ca.string()
                      << "\nusers:\n- name: admin\n  user:\n    token: " << kLogsToken
                      << "\ncontexts:\n- name: gantry\n  context:\n    cluster: gantry\n"
                      << "    user: admin\ncurrent-context: gantry\n";
  return path.string();
}

void LogsCluster::set_container(const std::string& container, const std::string& path,
                                bool running) {
  std::lock_guard lock(mu_);
  containers_[container] = {path, running};
}

void LogsCluster::remove_container(const std::string& container) {
  std::lock_guard lock(mu_);
  containers_.erase(container);
}

HttpsReader::HttpsReader(uint16_t port, const std::string& target, const std::string& token) {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd_ >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  timeval tv{0, 50'000};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ctx_ = SSL_CTX_new(TLS_client_method());
  REQUIRE(ctx_ != nullptr);
  ssl_ = SSL_new(ctx_);
  SSL_set_fd(ssl_, fd_);
  int rc;
  while ((rc = SSL_connect(ssl_)) != 1) {
    REQUIRE(SSL_get_error(ssl_, rc) == SSL_ERROR_WANT_READ);  // the receive timeout
  }
  std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " +
                        token + "\r\nConnection: close\r\n\r\n";
  REQUIRE(SSL_write(ssl_, request.data(), static_cast<int>(request.size())) ==
          static_cast<int>(request.size()));
}

HttpsReader::~HttpsReader() {
  if (ssl_) SSL_free(ssl_);
  if (ctx_) SSL_CTX_free(ctx_);
  if (fd_ >= 0) ::close(fd_);
}

void HttpsReader::read_for(std::chrono::milliseconds budget, size_t max_bytes) {
  auto deadline = std::chrono::steady_clock::now() + budget;
  size_t got = 0;
  char buf[16384];
  while (!closed_ && got < max_bytes && std::chrono::steady_clock::now() < deadline) {
    int want = static_cast<int>(std::min(sizeof(buf), max_bytes - got));
    int n = SSL_read(ssl_, buf, want);
    if (n > 0) {
      raw_.append(buf, static_cast<size_t>(n));
      raw_total_ += static_cast<size_t>(n);
      got += static_cast<size_t>(n);
      parse();
      continue;
    }
    int err = SSL_get_error(ssl_, n);
    if (err == SSL_ERROR_WANT_READ) {
      ERR_clear_error();
      if (complete_) break;
      continue;
    }
    closed_ = true;  // close_notify, reset or EOF
  }
}

bool HttpsReader::read_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done() && !closed_ && std::chrono::steady_clock::now() < deadline) {
    read_for(std::chrono::milliseconds(100));
  }
  return done();
}

void HttpsReader::parse() {
  if (!headers_done_) {
    size_t end = raw_.find("\r\n\r\n");
    if (end == std::string::npos) return;
    std::string head = raw_.substr(0, end);
    raw_.erase(0, end + 4);
    headers_done_ = true;
    status_ = std::atoi(head.substr(head.find(' ') + 1, 3).c_str());
    std::string lower;
    for (char c : head) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    chunked_ = lower.find("transfer-encoding: chunked") != std::string::npos;
  }
  if (!chunked_) {
    body_ += raw_;
    raw_.clear();
    return;
  }
  while (!complete_) {
    size_t eol = raw_.find("\r\n");
    if (eol == std::string::npos) return;
    size_t size = std::strtoul(raw_.substr(0, eol).c_str(), nullptr, 16);
    if (size == 0) {
      complete_ = true;
      raw_.clear();
      return;
    }
    if (raw_.size() < eol + 2 + size + 2) return;
    body_.append(raw_, eol + 2, size);
    raw_.erase(0, eol + 2 + size + 2);
  }
}

}  // namespace gantry::test
