#include "common/pki/pki.h"

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <catch2/catch.hpp>

namespace gantry::common {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

// Designated initializers would trip GCC's -Wmissing-field-initializers; build specs by hand.
CertificateSpec leaf_spec(std::string common_name) {
  CertificateSpec spec;
  spec.common_name = std::move(common_name);
  return spec;
}

struct TestCa {
  PrivateKey key = PrivateKey::generate().value();
  Certificate cert = create_ca(key, "gantry test CA", 24h * 3650).value();
};

TEST_CASE("a private key survives a PEM round trip and signs like the original") {
  auto key = PrivateKey::generate();
  REQUIRE(key.ok());
  std::string pem = key->to_pem();
  CHECK(pem.rfind("-----BEGIN PRIVATE KEY-----", 0) == 0);  // PKCS#8
  auto again = PrivateKey::from_pem(pem);
  REQUIRE(again.ok());
  CHECK(EVP_PKEY_eq(key->get(), again->get()) == 1);
  CHECK(again->to_pem() == pem);
}

TEST_CASE("garbage or an empty string is not a private key") {
  auto key = PrivateKey::from_pem(GENERATE(std::string(), std::string("not a key"),
                                           std::string("-----BEGIN PRIVATE KEY-----\nAAAA\n"
                                                       "-----END PRIVATE KEY-----\n")));
  REQUIRE_FALSE(key.ok());
  CHECK(key.status().code() == Code::kInvalidArgument);
}

TEST_CASE("a CA issues a server certificate that verifies against it") {
  TestCa ca;
  CHECK(ca.cert.is_ca());
  CHECK(ca.cert.common_name() == "gantry test CA");
  CHECK(verify_certificate(ca.cert, {ca.cert}, Clock::now()).ok());

  auto leaf_key = PrivateKey::generate().value();
  CertificateSpec spec;
  spec.common_name = "cloudcore";
  spec.dns_names = {"cloudcore.example", "localhost"};
  spec.ip_addresses = {"127.0.0.1", "::1"};
  spec.lifetime = 24h;
  auto leaf = issue_certificate(leaf_key.get(), spec, ca.cert, ca.key);
  REQUIRE(leaf.ok());
  CHECK_FALSE(leaf->is_ca());
  CHECK(leaf->common_name() == "cloudcore");
  CHECK(leaf->dns_names() == std::vector<std::string>{"cloudcore.example", "localhost"});
  CHECK(leaf->ip_addresses() == std::vector<std::string>{"127.0.0.1", "::1"});
  CHECK(EVP_PKEY_eq(leaf->public_key(), leaf_key.get()) == 1);
  CHECK(leaf->serial_hex().size() == 32);
  CHECK(verify_certificate(*leaf, {ca.cert}, Clock::now()).ok());
  // The certificate is backdated for clock skew and lasts the lifetime asked for.
  auto now = Clock::now();
  CHECK(leaf->not_before() <= now - 299s);
  CHECK(leaf->not_after() > now + 23h);
  CHECK(leaf->not_after() <= now + 24h + 1s);
}

TEST_CASE("two certificates issued by one CA have different serial numbers") {
  TestCa ca;
  auto key = PrivateKey::generate().value();
  auto spec = leaf_spec("a");
  auto a = issue_certificate(key.get(), spec, ca.cert, ca.key).value();
  auto b = issue_certificate(key.get(), spec, ca.cert, ca.key).value();
  CHECK(a.serial_hex() != b.serial_hex());
}

TEST_CASE("a certificate PEM round trip keeps CN, SANs and validity") {
  TestCa ca;
  auto key = PrivateKey::generate().value();
  auto spec = leaf_spec("system:node:edge-1");
  spec.dns_names = {"edge-1"};
  spec.ip_addresses = {"10.1.2.3"};
  spec.lifetime = 48h;
  auto cert = issue_certificate(key.get(), spec, ca.cert, ca.key).value();
  auto again = Certificate::from_pem(cert.to_pem());
  REQUIRE(again.ok());
  CHECK(again->common_name() == "system:node:edge-1");
  CHECK(again->dns_names() == std::vector<std::string>{"edge-1"});
  CHECK(again->ip_addresses() == std::vector<std::string>{"10.1.2.3"});
  CHECK(again->not_before() == cert.not_before());
  CHECK(again->not_after() == cert.not_after());
  CHECK(again->der() == cert.der());
  CHECK(ca_hash(*again) == ca_hash(cert));
}

TEST_CASE("a PEM bundle yields every certificate in order, bad bundles are refused") {
  TestCa a;
  TestCa b;
  auto bundle = Certificate::bundle_from_pem(a.cert.to_pem() + b.cert.to_pem());
  REQUIRE(bundle.ok());
  REQUIRE(bundle->size() == 2);
  CHECK((*bundle)[0].der() == a.cert.der());
  CHECK((*bundle)[1].der() == b.cert.der());

  CHECK(Certificate::bundle_from_pem("").status().code() == Code::kInvalidArgument);
  std::string truncated = a.cert.to_pem();
  truncated.resize(truncated.size() / 2);
  CHECK(Certificate::bundle_from_pem(b.cert.to_pem() + truncated).status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("copies of a certificate share it and outlive the original") {
  TestCa ca;
  std::string der = ca.cert.der();
  Certificate copy = ca.cert;
  { Certificate moved = std::move(ca.cert); }
  CHECK(copy.der() == der);
}

TEST_CASE("sign_csr keeps the CSR's key but takes the subject from the signer") {
  TestCa ca;
  auto node_key = PrivateKey::generate().value();
  auto csr = create_csr(node_key, "system:node:claimed-by-edge");
  REQUIRE(csr.ok());
  CHECK(csr->find("BEGIN CERTIFICATE REQUEST") != std::string::npos);

  auto info = read_csr(*csr);
  REQUIRE(info.ok());
  CHECK(info->common_name == "system:node:claimed-by-edge");
  CHECK(EVP_PKEY_eq(info->public_key.get(), node_key.get()) == 1);

  auto spec = leaf_spec("system:node:edge-7");
  spec.server_auth = false;
  auto cert = sign_csr(*csr, spec, ca.cert, ca.key);
  REQUIRE(cert.ok());
  CHECK(cert->common_name() == "system:node:edge-7");
  CHECK(EVP_PKEY_eq(cert->public_key(), node_key.get()) == 1);
  CHECK(verify_certificate(*cert, {ca.cert}, Clock::now()).ok());
}

TEST_CASE("a CSR whose signature does not match its key is refused") {
  auto csr = create_csr(PrivateKey::generate().value(), "x").value();
  // Flip one character of the base64 body near the end, inside the signature.
  size_t end = csr.find("-----END");
  REQUIRE(end != std::string::npos);
  size_t pos = end - 10;
  csr[pos] = csr[pos] == 'A' ? 'B' : 'A';
  auto info = read_csr(csr);
  REQUIRE_FALSE(info.ok());
  CHECK(info.status().code() == Code::kInvalidArgument);
}

TEST_CASE("a certificate from another CA does not verify") {
  TestCa ours;
  TestCa theirs;
  auto key = PrivateKey::generate().value();
  auto cert = issue_certificate(key.get(), leaf_spec("intruder"), theirs.cert, theirs.key).value();
  Status s = verify_certificate(cert, {ours.cert}, Clock::now());
  CHECK(s.code() == Code::kUnauthenticated);
  CHECK(s.message().find("intruder") != std::string::npos);
  CHECK(verify_certificate(cert, {}, Clock::now()).code() == Code::kUnauthenticated);
  CHECK(verify_certificate(cert, {ours.cert, theirs.cert}, Clock::now()).ok());
}

TEST_CASE("a certificate fails verification once expired and before it is valid") {
  TestCa ca;  // valid from 5 minutes ago
  auto key = PrivateKey::generate().value();
  auto issued_at = Clock::now();
  auto spec = leaf_spec("short-lived");
  spec.lifetime = 1h;
  spec.backdate = 0s;
  spec.now = issued_at;
  auto cert = issue_certificate(key.get(), spec, ca.cert, ca.key).value();

  Status expired = verify_certificate(cert, {ca.cert}, issued_at + 2h);
  CHECK(expired.code() == Code::kUnauthenticated);
  CHECK(expired.message().find("expired") != std::string::npos);
  CHECK(expired.message().find(format_rfc3339(cert.not_after())) != std::string::npos);
  CHECK(verify_certificate(cert, {ca.cert}, issued_at + 30min).ok());
  Status early = verify_certificate(cert, {ca.cert}, issued_at - 1min);
  CHECK(early.code() == Code::kUnauthenticated);
  CHECK(early.message().find("not yet valid") != std::string::npos);
}

TEST_CASE("issuing refuses bad subjects and a key that is not the CA's") {
  TestCa ca;
  TestCa other;
  auto key = PrivateKey::generate().value();
  auto bad_ip = leaf_spec("x");
  bad_ip.ip_addresses = {"300.1.1.1"};
  CHECK(issue_certificate(key.get(), bad_ip, ca.cert, ca.key).status().code() ==
        Code::kInvalidArgument);
  auto bad_dns = leaf_spec("x");
  bad_dns.dns_names = {"a b"};
  CHECK(issue_certificate(key.get(), bad_dns, ca.cert, ca.key).status().code() ==
        Code::kInvalidArgument);
  CHECK(issue_certificate(key.get(), leaf_spec(""), ca.cert, ca.key).status().code() ==
        Code::kInvalidArgument);
  CHECK(issue_certificate(key.get(), leaf_spec("x"), ca.cert, other.key).status().code() ==
        Code::kInvalidArgument);
  auto leaf = issue_certificate(key.get(), leaf_spec("leaf"), ca.cert, ca.key).value();
  CHECK(issue_certificate(key.get(), leaf_spec("x"), leaf, key).status().code() ==
        Code::kInvalidArgument);
}

TEST_CASE("issued certificates pass OpenSSL's TLS purpose, host and IP checks") {
  TestCa ca;
  auto key = PrivateKey::generate().value();
  auto spec = leaf_spec("cloudcore");
  spec.dns_names = {"cloud.example"};
  spec.ip_addresses = {"127.0.0.1", "::1"};
  spec.client_auth = false;
  auto server = issue_certificate(key.get(), spec, ca.cert, ca.key).value();
  CHECK(X509_check_purpose(server.get(), X509_PURPOSE_SSL_SERVER, 0) == 1);
  CHECK(X509_check_purpose(server.get(), X509_PURPOSE_SSL_CLIENT, 0) != 1);
  CHECK(X509_check_host(server.get(), "cloud.example", 0, 0, nullptr) == 1);
  CHECK(X509_check_host(server.get(), "other.example", 0, 0, nullptr) != 1);
  CHECK(X509_check_ip_asc(server.get(), "::1", 0) == 1);
  CHECK(X509_check_ip_asc(server.get(), "127.0.0.2", 0) != 1);
  CHECK(X509_check_purpose(ca.cert.get(), X509_PURPOSE_ANY, 1) == 1);  // usable as a CA

  auto client_spec = leaf_spec("system:node:edge-1");
  client_spec.server_auth = false;
  auto client = issue_certificate(key.get(), client_spec, ca.cert, ca.key).value();
  CHECK(X509_check_purpose(client.get(), X509_PURPOSE_SSL_CLIENT, 0) == 1);
  CHECK(X509_check_purpose(client.get(), X509_PURPOSE_SSL_SERVER, 0) != 1);
}

TEST_CASE("ca_hash is the lowercase hex sha256 of the DER") {
  TestCa ca;
  std::string der = ca.cert.der();
  unsigned char digest[32];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(der.data(), der.size(), digest, &len, EVP_sha256(), nullptr) == 1);
  std::string expected;
  for (unsigned i = 0; i < len; ++i) expected += fmt::format("{:02x}", digest[i]);
  CHECK(ca_hash(ca.cert) == expected);
}

TEST_CASE("random_hex gives 2 hex characters per byte and differs between calls") {
  std::string a = random_hex(16);
  CHECK(a.size() == 32);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a != random_hex(16));
}

}  // namespace
}  // namespace gantry::common
