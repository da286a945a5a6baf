#include "cloudcore/hub/dispatch.h"

#include <spdlog/spdlog.h>

namespace gantry::cloud {
namespace {

// Room for the frame's own fields and the repeated-field tags around each object.
constexpr size_t kFrameOverhead = 64;

}  // namespace

std::vector<v1::Frame> NodeDispatch::resume(const Resume& resume) {
  bool snapshot = resume.mode == v1::RESUME_MODE_SNAPSHOT;
  resume_revision_ = 0;
  if (!snapshot && resume.changes.empty()) {
    sent_ = resume.changes.revision;
    return {};
  }
  resume_revision_ = resume.changes.revision;
  return split(resume.changes, snapshot);
}

std::vector<v1::Frame> NodeDispatch::live(const NodeChanges& changes) {
  if (changes.revision <= sent_ || changes.empty()) return {};
  return split(changes, false);
}

bool NodeDispatch::on_ack(Revision revision) {
  if (revision > sent_) return false;
  if (revision > acked_) acked_ = revision;
  return true;
}

std::vector<v1::Frame> NodeDispatch::split(const NodeChanges& changes, bool snapshot) {
  std::vector<v1::Frame> frames;
  auto start_frame = [&] {
    auto& delta = *frames.emplace_back().mutable_object_delta();
    delta.set_revision(changes.revision);
    delta.set_snapshot(snapshot);
    return &delta;
  };
  v1::ObjectDelta* current = start_frame();
  size_t size = kFrameOverhead;
  for (const auto& ref : changes.deletes) {
    *current->add_deletes() = ref;
    size += ref.ByteSizeLong() + 8;
  }
  for (const auto& obj : changes.upserts) {
    size_t obj_size = obj->ByteSizeLong() + 8;
    if (obj_size + kFrameOverhead > max_frame_bytes_) {
      ++oversized_;
      spdlog::error("hub: {} {}/{} is {} bytes, more than the {}-byte frame limit; not sent",
                    static_cast<int>(obj->kind()), obj->namespace_(), obj->name(), obj_size,
                    max_frame_bytes_);
      continue;
    }
    if (size + obj_size > max_frame_bytes_) {
      current->set_more(true);
      current = start_frame();
      size = kFrameOverhead;
    }
    *current->add_upserts() = *obj;
    size += obj_size;
  }
  sent_ = std::max(sent_, changes.revision);
  return frames;
}

}  // namespace gantry::cloud
