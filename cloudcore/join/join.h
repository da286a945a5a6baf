// cloudcore/join: the endpoint new edge nodes use to get their certificate (:10002).
//   GET  /ca.crt          the cluster CA (PEM); the node checks it against its token's hash
//   POST /v1/certificates {csr, node_name, province, labels} + "Authorization: Bearer TOKEN"
//                         -> {certificate, ca}; creates the node object /nodes/NAME
// Every refusal is JSON {"reason": "...", "message": "..."} with a message the edge prints as is.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "cloudcore/store/store.h"
#include "common/base/clock.h"
#include "common/base/names.h"
#include "common/base/status.h"
#include "common/net/event_loop.h"
#include "common/net/http_server.h"
#include "common/net/tls.h"
#include "common/pki/pki.h"

namespace gantry::cloud {

// Annotation set on node objects made by a join. A join never takes over a node object it did not
// make: a name held by a node object (joined, connected, or created through the API) is refused,
// and so is a name pods are bound to.
inline constexpr const char* kJoinedAtAnnotation = "gantry.io/joined-at";

struct TokenBucketSpec {
  double per_second = 1;  // refill rate
  double burst = 5;       // bucket size
};

// Token buckets per client (IP address) and one for everyone. Thread-safe.
class JoinRateLimiter {
 public:
  JoinRateLimiter(const common::Clock& clock, TokenBucketSpec per_client, TokenBucketSpec global,
                  size_t max_clients = 100000);
  // nullopt: allowed (a token was taken). Otherwise how long to wait before retrying (>= 1 s).
  std::optional<std::chrono::seconds> acquire(const std::string& client);

 private:
  struct Bucket {
    double tokens = 0;
    std::chrono::steady_clock::time_point updated;
  };
  void refill(Bucket& bucket, const TokenBucketSpec& spec,
              std::chrono::steady_clock::time_point now) const;

  const common::Clock& clock_;
  TokenBucketSpec per_client_;
  TokenBucketSpec global_;
  size_t max_clients_;
  std::mutex mu_;
  Bucket global_bucket_;
  std::unordered_map<std::string, Bucket> clients_;
};

struct JoinOptions {
  std::chrono::seconds certificate_lifetime{365 * 24 * 3600};
  TokenBucketSpec per_client{0.5, 5};
  TokenBucketSpec global{20, 100};
  // How many pods are bound (spec.nodeName) to a node name (cloudcore: the registry). A join
  // refuses a name that pods are bound to: it never inherits them. Unset: not checked.
  std::function<size_t(const std::string& node)> pods_bound_to;
};

// What signs: the cluster CA and its key, and the token-signing key (the trimmed hex text of
// pki/token-signing.key, as gantryadm gettoken uses it).
struct JoinCredentials {
  common::Certificate ca;
  common::PrivateKey ca_key;
  std::string signing_key;
};

// Reads the three files; errors name the file.
common::Result<JoinCredentials> load_join_credentials(const std::filesystem::path& ca_cert,
                                                      const std::filesystem::path& ca_key,
                                                      const std::filesystem::path& signing_key);

// How far back a node certificate's notBefore is set: clock skew between cloudcore replicas, but
// at most a tenth of the lifetime, so that the edge's renewal point (a share of notBefore ..
// notAfter) stays where it should be for short test lifetimes.
std::chrono::seconds node_certificate_backdate(std::chrono::seconds lifetime);

// Renews node certificates over the tunnel (certificate rotation): same CA, same lifetime as a
// join. The node is the one the tunnel's TLS session names; the CSR must ask for exactly that
// CN. Thread-safe (the hub calls it from many sessions).
class NodeCertificateSigner {
 public:
  NodeCertificateSigner(JoinCredentials credentials, std::chrono::seconds lifetime,
                        const common::Clock& clock);
  // kInvalidArgument naming what is wrong with the CSR.
  common::Result<common::Certificate> sign(const std::string& node, std::string_view csr_pem) const;
  std::chrono::seconds lifetime() const { return lifetime_; }

 private:
  JoinCredentials credentials_;
  std::chrono::seconds lifetime_;
  const common::Clock& clock_;
};

// The request handling, without sockets (unit-tested directly).
class JoinService {
 public:
  JoinService(Store& store, JoinCredentials credentials, const common::Clock& clock,
              JoinOptions options);

  common::Response get_ca(common::Request& request) const;
  common::Response post_certificate(common::Request& request);
  // GET /ca.crt and POST /v1/certificates, bound to this service (which must outlive it).
  common::Router router();

 private:
  Store& store_;
  JoinCredentials credentials_;
  std::string ca_pem_;
  std::string ca_hash_;
  const common::Clock& clock_;
  JoinOptions options_;
  JoinRateLimiter limiter_;
};

// The HTTPS listener around a JoinService. TLS is server-only: joining nodes have no certificate.
class JoinServer {
 public:
  static common::Result<std::unique_ptr<JoinServer>> start(
      common::EventLoop& loop, std::shared_ptr<common::TlsContext> tls, Store& store,
      JoinCredentials credentials, const common::Clock& clock, JoinOptions options,
      common::HttpServerOptions http);
  ~JoinServer();

  uint16_t port() const;
  void stop();

 private:
  JoinServer() = default;
  std::unique_ptr<JoinService> service_;
  std::unique_ptr<common::HttpServer> server_;
};

// A Kubernetes node name: DNS-1123 subdomain (lowercase alphanumerics, '-', '.', at most 253).

using common::is_dns1123_subdomain;

}  // namespace gantry::cloud
