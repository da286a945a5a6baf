// edgesim: a fleet of simulated edge nodes in one process, for load and storm tests. Each node
// has its own certificate (issued from the cluster CA) and its own mutual-TLS WebSocket tunnel,
// and speaks the real protocol (Hello/resume, ObjectAck, StatusDelta with deltas and resyncs,
// WebSocket pings, reconnect with common/base/backoff). A node's state is a few counters in
// memory: no RocksDB, no containers. The simulated pods report Running; a status change bumps a
// container's restart count. A REST watch on the cloud (when an API address and token are given)
// measures how long a change takes from the edge's send to the cloud's watch.
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/base/status.h"

namespace gantry::sim {

struct SimOptions {
  std::string cloudcore;  // tunnel host:port
  std::string api;        // REST host:port ("" = from the kubeconfig; "-" = no watch)
  std::string data_dir;   // a `gantryadm init` directory: pki/ca.crt, pki/ca.key, admin.kubeconfig
  std::string ca_cert;    // overrides data_dir/pki/ca.crt
  std::string ca_key;     // overrides data_dir/pki/ca.key
  std::string token;      // overrides the admin.kubeconfig token
  int nodes = 100;
  int first_node = 0;  // nodes first_node .. first_node + nodes - 1
  std::string node_prefix = "sim";
  int threads = 1;
  int source_addresses = 16;  // 127.0.0.2 .. 127.0.0.(1+N): not bound by one address's ports
  int max_connecting = 256;   // connection attempts in progress at once (the sim's own bound)
  std::chrono::milliseconds heartbeat{15'000};
  std::chrono::milliseconds backoff_base{1'000};
  std::chrono::milliseconds backoff_cap{60'000};
  // Each pod's status changes once per churn_interval on average (0: no churn).
  std::chrono::milliseconds churn_interval{600'000};
  // Bounds: wait at most this long for every node to connect and resync, then measure (churn)
  // for `duration`, then wait at most `settle` for every change to be acknowledged and seen.
  std::chrono::milliseconds connect_timeout{120'000};
  std::chrono::milliseconds duration{60'000};
  std::chrono::milliseconds settle{30'000};
  // Pod writes per second through the REST API (a merge patch of an annotation, as `kubectl
  // annotate` sends it); the sim measures how long each takes to reach its edge node.
  double downstream_writes = 0;
  // Only measure one pod phase change (Pending -> Running) on one node, against the same change
  // as a Kubernetes JSON status patch.
  bool status_bytes = false;
  // ImagePullRequests: each image "pulls" this long (nothing is pulled), then reports Succeeded
  // with a made-up image ID; images whose name contains `pull_fail` (when set) report Failed.
  std::chrono::milliseconds pull_time{1'000};
  std::string pull_fail;
  uint16_t tunnel_port_for_ss = 0;  // set from `cloudcore`
};

// Runs the simulation to the end and returns the report (JSON, see docs/benchmarks.md).
common::Result<nlohmann::json> run_sim(const SimOptions& options);

struct SeedOptions {
  std::string store_path;  // cloudcore's data_dir/store (cloudcore must not be running)
  int nodes = 100;
  int first_node = 0;
  int pods_per_node = 5;
  int provinces = 29;
  std::string node_prefix = "sim";
  size_t ops_per_txn = 5000;
};

// Writes the node and pod objects straight into cloudcore's store (what a bulk `kubectl apply`
// would produce), in large transactions: 500,000 pods through the REST API would take longer
// than the benchmarks themselves.
common::Result<nlohmann::json> seed_store(const SeedOptions& options);

std::string node_name(const std::string& prefix, int index);
std::string pod_name(const std::string& node, int index);

}  // namespace gantry::sim
