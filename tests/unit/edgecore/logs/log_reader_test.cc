#include "edgecore/logs/log_reader.h"

#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"
#include "tests/unit/edgecore/logs/log_test_util.h"

namespace gantry::edge {
namespace {

using test::append;
using test::cri;

// Everything the reader produces now, in reads of at most `step` bytes.
std::string read_all(LogReader& reader, size_t step = 1 << 20) {
  std::string out;
  while (true) {
    auto n = reader.read(step, &out);
    REQUIRE(n.ok());
    REQUIRE(*n <= step);
    if (*n == 0) return out;
  }
}

std::string read_file(const std::filesystem::path& path, LogReadOptions options = {},
                      size_t step = 1 << 20) {
  auto reader = LogReader::open(path.string(), options);
  REQUIRE(reader.ok());
  return read_all(**reader, step);
}

}  // namespace

TEST_CASE("a CRI log reads as its content, partial records joined into one line", "[logs]") {
  gantry::test::TempDir dir;
  auto path = dir / "0.log";
  append(path, cri(1, "first") + cri(2, "sec", true) + cri(3, "ond", true) + cri(4, " line") +
                   cri(5, "err", false, "stderr") + cri(6, ""));
  auto step = GENERATE(1, 3, 7, 1 << 20);
  CHECK(read_file(path, {}, step) == "first\nsecond line\nerr\n\n");
}

TEST_CASE("lines that are not CRI records are skipped", "[logs]") {
  gantry::test::TempDir dir;
  auto path = dir / "0.log";
  append(path,
         cri(1, "a") + "garbage without a header\n" + std::string(300, 'x') + "\n" + cri(2, "b"));
  CHECK(read_file(path) == "a\nb\n");
}

TEST_CASE("timestamps prefix each line once, in UTC with nine fraction digits", "[logs]") {
  gantry::test::TempDir dir;
  auto path = dir / "0.log";
  append(path, cri(1, "a") + cri(2, "b", true) + cri(3, "c"));
  LogReadOptions o;
  o.timestamps = true;
  CHECK(read_file(path, o, GENERATE(1, 5, 1 << 20)) ==
        "2024-01-01T00:00:01.000000000Z a\n2024-01-01T00:00:02.000000000Z bc\n");
}

TEST_CASE("tailLines gives the last N lines, counting joined partial records as one", "[logs]") {
  gantry::test::TempDir dir;
  auto path = dir / "0.log";
  append(path,
         cri(1, "one") + cri(2, "tw", true) + cri(3, "o") + cri(4, "three") + cri(5, "fo", true));
  auto tail = [&](int64_t n) {
    LogReadOptions o;
    o.tail_lines = n;
    return read_file(path, o);
  };
  CHECK(tail(0).empty());
  CHECK(tail(1) == "fo");  // the line still being written
  CHECK(tail(2) == "three\nfo");
  CHECK(tail(3) == "two\nthree\nfo");
  CHECK(tail(4) == "one\ntwo\nthree\nfo");
  CHECK(tail(100) == "one\ntwo\nthree\nfo");
}

TEST_CASE("tailLines on a large file reads only the end of it", "[logs]") {
  gantry::test::TempDir dir;
  auto path = dir / "0.log";
  std::string text;
  for (int i = 0; i < 40000; ++i)
    text += cri(i % 1000, fmt::format("line {:05} {}", i, std::string(i % 50, '.')));
  append(path, text);
  int fd = ::open(path.c_str(), O_RDONLY);
  REQUIRE(fd >= 0);
  auto start = LogReader::find_tail_start(fd, text.size(), 3);
  ::close(fd);
  REQUIRE(start.ok());
  CHECK(text.substr(*start).starts_with(
      cri(39997 % 1000, "line 39997 " + std::string(39997 % 50, '.'))));

  LogReadOptions o;
  o.tail_lines = 2;
  CHECK(read_file(path, o) == "line 39998 " + std::string(39998 % 50, '.') + "\nline 39999 " +
                                  std::string(39999 % 50, '.') + "\n");
  // Across the backward-reading chunk boundary (64 KiB) every count still lands on a record.
  for (int64_t n : {1000, 1500, 1523, 2000, 5000}) {
    o.tail_lines = n;
    std::string out = read_file(path, o);
    CHECK(std::count(out.begin(), out.end(), '\n') == n);
    CHECK(out.starts_with(fmt::format("line {:05} ", 40000 - n)));
  }
}

TEST_CASE("limitBytes cuts the output, timestamps included", "[logs]") {
  gantry::test::TempDir dir;
  auto path = dir / "0.log";
  append(path, cri(1, "hello") + cri(2, "world"));
  LogReadOptions o;
  o.limit_bytes = 8;
  auto reader = LogReader::open(path.string(), o);
  REQUIRE(reader.ok());
  CHECK(read_all(**reader, GENERATE(1, 3, 100)) == "hello\nwo");
  CHECK((*reader)->done());
  o.timestamps = true;
  o.limit_bytes = 10;
  CHECK(read_file(path, o) == "2024-01-01");
}

TEST_CASE("sinceSeconds skips older lines, a joined line by its first record", "[logs]") {
  gantry::test::TempDir dir;
  auto path = dir / "0.log";
  append(path, cri(1, "old") + cri(2, "old-", true) + cri(5, "continued") + cri(5, "new") +
                   cri(9, "newer"));
  LogReadOptions o;
  o.since_unix_nanos = (1704067200LL + 3) * 1'000'000'000LL;
  CHECK(read_file(path, o) == "new\nnewer\n");
  o.tail_lines = 1;
  CHECK(read_file(path, o) == "newer\n");
}

TEST_CASE("following: a file that grows is read on, including a record completed later", "[logs]") {
  gantry::test::TempDir dir;
  auto path = dir / "0.log";
  append(path, cri(1, "a"));
  auto reader = LogReader::open(path.string(), {});
  REQUIRE(reader.ok());
  CHECK(read_all(**reader) == "a\n");
  CHECK((*reader)->at_eof());
  std::string half = cri(2, "bbbb");
  append(path, half.substr(0, half.size() - 3));
  CHECK(read_all(**reader) == "bb");
  append(path, half.substr(half.size() - 3) + cri(3, "c"));
  CHECK(read_all(**reader) == "bb\nc\n");
  auto rotated = (*reader)->reopen_if_rotated();
  REQUIRE(rotated.ok());
  CHECK_FALSE(*rotated);
}

TEST_CASE("following: a rotated file is read to its end, then the new file from its start",
          "[logs]") {
  gantry::test::TempDir dir;
  auto path = dir / "0.log";
  append(path, cri(1, "a"));
  auto reader = LogReader::open(path.string(), {});
  REQUIRE(reader.ok());
  CHECK(read_all(**reader) == "a\n");
  append(path, cri(2, "b"));                                     // written before the rotation
  std::filesystem::rename(path, dir / "0.log.20240101-000003");  // what kubelet's rotation does
  CHECK(read_all(**reader) == "b\n");
  auto rotated = (*reader)->reopen_if_rotated();
  REQUIRE(rotated.ok());
  CHECK_FALSE(*rotated);  // no new file yet: keep waiting
  append(path, cri(3, "c"));
  rotated = (*reader)->reopen_if_rotated();
  REQUIRE(rotated.ok());
  CHECK(*rotated);
  CHECK(read_all(**reader) == "c\n");
}

TEST_CASE("following: a file truncated in place is read again from its start", "[logs]") {
  gantry::test::TempDir dir;
  auto path = dir / "0.log";
  append(path, cri(1, "aaaaaaaa") + cri(2, "bbbbbbbb"));
  auto reader = LogReader::open(path.string(), {});
  REQUIRE(reader.ok());
  CHECK(read_all(**reader) == "aaaaaaaa\nbbbbbbbb\n");
  std::filesystem::resize_file(path, 0);
  append(path, cri(3, "c"));
  auto rotated = (*reader)->reopen_if_rotated();
  REQUIRE(rotated.ok());
  CHECK(*rotated);
  CHECK(read_all(**reader) == "c\n");
}

TEST_CASE("a missing log file is NotFound", "[logs]") {
  gantry::test::TempDir dir;
  auto reader = LogReader::open((dir / "nope.log").string(), {});
  REQUIRE_FALSE(reader.ok());
  CHECK(reader.status().code() == common::Code::kNotFound);
}

}  // namespace gantry::edge
