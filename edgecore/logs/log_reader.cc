#include "edgecore/logs/log_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "edgecore/logs/cri_log.h"

namespace gantry::edge {

using common::Code;
using common::make_error;

namespace {

constexpr size_t kChunkBytes = size_t{64} * 1024;

common::Status errno_error(const char* what, const std::string& path) {
  int e = errno;
  return make_error(e == ENOENT ? Code::kNotFound : Code::kInternal, "{} log file {}: {}", what,
                    path, std::strerror(e));
}

// pread() until `n` bytes or the end of the file; the bytes read.
common::Result<size_t> pread_full(int fd, char* buf, size_t n, uint64_t offset) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, buf + got, n - got, static_cast<off_t>(offset + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return make_error(Code::kInternal, "reading a log file: {}", std::strerror(errno));
    }
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

}  // namespace

LogReader::LogReader(std::string path, int fd, LogReadOptions options)
    : path_(std::move(path)), fd_(fd), options_(options) {}

LogReader::~LogReader() {
  if (fd_ >= 0) ::close(fd_);
}

common::Result<std::unique_ptr<LogReader>> LogReader::open(const std::string& path,
                                                           LogReadOptions options) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno_error("opening", path);
  std::unique_ptr<LogReader> reader(new LogReader(path, fd, options));
  if (options.tail_lines >= 0) {
    struct stat st {};
    if (::fstat(fd, &st) != 0) return errno_error("reading the size of", path);
    GANTRY_ASSIGN_OR_RETURN(reader->offset_, find_tail_start(fd, static_cast<uint64_t>(st.st_size),
                                                             options.tail_lines));
  }
  return reader;
}

common::Result<uint64_t> LogReader::find_tail_start(int fd, uint64_t end, int64_t lines) {
  // Records end with '\n'; bytes after the last newline are a record still being written and are
  // not counted. A line is an F record with the P records before it; P records at the very end
  // (a line still being written) count as one line.
  std::string block;
  std::string head;  // the first bytes after `block` (a record header that crosses blocks)
  std::optional<uint64_t> last_newline;  // ends the record whose start we are looking for
  bool first = true;
  int64_t count = 0;
  // Whether the start of the wanted lines is right after the record that starts at `header`.
  auto decide = [&](std::string_view header) {
    auto parsed = parse_cri_header(header.substr(0, std::min(header.size(), kMaxCriHeaderBytes)));
    if (!parsed) return false;  // not a record: not shown, not counted
    if (first) {
      first = false;
      if (parsed->partial) {
        count = 1;
        return false;
      }
    }
    if (parsed->partial) return false;
    if (count == lines) return true;
    ++count;
    return false;
  };
  uint64_t pos = end;
  while (pos > 0) {
    uint64_t lo = pos > kChunkBytes ? pos - kChunkBytes : 0;
    block.resize(pos - lo);
    GANTRY_ASSIGN_OR_RETURN(size_t got, pread_full(fd, block.data(), block.size(), lo));
    block.resize(got);
    for (size_t i = block.size(); i-- > 0;) {
      if (block[i] != '\n') continue;
      if (last_newline) {
        std::string header = block.substr(i + 1, kMaxCriHeaderBytes);
        if (header.size() < kMaxCriHeaderBytes)
          header += head.substr(0, kMaxCriHeaderBytes - header.size());
        if (decide(header)) return *last_newline + 1;
      } else if (lines == 0) {
        return lo + i + 1;  // nothing: start after the last complete record
      }
      last_newline = lo + i;
    }
    head.insert(0, block, 0, kMaxCriHeaderBytes);
    head.resize(std::min(head.size(), kMaxCriHeaderBytes));
    pos = lo;
  }
  if (last_newline && decide(head)) return *last_newline + 1;
  return 0;
}

void LogReader::reset_parser() {
  in_.clear();
  in_pos_ = 0;
  phase_ = Phase::kHeader;
  header_.clear();
  record_partial_ = false;
  in_partial_line_ = false;
  line_included_ = true;
}

common::Result<size_t> LogReader::read(size_t max, std::string* out) {
  size_t produced = 0;
  if (!carry_.empty()) {
    size_t n = std::min(max, carry_.size());
    out->append(carry_, 0, n);
    carry_.erase(0, n);
    produced += n;
  }
  while (produced < max && !done_) {
    if (in_pos_ == in_.size()) {
      in_.resize(kChunkBytes);
      GANTRY_ASSIGN_OR_RETURN(size_t got, pread_full(fd_, in_.data(), in_.size(), offset_));
      in_.resize(got);
      in_pos_ = 0;
      if (got == 0) {
        eof_ = true;
        break;
      }
      eof_ = false;
      offset_ += got;
    }
    process(max - produced, out, &produced);
  }
  return produced;
}

void LogReader::emit(std::string_view bytes, size_t room, std::string* out, size_t* produced) {
  if (options_.limit_bytes > 0) {
    uint64_t left = static_cast<uint64_t>(options_.limit_bytes) - produced_total_;
    if (bytes.size() >= left) {
      bytes = bytes.substr(0, left);
      done_ = true;
    }
  }
  produced_total_ += bytes.size();
  size_t now = std::min(bytes.size(), room > *produced ? room - *produced : 0);
  out->append(bytes.substr(0, now));
  *produced += now;
  carry_.append(bytes.substr(now));
}

void LogReader::on_record_start(const CriHeader& header, size_t room, std::string* out,
                                size_t* produced) {
  record_partial_ = header.partial;
  if (in_partial_line_) return;  // continues a line already started (or skipped)
  line_included_ = !options_.since_unix_nanos || header.unix_nanos >= *options_.since_unix_nanos;
  if (line_included_ && options_.timestamps) {
    emit(format_rfc3339_nanos(header.unix_nanos) + " ", room, out, produced);
  }
}

void LogReader::process(size_t room, std::string* out, size_t* produced_in_call) {
  // `room` is what the caller still wants; *produced_in_call counts against the caller's total,
  // so compare against a local budget.
  size_t base = *produced_in_call;
  size_t produced = 0;
  auto left = [&] { return room > produced ? room - produced : 0; };
  while (in_pos_ < in_.size() && left() > 0 && !done_) {
    std::string_view rest(in_.data() + in_pos_, in_.size() - in_pos_);
    switch (phase_) {
      case Phase::kHeader: {
        // Collect up to the space after the tags (the third space) or the end of the record.
        size_t i = 0;
        bool complete = false;
        bool newline = false;
        int spaces = static_cast<int>(std::count(header_.begin(), header_.end(), ' '));
        for (; i < rest.size(); ++i) {
          char c = rest[i];
          if (c == '\n') {
            newline = true;
            complete = true;
            break;
          }
          header_.push_back(c);
          if (c == ' ' && ++spaces == 3) {
            complete = true;
            ++i;
            break;
          }
          if (header_.size() > kMaxCriHeaderBytes) break;
        }
        in_pos_ += newline ? i + 1 : i;
        if (!complete) {
          if (header_.size() > kMaxCriHeaderBytes) {
            header_.clear();
            phase_ = Phase::kSkip;  // not a CRI record: skipped up to its newline
          }
          break;
        }
        auto parsed = parse_cri_header(header_);
        header_.clear();
        if (!parsed) {
          if (!newline) phase_ = Phase::kSkip;
          break;
        }
        on_record_start(*parsed, room, out, &produced);
        if (newline) {
          // An empty record.
          if (!record_partial_ && line_included_) emit("\n", room, out, &produced);
          in_partial_line_ = record_partial_;
        } else {
          phase_ = Phase::kBody;
        }
        break;
      }
      case Phase::kBody: {
        size_t nl = rest.find('\n');
        size_t body = nl == std::string_view::npos ? rest.size() : nl;
        if (line_included_) {
          size_t n = std::min(body, left());
          emit(rest.substr(0, n), room, out, &produced);
          in_pos_ += n;
          if (n < body) break;  // no room left
        } else {
          in_pos_ += body;
        }
        if (nl == std::string_view::npos) break;  // the record continues in the next chunk
        ++in_pos_;
        if (!record_partial_ && line_included_) emit("\n", room, out, &produced);
        in_partial_line_ = record_partial_;
        phase_ = Phase::kHeader;
        break;
      }
      case Phase::kSkip: {
        size_t nl = rest.find('\n');
        if (nl == std::string_view::npos) {
          in_pos_ = in_.size();
        } else {
          in_pos_ += nl + 1;
          phase_ = Phase::kHeader;
        }
        break;
      }
    }
  }
  *produced_in_call = base + produced;
}

common::Result<bool> LogReader::reopen_if_rotated() {
  struct stat now {};
  if (::stat(path_.c_str(), &now) != 0) return false;  // removed, not recreated yet: keep waiting
  struct stat mine {};
  if (::fstat(fd_, &mine) != 0) return errno_error("checking", path_);
  if (now.st_ino == mine.st_ino && now.st_dev == mine.st_dev) {
    if (static_cast<uint64_t>(now.st_size) >= offset_) return false;
    offset_ = 0;  // truncated in place (copytruncate)
    reset_parser();
    eof_ = false;
    return true;
  }
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return false;
    return errno_error("reopening", path_);
  }
  ::close(fd_);
  fd_ = fd;
  offset_ = 0;
  reset_parser();
  eof_ = false;
  return true;
}

}  // namespace gantry::edge
