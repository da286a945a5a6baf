#include "common/net/tls.h"

#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <cstring>
#include <ctime>
#include <mutex>

namespace gantry::common {
namespace {

namespace ssl = boost::asio::ssl;

constexpr char kTls12Ciphers[] =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";
constexpr char kTls13Suites[] =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
constexpr unsigned char kSessionIdContext[] = "gantry";

int identity_ex_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

// 80 bytes of ticket keys (name, HMAC key, AES key) from SHA-512(label || key PEM).
bool set_ticket_keys_from(SSL_CTX* ctx, const std::string& key_pem) {
  unsigned char keys[80];
  unsigned char digest[64];
  unsigned int size = 0;
  for (int part = 0; part < 2; ++part) {
    const std::string input =
        fmt::format("gantry session ticket keys v1 part {}\n{}", part, key_pem);
    if (EVP_Digest(input.data(), input.size(), digest, &size, EVP_sha512(), nullptr) != 1)
      return false;
    std::memcpy(keys + part * 64, digest, part == 0 ? 64 : 16);
  }
  const bool ok = SSL_CTX_set_tlsext_ticket_keys(ctx, keys, sizeof(keys)) == 1;
  OPENSSL_cleanse(keys, sizeof(keys));
  OPENSSL_cleanse(digest, sizeof(digest));
  return ok;
}

int context_ex_index() {
  static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

std::optional<std::chrono::system_clock::time_point> asn1_time_point(const ASN1_TIME* time) {
  struct tm tm {};
  if (time == nullptr || ASN1_TIME_to_tm(time, &tm) != 1) return std::nullopt;
  return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string subject_common_name(X509* cert) {
  if (cert == nullptr) return "";
  X509_NAME* subject = X509_get_subject_name(cert);
  int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  unsigned char* utf8 = nullptr;
  int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) return "";
  std::string cn(reinterpret_cast<char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  return cn;
}

std::string remote_address_of(const SSL* ssl) {
  int fd = SSL_get_fd(ssl);
  if (fd < 0) return "";
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return "";
  if (addr.ss_family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&addr);
    boost::asio::ip::address_v4::bytes_type b;
    std::memcpy(b.data(), &in->sin_addr, b.size());
    return fmt::format("{}:{}", boost::asio::ip::address_v4(b).to_string(), ntohs(in->sin_port));
  }
  if (addr.ss_family == AF_INET6) {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    boost::asio::ip::address_v6::bytes_type b;
    std::memcpy(b.data(), &in6->sin6_addr, b.size());
    return fmt::format("[{}]:{}", boost::asio::ip::address_v6(b).to_string(),
                       ntohs(in6->sin6_port));
  }
  return "";
}

bool is_ip_literal(std::string_view host) {
  boost::system::error_code ec;
  boost::asio::ip::make_address(std::string(host), ec);
  return !ec;
}

}  // namespace

struct TlsContext::Impl {
  ssl::context context{ssl::context::tls};
  mutable std::mutex mu;
  SSL_SESSION* session = nullptr;  // client: the last session the server issued
  std::shared_ptr<const std::function<void(const TlsPeerRejection&)>> on_rejected;  // under mu
};

TlsContext::TlsContext(TlsRole role, TlsOptions options)
    : impl_(std::make_unique<Impl>()), role_(role), options_(std::move(options)) {}

TlsContext::~TlsContext() {
  if (impl_->session != nullptr) SSL_SESSION_free(impl_->session);
}

Result<std::shared_ptr<TlsContext>> TlsContext::create(TlsRole role, const TlsOptions& options) {
  std::shared_ptr<TlsContext> tls(new TlsContext(role, options));
  ssl::context& ctx = tls->impl_->context;
  SSL_CTX* native = ctx.native_handle();
  boost::system::error_code ec;

  ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                  ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1 |
                  ssl::context::no_compression);
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  // Idle connections give their ~34 KiB of record buffers back: the cloud holds 100,000 of them,
  // the fleet simulator 10,000+.
  SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1 ||
      SSL_CTX_set_ciphersuites(native, kTls13Suites) != 1) {
    return make_error(Code::kInternal, "TLS: OpenSSL rejected the cipher configuration");
  }

  if (!options.cert_pem.empty() || !options.key_pem.empty()) {
    ctx.use_certificate_chain(boost::asio::buffer(options.cert_pem), ec);
    if (ec) return make_error(Code::kInvalidArgument, "TLS certificate: {}", ec.message());
    ctx.use_private_key(boost::asio::buffer(options.key_pem), ssl::context::pem, ec);
    if (ec) return make_error(Code::kInvalidArgument, "TLS private key: {}", ec.message());
    if (SSL_CTX_check_private_key(native) != 1) {
      return make_error(Code::kInvalidArgument, "TLS private key does not match the certificate");
    }
  } else if (role == TlsRole::kServer) {
    return make_error(Code::kInvalidArgument, "a TLS server needs a certificate and a key");
  }

  const bool verify =
      options.verify_peer || (role == TlsRole::kServer && options.request_client_cert);
  if (verify) {
    if (options.ca_pem.empty()) {
      return make_error(Code::kInvalidArgument, "TLS peer verification needs a CA bundle");
    }
    ctx.add_certificate_authority(boost::asio::buffer(options.ca_pem), ec);
    if (ec) return make_error(Code::kInvalidArgument, "TLS CA bundle: {}", ec.message());
  }

  if (role == TlsRole::kServer) {
    int mode = ssl::verify_none;
    if (options.verify_peer) {
      mode = ssl::verify_peer | ssl::verify_fail_if_no_peer_cert;
    } else if (options.request_client_cert) {
      mode = ssl::verify_peer;
    }
    ctx.set_verify_mode(mode);
    SSL_CTX_set_verify(native, mode, &TlsContext::on_verify);
    SSL_CTX_set_ex_data(native, context_ex_index(), tls.get());
    // Resumption: a session cache for TLS 1.2 session ids, tickets (OpenSSL's default) for both.
    // The id context is what lets sessions with verified client certificates resume at all.
    SSL_CTX_set_session_cache_mode(native, SSL_SESS_CACHE_SERVER);
    SSL_CTX_sess_set_cache_size(native, 200000);
    SSL_CTX_set_session_id_context(native, kSessionIdContext, sizeof(kSessionIdContext) - 1);
    // Tickets that survive a restart: the ticket keys derive from the serving key, so the fleet
    // reconnecting after a cloudcore restart resumes its sessions (no certificate signature or
    // verification: a reconnect storm costs mostly ECDHE). They change when the serving key does.
    if (!set_ticket_keys_from(native, options.key_pem)) {
      return make_error(Code::kInternal, "TLS: OpenSSL refused the session ticket keys");
    }
  } else {
    ctx.set_verify_mode(options.verify_peer ? ssl::verify_peer : ssl::verify_none);
    // Sessions (TLS 1.3 tickets arrive after the handshake) are caught by the callback; OpenSSL
    // keeps none itself.
    SSL_CTX_set_session_cache_mode(native,
                                   SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_set_ex_data(native, context_ex_index(), tls.get());
    SSL_CTX_sess_set_new_cb(native, &TlsContext::on_new_session);
  }
  return tls;
}

Result<std::shared_ptr<TlsIdentity>> TlsIdentity::create(X509* cert, EVP_PKEY* key) {
  if (cert == nullptr || key == nullptr) {
    return make_error(Code::kInvalidArgument, "a TLS identity needs a certificate and a key");
  }
  if (X509_check_private_key(cert, key) != 1) {
    return make_error(Code::kInvalidArgument,
                      "TLS identity: the key does not match the certificate");
  }
  std::shared_ptr<TlsIdentity> identity(new TlsIdentity());
  X509_up_ref(cert);
  EVP_PKEY_up_ref(key);
  identity->cert_ = cert;
  identity->key_ = key;
  return identity;
}

TlsIdentity::~TlsIdentity() {
  if (session_ != nullptr) SSL_SESSION_free(session_);
  X509_free(cert_);
  EVP_PKEY_free(key_);
}

// A copy of the session is kept, not OpenSSL's object: OpenSSL marks a connection's session
// unresumable when the connection ends without close_notify (a cut link, a killed cloudcore:
// exactly when a fleet reconnects at once), and the copy stays resumable. (edgesim found it: no
// node resumed after a kill -9 of cloudcore.)
int TlsContext::on_new_session(SSL* ssl, SSL_SESSION* session) {
  SSL_SESSION* copy = SSL_SESSION_dup(session);
  if (copy == nullptr) return 0;
  if (auto* identity = static_cast<TlsIdentity*>(SSL_get_ex_data(ssl, identity_ex_index()))) {
    std::lock_guard lock(identity->mu_);
    if (identity->session_ != nullptr) SSL_SESSION_free(identity->session_);
    identity->session_ = copy;
    return 0;  // OpenSSL keeps (and frees) its own reference
  }
  auto* self =
      static_cast<TlsContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_ex_index()));
  if (self == nullptr) {
    SSL_SESSION_free(copy);
    return 0;
  }
  std::lock_guard lock(self->impl_->mu);
  if (self->impl_->session != nullptr) SSL_SESSION_free(self->impl_->session);
  self->impl_->session = copy;
  return 0;
}

int TlsContext::on_verify(int preverify_ok, X509_STORE_CTX* store) {
  if (preverify_ok == 1) return 1;
  auto* ssl =
      static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  if (ssl == nullptr) return 0;
  auto* self =
      static_cast<TlsContext*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), context_ex_index()));
  if (self == nullptr) return 0;
  std::shared_ptr<const std::function<void(const TlsPeerRejection&)>> handler;
  {
    std::lock_guard lock(self->impl_->mu);
    handler = self->impl_->on_rejected;
  }
  if (!handler || !*handler) return 0;
  // The client's own certificate, whichever certificate of its chain failed.
  X509* leaf = X509_STORE_CTX_get0_cert(store);
  const int error = X509_STORE_CTX_get_error(store);
  TlsPeerRejection rejection;
  rejection.common_name = subject_common_name(leaf);
  if (leaf != nullptr) {
    rejection.not_after =
        asn1_time_point(X509_get0_notAfter(leaf)).value_or(std::chrono::system_clock::time_point{});
  }
  rejection.expired = error == X509_V_ERR_CERT_HAS_EXPIRED;
  rejection.reason = X509_verify_cert_error_string(error);
  rejection.remote_address = remote_address_of(ssl);
  (*handler)(rejection);
  return 0;
}

void TlsContext::set_peer_rejected_handler(std::function<void(const TlsPeerRejection&)> handler) {
  auto shared =
      handler
          ? std::make_shared<const std::function<void(const TlsPeerRejection&)>>(std::move(handler))
          : nullptr;
  std::lock_guard lock(impl_->mu);
  impl_->on_rejected = std::move(shared);
}

ssl::context& TlsContext::native() {
  return impl_->context;
}

Status TlsContext::prepare_client(SSL* ssl, std::string_view host, TlsIdentity* identity) {
  const std::string name = options_.server_name.empty() ? std::string(host) : options_.server_name;
  if (options_.verify_peer) {
    if (is_ip_literal(name)) {
      if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), name.c_str()) != 1) {
        return make_error(Code::kInvalidArgument, "TLS: cannot verify IP address {}", name);
      }
    } else if (SSL_set1_host(ssl, name.c_str()) != 1) {
      return make_error(Code::kInvalidArgument, "TLS: cannot verify host name {}", name);
    }
  }
  if (!is_ip_literal(name) && !name.empty()) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (identity != nullptr) {
    // The identity outlives the SSL object: the connection holds it in its options.
    if (SSL_use_certificate(ssl, identity->cert_) != 1 ||
        SSL_use_PrivateKey(ssl, identity->key_) != 1) {
      return make_error(Code::kInvalidArgument, "TLS: cannot use the connection's certificate");
    }
    SSL_set_ex_data(ssl, identity_ex_index(), identity);
    std::lock_guard lock(identity->mu_);
    if (identity->session_ != nullptr) SSL_set_session(ssl, identity->session_);
    return ok_status();
  }
  std::lock_guard lock(impl_->mu);
  if (impl_->session != nullptr) SSL_set_session(ssl, impl_->session);
  return ok_status();
}

void TlsContext::forget_session() {
  std::lock_guard lock(impl_->mu);
  if (impl_->session != nullptr) SSL_SESSION_free(impl_->session);
  impl_->session = nullptr;
}

bool TlsContext::has_session() const {
  std::lock_guard lock(impl_->mu);
  return impl_->session != nullptr;
}

std::string peer_common_name(const SSL* ssl) {
  return subject_common_name(SSL_get0_peer_certificate(ssl));
}

std::optional<std::chrono::system_clock::time_point> peer_not_after(const SSL* ssl) {
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr) return std::nullopt;
  return asn1_time_point(X509_get0_notAfter(cert));
}

bool tls_session_resumed(const SSL* ssl) {
  return SSL_session_reused(ssl) == 1;
}

std::optional<std::string> node_name_from_common_name(std::string_view common_name) {
  constexpr std::string_view kPrefix = "system:node:";
  if (common_name.size() <= kPrefix.size() || common_name.substr(0, kPrefix.size()) != kPrefix) {
    return std::nullopt;
  }
  return std::string(common_name.substr(kPrefix.size()));
}

std::string describe_tls_failure(const SSL* ssl, std::string_view fallback) {
  if (ssl != nullptr) {
    long result = SSL_get_verify_result(ssl);
    if (result != X509_V_OK) {
      return fmt::format("certificate verification failed: {}",
                         X509_verify_cert_error_string(result));
    }
  }
  return std::string(fallback);
}

}  // namespace gantry::common
