// `gantryadm join`: turns a machine into an edge node. Fetches the CA from cloudcore's join
// endpoint, checks it against the token's hash, gets a node certificate for a fresh key, and
// writes DIR/pki/{node.key,node.crt,ca.crt} and DIR/edgecore.yaml (all or nothing).
#pragma once

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace gantry::adm {

struct JoinOptions {
  std::string cloudcore;  // the join endpoint, "HOST:PORT" (port 10002 when omitted)
  std::string token;
  std::string node_name;
  std::string province;
  std::filesystem::path data_dir;
  std::string runtime_endpoint = "unix:///run/containerd/containerd.sock";
  std::vector<std::string> labels;  // "k=v"
  std::string tunnel_address;       // edgecore's cloudcore address; "": HOST:10000
  // "[REGISTRY=]URL" in the order they are tried (edgecore.yaml registry.mirrors).
  std::vector<std::string> registry_mirrors;
  std::string registry_config_path;  // containerd's registry config_path; "": edgecore's default
  std::chrono::milliseconds timeout{std::chrono::seconds(20)};  // per network step
  // systemd is used when this directory exists (PID 1 is systemd).
  std::filesystem::path systemd_marker = "/run/systemd/system";
  std::filesystem::path systemd_unit_dir = "/etc/systemd/system";
};

struct JoinResult {
  std::string text;  // what was written and how edgecore runs: printed on stdout
};

// Errors carry a message for the operator: cloudcore unreachable (address tried and why), the CA
// not matching the token, and cloudcore's own refusal message (token expired, name taken,
// province mismatch, bad CSR, rate limited). On any error DIR is left as it was.
common::Result<JoinResult> join(const JoinOptions& options);

}  // namespace gantry::adm
