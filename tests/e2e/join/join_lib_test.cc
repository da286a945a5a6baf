// gantryadm's join code in process against an in-process join server: what the binary cannot
// show on this machine (the systemd branch) and the TLS name check after the CA matched.
#include <catch2/catch.hpp>
#include <filesystem>

#include "cloudcore/join/join.h"
#include "cloudcore/store/rocks_store.h"
#include "common/base/atomic_file.h"
#include "common/net/event_loop.h"
#include "tests/support/test_support.h"
#include "tools/gantryadm/join.h"

namespace gantry::join_test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct Server {
  test::TempDir tmp;
  common::PrivateKey ca_key = *common::PrivateKey::generate();
  common::Certificate ca = *common::create_ca(ca_key, "test-ca", 24h * 365);
  std::string signing_key = common::random_hex(32);
  std::unique_ptr<cloud::Store> store;
  common::EventLoop loop{1};
  std::unique_ptr<cloud::JoinServer> server;

  Server() {
    cloud::RocksStoreOptions opts;
    opts.path = (tmp / "store").string();
    store = std::move(cloud::open_rocks_store(opts)).value();
    auto serving_key = common::PrivateKey::generate();
    REQUIRE(serving_key.ok());
    common::CertificateSpec spec;
    spec.common_name = "cloudcore";
    spec.ip_addresses = {"127.0.0.1"};  // not "localhost": see the name check below
    spec.client_auth = false;
    auto serving = common::issue_certificate(serving_key->get(), spec, ca, ca_key);
    REQUIRE(serving.ok());
    common::TlsOptions tls;
    tls.cert_pem = serving->to_pem();
    tls.key_pem = serving_key->to_pem();
    tls.verify_peer = false;
    auto ctx = common::TlsContext::create(common::TlsRole::kServer, tls);
    REQUIRE(ctx.ok());
    common::HttpServerOptions http;
    http.address = "127.0.0.1";
    auto started = cloud::JoinServer::start(
        loop, *ctx, *store, {ca, *common::PrivateKey::from_pem(ca_key.to_pem()), signing_key},
        common::system_clock(), {}, http);
    REQUIRE(started.ok());
    server = std::move(started).value();
    loop.run();
  }
  ~Server() {
    server->stop();
    loop.stop();
  }

  adm::JoinOptions options(const fs::path& dir, const std::string& host = "127.0.0.1") {
    adm::JoinOptions o;
    o.cloudcore = fmt::format("{}:{}", host, server->port());
    o.token = common::make_join_token(common::ca_hash(ca),
                                      {std::chrono::system_clock::now() + 1h, "", ""}, signing_key);
    o.node_name = "edge-lib";
    o.province = "zhejiang";
    o.data_dir = dir;
    o.systemd_marker = tmp / "no-systemd";
    o.systemd_unit_dir = tmp / "units";
    return o;
  }
};

TEST_CASE("where systemd runs join installs the edgecore unit for this data dir", "[e2e]") {
  Server s;
  const fs::path dir = s.tmp / "edge";
  auto o = s.options(dir);
  fs::create_directories(s.tmp / "run-systemd");
  fs::create_directories(s.tmp / "units");
  o.systemd_marker = s.tmp / "run-systemd";
  auto r = adm::join(o);
  REQUIRE(r.ok());
  auto unit = common::read_file(s.tmp / "units" / "edgecore.service");
  REQUIRE(unit.ok());
  CHECK(unit->find(" --config " + (dir / "edgecore.yaml").string()) != std::string::npos);
  CHECK(unit->find("Restart=always") != std::string::npos);
  // Whatever systemctl did here (there is no systemd), the output says what happened.
  CHECK(r->text.find((s.tmp / "units" / "edgecore.service").string()) != std::string::npos);
  CHECK(fs::exists(dir / "edgecore.yaml"));
}

TEST_CASE("a host the serving certificate does not name is refused after the CA matched", "[e2e]") {
  Server s;
  const fs::path dir = s.tmp / "edge";
  auto r = adm::join(s.options(dir, "localhost"));
  REQUIRE_FALSE(r.ok());
  INFO(r.status().message());
  CHECK(r.status().message().find("TLS with cloudcore at localhost:") != std::string::npos);
  CHECK(r.status().message().find("certificate verification failed") != std::string::npos);
  CHECK_FALSE(fs::exists(dir / "pki"));
  CHECK_FALSE(fs::exists(dir / "edgecore.yaml"));
  // Nothing was created for the node either.
  auto kv = s.store->get("/nodes/edge-lib");
  REQUIRE(kv.ok());
  CHECK_FALSE(kv->has_value());
}

}  // namespace
}  // namespace gantry::join_test
