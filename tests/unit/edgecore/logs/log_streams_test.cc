#include "edgecore/logs/log_streams.h"

#include <catch2/catch.hpp>

#include "tests/support/test_support.h"
#include "tests/unit/edgecore/logs/log_test_util.h"

namespace gantry::edge {
namespace {

using test::append;
using test::cri;

struct Fixture {
  gantry::test::TempDir dir;
  common::ManualClock clock;
  std::map<std::string, LogTarget> containers;  // "ns/pod/container" -> target
  int locator_calls = 0;
  LogStreamsOptions options;
  std::unique_ptr<LogStreams> streams;

  explicit Fixture(LogStreamsOptions o = {}) : options(o) {
    streams = std::make_unique<LogStreams>(
        [this](const v1::LogRequest& r) -> common::Result<LogTarget> {
          ++locator_calls;
          auto it = containers.find(r.namespace_() + "/" + r.pod() + "/" + r.container());
          if (it == containers.end())
            return common::make_error(common::Code::kNotFound,
                                      "container \"{}\" in pod {}/{} not found", r.container(),
                                      r.namespace_(), r.pod());
          return it->second;
        },
        clock, options);
  }

  std::filesystem::path add(const std::string& container, bool running = true) {
    auto path = dir / (container + ".log");
    containers["default/web/" + container] = {path.string(), running};
    return path;
  }

  static v1::Frame open(uint32_t id, uint32_t window, const std::string& container,
                        bool follow = false, int64_t tail = -1) {
    v1::Frame f;
    auto* o = f.mutable_stream_open();
    o->set_id(id);
    o->set_window(window);
    auto* r = o->mutable_logs();
    r->set_namespace_("default");
    r->set_pod("web");
    r->set_container(container);
    r->set_follow(follow);
    r->set_tail_lines(tail);
    return f;
  }
  static v1::Frame window(uint32_t id, uint32_t bytes) {
    v1::Frame f;
    f.mutable_stream_window()->set_id(id);
    f.mutable_stream_window()->set_bytes(bytes);
    return f;
  }
  static v1::Frame cancel(uint32_t id) {
    v1::Frame f;
    f.mutable_stream_close()->set_id(id);
    return f;
  }
};

struct Outcome {
  std::string data;
  size_t data_frames = 0;
  size_t largest = 0;
  bool accepted = false;
  std::optional<v1::StreamClose> close;
};

void collect(const std::vector<v1::Frame>& frames, uint32_t id, Outcome* out) {
  for (const auto& f : frames) {
    if (f.has_stream_data() && f.stream_data().id() == id) {
      REQUIRE_FALSE(out->close);  // nothing after the close
      if (f.stream_data().data().empty()) {
        out->accepted = true;
      } else {
        REQUIRE(out->accepted);
        out->data += f.stream_data().data();
        ++out->data_frames;
        out->largest = std::max(out->largest, f.stream_data().data().size());
      }
    }
    if (f.has_stream_close() && f.stream_close().id() == id) {
      REQUIRE_FALSE(out->close);
      out->close = f.stream_close();
    }
  }
}

}  // namespace

TEST_CASE("a log stream sends no more than the window, then waits for more credit", "[logs]") {
  Fixture fx;
  std::string text;
  std::string expected;
  for (int i = 0; i < 200; ++i) {
    std::string line = fmt::format("line {} {}", i, std::string(100, 'x'));
    text += cri(i, line);
    expected += line + "\n";
  }
  append(fx.add("app", /*running=*/false), text);
  Outcome out;
  collect(fx.streams->on_stream_frame(Fixture::open(1, 1000, "app")), 1, &out);
  CHECK(out.accepted);
  CHECK(out.data.size() == 1000);
  CHECK_FALSE(out.close);
  CHECK(fx.streams->stats().waiting_for_window == 1);
  CHECK_FALSE(fx.streams->wants_poll());
  // Grants are honoured exactly, whatever their size.
  for (uint32_t grant : {1u, 10u, 5000u}) {
    size_t before = out.data.size();
    collect(fx.streams->on_stream_frame(Fixture::window(1, grant)), 1, &out);
    CHECK(out.data.size() - before == grant);
  }
  while (!out.close) collect(fx.streams->on_stream_frame(Fixture::window(1, 4096)), 1, &out);
  CHECK(out.data == expected);
  CHECK(out.close->error().empty());
  CHECK(out.largest <= fx.options.max_data_frame);
  CHECK(fx.streams->open_streams() == 0);
}

TEST_CASE("a log stream keeps no more credit than max_window however much the cloud grants",
          "[logs]") {
  LogStreamsOptions o;
  o.max_window = 4096;
  Fixture fx(o);
  append(fx.add("app", false), cri(1, std::string(100000, 'y')));
  Outcome out;
  collect(fx.streams->on_stream_frame(Fixture::open(1, 4'000'000'000u, "app")), 1, &out);
  CHECK(out.data.size() == 4096);
  collect(fx.streams->on_stream_frame(Fixture::window(1, 4'000'000'000u)), 1, &out);
  CHECK(out.data.size() == 8192);
}

TEST_CASE("refused log streams answer with a code and a reason", "[logs]") {
  Fixture fx;
  append(fx.add("app"), cri(1, "a"));
  Outcome missing;
  collect(fx.streams->on_stream_frame(Fixture::open(1, 1000, "nope")), 1, &missing);
  REQUIRE(missing.close);
  CHECK_FALSE(missing.accepted);
  CHECK(missing.close->code() == 404);
  CHECK(missing.close->error() == "container \"nope\" in pod default/web not found");

  fx.containers["default/web/gone"] = {(fx.dir / "gone.log").string(), true};
  Outcome no_file;
  collect(fx.streams->on_stream_frame(Fixture::open(2, 1000, "gone")), 2, &no_file);
  REQUIRE(no_file.close);
  CHECK(no_file.close->code() == 404);

  v1::Frame bad = Fixture::open(3, 1000, "app");
  bad.mutable_stream_open()->mutable_logs()->set_limit_bytes(-1);
  Outcome negative;
  collect(fx.streams->on_stream_frame(bad), 3, &negative);
  REQUIRE(negative.close);
  CHECK(negative.close->code() == 400);

  v1::Frame empty;
  empty.mutable_stream_open()->set_id(4);
  Outcome unknown;
  collect(fx.streams->on_stream_frame(empty), 4, &unknown);
  REQUIRE(unknown.close);
  CHECK(unknown.close->code() == 501);
  CHECK(fx.streams->open_streams() == 0);
  CHECK(fx.streams->stats().refused == 4);
}

TEST_CASE("more than max_streams log streams at once are refused with 429", "[logs]") {
  LogStreamsOptions o;
  o.max_streams = 3;
  Fixture fx(o);
  append(fx.add("app"), cri(1, "a"));
  for (uint32_t id = 1; id <= 3; ++id) {
    Outcome out;
    collect(fx.streams->on_stream_frame(Fixture::open(id, 1000, "app", /*follow=*/true)), id, &out);
    CHECK(out.accepted);
    CHECK_FALSE(out.close);
  }
  Outcome fourth;
  collect(fx.streams->on_stream_frame(Fixture::open(4, 1000, "app", true)), 4, &fourth);
  REQUIRE(fourth.close);
  CHECK(fourth.close->code() == 429);
  // One ends (the cloud closed it): there is room again.
  CHECK(fx.streams->on_stream_frame(Fixture::cancel(2)).empty());
  Outcome fifth;
  collect(fx.streams->on_stream_frame(Fixture::open(5, 1000, "app", true)), 5, &fifth);
  CHECK(fifth.accepted);
  CHECK_FALSE(fifth.close);
  fx.streams->on_disconnect();
  CHECK(fx.streams->open_streams() == 0);
  CHECK_FALSE(fx.streams->wants_poll());
}

TEST_CASE("a followed log sends what is appended and ends once the container stopped", "[logs]") {
  Fixture fx;
  auto path = fx.add("app");
  append(path, cri(1, "one") + cri(2, "two") + cri(3, "three"));
  Outcome out;
  collect(fx.streams->on_stream_frame(Fixture::open(7, 65536, "app", true, 2)), 7, &out);
  CHECK(out.data == "two\nthree\n");
  CHECK(fx.streams->wants_poll());
  collect(fx.streams->poll(), 7, &out);  // nothing new
  CHECK(out.data == "two\nthree\n");
  append(path, cri(4, "four"));
  collect(fx.streams->poll(), 7, &out);
  CHECK(out.data == "two\nthree\nfour\n");
  // The container writes its last line and stops between two polls: the line still comes.
  append(path, cri(5, "last words"));
  fx.containers["default/web/app"].running = false;
  collect(fx.streams->poll(), 7, &out);
  CHECK(out.data == "two\nthree\nfour\nlast words\n");
  REQUIRE(out.close);
  CHECK(out.close->error().empty());
  CHECK_FALSE(fx.streams->wants_poll());
}

TEST_CASE("a followed log ends when the container was replaced (another log path)", "[logs]") {
  Fixture fx;
  auto path = fx.add("app");
  append(path, cri(1, "old container"));
  Outcome out;
  collect(fx.streams->on_stream_frame(Fixture::open(1, 65536, "app", true)), 1, &out);
  CHECK(out.data == "old container\n");
  fx.containers["default/web/app"] = {(fx.dir / "app-1.log").string(), true};
  collect(fx.streams->poll(), 1, &out);
  REQUIRE(out.close);
  CHECK(out.close->error().empty());
}

TEST_CASE("a followed log survives rotation", "[logs]") {
  Fixture fx;
  auto path = fx.add("app");
  append(path, cri(1, "before"));
  Outcome out;
  collect(fx.streams->on_stream_frame(Fixture::open(1, 65536, "app", true)), 1, &out);
  append(path, cri(2, "just before rotation"));
  std::filesystem::rename(path, fx.dir / "app.log.1");
  append(path, cri(3, "after"));
  collect(fx.streams->poll(), 1, &out);
  CHECK(out.data == "before\njust before rotation\nafter\n");
  CHECK_FALSE(out.close);
}

TEST_CASE("a followed stream without credit is not polled until the cloud grants more", "[logs]") {
  Fixture fx;
  auto path = fx.add("app");
  append(path, cri(1, "0123456789"));
  Outcome out;
  collect(fx.streams->on_stream_frame(Fixture::open(1, 11, "app", true)), 1, &out);
  CHECK(out.data == "0123456789\n");
  append(path, cri(2, "more"));
  CHECK_FALSE(fx.streams->wants_poll());  // no credit: nothing would be sent anyway
  int calls = fx.locator_calls;
  collect(fx.streams->poll(), 1, &out);
  CHECK(fx.locator_calls == calls);
  collect(fx.streams->on_stream_frame(Fixture::window(1, 100)), 1, &out);
  CHECK(out.data == "0123456789\nmore\n");
  CHECK(fx.streams->wants_poll());
}

TEST_CASE("a second StreamOpen with an id in use ends both", "[logs]") {
  Fixture fx;
  append(fx.add("app"), cri(1, "a"));
  Outcome first;
  collect(fx.streams->on_stream_frame(Fixture::open(1, 100, "app", true)), 1, &first);
  CHECK_FALSE(first.close);
  collect(fx.streams->on_stream_frame(Fixture::open(1, 100, "app", true)), 1, &first);
  REQUIRE(first.close);
  CHECK(first.close->code() == 400);
  CHECK(fx.streams->open_streams() == 0);
}

TEST_CASE("sinceSeconds counts back from the injected clock", "[logs]") {
  Fixture fx;
  fx.clock.set_system_now(
      std::chrono::system_clock::time_point(std::chrono::seconds(1704067200 + 10)));
  append(fx.add("app", false), cri(1, "old") + cri(8, "recent") + cri(9, "newest"));
  v1::Frame f = Fixture::open(1, 1000, "app");
  f.mutable_stream_open()->mutable_logs()->set_since_seconds(3);
  Outcome out;
  collect(fx.streams->on_stream_frame(f), 1, &out);
  CHECK(out.data == "recent\nnewest\n");
}

}  // namespace gantry::edge
