// A real, private etcd for tests: Debian's /usr/bin/etcd (etcd-server, 3.4) as a one-member
// cluster on free loopback ports with its data in a TempDir.
//
//   gantry::test::Etcd etcd;                           // started and answering /health
//   EtcdStoreOptions options{.endpoints = {etcd.endpoint()}};
//   ...                                                // destructor: stopped, data removed
//
// Several may run at once (each has its own ports and directory). Failures throw
// std::runtime_error with the daemon's log (a test that cannot get its etcd fails).
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
  std::vector<std::string> extra_args;
  std::chrono::milliseconds start_timeout{std::chrono::seconds(30)};
};

class Etcd {
 public:
  explicit Etcd(EtcdOptions options = {});
  ~Etcd();
  Etcd(const Etcd&) = delete;
  Etcd& operator=(const Etcd&) = delete;

  // "127.0.0.1:PORT" (the client port; plain http/gRPC without TLS).
  const std::string& endpoint() const { return endpoint_; }
  const std::filesystem::path& data_dir() const { return data_; }
  std::string log() const;

  // Stops the daemon (SIGTERM, then SIGKILL after 10 s; `kill`: SIGKILL at once). The data stays.
  void stop(bool kill = false);
  // Starts it again on the same data and ports; returns when it answers /health.
  void start();
  bool running() const { return process_ != nullptr; }
  bool healthy() const;

  // `etcdctl --endpoints ENDPOINT ARGS...`, stdout+stderr; throws when it fails.
  std::string etcdctl(const std::vector<std::string>& args) const;

 private:
  bool launch();  // false: it exited (a port taken meanwhile); the caller picks new ports

  EtcdOptions options_;
  TempDir dir_;
  std::filesystem::path data_;
  unsigned short client_port_ = 0, peer_port_ = 0;
  std::string endpoint_;
  std::unique_ptr<ChildProcess> process_;
};

}  // namespace gantry::test
