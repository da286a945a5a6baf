// HttpServer over TLS on 127.0.0.1, driven by curl (what operators and kubectl-like clients use).
#include "common/net/http_server.h"

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <thread>

#include "common/net/event_loop.h"
#include "tests/integration/common/net/net_test_support.h"
#include "tests/support/test_support.h"

namespace gantry::common {
namespace {

using gantry::test::eventually;
using gantry::test::TempDir;
using testing::TestCa;

void write_file(const std::filesystem::path& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary);
  out << data;
}

// Runs a shell command and returns its standard output.
std::string run(const std::string& command) {
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) out.append(buffer, n);
  pclose(pipe);
  return out;
}

class HttpFixture {
 public:
  HttpFixture(Router router, HttpServerOptions options = {}, bool request_client_cert = false)
      : ca_("http-test-ca"), loop_(2) {
    auto cert = ca_.issue("gantry-api");
    TlsOptions tls_options;
    tls_options.cert_pem = cert.cert_pem;
    tls_options.key_pem = cert.key_pem;
    tls_options.ca_pem = ca_.ca_pem();
    tls_options.verify_peer = false;
    tls_options.request_client_cert = request_client_cert;
    auto tls = TlsContext::create(TlsRole::kServer, tls_options);
    REQUIRE(tls.ok());
    options.address = "127.0.0.1";
    options.port = 0;
    auto server = HttpServer::start(loop_, *tls, options, std::move(router));
    REQUIRE(server.ok());
    server_ = std::move(*server);
    loop_.run();
    write_file(dir_ / "ca.pem", ca_.ca_pem());
  }

  ~HttpFixture() {
    server_->stop();
    loop_.stop();
  }

  std::string url(const std::string& path) const {
    return "https://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  // curl verifying the server against our CA; -w appends the status code.
  std::string curl(const std::string& args) const {
    return "curl -s --max-time 60 --cacert " + (dir_ / "ca.pem").string() + " " + args;
  }

  TestCa ca_;
  TempDir dir_;
  EventLoop loop_;
  std::unique_ptr<HttpServer> server_;
};

Router pods_router() {
  Router router;
  router.add("GET", "/api/v1/namespaces/{ns}/pods/{name}", [](Request& request) {
    return Response::json(200, "{\"ns\":\"" + request.param("ns") + "\",\"name\":\"" +
                                   request.param("name") + "\",\"watch\":\"" +
                                   request.query_param("watch").value_or("") + "\"}");
  });
  router.add("POST", "/upload", [](Request& request) {
    return Response::text(200, "got " + std::to_string(request.body.size()) + " bytes");
  });
  return router;
}

TEST_CASE("HTTPS routes fill path parameters and decoded query parameters", "[net][http]") {
  HttpFixture fixture(pods_router());
  auto out = run(
      fixture.curl("-w ' %{http_code}' '" +
                   fixture.url("/api/v1/namespaces/kube%2Dsystem/pods/web-1?watch=tr%75e") + "'"));
  CHECK(out == "{\"ns\":\"kube-system\",\"name\":\"web-1\",\"watch\":\"true\"} 200");
}

TEST_CASE("HTTPS answers 404 for unknown paths and 405 for a known path with another method",
          "[net][http]") {
  HttpFixture fixture(pods_router());
  CHECK(run(fixture.curl("-o /dev/null -w '%{http_code}' " + fixture.url("/api/v1/nothing"))) ==
        "404");
  CHECK(run(fixture.curl("-o /dev/null -w '%{http_code}' -X DELETE " +
                         fixture.url("/api/v1/namespaces/a/pods/b"))) == "405");
}

TEST_CASE("HTTPS rejects a body above the limit with 413 and accepts one below it", "[net][http]") {
  HttpServerOptions options;
  options.max_body_bytes = 1024;
  HttpFixture fixture(pods_router(), options);
  write_file(fixture.dir_ / "big", std::string(4096, 'x'));
  write_file(fixture.dir_ / "small", std::string(1000, 'x'));
  CHECK(run(fixture.curl("-o /dev/null -w '%{http_code}' --data-binary @" +
                         (fixture.dir_ / "big").string() + " " + fixture.url("/upload"))) == "413");
  CHECK(run(fixture.curl("-w ' %{http_code}' --data-binary @" + (fixture.dir_ / "small").string() +
                         " " + fixture.url("/upload"))) == "got 1000 bytes 200");
  CHECK(fixture.server_->stats().rejected_too_large == 1);
}

TEST_CASE("HTTPS keeps the connection alive across requests", "[net][http]") {
  HttpFixture fixture(pods_router());
  // One curl, two URLs: curl reuses the connection when the server keeps it open.
  auto out = run(fixture.curl("-w '|' " + fixture.url("/api/v1/namespaces/a/pods/one") + " " +
                              fixture.url("/api/v1/namespaces/b/pods/two")));
  CHECK(out ==
        "{\"ns\":\"a\",\"name\":\"one\",\"watch\":\"\"}|{\"ns\":\"b\",\"name\":\"two\","
        "\"watch\":\"\"}|");
  CHECK(fixture.server_->stats().requests == 2);
  CHECK(fixture.server_->stats().connections == 1);
}

// The handler hands its stream to the test, which writes from other threads.
struct StreamSlot {
  std::mutex mu;
  std::shared_ptr<ResponseStream> stream;
  std::atomic<bool> client_gone{false};

  std::shared_ptr<ResponseStream> get() {
    std::lock_guard lock(mu);
    return stream;
  }
};

Router streaming_router(std::shared_ptr<StreamSlot> slot) {
  Router router;
  router.add("GET", "/watch", [slot](Request& request) {
    auto stream = request.stream(200, {{"Content-Type", "application/json"}});
    stream->on_closed([slot] { slot->client_gone = true; });
    stream->write("{\"type\":\"ADDED\",\"n\":0}\n");
    std::lock_guard lock(slot->mu);
    slot->stream = stream;
    return Response{};
  });
  return router;
}

TEST_CASE(
    "a streamed response delivers chunks while the handler keeps writing from another "
    "thread",
    "[net][http]") {
  auto slot = std::make_shared<StreamSlot>();
  HttpFixture fixture(streaming_router(slot));
  FILE* pipe = popen(fixture
                         .curl("--no-buffer -D " + (fixture.dir_ / "headers").string() + " " +
                               fixture.url("/watch"))
                         .c_str(),
                     "r");
  REQUIRE(pipe != nullptr);
  auto read_line = [pipe] {
    char line[256];
    return std::string(fgets(line, sizeof(line), pipe) != nullptr ? line : "");
  };
  // The first chunk arrives while the stream is still open.
  CHECK(read_line() == "{\"type\":\"ADDED\",\"n\":0}\n");
  REQUIRE(eventually([&] { return slot->get() != nullptr; }));
  auto stream = slot->get();
  for (int i = 1; i <= 3; ++i) {
    std::thread writer(
        [&] { CHECK(stream->write("{\"type\":\"MODIFIED\",\"n\":" + std::to_string(i) + "}\n")); });
    writer.join();
    CHECK(read_line() == "{\"type\":\"MODIFIED\",\"n\":" + std::to_string(i) + "}\n");
    CHECK(stream->is_open());
  }
  std::thread([&] { stream->close(); }).join();
  CHECK(read_line().empty());  // EOF: the response ended
  CHECK(pclose(pipe) == 0);
  std::ifstream headers(fixture.dir_ / "headers");
  std::string all((std::istreambuf_iterator<char>(headers)), std::istreambuf_iterator<char>());
  CHECK_THAT(all, Catch::Contains("ransfer-Encoding: chunked"));
  CHECK_FALSE(slot->client_gone);  // the handler closed it; not a disconnect
}

TEST_CASE("a streamed response notices the client going away and refuses further writes",
          "[net][http]") {
  auto slot = std::make_shared<StreamSlot>();
  HttpFixture fixture(streaming_router(slot));
  // curl gives up after a second, in the middle of the stream.
  std::thread client([&] {
    run("curl -s --max-time 1 --cacert " + (fixture.dir_ / "ca.pem").string() + " " +
        fixture.url("/watch") + " > /dev/null");
  });
  REQUIRE(eventually([&] { return slot->client_gone.load(); }, std::chrono::seconds(60)));
  client.join();
  auto stream = slot->get();
  REQUIRE(stream != nullptr);
  CHECK_FALSE(stream->write("nobody is listening\n"));
  CHECK_FALSE(stream->is_open());
}

TEST_CASE("a slow stream reader is shed when the stream buffer would overflow", "[net][http]") {
  auto slot = std::make_shared<StreamSlot>();
  HttpServerOptions options;
  options.max_stream_buffer_bytes = 64 * 1024;
  HttpFixture fixture(streaming_router(slot), options);
  // A client that connects and then never reads (curl paused by a full pipe is too uncertain):
  // write faster than anything can drain until write() refuses.
  std::thread client([&] {
    run(fixture.curl("--max-time 30 --limit-rate 1k " + fixture.url("/watch") + " > /dev/null"));
  });
  REQUIRE(eventually([&] { return slot->get() != nullptr; }, std::chrono::seconds(60)));
  auto stream = slot->get();
  const std::string chunk(16 * 1024, 'e');
  bool refused = false;
  for (int i = 0; i < 100000 && !refused; ++i) refused = !stream->write(chunk);
  CHECK(refused);
  CHECK(eventually([&] { return slot->client_gone.load(); }));
  CHECK(fixture.server_->stats().streams_shed == 1);
  client.join();
}

TEST_CASE("HTTPS gives handlers the CN of an optional client certificate", "[net][http]") {
  Router router;
  router.add("GET", "/whoami", [](Request& request) {
    return Response::text(
        200, request.peer.common_name.empty() ? "anonymous" : request.peer.common_name);
  });
  HttpFixture fixture(std::move(router), {}, /*request_client_cert=*/true);
  auto cert = fixture.ca_.issue("system:node:edge-7");
  write_file(fixture.dir_ / "client.pem", cert.cert_pem);
  write_file(fixture.dir_ / "client.key", cert.key_pem);
  CHECK(run(fixture.curl(fixture.url("/whoami"))) == "anonymous");
  CHECK(run(fixture.curl("--cert " + (fixture.dir_ / "client.pem").string() + " --key " +
                         (fixture.dir_ / "client.key").string() + " " + fixture.url("/whoami"))) ==
        "system:node:edge-7");
}

TEST_CASE("a deferred response is answered later from another thread, plain or streamed",
          "[net][http]") {
  std::mutex mu;
  std::vector<std::shared_ptr<DeferredResponse>> pending;
  Router router;
  router.add("GET", "/later/{how}", [&](Request& request) {
    auto deferred = request.defer();
    REQUIRE(deferred);
    std::lock_guard lock(mu);
    pending.push_back(deferred);
    return Response::text(500, "the return value of a deferring handler is ignored");
  });
  HttpFixture fixture(std::move(router));
  auto take = [&] {
    std::shared_ptr<DeferredResponse> d;
    REQUIRE(eventually([&] {
      std::lock_guard lock(mu);
      if (pending.empty()) return false;
      d = pending.front();
      pending.erase(pending.begin());
      return true;
    }));
    return d;
  };

  std::string plain;
  std::thread client(
      [&] { plain = run(fixture.curl("-w ' %{http_code}' " + fixture.url("/later/plain"))); });
  std::thread([d = take()] { d->respond(Response::text(404, "not yet")); }).join();
  client.join();
  CHECK(plain == "not yet 404");

  std::string streamed;
  std::thread stream_client(
      [&] { streamed = run(fixture.curl("--no-buffer " + fixture.url("/later/stream"))); });
  auto d = take();
  std::atomic<size_t> drained{0};
  std::thread([&] {
    auto stream = d->stream(200, {{"Content-Type", "text/plain"}});
    stream->on_drain([&](size_t n) { drained += n; });
    CHECK(stream->write("hello "));
    CHECK(stream->write("world\n"));
    CHECK(eventually([&] { return drained.load() == 12; }));
    stream->close();
  }).join();
  stream_client.join();
  CHECK(streamed == "hello world\n");

  // A deferred response dropped without an answer is a 500, not a hang.
  std::string dropped;
  std::thread drop_client(
      [&] { dropped = run(fixture.curl("-w ' %{http_code}' " + fixture.url("/later/drop"))); });
  take().reset();
  drop_client.join();
  CHECK_THAT(dropped, Catch::EndsWith(" 500"));
}

}  // namespace
}  // namespace gantry::common
