#include "common/base/atomic_file.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"

namespace gantry::common {
namespace {

mode_t mode_of(const std::filesystem::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

// Restores the process umask when the test ends.
class UmaskGuard {
 public:
  explicit UmaskGuard(mode_t mask) : old_(::umask(mask)) {}
  ~UmaskGuard() { ::umask(old_); }

 private:
  mode_t old_;
};

// Kills and reaps a forked writer however the test ends, so that no writer outlives it.
class ChildGuard {
 public:
  explicit ChildGuard(pid_t pid) : pid_(pid) {}
  ~ChildGuard() {
    if (pid_ > 0) kill_and_wait();
  }
  // SIGKILL, then the wait status.
  int kill_and_wait() {
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

 private:
  pid_t pid_;
};

TEST_CASE("write_file_atomic creates and replaces a file, leaving no temporary behind") {
  test::TempDir dir;
  const auto path = dir / "node.crt";
  REQUIRE(write_file_atomic(path, "old").ok());
  CHECK(read_file(path).value() == "old");
  REQUIRE(write_file_atomic(path, "new contents").ok());
  CHECK(read_file(path).value() == "new contents");
  REQUIRE(write_file_atomic(path, "").ok());
  CHECK(read_file(path).value().empty());

  int entries = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++entries;
  CHECK(entries == 1);
}

TEST_CASE("write_file_atomic gives the file exactly the requested mode, whatever the umask") {
  test::TempDir dir;
  UmaskGuard umask_guard(077);
  const auto key = dir / "node.key";
  REQUIRE(write_file_atomic(key, "secret", 0600).ok());
  CHECK(mode_of(key) == 0600);

  const auto cert = dir / "ca.crt";
  REQUIRE(write_file_atomic(cert, "public").ok());
  CHECK(mode_of(cert) == 0644);

  // Replacing a file applies the new mode too.
  REQUIRE(write_file_atomic(cert, "public again", 0640).ok());
  CHECK(mode_of(cert) == 0640);
}

TEST_CASE("a reader sees the old or the new contents, never a partial file, even across kill -9") {
  test::TempDir dir;
  const auto path = dir / "state.yaml";
  // Large enough that a single write() is not trivially atomic.
  const std::string a(1 << 20, 'a');
  const std::string b(1 << 20, 'b');
  REQUIRE(write_file_atomic(path, a).ok());

  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    for (int i = 0;; ++i) {
      if (!write_file_atomic(path, i % 2 ? a : b).ok()) ::_exit(1);
    }
  }

  ChildGuard writer(child);
  // Read only once the writer is replacing the file; poll, do not sleep.
  REQUIRE(test::eventually([&] { return read_file(path).value_or("") == b; }));
  int torn = 0;
  for (int i = 0; i < 200; ++i) {
    auto contents = read_file(path);
    REQUIRE(contents.ok());
    if (*contents != a && *contents != b) ++torn;
  }
  const int status = writer.kill_and_wait();
  CHECK(WIFSIGNALED(status));  // killed mid-loop, not exited on a write error

  CHECK(torn == 0);
  auto last = read_file(path);
  REQUIRE(last.ok());
  CHECK((*last == a || *last == b));
}

TEST_CASE("write_file_atomic into a missing directory fails and names the path") {
  test::TempDir dir;
  const auto path = dir / "no-such-dir" / "file";
  Status s = write_file_atomic(path, "x");
  REQUIRE_FALSE(s.ok());
  CHECK(s.code() == Code::kNotFound);
  CHECK_THAT(s.message(), Catch::Contains(path.string()));
  CHECK_THAT(s.message(), Catch::Contains("No such file or directory"));
}

TEST_CASE("read_file reports a missing file with its path and the system's reason") {
  test::TempDir dir;
  auto r = read_file(dir / "missing");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kNotFound);
  CHECK(r.status().message() ==
        "reading " + (dir / "missing").string() + ": No such file or directory");
}

}  // namespace
}  // namespace gantry::common
