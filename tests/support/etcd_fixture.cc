#include "tests/support/etcd_fixture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
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

Etcd::Etcd(EtcdOptions options) : options_(std::move(options)) {
  if (::access(kEtcd, X_OK) != 0)
    throw std::runtime_error(std::string(kEtcd) +
                             " is missing: install etcd-server (tools/deps.sh)");
  if (options_.members < 1) throw std::runtime_error("etcd fixture: members must be >= 1");
  members_.resize(size_t(options_.members));
  std::vector<int> all;
  for (int i = 0; i < options_.members; ++i) {
    members_[size_t(i)].name = options_.members == 1 ? "gantry-test" : "m" + std::to_string(i);
    members_[size_t(i)].data =
        dir_ / (options_.members == 1 ? "data" : "data-" + members_[size_t(i)].name);
    all.push_back(i);
  }
  // A free port can be taken between free_port() and etcd's bind: then etcd exits and we try
  // other ports.
  for (int attempt = 0; attempt < 5; ++attempt) {
    std::set<unsigned short> ports;
    for (auto& m : members_) {
      m.client_port = free_port();
      m.peer_port = free_port();
      ports.insert(m.client_port);
      ports.insert(m.peer_port);
      m.endpoint = "127.0.0.1:" + std::to_string(m.client_port);
    }
    if (ports.size() != 2 * members_.size()) continue;
    initial_cluster_.clear();
    for (const auto& m : members_) {
      initial_cluster_ += (initial_cluster_.empty() ? "" : ",") + m.name +
                          "=http://127.0.0.1:" + std::to_string(m.peer_port);
    }
    for (const auto& m : members_) std::filesystem::remove_all(m.data);
    if (launch(all)) return;
  }
  throw std::runtime_error("etcd did not start:\n" + log());
}

Etcd::~Etcd() {
  // The data goes with the directory: no need for a graceful stop (a member stopping gracefully
  // without a quorum, or handing its leadership over, takes seconds).
  stop(/*kill=*/true);
}

std::vector<std::string> Etcd::endpoints() const {
  std::vector<std::string> out;
  for (const auto& m : members_) out.push_back(m.endpoint);
  return out;
}

std::string Etcd::log() const {
  std::stringstream out;
  for (const auto& m : members_) {
    std::ifstream in(dir_ / (m.name + ".log"));
    if (members_.size() > 1) out << "--- etcd member " << m.name << " (" << m.endpoint << ")\n";
    out << in.rdbuf();
  }
  return out.str();
}

bool Etcd::member_healthy(int i) const {
  return http_get(members_[size_t(i)].client_port, "/health").find("\"health\":\"true\"") !=
         std::string::npos;
}

bool Etcd::healthy() const {
  for (int i = 0; i < members(); ++i)
    if (!member_healthy(i)) return false;
  return true;
}

bool Etcd::running() const {
  for (const auto& m : members_)
    if (m.process) return true;
  return false;
}

bool Etcd::launch(const std::vector<int>& which) {
  for (int i : which) {
    Member& m = members_[size_t(i)];
    std::string client = "http://" + m.endpoint;
    std::string peer = "http://127.0.0.1:" + std::to_string(m.peer_port);
    std::vector<std::string> argv = {
        kEtcd,
        "--name=" + m.name,
        "--data-dir=" + m.data.string(),
        "--listen-client-urls=" + client,
        "--advertise-client-urls=" + client,
        "--listen-peer-urls=" + peer,
        "--initial-advertise-peer-urls=" + peer,
        "--initial-cluster=" + initial_cluster_,
        "--initial-cluster-state=new",
        "--initial-cluster-token=gantry-test-" + std::to_string(members_[0].peer_port),
        "--max-txn-ops=" + std::to_string(options_.max_txn_ops),
        "--logger=zap",
        "--log-outputs=stderr",
        "--log-level=warn"};
    argv.insert(argv.end(), options_.extra_args.begin(), options_.extra_args.end());
    m.process = std::make_unique<ChildProcess>(argv, dir_ / (m.name + ".log"));
  }
  // Up when /health answers (a member of a cluster: once it has a leader); an etcd that exits
  // (e.g. its port was taken) ends the wait at once.
  auto exited = [&] {
    for (int i : which)
      if (!members_[size_t(i)].process->running()) return true;
    return false;
  };
  auto up = [&] {
    for (int i : which)
      if (!member_healthy(i)) return false;
    return true;
  };
  bool ok = eventually([&] { return exited() || up(); }, options_.start_timeout,
                       std::chrono::milliseconds(20));
  if (ok && !exited()) return true;
  bool gone = exited();
  for (int i : which) members_[size_t(i)].process.reset();  // SIGKILL
  if (gone) return false;
  throw std::runtime_error("etcd did not answer /health within the start timeout:\n" + log());
}

void Etcd::reap(int i) {
  Member& m = members_[size_t(i)];
  if (m.process->wait(std::chrono::seconds(10)) == -1) {
    m.process->signal(SIGKILL);
    m.process->wait();
  }
  m.process.reset();
}

void Etcd::stop_member(int i, bool kill) {
  if (!members_[size_t(i)].process) return;
  members_[size_t(i)].process->signal(kill ? SIGKILL : SIGTERM);
  reap(i);
}

void Etcd::stop(bool kill) {
  // Every member signalled first, then waited for: together, as a cluster goes down.
  for (auto& m : members_)
    if (m.process) m.process->signal(kill ? SIGKILL : SIGTERM);
  for (int i = 0; i < members(); ++i)
    if (members_[size_t(i)].process) reap(i);
}

void Etcd::start_member(int i) {
  if (members_[size_t(i)].process) return;
  if (!launch({i})) throw std::runtime_error("etcd did not start again:\n" + log());
}

void Etcd::start() {
  std::vector<int> stopped;
  for (int i = 0; i < members(); ++i)
    if (!members_[size_t(i)].process) stopped.push_back(i);
  if (stopped.empty()) return;
  if (!launch(stopped)) throw std::runtime_error("etcd did not start again:\n" + log());
}

int Etcd::leader() const {
  std::string output;
  try {
    output = etcdctl({"endpoint", "status", "--write-out=json"});
  } catch (const std::exception&) {
    return -1;
  }
  // [{"Endpoint": "127.0.0.1:P", "Status": {"header": {"member_id": M, ...}, "leader": L}}, ...]
  auto statuses = nlohmann::json::parse(output, nullptr, false);
  if (!statuses.is_array()) return -1;
  for (const auto& s : statuses) {
    if (!s.is_object() || !s.contains("Status")) continue;
    const auto& st = s["Status"];
    uint64_t member = st["header"].value("member_id", uint64_t(0));
    uint64_t leader = st.value("leader", uint64_t(0));
    if (member == 0 || member != leader) continue;
    const std::string endpoint = s.value("Endpoint", "");
    for (int i = 0; i < members(); ++i)
      if (members_[size_t(i)].process && members_[size_t(i)].endpoint == endpoint) return i;
  }
  return -1;
}

void Etcd::move_leader(int i) {
  if (leader() == i) return;
  auto statuses =
      nlohmann::json::parse(etcdctl({"endpoint", "status", "--write-out=json"}), nullptr, false);
  uint64_t id = 0;
  for (const auto& s : statuses)
    if (s.is_object() && s.value("Endpoint", "") == members_[size_t(i)].endpoint)
      id = s["Status"]["header"].value("member_id", uint64_t(0));
  if (id == 0) throw std::runtime_error("etcd member " + members_[size_t(i)].name + " not found");
  std::stringstream hex;
  hex << std::hex << id;
  etcdctl({"move-leader", hex.str()});
  if (!eventually([&] { return leader() == i; }, std::chrono::seconds(20),
                  std::chrono::milliseconds(50)))
    throw std::runtime_error("etcd member " + members_[size_t(i)].name + " did not become leader");
}

std::string Etcd::etcdctl(const std::vector<std::string>& args) const {
  std::string endpoints;
  for (const auto& m : members_)
    if (m.process || members_.size() == 1) endpoints += (endpoints.empty() ? "" : ",") + m.endpoint;
  std::vector<std::string> argv = {"/usr/bin/env", "ETCDCTL_API=3", kEtcdctl,
                                   "--endpoints=" + endpoints};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult result = run_command(argv, std::chrono::seconds(30));
  if (!result.ok()) throw std::runtime_error("etcdctl failed: " + result.output);
  return result.output;
}

}  // namespace gantry::test
