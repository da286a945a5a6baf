// Reads one CRI container log file the way `kubectl logs` shows it: content only (optionally
// prefixed with the line's timestamp), partial records joined into one line, the last N lines
// found by reading backwards from the end, records older than a point in time skipped, output
// capped at a byte limit. Pull-based and bounded: each read() produces at most the bytes asked
// for and reads the file at most one chunk ahead, so a huge file costs no more memory than a
// small one. For `-f` the caller reads again when the file grew and calls reopen_if_rotated() at
// the end of the file.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/base/status.h"

namespace gantry::edge {

struct LogReadOptions {
  int64_t tail_lines = -1;  // < 0: every line; otherwise the last N lines
  int64_t limit_bytes = 0;  // <= 0: no limit; otherwise the output stops after this many bytes
  bool timestamps = false;  // prefix each line with its RFC 3339 timestamp and a space
  std::optional<int64_t> since_unix_nanos;  // lines with an older timestamp are skipped
};

class LogReader {
 public:
  // Opens `path` and, for tail_lines >= 0, finds where the last N lines start. kNotFound when the
  // file does not exist.
  static common::Result<std::unique_ptr<LogReader>> open(const std::string& path,
                                                         LogReadOptions options);
  ~LogReader();
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  // Appends at most `max` bytes of output to *out; returns how many. 0 with done() false means
  // the end of the file for now (at_eof()).
  common::Result<size_t> read(size_t max, std::string* out);
  // The byte limit was reached: nothing more will be produced.
  bool done() const { return done_; }
  // The last read() reached the end of the file with no output pending.
  bool at_eof() const { return eof_ && carry_.empty(); }
  // For following, at the end of the file: when the file at the path is another file (rotated:
  // renamed and recreated) or shorter than what was read (truncated), continues from the start
  // of the file now at the path. Returns whether it switched.
  common::Result<bool> reopen_if_rotated();

  const std::string& path() const { return path_; }
  uint64_t offset() const { return offset_; }  // bytes of the current file read so far

  // Where the last `lines` lines of the CRI records in [0, end) of `fd` start (a record offset).
  // Reads backwards in chunks; exposed for tests.
  static common::Result<uint64_t> find_tail_start(int fd, uint64_t end, int64_t lines);

 private:
  LogReader(std::string path, int fd, LogReadOptions options);
  void reset_parser();
  // Consumes input from in_ and produces output into *out (up to `room` bytes, plus a timestamp
  // prefix that may spill into carry_).
  void process(size_t room, std::string* out, size_t* produced);
  void emit(std::string_view bytes, size_t room, std::string* out, size_t* produced);
  void on_record_start(const struct CriHeader& header, size_t room, std::string* out,
                       size_t* produced);

  enum class Phase { kHeader, kBody, kSkip };

  std::string path_;
  int fd_ = -1;
  LogReadOptions options_;
  uint64_t offset_ = 0;  // file read position
  std::string in_;       // one chunk of the file
  size_t in_pos_ = 0;    // consumed part of in_
  std::string carry_;    // output produced past the last read()'s `max` (a timestamp prefix)
  uint64_t produced_total_ = 0;
  bool done_ = false;
  bool eof_ = false;

  Phase phase_ = Phase::kHeader;
  std::string header_;  // the record header being collected
  bool record_partial_ = false;
  bool in_partial_line_ = false;  // the previous record was P: this record continues its line
  bool line_included_ = true;     // the current line passed the `since` filter
};

}  // namespace gantry::edge
