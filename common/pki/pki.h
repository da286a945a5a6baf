// Keys, certificates, CSRs, CA signing and join tokens on OpenSSL 3.0. Every OpenSSL object is
// owned by an RAII wrapper; failures come back as Status with OpenSSL's own error text.
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/parse.h"
#include "common/base/status.h"

namespace gantry::common {

struct EvpPkeyFree {
  void operator()(EVP_PKEY* key) const;
};
using EvpPkeyPtr = std::unique_ptr<EVP_PKEY, EvpPkeyFree>;

// An ECDSA P-256 private key. Move-only.
class PrivateKey {
 public:
  static Result<PrivateKey> generate();
  // Accepts an unencrypted PEM EC private key (PKCS#8 or SEC1).
  static Result<PrivateKey> from_pem(std::string_view pem);

  // Unencrypted PKCS#8 ("BEGIN PRIVATE KEY").
  std::string to_pem() const;
  EVP_PKEY* get() const { return key_.get(); }

 private:
  explicit PrivateKey(EvpPkeyPtr key) : key_(std::move(key)) {}
  EvpPkeyPtr key_;
};

// An X.509 certificate. Copies share the same immutable X509 (reference counted).
class Certificate {
 public:
  static Result<Certificate> from_pem(std::string_view pem);
  // All certificates in a PEM bundle, in order; at least one.
  static Result<std::vector<Certificate>> bundle_from_pem(std::string_view pem);

  // Takes ownership of `x509`.
  explicit Certificate(X509* x509) : x509_(x509) {}
  Certificate(const Certificate& other);
  Certificate& operator=(const Certificate& other);
  Certificate(Certificate&& other) noexcept : x509_(std::exchange(other.x509_, nullptr)) {}
  Certificate& operator=(Certificate&& other) noexcept;
  ~Certificate();

  std::string to_pem() const;
  std::string der() const;
  std::string common_name() const;  // "" when the subject has no CN
  std::vector<std::string> dns_names() const;
  std::vector<std::string> ip_addresses() const;  // "127.0.0.1", "::1"
  std::chrono::system_clock::time_point not_before() const;
  std::chrono::system_clock::time_point not_after() const;
  bool is_ca() const;  // basicConstraints CA:TRUE
  std::string serial_hex() const;
  EVP_PKEY* public_key() const;  // borrowed
  X509* get() const { return x509_; }

 private:
  X509* x509_ = nullptr;
};

struct CertificateSpec {
  std::string common_name;
  std::vector<std::string> dns_names;
  std::vector<std::string> ip_addresses;  // "127.0.0.1", "::1"
  std::chrono::seconds lifetime{365 * 24 * 3600};
  std::chrono::seconds backdate{300};  // not_before = now - backdate (clock skew)
  bool server_auth = true;
  bool client_auth = true;
  // The issue time; unset means system_clock::now(). Lets tests mint certificates at fixed times.
  std::optional<std::chrono::system_clock::time_point> now;
};

// A self-signed CA certificate (CA:TRUE, pathlen 0, keyCertSign + cRLSign), backdated 5 minutes.
Result<Certificate> create_ca(const PrivateKey& key, std::string_view common_name,
                              std::chrono::seconds lifetime);

// Issues a certificate for `subject_public_key` (only its public part is used), signed by the CA.
Result<Certificate> issue_certificate(const EVP_PKEY* subject_public_key,
                                      const CertificateSpec& spec, const Certificate& ca,
                                      const PrivateKey& ca_key);

// A PEM CSR for `key` with subject CN=common_name.
Result<std::string> create_csr(const PrivateKey& key, std::string_view common_name);

struct CsrInfo {
  std::string common_name;
  EvpPkeyPtr public_key;
};
// Parses a PEM CSR and verifies its self-signature (proof of possession of the key).
Result<CsrInfo> read_csr(std::string_view csr_pem);

// Signs a CSR with the CA; the signer decides the subject (spec), the CSR only gives the key.
Result<Certificate> sign_csr(std::string_view csr_pem, const CertificateSpec& spec,
                             const Certificate& ca, const PrivateKey& ca_key);

// Chain check of `cert` against `roots` at time `at`. kUnauthenticated with OpenSSL's reason.
Status verify_certificate(const Certificate& cert, const std::vector<Certificate>& roots,
                          std::chrono::system_clock::time_point at);

// hex(sha256(DER)), lowercase.
std::string ca_hash(const Certificate& ca);

// Join tokens: hex(sha256(CA DER)) "." payload "." mac, where payload is base64url (no padding)
// of {"exp":<unix seconds>,"id":"...","province":"..."} and mac is
// base64url(HMAC-SHA256(signing_key, ca_hash "." payload)).
struct JoinTokenClaims {
  std::chrono::system_clock::time_point expires;
  std::string province;  // empty: any province
  std::string id;        // empty in make_join_token: a random one is chosen
};
std::string make_join_token(std::string_view ca_hash_hex, const JoinTokenClaims& claims,
                            std::string_view signing_key);

// Reads the CA hash and claims WITHOUT checking the MAC (the joining edge has no key; it uses the
// hash to check the CA it downloaded). Malformed input -> kInvalidArgument naming what is wrong.
Result<std::pair<std::string, JoinTokenClaims>> parse_join_token(std::string_view token);

// Full check on the cloud: malformed -> kInvalidArgument; another CA -> kPermissionDenied;
// bad MAC -> kUnauthenticated; expired -> kDeadlineExceeded (the message names the expiry time).
Result<JoinTokenClaims> verify_join_token(std::string_view token, std::string_view expected_ca_hash,
                                          std::string_view signing_key,
                                          std::chrono::system_clock::time_point now);

// `bytes` random bytes from RAND_bytes, lowercase hex (2 * bytes characters).
std::string random_hex(size_t bytes);

// base64url_encode/decode and format_rfc3339 are in common/base/parse.h (included above).

}  // namespace gantry::common
