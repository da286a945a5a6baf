// The edge's side of the tunnel protocol as a plain state machine: given a frame from the cloud it
// writes to the MetaStore / StatusTracker and returns the frames to send; it builds Hello and the
// next StatusDelta batch. No I/O: EdgeHub moves the bytes, tests drive this frame by frame.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/base/status.h"
#include "common/base/version.h"
#include "edgecore/hub/stream_handler.h"
#include "edgecore/meta/meta_store.h"
#include "edgecore/status/event_outbox.h"
#include "edgecore/status/status_tracker.h"
#include "gantry/v1/tunnel.pb.h"

namespace gantry::edge {

struct EdgeSyncOptions {
  std::string edgecore_version = common::kVersion;
  // A snapshot is held in memory until its last frame: past this the connection is dropped
  // rather than exhausting a small device.
  size_t max_snapshot_bytes = 64 << 20;
  // StatusDelta batches sent and not yet acknowledged, at most.
  uint32_t max_status_batches_in_flight = 4;
  // Gets the stream frames (logs); not owned, must outlive the EdgeSync. Unset: every StreamOpen
  // is refused with 501.
  StreamHandler* streams = nullptr;
  // The pods' events: sent inside the StatusDelta batches and settled by their acks. Not owned,
  // must outlive the EdgeSync. Unset: no events are sent.
  EventOutbox* events = nullptr;
  // Gets the cloud's CertificateResponse (certificate rotation). Unset: such frames are ignored.
  std::function<void(const v1::CertificateResponse&)> on_certificate;
  // Gets the cloud's ImagePullRequests (edgecore/pods/image_puller). Unset: ignored.
  std::function<void(const v1::ImagePullRequest&)> on_image_pull;
};

struct EdgeSyncCounters {
  uint64_t welcomes = 0;
  uint64_t resumes_incremental = 0;
  uint64_t resumes_snapshot = 0;
  uint64_t snapshots_applied = 0;
  uint64_t objects_applied = 0;  // upserts and deletes written to the cache
  uint64_t objects_dropped = 0;  // older than the cached copy
  uint64_t status_batches_sent = 0;
  uint64_t status_entries_sent = 0;
  uint64_t events_sent = 0;
  uint64_t status_acks = 0;
  uint64_t resyncs = 0;
  uint64_t streams_refused = 0;  // StreamOpen refused because no stream handler is set
  uint64_t stream_frames = 0;    // stream frames handed to the stream handler
  uint64_t unknown_frames = 0;
};

class EdgeSync {
 public:
  EdgeSync(MetaStore& meta, StatusTracker& tracker, EdgeSyncOptions options = {});

  // A new connection is up: forgets the previous connection's state and returns the Hello.
  v1::Frame hello();
  // One frame from the cloud. The frames to send in answer, or an error when the cloud broke the
  // protocol or the cache could not be written: the caller closes the connection with it.
  Result<std::vector<v1::Frame>> on_frame(const v1::Frame& frame);
  // The same from the raw WebSocket message.
  Result<std::vector<v1::Frame>> on_message(std::string_view data);
  // The connection is gone: a half-received snapshot is discarded, open streams are dropped.
  void on_disconnect();

  // The next StatusDelta to send, if the Welcome arrived, the in-flight window has room and the
  // outbox (or the event outbox) has work.
  std::optional<v1::Frame> next_status_batch();

  StreamHandler* stream_handler() const { return options_.streams; }

  bool welcomed() const { return welcomed_; }
  const v1::Welcome& welcome() const { return welcome_; }
  uint64_t last_sequence() const { return sequence_; }
  const EdgeSyncCounters& counters() const { return counters_; }

 private:
  Result<std::vector<v1::Frame>> on_welcome(const v1::Welcome& welcome);
  Result<std::vector<v1::Frame>> on_object_delta(const v1::ObjectDelta& delta);
  Result<std::vector<v1::Frame>> on_status_ack(const v1::StatusAck& ack);
  v1::Frame object_ack() const;

  MetaStore& meta_;
  StatusTracker& tracker_;
  EdgeSyncOptions options_;
  EdgeSyncCounters counters_;

  bool hello_sent_ = false;
  bool welcomed_ = false;
  v1::Welcome welcome_;
  uint64_t sequence_ = 0;  // last StatusDelta sequence used
  // Sequences up to here are settled (acked, or given up with the connection they were sent on):
  // sequence_ - acked_sequence_ batches are in flight.
  uint64_t acked_sequence_ = 0;

  bool in_snapshot_ = false;
  size_t snapshot_bytes_ = 0;
  std::vector<v1::Object> snapshot_;
};

}  // namespace gantry::edge
