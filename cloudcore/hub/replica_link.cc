#include "cloudcore/hub/replica_link.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <charconv>
#include <mutex>

#include "common/base/address.h"
#include "common/net/tls.h"
#include "common/net/websocket.h"

namespace gantry::cloud {

namespace {

using common::Code;

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

uint32_t http_code(Code code) {
  switch (code) {
    case Code::kNotFound:
      return 404;
    case Code::kInvalidArgument:
      return 400;
    case Code::kPermissionDenied:
      return 403;
    case Code::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

std::string end_message(uint32_t code, std::string_view error) {
  std::string m(1, 'E');
  for (int shift = 24; shift >= 0; shift -= 8)
    m.push_back(static_cast<char>((code >> shift) & 0xff));
  m.append(error);
  return m;
}

// The owner's side of one forwarded stream: its hub's log stream, sent down the link.
class ServeHandler final : public common::WsHandler {
 public:
  ServeHandler(Hub& hub, ReplicaLinkStats& stats, std::string replica, std::string peer)
      : hub_(hub), stats_(stats), replica_(std::move(replica)), peer_(std::move(peer)) {}

  void on_open(std::shared_ptr<common::WsConnection> connection) override {
    conn_ = std::move(connection);
  }

  void on_message(std::string_view data) override {
    if (data.empty()) return fail("an empty message");
    if (data[0] == 'C') {
      uint64_t n = 0;
      auto r = std::from_chars(data.data() + 1, data.data() + data.size(), n);
      if (r.ec != std::errc() || r.ptr != data.data() + data.size()) return fail("a bad count");
      if (stream_) stream_->consumed(n);
      return;
    }
    if (data[0] != 'L' || opened_) return fail("an unexpected message");
    opened_ = true;
    if (data.size() < 3) return fail("a short open");
    const size_t len = (size_t(uint8_t(data[1])) << 8) | uint8_t(data[2]);
    if (data.size() < 3 + len) return fail("a short open");
    std::string node(data.substr(3, len));
    v1::LogRequest request;
    if (!request.ParseFromArray(data.data() + 3 + len, int(data.size() - 3 - len)))
      return fail("a log request that does not parse");
    std::weak_ptr<common::WsConnection> weak = conn_;
    LogStreamCallbacks callbacks;
    callbacks.on_ready = [weak] {
      if (auto c = weak.lock()) c->send("R");
    };
    callbacks.on_data = [weak](std::string out) {
      if (auto c = weak.lock()) c->send("D" + out);
    };
    callbacks.on_close = [weak](std::string error, uint32_t code) {
      if (auto c = weak.lock()) {
        c->send(end_message(error.empty() ? 0 : code, error));
        c->close("end of stream");
      }
    };
    const std::string pod = request.namespace_() + "/" + request.pod();
    auto stream = hub_.open_log_stream(node, std::move(request), std::move(callbacks));
    if (!stream.ok()) {
      const auto& st = stream.status();
      conn_->send(end_message(http_code(st.code()),
                              fmt::format("cloudcore replica {}: {}", replica_, st.message())));
      conn_->close("end of stream");
      return;
    }
    ++stats_.served;
    stream_ = std::move(stream).value();
    spdlog::debug("replica link: serving the logs of {} on node {} for {}", pod, node, peer_);
  }

  void on_close(std::string_view) override {
    stream_.reset();  // StreamClose to the node if it is still open
    conn_.reset();
  }

 private:
  void fail(std::string_view what) {
    spdlog::warn("replica link: {} sent {}; closing", peer_, what);
    stream_.reset();
    if (conn_) conn_->close("protocol error");
  }

  Hub& hub_;
  ReplicaLinkStats& stats_;
  std::string replica_, peer_;
  std::shared_ptr<common::WsConnection> conn_;
  std::unique_ptr<LogStream> stream_;
  bool opened_ = false;
};

// The forwarding side of one stream: what the link reports, passed to the API's callbacks.
struct Forward {
  std::string owner, address, node;
  // Held while a callback runs: the Stream's destructor waits for it (and may run inside it).
  std::recursive_mutex mu;
  bool finished = false;
  api::LogStreamer::Callbacks callbacks;
  // The connection, for consumed() and the close.
  std::mutex conn_mu;
  std::shared_ptr<common::WsConnection> conn;
  bool dropped = false;  // the Stream is gone

  void finish(std::string error, uint32_t code) {
    std::lock_guard lock(mu);
    if (finished) return;
    finished = true;
    auto on_close = std::move(callbacks.on_close);
    callbacks = {};
    if (on_close) on_close(std::move(error), code);
  }
  std::string unreachable(std::string_view why) const {
    return fmt::format(
        "node \"{}\" is connected to cloudcore replica {}, which cannot be reached at {}: {}", node,
        owner, address, why);
  }
};

class ForwardHandler final : public common::WsHandler {
 public:
  ForwardHandler(std::shared_ptr<Forward> f, std::string open, ReplicaLinkStats& stats)
      : f_(std::move(f)), open_(std::move(open)), stats_(stats) {}

  void on_open(std::shared_ptr<common::WsConnection> connection) override {
    const std::string expected = std::string(kReplicaCommonNamePrefix) + f_->owner;
    if (connection->peer().common_name != expected) {
      ++stats_.forward_failures;
      f_->finish(f_->unreachable(fmt::format("the link answered with certificate CN \"{}\", not {}",
                                             connection->peer().common_name, expected)),
                 503);
      connection->close("not the replica asked for");
      return;
    }
    {
      std::lock_guard lock(f_->conn_mu);
      if (f_->dropped) {
        connection->close("stream closed");
        return;
      }
      f_->conn = connection;
    }
    connection->send(std::move(open_));
  }

  void on_message(std::string_view data) override {
    if (data.empty()) return;
    if (data[0] == 'E' && data.size() >= 5) {
      uint32_t code = 0;
      for (int i = 1; i < 5; ++i) code = (code << 8) | uint8_t(data[i]);
      ended_ = true;
      f_->finish(std::string(data.substr(5)), code);
      return;
    }
    std::lock_guard lock(f_->mu);
    if (f_->finished) return;
    if (data[0] == 'R' && f_->callbacks.on_ready) f_->callbacks.on_ready();
    if (data[0] == 'D' && f_->callbacks.on_data) f_->callbacks.on_data(std::string(data.substr(1)));
  }

  void on_close(std::string_view reason) override {
    {
      std::lock_guard lock(f_->conn_mu);
      f_->conn.reset();
    }
    if (!ended_) f_->finish(f_->unreachable(fmt::format("the link closed: {}", reason)), 503);
  }

 private:
  std::shared_ptr<Forward> f_;
  std::string open_;
  ReplicaLinkStats& stats_;
  bool ended_ = false;
};

class ForwardStream final : public api::LogStreamer::Stream {
 public:
  explicit ForwardStream(std::shared_ptr<Forward> f) : f_(std::move(f)) {}
  ~ForwardStream() override {
    {
      std::lock_guard lock(f_->mu);  // waits for a callback running on another thread
      f_->finished = true;
      f_->callbacks = {};
    }
    std::shared_ptr<common::WsConnection> conn;
    {
      std::lock_guard lock(f_->conn_mu);
      f_->dropped = true;
      conn = std::move(f_->conn);
    }
    if (conn) conn->close("stream closed");
  }
  void consumed(size_t bytes) override {
    if (bytes == 0) return;
    std::lock_guard lock(f_->conn_mu);
    if (f_->conn) f_->conn->send("C" + std::to_string(bytes));
  }

 private:
  std::shared_ptr<Forward> f_;
};

}  // namespace

common::Result<ReplicaCertificate> issue_replica_certificate(const std::string& replica,
                                                             const std::string& host,
                                                             const common::Certificate& ca,
                                                             const common::PrivateKey& ca_key,
                                                             std::chrono::seconds lifetime) {
  GANTRY_ASSIGN_OR_RETURN(common::PrivateKey key, common::PrivateKey::generate());
  common::CertificateSpec spec;
  spec.common_name = std::string(kReplicaCommonNamePrefix) + replica;
  if (is_ip_literal(host)) {
    spec.ip_addresses = {host};
  } else {
    spec.dns_names = {host};
  }
  spec.lifetime = lifetime;
  spec.server_auth = true;
  spec.client_auth = true;
  GANTRY_ASSIGN_OR_RETURN(common::Certificate cert,
                          common::issue_certificate(key.get(), spec, ca, ca_key));
  return ReplicaCertificate{cert.to_pem(), key.to_pem()};
}

struct ReplicaLink::Impl {
  common::EventLoop& loop;
  ReplicaLinkOptions options;
  std::shared_ptr<common::TlsContext> client_tls;
  std::unique_ptr<common::WsServer> server;
  ReplicaLinkStats stats;

  Impl(common::EventLoop& l, ReplicaLinkOptions o) : loop(l), options(std::move(o)) {}
};

common::Result<std::unique_ptr<ReplicaLink>> ReplicaLink::start(common::EventLoop& loop, Hub& hub,
                                                                ReplicaLinkOptions options) {
  auto impl = std::make_shared<Impl>(loop, std::move(options));
  common::TlsOptions tls;
  tls.cert_pem = impl->options.certificate.cert_pem;
  tls.key_pem = impl->options.certificate.key_pem;
  tls.ca_pem = impl->options.ca_pem;
  tls.verify_peer = true;  // server: a client certificate from the cluster CA is required
  GANTRY_ASSIGN_OR_RETURN(auto server_tls,
                          common::TlsContext::create(common::TlsRole::kServer, tls));
  // The client verifies the server's chain and its name (the host of the record's address).
  GANTRY_ASSIGN_OR_RETURN(impl->client_tls,
                          common::TlsContext::create(common::TlsRole::kClient, tls));
  server_tls->set_peer_rejected_handler([](const common::TlsPeerRejection& r) {
    spdlog::warn("replica link: refused a certificate (CN \"{}\") from {}: {}", r.common_name,
                 r.remote_address, r.reason);
  });

  common::WsServerOptions ws;
  ws.address = impl->options.address;
  ws.port = impl->options.port;
  ws.path = std::string(kReplicaLinkPath);
  ws.max_message_bytes = 64 << 20;  // a tunnel frame of output and its type byte
  ws.max_queued_bytes = 128 << 20;
  Impl* raw = impl.get();
  ws.admit = [raw](const common::PeerInfo& peer) {
    if (peer.common_name.rfind(kReplicaCommonNamePrefix, 0) == 0) return common::Admission{};
    ++raw->stats.refused;
    spdlog::warn("replica link: refused {} (certificate CN \"{}\"): not a cloudcore replica",
                 peer.remote_address, peer.common_name);
    return common::Admission{
        403, 0,
        fmt::format("the replica link admits cloudcore replicas only (certificate CN {}NAME); "
                    "this certificate's CN is \"{}\"",
                    kReplicaCommonNamePrefix, peer.common_name)};
  };
  ws.handler_factory = [raw, &hub](const common::PeerInfo& peer) {
    return std::make_unique<ServeHandler>(hub, raw->stats, raw->options.replica,
                                          peer.common_name + " at " + peer.remote_address);
  };
  GANTRY_ASSIGN_OR_RETURN(impl->server,
                          common::WsServer::start(loop, std::move(server_tls), std::move(ws)));
  return std::unique_ptr<ReplicaLink>(new ReplicaLink(std::move(impl)));
}

ReplicaLink::~ReplicaLink() {
  stop();
}

uint16_t ReplicaLink::port() const {
  return impl_->server ? impl_->server->port() : 0;
}

const ReplicaLinkStats& ReplicaLink::stats() const {
  return impl_->stats;
}

void ReplicaLink::stop() {
  if (impl_->server) impl_->server->stop();
}

std::unique_ptr<api::LogStreamer::Stream> ReplicaLink::open_log(
    const std::string& owner, const std::string& address, const std::string& node,
    const v1::LogRequest& request, api::LogStreamer::Callbacks callbacks) {
  auto f = std::make_shared<Forward>();
  f->owner = owner;
  f->address = address;
  f->node = node;
  f->callbacks = std::move(callbacks);
  auto stream = std::make_unique<ForwardStream>(f);
  auto where = common::parse_host_port(address, 10004);
  if (!where.ok() || node.size() > 0xffff) {
    ++impl_->stats.forward_failures;
    f->finish(f->unreachable(where.ok() ? "the node name is too long" : where.status().message()),
              503);
    return stream;
  }
  ++impl_->stats.forwarded;
  std::string open = "L";
  open.push_back(static_cast<char>((node.size() >> 8) & 0xff));
  open.push_back(static_cast<char>(node.size() & 0xff));
  open += node;
  open += request.SerializeAsString();
  common::WsClientOptions ws;
  ws.host = where->host;
  ws.port = where->port;
  ws.path = std::string(kReplicaLinkPath);
  ws.max_message_bytes = 64 << 20;
  ws.handshake_timeout = impl_->options.connect_timeout;
  auto handler = std::make_unique<ForwardHandler>(f, std::move(open), impl_->stats);
  ws_connect(impl_->loop, impl_->client_tls, std::move(ws), std::move(handler),
             [f, impl = impl_](common::ConnectResult r) {
               if (r.ok()) return;
               ++impl->stats.forward_failures;
               f->finish(f->unreachable(r.error->message), 503);
             });
  return stream;
}

}  // namespace gantry::cloud
