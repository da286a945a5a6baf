#include "edgecore/hub/edge_sync.h"

#include <algorithm>

namespace gantry::edge {

using common::Code;
using common::make_error;

EdgeSync::EdgeSync(MetaStore& meta, StatusTracker& tracker, EdgeSyncOptions options)
    : meta_(meta), tracker_(tracker), options_(std::move(options)) {
  sequence_ = meta_.acked_sequence();
  acked_sequence_ = sequence_;
}

v1::Frame EdgeSync::hello() {
  on_disconnect();
  hello_sent_ = true;
  v1::Frame frame;
  auto* hello = frame.mutable_hello();
  hello->set_protocol_version(common::kProtocolVersion);
  hello->set_applied_revision(meta_.applied_revision());
  hello->set_acked_sequence(meta_.acked_sequence());
  hello->set_edgecore_version(options_.edgecore_version);
  return frame;
}

void EdgeSync::on_disconnect() {
  hello_sent_ = false;
  welcomed_ = false;
  welcome_.Clear();
  in_snapshot_ = false;
  snapshot_bytes_ = 0;
  snapshot_.clear();
  if (options_.streams) options_.streams->on_disconnect();
}

Result<std::vector<v1::Frame>> EdgeSync::on_message(std::string_view data) {
  v1::Frame frame;
  if (!frame.ParseFromArray(data.data(), static_cast<int>(data.size()))) {
    return make_error(Code::kInvalidArgument, "a message from the cloud is not a Frame");
  }
  return on_frame(frame);
}

Result<std::vector<v1::Frame>> EdgeSync::on_frame(const v1::Frame& frame) {
  if (!hello_sent_) return make_error(Code::kFailedPrecondition, "frame before Hello");
  switch (frame.msg_case()) {
    case v1::Frame::kWelcome:
      return on_welcome(frame.welcome());
    case v1::Frame::kObjectDelta:
      return on_object_delta(frame.object_delta());
    case v1::Frame::kStatusAck:
      return on_status_ack(frame.status_ack());
    case v1::Frame::kStreamOpen:
    case v1::Frame::kStreamData:
    case v1::Frame::kStreamWindow:
    case v1::Frame::kStreamClose:
      if (options_.streams) {
        ++counters_.stream_frames;
        return options_.streams->on_stream_frame(frame);
      }
      if (frame.msg_case() != v1::Frame::kStreamOpen) return std::vector<v1::Frame>{};
      {
        // No stream handler wired: say so instead of leaving the caller hanging.
        ++counters_.streams_refused;
        v1::Frame close;
        close.mutable_stream_close()->set_id(frame.stream_open().id());
        close.mutable_stream_close()->set_error("streams are not supported by this edgecore yet");
        close.mutable_stream_close()->set_code(501);
        return std::vector<v1::Frame>{std::move(close)};
      }
    case v1::Frame::kCertificateResponse:
      if (!options_.on_certificate) break;
      options_.on_certificate(frame.certificate_response());
      return std::vector<v1::Frame>{};
    case v1::Frame::kImagePullRequest:
      if (!options_.on_image_pull) break;
      options_.on_image_pull(frame.image_pull_request());
      return std::vector<v1::Frame>{};
    case v1::Frame::kHello:
    case v1::Frame::kObjectAck:
    case v1::Frame::kStatusDelta:
    case v1::Frame::kCertificateRequest:
    case v1::Frame::kImagePullReport:
      return make_error(Code::kInvalidArgument, "the cloud sent an edge-to-cloud frame (field {})",
                        static_cast<int>(frame.msg_case()));
    case v1::Frame::MSG_NOT_SET:
      break;
  }
  // A newer cloud's frame type: ignored, so that the protocol can grow.
  ++counters_.unknown_frames;
  return std::vector<v1::Frame>{};
}

Result<std::vector<v1::Frame>> EdgeSync::on_welcome(const v1::Welcome& welcome) {
  if (welcomed_) return make_error(Code::kInvalidArgument, "a second Welcome on one connection");
  GANTRY_RETURN_IF_ERROR(tracker_.on_welcome(welcome.acked_sequence(), welcome.resend_status()));
  if (options_.events) options_.events->on_welcome(welcome.acked_sequence());
  welcomed_ = true;
  welcome_ = welcome;
  ++counters_.welcomes;
  if (welcome.resume() == v1::RESUME_MODE_SNAPSHOT) ++counters_.resumes_snapshot;
  if (welcome.resume() == v1::RESUME_MODE_INCREMENTAL) ++counters_.resumes_incremental;
  sequence_ = std::max(sequence_, welcome.acked_sequence());
  acked_sequence_ = std::max(acked_sequence_, welcome.acked_sequence());
  // Batches sent on the old connection and not durable in the cloud are resent with new numbers.
  acked_sequence_ = std::max(acked_sequence_, sequence_);
  return std::vector<v1::Frame>{};
}

v1::Frame EdgeSync::object_ack() const {
  v1::Frame frame;
  frame.mutable_object_ack()->set_revision(meta_.applied_revision());
  return frame;
}

Result<std::vector<v1::Frame>> EdgeSync::on_object_delta(const v1::ObjectDelta& delta) {
  if (!welcomed_) return make_error(Code::kFailedPrecondition, "ObjectDelta before Welcome");
  if (delta.snapshot()) {
    in_snapshot_ = true;
    for (const auto& object : delta.upserts()) {
      snapshot_bytes_ += object.ByteSizeLong();
      snapshot_.push_back(object);
    }
    if (snapshot_bytes_ > options_.max_snapshot_bytes) {
      return make_error(Code::kResourceExhausted, "snapshot larger than {} bytes",
                        options_.max_snapshot_bytes);
    }
    if (delta.more()) return std::vector<v1::Frame>{};
    GANTRY_RETURN_IF_ERROR(meta_.replace_all(snapshot_, delta.revision()));
    counters_.objects_applied += snapshot_.size();
    ++counters_.snapshots_applied;
    in_snapshot_ = false;
    snapshot_bytes_ = 0;
    snapshot_.clear();
    return std::vector<v1::Frame>{object_ack()};
  }
  if (in_snapshot_) {
    return make_error(Code::kInvalidArgument, "an incremental ObjectDelta inside a snapshot");
  }
  std::vector<v1::Object> upserts(delta.upserts().begin(), delta.upserts().end());
  std::vector<v1::ObjectRef> deletes(delta.deletes().begin(), delta.deletes().end());
  GANTRY_ASSIGN_OR_RETURN(ApplyResult applied,
                          meta_.apply_delta(upserts, deletes, delta.revision(), !delta.more()));
  counters_.objects_applied += applied.upserted + applied.deleted;
  counters_.objects_dropped += applied.dropped;
  return std::vector<v1::Frame>{object_ack()};
}

Result<std::vector<v1::Frame>> EdgeSync::on_status_ack(const v1::StatusAck& ack) {
  if (!welcomed_) return make_error(Code::kFailedPrecondition, "StatusAck before Welcome");
  std::vector<v1::ResyncRequest> resync(ack.resync().begin(), ack.resync().end());
  GANTRY_RETURN_IF_ERROR(tracker_.on_ack(ack.sequence(), resync));
  if (options_.events) options_.events->on_ack(ack.sequence());
  ++counters_.status_acks;
  counters_.resyncs += resync.size();
  acked_sequence_ = std::max(acked_sequence_, ack.sequence());
  return std::vector<v1::Frame>{};
}

std::optional<v1::Frame> EdgeSync::next_status_batch() {
  if (!welcomed_) return std::nullopt;
  if (sequence_ - acked_sequence_ >= options_.max_status_batches_in_flight) return std::nullopt;
  auto batch = tracker_.take_batch(sequence_ + 1);
  if (!batch && !(options_.events && options_.events->has_due())) return std::nullopt;
  if (!batch) {
    batch.emplace();
    batch->set_sequence(sequence_ + 1);
  }
  // Events ride along with the statuses (or alone): acknowledged with the batch.
  bool events = options_.events && options_.events->take(*batch);
  if (batch->entries_size() == 0 && !events) return std::nullopt;
  ++sequence_;
  ++counters_.status_batches_sent;
  counters_.status_entries_sent += batch->entries_size();
  counters_.events_sent += batch->events_size();
  v1::Frame frame;
  *frame.mutable_status_delta() = std::move(*batch);
  return frame;
}

}  // namespace gantry::edge
