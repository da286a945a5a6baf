// A real, private containerd for tests (tools/containerd.sh), started in a TempDir.
//
//   gantry::test::Containerd containerd;               // started, images imported
//   auto runtime = gantry::edge::CriRuntime::create({.endpoint = containerd.endpoint()});
//   ...                                                 // destructor: everything cleaned up
//
// Images present: gantry::test::kPauseImage (the sandbox image) and kBusyboxImage (/bin/sh and
// the busybox applets). Only one containerd can run on a machine at a time: the fixture holds
// a machine-wide lock (/run/lock/gantry-containerd.lock) for its lifetime, and ctest serialises
// the tests that use it (RESOURCE_LOCK containerd in gantry_test). Failures throw
// std::runtime_error with the script's output (a test that cannot get its containerd fails).
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/support/test_support.h"

namespace gantry::test {

inline constexpr const char* kPauseImage = "gantry.local/pause:1";
inline constexpr const char* kBusyboxImage = "gantry.local/busybox:1";

struct CommandResult {
  int exit_code = -1;  // -1: did not finish within its timeout (then killed)
  std::string output;  // stdout and stderr
  bool ok() const { return exit_code == 0; }
};

// Runs argv[0] (an absolute path) with `args`, capturing its output.
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = std::chrono::seconds(120));

// tools/containerd.sh in the source tree (GANTRY_SOURCE_DIR, which ctest sets).
std::filesystem::path containerd_script();

class Containerd {
 public:
  // Starts containerd; `cgroup_roots` are cgroup paths (e.g. "/gantry-test") under which the
  // tests create pod cgroups: empty directories below them are removed at teardown.
  explicit Containerd(const std::vector<std::string>& cgroup_roots = {});
  ~Containerd();
  Containerd(const Containerd&) = delete;
  Containerd& operator=(const Containerd&) = delete;

  // unix://DIR/containerd.sock
  std::string endpoint() const { return endpoint_; }
  const std::filesystem::path& dir() const { return dir_.path(); }
  std::filesystem::path log_file() const { return dir() / "containerd.log"; }

  // `ctr -n k8s.io ARGS...` against this containerd.
  CommandResult ctr(const std::vector<std::string>& args) const;

  // The daemon only: containers keep running and the state stays (what a crash or an upgrade
  // of containerd looks like to edgecore). `kill`: SIGKILL instead of SIGTERM.
  void stop_daemon(bool kill = false);
  // Starts it again on the same state; returns when it answers.
  void start_daemon();
  void restart() {
    stop_daemon();
    start_daemon();
  }
  bool daemon_answers() const;

  // An OCI archive of busybox named NAME:TAG whose /etc/gantry-image holds `marker` (different
  // markers give different digests). Written under dir()/images.
  std::filesystem::path build_image(const std::string& name, const std::string& tag,
                                    const std::string& marker) const;
  // Imports an OCI archive straight into containerd (no registry).
  void import_image(const std::filesystem::path& archive) const;

  // A docker-registry on 127.0.0.1:PORT (a free port) over plain http, which this containerd
  // pulls from as "127.0.0.1:PORT/NAME:TAG". Returns "127.0.0.1:PORT". Stopped at teardown.
  std::string start_registry();
  // Pushes an OCI archive to the registry as NAME:TAG; returns the full reference
  // "127.0.0.1:PORT/NAME:TAG".
  std::string push_image(const std::filesystem::path& archive, const std::string& name_tag) const;
  void stop_registry();

 private:
  CommandResult script(const std::vector<std::string>& args,
                       std::chrono::milliseconds timeout = std::chrono::seconds(120)) const;
  void must(const std::vector<std::string>& args, const char* what) const;

  int lock_fd_ = -1;
  TempDir dir_;
  std::string endpoint_;
  std::string registry_;  // "127.0.0.1:PORT" once started
};

}  // namespace gantry::test
