// TLS contexts for every Gantry listener and dialer: TLS 1.2+, ECDHE with AEAD ciphers only,
// optional mutual TLS, session resumption (server cache + tickets; the client offers its last
// session on reconnect).
#pragma once

#include <openssl/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace boost::asio::ssl {
class context;
}  // namespace boost::asio::ssl

namespace gantry::common {

struct TlsOptions {
  // Our own certificate (chain allowed) and key, PEM. Required for servers; optional for clients.
  std::string cert_pem;
  std::string key_pem;
  // CA bundle (PEM) used to verify the peer. Required when verify_peer is set.
  std::string ca_pem;
  // Server: require a client certificate signed by ca_pem (mutual TLS).
  // Client: verify the server's certificate chain against ca_pem (and its name, see below).
  bool verify_peer = true;
  // Server only: ask for a client certificate and verify it when sent, but do not require one.
  bool request_client_cert = false;
  // Client only: the name (DNS name or IP literal) the server certificate must carry; empty
  // means the host passed to connect. Also sent as SNI when it is a DNS name.
  std::string server_name;
};

enum class TlsRole { kServer, kClient };

// A client certificate a server refused in the TLS handshake (see set_peer_rejected_handler).
struct TlsPeerRejection {
  std::string common_name;  // of the client's own certificate
  std::chrono::system_clock::time_point not_after;
  bool expired = false;        // the reason is the certificate's (or its chain's) expiry
  std::string reason;          // OpenSSL's verification result, for a person
  std::string remote_address;  // "127.0.0.1:51234", "" when unknown
};

// A client certificate and key for one connection, overriding the context's own, with the TLS
// session that identity last got (a session is resumed only by the identity it was issued to).
// Lets one client TlsContext serve many identities, as the fleet simulator does.
class TlsIdentity {
 public:
  static Result<std::shared_ptr<TlsIdentity>> create(X509* cert, EVP_PKEY* key);  // refs taken
  ~TlsIdentity();
  TlsIdentity(const TlsIdentity&) = delete;
  TlsIdentity& operator=(const TlsIdentity&) = delete;

 private:
  friend class TlsContext;
  TlsIdentity() = default;
  X509* cert_ = nullptr;
  EVP_PKEY* key_ = nullptr;
  std::mutex mu_;
  struct ssl_session_st* session_ = nullptr;
};

// An ssl::context plus, for clients, the last session the server gave us (offered again on the
// next connection so that reconnects skip the full handshake). Thread-safe; shared by many
// connections.
class TlsContext {
 public:
  static Result<std::shared_ptr<TlsContext>> create(TlsRole role, const TlsOptions& options);
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  TlsRole role() const { return role_; }
  const TlsOptions& options() const { return options_; }
  boost::asio::ssl::context& native();

  // Client: prepares `ssl` before the handshake (SNI, name verification, cached session). With
  // an identity, its certificate and key are used and its own session is offered.
  Status prepare_client(SSL* ssl, std::string_view host, TlsIdentity* identity = nullptr);
  // Server: `handler` is told about every client certificate that fails verification, on the
  // handshaking thread (so that the application can log who was refused and why; the TLS alert
  // alone tells the client little). Thread-safe; an empty function removes it.
  void set_peer_rejected_handler(std::function<void(const TlsPeerRejection&)> handler);

  // Client: drops the cached session (e.g. after the server refused it).
  void forget_session();
  bool has_session() const;

 private:
  TlsContext(TlsRole role, TlsOptions options);
  static int on_new_session(SSL* ssl, struct ssl_session_st* session);
  static int on_verify(int preverify_ok, struct x509_store_ctx_st* store);

  struct Impl;
  std::unique_ptr<Impl> impl_;
  TlsRole role_;
  TlsOptions options_;
};

// The peer certificate's subject CN, "" when there is no peer certificate or no CN.
std::string peer_common_name(const SSL* ssl);
// The peer certificate's notAfter; nullopt without a peer certificate.
std::optional<std::chrono::system_clock::time_point> peer_not_after(const SSL* ssl);
// Whether the handshake on `ssl` resumed a previous session.
bool tls_session_resumed(const SSL* ssl);
// "system:node:edge-01" -> "edge-01"; nullopt for any other CN.
std::optional<std::string> node_name_from_common_name(std::string_view common_name);

// A description of the last TLS failure on `ssl` a person can act on: the certificate
// verification result when verification failed, otherwise `fallback` (OpenSSL's reason).
std::string describe_tls_failure(const SSL* ssl, std::string_view fallback);

}  // namespace gantry::common
