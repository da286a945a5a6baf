#include "tools/edgesim/sim.h"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <thread>

#include "common/base/address.h"
#include "common/base/atomic_file.h"
#include "common/base/backoff.h"
#include "common/base/clock.h"
#include "common/net/event_loop.h"
#include "common/net/tcp_info.h"
#include "common/net/tls.h"
#include "common/net/websocket.h"
#include "common/pki/pki.h"
#include "gantry/v1/tunnel.pb.h"

namespace gantry::sim {
namespace {

using json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace ssl = asio::ssl;

constexpr char kSentAnnotation[] = "gantry.io/edgesim-sent-us";

int64_t unix_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double ms_since(SteadyClock::time_point since) {
  return std::chrono::duration<double, std::milli>(SteadyClock::now() - since).count();
}

json percentiles(std::vector<double> values) {
  if (values.empty()) return json{{"count", 0}};
  std::sort(values.begin(), values.end());
  auto at = [&](double q) {
    size_t i = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
    return std::round(values[std::min(i, values.size() - 1)] * 10) / 10;
  };
  return json{
      {"count", values.size()}, {"p50", at(0.5)}, {"p99", at(0.99)}, {"max", values.back()}};
}

long rss_kib(const std::string& pid = "self") {
  std::ifstream in("/proc/" + pid + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

// Bytes both ways (TLS and WebSocket framing included, TCP/IP headers not) of every established
// connection to `port`, from the kernel's tcp_info as `ss` reports it; -1 when ss fails.
int64_t socket_bytes(uint16_t port, size_t* connections) {
  std::string cmd = fmt::format("ss -tinH state established '( dport = :{} )' 2>/dev/null", port);
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return -1;
  std::string out;
  std::array<char, 65536> buf;
  while (size_t n = fread(buf.data(), 1, buf.size(), p)) out.append(buf.data(), n);
  pclose(p);
  int64_t total = 0;
  size_t count = 0;
  static const std::regex re("bytes_(acked|received):(\\d+)");
  for (std::sregex_iterator it(out.begin(), out.end(), re), end; it != end; ++it) {
    total += std::stoll((*it)[2]);
    if ((*it)[1] == "acked") ++count;
  }
  if (connections) *connections = count;
  return total;
}

// --- the simulated status ------------------------------------------------------------------

v1::PodStatus full_pod_status(const std::string& container, uint32_t restarts, v1::PodPhase phase,
                              uint32_t node_index, uint32_t pod_index) {
  v1::PodStatus s;
  const bool running = phase == v1::POD_PHASE_RUNNING;
  s.set_phase(phase);
  s.set_ready(running);
  s.set_pod_ip(
      fmt::format("10.{}.{}.{}", (node_index >> 8) & 255, node_index & 255, pod_index + 2));
  s.set_start_time(1700000000);
  if (running) s.set_ready_since(1700000005);
  auto* c = s.add_containers();
  c->set_name(container);
  c->set_restart_count(static_cast<int32_t>(restarts));
  c->set_ready(running);
  c->set_image_id("sha256:5b0f0c1a7b6f7a3e4a0d4b1e2f7c9a8d");
  if (running) {
    c->mutable_state()->mutable_running()->set_started_at(1700000004);
  } else {
    c->mutable_state()->mutable_waiting()->set_reason("ContainerCreating");
  }
  return s;
}

v1::NodeStatus full_node_status() {
  v1::NodeStatus s;
  for (auto* r : {s.mutable_capacity(), s.mutable_allocatable()}) {
    r->set_cpu_millis(4000);
    r->set_memory_bytes(int64_t{1} << 30);
    r->set_pods(110);
    r->set_ephemeral_storage_bytes(int64_t{16} << 30);
  }
  auto* ready = s.add_conditions();
  ready->set_type(v1::NODE_CONDITION_READY);
  ready->set_status(v1::CONDITION_STATUS_TRUE);
  ready->set_last_transition_time(1700000000);
  ready->set_reason("EdgecoreReady");
  auto* info = s.mutable_node_info();
  info->set_architecture("arm64");
  info->set_operating_system("linux");
  info->set_kernel_version("5.10.0");
  info->set_container_runtime_version("containerd://1.6.20");
  info->set_edgecore_version("edgesim");
  return s;
}

// --- the fleet -----------------------------------------------------------------------------

class Sim;

struct PodSim {
  std::string ns;
  std::string name;
  std::string uid;
  std::string container = "app";
  uint32_t index = 0;  // its number in the node (pod_name's suffix)
  v1::PodPhase phase = v1::POD_PHASE_RUNNING;
  uint32_t k = 0;  // the status: restarts of the container
  // What the cloud holds: none (send full) or (k_acked, phase_acked) at generation `gen`.
  bool acked = false;
  uint32_t k_acked = 0;
  v1::PodPhase phase_acked = v1::POD_PHASE_UNSPECIFIED;
  uint64_t gen = 0;
  bool in_flight = false;
  uint32_t k_in_flight = 0;
  v1::PodPhase phase_in_flight = v1::POD_PHASE_UNSPECIFIED;
  // Propagation: when status `k_sent` first went on the wire; the highest k the watch saw.
  uint32_t k_sent = 0;
  SteadyClock::time_point sent_at{};
  int64_t k_seen = -1;
  int64_t last_write_us = 0;  // the newest timed downstream write seen

  bool pending() const { return !in_flight && (!acked || k != k_acked || phase != phase_acked); }
};

class SimNode {
 public:
  SimNode(Sim& sim, uint32_t index, std::string name, std::shared_ptr<common::TlsIdentity> identity,
          std::string local_address);

  void connect();  // a connection slot is ours
  void on_connected(common::ConnectResult result, uint64_t id);
  void on_open(uint64_t id, std::shared_ptr<common::WsConnection> conn);
  void on_message(uint64_t id, std::string_view data);
  void on_close(uint64_t id, std::string_view reason);
  void churn(std::mt19937_64& rng);  // one status change of a random pod
  void change_phase(size_t pod, v1::PodPhase phase);
  void observed(const std::string& pod, int64_t restarts);  // from the cloud's watch
  void stop();

  const std::string& name() const { return name_; }
  uint32_t index() const { return index_; }
  struct Progress {
    bool connected = false;
    bool resynced = false;
    size_t pods = 0;
    size_t unacked = 0;  // pods whose latest status the cloud has not acknowledged
    size_t unseen = 0;   // pods whose latest status the watch has not shown
    size_t applied_objects = 0;
  };
  Progress progress();
  std::shared_ptr<common::WsConnection> connection();

 private:
  void on_welcome(const v1::Welcome& welcome);
  void on_object_delta(const v1::ObjectDelta& delta);
  // Log streams (kubectl logs): a pod's container log is "NODE/POD: line K"; three lines, and
  // with follow one more every kLogFollowInterval until the cloud closes the stream.
  void on_stream_open(const v1::StreamOpen& open);
  void on_stream_window(const v1::StreamWindow& window);
  void flush_log(uint32_t id);
  void follow_log(uint32_t id);
  void end_logs();
  void send_frame(const v1::Frame& frame);
  void on_status_ack(const v1::StatusAck& ack);
  // Pre-pull as a node reports it: Pulling at once, the result after the simulated pull time.
  void on_image_pull(const v1::ImagePullRequest& request);
  void finish_image_pull(const v1::ImagePullRequest& request);
  void try_send();
  void check_resynced();
  void schedule_reconnect();
  void upsert_pod(const v1::Object& object, std::vector<PodSim>& into);

  Sim& sim_;
  const uint32_t index_;
  const std::string name_;
  const std::shared_ptr<common::TlsIdentity> identity_;
  const std::string local_address_;

  std::mutex mu_;
  size_t tunnel_ = 0;  // index into sim_.tunnels: random start, the next after a failure
  uint64_t conn_id_ = 0;
  std::shared_ptr<common::WsConnection> conn_;
  common::Backoff backoff_;
  common::TimerHandle timer_;
  bool stopped_ = false;
  bool welcomed_ = false;
  bool snapshot_pending_ = false;
  bool resynced_ = false;
  bool ever_resynced_ = false;
  SteadyClock::time_point lost_at_;
  uint64_t applied_revision_ = 0;
  uint64_t sequence_ = 0;
  uint64_t in_flight_sequence_ = 0;
  bool in_snapshot_ = false;
  std::vector<PodSim> snapshot_;
  std::deque<common::TimerHandle> pull_timers_;
  std::set<std::string> pulled_;  // "job uid/image": done, answered again at once
  std::vector<PodSim> pods_;
  size_t other_objects_ = 0;  // configmaps and secrets (counted, not kept)
  bool node_acked_ = false;
  uint64_t node_gen_ = 0;
  bool node_in_flight_ = false;
  struct LogSim {
    std::string prefix;  // "NODE/POD: "
    uint64_t window = 0;
    std::string pending;
    uint32_t next_line = 1;
    bool follow = false;
    common::TimerHandle timer;
  };
  std::map<uint32_t, LogSim> logs_;
};

class Handler : public common::WsHandler {
 public:
  Handler(SimNode& node, uint64_t id) : node_(node), id_(id) {}
  void on_open(std::shared_ptr<common::WsConnection> c) override {
    node_.on_open(id_, std::move(c));
  }
  void on_message(std::string_view data) override { node_.on_message(id_, data); }
  void on_close(std::string_view reason) override { node_.on_close(id_, reason); }

 private:
  SimNode& node_;
  uint64_t id_;
};

class Sim {
 public:
  explicit Sim(const SimOptions& options) : options(options), loop(options.threads) {}

  common::Status init();
  json run();
  json run_status_bytes();

  // Connection slots: at most max_connecting attempts at once, the rest queue.
  void want_connect(SimNode* node) {
    {
      std::lock_guard lock(mu);
      if (stopping) return;
      connect_queue.push_back(node);
    }
    pump();
  }
  void connect_done() {
    connecting--;
    pump();
  }
  void pump() {
    while (true) {
      SimNode* node = nullptr;
      {
        std::lock_guard lock(mu);
        if (connect_queue.empty() || connecting.load() >= options.max_connecting) return;
        node = connect_queue.front();
        connect_queue.pop_front();
        connecting++;
      }
      node->connect();
    }
  }

  void count_error(const std::string& what) {
    std::lock_guard lock(mu);
    errors[what]++;
  }
  void record_resync(bool initial, double ms) {
    std::lock_guard lock(mu);
    (initial ? resync_initial_ms : resync_reconnect_ms).push_back(ms);
    last_resync_unix_ms = unix_ms();
  }
  void record_downstream(double ms) {
    std::lock_guard lock(mu);
    downstream_ms.push_back(ms);
  }
  void record_propagation(double ms) {
    std::lock_guard lock(mu);
    propagation_ms.push_back(ms);
  }

  const SimOptions& options;
  common::EventLoop loop;
  common::SystemClock clock;
  common::SystemRandom random;
  std::shared_ptr<common::TlsContext> tls;
  std::string host;
  uint16_t port = 0;
  // Several cloudcore replicas (--cloudcore A,B,C): each node starts at a random one and moves
  // to the next when a connection fails or is lost, as edgecore does.
  std::vector<std::pair<std::string, uint16_t>> tunnels;
  std::string api_host;
  uint16_t api_port = 0;
  std::string token;
  std::string ca_pem;
  std::vector<std::unique_ptr<SimNode>> nodes;

  std::mutex mu;
  std::deque<SimNode*> connect_queue;
  std::atomic<int> connecting{0};
  std::atomic<uint64_t> pull_requests{0};  // ImagePullRequests received
  std::atomic<uint64_t> pulls_done{0};     // ... answered with their result
  std::atomic<bool> stopping{false};
  std::map<std::string, uint64_t> errors;
  std::vector<double> resync_initial_ms;
  std::vector<double> resync_reconnect_ms;
  std::vector<double> propagation_ms;
  std::vector<double> downstream_ms;
  std::atomic<uint64_t> writes_ok{0};
  std::atomic<uint64_t> writes_failed{0};
  void write_loop(std::chrono::steady_clock::time_point until);
  int64_t last_resync_unix_ms = 0;
  std::atomic<int64_t> resynced{0};
  std::atomic<int64_t> connected{0};
  std::atomic<uint64_t> changes_generated{0};
  std::atomic<uint64_t> entries_sent{0};
  std::atomic<uint64_t> batches_sent{0};
  std::atomic<uint64_t> resync_requests{0};
  std::atomic<uint64_t> refused_503{0};
  std::atomic<uint64_t> disconnects{0};
  std::atomic<uint64_t> connections{0};  // tunnels opened
  std::atomic<uint64_t> tls_resumed{0};  // of which resumed a TLS session

  // From the watch on nodes: the Ready condition each node last showed.
  std::mutex ready_mu;
  std::vector<char> node_ready;  // 'T', 'F', 'U' or 0 (not seen)
  std::atomic<uint64_t> not_ready_seen{0};
  std::atomic<uint64_t> pod_events{0};
  std::atomic<uint64_t> node_events{0};
  std::atomic<bool> pods_watch_live{false};
  std::atomic<bool> nodes_watch_live{false};

  SimNode* node_by_name(std::string_view name) {
    const std::string prefix = options.node_prefix + "-";
    if (name.substr(0, prefix.size()) != prefix) return nullptr;
    int index = 0;
    for (char c : name.substr(prefix.size())) {
      if (c < '0' || c > '9') return nullptr;
      index = index * 10 + (c - '0');
    }
    index -= options.first_node;
    if (index < 0 || index >= static_cast<int>(nodes.size())) return nullptr;
    return nodes[static_cast<size_t>(index)].get();
  }

  void start_watches(std::vector<std::thread>& threads);
  void stop_watches();
  void watch_loop(const std::string& path, bool pods, std::atomic<bool>& live);
  std::mutex watch_fds_mu;
  std::vector<int> watch_fds;
};

SimNode::SimNode(Sim& sim, uint32_t index, std::string name,
                 std::shared_ptr<common::TlsIdentity> identity, std::string local_address)
    : sim_(sim),
      index_(index),
      name_(std::move(name)),
      identity_(std::move(identity)),
      local_address_(std::move(local_address)),
      backoff_(common::BackoffOptions{sim.options.backoff_base, sim.options.backoff_cap}, sim.clock,
               sim.random),
      lost_at_(SteadyClock::now()) {
  if (sim.tunnels.size() > 1) tunnel_ = sim.random.uniform(0, sim.tunnels.size() - 1);
}

void SimNode::connect() {
  uint64_t id;
  {
    std::lock_guard lock(mu_);
    if (stopped_) {
      sim_.connect_done();
      return;
    }
    id = ++conn_id_;
  }
  common::WsClientOptions o;
  {
    std::lock_guard lock(mu_);
    o.host = sim_.tunnels.empty() ? sim_.host : sim_.tunnels[tunnel_].first;
    o.port = sim_.tunnels.empty() ? sim_.port : sim_.tunnels[tunnel_].second;
  }
  o.local_address = local_address_;
  o.identity = identity_;
  o.ping_interval = sim_.options.heartbeat;
  o.idle_timeout = 40s;
  common::ws_connect(
      sim_.loop, sim_.tls, std::move(o), std::make_unique<Handler>(*this, id),
      [this, id](common::ConnectResult result) { on_connected(std::move(result), id); });
}

void SimNode::on_connected(common::ConnectResult result, uint64_t id) {
  sim_.connect_done();
  if (result.ok()) return;  // on_open follows
  const auto& error = *result.error;
  if (error.kind == common::ConnectError::Kind::kHttpRefused) {
    sim_.count_error(fmt::format("http_{}", error.http_status));
    if (error.http_status == 503) sim_.refused_503++;
  } else {
    sim_.count_error(std::string("connect_") +
                     std::string(common::connect_error_kind_name(error.kind)));
  }
  spdlog::debug("edgesim: {}: {}", name_, error.message);
  std::lock_guard lock(mu_);
  if (id != conn_id_) return;
  if (error.retry_after_seconds > 0)
    backoff_.honour_retry_after(std::chrono::seconds(error.retry_after_seconds));
  if (!sim_.tunnels.empty()) tunnel_ = (tunnel_ + 1) % sim_.tunnels.size();
  schedule_reconnect();
}

void SimNode::schedule_reconnect() {
  if (stopped_ || sim_.stopping) return;
  auto delay = backoff_.next_delay();
  timer_ = sim_.loop.schedule(delay, [this] { sim_.want_connect(this); });
}

void SimNode::on_open(uint64_t id, std::shared_ptr<common::WsConnection> conn) {
  std::lock_guard lock(mu_);
  if (id != conn_id_ || stopped_) {
    conn->close("edgesim: stale connection");
    return;
  }
  conn_ = std::move(conn);
  sim_.connected++;
  sim_.connections++;
  if (conn_->peer().tls_resumed) sim_.tls_resumed++;
  welcomed_ = false;
  v1::Frame frame;
  auto* hello = frame.mutable_hello();
  hello->set_protocol_version(1);
  hello->set_applied_revision(applied_revision_);
  hello->set_acked_sequence(in_flight_sequence_ ? in_flight_sequence_ - 1 : sequence_);
  hello->set_edgecore_version("edgesim");
  conn_->send(frame.SerializeAsString());
}

std::shared_ptr<common::WsConnection> SimNode::connection() {
  std::lock_guard lock(mu_);
  return conn_;
}

void SimNode::on_message(uint64_t id, std::string_view data) {
  std::lock_guard lock(mu_);
  if (id != conn_id_ || !conn_) return;
  v1::Frame frame;
  if (!frame.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
    sim_.count_error("bad_frame");
    conn_->close("edgesim: a message that is not a Frame");
    return;
  }
  switch (frame.msg_case()) {
    case v1::Frame::kWelcome:
      return on_welcome(frame.welcome());
    case v1::Frame::kObjectDelta:
      return on_object_delta(frame.object_delta());
    case v1::Frame::kStatusAck:
      return on_status_ack(frame.status_ack());
    case v1::Frame::kStreamOpen:
      return on_stream_open(frame.stream_open());
    case v1::Frame::kStreamWindow:
      return on_stream_window(frame.stream_window());
    case v1::Frame::kStreamClose:
      if (auto it = logs_.find(frame.stream_close().id()); it != logs_.end()) {
        it->second.timer.cancel();
        logs_.erase(it);
      }
      return;
    case v1::Frame::kImagePullRequest:
      return on_image_pull(frame.image_pull_request());
    default:
      sim_.count_error("unexpected_frame");
      return;
  }
}

void SimNode::on_image_pull(const v1::ImagePullRequest& request) {
  sim_.pull_requests++;
  v1::Frame frame;
  auto* report = frame.mutable_image_pull_report();
  report->set_job(request.job());
  report->set_job_uid(request.job_uid());
  bool all_done = true;
  for (const auto& image : request.images()) {
    auto* r = report->add_images();
    r->set_image(image);
    r->set_attempts(1);
    bool done = pulled_.count(request.job_uid() + "/" + image) > 0;
    all_done = all_done && done;
    r->set_phase(done ? v1::IMAGE_PULL_PHASE_SUCCEEDED : v1::IMAGE_PULL_PHASE_PULLING);
  }
  if (all_done) return finish_image_pull(request);
  conn_->send(frame.SerializeAsString());
  while (pull_timers_.size() > 64) pull_timers_.pop_front();
  auto delay = sim_.options.pull_time * std::max(1, request.images_size());
  pull_timers_.push_back(sim_.loop.schedule(delay, [this, request] {
    std::lock_guard lock(mu_);
    finish_image_pull(request);
  }));
}

void SimNode::finish_image_pull(const v1::ImagePullRequest& request) {
  // Offline meanwhile: the cloud asks again when the node is back.
  if (stopped_ || !conn_ || !welcomed_) return;
  v1::Frame frame;
  auto* report = frame.mutable_image_pull_report();
  report->set_job(request.job());
  report->set_job_uid(request.job_uid());
  for (const auto& image : request.images()) {
    auto* r = report->add_images();
    r->set_image(image);
    bool fail =
        !sim_.options.pull_fail.empty() && image.find(sim_.options.pull_fail) != std::string::npos;
    r->set_attempts(fail ? request.retries() + 1 : 1);
    if (fail) {
      r->set_phase(v1::IMAGE_PULL_PHASE_FAILED);
      r->set_message("edgesim: simulated pull failure");
      continue;
    }
    r->set_phase(v1::IMAGE_PULL_PHASE_SUCCEEDED);
    r->set_image_id(fmt::format("sha256:{:016x}", std::hash<std::string>{}(image)));
    pulled_.insert(request.job_uid() + "/" + image);
  }
  sim_.pulls_done++;
  conn_->send(frame.SerializeAsString());
}

void SimNode::on_welcome(const v1::Welcome& welcome) {
  if (welcomed_) {
    sim_.count_error("second_welcome");
    conn_->close("edgesim: a second Welcome");
    return;
  }
  welcomed_ = true;
  backoff_.on_connected();
  // The batch in flight when the last connection died: durable if the cloud says so.
  if (in_flight_sequence_ != 0) {
    if (in_flight_sequence_ <= welcome.acked_sequence()) {
      v1::StatusAck ack;
      ack.set_sequence(in_flight_sequence_);
      on_status_ack(ack);
    } else {
      for (auto& pod : pods_) pod.in_flight = false;
      node_in_flight_ = false;
      in_flight_sequence_ = 0;
    }
  }
  sequence_ = std::max(sequence_, welcome.acked_sequence());
  if (welcome.resend_status()) {
    node_acked_ = false;
    node_gen_ = 0;
    for (auto& pod : pods_) {
      pod.acked = false;
      pod.gen = 0;
    }
  }
  snapshot_pending_ = welcome.resume() == v1::RESUME_MODE_SNAPSHOT;
  try_send();
  check_resynced();
}

void SimNode::upsert_pod(const v1::Object& object, std::vector<PodSim>& into) {
  auto it = std::find_if(into.begin(), into.end(), [&](const PodSim& p) {
    return p.name == object.name() && p.ns == object.namespace_();
  });
  if (it == into.end()) {
    PodSim pod;
    pod.phase = sim_.options.status_bytes ? v1::POD_PHASE_PENDING : v1::POD_PHASE_RUNNING;
    pod.ns = object.namespace_();
    pod.name = object.name();
    const auto dash = pod.name.rfind("-p");
    if (dash != std::string::npos)
      pod.index = static_cast<uint32_t>(std::atoi(pod.name.c_str() + dash + 2));
    into.push_back(std::move(pod));
    it = std::prev(into.end());
  }
  if (it->uid != object.uid()) {
    it->uid = object.uid();
    it->acked = false;  // a new incarnation: its first status goes in full
  }
  if (object.pod().containers_size() > 0) it->container = object.pod().containers(0).name();
  // A write the sim's own writer timed: from the API call to here.
  const auto& annotations = object.pod().annotations();
  if (auto a = annotations.find(kSentAnnotation); a != annotations.end()) {
    const int64_t sent = std::atoll(a->second.c_str());
    if (sent > 0 && sent > it->last_write_us) {
      it->last_write_us = sent;
      sim_.record_downstream(double(unix_us() - sent) / 1000.0);
    }
  }
}

void SimNode::on_object_delta(const v1::ObjectDelta& delta) {
  if (!welcomed_) {
    sim_.count_error("delta_before_welcome");
    conn_->close("edgesim: ObjectDelta before Welcome");
    return;
  }
  if (delta.snapshot()) {
    if (!in_snapshot_) {
      in_snapshot_ = true;
      snapshot_.clear();
      other_objects_ = 0;
    }
    for (const auto& object : delta.upserts()) {
      if (object.kind() != v1::OBJECT_KIND_POD) {
        ++other_objects_;
        continue;
      }
      // Keep what we know of a pod we already had (its acked status).
      auto old = std::find_if(pods_.begin(), pods_.end(), [&](const PodSim& p) {
        return p.name == object.name() && p.ns == object.namespace_();
      });
      if (old != pods_.end()) snapshot_.push_back(std::move(*old));
      upsert_pod(object, snapshot_);
    }
    if (delta.more()) return;
    pods_ = std::move(snapshot_);
    snapshot_.clear();
    in_snapshot_ = false;
    snapshot_pending_ = false;
    applied_revision_ = delta.revision();
  } else {
    if (in_snapshot_) {
      sim_.count_error("incremental_inside_snapshot");
      conn_->close("edgesim: an incremental frame inside a snapshot");
      return;
    }
    for (const auto& object : delta.upserts()) {
      if (object.kind() == v1::OBJECT_KIND_POD) {
        upsert_pod(object, pods_);
      } else {
        ++other_objects_;
      }
    }
    for (const auto& ref : delta.deletes()) {
      if (ref.kind() != v1::OBJECT_KIND_POD) continue;
      std::erase_if(
          pods_, [&](const PodSim& p) { return p.name == ref.name() && p.ns == ref.namespace_(); });
    }
    if (!delta.more()) applied_revision_ = std::max(applied_revision_, delta.revision());
  }
  v1::Frame ack;
  ack.mutable_object_ack()->set_revision(applied_revision_);
  conn_->send(ack.SerializeAsString());
  try_send();
  check_resynced();
}

void SimNode::on_status_ack(const v1::StatusAck& ack) {
  if (in_flight_sequence_ == 0 || ack.sequence() < in_flight_sequence_) {
    // Nothing of ours in flight (a duplicate): only honour the resync requests.
  } else {
    for (auto& pod : pods_) {
      if (!pod.in_flight) continue;
      pod.in_flight = false;
      pod.gen += 1;  // the cloud stored base_generation + 1
      pod.acked = true;
      pod.k_acked = pod.k_in_flight;
      pod.phase_acked = pod.phase_in_flight;
    }
    if (node_in_flight_) {
      node_in_flight_ = false;
      node_acked_ = true;
      node_gen_ += 1;
    }
    in_flight_sequence_ = 0;
  }
  for (const auto& resync : ack.resync()) {
    sim_.resync_requests++;
    if (resync.kind() == v1::OBJECT_KIND_NODE) {
      node_acked_ = false;
      node_gen_ = resync.generation();
      continue;
    }
    for (auto& pod : pods_) {
      if (pod.name == resync.name() && pod.ns == resync.namespace_()) {
        pod.acked = false;
        pod.gen = resync.generation();
      }
    }
  }
  try_send();
  check_resynced();
}

// One batch in flight at a time; everything pending goes in it.
void SimNode::try_send() {
  if (!conn_ || !welcomed_ || in_flight_sequence_ != 0) return;
  v1::Frame frame;
  auto* batch = frame.mutable_status_delta();
  const auto now = SteadyClock::now();
  if (!node_acked_ && !node_in_flight_) {
    auto* e = batch->add_entries();
    e->set_kind(v1::OBJECT_KIND_NODE);
    e->set_name(name_);
    e->set_base_generation(node_gen_);
    e->set_full(true);
    *e->mutable_node() = full_node_status();
    node_in_flight_ = true;
  }
  for (auto& pod : pods_) {
    if (!pod.pending()) continue;
    if (batch->entries_size() >= 500) break;
    auto* e = batch->add_entries();
    e->set_kind(v1::OBJECT_KIND_POD);
    e->set_namespace_(pod.ns);
    e->set_name(pod.name);
    e->set_base_generation(pod.gen);
    if (!pod.acked) {
      e->set_full(true);
      e->set_uid(pod.uid);
      *e->mutable_pod() = full_pod_status(pod.container, pod.k, pod.phase, index_, pod.index);
    } else {
      auto* delta = e->mutable_pod();
      if (pod.phase != pod.phase_acked) {
        // As the real tracker would diff it: phase, readiness and the container's state.
        v1::PodStatus before =
            full_pod_status(pod.container, pod.k_acked, pod.phase_acked, index_, pod.index);
        v1::PodStatus after = full_pod_status(pod.container, pod.k, pod.phase, index_, pod.index);
        if (before.phase() != after.phase()) delta->set_phase(after.phase());
        if (before.ready() != after.ready()) delta->set_ready(after.ready());
        if (after.has_ready_since() && !before.has_ready_since())
          delta->set_ready_since(after.ready_since());
        auto* c = delta->add_containers();
        c->set_name(pod.container);
        *c->mutable_state() = after.containers(0).state();
        if (before.containers(0).ready() != after.containers(0).ready())
          c->set_ready(after.containers(0).ready());
        if (pod.k != pod.k_acked) c->set_restart_count(static_cast<int32_t>(pod.k));
      } else {
        auto* c = delta->add_containers();
        c->set_name(pod.container);
        c->set_restart_count(static_cast<int32_t>(pod.k));
      }
    }
    pod.in_flight = true;
    pod.k_in_flight = pod.k;
    pod.phase_in_flight = pod.phase;
    if (pod.k_sent != pod.k || pod.sent_at == SteadyClock::time_point{}) {
      pod.k_sent = pod.k;
      pod.sent_at = now;
    }
  }
  if (batch->entries_size() == 0) return;
  batch->set_sequence(++sequence_);
  in_flight_sequence_ = sequence_;
  sim_.entries_sent += static_cast<uint64_t>(batch->entries_size());
  sim_.batches_sent++;
  conn_->send(frame.SerializeAsString());
}

void SimNode::check_resynced() {
  if (resynced_ || !welcomed_ || snapshot_pending_ || in_flight_sequence_ != 0 || !node_acked_)
    return;
  for (const auto& pod : pods_)
    if (!pod.acked) return;
  resynced_ = true;
  sim_.resynced++;
  sim_.record_resync(!ever_resynced_, ms_since(lost_at_));
  ever_resynced_ = true;
}

void SimNode::on_close(uint64_t id, std::string_view reason) {
  std::lock_guard lock(mu_);
  if (id != conn_id_) return;
  if (conn_) {
    sim_.connected--;
    if (!sim_.stopping) {
      sim_.disconnects++;
      sim_.count_error(fmt::format("closed: {}", reason.substr(0, 60)));
    }
  }
  conn_.reset();
  end_logs();
  welcomed_ = false;
  in_snapshot_ = false;
  snapshot_.clear();
  if (resynced_) {
    resynced_ = false;
    sim_.resynced--;
  }
  lost_at_ = SteadyClock::now();
  backoff_.on_disconnected();
  if (!sim_.tunnels.empty()) tunnel_ = (tunnel_ + 1) % sim_.tunnels.size();
  schedule_reconnect();
}

constexpr auto kLogFollowInterval = std::chrono::milliseconds(250);
constexpr uint32_t kLogLines = 3;

void SimNode::send_frame(const v1::Frame& frame) {
  if (conn_) conn_->send(frame.SerializeAsString());
}

void SimNode::on_stream_open(const v1::StreamOpen& open) {
  auto refuse = [&](uint32_t code, std::string error) {
    v1::Frame f;
    f.mutable_stream_close()->set_id(open.id());
    f.mutable_stream_close()->set_code(code);
    f.mutable_stream_close()->set_error(std::move(error));
    send_frame(f);
  };
  if (!open.has_logs()) return refuse(501, "edgesim serves log streams only");
  const auto& r = open.logs();
  auto pod = std::find_if(pods_.begin(), pods_.end(), [&](const PodSim& p) {
    return p.ns == r.namespace_() && p.name == r.pod();
  });
  if (pod == pods_.end())
    return refuse(404, fmt::format("pod {}/{} is not on node {}", r.namespace_(), r.pod(), name_));
  if (!r.container().empty() && r.container() != pod->container)
    return refuse(404, fmt::format("container {} not found in pod {}", r.container(), r.pod()));
  LogSim& log = logs_[open.id()];
  log.timer.cancel();
  log = LogSim{};
  log.prefix = fmt::format("{}/{}: ", name_, r.pod());
  log.window = open.window();
  log.follow = r.follow();
  uint32_t first = 1;
  if (r.tail_lines() >= 0 && r.tail_lines() < kLogLines)
    first = kLogLines - static_cast<uint32_t>(r.tail_lines()) + 1;
  for (uint32_t k = first; k <= kLogLines; ++k)
    log.pending += fmt::format("{}line {}\n", log.prefix, k);
  if (r.limit_bytes() > 0 && log.pending.size() > uint64_t(r.limit_bytes())) {
    log.pending.resize(size_t(r.limit_bytes()));
    log.follow = false;
  }
  log.next_line = kLogLines + 1;
  flush_log(open.id());
  if (auto it = logs_.find(open.id()); it != logs_.end() && it->second.follow) {
    const uint32_t id = open.id();
    it->second.timer = sim_.loop.schedule(kLogFollowInterval, [this, id] { follow_log(id); });
  }
}

void SimNode::on_stream_window(const v1::StreamWindow& window) {
  auto it = logs_.find(window.id());
  if (it == logs_.end()) return;
  it->second.window += window.bytes();
  flush_log(window.id());
}

// Sends what the window allows; a finished stream without follow ends.
void SimNode::flush_log(uint32_t id) {
  auto it = logs_.find(id);
  if (it == logs_.end()) return;
  LogSim& log = it->second;
  if (!log.pending.empty() && log.window > 0) {
    const size_t n = std::min<uint64_t>(log.window, log.pending.size());
    v1::Frame f;
    f.mutable_stream_data()->set_id(id);
    f.mutable_stream_data()->set_data(log.pending.substr(0, n));
    send_frame(f);
    log.pending.erase(0, n);
    log.window -= n;
  }
  if (log.pending.empty() && !log.follow) {
    v1::Frame f;
    f.mutable_stream_close()->set_id(id);
    send_frame(f);
    log.timer.cancel();
    logs_.erase(it);
  }
}

void SimNode::follow_log(uint32_t id) {
  std::lock_guard lock(mu_);
  auto it = logs_.find(id);
  if (it == logs_.end() || stopped_ || !conn_) return;
  LogSim& log = it->second;
  log.pending += fmt::format("{}line {}\n", log.prefix, log.next_line++);
  flush_log(id);
  if (auto again = logs_.find(id); again != logs_.end())
    again->second.timer = sim_.loop.schedule(kLogFollowInterval, [this, id] { follow_log(id); });
}

void SimNode::end_logs() {
  for (auto& [id, log] : logs_) log.timer.cancel();
  logs_.clear();
}

void SimNode::churn(std::mt19937_64& rng) {
  std::lock_guard lock(mu_);
  if (pods_.empty()) return;
  auto& pod = pods_[rng() % pods_.size()];
  pod.k++;
  sim_.changes_generated++;
  try_send();
}

void SimNode::change_phase(size_t index, v1::PodPhase phase) {
  std::lock_guard lock(mu_);
  if (index >= pods_.size()) return;
  pods_[index].phase = phase;
  sim_.changes_generated++;
  try_send();
}

void SimNode::observed(const std::string& pod_name, int64_t restarts) {
  std::lock_guard lock(mu_);
  for (auto& pod : pods_) {
    if (pod.name != pod_name) continue;
    if (restarts <= pod.k_seen) return;
    pod.k_seen = restarts;
    if (static_cast<uint32_t>(restarts) == pod.k_sent && pod.sent_at != SteadyClock::time_point{} &&
        restarts > 0) {
      sim_.record_propagation(ms_since(pod.sent_at));
    }
    return;
  }
}

SimNode::Progress SimNode::progress() {
  std::lock_guard lock(mu_);
  Progress p;
  p.connected = conn_ != nullptr;
  p.resynced = resynced_;
  p.pods = pods_.size();
  for (const auto& pod : pods_) {
    if (pod.pending() || pod.in_flight) p.unacked++;
    if (pod.k_seen < static_cast<int64_t>(pod.k)) p.unseen++;
  }
  if (!node_acked_) p.unacked++;
  return p;
}

void SimNode::stop() {
  std::shared_ptr<common::WsConnection> conn;
  {
    std::lock_guard lock(mu_);
    stopped_ = true;
    timer_.cancel();
    end_logs();
    conn = conn_;
  }
  if (conn) conn->close("edgesim finished");
}

// --- setup ---------------------------------------------------------------------------------

// `key: value` from a kubeconfig written by gantryadm init (no YAML subtleties there).
std::string kubeconfig_field(const std::string& text, const std::string& key) {
  std::regex re("\\n\\s*" + key + ":\\s*(\\S+)");
  std::smatch m;
  return std::regex_search(text, m, re) ? m[1].str() : std::string();
}

common::Status Sim::init() {
  for (size_t at = 0; at <= options.cloudcore.size();) {
    size_t comma = std::min(options.cloudcore.find(',', at), options.cloudcore.size());
    std::string one = options.cloudcore.substr(at, comma - at);
    at = comma + 1;
    if (one.empty()) continue;
    auto tunnel = common::parse_host_port(one, 10000);
    if (!tunnel.ok()) return tunnel.status().with_context("--cloudcore");
    tunnels.emplace_back(tunnel->host, tunnel->port);
  }
  if (tunnels.empty())
    return common::make_error(common::Code::kInvalidArgument, "--cloudcore: no address");
  host = tunnels[0].first;
  port = tunnels[0].second;
  const std::string dir = options.data_dir;
  const std::string ca_cert_path = !options.ca_cert.empty() ? options.ca_cert : dir + "/pki/ca.crt";
  const std::string ca_key_path = !options.ca_key.empty() ? options.ca_key : dir + "/pki/ca.key";
  GANTRY_ASSIGN_OR_RETURN(ca_pem, common::read_file(ca_cert_path));
  GANTRY_ASSIGN_OR_RETURN(auto ca_key_pem, common::read_file(ca_key_path));
  GANTRY_ASSIGN_OR_RETURN(auto ca, common::Certificate::from_pem(ca_pem));
  GANTRY_ASSIGN_OR_RETURN(auto ca_key, common::PrivateKey::from_pem(ca_key_pem));

  token = options.token;
  std::string api = options.api;
  if (!dir.empty() && (token.empty() || api.empty())) {
    auto kubeconfig = common::read_file(dir + "/admin.kubeconfig");
    if (kubeconfig.ok()) {
      if (token.empty()) token = kubeconfig_field(*kubeconfig, "token");
      if (api.empty()) {
        std::string server = kubeconfig_field(*kubeconfig, "server");
        if (server.rfind("https://", 0) == 0) api = server.substr(8);
      }
    }
  }
  if (!api.empty() && api != "-") {
    auto a = common::parse_host_port(api, 10443);
    if (!a.ok()) return a.status().with_context("--api");
    api_host = a->host;
    api_port = a->port;
  }

  common::TlsOptions tls_options;
  tls_options.ca_pem = ca_pem;
  tls_options.verify_peer = true;
  GANTRY_ASSIGN_OR_RETURN(tls, common::TlsContext::create(common::TlsRole::kClient, tls_options));

  // One key for the whole fleet (key generation is the slow part and proves nothing here); a
  // certificate per node, CN system:node:NAME, as the join endpoint would issue it.
  GANTRY_ASSIGN_OR_RETURN(auto key, common::PrivateKey::generate());
  nodes.reserve(static_cast<size_t>(options.nodes));
  node_ready.assign(static_cast<size_t>(options.nodes), 0);
  for (int i = 0; i < options.nodes; ++i) {
    const std::string name = node_name(options.node_prefix, options.first_node + i);
    common::CertificateSpec spec;
    spec.common_name = "system:node:" + name;
    spec.lifetime = std::chrono::hours(24 * 7);
    spec.server_auth = false;
    GANTRY_ASSIGN_OR_RETURN(auto cert, common::issue_certificate(key.get(), spec, ca, ca_key));
    GANTRY_ASSIGN_OR_RETURN(auto identity, common::TlsIdentity::create(cert.get(), key.get()));
    std::string local;
    if (options.source_addresses > 0 && (host == "127.0.0.1" || host == "localhost"))
      local = fmt::format("127.0.0.{}", 2 + i % std::min(options.source_addresses, 250));
    nodes.push_back(std::make_unique<SimNode>(*this, static_cast<uint32_t>(options.first_node + i),
                                              name, std::move(identity), std::move(local)));
  }
  return common::ok_status();
}

// --- the cloud's watch ---------------------------------------------------------------------

struct HttpsClient {
  asio::io_context ioc;
  ssl::context ctx{ssl::context::tls_client};
  std::unique_ptr<beast::ssl_stream<asio::ip::tcp::socket>> stream;

  common::Status connect(const std::string& host, uint16_t port, const std::string& ca_pem) {
    boost::system::error_code ec;
    ctx.add_certificate_authority(asio::buffer(ca_pem), ec);
    if (ec) return common::make_error(common::Code::kInvalidArgument, "CA: {}", ec.message());
    ctx.set_verify_mode(ssl::verify_peer);
    stream = std::make_unique<beast::ssl_stream<asio::ip::tcp::socket>>(ioc, ctx);
    auto address = asio::ip::make_address(host == "localhost" ? "127.0.0.1" : host, ec);
    if (ec)
      return common::make_error(common::Code::kInvalidArgument, "API host {}: {}", host,
                                ec.message());
    stream->next_layer().connect(asio::ip::tcp::endpoint(address, port), ec);
    if (ec)
      return common::make_error(common::Code::kUnavailable, "API {}:{}: {}", host, port,
                                ec.message());
    stream->handshake(ssl::stream_base::client, ec);
    if (ec) return common::make_error(common::Code::kUnavailable, "API TLS: {}", ec.message());
    return common::ok_status();
  }
  int fd() { return stream->next_layer().native_handle(); }
};

void Sim::watch_loop(const std::string& path, bool pods, std::atomic<bool>& live) {
  std::string resource_version;
  while (!stopping) {
    HttpsClient client;
    if (auto s = client.connect(api_host, api_port, ca_pem); !s.ok()) {
      count_error("watch_connect");
      std::this_thread::sleep_for(500ms);  // cloudcore restarting: try again shortly
      continue;
    }
    {
      std::lock_guard lock(watch_fds_mu);
      watch_fds.push_back(client.fd());
    }
    if (stopping) break;
    boost::system::error_code ec;
    if (resource_version.empty() && pods) {
      // Start from now: the pods' initial state would be every pod of the fleet.
      http::request<http::empty_body> list{http::verb::get, path + "?limit=1", 11};
      list.set(http::field::host, api_host);
      list.set(http::field::authorization, "Bearer " + token);
      http::write(*client.stream, list, ec);
      beast::flat_buffer b;
      http::response<http::string_body> res;
      if (!ec) http::read(*client.stream, b, res, ec);
      if (ec || res.result() != http::status::ok) {
        count_error("watch_list");
        std::this_thread::sleep_for(500ms);
        continue;
      }
      auto body = json::parse(res.body(), nullptr, false);
      if (body.is_object()) resource_version = body["metadata"].value("resourceVersion", "");
    }
    std::string target = path + "?watch=1&allowWatchBookmarks=true&timeoutSeconds=3600";
    if (!resource_version.empty()) target += "&resourceVersion=" + resource_version;
    http::request<http::empty_body> req{http::verb::get, target, 11};
    req.set(http::field::host, api_host);
    req.set(http::field::authorization, "Bearer " + token);
    http::write(*client.stream, req, ec);
    beast::flat_buffer buffer;
    http::response_parser<http::empty_body> parser;
    parser.body_limit(std::numeric_limits<uint64_t>::max());
    http::read_header(*client.stream, buffer, parser, ec);
    if (!ec && parser.get().result() != http::status::ok) {
      count_error(fmt::format("watch_http_{}", parser.get().result_int()));
      resource_version.clear();  // 410 Gone: start from now
      ec = http::error::end_of_stream;
    }
    std::string pending;
    auto on_body = [&](uint64_t, beast::string_view body, boost::system::error_code&) -> size_t {
      pending.append(body.data(), body.size());
      size_t start = 0;
      for (size_t nl; (nl = pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        auto event = json::parse(pending.begin() + static_cast<long>(start),
                                 pending.begin() + static_cast<long>(nl), nullptr, false);
        if (!event.is_object()) continue;
        const auto& object = event["object"];
        const auto& meta = object["metadata"];
        if (meta.contains("resourceVersion") && meta["resourceVersion"].is_string())
          resource_version = meta["resourceVersion"].get<std::string>();
        const std::string type = event.value("type", "");
        if (type == "BOOKMARK") {
          live = true;
          continue;
        }
        if (type != "ADDED" && type != "MODIFIED") continue;
        const std::string name = meta.value("name", "");
        const auto& status = object["status"];
        if (pods) {
          pod_events++;
          const auto dash = name.rfind("-p");
          if (dash == std::string::npos) continue;
          SimNode* node = node_by_name(std::string_view(name).substr(0, dash));
          if (node == nullptr || !status.contains("containerStatuses")) continue;
          const auto& cs = status["containerStatuses"];
          if (!cs.is_array() || cs.empty()) continue;
          node->observed(name, cs[0].value("restartCount", 0));
        } else {
          node_events++;
          SimNode* node = node_by_name(name);
          if (node == nullptr || !status.contains("conditions")) continue;
          char ready = 0;
          for (const auto& c : status["conditions"]) {
            if (c.value("type", "") != "Ready") continue;
            const std::string v = c.value("status", "");
            ready = v == "True" ? 'T' : v == "False" ? 'F' : 'U';
          }
          if (ready == 'F') not_ready_seen++;
          std::lock_guard lock(ready_mu);
          node_ready[node->index() - static_cast<uint32_t>(options.first_node)] = ready;
        }
      }
      pending.erase(0, start);
      return body.size();
    };
    parser.on_chunk_body(on_body);
    live = true;
    while (!ec && !parser.is_done()) http::read(*client.stream, buffer, parser, ec);
    live = false;
    {
      std::lock_guard lock(watch_fds_mu);
      std::erase(watch_fds, client.fd());
    }
    if (!stopping && ec) count_error("watch_broken");
  }
}

// kubectl-style writes: a JSON merge patch of one annotation on a random pod, stamped with the
// time of the call; the edge that receives the pod computes the latency.
void Sim::write_loop(SteadyClock::time_point until) {
  HttpsClient client;
  if (auto s = client.connect(api_host, api_port, ca_pem); !s.ok()) {
    count_error("writer_connect");
    return;
  }
  std::mt19937_64 rng(777);
  const auto interval = std::chrono::duration<double>(1.0 / options.downstream_writes);
  auto next = SteadyClock::now();
  while (SteadyClock::now() < until && !stopping) {
    SimNode& node = *nodes[rng() % nodes.size()];
    const size_t pods = node.progress().pods;
    if (pods > 0) {
      const std::string pod = pod_name(node.name(), static_cast<int>(rng() % pods));
      http::request<http::string_body> req{http::verb::patch,
                                           "/api/v1/namespaces/default/pods/" + pod, 11};
      req.set(http::field::host, fmt::format("{}:{}", api_host, api_port));
      req.set(http::field::authorization, "Bearer " + token);
      req.set(http::field::content_type, "application/merge-patch+json");
      req.body() = fmt::format(R"({{"metadata":{{"annotations":{{"{}":"{}"}}}}}})", kSentAnnotation,
                               unix_us());
      req.prepare_payload();
      boost::system::error_code ec;
      http::write(*client.stream, req, ec);
      beast::flat_buffer b;
      http::response<http::string_body> res;
      if (!ec) http::read(*client.stream, b, res, ec);
      if (ec) {
        count_error("writer_broken");
        writes_failed++;
        return;
      }
      (res.result() == http::status::ok ? writes_ok : writes_failed)++;
    }
    next += std::chrono::duration_cast<SteadyClock::duration>(interval);
    std::this_thread::sleep_until(next);  // the write rate
  }
}

void Sim::start_watches(std::vector<std::thread>& threads) {
  if (api_port == 0 || token.empty()) return;
  threads.emplace_back([this] { watch_loop("/api/v1/pods", true, pods_watch_live); });
  threads.emplace_back([this] { watch_loop("/api/v1/nodes", false, nodes_watch_live); });
}

void Sim::stop_watches() {
  std::lock_guard lock(watch_fds_mu);
  for (int fd : watch_fds) ::shutdown(fd, SHUT_RDWR);
}

// Polls `done` every 100 ms until it holds or `timeout` passes; whether it held.
bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!done()) {
    if (SteadyClock::now() >= deadline) return false;
    std::this_thread::sleep_for(100ms);
  }
  return true;
}

json Sim::run() {
  const bool watching = api_port != 0 && !token.empty();
  loop.run();
  std::vector<std::thread> watchers;
  start_watches(watchers);
  if (watching) wait_for([&] { return pods_watch_live && nodes_watch_live; }, 30s);

  const auto start = SteadyClock::now();
  const int64_t start_unix_ms = unix_ms();
  for (auto& node : nodes) want_connect(node.get());
  const int64_t total = static_cast<int64_t>(nodes.size());
  const bool all_resynced =
      wait_for([&] { return resynced.load() >= total; }, options.connect_timeout);
  const double connect_seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  spdlog::info("edgesim: {} of {} nodes resynced after {:.1f} s", resynced.load(), total,
               connect_seconds);
  const long rss_connected = rss_kib();

  // The measurement window: churn at the configured rate.
  size_t pods_total = 0;
  for (auto& node : nodes) pods_total += node->progress().pods;
  size_t ss_connections = 0;
  const int64_t bytes_start = socket_bytes(port, &ss_connections);
  const auto window_start = SteadyClock::now();
  const int64_t window_start_unix_ms = unix_ms();
  std::thread writer;
  if (options.downstream_writes > 0 && api_port != 0)
    writer = std::thread([this, until = window_start + options.duration] { write_loop(until); });
  std::mt19937_64 rng(12345);
  double budget = 0;
  const double per_second =
      options.churn_interval.count() > 0
          ? double(pods_total) * 1000.0 / double(options.churn_interval.count())
          : 0.0;
  auto last = SteadyClock::now();
  while (SteadyClock::now() - window_start < options.duration) {
    std::this_thread::sleep_for(100ms);  // the churn clock
    const auto now = SteadyClock::now();
    budget += per_second * std::chrono::duration<double>(now - last).count();
    last = now;
    for (; budget >= 1; budget -= 1) nodes[rng() % nodes.size()]->churn(rng);
  }
  const double window_seconds =
      std::chrono::duration<double>(SteadyClock::now() - window_start).count();
  const int64_t window_end_unix_ms = unix_ms();
  if (writer.joinable()) writer.join();
  const int64_t bytes_end = socket_bytes(port, nullptr);
  const long rss_end = rss_kib();

  // Settle: every change acknowledged (and, with a watch, seen in the cloud).
  size_t unacked = 0, unseen = 0, connected_now = 0, resynced_now = 0;
  auto tally = [&] {
    unacked = unseen = connected_now = resynced_now = 0;
    for (auto& node : nodes) {
      auto p = node->progress();
      unacked += p.unacked;
      unseen += p.unseen;
      connected_now += p.connected;
      resynced_now += p.resynced;
    }
    return unacked == 0 && (!watching || unseen == 0);
  };
  const bool settled = wait_for(tally, options.settle);
  tally();

  size_t ready = 0, unknown = 0, not_seen = 0;
  {
    // Before the nodes leave: the cloud marks nodes that disconnect.
    std::lock_guard lock(ready_mu);
    for (char c : node_ready) {
      ready += c == 'T';
      unknown += c == 'U';
      not_seen += c == 0;
    }
  }
  stopping = true;
  for (auto& node : nodes) node->stop();
  wait_for([&] { return connected.load() <= 0; }, 10s);
  stop_watches();
  for (auto& t : watchers) t.join();
  loop.stop();

  json report;
  report["nodes"] = total;
  report["pods"] = pods_total;
  report["image_pull_requests"] = pull_requests.load();
  report["image_pulls_done"] = pulls_done.load();
  report["connected"] = connected_now;
  report["resynced"] = resynced_now;
  report["all_resynced_at_start"] = all_resynced;
  report["connect_seconds"] = connect_seconds;
  report["start_unix_ms"] = start_unix_ms;
  report["resync_ms"] = {{"initial", percentiles(resync_initial_ms)},
                         {"reconnect", percentiles(resync_reconnect_ms)}};
  report["last_resync_unix_ms"] = last_resync_unix_ms;
  report["propagation_ms"] = watching ? percentiles(propagation_ms) : json();
  report["status"] = {{"changes_generated", changes_generated.load()},
                      {"entries_sent", entries_sent.load()},
                      {"batches_sent", batches_sent.load()},
                      {"resync_requests", resync_requests.load()},
                      {"pods_unacked_at_end", unacked},
                      {"pods_not_seen_in_watch_at_end", watching ? json(unseen) : json()},
                      {"settled", settled}};
  if (watching) {
    report["cloud_watch"] = {{"nodes_ready", ready},
                             {"nodes_unknown", unknown},
                             {"nodes_not_seen", not_seen},
                             {"not_ready_events", not_ready_seen.load()},
                             {"pod_events", pod_events.load()},
                             {"node_events", node_events.load()}};
  }
  report["window_seconds"] = window_seconds;
  report["window_start_unix_ms"] = window_start_unix_ms;
  report["window_end_unix_ms"] = window_end_unix_ms;
  if (options.downstream_writes > 0) {
    report["downstream_ms"] = percentiles(downstream_ms);
    report["downstream_writes"] = {{"ok", writes_ok.load()}, {"failed", writes_failed.load()}};
  }
  report["wire"] = {
      {"connections_at_window_start", ss_connections},
      {"bytes", bytes_start >= 0 && bytes_end >= 0 ? json(bytes_end - bytes_start) : json()},
      {"bytes_per_node_per_second",
       bytes_start >= 0 && bytes_end >= 0 && total > 0
           ? json(double(bytes_end - bytes_start) / double(total) / window_seconds)
           : json()}};
  report["refused_503"] = refused_503.load();
  report["disconnects"] = disconnects.load();
  report["tunnels_opened"] = connections.load();
  report["tls_resumed"] = tls_resumed.load();
  report["errors"] = errors;
  report["edgesim_rss_kib"] = {{"connected", rss_connected}, {"end", rss_end}};
  return report;
}

json Sim::run_status_bytes() {
  loop.run();
  json report;
  SimNode& node = *nodes.front();
  want_connect(&node);
  if (!wait_for([&] { return resynced.load() == 1 && node.progress().pods > 0; },
                options.connect_timeout)) {
    stopping = true;
    node.stop();
    loop.stop();
    return json{{"error", "the node did not connect and resync"}, {"errors", errors}};
  }
  std::this_thread::sleep_for(500ms);  // let the last ack's TCP ACK arrive before reading counters
  auto conn = node.connection();
  const uint64_t sent0 = conn->bytes_sent(), received0 = conn->bytes_received();
  node.change_phase(0, v1::POD_PHASE_RUNNING);
  wait_for([&] { return node.progress().unacked == 0; }, 10s);
  std::this_thread::sleep_for(500ms);
  const uint64_t up = conn->bytes_sent() - sent0, down = conn->bytes_received() - received0;
  report["gantry"] = {{"upstream_wire_bytes", up},
                      {"ack_wire_bytes", down},
                      {"total_wire_bytes", up + down},
                      {"what",
                       "one StatusDelta (pod phase Pending -> Running, ready, container state) "
                       "+ its StatusAck, as TLS records at the TCP socket"}};

  // The same change as the kubelet sends it: a strategic merge patch of the pod's status.
  const std::string pod = pod_name(node.name(), 0);
  const std::string patch = fmt::format(
      R"({{"metadata":{{"uid":"{}-uid"}},"status":{{"$setElementOrder/conditions":[{{"type":"Initialized"}},)"
      R"({{"type":"Ready"}},{{"type":"ContainersReady"}},{{"type":"PodScheduled"}}],"conditions":[{{)"
      R"("lastTransitionTime":"2023-11-14T22:13:25Z","status":"True","type":"Ready"}},{{"lastTransitionTime":)"
      R"("2023-11-14T22:13:25Z","status":"True","type":"ContainersReady"}}],"containerStatuses":[{{)"
      R"("containerID":"containerd://5b0f0c1a7b6f7a3e4a0d4b1e2f7c9a8d","image":"registry.local/sim:1",)"
      R"("imageID":"sha256:5b0f0c1a7b6f7a3e4a0d4b1e2f7c9a8d","lastState":{{}},"name":"app","ready":true,)"
      R"("restartCount":0,"started":true,"state":{{"running":{{"startedAt":"2023-11-14T22:13:24Z"}}}}}}],)"
      R"("phase":"Running","podIP":"10.0.0.2","podIPs":[{{"ip":"10.0.0.2"}}]}}}})",
      pod);
  HttpsClient client;
  if (auto s = client.connect(api_host, api_port, ca_pem); s.ok()) {
    boost::system::error_code ec;
    auto request = [&](http::verb verb, const std::string& target, const std::string& body) {
      http::request<http::string_body> req{verb, target, 11};
      req.set(http::field::host, fmt::format("{}:{}", api_host, api_port));
      req.set(http::field::authorization, "Bearer " + token);
      req.set(http::field::user_agent, "kubelet/v1.27.4 (linux/arm64) kubernetes/fa3d799");
      req.set(http::field::accept, "application/json");
      if (!body.empty()) {
        req.set(http::field::content_type, "application/strategic-merge-patch+json");
        req.body() = body;
        req.prepare_payload();
      }
      http::write(*client.stream, req, ec);
      beast::flat_buffer b;
      http::response<http::string_body> res;
      if (!ec) http::read(*client.stream, b, res, ec);
      return res.result_int();
    };
    request(http::verb::get, "/api/v1/namespaces/default/pods/" + pod, "");  // warm: handshake done
    std::this_thread::sleep_for(300ms);
    uint64_t a0 = 0, r0 = 0, a1 = 0, r1 = 0;
    common::detail::read_tcp_byte_counts(client.fd(), &a0, &r0);
    const unsigned code =
        request(http::verb::patch, "/api/v1/namespaces/default/pods/" + pod + "/status", patch);
    std::this_thread::sleep_for(300ms);
    common::detail::read_tcp_byte_counts(client.fd(), &a1, &r1);
    report["kubernetes_json"] = {{"patch_body_bytes", patch.size()},
                                 {"request_wire_bytes", a1 - a0},
                                 {"response_wire_bytes", r1 - r0},
                                 {"response_status", code},
                                 {"what",
                                  "PATCH pods/NAME/status (strategic merge, as the kubelet sends "
                                  "it) over a warm keep-alive TLS connection, at the TCP socket"}};
    if (up > 0) {
      report["ratio_request_vs_upstream"] = double(a1 - a0) / double(up);
    }
  } else {
    report["kubernetes_json"] = {{"error", s.message()}};
  }
  stopping = true;
  node.stop();
  wait_for([&] { return connected.load() <= 0; }, 5s);
  loop.stop();
  report["errors"] = errors;
  return report;
}

}  // namespace

common::Result<json> run_sim(const SimOptions& options) {
  Sim sim(options);
  GANTRY_RETURN_IF_ERROR(sim.init());
  if (options.status_bytes) return sim.run_status_bytes();
  return sim.run();
}

}  // namespace gantry::sim
