#include "common/base/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace gantry::common {

namespace {

Code code_for_errno(int err) {
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      return Code::kNotFound;
    case EACCES:
    case EPERM:
    case EROFS:
      return Code::kPermissionDenied;
    case ENOSPC:
    case EDQUOT:
      return Code::kResourceExhausted;
    default:
      return Code::kInternal;
  }
}

Status errno_error(std::string_view what, const std::filesystem::path& path, int err) {
  return make_error(code_for_errno(err), "{} {}: {}", what, path.string(), std::strerror(err));
}

// Closes the descriptor on every path out of a function.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  // Closes now and reports close()'s error (it can carry a deferred write error).
  int close() {
    int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

Status write_all(int fd, std::string_view data, const std::filesystem::path& path) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("writing", path, errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return ok_status();
}

Status write_temp_and_rename(const std::filesystem::path& path, const std::string& temp, int raw_fd,
                             std::string_view contents, mode_t mode) {
  Fd fd(raw_fd);
  // mkstemp made the file 0600; set the final mode before any byte is written.
  if (::fchmod(fd.get(), mode) != 0) return errno_error("setting the mode of", temp, errno);
  GANTRY_RETURN_IF_ERROR(write_all(fd.get(), contents, temp));
  if (::fsync(fd.get()) != 0) return errno_error("syncing", temp, errno);
  if (fd.close() != 0) return errno_error("closing", temp, errno);
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    return make_error(code_for_errno(errno), "renaming {} to {}: {}", temp, path.string(),
                      std::strerror(errno));
  }
  return ok_status();
}

}  // namespace

Status write_file_atomic(const std::filesystem::path& path, std::string_view contents,
                         mode_t mode) {
  const std::filesystem::path dir =
      path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
  // Hidden and recognisable, in the same directory so that rename() stays on one filesystem.
  std::string temp = (dir / ("." + path.filename().string() + ".tmp.XXXXXX")).string();
  std::vector<char> name(temp.begin(), temp.end());
  name.push_back('\0');
  int fd = ::mkostemp(name.data(), O_CLOEXEC);
  if (fd < 0) return errno_error("creating a temporary file for", path, errno);
  temp.assign(name.data());

  Status status = write_temp_and_rename(path, temp, fd, contents, mode);
  if (!status.ok()) {
    ::unlink(temp.c_str());
    return status;
  }

  Fd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir_fd.get() < 0) return errno_error("opening directory", dir, errno);
  if (::fsync(dir_fd.get()) != 0) return errno_error("syncing directory", dir, errno);
  return ok_status();
}

Result<std::string> read_file(const std::filesystem::path& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return errno_error("reading", path, errno);
  std::string contents;
  char buffer[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno_error("reading", path, errno);
    }
    if (n == 0) break;
    contents.append(buffer, static_cast<size_t>(n));
  }
  return contents;
}

}  // namespace gantry::common
