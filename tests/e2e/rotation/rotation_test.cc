// Certificate rotation with the real binaries: a node whose certificate lives 20 s renews it over
// the tunnel again and again without losing the tunnel or its pods, and reconnects with the renewed
// one; a node whose certificate expired is refused, and both sides say why in their logs.
#include <fmt/format.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/base/atomic_file.h"
#include "common/pki/pki.h"
#include "tests/e2e/edge/edge_cluster.h"

namespace gantry::edge_test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::eventually;

size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

common::Certificate read_cert(const fs::path& file) {
  return common::Certificate::from_pem(common::read_file(file).value()).value();
}

// Replaces the node's certificate and key with a new pair from the cluster CA that lives
// `lifetime` from now (what a join with that certificate_lifetime would have written).
common::Certificate reissue_node_certificate(EdgeCluster& c, std::chrono::seconds lifetime) {
  const fs::path pki = c.dir() / "cloud" / "pki";
  auto ca = read_cert(pki / "ca.crt");
  auto ca_key = common::PrivateKey::from_pem(common::read_file(pki / "ca.key").value()).value();
  auto key = common::PrivateKey::generate().value();
  common::CertificateSpec spec;
  spec.common_name = std::string("system:node:") + EdgeCluster::kNode;
  spec.server_auth = false;
  spec.lifetime = lifetime;
  spec.backdate = 1s;
  auto cert = common::issue_certificate(key.get(), spec, ca, ca_key).value();
  REQUIRE(common::write_file_atomic(c.edge_dir() / "pki" / "node.key", key.to_pem(), 0600).ok());
  REQUIRE(common::write_file_atomic(c.edge_dir() / "pki" / "node.crt", cert.to_pem()).ok());
  return cert;
}

void set_certificate_lifetime(EdgeCluster& c, const std::string& lifetime) {
  const fs::path yaml = c.dir() / "cloud" / "cloudcore.yaml";
  std::string text = common::read_file(yaml).value();
  static const std::regex line(R"(certificate_lifetime: \S+)");
  REQUIRE(std::regex_search(text, line));
  text = std::regex_replace(text, line, "certificate_lifetime: " + lifetime);
  REQUIRE(common::write_file_atomic(yaml, text).ok());
}

std::string node_ready(EdgeCluster& c) {
  return c
      .kubectl({"get", "node", EdgeCluster::kNode, "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"})
      .text;
}

// A quick back-off so that reconnects after a cloudcore restart do not wait long.
constexpr const char* kFastBackoff = "backoff:\n  base: 200ms\n  cap: 2s";

TEST_CASE(
    "A 20 s certificate is renewed over the tunnel twice while the tunnel and the pod stay up",
    "[rotation]") {
  EdgeCluster c(kFastBackoff);
  auto applied = c.kubectl_apply(c.pod_yaml("steady", "while true; do sleep 1; done"));
  INFO(applied.text);
  REQUIRE(applied.exit_code == 0);
  REQUIRE(eventually([&] { return c.running_containers_of("steady").size() == 1; }, 90s, 100ms));
  const std::string container = c.running_containers_of("steady")[0].id;

  // cloudcore signs 20 s certificates, and the node starts with one.
  c.kill_edgecore();
  c.kill_cloudcore();
  set_certificate_lifetime(c, "20s");
  c.start_cloudcore();
  const size_t cloud_from = c.cloudcore_log().size();
  const size_t edge_from = c.edgecore_log().size();
  const auto first = reissue_node_certificate(c, 20s);
  c.start_edgecore();
  auto edge_log = [&] { return c.edgecore_log().substr(edge_from); };
  auto cloud_log = [&] { return c.cloudcore_log().substr(cloud_from); };
  REQUIRE(eventually([&] { return count(edge_log(), "tunnel: welcomed") == 1; }, 60s, 100ms));

  // Two renewals: the second one after the first certificate (the one the tunnel was opened
  // with) expired.
  bool renewed = eventually(
      [&] { return count(cloud_log(), "hub: renewed certificate of node edge-1 (serial") >= 2; },
      120s, 200ms);
  INFO("edgecore:\n" << edge_log() << "\ncloudcore:\n" << cloud_log());
  REQUIRE(renewed);
  REQUIRE(eventually([&] { return count(edge_log(), "tunnel: certificate renewed") >= 2; }, 30s));
  CHECK(count(edge_log(), "tunnel: connected to") == 1);
  CHECK(count(edge_log(), "tunnel: disconnected") == 0);
  CHECK(count(cloud_log(), "refused") == 0);

  // The renewed pair is on disk, and it is what cloudcore signed last.
  const auto now_cert = read_cert(c.edge_dir() / "pki" / "node.crt");
  CHECK(now_cert.serial_hex() != first.serial_hex());
  CHECK(now_cert.not_after() > first.not_after());
  CHECK(cloud_log().find(fmt::format("(serial {},", now_cert.serial_hex())) != std::string::npos);

  // The pod never noticed; the node is Ready.
  CHECK(node_ready(c) == "True");
  auto running = c.running_containers_of("steady");
  REQUIRE(running.size() == 1);
  CHECK(running[0].id == container);
  CHECK(c.pod_field("steady", "{.status.phase}") == "Running");

  // A new connection dials with the renewed certificate (the first one expired long ago).
  REQUIRE(std::chrono::system_clock::now() > first.not_after());
  c.kill_cloudcore();
  c.start_cloudcore();
  bool back = eventually([&] { return count(edge_log(), "tunnel: welcomed") == 2; }, 60s, 100ms);
  INFO("edgecore:\n" << edge_log());
  CHECK(back);
  CHECK(eventually([&] { return node_ready(c) == "True"; }, 60s, 200ms));
  CHECK(c.running_containers_of("steady").size() == 1);
}

TEST_CASE(
    "An expired certificate is refused with a clear line on both sides and the node stays out",
    "[rotation]") {
  EdgeCluster c(kFastBackoff);
  c.kill_edgecore();
  const size_t cloud_from = c.cloudcore_log().size();
  const size_t edge_from = c.edgecore_log().size();
  const auto cert = reissue_node_certificate(c, 2s);
  // Past its expiry (certificate times have whole seconds).
  REQUIRE(eventually([&] { return std::chrono::system_clock::now() > cert.not_after() + 1s; }, 10s,
                     100ms));
  c.start_edgecore();
  const std::string expiry = common::format_rfc3339(cert.not_after());
  auto edge_log = [&] { return c.edgecore_log().substr(edge_from); };
  auto cloud_log = [&] { return c.cloudcore_log().substr(cloud_from); };
  bool edge_said = eventually(
      [&] {
        return edge_log().find("this node's certificate expired at " + expiry +
                               ": get a new one with gantryadm join (see docs/operations.md)") !=
               std::string::npos;
      },
      60s, 100ms);
  bool cloud_said = eventually(
      [&] {
        return cloud_log().find("hub: refused node edge-1: its certificate expired at " + expiry) !=
               std::string::npos;
      },
      60s, 100ms);
  INFO("edgecore:\n" << edge_log() << "\ncloudcore:\n" << cloud_log());
  CHECK(edge_said);
  CHECK(cloud_said);
  auto metrics = c.kubectl({"get", "--raw", "/metrics"}).text;
  CHECK(metrics.find("gantry_hub_refused_expired_total 1") != std::string::npos);
  CHECK(metrics.find("gantry_hub_sessions 0") != std::string::npos);
  CHECK(count(edge_log(), "tunnel: connected to") == 0);
}

}  // namespace
}  // namespace gantry::edge_test
