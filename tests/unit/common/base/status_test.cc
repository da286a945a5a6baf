#include "common/base/status.h"

#include <catch2/catch.hpp>

namespace gantry::common {
namespace {

Result<int> parse_positive(int v) {
  if (v <= 0) return make_error(Code::kInvalidArgument, "{} is not positive", v);
  return v;
}

Result<int> doubled(int v) {
  GANTRY_ASSIGN_OR_RETURN(int x, parse_positive(v));
  return 2 * x;
}

TEST_CASE("a failed Result carries its status through ASSIGN_OR_RETURN") {
  REQUIRE(doubled(4).value() == 8);
  auto r = doubled(-1);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK(r.status().to_string() == "InvalidArgument: -1 is not positive");
}

TEST_CASE("with_context puts the context in front of the message") {
  Status s = make_error(Code::kNotFound, "no such file");
  CHECK(s.with_context("loading a.yaml").message() == "loading a.yaml: no such file");
  CHECK(ok_status().with_context("x").ok());
}

}  // namespace
}  // namespace gantry::common
