// A real, private etcd for tests: Debian's /usr/bin/etcd (etcd-server, 3.4) on free loopback
// ports with its data in a TempDir, one member by default or a cluster of several.
//
//   gantry::test::Etcd etcd;                           // started and answering /health
//   EtcdStoreOptions options{.endpoints = {etcd.endpoint()}};
//   ...                                                // destructor: stopped, data removed
//
//   gantry::test::Etcd cluster({.members = 3});        // every member healthy
//   cluster.endpoints();                               // {"127.0.0.1:P0", "127.0.0.1:P1", ...}
//   int leader = cluster.leader();                     // the raft leader's index
//   cluster.stop_member(leader, /*kill=*/true);        // SIGKILL: an election follows
//
// Several may run at once (each has its own ports and directory). Failures throw
// std::runtime_error with the daemons' logs (a test that cannot get its etcd fails).
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace gantry::test {

struct EtcdOptions {
  int max_txn_ops = 128;  // etcd's --max-txn-ops (its default)
  int members = 1;        // >1: a cluster of that many members on loopback ports
  std::vector<std::string> extra_args;
  std::chrono::milliseconds start_timeout{std::chrono::seconds(30)};
};

class Etcd {
 public:
  explicit Etcd(EtcdOptions options = {});
  ~Etcd();
  Etcd(const Etcd&) = delete;
  Etcd& operator=(const Etcd&) = delete;

  // "127.0.0.1:PORT" (the first member's client port; plain http/gRPC without TLS).
  const std::string& endpoint() const { return members_[0].endpoint; }
  // Every member's, in member order.
  std::vector<std::string> endpoints() const;
  const std::filesystem::path& data_dir() const { return members_[0].data; }
  // Every member's log, each under a header line.
  std::string log() const;

  // Every member: stops (SIGTERM, then SIGKILL after 10 s; `kill`: SIGKILL at once), the data
  // stays; starts again on the same data and ports, returning when each answers /health.
  void stop(bool kill = false);
  void start();
  bool running() const;
  bool healthy() const;

  // One member (index into endpoints()).
  int members() const { return int(members_.size()); }
  void stop_member(int i, bool kill = false);
  void start_member(int i);
  bool member_running(int i) const { return members_[size_t(i)].process != nullptr; }
  // The index of the member that is the raft leader now, as the running members report it;
  // -1 when none is (an election is going on, or no quorum).
  int leader() const;
  // Hands the leadership to member i (etcdctl move-leader); returns when it leads.
  void move_leader(int i);

  // `etcdctl --endpoints ENDPOINTS ARGS...` with the running members' endpoints,
  // stdout+stderr; throws when it fails.
  std::string etcdctl(const std::vector<std::string>& args) const;

 private:
  struct Member {
    std::string name;
    unsigned short client_port = 0, peer_port = 0;
    std::string endpoint;
    std::filesystem::path data;
    std::unique_ptr<ChildProcess> process;
  };
  // Starts the given members; false: one exited (a port taken meanwhile) and every member was
  // stopped, the caller picks new ports.
  bool launch(const std::vector<int>& which);
  bool member_healthy(int i) const;
  void reap(int i);  // waits for a signalled member's exit (SIGKILL after 10 s)

  EtcdOptions options_;
  TempDir dir_;
  std::string initial_cluster_;
  std::vector<Member> members_;
};

}  // namespace gantry::test
