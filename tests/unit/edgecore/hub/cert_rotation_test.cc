// CertRotation without a network: when it asks, what it asks for, which answers it refuses, and
// that the key and certificate on disk always form a pair, whatever instant a power cut hits.
#include "edgecore/hub/cert_rotation.h"

#include <sys/stat.h>

#include <catch2/catch.hpp>

#include "common/base/atomic_file.h"
#include "tests/support/test_support.h"

namespace gantry::edge {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Ca {
  common::PrivateKey key = common::PrivateKey::generate().value();
  common::Certificate cert;
  explicit Ca(const common::Clock& clock, const std::string& name = "test-ca")
      : cert(common::create_ca(key, name, 24h * 3650).value()) {
    (void)clock;
  }
  common::Certificate issue(const EVP_PKEY* subject, const std::string& cn,
                            std::chrono::system_clock::time_point now,
                            std::chrono::seconds lifetime,
                            std::chrono::seconds backdate = 0s) const {
    common::CertificateSpec spec;
    spec.common_name = cn;
    spec.lifetime = lifetime;
    spec.backdate = backdate;
    spec.server_auth = false;
    spec.now = now;
    return common::issue_certificate(subject, spec, cert, key).value();
  }
};

// A node's tls.* files, as gantryadm join writes them.
struct NodeFiles {
  test::TempDir dir;
  fs::path cert = dir / "node.crt";
  fs::path key = dir / "node.key";
  fs::path ca = dir / "ca.crt";

  void write(const Ca& ca_, const common::Certificate& c, const common::PrivateKey& k) {
    REQUIRE(common::write_file_atomic(ca, ca_.cert.to_pem()).ok());
    REQUIRE(common::write_file_atomic(cert, c.to_pem()).ok());
    REQUIRE(common::write_file_atomic(key, k.to_pem(), 0600).ok());
  }
  CertRotationOptions options() const {
    return {.node_name = "e1", .cert_file = cert, .key_file = key, .ca_file = ca};
  }
  std::string serial_on_disk() const {
    return common::Certificate::from_pem(common::read_file(cert).value()).value().serial_hex();
  }
  // The key on disk is the certificate's on disk.
  bool pair_matches() const {
    auto c = common::Certificate::from_pem(common::read_file(cert).value()).value();
    auto k = common::PrivateKey::from_pem(common::read_file(key).value()).value();
    return X509_check_private_key(c.get(), k.get()) == 1;
  }
};

// A node with a certificate issued now for `lifetime`.
struct Node {
  common::ManualClock clock{std::chrono::system_clock::now()};  // the CA is made at the real now
  common::SeededRandom random{42};
  Ca ca{clock};
  NodeFiles files;
  common::PrivateKey key = common::PrivateKey::generate().value();
  common::Certificate cert;

  explicit Node(std::chrono::seconds lifetime = 100s)
      : cert(ca.issue(key.get(), "system:node:e1", clock.system_now(), lifetime)) {
    files.write(ca, cert, key);
  }
  std::unique_ptr<CertRotation> load() {
    auto r = CertRotation::load(files.options(), clock, random);
    INFO(r.status().to_string());
    REQUIRE(r.ok());
    return std::move(r).value();
  }
  // What cloudcore would answer to `request`: a certificate for its key, `cn`, `lifetime`.
  v1::CertificateResponse sign(const v1::Frame& request, const std::string& cn = "system:node:e1",
                               std::chrono::seconds lifetime = 100s, const Ca* by = nullptr) {
    auto csr = common::read_csr(request.certificate_request().csr_pem());
    REQUIRE(csr.ok());
    v1::CertificateResponse response;
    response.set_certificate_pem(
        (by ? *by : ca).issue(csr->public_key.get(), cn, clock.system_now(), lifetime).to_pem());
    return response;
  }
};

TEST_CASE("rotation: the renewal point is drawn between 70% and 90% of the lifetime") {
  Node node(1000s);
  std::vector<double> shares;
  for (uint64_t seed = 1; seed <= 50; ++seed) {
    common::SeededRandom random(seed);
    auto rotation = CertRotation::load(node.files.options(), node.clock, random).value();
    auto share = std::chrono::duration<double>(rotation->renew_at() - node.cert.not_before()) /
                 std::chrono::duration<double>(node.cert.not_after() - node.cert.not_before());
    CHECK(share >= 0.7);
    CHECK(share <= 0.9);
    shares.push_back(share);
  }
  // Spread over the window (a fleet joined at once does not renew at once).
  CHECK(*std::max_element(shares.begin(), shares.end()) -
            *std::min_element(shares.begin(), shares.end()) >
        0.1);
  // The same seed, the same point.
  common::SeededRandom a(7), b(7);
  CHECK(CertRotation::load(node.files.options(), node.clock, a).value()->renew_at() ==
        CertRotation::load(node.files.options(), node.clock, b).value()->renew_at());
}

TEST_CASE(
    "rotation: a renewal asks for system:node:NAME with a new key and installs the answer as a "
    "pair") {
  Node node;
  auto rotation = node.load();
  auto old_tls = rotation->tls();
  const std::string old_serial = rotation->certificate().serial_hex();

  node.clock.advance(80s);
  auto request = rotation->make_request();
  REQUIRE(request.ok());
  REQUIRE(rotation->request_pending());
  auto csr = common::read_csr(request->certificate_request().csr_pem());
  REQUIRE(csr.ok());
  CHECK(csr->common_name == "system:node:e1");
  // A new key, not the current one.
  CHECK(EVP_PKEY_eq(csr->public_key.get(), node.key.get()) != 1);

  auto s = rotation->on_response(node.sign(*request));
  INFO(s.to_string());
  REQUIRE(s.ok());
  CHECK_FALSE(rotation->request_pending());
  CHECK(rotation->certificate().serial_hex() != old_serial);
  CHECK(node.files.serial_on_disk() == rotation->certificate().serial_hex());
  CHECK(node.files.pair_matches());
  CHECK(rotation->tls() != old_tls);  // the next connection dials with the new pair
  CHECK(rotation->renew_at() > node.clock.system_now() + 60s);
  CHECK_FALSE(fs::exists(next_file(node.files.cert)));
  CHECK_FALSE(fs::exists(next_file(node.files.key)));
  struct stat st {};
  REQUIRE(::stat(node.files.key.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  // A restarted edgecore loads the renewed pair.
  CHECK(node.load()->certificate().serial_hex() == rotation->certificate().serial_hex());
}

TEST_CASE(
    "rotation: an answer that is not for this key or node or CA or is expired changes nothing") {
  Node node;
  auto rotation = node.load();
  const std::string serial = rotation->certificate().serial_hex();
  auto tls = rotation->tls();
  auto request = rotation->make_request().value();
  Ca other_ca(node.clock, "another-ca");

  std::string what =
      GENERATE("refused", "other key", "other node", "other CA", "expired", "garbage", "unasked");
  v1::CertificateResponse response;
  std::string expect;
  if (what == "refused") {
    response.set_error("too many certificate requests; retry in 3 s");
    expect = "cloudcore refused to renew the certificate: too many certificate requests";
  } else if (what == "other key") {
    auto stranger = common::PrivateKey::generate().value();
    response.set_certificate_pem(
        node.ca.issue(stranger.get(), "system:node:e1", node.clock.system_now(), 100s).to_pem());
    expect = "is not for the key this node sent";
  } else if (what == "other node") {
    response = node.sign(request, "system:node:e2");
    expect = "is for 'system:node:e2', not 'system:node:e1'";
  } else if (what == "other CA") {
    response = node.sign(request, "system:node:e1", 100s, &other_ca);
    expect = "is not trusted";
  } else if (what == "expired") {
    response = node.sign(request, "system:node:e1", 10s);
    node.clock.advance(20s);
    expect = "has expired";
  } else if (what == "garbage") {
    response.set_certificate_pem("not a certificate");
    expect = "the renewed certificate";
  } else {
    rotation->abandon_request();
    response = node.sign(request);
    expect = "not asked for";
  }
  auto s = rotation->on_response(response);
  INFO(what << ": " << s.to_string());
  CHECK_FALSE(s.ok());
  CHECK(s.message().find(expect) != std::string::npos);
  CHECK(rotation->certificate().serial_hex() == serial);
  CHECK(rotation->tls() == tls);
  CHECK(node.files.serial_on_disk() == serial);
  CHECK(node.files.pair_matches());
  CHECK_FALSE(rotation->request_pending());
}

TEST_CASE(
    "rotation: a rotation cut short at any step is finished or discarded at load and the pair "
    "always matches") {
  Node node;
  auto old_key = node.key.to_pem();
  auto old_serial = node.cert.serial_hex();
  auto new_key = common::PrivateKey::generate().value();
  auto new_cert = node.ca.issue(new_key.get(), "system:node:e1", node.clock.system_now(), 100s);
  const fs::path key_next = next_file(node.files.key);
  const fs::path cert_next = next_file(node.files.cert);

  // The steps of on_response, in order; a power cut after step N leaves what the steps before did.
  std::string cut = GENERATE("after key.next", "after cert.next", "after the key rename",
                             "cert.next not matching");
  REQUIRE(common::write_file_atomic(key_next, new_key.to_pem(), 0600).ok());
  std::string expect_serial = old_serial;
  if (cut == "after cert.next" || cut == "after the key rename") {
    REQUIRE(common::write_file_atomic(cert_next, new_cert.to_pem()).ok());
    expect_serial = new_cert.serial_hex();
  }
  if (cut == "after the key rename") fs::rename(key_next, node.files.key);
  if (cut == "cert.next not matching") {
    auto stranger = common::PrivateKey::generate().value();
    REQUIRE(
        common::write_file_atomic(
            cert_next,
            node.ca.issue(stranger.get(), "system:node:e1", node.clock.system_now(), 100s).to_pem())
            .ok());
  }

  auto rotation = node.load();
  INFO(cut);
  CHECK(rotation->certificate().serial_hex() == expect_serial);
  CHECK(node.files.serial_on_disk() == expect_serial);
  CHECK(node.files.pair_matches());
  CHECK_FALSE(fs::exists(key_next));
  CHECK_FALSE(fs::exists(cert_next));
  if (expect_serial == old_serial) CHECK(common::read_file(node.files.key).value() == old_key);
}

TEST_CASE(
    "rotation: an expired certificate is reported with what to do and replaced files are picked "
    "up") {
  Node node(30s);
  auto rotation = node.load();
  CHECK(rotation->check_before_connect().ok());
  node.clock.advance(31s);
  CHECK(rotation->expired());
  auto s = rotation->check_before_connect();
  CHECK(s.code() == common::Code::kDeadlineExceeded);
  CHECK(s.message() == "this node's certificate expired at " +
                           common::format_rfc3339(node.cert.not_after()) +
                           ": get a new one with gantryadm join (see docs/operations.md)");

  // An operator puts a new pair in place: the next connect uses it.
  auto key = common::PrivateKey::generate().value();
  auto cert = node.ca.issue(key.get(), "system:node:e1", node.clock.system_now(), 100s);
  node.files.write(node.ca, cert, key);
  CHECK(rotation->check_before_connect().ok());
  CHECK_FALSE(rotation->expired());
  CHECK(rotation->certificate().serial_hex() == cert.serial_hex());
}

TEST_CASE("rotation: retries come sooner as the expiry nears") {
  Node node(1000s);
  auto rotation = node.load();
  node.clock.advance(800s);  // 200 s left: about 20 s (x0.5-1.5)
  auto early = rotation->retry_delay();
  CHECK(early >= 10s);
  CHECK(early <= 30s);
  node.clock.advance(190s);  // 10 s left: the 1 s floor, jittered
  auto late = rotation->retry_delay();
  CHECK(late >= 500ms);
  CHECK(late <= 1500ms);
}

TEST_CASE("rotation: a key that is not the certificate's is refused at load") {
  Node node;
  REQUIRE(common::write_file_atomic(node.files.key, common::PrivateKey::generate().value().to_pem(),
                                    0600)
              .ok());
  common::SeededRandom random(1);
  auto r = CertRotation::load(node.files.options(), node.clock, random);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("is not the key of tls.cert") != std::string::npos);
}

}  // namespace
}  // namespace gantry::edge
