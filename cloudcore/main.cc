// cloudcore: flags, config, wiring. Everything else lives in the cloudcore_* libraries.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <filesystem>

#include "cloudcore/api/api_server.h"
#include "cloudcore/api/request_metrics.h"
#include "cloudcore/controllers/events.h"
#include "cloudcore/controllers/imagepull.h"
#include "cloudcore/controllers/leader.h"
#include "cloudcore/controllers/node_gc.h"
#include "cloudcore/controllers/node_lifecycle.h"
#include "cloudcore/controllers/node_ownership.h"
#include "cloudcore/controllers/scheduler.h"
#include "cloudcore/controllers/workloads.h"
#include "cloudcore/hub/hub.h"
#include "cloudcore/hub/hub_image_pull.h"
#include "cloudcore/hub/hub_log_streamer.h"
#include "cloudcore/hub/replica_link.h"
#include "cloudcore/join/join.h"
#include "cloudcore/registry/province_counts.h"
#include "cloudcore/registry/registry.h"
#include "cloudcore/store/etcd_store.h"
#include "cloudcore/store/lease.h"
#include "cloudcore/store/rocks_store.h"
#include "cloudcore/store/store_config.h"
#include "cloudcore/store/store_metrics.h"
#include "common/base/address.h"
#include "common/base/atomic_file.h"
#include "common/base/clock.h"
#include "common/base/config.h"
#include "common/base/logging.h"
#include "common/base/version.h"
#include "common/metrics/metrics.h"
#include "common/net/event_loop.h"
#include "common/net/tls.h"
#include "common/pki/pki.h"

namespace gantry::cloud {
namespace {

using namespace std::chrono_literals;

struct CloudcoreConfig {
  std::string data_dir = "/var/lib/gantry/cloudcore";
  struct Tunnel {
    std::string listen = "0.0.0.0:10000";
    std::chrono::milliseconds heartbeat{15s};
    std::chrono::milliseconds node_timeout{40s};
    int max_concurrent_resyncs = 1000;
    int max_concurrent_handshakes = 256;
    std::chrono::milliseconds retry_after{5s};
    common::ByteSize max_frame = common::ByteSize::mib(1);
    common::ByteSize max_queued = common::ByteSize::mib(4);
  } tunnel;
  struct Tls {
    std::string cert, key, ca;
  } tls;
  // The Kubernetes-compatible REST API; served only when the config has an api section.
  struct Api {
    bool enabled = false;
    std::string listen = "0.0.0.0:10443";
    std::string token_file;
    // The token file is read again when it changes (checked this often; 0: only on SIGHUP).
    std::chrono::milliseconds token_reload_interval{10s};
    bool anonymous_health = true;
    common::ByteSize max_body = common::ByteSize::mib(3);
  } api;
  // The join endpoint; served only when the config has a join section.
  struct Join {
    bool enabled = false;
    std::string listen = "0.0.0.0:10002";
    std::string ca_key;
    std::string token_signing_key;
    std::chrono::milliseconds certificate_lifetime{24h * 365};
    double rate_per_client = 0.5;
    double burst_per_client = 5;
    double rate_global = 20;
    double burst_global = 100;
  } join;
  StoreConfig store;  // cloudcore/store/store_config.h: rocksdb (default) or etcd
  // Events (kubectl describe): kept this long after their last occurrence (kube-apiserver's
  // --event-ttl).
  struct Events {
    std::chrono::milliseconds ttl{1h};
  } events;
  // Several replicas on one etcd (docs/operations.md, "Several replicas"): served only when the
  // config has an ha section; needs store.backend etcd.
  struct Ha {
    bool enabled = false;
    std::string name;  // this replica's name ("": the hostname)
    std::chrono::milliseconds lease_ttl{15s};
    // The replica link (cloudcore/hub/replica_link.h): where it listens, and the address the
    // other replicas reach it at ("": this replica's name and the listening port; a host without
    // a port: the listening port).
    std::string link_listen = "0.0.0.0:10004";
    std::string link_advertise;
  } ha;
  int threads = 2;
  common::LogConfig log;
};

common::Status load_config(const std::string& path, CloudcoreConfig& c) {
  using ms = std::chrono::milliseconds;
  return common::load_config_file(path, [&](common::ConfigNode& root) {
    root.field("data_dir", &c.data_dir)
        .field("threads", &c.threads, 1, 64)
        .section("tunnel",
                 [&](common::ConfigNode& n) {
                   n.field("listen", &c.tunnel.listen)
                       .field("heartbeat", &c.tunnel.heartbeat, ms(1s), ms(10min))
                       .field("node_timeout", &c.tunnel.node_timeout, ms(2s), ms(1h))
                       .field("max_concurrent_resyncs", &c.tunnel.max_concurrent_resyncs, 1,
                              1000000)
                       .field("max_concurrent_handshakes", &c.tunnel.max_concurrent_handshakes, 1,
                              100000)
                       .field("retry_after", &c.tunnel.retry_after, ms(1s), ms(10min))
                       .field("max_frame", &c.tunnel.max_frame, common::ByteSize::kib(64),
                              common::ByteSize::mib(64))
                       .field("max_queued", &c.tunnel.max_queued, common::ByteSize::kib(64),
                              common::ByteSize::gib(1));
                   if (c.tunnel.node_timeout <= c.tunnel.heartbeat)
                     n.fail("node_timeout", "must be longer than the heartbeat");
                 })
        .section(
            "tls",
            [&](common::ConfigNode& n) {
              n.required("cert", &c.tls.cert).required("key", &c.tls.key).required("ca", &c.tls.ca);
            })
        .section("api",
                 [&](common::ConfigNode& n) {
                   c.api.enabled = root.has("api");
                   if (!c.api.enabled) return;
                   n.field("listen", &c.api.listen)
                       .required("token_file", &c.api.token_file)
                       .field("token_reload_interval", &c.api.token_reload_interval, ms(0), ms(1h))
                       .field("anonymous_health", &c.api.anonymous_health)
                       .field("max_body", &c.api.max_body, common::ByteSize::kib(64),
                              common::ByteSize::mib(64));
                 })
        .section("join",
                 [&](common::ConfigNode& n) {
                   c.join.enabled = root.has("join");
                   if (!c.join.enabled) return;
                   n.field("listen", &c.join.listen)
                       .required("ca_key", &c.join.ca_key)
                       .required("token_signing_key", &c.join.token_signing_key)
                       .field("certificate_lifetime", &c.join.certificate_lifetime, ms(10s),
                              ms(24h * 3650))
                       .field("rate_per_client", &c.join.rate_per_client, 0.001, 1000.0)
                       .field("burst_per_client", &c.join.burst_per_client, 1.0, 100000.0)
                       .field("rate_global", &c.join.rate_global, 0.001, 100000.0)
                       .field("burst_global", &c.join.burst_global, 1.0, 1000000.0);
                 })
        .section("store", &c.store)
        .section(
            "events",
            [&](common::ConfigNode& n) { n.field("ttl", &c.events.ttl, ms(1min), ms(24h * 30)); })
        .section("ha",
                 [&](common::ConfigNode& n) {
                   c.ha.enabled = root.has("ha");
                   if (!c.ha.enabled) return;
                   n.field("name", &c.ha.name)
                       .field("lease_ttl", &c.ha.lease_ttl, ms(2s), ms(10min))
                       .field("link_listen", &c.ha.link_listen)
                       .field("link_advertise", &c.ha.link_advertise);
                   if (c.ha.lease_ttl.count() % 1000 != 0)
                     n.fail("lease_ttl", "must be whole seconds");
                 })
        .section("log", &c.log);
  });
}

common::Result<std::shared_ptr<common::TlsContext>> server_tls(const CloudcoreConfig::Tls& files) {
  common::TlsOptions options;
  for (auto [path, out, key] : {std::tuple{&files.cert, &options.cert_pem, "tls.cert"},
                                std::tuple{&files.key, &options.key_pem, "tls.key"},
                                std::tuple{&files.ca, &options.ca_pem, "tls.ca"}}) {
    auto pem = common::read_file(*path);
    if (!pem.ok()) return pem.status().with_context(key);
    *out = std::move(pem).value();
  }
  options.verify_peer = true;  // mutual TLS: every node presents its certificate
  return common::TlsContext::create(common::TlsRole::kServer, options);
}

// The join endpoint: server-only TLS with the serving certificate (joining nodes have none yet).
std::unique_ptr<JoinServer> start_join(common::EventLoop& loop, const CloudcoreConfig& config,
                                       Store& store, Registry& registry, common::Clock& clock) {
  auto address = common::parse_host_port(config.join.listen, 10002);
  if (!address.ok()) {
    spdlog::critical("join.listen: {}", address.status().message());
    return nullptr;
  }
  auto credentials =
      load_join_credentials(config.tls.ca, config.join.ca_key, config.join.token_signing_key);
  if (!credentials.ok()) {
    spdlog::critical("join: {}", credentials.status().to_string());
    return nullptr;
  }
  common::TlsOptions tls_options;
  for (auto [path, out] : {std::pair{&config.tls.cert, &tls_options.cert_pem},
                           std::pair{&config.tls.key, &tls_options.key_pem}}) {
    auto pem = common::read_file(*path);
    if (!pem.ok()) {
      spdlog::critical("join: {}", pem.status().to_string());
      return nullptr;
    }
    *out = std::move(pem).value();
  }
  tls_options.verify_peer = false;
  auto tls = common::TlsContext::create(common::TlsRole::kServer, tls_options);
  if (!tls.ok()) {
    spdlog::critical("join TLS: {}", tls.status().to_string());
    return nullptr;
  }
  JoinOptions options;
  options.certificate_lifetime =
      std::chrono::duration_cast<std::chrono::seconds>(config.join.certificate_lifetime);
  options.per_client = {config.join.rate_per_client, config.join.burst_per_client};
  options.global = {config.join.rate_global, config.join.burst_global};
  // A join never inherits pods someone bound to its name.
  options.pods_bound_to = [&registry](const std::string& node) {
    return registry.pods_on_node(node);
  };
  common::HttpServerOptions http;
  http.address = address->host;
  http.port = address->port;
  auto server =
      JoinServer::start(loop, *tls, store, std::move(credentials).value(), clock, options, http);
  if (!server.ok()) {
    spdlog::critical("join on {}: {}", config.join.listen, server.status().to_string());
    return nullptr;
  }
  return std::move(server).value();
}

// The REST API: the serving certificate; client certificates are requested but not required
// (bearer tokens are the credential).
std::unique_ptr<api::ApiServer> start_api(std::function<std::string()> metrics,
                                          common::EventLoop& loop, const CloudcoreConfig& config,
                                          Store& store, Registry& registry, common::Clock& clock,
                                          api::LogStreamer* logs, api::TokenAuthenticator tokens,
                                          api::RequestMetrics request_metrics) {
  auto address = common::parse_host_port(config.api.listen, 10443);
  if (!address.ok()) {
    spdlog::critical("api.listen: {}", address.status().message());
    return nullptr;
  }
  common::TlsOptions tls_options;
  for (auto [path, out] : {std::pair{&config.tls.cert, &tls_options.cert_pem},
                           std::pair{&config.tls.key, &tls_options.key_pem},
                           std::pair{&config.tls.ca, &tls_options.ca_pem}}) {
    auto pem = common::read_file(*path);
    if (!pem.ok()) {
      spdlog::critical("api: {}", pem.status().to_string());
      return nullptr;
    }
    *out = std::move(pem).value();
  }
  tls_options.verify_peer = false;
  tls_options.request_client_cert = true;
  auto tls = common::TlsContext::create(common::TlsRole::kServer, tls_options);
  if (!tls.ok()) {
    spdlog::critical("api TLS: {}", tls.status().to_string());
    return nullptr;
  }
  api::ApiServerOptions options;
  options.address = address->host;
  options.port = address->port;
  options.anonymous_health = config.api.anonymous_health;
  options.max_body_bytes = config.api.max_body.bytes;
  options.metrics = std::move(metrics);
  options.logs = logs;
  options.observe = [m = std::move(request_metrics)](const common::Request& req,
                                                     const common::Response& response,
                                                     std::chrono::steady_clock::duration took) {
    m.observe(req, response, took);
  };
  auto server =
      api::ApiServer::start(loop, *tls, store, registry, clock, std::move(tokens), options);
  if (!server.ok()) {
    spdlog::critical("api on {}: {}", config.api.listen, server.status().to_string());
    return nullptr;
  }
  return std::move(server).value();
}

// GET /metrics: the counters of the hub, the store, the registry and the API, read at scrape time.
// `process`: the histograms and gauges the modules update themselves (docs/operations.md lists
// all).
std::string render_metrics(const Hub& hub, const Store& store, const Registry& registry,
                           const api::ApiServer* api_server, const common::MetricsRegistry& process,
                           const controllers::LeaderElector* elector,
                           const controllers::NodeOwnership* ownership, const ReplicaLink* link) {
  common::MetricsRegistry m;
  auto counter = [&](std::string_view name, std::string_view help, uint64_t value) {
    if (auto f = m.counter(name, help); f.ok()) f->with().inc(value);
  };
  auto gauge = [&](std::string_view name, std::string_view help, double value) {
    if (auto f = m.gauge(name, help); f.ok()) f->with().set(value);
  };
  const HubStats& h = hub.stats();
  gauge("gantry_hub_sessions", "Edge node tunnel sessions open.", double(h.sessions_open.load()));
  counter("gantry_hub_sessions_opened_total", "Edge node tunnel sessions opened.",
          h.sessions_opened);
  counter("gantry_hub_resumes_incremental_total", "Resumes that sent only the changes.",
          h.resumes_incremental);
  counter("gantry_hub_resumes_snapshot_total", "Resumes that sent the node's whole set.",
          h.resumes_snapshot);
  counter("gantry_hub_objects_sent_total", "Objects sent down to edge nodes.", h.objects_sent);
  counter("gantry_hub_deletes_sent_total", "Deletions sent down to edge nodes.", h.deletes_sent);
  counter("gantry_hub_status_batches_total", "Status batches received from edge nodes.",
          h.status_batches);
  counter("gantry_hub_status_entries_total", "Status entries applied.", h.status_entries);
  counter("gantry_hub_status_resyncs_total", "Status entries answered with a resync request.",
          h.status_resyncs);
  counter("gantry_hub_protocol_violations_total", "Connections closed for a refused frame.",
          h.protocol_violations);
  counter("gantry_hub_refused_busy_total", "Upgrades answered 503 (too many resyncs at once).",
          h.refused_busy);
  counter("gantry_hub_refused_identity_total",
          "Upgrades refused for a certificate that names no node.", h.refused_identity);
  counter("gantry_hub_nodes_marked_unknown_total", "Nodes marked Ready=Unknown after the timeout.",
          h.nodes_marked_unknown);
  gauge("gantry_hub_resyncs_in_progress", "Nodes between Hello and the ack of their resume.",
        double(h.resyncs_in_progress.load()));
  counter("gantry_hub_log_streams_opened_total", "Log streams opened to edge nodes.",
          h.log_streams_opened);
  gauge("gantry_hub_log_streams", "Log streams open.", double(h.log_streams_open.load()));
  counter("gantry_hub_log_stream_bytes_total", "Log output received from edge nodes.",
          h.log_stream_bytes);
  counter("gantry_hub_log_streams_offline_total", "Log requests for nodes not connected.",
          h.log_streams_offline);
  counter("gantry_hub_exec_streams_opened_total", "exec/attach streams opened to edge nodes.",
          h.exec_streams_opened);
  gauge("gantry_hub_exec_streams", "exec/attach streams open.", double(h.exec_streams_open.load()));
  counter("gantry_hub_exec_streams_refused_total",
          "exec/attach refused at once: node not connected or at its session limit.",
          h.exec_streams_refused);
  counter("gantry_hub_certificates_renewed_total", "Node certificates renewed over the tunnel.",
          h.certificates_renewed);
  counter("gantry_hub_certificate_requests_refused_total",
          "Certificate renewal requests answered with an error.", h.certificate_requests_refused);
  counter("gantry_hub_refused_expired_total",
          "Node connections refused for an expired certificate.", h.refused_expired);
  counter("gantry_hub_refused_certificate_total",
          "Client certificates that failed TLS verification otherwise.", h.refused_certificate);
  gauge("gantry_store_revision", "The store's current revision.", double(store.current_revision()));
  gauge("gantry_store_compacted_revision", "History at or below this revision is compacted.",
        double(store.compacted_revision()));
  if (const auto* rocks = dynamic_cast<const RocksStore*>(&store)) {
    auto st = rocks->stats();
    counter("gantry_store_txns_total", "Store transactions committed.", st.txns_committed);
    counter("gantry_store_syncs_total", "Store write batches synced to disk (one fsync each).",
            st.batches_written);
  }
  if (const auto* etcd = dynamic_cast<const EtcdStore*>(&store)) {
    auto st = etcd->stats();
    counter("gantry_store_txns_total", "Store transactions committed.", st.txns_committed);
    counter("gantry_store_etcd_failures_total",
            "etcd requests that failed (unreachable, timed out, over a limit).",
            st.requests_failed);
    counter("gantry_store_etcd_watch_reconnects_total", "etcd watch streams re-opened.",
            st.watch_reconnects);
  }
  if (elector) {
    gauge("gantry_leader", "1 while this replica holds the leader lease (runs the controllers).",
          elector->leader() ? 1 : 0);
    counter("gantry_leader_elections_won_total", "Times this replica became the leader.",
            elector->stats().elections_won);
    counter("gantry_leader_demotions_total", "Times this replica stopped being the leader.",
            elector->stats().demotions);
  }
  if (ownership) {
    gauge("gantry_ha_nodes_held", "Nodes whose tunnel this replica holds (ownership records).",
          double(ownership->held_count()));
    auto st = ownership->stats();
    counter("gantry_ha_ownership_write_failures_total",
            "Ownership record writes that failed (retried).", st.write_failures);
  }
  if (link) {
    const auto& st = link->stats();
    counter("gantry_ha_link_forwarded_total",
            "Log streams forwarded to the replica holding the node's tunnel.", st.forwarded);
    counter("gantry_ha_link_forward_failures_total",
            "Forwarded log streams whose replica could not be reached.", st.forward_failures);
    counter("gantry_ha_link_served_total", "Log streams served for other replicas.", st.served);
    counter("gantry_ha_link_refused_total",
            "Replica link connections refused: not a replica certificate.", st.refused);
  }
  gauge("gantry_registry_nodes", "Nodes in the registry.", double(registry.node_count()));
  gauge("gantry_registry_pods", "Pods in the registry.", double(registry.pod_count()));
  // Nodes by province and Ready state (at most kMaxProvinces provinces; the rest add up under
  // "other", so that node labels cannot blow up the series).
  constexpr size_t kMaxProvinces = 256;
  auto by_province = m.gauge("gantry_province_nodes",
                             "Nodes by province and Ready state (unknown: offline past the node "
                             "timeout, or never reported).",
                             {"province", "state"});
  auto fleet = m.gauge("gantry_nodes", "Nodes by Ready state.", {"state"});
  if (by_province.ok() && fleet.ok()) {
    size_t provinces = 0;
    for (const auto& [province, c] : count_nodes_by_province(registry, store)) {
      std::string label = province;
      if (!label.empty() && ++provinces > kMaxProvinces) label = "other";
      for (auto [state, n] : {std::pair{"ready", c.ready}, std::pair{"not_ready", c.not_ready},
                              std::pair{"unknown", c.unknown}}) {
        fleet->with({state}).add(double(n));
        if (!label.empty()) by_province->with({label, state}).add(double(n));
      }
    }
    for (const char* state : {"ready", "not_ready", "unknown"}) fleet->with({state});
  }
  if (api_server) {
    const auto& a = api_server->stats();
    counter("gantry_api_requests_total", "REST API requests.", a.requests);
    counter("gantry_api_unauthorized_total", "REST API requests refused with 401.", a.unauthorized);
    counter("gantry_api_forbidden_total", "REST API requests refused with 403.", a.forbidden);
    gauge("gantry_api_watches", "REST watches open.", double(a.watches_open.load()));
    counter("gantry_api_log_requests_total", "pods/log requests.", a.log_requests);
    gauge("gantry_api_logs", "pods/log responses in progress.", double(a.logs_open.load()));
    counter("gantry_api_exec_requests_total", "pods/exec and pods/attach requests.",
            a.exec_requests);
    gauge("gantry_api_exec_sessions", "exec/attach sessions in progress.",
          double(a.exec_open.load()));
  }
  return m.render_prometheus() + process.render_prometheus();
}

// gantry_certificate_not_after_timestamp_seconds{certificate}: when the certificates cloudcore
// loaded expire (the earliest of a bundle), for the expiry alerts.
void export_certificate_expiry(common::MetricsRegistry& metrics, const CloudcoreConfig& config) {
  auto family =
      metrics.gauge("gantry_certificate_not_after_timestamp_seconds",
                    "When a certificate cloudcore uses expires (unix seconds).", {"certificate"});
  if (!family.ok()) return;
  for (auto [name, path] : {std::pair{"serving", &config.tls.cert}, std::pair{"ca", &config.tls.ca},
                            std::pair{"etcd_client", &config.store.etcd.tls.cert},
                            std::pair{"etcd_ca", &config.store.etcd.tls.ca}}) {
    if (path->empty()) continue;
    auto pem = common::read_file(*path);
    if (!pem.ok()) continue;
    auto bundle = common::Certificate::bundle_from_pem(*pem);
    if (!bundle.ok()) continue;
    auto earliest = bundle->front().not_after();
    for (const auto& c : *bundle) earliest = std::min(earliest, c.not_after());
    family->with({name}).set(double(
        std::chrono::duration_cast<std::chrono::seconds>(earliest.time_since_epoch()).count()));
  }
}

// The replica link of replica `name` on `hub` (several replicas), and the address written in
// this replica's ownership records. Without a join section (no CA key to issue the link
// certificate) there is none: {nullptr, ""}.
common::Result<std::pair<std::unique_ptr<ReplicaLink>, std::string>> start_replica_link(
    common::EventLoop& loop, const CloudcoreConfig& config, const std::string& name, Hub& hub) {
  if (!config.join.enabled) {
    spdlog::warn(
        "ha: no join section, so no CA key to issue the replica link certificate: the logs of "
        "nodes held by other replicas are answered 503 naming the replica");
    return std::pair<std::unique_ptr<ReplicaLink>, std::string>{};
  }
  GANTRY_ASSIGN_OR_RETURN(auto listen, common::parse_host_port(config.ha.link_listen, 10004));
  common::HostPort advertise{name, 0};
  if (!config.ha.link_advertise.empty()) {
    // "{name}" stands for the replica's name: one config for every replica (the Helm chart's
    // "{name}.RELEASE-cloudcore-headless.NAMESPACE.svc", the StatefulSet pod's stable name).
    std::string text = config.ha.link_advertise;
    for (size_t at; (at = text.find("{name}")) != std::string::npos;) text.replace(at, 6, name);
    GANTRY_ASSIGN_OR_RETURN(advertise, common::parse_host_port(text, 0));
  }
  GANTRY_ASSIGN_OR_RETURN(auto credentials, load_join_credentials(config.tls.ca, config.join.ca_key,
                                                                  config.join.token_signing_key));
  ReplicaLinkOptions options;
  options.replica = name;
  options.address = listen.host;
  options.port = listen.port;
  options.ca_pem = credentials.ca.to_pem();
  GANTRY_ASSIGN_OR_RETURN(options.certificate,
                          issue_replica_certificate(name, advertise.host, credentials.ca,
                                                    credentials.ca_key, 24h * 365));
  GANTRY_ASSIGN_OR_RETURN(auto link, ReplicaLink::start(loop, hub, std::move(options)));
  if (advertise.port == 0) advertise.port = link->port();
  spdlog::info("ha: replica link listening on port {}, advertised as {}", link->port(),
               advertise.to_string());
  return std::pair{std::move(link), advertise.to_string()};
}

int run(const CloudcoreConfig& config) {
  // Signals are taken by sigwait below, not by handlers: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);  // reload the API's token file
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto listen = common::parse_host_port(config.tunnel.listen, 10000);
  if (!listen.ok()) {
    spdlog::critical("tunnel.listen: {}", listen.status().message());
    return 2;
  }
  auto tls = server_tls(config.tls);
  if (!tls.ok()) {
    spdlog::critical("TLS: {}", tls.status().to_string());
    return 2;
  }
  // Histograms and gauges the modules update themselves; outlives every module below.
  common::MetricsRegistry process_metrics;
  export_certificate_expiry(process_metrics, config);
  if (auto info = process_metrics.gauge("gantry_build_info", "cloudcore's version.", {"version"});
      info.ok())
    info->with({common::kVersion}).set(1);
  std::error_code ec;
  std::filesystem::create_directories(config.data_dir, ec);
  std::string store_where;
  auto store = open_configured_store(config.store, config.data_dir, &store_where);
  if (!store.ok()) {
    spdlog::critical("store ({}): {}", store_where, store.status().to_string());
    return 1;
  }
  if (auto s = instrument_store(**store, process_metrics); !s.ok())
    spdlog::warn("store metrics: {}", s.to_string());
  auto registry = Registry::start(**store);
  if (!registry.ok()) {
    spdlog::critical("{}", registry.status().to_string());
    return 1;
  }
  spdlog::info("store {} at revision {}: {} nodes, {} pods", store_where,
               (*store)->current_revision(), (*registry)->node_count(), (*registry)->pod_count());

  common::EventLoop loop(config.threads);
  common::SystemClock clock;
  // Several replicas: leases on etcd, this replica's name, its node ownership records.
  auto* etcd = dynamic_cast<EtcdStore*>(store->get());
  const bool ha = config.ha.enabled;
  if (ha && !etcd) {
    spdlog::critical("ha: several replicas need store.backend etcd");
    return 2;
  }
  std::string replica = config.ha.name;
  if (replica.empty()) {
    char host[256] = {};
    replica = gethostname(host, sizeof host - 1) == 0 && host[0] ? host : "cloudcore";
  }
  const auto lease_ttl = std::chrono::duration_cast<std::chrono::seconds>(config.ha.lease_ttl);
  std::unique_ptr<Leases> leases;
  if (ha) {
    auto opened = open_leases(**store, clock, {std::string(controllers::kCoordinationPrefix)});
    if (!opened.ok()) {
      spdlog::critical("ha: {}", opened.status().to_string());
      return 1;
    }
    leases = std::move(opened).value();
    etcd->set_auto_compaction(false);  // the leader compacts
    spdlog::info("ha: replica {} (lease TTL {} s)", replica, lease_ttl.count());
  }
  // Events (kubectl describe): the scheduler's, the nodes' Ready transitions and the edges'.
  controllers::EventRecorderOptions event_options;
  event_options.ttl = std::chrono::duration_cast<std::chrono::seconds>(config.events.ttl);
  if (ha) event_options.sweep_interval = std::chrono::milliseconds(0);  // the leader sweeps
  controllers::EventRecorder events(**store, clock, event_options);
  events.start();
  auto record_event = [&events](controllers::EventRecord e) { events.record(std::move(e)); };
  HubOptions hub_options;
  hub_options.events = record_event;
  // Image pre-pull (gantry.io/v1 ImagePullJob): the nodes' reports go to the controller below.
  std::atomic<controllers::ImagePullController*> image_pulls{nullptr};
  hub_options.on_image_pull_report = [&image_pulls](const std::string& node,
                                                    const v1::ImagePullReport& report) {
    if (auto* c = image_pulls.load()) c->on_report(node, report);
  };
  hub_options.address = listen->host;
  hub_options.port = listen->port;
  hub_options.heartbeat_interval =
      std::chrono::duration_cast<std::chrono::seconds>(config.tunnel.heartbeat);
  hub_options.node_timeout = config.tunnel.node_timeout;
  hub_options.max_concurrent_resyncs = config.tunnel.max_concurrent_resyncs;
  hub_options.max_concurrent_handshakes = config.tunnel.max_concurrent_handshakes;
  hub_options.retry_after_seconds = static_cast<int>(
      std::chrono::duration_cast<std::chrono::seconds>(config.tunnel.retry_after).count());
  hub_options.max_frame_bytes = config.tunnel.max_frame.bytes;
  hub_options.max_queued_bytes = config.tunnel.max_queued.bytes;
  if (auto h = process_metrics.histogram(
          "gantry_hub_status_propagation_seconds",
          "Status batches from their arrival at the hub until durable in the store.",
          common::exponential_buckets(0.001, 2, 15));
      h.ok())
    hub_options.status_propagation = h->with();
  if (auto g = process_metrics.gauge("gantry_hub_status_writer_queue",
                                     "Status batches and liveness marks waiting to be written.");
      g.ok())
    hub_options.status_queued = g->with();
  if (auto c = process_metrics.counter(
          "gantry_hub_status_store_retries_total",
          "Status write rounds tried again because the store was unavailable (etcd down); the "
          "batches stay unacknowledged and the tunnels open meanwhile.");
      c.ok())
    hub_options.status_store_retries = c->with();
  if (auto g = process_metrics.gauge(
          "gantry_hub_status_batches_held",
          "Status batches held unacknowledged until the store is available again.");
      g.ok())
    hub_options.status_held = g->with();
  std::atomic<Hub*> hub_ptr{nullptr};
  std::unique_ptr<controllers::NodeOwnership> ownership;
  if (ha) {
    controllers::NodeOwnershipOptions o;
    o.replica = replica;
    o.ttl = lease_ttl;
    // A node the leader marked Unknown just before its record was written is back.
    o.on_recorded = [&hub_ptr](const std::string& node) {
      if (Hub* h = hub_ptr.load()) h->clear_unreachable(node);
    };
    ownership = std::make_unique<controllers::NodeOwnership>(*leases, **store, clock, o);
    hub_options.on_node_session = [o = ownership.get()](const std::string& node, bool held) {
      held ? o->held(node) : o->released(node);
    };
    hub_options.mark_unreachable = false;  // the leader's NodeLifecycle does
  }
  // Certificate rotation over the tunnel: the join section's CA and lifetime.
  std::shared_ptr<NodeCertificateSigner> signer;
  if (config.join.enabled) {
    auto credentials =
        load_join_credentials(config.tls.ca, config.join.ca_key, config.join.token_signing_key);
    if (!credentials.ok()) {
      spdlog::critical("join: {}", credentials.status().to_string());
      return 1;
    }
    const auto lifetime =
        std::chrono::duration_cast<std::chrono::seconds>(config.join.certificate_lifetime);
    signer =
        std::make_shared<NodeCertificateSigner>(std::move(credentials).value(), lifetime, clock);
    hub_options.renew_certificate = [signer](const std::string& node, std::string_view csr) {
      return signer->sign(node, csr);
    };
    // Short test lifetimes renew more often than every 10 s.
    hub_options.renewal_interval =
        std::min<std::chrono::milliseconds>(10s, std::chrono::milliseconds(lifetime) / 4);
  }
  auto hub = Hub::start(loop, *tls, **store, **registry, clock, hub_options);
  if (!hub.ok()) {
    spdlog::critical("{}", hub.status().to_string());
    return 1;
  }
  hub_ptr = hub->get();
  // The replica link: log streams of nodes another replica holds go there.
  std::unique_ptr<ReplicaLink> link;
  if (ha) {
    auto started = start_replica_link(loop, config, replica, **hub);
    if (!started.ok()) {
      spdlog::critical("ha: replica link: {}", started.status().to_string());
      return 1;
    }
    link = std::move(started->first);
    if (link) ownership->set_link(started->second);
  }
  if (ownership) ownership->start();
  // Whatever way run() ends, the ownership thread stops before the hub goes.
  struct StopOwnership {
    std::atomic<Hub*>& hub;
    controllers::NodeOwnership* ownership;
    ~StopOwnership() {
      if (ownership) ownership->stop();
      hub = nullptr;
    }
  } stop_ownership{hub_ptr, ownership.get()};
  HubPullTransport pull_transport(**hub);
  controllers::SchedulerOptions scheduler_options;
  scheduler_options.events = record_event;
  // The controllers: the scheduler; ReplicaSets, Deployments, DaemonSets and the collector of
  // their dependents (docs/workloads.md); with several replicas also the node lifecycle, the
  // events TTL sweep and compaction; only on the leader then, writing through a FencedStore.
  struct Leading {
    std::unique_ptr<controllers::Scheduler> scheduler;
    std::unique_ptr<controllers::WorkloadControllers> workloads;
    std::unique_ptr<controllers::NodeLifecycle> lifecycle;
    std::unique_ptr<controllers::NodeGc> node_gc;
    std::unique_ptr<controllers::Periodic> event_sweep;
    std::unique_ptr<controllers::ImagePullController> image_pull_refuser;  // with ha only
    void stop() {
      if (image_pull_refuser) image_pull_refuser->stop();
      image_pull_refuser.reset();
      event_sweep.reset();
      if (node_gc) node_gc->stop();
      if (lifecycle) lifecycle->stop();
      if (workloads) workloads->stop();
      if (scheduler) scheduler->stop();
      node_gc.reset();
      lifecycle.reset();
      workloads.reset();
      scheduler.reset();
    }
  } leading;
  auto start_controllers = [&](Store& controller_store,
                               const controllers::LeaderElector* elector) -> bool {
    auto scheduler = controllers::Scheduler::start(controller_store, scheduler_options);
    if (!scheduler.ok()) {
      spdlog::critical("scheduler: {}", scheduler.status().to_string());
      return false;
    }
    leading.scheduler = std::move(scheduler).value();
    auto workloads = controllers::WorkloadControllers::start(controller_store);
    if (!workloads.ok()) {
      spdlog::critical("workloads: {}", workloads.status().to_string());
      leading.stop();
      return false;
    }
    leading.workloads = std::move(workloads).value();
    // Pods bound to a deleted node object go after a quarantine (never those of an offline node).
    auto node_gc = controllers::NodeGc::start(controller_store, clock);
    if (!node_gc.ok()) {
      spdlog::critical("node garbage collector: {}", node_gc.status().to_string());
      leading.stop();
      return false;
    }
    leading.node_gc = std::move(node_gc).value();
    if (elector) {
      controllers::NodeLifecycleOptions lo;
      lo.node_timeout = config.tunnel.node_timeout;
      lo.events = record_event;
      auto lifecycle = controllers::NodeLifecycle::start(controller_store, *leases, **registry,
                                                         *elector, clock, lo);
      if (!lifecycle.ok()) {
        spdlog::critical("node lifecycle: {}", lifecycle.status().to_string());
        leading.stop();
        return false;
      }
      leading.lifecycle = std::move(lifecycle).value();
      // ImagePullJobs need the tunnel of every node they select, and with several replicas a
      // node's tunnel may be on another one: the leader ends them Failed, saying so.
      controllers::ImagePullOptions io;
      io.refuse_message =
          "ImagePullJobs are not supported with several cloudcore replicas (ha) yet: a node's "
          "tunnel may be held by another replica. Run a single cloudcore replica to pre-pull "
          "images, or let the pods pull their images themselves";
      auto refuser = controllers::ImagePullController::start(controller_store, pull_transport, io);
      if (!refuser.ok()) {
        spdlog::critical("image pull jobs: {}", refuser.status().to_string());
        leading.stop();
        return false;
      }
      leading.image_pull_refuser = std::move(refuser).value();
      leading.event_sweep = std::make_unique<controllers::Periodic>(5min, [&events] {
        if (auto r = events.sweep(); !r.ok())
          spdlog::warn("events: TTL sweep: {}", r.status().message());
      });
      etcd->set_auto_compaction(true);
    }
    return true;
  };
  std::unique_ptr<controllers::FencedStore> fenced;  // outlives the elector that uses it
  std::unique_ptr<controllers::LeaderElector> elector;
  if (ha) {
    controllers::LeaderOptions lo;
    lo.identity = replica;
    lo.ttl = lease_ttl;
    lo.on_elected = [&](Revision) { return start_controllers(*fenced, elector.get()); };
    lo.on_demoted = [&] {
      etcd->set_auto_compaction(false);
      leading.stop();
    };
    elector = std::make_unique<controllers::LeaderElector>(*leases, **store, clock, lo);
    fenced = std::make_unique<controllers::FencedStore>(**store, *leases, *elector);
    elector->start();
  } else if (!start_controllers(**store, nullptr)) {
    return 1;
  }
  // ImagePullJobs ask the nodes this process holds; with several replicas a node may be held by
  // another one, so the controller pulls on single-replica cloudcore only (with ha the leader
  // refuses them, above; docs/workloads.md).
  std::optional<common::Result<std::unique_ptr<controllers::ImagePullController>>> image_pull_jobs;
  if (!ha) {
    image_pull_jobs = controllers::ImagePullController::start(**store, pull_transport);
    if (!image_pull_jobs->ok()) {
      spdlog::critical("image pull jobs: {}", image_pull_jobs->status().to_string());
      return 1;
    }
    image_pulls = (*image_pull_jobs)->get();
  }
  std::unique_ptr<JoinServer> join;
  if (config.join.enabled) {
    join = start_join(loop, config, **store, **registry, clock);
    if (!join) return 1;
  }
  // Outlives the API server below. With several replicas, a node held by another one is named.
  // Outlives the API server below. With several replicas, the stream of a node held by another
  // one goes through the replica link to it.
  HubLogStreamer log_streamer(
      **hub,
      [&, ha](const std::string& node, const v1::LogRequest& request,
              const api::LogStreamer::Callbacks& callbacks, const common::Status& here)
          -> std::optional<common::Result<std::unique_ptr<api::LogStreamer::Stream>>> {
        if (!ha) return std::nullopt;
        auto kv = (*store)->get(controllers::node_ownership_key(node));
        if (!kv.ok()) return std::nullopt;
        if (!kv->has_value())
          return common::make_error(common::Code::kUnavailable,
                                    "no cloudcore replica holds node \"{}\"'s tunnel: {}", node,
                                    here.message());
        std::string owner = controllers::node_owner((*kv)->value);
        if (owner.empty() || owner == replica) return std::nullopt;
        std::string at = controllers::node_owner_link((*kv)->value);
        if (!link || at.empty())
          return common::make_error(
              common::Code::kUnavailable,
              "node \"{}\" is connected to cloudcore replica {}, and {} serves no replica link "
              "(ha needs a join section: the CA key issues the link certificates); use {}'s API",
              node, owner, link ? owner : replica, owner);
        return common::Result<std::unique_ptr<api::LogStreamer::Stream>>(
            link->open_log(owner, at, node, request, callbacks));
      },
      // exec/attach are not relayed between replicas: name the one to ask.
      [&, ha](const std::string& node,
              const common::Status& here) -> std::optional<common::Status> {
        if (!ha) return std::nullopt;
        auto kv = (*store)->get(controllers::node_ownership_key(node));
        if (!kv.ok() || !kv->has_value()) return std::nullopt;
        std::string owner = controllers::node_owner((*kv)->value);
        if (owner.empty() || owner == replica) return std::nullopt;
        return common::make_error(
            common::Code::kUnavailable,
            "node \"{}\" is connected to cloudcore replica {}; exec and attach are not relayed "
            "between replicas yet: use {}'s API ({})",
            node, owner, owner, here.message());
      });
  std::unique_ptr<api::ApiServer> api_server;
  std::unique_ptr<api::TokenFileReloader> token_reloader;
  if (config.api.enabled) {
    auto tokens = api::TokenAuthenticator::load(config.api.token_file);
    if (!tokens.ok()) {
      spdlog::critical("api.token_file: {}", tokens.status().to_string());
      return 1;
    }
    // Shares the server's token set: a reload is seen by the next request.
    token_reloader = std::make_unique<api::TokenFileReloader>(config.api.token_file, *tokens);
    auto metrics = [&hub, &store, &registry, &api_server, &process_metrics, &elector, &ownership,
                    &link] {
      return render_metrics(**hub, **store, **registry, api_server.get(), process_metrics,
                            elector.get(), ownership.get(), link.get());
    };
    auto request_metrics = api::RequestMetrics::create(process_metrics);
    if (!request_metrics.ok())
      spdlog::warn("api metrics: {}", request_metrics.status().to_string());
    api_server = start_api(metrics, loop, config, **store, **registry, clock, &log_streamer,
                           std::move(tokens).value(),
                           request_metrics.ok() ? *request_metrics : api::RequestMetrics());
    if (!api_server) return 1;
    if (config.api.token_reload_interval.count() > 0)
      token_reloader->start(config.api.token_reload_interval);
  }
  loop.run();
  if (api_server) spdlog::info("api: listening on port {}", api_server->port());
  if (join) spdlog::info("join: endpoint ready on port {}", join->port());
  spdlog::info("cloudcore {} ready: tunnel on {}:{}", common::kVersion, listen->host,
               (*hub)->port());

  int sig = 0;
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP) {
    if (!token_reloader) {
      spdlog::info("cloudcore: SIGHUP received; no api section, so no token file to reload");
      continue;
    }
    spdlog::info("cloudcore: SIGHUP received, reading {} again", config.api.token_file);
    (void)token_reloader->check(/*force=*/true);
  }
  spdlog::info("cloudcore: {} received, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  if (token_reloader) token_reloader->stop();
  if (join) join->stop();
  if (api_server) api_server->stop();
  image_pulls = nullptr;
  if (image_pull_jobs) (**image_pull_jobs)->stop();
  // A leader hands over at once (its lease revoked); the controllers stop either way.
  if (elector) elector->stop();
  leading.stop();
  if (link) link->stop();  // the streams it serves end before the hub
  (*hub)->stop();
  hub_ptr = nullptr;
  if (ownership) ownership->stop();  // this replica's node records go with its lease
  hub->reset();
  events.stop();
  loop.stop();
  return 0;
}

}  // namespace
}  // namespace gantry::cloud

int main(int argc, char** argv) {
  CLI::App app{
      "cloudcore: the cloud half of Gantry. Keeps the desired and observed state of the edge "
      "fleet\n"
      "in its embedded store and serves the edge nodes' tunnels (wss://HOST:10000/v1/tunnel).\n"
      "With a join section in its config it also serves the join endpoint (https://HOST:10002)\n"
      "that `gantryadm join` uses, and with an api section the Kubernetes-compatible REST API\n"
      "(https://HOST:10443). SIGHUP reads the API's token file again.",
      "cloudcore"};
  std::string config_path;
  app.add_option("--config", config_path, "cloudcore.yaml (see deploy/cloudcore.yaml)")->required();
  app.set_version_flag("--version", std::string("cloudcore ") + gantry::common::kVersion);
  CLI11_PARSE(app, argc, argv);

  gantry::cloud::CloudcoreConfig config;
  if (auto s = gantry::cloud::load_config(config_path, config); !s.ok()) {
    fmt::print(stderr, "cloudcore: {}\n", s.message());
    return 2;
  }
  if (auto s = gantry::common::setup_logging(config.log, "cloudcore"); !s.ok()) {
    fmt::print(stderr, "cloudcore: {}\n", s.message());
    return 2;
  }
  return gantry::cloud::run(config);
}
