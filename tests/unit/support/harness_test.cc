// The test harness itself: ctest hands every test the build and source trees, wherever the build
// tree lives (in the source tree or out of it, `cmake -B ../elsewhere`).
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>

#include "tests/support/containerd_fixture.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;

TEST_CASE("ctest gives each test GANTRY_SOURCE_DIR and GANTRY_BUILD_DIR", "[harness]") {
  const char* source = std::getenv("GANTRY_SOURCE_DIR");
  const char* build = std::getenv("GANTRY_BUILD_DIR");
  INFO("run through ctest, which sets both (by hand: set them yourself)");
  REQUIRE(source != nullptr);
  REQUIRE(build != nullptr);
  CHECK(fs::exists(fs::path(source) / "tools" / "containerd.sh"));
  CHECK(fs::exists(fs::path(build) / "CMakeCache.txt"));
  CHECK(gantry::test::build_dir() == fs::path(build));
  CHECK(gantry::test::containerd_script() == fs::path(source) / "tools" / "containerd.sh");
}
