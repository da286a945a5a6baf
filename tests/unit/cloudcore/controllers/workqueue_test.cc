// The work queue every controller uses: a key is queued once, a key added while it is being
// worked on comes back once the worker is done, failures back off exponentially by the injected
// clock.
#include <catch2/catch.hpp>

#include "cloudcore/controllers/informer.h"

namespace gantry::cloud::controllers {
namespace {

using namespace std::chrono_literals;

TEST_CASE("a key added many times is worked on once", "[controllers][workqueue]") {
  ManualClock clock;
  WorkQueue q(clock);
  q.add("a");
  q.add("b");
  q.add("a");
  CHECK(q.size() == 2);
  CHECK(q.try_get() == "a");
  CHECK(q.try_get() == "b");
  CHECK_FALSE(q.try_get());
}

TEST_CASE("a key added while held comes back after done, once", "[controllers][workqueue]") {
  ManualClock clock;
  WorkQueue q(clock);
  q.add("a");
  auto k = q.try_get();
  REQUIRE(k == "a");
  q.add("a");
  q.add("a");
  CHECK_FALSE(q.try_get());  // not handed to a second worker while the first holds it
  q.done("a");
  CHECK(q.try_get() == "a");
  q.done("a");
  CHECK_FALSE(q.try_get());
}

TEST_CASE("failing keys back off exponentially and forget resets them",
          "[controllers][workqueue]") {
  ManualClock clock;
  WorkQueueOptions o;
  o.base_delay = 10ms;
  o.max_delay = 35ms;
  WorkQueue q(clock, o);
  q.add_rate_limited("a");  // 10 ms
  CHECK_FALSE(q.try_get());
  clock.advance(9ms);
  CHECK_FALSE(q.try_get());
  clock.advance(1ms);
  CHECK(q.try_get() == "a");
  q.done("a");
  q.add_rate_limited("a");  // 20 ms
  clock.advance(19ms);
  CHECK_FALSE(q.try_get());
  clock.advance(1ms);
  CHECK(q.try_get() == "a");
  q.done("a");
  q.add_rate_limited("a");  // capped at 35 ms
  clock.advance(35ms);
  CHECK(q.try_get() == "a");
  q.done("a");
  CHECK(q.failures("a") == 3);
  q.forget("a");
  q.add_rate_limited("a");
  clock.advance(10ms);
  CHECK(q.try_get() == "a");
}

TEST_CASE("a delayed add keeps the earliest wake-up and shut down ends get",
          "[controllers][workqueue]") {
  ManualClock clock;
  WorkQueue q(clock);
  q.add_after("a", 100ms);
  q.add_after("a", 50ms);
  q.add_after("a", 200ms);
  CHECK(q.size() == 1);
  clock.advance(50ms);
  CHECK(q.try_get() == "a");
  q.done("a");
  clock.advance(500ms);
  CHECK_FALSE(q.try_get());  // the later ones were folded into the first
  q.shut_down();
  CHECK_FALSE(q.get());
}

}  // namespace
}  // namespace gantry::cloud::controllers
