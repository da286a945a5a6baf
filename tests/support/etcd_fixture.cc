#include "tests/support/etcd_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/containerd_fixture.h"  // run_command

namespace gantry::test {
namespace {

constexpr const char* kEtcd = "/usr/bin/etcd";
constexpr const char* kEtcdctl = "/usr/bin/etcdctl";

// GET http://127.0.0.1:port/path with a short timeout; the response (status line, headers, body)
// or "" when the connection fails.
std::string http_get(unsigned short port, const std::string& path) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return "";
  timeval tv{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  std::string response;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string request = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == ssize_t(request.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) response.append(buf, size_t(n));
    }
  }
  ::close(fd);
  return response;
}

}  // namespace

Etcd::Etcd(EtcdOptions options) : options_(std::move(options)), data_(dir_ / "data") {
  if (::access(kEtcd, X_OK) != 0)
    throw std::runtime_error(std::string(kEtcd) +
                             " is missing: install etcd-server (tools/deps.sh)");
  // A free port can be taken between free_port() and etcd's bind: then etcd exits and we try
  // other ports.
  for (int attempt = 0; attempt < 5; ++attempt) {
    client_port_ = free_port();
    peer_port_ = free_port();
    if (peer_port_ == client_port_) continue;
    endpoint_ = "127.0.0.1:" + std::to_string(client_port_);
    if (launch()) return;
  }
  throw std::runtime_error("etcd did not start:\n" + log());
}

Etcd::~Etcd() {
  if (process_) stop();
}

std::string Etcd::log() const {
  std::ifstream in(dir_ / "etcd.log");
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

bool Etcd::healthy() const {
  return http_get(client_port_, "/health").find("\"health\":\"true\"") != std::string::npos;
}

bool Etcd::launch() {
  std::string client = "http://" + endpoint_;
  std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  std::vector<std::string> argv = {kEtcd,
                                   "--name=gantry-test",
                                   "--data-dir=" + data_.string(),
                                   "--listen-client-urls=" + client,
                                   "--advertise-client-urls=" + client,
                                   "--listen-peer-urls=" + peer,
                                   "--initial-advertise-peer-urls=" + peer,
                                   "--initial-cluster=gantry-test=" + peer,
                                   "--initial-cluster-state=new",
                                   "--max-txn-ops=" + std::to_string(options_.max_txn_ops),
                                   "--logger=zap",
                                   "--log-outputs=stderr",
                                   "--log-level=warn"};
  argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
  process_ = std::make_unique<ChildProcess>(argv, dir_ / "etcd.log");
  // Up when /health answers; an etcd that exits (e.g. its port was taken) ends the wait at once.
  bool up = eventually([&] { return !process_->running() || healthy(); }, options_.start_timeout,
                       std::chrono::milliseconds(20));
  if (up && process_->running()) return true;
  bool exited = !process_->running();
  process_.reset();  // SIGKILL
  if (exited) return false;
  throw std::runtime_error("etcd did not answer /health within the start timeout:\n" + log());
}

void Etcd::stop(bool kill) {
  if (!process_) return;
  process_->signal(kill ? SIGKILL : SIGTERM);
  if (process_->wait(std::chrono::seconds(10)) == -1) {
    process_->signal(SIGKILL);
    process_->wait();
  }
  process_.reset();
}

void Etcd::start() {
  if (process_) return;
  if (!launch()) throw std::runtime_error("etcd did not start again:\n" + log());
}

std::string Etcd::etcdctl(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"/usr/bin/env", "ETCDCTL_API=3", kEtcdctl,
                                   "--endpoints=" + endpoint_};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult result = run_command(argv, std::chrono::seconds(30));
  if (!result.ok()) throw std::runtime_error("etcdctl failed: " + result.output);
  return result.output;
}

}  // namespace gantry::test
