// The real cloudcore on a real etcd (store.backend: etcd): what an operator sees. gantryadm init
// makes the PKI and config, tests/support/etcd_fixture the etcd, curl talks to the REST API.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "tests/support/containerd_fixture.h"  // run_command
#include "tests/support/etcd_fixture.h"
#include "tests/support/test_support.h"

namespace gantry::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = 0; (at = text.find(from, at)) != std::string::npos; at += to.size())
    text.replace(at, from.size(), to);
  return text;
}

struct Cluster {
  TempDir dir;
  Etcd etcd;
  fs::path etc = dir / "etc";
  unsigned short api_port = free_port();
  std::string token;
  std::unique_ptr<ChildProcess> cloudcore;
  int starts = 0;
  std::string base_yaml;

  explicit Cluster(EtcdOptions etcd_options = {}) : etcd(std::move(etcd_options)) {
    auto init = run_command({(build_dir() / "tools/gantryadm/gantryadm").string(), "init",
                             "--data-dir", etc.string(), "--advertise-address", "127.0.0.1"});
    INFO(init.output);
    REQUIRE(init.ok());
    std::string yaml = read_text(etc / "cloudcore.yaml");
    yaml = replace_all(yaml, "\"0.0.0.0:10000\"", "\"127.0.0.1:0\"");
    yaml = replace_all(yaml, "\"0.0.0.0:10002\"", "\"127.0.0.1:0\"");
    yaml = replace_all(yaml, "\"0.0.0.0:10443\"", fmt::format("\"127.0.0.1:{}\"", api_port));
    base_yaml = yaml;
    write_config(etcd.endpoints());
    std::string tokens = read_text(etc / "tokens.csv");
    token = tokens.substr(0, tokens.find(','));
  }

  // cloudcore.yaml with these etcd endpoints ("127.0.0.1:PORT" each).
  void write_config(const std::vector<std::string>& endpoints) {
    std::string list;
    for (const auto& e : endpoints)
      list += fmt::format("{}\"http://{}\"", list.empty() ? "" : ", ", e);
    std::ofstream(etc / "cloudcore.yaml")
        << base_yaml
        << fmt::format(
               "store:\n  backend: etcd\n  etcd:\n    endpoints: [{}]\n"
               "    request_timeout: 2s\n",
               list);
  }

  void start() {
    cloudcore = std::make_unique<ChildProcess>(
        std::vector<std::string>{(build_dir() / "cloudcore/cloudcore").string(), "--config",
                                 (etc / "cloudcore.yaml").string()},
        dir / fmt::format("cloudcore-{}.log", ++starts));
    bool ready = eventually(
        [&] {
          return cloudcore->log().find(" ready: ") != std::string::npos || !cloudcore->running();
        },
        60s);
    INFO(cloudcore->log());
    REQUIRE(ready);
    REQUIRE(cloudcore->running());
  }

  // curl METHOD https://127.0.0.1:API/PATH; returns "CODE\nBODY".
  std::pair<int, std::string> call(const std::string& method, const std::string& path,
                                   const std::string& body = "") {
    std::vector<std::string> argv = {"/usr/bin/curl",
                                     "-sS",
                                     "--max-time",
                                     "20",
                                     "--cacert",
                                     (etc / "pki/ca.crt").string(),
                                     "-H",
                                     "Authorization: Bearer " + token,
                                     "-X",
                                     method,
                                     "-w",
                                     "\n%{http_code}"};
    if (!body.empty()) {
      argv.insert(argv.end(), {"-H", "Content-Type: application/json", "--data-binary", body});
    }
    argv.push_back(fmt::format("https://127.0.0.1:{}{}", api_port, path));
    auto r = run_command(argv, 60s);
    auto nl = r.output.rfind('\n');
    if (nl == std::string::npos) return {0, r.output};
    return {std::atoi(r.output.c_str() + nl + 1), r.output.substr(0, nl)};
  }
};

const std::string kConfigMap =
    R"({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"NAME"},"data":{"k":"v"}})";

TEST_CASE("cloudcore on etcd: objects live in etcd, an etcd outage is a 503 and heals by itself",
          "[e2e]") {
  Cluster c;
  c.start();
  CHECK_THAT(c.cloudcore->log(), Catch::Contains("store etcd at http://" + c.etcd.endpoint()));

  auto created = c.call("POST", "/api/v1/namespaces/default/configmaps",
                        replace_all(kConfigMap, "NAME", "one"));
  INFO(created.second);
  REQUIRE(created.first == 201);
  CHECK_THAT(c.etcd.etcdctl({"get", "--prefix", "--keys-only", "/gantry/configmaps/"}),
             Catch::Contains("/gantry/configmaps/default/one"));
  // The resourceVersion is etcd's revision.
  auto rev = c.etcd.etcdctl({"get", "/gantry/configmaps/default/one", "--write-out=fields"});
  auto got = c.call("GET", "/api/v1/namespaces/default/configmaps/one");
  REQUIRE(got.first == 200);
  auto rv_at = got.second.find("\"resourceVersion\":\"");
  REQUIRE(rv_at != std::string::npos);
  std::string rv = got.second.substr(rv_at + 19, got.second.find('"', rv_at + 19) - rv_at - 19);
  CHECK_THAT(rev, Catch::Contains("\"ModRevision\" : " + rv));

  c.etcd.stop(/*kill=*/true);
  auto down = c.call("POST", "/api/v1/namespaces/default/configmaps",
                     replace_all(kConfigMap, "NAME", "two"));
  CHECK(down.first == 503);
  CHECK_THAT(down.second, Catch::Contains("etcd is unreachable"));
  CHECK(c.cloudcore->running());

  c.etcd.start();
  REQUIRE(eventually(
      [&] {
        return c.call("POST", "/api/v1/namespaces/default/configmaps",
                      replace_all(kConfigMap, "NAME", "three"))
                   .first == 201;
      },
      60s, 200ms));
  // The registry's watch came back too: the new object is listed (the list is served from it).
  REQUIRE(eventually(
      [&] {
        auto list = c.call("GET", "/api/v1/namespaces/default/configmaps");
        return list.first == 200 && list.second.find("\"three\"") != std::string::npos &&
               list.second.find("\"one\"") != std::string::npos;
      },
      30s, 100ms));

  // A restarted cloudcore finds everything in etcd.
  c.cloudcore->signal(SIGTERM);
  CHECK(c.cloudcore->wait(30s) == 0);
  c.start();
  auto again = c.call("GET", "/api/v1/namespaces/default/configmaps/three");
  CHECK(again.first == 200);
}

TEST_CASE("cloudcore refuses to start when no etcd answers, and says so", "[e2e]") {
  Cluster c;
  c.etcd.stop();
  ChildProcess cloudcore({(build_dir() / "cloudcore/cloudcore").string(), "--config",
                          (c.etc / "cloudcore.yaml").string()},
                         c.dir / "cloudcore.log");
  CHECK(cloudcore.wait(60s) == 1);
  CHECK_THAT(cloudcore.log(), Catch::Contains("etcd is unreachable"));
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

TEST_CASE(
    "a 3-member etcd loses its leader to kill -9: writes resume after the election, none "
    "acknowledged is lost",
    "[e2e]") {
  Cluster c({.members = 3});
  // The member cloudcore talks to is the leader (gRPC takes the first endpoint that answers):
  // killing it takes away both cloudcore's connection and the quorum's leader at once.
  c.etcd.move_leader(0);
  c.start();
  std::vector<std::string> acknowledged;
  int next = 0;
  auto write = [&] {
    std::string name = fmt::format("w-{}", next++);
    auto r = c.call("POST", "/api/v1/namespaces/default/configmaps",
                    replace_all(kConfigMap, "NAME", name));
    if (r.first == 201) acknowledged.push_back(name);
    return r;
  };
  for (int i = 0; i < 5; ++i) REQUIRE(write().first == 201);

  c.etcd.stop_member(0, /*kill=*/true);
  const auto killed_at = std::chrono::steady_clock::now();
  // Writes meanwhile are refused with a Status naming etcd, or succeed; cloudcore keeps running.
  int refused = 0;
  std::string refusal;
  bool resumed = eventually(
      [&] {
        auto r = write();
        if (r.first == 201) return true;
        ++refused;
        if (refusal.empty()) refusal = r.second;
        CHECK(r.first == 503);
        CHECK_THAT(r.second, Catch::Contains("etcd"));
        return false;
      },
      40s, 50ms);
  const double resume_s = seconds_since(killed_at);
  INFO(c.cloudcore->log());
  INFO(c.etcd.log());
  REQUIRE(resumed);
  CHECK(c.cloudcore->running());
  int new_leader = -1;
  REQUIRE(eventually([&] { return (new_leader = c.etcd.leader()) > 0; }, 20s, 100ms));
  for (int i = 0; i < 5; ++i) REQUIRE(write().first == 201);

  // Every acknowledged write is there, through the API and in etcd.
  for (const auto& name : acknowledged) {
    INFO(name);
    CHECK(c.call("GET", "/api/v1/namespaces/default/configmaps/" + name).first == 200);
  }
  std::string keys = c.etcd.etcdctl({"get", "--prefix", "--keys-only", "/gantry/configmaps/"});
  for (const auto& name : acknowledged) {
    INFO(name);
    CHECK_THAT(keys, Catch::Contains("/gantry/configmaps/default/" + name + "\n"));
  }
  fmt::print(
      "etcd e2e: 3-member etcd, its leader (cloudcore's member) killed: writes resumed after "
      "{:.2f} s ({} refused meanwhile; new leader m{}), {} acknowledged writes all present\n",
      resume_s, refused, new_leader, acknowledged.size());
  if (!refusal.empty()) fmt::print("etcd e2e: a refusal meanwhile: {}\n", refusal.substr(0, 400));
}

// A TCP proxy on 127.0.0.1 that holds every chunk for `delay` before passing it on (both ways):
// an etcd that answers slowly.
class SlowProxy {
 public:
  explicit SlowProxy(unsigned short target) : target_(target) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = loopback(0);
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listen_fd_, 64) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    threads_.emplace_back([this] { accept_loop(); });
  }
  ~SlowProxy() {
    stopping_ = true;
    {
      std::lock_guard lock(mu_);
      for (int fd : fds_) ::shutdown(fd, SHUT_RDWR);
    }
    std::vector<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      threads.swap(threads_);
    }
    for (auto& t : threads) t.join();
    // Threads started while joining (none once the accept loop ended).
    for (auto& t : threads_) t.join();
    ::close(listen_fd_);
    for (int fd : fds_) ::close(fd);
  }
  std::string endpoint() const { return fmt::format("127.0.0.1:{}", port_); }
  void set_delay(std::chrono::milliseconds d) { delay_ms_ = d.count(); }

 private:
  static sockaddr_in loopback(unsigned short port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return addr;
  }
  void accept_loop() {
    while (!stopping_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      int client = ::accept(listen_fd_, nullptr, nullptr);
      if (client < 0) continue;
      int upstream = ::socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr = loopback(target_);
      if (::connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(client);
        ::close(upstream);
        continue;
      }
      std::lock_guard lock(mu_);
      fds_.push_back(client);
      fds_.push_back(upstream);
      threads_.emplace_back([this, client, upstream] { pump(client, upstream); });
      threads_.emplace_back([this, client, upstream] { pump(upstream, client); });
    }
  }
  // Copies from -> to, each chunk `delay` after it was read (the delay injected, not a wait for
  // a condition).
  void pump(int from, int to) {
    char buf[16384];
    while (!stopping_) {
      pollfd p{from, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      ssize_t n = ::recv(from, buf, sizeof buf, 0);
      if (n <= 0) break;
      const auto due =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms_.load());
      while (!stopping_ && std::chrono::steady_clock::now() < due)
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      for (ssize_t sent = 0; sent < n && !stopping_;) {
        ssize_t w = ::send(to, buf + sent, size_t(n - sent), MSG_NOSIGNAL);
        if (w <= 0) return;
        sent += w;
      }
    }
    ::shutdown(to, SHUT_WR);
  }

  unsigned short target_;
  int listen_fd_ = -1;
  unsigned short port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<int64_t> delay_ms_{0};
  std::mutex mu_;
  std::vector<int> fds_;
  std::vector<std::thread> threads_;
};

TEST_CASE(
    "an etcd that answers slowly: writes succeed or are a 503 that says so, cloudcore stays up",
    "[e2e]") {
  Cluster c;
  SlowProxy proxy(static_cast<unsigned short>(std::stoi(c.etcd.endpoint().substr(10))));
  c.write_config({proxy.endpoint()});
  c.start();
  REQUIRE(c.call("POST", "/api/v1/namespaces/default/configmaps",
                 replace_all(kConfigMap, "NAME", "fast"))
              .first == 201);

  // 1.5 s each way: a round trip of 3 s, past store.etcd.request_timeout (2 s), within gRPC's
  // keepalive timeout (5 s, so the connection itself stays).
  proxy.set_delay(1500ms);
  const auto slow_at = std::chrono::steady_clock::now();
  auto slow = c.call("POST", "/api/v1/namespaces/default/configmaps",
                     replace_all(kConfigMap, "NAME", "slow"));
  const double answered_s = seconds_since(slow_at);
  INFO(slow.second);
  CHECK(slow.first == 503);
  CHECK_THAT(slow.second, Catch::Contains("etcd is unreachable"));
  CHECK(answered_s < 15);  // bounded by the request timeout, not hanging
  CHECK(c.cloudcore->running());

  // A slow but workable etcd (300 ms each way): writes succeed.
  proxy.set_delay(300ms);
  REQUIRE(eventually(
      [&] {
        return c.call("POST", "/api/v1/namespaces/default/configmaps",
                      replace_all(kConfigMap, "NAME", "workable"))
                   .first == 201;
      },
      30s, 200ms));
  proxy.set_delay(0ms);
  CHECK(c.call("GET", "/api/v1/namespaces/default/configmaps/workable").first == 200);
  CHECK(c.cloudcore->running());
  fmt::print("etcd e2e: etcd behind a 1.5 s-each-way proxy: a write answered {} in {:.1f} s: {}\n",
             slow.first, answered_s, slow.second.substr(0, 400));
}

}  // namespace
}  // namespace gantry::test
