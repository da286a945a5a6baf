// A whole Gantry on one machine for the edge runtime's end-to-end tests: a private containerd
// (tools/containerd.sh), cloudcore from `gantryadm init`, one edge node joined with
// `gantryadm join`, edgecore running pods on that containerd, and the real kubectl against the
// REST API. Every port is free, every directory temporary; the destructor stops everything.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "edgecore/runtime/runtime.h"
#include "tests/support/containerd_fixture.h"
#include "tests/support/test_support.h"

namespace gantry::edge_test {

struct Output {
  int exit_code = -1;
  std::string text;  // stdout and stderr
};

class EdgeCluster {
 public:
  // `edge_yaml_extra` is appended to the edgecore.yaml that join wrote (e.g. a short back-off).
  explicit EdgeCluster(std::string edge_yaml_extra = "");
  ~EdgeCluster();

  static constexpr const char* kNode = "edge-1";

  void start_cloudcore();
  void kill_cloudcore();  // SIGKILL
  void start_edgecore();
  void kill_edgecore();  // SIGKILL
  // What a power cut does to the node's containers (with edgecore already killed): every
  // container process dies, containerd restarts.
  void power_cut_containers();

  // kubectl --kubeconfig admin.kubeconfig ARGS...
  Output kubectl(const std::vector<std::string>& args,
                 std::chrono::milliseconds timeout = std::chrono::seconds(60));
  Output kubectl_apply(const std::string& yaml);
  // kubectl get pod NAME -o jsonpath=EXPR ("" when the command failed).
  std::string pod_field(const std::string& name, const std::string& jsonpath);
  // A pod manifest for this node running `script` in busybox (sh -c).
  std::string pod_yaml(const std::string& name, const std::string& script,
                       const std::string& image = test::kBusyboxImage,
                       const std::string& restart_policy = "Always") const;

  // What the runtime holds for a pod (by name): its containers, through CRI as edgecore sees it.
  std::vector<edge::ContainerInfo> containers_of(const std::string& pod);
  std::vector<edge::ContainerInfo> running_containers_of(const std::string& pod);

  std::string edgecore_log() const;
  std::string cloudcore_log() const;

  test::Containerd& containerd() { return *containerd_; }
  edge::Runtime& runtime() { return *runtime_; }
  const std::filesystem::path& dir() const { return tmp_.path(); }
  std::filesystem::path edge_dir() const { return tmp_ / "edge"; }

 private:
  Output adm(std::vector<std::string> args);

  test::TempDir tmp_;
  std::unique_ptr<test::Containerd> containerd_;
  std::unique_ptr<edge::Runtime> runtime_;
  uint16_t tunnel_port_ = 0, join_port_ = 0, api_port_ = 0;
  std::unique_ptr<test::ChildProcess> cloudcore_;
  std::unique_ptr<test::ChildProcess> edgecore_;
  int runs_ = 0;
};

}  // namespace gantry::edge_test
