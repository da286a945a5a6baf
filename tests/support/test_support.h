// Helpers every test may use: temp dirs that clean up, polling with a deadline, free ports.
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace gantry::test {

// A fresh directory under $TMPDIR, removed with everything in it when the object dies.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::filesystem::path& path() const { return path_; }
  std::string str() const { return path_.string(); }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Polls `condition` until it holds or `timeout` passes; returns whether it held. Use instead of
// sleeping: tests run on a loaded 2-core machine.
bool eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds timeout = std::chrono::seconds(20),
                std::chrono::milliseconds interval = std::chrono::milliseconds(10));

// A TCP port on 127.0.0.1 that was free a moment ago (for binaries that need a port number in
// their config; in-process servers bind port 0 instead).
unsigned short free_port();

// A child process (a real binary under test) with its stdout+stderr in a log file. Killed with
// SIGKILL when the object dies, if still running.
class ChildProcess {
 public:
  ChildProcess(std::vector<std::string> argv, std::filesystem::path log);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  int pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Waits for the exit and returns the exit code (128 + signal when killed); -1 on timeout.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  std::string log() const;

 private:
  int pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
  std::filesystem::path log_;
};

// Where the build tree is (binaries live there), from the environment ctest sets.
std::filesystem::path build_dir();

// `gantryadm init --data-dir DIR --advertise-address 127.0.0.1` with the cloudcore.yaml it writes
// listening on these loopback ports instead of 0.0.0.0:10000 (tunnel), :10443 (API) and :10002
// (join). False when init fails (its output is in DIR.log).
bool gantryadm_init_on_loopback(const std::filesystem::path& dir, uint16_t tunnel, uint16_t api,
                                uint16_t join);

// The kubectl binaries on this machine to test against: the oldest and newest of the kubectl
// package (1.27, 1.33), the ones in /usr/bin and /usr/local/bin, and Debian's 1.20 that
// tools/deps.sh unpacks into /var/cache/gantry-kubectl/1.20, those that exist.
std::vector<std::string> kubectl_binaries();

}  // namespace gantry::test
