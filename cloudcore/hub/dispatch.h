// The cloud's per-node downstream cursor, with no I/O: turns a resume and later registry changes
// into ObjectDelta frames no larger than the frame limit, and follows the node's cumulative acks.
#pragma once

#include <vector>

#include "cloudcore/registry/registry.h"
#include "gantry/v1/tunnel.pb.h"

namespace gantry::cloud {

class NodeDispatch {
 public:
  explicit NodeDispatch(size_t max_frame_bytes) : max_frame_bytes_(max_frame_bytes) {}

  // The frames that bring a node from its Hello to the registry's state. A snapshot always sends
  // at least one frame (the edge replaces its cache even with nothing); an incremental resume
  // with nothing to send sends none.
  std::vector<v1::Frame> resume(const Resume& resume);
  // A later change; revisions at or below what was already sent are dropped.
  std::vector<v1::Frame> live(const NodeChanges& changes);

  // A cumulative ack. A revision past what was sent on this connection changes nothing (returns
  // false): the edge's applied revision can be ahead of the cloud (a store restored from an older
  // backup; the ack it sends while buffering a snapshot), and it must not make the node look
  // caught up before it has applied what was sent.
  bool on_ack(Revision revision);
  Revision sent() const { return sent_; }
  Revision acked() const { return acked_; }
  // The node has acknowledged the whole resume (or there was nothing to resume).
  bool caught_up() const { return acked_ >= resume_revision_; }
  // Objects too large for one frame, dropped (and logged).
  uint64_t oversized() const { return oversized_; }

 private:
  std::vector<v1::Frame> split(const NodeChanges& changes, bool snapshot);

  size_t max_frame_bytes_;
  Revision sent_ = 0;
  Revision acked_ = 0;
  Revision resume_revision_ = 0;
  uint64_t oversized_ = 0;
};

}  // namespace gantry::cloud
