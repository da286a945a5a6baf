// edgecore: flags, config, wiring. Everything else lives in the edgecore_* libraries.
#include <openssl/ssl.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>

#include "common/base/clock.h"
#include "common/base/config.h"
#include "common/base/logging.h"
#include "common/base/version.h"
#include "common/net/event_loop.h"
#include "common/net/tls.h"
#include "edgecore/exec/exec_streams.h"
#include "edgecore/hub/edge_hub.h"
#include "edgecore/logs/log_streams.h"
#include "edgecore/meta/meta_store.h"
#include "edgecore/pods/image_puller.h"
#include "edgecore/pods/pod_manager.h"
#include "edgecore/runtime/cri_runtime.h"
#include "edgecore/runtime/registry_mirrors.h"
#include "edgecore/status/node_probe.h"
#include "edgecore/status/status_tracker.h"

namespace gantry::edge {
namespace {

using namespace std::chrono_literals;
using common::Code;
using common::make_error;

struct EdgecoreConfig {
  std::string node_name;
  std::string data_dir = "/var/lib/gantry/edgecore";
  // host:port of the tunnel (port defaults to 10000); with several cloudcore replicas a list
  // (or one string with commas): the edge starts at a random one and moves on when it fails.
  std::vector<std::string> cloudcore;
  std::string tls_cert, tls_key, tls_ca;
  std::chrono::milliseconds heartbeat{15s};
  std::chrono::milliseconds backoff_base{1s};
  std::chrono::milliseconds backoff_cap{60s};
  std::string runtime_endpoint = "unix:///run/containerd/containerd.sock";
  std::chrono::milliseconds runtime_timeout{10s};
  std::chrono::milliseconds pull_timeout{10min};
  std::chrono::milliseconds relist_interval{1s};
  std::chrono::milliseconds crash_backoff_base{10s};
  std::chrono::milliseconds crash_backoff_cap{5min};
  std::chrono::milliseconds node_status_interval{10s};
  bool rotation_enabled = true;  // renew the node certificate over the tunnel
  std::string registry_config_path = "/etc/containerd/certs.d";  // containerd's config_path
  std::vector<std::string> registry_mirrors;                     // "[REGISTRY=]URL", in order
  common::LogConfig log;
};

common::Status load_config(const std::string& path, EdgecoreConfig& c) {
  return common::load_config_file(path, [&](common::ConfigNode& root) {
    root.required("node_name", &c.node_name)
        .field("data_dir", &c.data_dir)
        .required("cloudcore", &c.cloudcore)
        .section(
            "tls",
            [&](common::ConfigNode& n) {
              n.required("cert", &c.tls_cert).required("key", &c.tls_key).required("ca", &c.tls_ca);
            })
        .field("heartbeat", &c.heartbeat, std::chrono::milliseconds(1s),
               std::chrono::milliseconds(10min))
        .section("backoff",
                 [&](common::ConfigNode& n) {
                   n.field("base", &c.backoff_base, std::chrono::milliseconds(100ms),
                           std::chrono::milliseconds(10min))
                       .field("cap", &c.backoff_cap, std::chrono::milliseconds(1s),
                              std::chrono::milliseconds(1h));
                   if (c.backoff_cap < c.backoff_base) n.fail("cap", "must not be below base");
                 })
        .section("runtime",
                 [&](common::ConfigNode& n) {
                   n.field("endpoint", &c.runtime_endpoint)
                       .field("timeout", &c.runtime_timeout, std::chrono::milliseconds(1s),
                              std::chrono::milliseconds(10min))
                       .field("pull_timeout", &c.pull_timeout, std::chrono::milliseconds(10s),
                              std::chrono::milliseconds(24h));
                   if (c.runtime_endpoint.rfind("unix://", 0) != 0 &&
                       c.runtime_endpoint.rfind("/", 0) != 0) {
                     n.fail("endpoint", "must be unix:///path/to/socket");
                   }
                 })
        .section("pods",
                 [&](common::ConfigNode& n) {
                   n.field("relist_interval", &c.relist_interval, std::chrono::milliseconds(100ms),
                           std::chrono::milliseconds(1min))
                       .field("crash_backoff_base", &c.crash_backoff_base,
                              std::chrono::milliseconds(100ms), std::chrono::milliseconds(10min))
                       .field("crash_backoff_cap", &c.crash_backoff_cap,
                              std::chrono::milliseconds(1s), std::chrono::milliseconds(1h))
                       .field("node_status_interval", &c.node_status_interval,
                              std::chrono::milliseconds(1s), std::chrono::milliseconds(10min));
                   if (c.crash_backoff_cap < c.crash_backoff_base) {
                     n.fail("crash_backoff_cap", "must not be below crash_backoff_base");
                   }
                 })
        .section("rotation",
                 [&](common::ConfigNode& n) { n.field("enabled", &c.rotation_enabled); })
        .section(
            "registry",
            [&](common::ConfigNode& n) {
              n.field("config_path", &c.registry_config_path).field("mirrors", &c.registry_mirrors);
              if (c.registry_config_path.empty()) n.fail("config_path", "must not be empty");
              for (const std::string& m : c.registry_mirrors) {
                auto parsed = parse_registry_mirror(m);
                if (!parsed.ok()) n.fail("mirrors", parsed.status().message());
              }
            })
        .section("log", &c.log);
  });
}

// "host:port", "host" (port 10000), "[::1]:10000".
common::Result<std::pair<std::string, uint16_t>> parse_address(const std::string& address) {
  std::string host = address;
  std::string port = "10000";
  if (!address.empty() && address.front() == '[') {
    auto close = address.find(']');
    if (close == std::string::npos) return make_error(Code::kInvalidArgument, "bad address");
    host = address.substr(1, close - 1);
    if (close + 1 < address.size()) {
      if (address[close + 1] != ':') return make_error(Code::kInvalidArgument, "bad address");
      port = address.substr(close + 2);
    }
  } else if (auto colon = address.rfind(':'); colon != std::string::npos) {
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  int value = 0;
  try {
    value = std::stoi(port);
  } catch (...) {
    value = 0;
  }
  if (host.empty() || value <= 0 || value > 65535) {
    return make_error(Code::kInvalidArgument, "cloudcore: '{}' is not host:port", address);
  }
  return std::pair{host, static_cast<uint16_t>(value)};
}

// Re-probes the node now and then; the tracker sends only what changed.
class NodeReporter {
 public:
  NodeReporter(common::EventLoop& loop, StatusTracker& tracker, NodeProbeOptions options,
               std::function<RuntimeView()> runtime, std::chrono::milliseconds interval)
      : loop_(loop),
        tracker_(tracker),
        prober_(options),
        data_dir_(options.data_dir),
        runtime_(std::move(runtime)),
        interval_(interval) {}
  void tick() {
    auto now = std::chrono::duration_cast<std::chrono::seconds>(
        common::system_clock().system_now().time_since_epoch());
    common::Status s =
        tracker_.report_node(prober_.status(read_node(data_dir_), runtime_(), now.count()));
    if (!s.ok()) spdlog::warn("node status: {}", s.to_string());
    timer_ = loop_.schedule(interval_, [this] { tick(); });
  }
  void stop() { timer_.cancel(); }

 private:
  common::EventLoop& loop_;
  StatusTracker& tracker_;
  NodeProber prober_;
  std::filesystem::path data_dir_;
  std::function<RuntimeView()> runtime_;
  std::chrono::milliseconds interval_;
  common::TimerHandle timer_;
};

int run(const EdgecoreConfig& config) {
  // SIGTERM/SIGINT are taken with sigwait below; block them before any thread starts (RocksDB's
  // and gRPC's included: a signal delivered to one of those would kill the process).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::vector<EdgeHubOptions::Address> addresses;
  for (const auto& entry : config.cloudcore) {
    for (size_t at = 0; at <= entry.size();) {
      size_t comma = std::min(entry.find(',', at), entry.size());
      std::string one = entry.substr(at, comma - at);
      one.erase(0, one.find_first_not_of(" \t"));
      one.erase(one.find_last_not_of(" \t") + 1);
      at = comma + 1;
      if (one.empty()) continue;
      auto address = parse_address(one);
      if (!address.ok()) {
        spdlog::critical("{}", address.status().message());
        return 2;
      }
      addresses.push_back({address->first, address->second});
    }
  }
  if (addresses.empty()) {
    spdlog::critical("cloudcore: no address given");
    return 2;
  }
  std::string cloudcore_text;
  for (const auto& a : addresses)
    cloudcore_text += fmt::format("{}{}:{}", cloudcore_text.empty() ? "" : ",", a.host, a.port);
  // The node certificate (tls.*), renewed over the tunnel (rotation.enabled); it finishes a
  // rotation a power cut interrupted.
  common::SystemRandom cert_random;
  auto certificate = CertRotation::load({.node_name = config.node_name,
                                         .cert_file = config.tls_cert,
                                         .key_file = config.tls_key,
                                         .ca_file = config.tls_ca,
                                         .enabled = config.rotation_enabled},
                                        common::system_clock(), cert_random);
  if (!certificate.ok()) {
    spdlog::critical("TLS: {}", certificate.status().to_string());
    return 2;
  }
  std::shared_ptr<common::TlsContext> tls = (*certificate)->tls();

  auto meta = MetaStore::open(std::filesystem::path(config.data_dir) / "meta");
  if (!meta.ok()) {
    spdlog::critical("{}", meta.status().to_string());
    return 1;
  }
  auto tracker = StatusTracker::load(**meta, {.node_name = config.node_name});
  if (!tracker.ok()) {
    spdlog::critical("{}", tracker.status().to_string());
    return 1;
  }

  // containerd reads hosts.toml at every pull: written before any pod starts, no restart.
  std::vector<RegistryMirror> mirrors;
  for (const std::string& m : config.registry_mirrors) mirrors.push_back(*parse_registry_mirror(m));
  if (common::Status s = write_registry_mirrors(config.registry_config_path, mirrors); !s.ok()) {
    // Pods can still pull from the registries themselves: run, and say why mirrors are not used.
    spdlog::error("registry mirrors not written: {}", s.message());
  } else if (!mirrors.empty()) {
    spdlog::info("registry mirrors: {} entries in {}", mirrors.size(), config.registry_config_path);
  }

  auto runtime = CriRuntime::create({.endpoint = config.runtime_endpoint,
                                     .call_timeout = config.runtime_timeout,
                                     .pull_timeout = config.pull_timeout});
  if (!runtime.ok()) {
    spdlog::critical("runtime: {}", runtime.status().message());
    return 2;
  }
  common::EventLoop loop(1);
  // The node's status goes up at once when the runtime comes or goes (the reporter is made
  // below: it reads the pod manager's view of the runtime).
  std::atomic<NodeReporter*> reporter_ptr{nullptr};
  auto report_node_now = [&loop, &reporter_ptr] {
    loop.post([&reporter_ptr] {
      if (NodeReporter* r = reporter_ptr.load()) r->tick();
    });
  };
  auto readings = read_node(config.data_dir);
  // The pods' events (Pulling, BackOff, ...), coalesced here and sent with the status batches.
  EventOutbox events(common::system_clock());
  PodManager pods(**meta, **tracker, **runtime,
                  {.data_dir = config.data_dir,
                   .node_name = config.node_name,
                   .host_ip = readings.internal_ips.empty() ? "" : readings.internal_ips.front(),
                   .relist_interval = config.relist_interval,
                   .crash_backoff_base = config.crash_backoff_base,
                   .crash_backoff_cap = config.crash_backoff_cap,
                   .on_runtime_change = report_node_now,
                   .on_event = [&events](EdgeEventRecord e) { events.record(std::move(e)); }});

  common::SystemRandom random;
  LogStreams logs(
      [&pods](const v1::LogRequest& r) -> common::Result<LogTarget> {
        GANTRY_ASSIGN_OR_RETURN(ContainerLog log, pods.locate_log(r.namespace_(), r.pod(),
                                                                  r.container(), r.previous()));
        return LogTarget{log.path, log.running};
      },
      common::system_clock());
  // Background pulls the cloud asks for (ImagePullJob); their reports go up on the tunnel.
  std::atomic<EdgeHub*> pull_reports{nullptr};
  ImagePuller puller(**runtime, {.report = [&pull_reports](v1::ImagePullReport r) {
    v1::Frame frame;
    *frame.mutable_image_pull_report() = std::move(r);
    if (EdgeHub* h = pull_reports.load()) (void)h->send_frame(frame);
  }});
  // kubectl exec / attach: the pod's running container, then the runtime's streaming URL.
  ExecStreams exec(
      loop.context(),
      [&pods, rt = runtime->get()](const v1::ExecRequest& r) -> common::Result<std::string> {
        GANTRY_ASSIGN_OR_RETURN(std::string id,
                                pods.running_container(r.namespace_(), r.pod(), r.container()));
        Runtime::StreamingRequest sr;
        sr.container_id = id;
        sr.command.assign(r.command().begin(), r.command().end());
        sr.attach = r.attach();
        sr.tty = r.tty();
        sr.stdin = r.stdin();
        sr.stdout = r.stdout();
        sr.stderr = r.stderr();
        return rt->streaming_url(sr);
      });
  StreamRouter streams(logs, exec);
  EdgeHubOptions hub_options;
  hub_options.sync.on_image_pull = [&puller](const v1::ImagePullRequest& r) { puller.submit(r); };
  hub_options.host = addresses.front().host;
  hub_options.port = addresses.front().port;
  if (addresses.size() > 1) hub_options.addresses = addresses;
  hub_options.ping_interval = config.heartbeat;
  hub_options.backoff = {config.backoff_base, config.backoff_cap};
  hub_options.streams = &streams;
  hub_options.rotation = certificate->get();
  hub_options.sync.events = &events;
  EdgeHub hub(loop, tls, **meta, **tracker, hub_options, common::system_clock(), random);
  pull_reports = &hub;
  exec.set_sender([&hub](const v1::Frame& frame) { (void)hub.send_frame(frame); });

  auto started = std::chrono::duration_cast<std::chrono::seconds>(
      common::system_clock().system_now().time_since_epoch());
  NodeReporter reporter(
      loop, **tracker,
      {.edgecore_version = common::kVersion,
       .started_at = started.count(),
       .data_dir = config.data_dir},
      [&pods] { return pods.runtime_view(); }, config.node_status_interval);
  reporter_ptr = &reporter;
  spdlog::info("edgecore {} starting: node {}, cloudcore {}, runtime {}, data in {}",
               common::kVersion, config.node_name, cloudcore_text, (*runtime)->endpoint(),
               config.data_dir);
  // Pods start from the cache at once: the node runs what it last knew, cloud or no cloud.
  pods.start();
  loop.run();
  loop.post([&] { reporter.tick(); });
  hub.start();

  int signal = 0;
  sigwait(&signals, &signal);
  spdlog::info("edgecore: {} received, stopping", signal == SIGTERM ? "SIGTERM" : "SIGINT");
  hub.stop();
  pull_reports = nullptr;
  reporter_ptr = nullptr;
  loop.post([&] { reporter.stop(); });
  loop.stop();
  reporter.stop();
  // The containers keep running: an edge node's pods outlive its agent.
  pods.stop();
  puller.stop();
  spdlog::info("edgecore stopped");
  return 0;
}

}  // namespace
}  // namespace gantry::edge

int main(int argc, char** argv) {
  CLI::App app{
      "edgecore: the Gantry edge agent. Keeps a TLS WebSocket tunnel to cloudcore, caches the "
      "node's desired objects in RocksDB, runs its pods through containerd (CRI) with or "
      "without the cloud, and reports node and pod status."};
  std::string config_path;
  app.add_option("--config", config_path, "edgecore.yaml")->check(CLI::ExistingFile);
  app.set_version_flag("--version", std::string("edgecore ") + gantry::common::kVersion +
                                        " (tunnel protocol " +
                                        std::to_string(gantry::common::kProtocolVersion) + ")");
  CLI11_PARSE(app, argc, argv);
  if (config_path.empty()) {
    std::fprintf(stderr, "edgecore: --config is required (see --help)\n");
    return 2;
  }
  gantry::edge::EdgecoreConfig config;
  if (auto s = gantry::edge::load_config(config_path, config); !s.ok()) {
    std::fprintf(stderr, "edgecore: %s\n", s.message().c_str());
    return 2;
  }
  if (auto s = gantry::common::setup_logging(config.log, "edgecore"); !s.ok()) {
    std::fprintf(stderr, "edgecore: %s\n", s.message().c_str());
    return 2;
  }
  return gantry::edge::run(config);
}
