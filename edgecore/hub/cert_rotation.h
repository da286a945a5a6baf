// The node's client certificate: loads it with its key (finishing or discarding a rotation a power
// cut interrupted), builds the TLS context the tunnel dials with, decides when to renew (at a
// random point between 70% and 90% of the certificate's lifetime), makes the new key and CSR, and
// installs the certificate the cloud signs: checked against the new key, the CA and the node name,
// then written durably with its key as a pair. No I/O besides the files: EdgeHub sends the
// request over the tunnel and hands back the answer. Not thread-safe (EdgeHub holds its lock).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

// common/net/tls.h names SSL_SESSION without declaring it.
#include <openssl/ssl.h>

#include "common/base/clock.h"
#include "common/base/status.h"
#include "common/net/tls.h"
#include "common/pki/pki.h"
#include "gantry/v1/tunnel.pb.h"

namespace gantry::edge {

struct CertRotationOptions {
  std::string node_name;
  std::filesystem::path cert_file;  // tls.cert
  std::filesystem::path key_file;   // tls.key
  std::filesystem::path ca_file;    // tls.ca
  // Renew over the tunnel (edgecore.yaml rotation.enabled). Off: the certificate is only checked
  // for expiry.
  bool enabled = true;
  // The renewal point is drawn uniformly in [window_start, window_end] of the lifetime.
  double window_start = 0.7;
  double window_end = 0.9;
  // After a refused or unanswered request: retry after a tenth of the time left before expiry,
  // jittered (x0.5-1.5), between these bounds.
  std::chrono::milliseconds retry_min{std::chrono::seconds(1)};
  std::chrono::milliseconds retry_max{std::chrono::minutes(5)};
};

// The pending renewal's files: the new key and certificate are written here first, then renamed
// over the real ones (key first). See CertRotation::load.
std::filesystem::path next_file(const std::filesystem::path& file);

class CertRotation {
 public:
  // Reads the certificate, key and CA. A `.next` pair left by an interrupted rotation is finished
  // when complete and consistent, discarded otherwise, so that the files on disk always form a
  // matching pair. Errors name the file.
  static common::Result<std::unique_ptr<CertRotation>> load(CertRotationOptions options,
                                                            const common::Clock& clock,
                                                            common::Random& random);

  // The TLS context with the current certificate and key (new connections use it; open ones
  // keep theirs).
  const std::shared_ptr<common::TlsContext>& tls() const { return tls_; }
  const common::Certificate& certificate() const { return cert_; }
  bool enabled() const { return options_.enabled; }
  bool expired() const;
  // When to ask for a new certificate (system time): drawn once per certificate.
  std::chrono::system_clock::time_point renew_at() const { return renew_at_; }

  // Before a connect. If the certificate expired, the files are read again first (an operator may
  // have replaced them); still expired: kDeadlineExceeded with the message to log. Other errors:
  // the files changed and cannot be used (the current pair stays in use).
  common::Status check_before_connect();

  // A new P-256 key and the CertificateRequest frame for it (CN system:node:NAME). The key stays
  // in memory until the answer; a second call replaces it.
  common::Result<v1::Frame> make_request();
  bool request_pending() const { return pending_key_.has_value(); }
  // The request went unanswered (the connection dropped, a timeout): forget its key.
  void abandon_request() { pending_key_.reset(); }

  // The cloud's answer. OK: the new certificate and key are on disk and in tls(). An error
  // (refused by the cloud, or a certificate that is not for our key, node or CA) changes nothing.
  common::Status on_response(const v1::CertificateResponse& response);

  // How long to wait before asking again after a failure (see CertRotationOptions).
  std::chrono::milliseconds retry_delay();

 private:
  CertRotation(CertRotationOptions options, const common::Clock& clock, common::Random& random)
      : options_(std::move(options)), clock_(clock), random_(random) {}
  // Reads the files (after recovering a rotation) and builds the TLS context.
  common::Status reload();
  common::Status install(common::Certificate cert, common::PrivateKey key);
  void draw_renew_at();

  CertRotationOptions options_;
  const common::Clock& clock_;
  common::Random& random_;
  std::string ca_pem_;
  std::vector<common::Certificate> roots_;
  common::Certificate cert_{nullptr};
  std::shared_ptr<common::TlsContext> tls_;
  std::chrono::system_clock::time_point renew_at_;
  std::optional<common::PrivateKey> pending_key_;
};

}  // namespace gantry::edge
