// The replica link: streams between cloudcore replicas on one etcd (docs/operations.md, "Several
// replicas"). A replica asked for the logs of a pod whose node's tunnel another replica holds
// forwards the stream to that replica instead of failing (KubeEdge #5784): it reads the owner and
// the owner's link address from the node's ownership record (controllers/node_ownership.h) and
// opens the stream there; the owner serves it from its hub like one of its own API requests.
//
// The link is a WebSocket on mutual TLS, one connection per stream, on its own port
// (ha.link_listen, 10004 by default). Both sides present a replica certificate that each replica
// issues itself at start from the cluster CA (the shared PKI): CN system:cloudcore:replica:NAME,
// the advertised link host as its subject alternative name. A server admits only such
// certificates (an edge node's certificate, CN system:node:NAME, is refused at the upgrade; a
// certificate from another CA fails the handshake), and a client checks that the server is the
// replica the record names.
//
// Flow control is the tunnel's, end to end: the owner's hub grants the edge what the forwarding
// replica reports consumed, which is what its own API client has taken; nothing piles up between.
//
// Messages (binary), the first byte is the type:
//   client -> server  'L' u16 node length, node, v1::LogRequest      once, first
//                     'C' decimal byte count                          consumed
//   server -> client  'R'                                             the node accepted
//                     'D' data                                        log output
//                     'E' u32 code (big-endian), error text           last; "" = normal end
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "cloudcore/api/log_streamer.h"
#include "cloudcore/hub/hub.h"
#include "common/base/status.h"
#include "common/net/event_loop.h"
#include "common/pki/pki.h"

namespace gantry::cloud {

inline constexpr std::string_view kReplicaCommonNamePrefix = "system:cloudcore:replica:";
inline constexpr std::string_view kReplicaLinkPath = "/v1/replica-link";

struct ReplicaCertificate {
  std::string cert_pem;
  std::string key_pem;
};

// A replica's link certificate, issued in memory by the cluster CA: CN
// system:cloudcore:replica:REPLICA, `host` (the advertised link host, a DNS name or an IP
// address) as its subject alternative name, for server and client authentication.
common::Result<ReplicaCertificate> issue_replica_certificate(const std::string& replica,
                                                             const std::string& host,
                                                             const common::Certificate& ca,
                                                             const common::PrivateKey& ca_key,
                                                             std::chrono::seconds lifetime);

struct ReplicaLinkOptions {
  std::string replica;  // this replica's name
  std::string address = "0.0.0.0";
  uint16_t port = 0;  // 0: the kernel picks; see port()
  ReplicaCertificate certificate;
  std::string ca_pem;  // the cluster CA
  std::chrono::milliseconds connect_timeout{5000};
};

struct ReplicaLinkStats {
  std::atomic<uint64_t> served{0};            // streams served from this hub for other replicas
  std::atomic<uint64_t> forwarded{0};         // streams this replica forwarded to the node's owner
  std::atomic<uint64_t> forward_failures{0};  // forwards that could not reach the owner
  std::atomic<uint64_t> refused{0};           // link connections refused: not a replica certificate
};

class ReplicaLink {
 public:
  // Listens and serves the log streams other replicas forward for the nodes `hub` holds.
  static common::Result<std::unique_ptr<ReplicaLink>> start(common::EventLoop& loop, Hub& hub,
                                                            ReplicaLinkOptions options);
  ~ReplicaLink();  // stop()
  ReplicaLink(const ReplicaLink&) = delete;
  ReplicaLink& operator=(const ReplicaLink&) = delete;

  uint16_t port() const;
  const ReplicaLinkStats& stats() const;

  // A log stream on `node` through replica `owner`, whose link is at `address` ("host:port").
  // Reports through `callbacks` as api::LogStreamer does: the owner's answer (404 for no such
  // container, 503 when the node left it too, ...) or 503 naming the owner when it cannot be
  // reached. Thread-safe.
  std::unique_ptr<api::LogStreamer::Stream> open_log(const std::string& owner,
                                                     const std::string& address,
                                                     const std::string& node,
                                                     const v1::LogRequest& request,
                                                     api::LogStreamer::Callbacks callbacks);
  // Stops listening and ends the streams it serves. Idempotent.
  void stop();

  struct Impl;

 private:
  explicit ReplicaLink(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace gantry::cloud
