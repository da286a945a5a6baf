// edgesim: flags and wiring; the simulator lives in edgesim_lib (tools/edgesim/sim.h).
#include <spdlog/spdlog.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <fstream>

#include "tools/edgesim/sim.h"

namespace {

// Every simulated node is a socket: take all the descriptors the hard limit allows.
void raise_fd_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{
      "edgesim: a fleet of simulated edge nodes in one process. Each node has its own certificate\n"
      "(issued from the cluster CA) and its own mutual-TLS tunnel, speaks the real protocol and\n"
      "keeps its state in memory. Runs for a bounded time and prints a JSON report.\n"
      "  edgesim --seed-store DIR/data/store --nodes N --pods M     (cloudcore stopped)\n"
      "  edgesim --cloudcore 127.0.0.1:10000 --data-dir DIR --nodes N --duration 60",
      "edgesim"};
  gantry::sim::SimOptions o;
  gantry::sim::SeedOptions seed;
  std::string seed_store, report_path, log_level = "warn";
  int pods = 5;
  double heartbeat_s = 15, base_s = 1, cap_s = 60, churn_s = 600, connect_s = 120, duration_s = 60,
         settle_s = 30;
  app.add_option(
      "--cloudcore", o.cloudcore,
      "cloudcore's tunnel address HOST:PORT (several replicas: HOST:PORT,HOST:PORT,...)");
  app.add_option("--data-dir", o.data_dir,
                 "a `gantryadm init` directory (pki/ca.crt, pki/ca.key, admin.kubeconfig)");
  app.add_option("--ca-cert", o.ca_cert,
                 "the cluster CA certificate (default DATA_DIR/pki/ca.crt)");
  app.add_option("--ca-key", o.ca_key, "the cluster CA key (default DATA_DIR/pki/ca.key)");
  app.add_option(
      "--api", o.api,
      "REST API HOST:PORT for the status watch (default: admin.kubeconfig's server; '-': none)");
  app.add_option("--token", o.token, "API bearer token (default: admin.kubeconfig's)");
  app.add_option("--nodes", o.nodes, "simulated nodes")->check(CLI::Range(1, 1000000));
  double pull_s = 1;
  app.add_option("--pull-seconds", pull_s, "simulated time one image pull takes (ImagePullJob)");
  app.add_option("--pull-fail", o.pull_fail,
                 "images whose name contains this report a failed pull (ImagePullJob)");
  app.add_option("--first-node", o.first_node, "index of the first node (several edgesims)");
  app.add_option("--node-prefix", o.node_prefix, "node names are PREFIX-000123");
  app.add_option("--pods", pods, "with --seed-store: pods per node");
  app.add_option("--threads", o.threads, "event loop threads")->check(CLI::Range(1, 64));
  app.add_option("--source-addresses", o.source_addresses,
                 "spread sockets over 127.0.0.2..127.0.0.(1+N) (loopback targets only)");
  app.add_option("--max-connecting", o.max_connecting, "connection attempts in progress at once");
  app.add_option("--heartbeat", heartbeat_s, "seconds between WebSocket pings when idle");
  app.add_option("--backoff-base", base_s, "reconnect back-off base, seconds");
  app.add_option("--backoff-cap", cap_s, "reconnect back-off cap, seconds");
  app.add_option("--churn-interval", churn_s,
                 "each pod's status changes once per this many seconds on average (0: none)");
  app.add_option("--connect-timeout", connect_s,
                 "seconds to wait for every node to connect and resync");
  app.add_option("--duration", duration_s, "seconds of measurement (churn) after that");
  app.add_option("--settle", settle_s, "seconds to wait at the end for every change to arrive");
  app.add_option("--downstream-writes", o.downstream_writes,
                 "pod annotation writes per second through the API, timed to the edge");
  app.add_flag("--status-bytes", o.status_bytes,
               "measure one pod phase change on the wire against the Kubernetes JSON patch");
  app.add_option(
      "--seed-store", seed_store,
      "write N nodes with --pods pods each into this cloudcore store directory and exit");
  app.add_option("--provinces", seed.provinces,
                 "with --seed-store: provinces to spread nodes over");
  app.add_option("--report", report_path, "also write the JSON report to this file");
  app.add_option("--log-level", log_level, "debug, info, warn, error");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::from_str(log_level));
  raise_fd_limit();

  auto seconds = [](double s) { return std::chrono::milliseconds(static_cast<int64_t>(s * 1000)); };
  gantry::common::Result<nlohmann::json> report = nlohmann::json();
  if (!seed_store.empty()) {
    seed.store_path = seed_store;
    seed.nodes = o.nodes;
    seed.first_node = o.first_node;
    seed.pods_per_node = pods;
    seed.node_prefix = o.node_prefix;
    report = gantry::sim::seed_store(seed);
  } else {
    if (o.cloudcore.empty() || (o.data_dir.empty() && (o.ca_cert.empty() || o.ca_key.empty()))) {
      fmt::print(stderr,
                 "edgesim: --cloudcore and --data-dir (or --ca-cert and --ca-key) are required\n");
      return 2;
    }
    o.heartbeat = seconds(heartbeat_s);
    o.backoff_base = seconds(base_s);
    o.backoff_cap = seconds(cap_s);
    o.churn_interval = seconds(churn_s);
    o.connect_timeout = seconds(connect_s);
    o.duration = seconds(duration_s);
    o.pull_time = seconds(pull_s);
    o.settle = seconds(settle_s);
    report = gantry::sim::run_sim(o);
  }
  if (!report.ok()) {
    fmt::print(stderr, "edgesim: {}\n", report.status().message());
    return 1;
  }
  const std::string text = report->dump();
  fmt::print("{}\n", text);
  if (!report_path.empty()) std::ofstream(report_path) << text << "\n";
  return 0;
}
