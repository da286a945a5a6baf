#include "common/pki/pki.h"

#include <arpa/inet.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/base/json.h"

namespace gantry::common {
namespace {

using Clock = std::chrono::system_clock;

template <auto Fn>
struct Deleter {
  template <typename T>
  void operator()(T* p) const {
    Fn(p);
  }
};
using BioPtr = std::unique_ptr<BIO, Deleter<BIO_free_all>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509_free>>;
using X509ReqPtr = std::unique_ptr<X509_REQ, Deleter<X509_REQ_free>>;
using X509ExtPtr = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION_free>>;
using X509StorePtr = std::unique_ptr<X509_STORE, Deleter<X509_STORE_free>>;
using X509StoreCtxPtr = std::unique_ptr<X509_STORE_CTX, Deleter<X509_STORE_CTX_free>>;
using BignumPtr = std::unique_ptr<BIGNUM, Deleter<BN_free>>;
using Asn1IntegerPtr = std::unique_ptr<ASN1_INTEGER, Deleter<ASN1_INTEGER_free>>;
using Asn1OctetStringPtr = std::unique_ptr<ASN1_OCTET_STRING, Deleter<ASN1_OCTET_STRING_free>>;
using GeneralNamesPtr = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES_free>>;
using GeneralNamePtr = std::unique_ptr<GENERAL_NAME, Deleter<GENERAL_NAME_free>>;

constexpr std::chrono::seconds kCaBackdate{300};

// Drains OpenSSL's thread-local error queue into one readable string.
std::string drain_openssl_errors() {
  std::string text;
  char buf[256];
  while (unsigned long err = ERR_get_error()) {
    ERR_error_string_n(err, buf, sizeof buf);
    if (!text.empty()) text += "; ";
    text += buf;
  }
  return text.empty() ? "no OpenSSL error recorded" : text;
}

Status openssl_error(Code code, std::string_view what) {
  return make_error(code, "{}: {}", what, drain_openssl_errors());
}

BioPtr memory_bio(std::string_view data) {
  return BioPtr(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
}

std::string bio_contents(BIO* bio) {
  char* data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

// Never prompt on a terminal for a passphrase: encrypted keys are simply rejected.
int no_passphrase(char*, int, int, void*) {
  return 0;
}

std::string to_hex(const unsigned char* data, size_t len) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    out += kDigits[data[i] >> 4];
    out += kDigits[data[i] & 0xf];
  }
  return out;
}

Clock::time_point asn1_time_point(const ASN1_TIME* t) {
  std::tm tm{};
  if (t == nullptr || ASN1_TIME_to_tm(t, &tm) != 1) return Clock::time_point{};
  return Clock::from_time_t(timegm(&tm));
}

std::string asn1_string_utf8(const ASN1_STRING* s) {
  unsigned char* out = nullptr;
  int len = ASN1_STRING_to_UTF8(&out, s);
  if (len < 0) return {};
  std::string result(reinterpret_cast<char*>(out), static_cast<size_t>(len));
  OPENSSL_free(out);
  return result;
}

std::string name_common_name(const X509_NAME* name) {
  if (name == nullptr) return {};
  int idx = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (idx < 0) return {};
  const X509_NAME_ENTRY* entry = X509_NAME_get_entry(name, idx);
  return asn1_string_utf8(X509_NAME_ENTRY_get_data(entry));
}

Status set_common_name(X509_NAME* name, std::string_view common_name) {
  if (common_name.empty() || common_name.size() > 64) {
    return make_error(Code::kInvalidArgument,
                      "common name must be 1 to 64 characters, got {} characters",
                      common_name.size());
  }
  if (X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(common_name.data()),
                                 static_cast<int>(common_name.size()), -1, 0) != 1) {
    return openssl_error(Code::kInvalidArgument, "setting the common name");
  }
  return ok_status();
}

Status set_random_serial(X509* x509) {
  // 16 random bytes with the top bit cleared: positive and within the 20-octet limit (RFC 5280).
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) return openssl_error(Code::kInternal, "RAND_bytes");
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01 << 6;  // keeps the encoding a full 16 bytes
  BignumPtr bn(BN_bin2bn(bytes, sizeof bytes, nullptr));
  if (!bn) return openssl_error(Code::kInternal, "BN_bin2bn");
  Asn1IntegerPtr serial(BN_to_ASN1_INTEGER(bn.get(), nullptr));
  if (!serial || X509_set_serialNumber(x509, serial.get()) != 1) {
    return openssl_error(Code::kInternal, "setting the serial number");
  }
  return ok_status();
}

Status set_validity(X509* x509, Clock::time_point now, std::chrono::seconds backdate,
                    std::chrono::seconds lifetime) {
  if (lifetime.count() <= 0) {
    return make_error(Code::kInvalidArgument, "certificate lifetime must be positive, got {}s",
                      lifetime.count());
  }
  if (backdate.count() < 0) {
    return make_error(Code::kInvalidArgument, "certificate backdate must not be negative");
  }
  time_t not_before = Clock::to_time_t(now - backdate);
  time_t not_after = Clock::to_time_t(now + lifetime);
  if (ASN1_TIME_set(X509_getm_notBefore(x509), not_before) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(x509), not_after) == nullptr) {
    return openssl_error(Code::kInternal, "setting the validity period");
  }
  return ok_status();
}

Status add_ext(X509* x509, X509V3_CTX* ctx, int nid, const char* value) {
  X509ExtPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(x509, ext.get(), -1) != 1) {
    return openssl_error(Code::kInternal,
                         fmt::format("adding extension {}={}", OBJ_nid2sn(nid), value));
  }
  return ok_status();
}

bool valid_dns_name(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '*' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Status add_subject_alt_names(X509* x509, const CertificateSpec& spec) {
  if (spec.dns_names.empty() && spec.ip_addresses.empty()) return ok_status();
  GeneralNamesPtr names(sk_GENERAL_NAME_new_null());
  if (!names) return openssl_error(Code::kInternal, "allocating subjectAltName");
  for (const std::string& dns : spec.dns_names) {
    if (!valid_dns_name(dns)) {
      return make_error(Code::kInvalidArgument, "'{}' is not a valid DNS name", dns);
    }
    GeneralNamePtr gn(GENERAL_NAME_new());
    ASN1_IA5STRING* ia5 = ASN1_IA5STRING_new();
    if (!gn || ia5 == nullptr ||
        ASN1_STRING_set(ia5, dns.data(), static_cast<int>(dns.size())) != 1) {
      ASN1_IA5STRING_free(ia5);
      return openssl_error(Code::kInternal, "encoding a DNS name");
    }
    GENERAL_NAME_set0_value(gn.get(), GEN_DNS, ia5);
    if (sk_GENERAL_NAME_push(names.get(), gn.get()) == 0) {
      return openssl_error(Code::kInternal, "adding a DNS name");
    }
    (void)gn.release();  // owned by `names` now
  }
  for (const std::string& ip : spec.ip_addresses) {
    Asn1OctetStringPtr octets(a2i_IPADDRESS(ip.c_str()));
    if (!octets) {
      ERR_clear_error();
      return make_error(Code::kInvalidArgument, "'{}' is not a valid IP address", ip);
    }
    GeneralNamePtr gn(GENERAL_NAME_new());
    if (!gn) return openssl_error(Code::kInternal, "allocating an IP address name");
    GENERAL_NAME_set0_value(gn.get(), GEN_IPADD, octets.release());
    if (sk_GENERAL_NAME_push(names.get(), gn.get()) == 0) {
      return openssl_error(Code::kInternal, "adding an IP address");
    }
    (void)gn.release();
  }
  if (X509_add1_ext_i2d(x509, NID_subject_alt_name, names.get(), 0, X509V3_ADD_DEFAULT) != 1) {
    return openssl_error(Code::kInternal, "adding subjectAltName");
  }
  return ok_status();
}

bool key_matches_certificate(const Certificate& cert, const PrivateKey& key) {
  bool match = X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  return match;
}

// Builds, extends and signs a certificate for `subject_key`. `ca` is null for a self-signed CA.
Result<Certificate> build_certificate(const EVP_PKEY* subject_key, std::string_view common_name,
                                      const Certificate* ca, const PrivateKey& signing_key,
                                      Clock::time_point now, std::chrono::seconds backdate,
                                      std::chrono::seconds lifetime,
                                      const CertificateSpec* leaf_spec) {
  X509Ptr x509(X509_new());
  if (!x509) return openssl_error(Code::kInternal, "X509_new");
  if (X509_set_version(x509.get(), X509_VERSION_3) != 1) {
    return openssl_error(Code::kInternal, "X509_set_version");
  }
  GANTRY_RETURN_IF_ERROR(set_random_serial(x509.get()));
  GANTRY_RETURN_IF_ERROR(set_validity(x509.get(), now, backdate, lifetime));
  GANTRY_RETURN_IF_ERROR(set_common_name(X509_get_subject_name(x509.get()), common_name));
  const X509_NAME* issuer_name =
      ca != nullptr ? X509_get_subject_name(ca->get()) : X509_get_subject_name(x509.get());
  if (X509_set_issuer_name(x509.get(), issuer_name) != 1) {
    return openssl_error(Code::kInternal, "X509_set_issuer_name");
  }
  // X509_set_pubkey only encodes the public half and does not modify the key.
  if (X509_set_pubkey(x509.get(), const_cast<EVP_PKEY*>(subject_key)) != 1) {
    return openssl_error(Code::kInvalidArgument, "setting the subject public key");
  }

  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, ca != nullptr ? ca->get() : x509.get(), x509.get(), nullptr, nullptr, 0);
  if (leaf_spec == nullptr) {
    GANTRY_RETURN_IF_ERROR(
        add_ext(x509.get(), &ctx, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
    GANTRY_RETURN_IF_ERROR(
        add_ext(x509.get(), &ctx, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature"));
  } else {
    GANTRY_RETURN_IF_ERROR(add_ext(x509.get(), &ctx, NID_basic_constraints, "critical,CA:FALSE"));
    GANTRY_RETURN_IF_ERROR(add_ext(x509.get(), &ctx, NID_key_usage, "critical,digitalSignature"));
    std::string eku;
    if (leaf_spec->server_auth) eku = "serverAuth";
    if (leaf_spec->client_auth) eku += eku.empty() ? "clientAuth" : ",clientAuth";
    if (!eku.empty()) {
      GANTRY_RETURN_IF_ERROR(add_ext(x509.get(), &ctx, NID_ext_key_usage, eku.c_str()));
    }
    GANTRY_RETURN_IF_ERROR(add_subject_alt_names(x509.get(), *leaf_spec));
  }
  // The subject key identifier must exist before a self-signed CA can name itself as authority.
  GANTRY_RETURN_IF_ERROR(add_ext(x509.get(), &ctx, NID_subject_key_identifier, "hash"));
  GANTRY_RETURN_IF_ERROR(add_ext(x509.get(), &ctx, NID_authority_key_identifier, "keyid:always"));

  if (X509_sign(x509.get(), signing_key.get(), EVP_sha256()) <= 0) {
    return openssl_error(Code::kInternal, "signing the certificate");
  }
  return Certificate(x509.release());
}

Status check_issuer(const Certificate& ca, const PrivateKey& ca_key) {
  if (ca.get() == nullptr || ca_key.get() == nullptr) {
    return make_error(Code::kInvalidArgument, "no CA certificate or key given");
  }
  if (!ca.is_ca()) {
    return make_error(Code::kInvalidArgument, "certificate '{}' is not a CA", ca.common_name());
  }
  if (!key_matches_certificate(ca, ca_key)) {
    return make_error(Code::kInvalidArgument, "the CA key does not belong to CA certificate '{}'",
                      ca.common_name());
  }
  return ok_status();
}

Status malformed(std::string_view what) {
  return make_error(Code::kInvalidArgument, "join token is malformed: {}", what);
}

std::string token_mac(std::string_view signed_part, std::string_view signing_key) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  if (HMAC(EVP_sha256(), signing_key.data(), static_cast<int>(signing_key.size()),
           reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), mac,
           &mac_len) == nullptr) {
    // HMAC-SHA256 over memory cannot fail short of a broken library; refuse every token then.
    std::fprintf(stderr, "HMAC-SHA256 failed: %s\n", drain_openssl_errors().c_str());
    std::abort();
  }
  return std::string(reinterpret_cast<char*>(mac), mac_len);
}

bool is_lower_hex(std::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

void EvpPkeyFree::operator()(EVP_PKEY* key) const {
  EVP_PKEY_free(key);
}

// ---- PrivateKey ----

Result<PrivateKey> PrivateKey::generate() {
  EvpPkeyPtr key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return openssl_error(Code::kInternal, "generating a P-256 key");
  return PrivateKey(std::move(key));
}

Result<PrivateKey> PrivateKey::from_pem(std::string_view pem) {
  BioPtr bio = memory_bio(pem);
  if (!bio) return openssl_error(Code::kInternal, "BIO_new_mem_buf");
  EvpPkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr));
  if (!key) return openssl_error(Code::kInvalidArgument, "reading a PEM private key");
  if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC) {
    return make_error(Code::kInvalidArgument, "private key is {}, expected an EC (P-256) key",
                      OBJ_nid2sn(EVP_PKEY_get_base_id(key.get())));
  }
  return PrivateKey(std::move(key));
}

std::string PrivateKey::to_pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !key_ ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    ERR_clear_error();
    return {};
  }
  return bio_contents(bio.get());
}

// ---- Certificate ----

Result<Certificate> Certificate::from_pem(std::string_view pem) {
  BioPtr bio = memory_bio(pem);
  if (!bio) return openssl_error(Code::kInternal, "BIO_new_mem_buf");
  X509* x509 = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr);
  if (x509 == nullptr) return openssl_error(Code::kInvalidArgument, "reading a PEM certificate");
  return Certificate(x509);
}

Result<std::vector<Certificate>> Certificate::bundle_from_pem(std::string_view pem) {
  BioPtr bio = memory_bio(pem);
  if (!bio) return openssl_error(Code::kInternal, "BIO_new_mem_buf");
  std::vector<Certificate> certs;
  ERR_clear_error();
  while (true) {
    X509* x509 = PEM_read_bio_X509(bio.get(), nullptr, no_passphrase, nullptr);
    if (x509 == nullptr) break;
    certs.emplace_back(x509);
  }
  // Running out of PEM blocks ends the loop with "no start line"; anything else is a bad block.
  unsigned long err = ERR_peek_last_error();
  bool clean_end =
      err == 0 || (ERR_GET_LIB(err) == ERR_LIB_PEM && ERR_GET_REASON(err) == PEM_R_NO_START_LINE);
  if (!clean_end) {
    return openssl_error(Code::kInvalidArgument,
                         fmt::format("reading certificate #{} of a PEM bundle", certs.size() + 1));
  }
  ERR_clear_error();
  if (certs.empty()) {
    return make_error(Code::kInvalidArgument, "no PEM certificate found in the bundle");
  }
  return certs;
}

Certificate::Certificate(const Certificate& other) : x509_(other.x509_) {
  if (x509_ != nullptr) X509_up_ref(x509_);
}

Certificate& Certificate::operator=(const Certificate& other) {
  if (this != &other) {
    if (other.x509_ != nullptr) X509_up_ref(other.x509_);
    X509_free(x509_);
    x509_ = other.x509_;
  }
  return *this;
}

Certificate& Certificate::operator=(Certificate&& other) noexcept {
  if (this != &other) {
    X509_free(x509_);
    x509_ = std::exchange(other.x509_, nullptr);
  }
  return *this;
}

Certificate::~Certificate() {
  X509_free(x509_);
}

std::string Certificate::to_pem() const {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || x509_ == nullptr || PEM_write_bio_X509(bio.get(), x509_) != 1) {
    ERR_clear_error();
    return {};
  }
  return bio_contents(bio.get());
}

std::string Certificate::der() const {
  if (x509_ == nullptr) return {};
  int len = i2d_X509(x509_, nullptr);
  if (len <= 0) {
    ERR_clear_error();
    return {};
  }
  std::string out(static_cast<size_t>(len), '\0');
  auto* p = reinterpret_cast<unsigned char*>(out.data());
  i2d_X509(x509_, &p);
  return out;
}

std::string Certificate::common_name() const {
  return x509_ == nullptr ? std::string() : name_common_name(X509_get_subject_name(x509_));
}

std::vector<std::string> Certificate::dns_names() const {
  std::vector<std::string> out;
  if (x509_ == nullptr) return out;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x509_, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type == GEN_DNS) out.push_back(asn1_string_utf8(gn->d.dNSName));
  }
  return out;
}

std::vector<std::string> Certificate::ip_addresses() const {
  std::vector<std::string> out;
  if (x509_ == nullptr) return out;
  GeneralNamesPtr names(
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(x509_, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    const GENERAL_NAME* gn = sk_GENERAL_NAME_value(names.get(), i);
    if (gn->type != GEN_IPADD) continue;
    const unsigned char* data = ASN1_STRING_get0_data(gn->d.iPAddress);
    int len = ASN1_STRING_length(gn->d.iPAddress);
    char text[INET6_ADDRSTRLEN] = {};
    int family = len == 4 ? AF_INET : len == 16 ? AF_INET6 : 0;
    if (family != 0 && inet_ntop(family, data, text, sizeof text) != nullptr) {
      out.emplace_back(text);
    }
  }
  return out;
}

std::chrono::system_clock::time_point Certificate::not_before() const {
  return x509_ == nullptr ? Clock::time_point{} : asn1_time_point(X509_get0_notBefore(x509_));
}

std::chrono::system_clock::time_point Certificate::not_after() const {
  return x509_ == nullptr ? Clock::time_point{} : asn1_time_point(X509_get0_notAfter(x509_));
}

bool Certificate::is_ca() const {
  // X509_get_extension_flags caches the parsed extensions; EXFLAG_CA is basicConstraints CA:TRUE.
  return x509_ != nullptr && (X509_get_extension_flags(x509_) & EXFLAG_CA) != 0;
}

std::string Certificate::serial_hex() const {
  if (x509_ == nullptr) return {};
  BignumPtr bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(x509_), nullptr));
  if (!bn) {
    ERR_clear_error();
    return {};
  }
  std::string out(static_cast<size_t>(BN_num_bytes(bn.get())), '\0');
  BN_bn2bin(bn.get(), reinterpret_cast<unsigned char*>(out.data()));
  return to_hex(reinterpret_cast<const unsigned char*>(out.data()), out.size());
}

EVP_PKEY* Certificate::public_key() const {
  return x509_ == nullptr ? nullptr : X509_get0_pubkey(x509_);
}

// ---- Issuing ----

Result<Certificate> create_ca(const PrivateKey& key, std::string_view common_name,
                              std::chrono::seconds lifetime) {
  if (key.get() == nullptr) return make_error(Code::kInvalidArgument, "no CA key given");
  return build_certificate(key.get(), common_name, nullptr, key, Clock::now(), kCaBackdate,
                           lifetime, nullptr);
}

Result<Certificate> issue_certificate(const EVP_PKEY* subject_public_key,
                                      const CertificateSpec& spec, const Certificate& ca,
                                      const PrivateKey& ca_key) {
  if (subject_public_key == nullptr) {
    return make_error(Code::kInvalidArgument, "no subject public key given");
  }
  GANTRY_RETURN_IF_ERROR(check_issuer(ca, ca_key));
  return build_certificate(subject_public_key, spec.common_name, &ca, ca_key,
                           spec.now.value_or(Clock::now()), spec.backdate, spec.lifetime, &spec);
}

Result<std::string> create_csr(const PrivateKey& key, std::string_view common_name) {
  if (key.get() == nullptr) return make_error(Code::kInvalidArgument, "no key given");
  X509ReqPtr req(X509_REQ_new());
  if (!req) return openssl_error(Code::kInternal, "X509_REQ_new");
  if (X509_REQ_set_version(req.get(), X509_REQ_VERSION_1) != 1) {
    return openssl_error(Code::kInternal, "X509_REQ_set_version");
  }
  X509_NAME* name = X509_REQ_get_subject_name(req.get());
  GANTRY_RETURN_IF_ERROR(set_common_name(name, common_name));
  if (X509_REQ_set_pubkey(req.get(), key.get()) != 1) {
    return openssl_error(Code::kInternal, "X509_REQ_set_pubkey");
  }
  if (X509_REQ_sign(req.get(), key.get(), EVP_sha256()) <= 0) {
    return openssl_error(Code::kInternal, "signing the CSR");
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509_REQ(bio.get(), req.get()) != 1) {
    return openssl_error(Code::kInternal, "writing the CSR");
  }
  return bio_contents(bio.get());
}

Result<CsrInfo> read_csr(std::string_view csr_pem) {
  BioPtr bio = memory_bio(csr_pem);
  if (!bio) return openssl_error(Code::kInternal, "BIO_new_mem_buf");
  X509ReqPtr req(PEM_read_bio_X509_REQ(bio.get(), nullptr, no_passphrase, nullptr));
  if (!req) return openssl_error(Code::kInvalidArgument, "reading a PEM certificate request");
  EvpPkeyPtr key(X509_REQ_get_pubkey(req.get()));
  if (!key) return openssl_error(Code::kInvalidArgument, "reading the CSR's public key");
  int type = EVP_PKEY_get_base_id(key.get());
  bool acceptable = type == EVP_PKEY_EC || type == EVP_PKEY_ED25519 ||
                    (type == EVP_PKEY_RSA && EVP_PKEY_get_bits(key.get()) >= 2048);
  if (!acceptable) {
    return make_error(Code::kInvalidArgument,
                      "CSR key type {} ({} bits) is not accepted; use ECDSA P-256",
                      OBJ_nid2sn(type), EVP_PKEY_get_bits(key.get()));
  }
  if (X509_REQ_verify(req.get(), key.get()) != 1) {
    return openssl_error(Code::kInvalidArgument,
                         "the CSR's signature does not match its public key");
  }
  CsrInfo info;
  info.common_name = name_common_name(X509_REQ_get_subject_name(req.get()));
  info.public_key = std::move(key);
  return info;
}

Result<Certificate> sign_csr(std::string_view csr_pem, const CertificateSpec& spec,
                             const Certificate& ca, const PrivateKey& ca_key) {
  GANTRY_ASSIGN_OR_RETURN(CsrInfo info, read_csr(csr_pem));
  return issue_certificate(info.public_key.get(), spec, ca, ca_key);
}

Status verify_certificate(const Certificate& cert, const std::vector<Certificate>& roots,
                          std::chrono::system_clock::time_point at) {
  if (cert.get() == nullptr) return make_error(Code::kInvalidArgument, "no certificate given");
  X509StorePtr store(X509_STORE_new());
  X509StoreCtxPtr ctx(X509_STORE_CTX_new());
  if (!store || !ctx) return openssl_error(Code::kInternal, "allocating a certificate store");
  for (const Certificate& root : roots) {
    if (root.get() != nullptr && X509_STORE_add_cert(store.get(), root.get()) != 1) {
      return openssl_error(Code::kInternal, "adding a root certificate");
    }
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    return openssl_error(Code::kInternal, "X509_STORE_CTX_init");
  }
  X509_STORE_CTX_set_time(ctx.get(), 0, Clock::to_time_t(at));
  int rc = X509_verify_cert(ctx.get());
  ERR_clear_error();
  if (rc == 1) return ok_status();
  int err = X509_STORE_CTX_get_error(ctx.get());
  std::string detail = X509_verify_cert_error_string(err);
  if (err == X509_V_ERR_CERT_HAS_EXPIRED) {
    detail += fmt::format(" (not after {})", format_rfc3339(cert.not_after()));
  } else if (err == X509_V_ERR_CERT_NOT_YET_VALID) {
    detail += fmt::format(" (not before {})", format_rfc3339(cert.not_before()));
  }
  return make_error(Code::kUnauthenticated, "certificate '{}' is not trusted: {}",
                    cert.common_name(), detail);
}

std::string ca_hash(const Certificate& ca) {
  std::string der = ca.der();
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(der.data(), der.size(), digest, &len, EVP_sha256(), nullptr) != 1) {
    ERR_clear_error();
    return {};
  }
  return to_hex(digest, len);
}

// ---- Join tokens ----

std::string make_join_token(std::string_view ca_hash_hex, const JoinTokenClaims& claims,
                            std::string_view signing_key) {
  nlohmann::json payload = {
      {"exp", static_cast<int64_t>(Clock::to_time_t(claims.expires))},
      {"id", claims.id.empty() ? random_hex(8) : claims.id},
  };
  if (!claims.province.empty()) payload["province"] = claims.province;
  std::string encoded =
      base64url_encode(payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  // Hex is case-insensitive to people but not to the MAC: always sign the canonical lowercase.
  std::string hash(ca_hash_hex);
  std::transform(hash.begin(), hash.end(), hash.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  std::string signed_part = fmt::format("{}.{}", hash, encoded);
  return fmt::format("{}.{}", signed_part, base64url_encode(token_mac(signed_part, signing_key)));
}

Result<std::pair<std::string, JoinTokenClaims>> parse_join_token(std::string_view token) {
  if (token.empty()) return malformed("the token is empty");
  if (token.size() > 4096) return malformed("the token is longer than 4096 characters");
  size_t first = token.find('.');
  size_t second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) {
    return malformed("expected three parts separated by '.' (CA hash, claims, signature)");
  }
  std::string_view hash = token.substr(0, first);
  std::string_view payload = token.substr(first + 1, second - first - 1);
  std::string_view mac = token.substr(second + 1);
  if (hash.size() != 64 || !is_lower_hex(hash)) {
    return malformed("the CA hash must be 64 lowercase hex characters (sha256)");
  }
  std::optional<std::string> mac_bytes = base64url_decode(mac);
  if (!mac_bytes || mac_bytes->size() != 32) {
    return malformed("the signature must be 32 bytes of unpadded base64url");
  }
  std::optional<std::string> json_text = base64url_decode(payload);
  if (!json_text || json_text->empty()) {
    return malformed("the claims are not unpadded base64url");
  }
  auto parsed = parse_json(*json_text);
  nlohmann::json json = parsed.ok() ? std::move(*parsed) : nlohmann::json();
  if (!parsed.ok() || !json.is_object()) {
    return malformed("the claims are not a JSON object");
  }
  auto exp = json.find("exp");
  if (exp == json.end() || !exp->is_number_integer()) {
    return malformed("the claims have no integer expiry 'exp'");
  }
  // Beyond year 2255 a nanosecond system_clock would overflow.
  if (exp->get<int64_t>() < 0 || exp->get<int64_t>() > 9'000'000'000) {
    return malformed("the expiry 'exp' is out of range");
  }
  auto id = json.find("id");
  if (id == json.end() || !id->is_string() || id->get_ref<const std::string&>().empty()) {
    return malformed("the claims have no token 'id'");
  }
  JoinTokenClaims claims;
  claims.expires = Clock::from_time_t(static_cast<time_t>(exp->get<int64_t>()));
  claims.id = id->get<std::string>();
  if (auto province = json.find("province"); province != json.end()) {
    if (!province->is_string()) return malformed("the claim 'province' is not a string");
    claims.province = province->get<std::string>();
  }
  return std::make_pair(std::string(hash), std::move(claims));
}

Result<JoinTokenClaims> verify_join_token(std::string_view token, std::string_view expected_ca_hash,
                                          std::string_view signing_key,
                                          std::chrono::system_clock::time_point now) {
  GANTRY_ASSIGN_OR_RETURN(auto parsed, parse_join_token(token));
  auto& [hash, claims] = parsed;
  std::string expected(expected_ca_hash);
  std::transform(expected.begin(), expected.end(), expected.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (hash.size() != expected.size() ||
      CRYPTO_memcmp(hash.data(), expected.data(), hash.size()) != 0) {
    return make_error(Code::kPermissionDenied,
                      "token was issued for another cluster CA (token CA hash {}, this cluster's "
                      "{}); get a token from this cluster with gantryadm gettoken",
                      hash, expected);
  }
  if (signing_key.empty()) {
    return make_error(Code::kFailedPrecondition, "no token signing key is configured");
  }
  size_t last_dot = token.rfind('.');
  std::string expected_mac = token_mac(token.substr(0, last_dot), signing_key);
  std::string given_mac = base64url_decode(token.substr(last_dot + 1)).value_or("");
  if (given_mac.size() != expected_mac.size() ||
      CRYPTO_memcmp(given_mac.data(), expected_mac.data(), expected_mac.size()) != 0) {
    return make_error(Code::kUnauthenticated,
                      "token signature does not match; it was altered or signed with another "
                      "key (create a new one with gantryadm gettoken)");
  }
  if (now >= claims.expires) {
    return make_error(Code::kDeadlineExceeded,
                      "token expired at {}; create a new one with gantryadm gettoken",
                      format_rfc3339(claims.expires));
  }
  return std::move(claims);
}

// ---- Helpers ----

std::string random_hex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (bytes > 0 &&
      RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1) {
    // Without a working CSPRNG no id, serial or key we make is safe; there is no fallback.
    std::fprintf(stderr, "RAND_bytes failed: %s\n", drain_openssl_errors().c_str());
    std::abort();
  }
  return to_hex(reinterpret_cast<const unsigned char*>(raw.data()), raw.size());
}

}  // namespace gantry::common
