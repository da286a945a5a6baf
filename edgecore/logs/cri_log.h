// The CRI container log format (what containerd writes, one record per line):
//   <RFC3339Nano timestamp> <stdout|stderr> <tags> <content>\n
// tags is "F" (the record ends a line) or "P" (a partial line: joined with the following records
// up to the next F); further tags may follow after ':'.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace gantry::edge {

struct CriHeader {
  int64_t unix_nanos = 0;  // the record's timestamp
  bool is_stderr = false;
  bool partial = false;       // tag P
  size_t content_offset = 0;  // where the content starts in the parsed text
};

// A header longer than this is not a CRI record.
inline constexpr size_t kMaxCriHeaderBytes = 128;

// Parses the start of a record: timestamp, stream and tags, up to and including the single space
// before the content (or the end of `text` right after the tags: an empty record). nullopt when
// `text` does not start with a complete, valid header.
std::optional<CriHeader> parse_cri_header(std::string_view text);

// RFC 3339 with optional fraction (up to 9 digits) and "Z" or a "+hh:mm"/"-hh:mm" offset, as
// containerd writes it. nullopt when malformed.
std::optional<int64_t> parse_rfc3339_nanos(std::string_view text);

// "2024-01-02T03:04:05.000000001Z": UTC, always nine fraction digits (as kubelet prints
// `kubectl logs --timestamps`).
std::string format_rfc3339_nanos(int64_t unix_nanos);

}  // namespace gantry::edge
