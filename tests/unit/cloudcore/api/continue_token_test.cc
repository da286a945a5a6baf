#include "cloudcore/api/continue_token.h"

#include <catch2/catch.hpp>

namespace gantry::cloud::api {
namespace {

TEST_CASE("a continue token decodes to what was encoded") {
  auto token = decode_continue(encode_continue({42, "pods/default/web"}));
  REQUIRE(token.ok());
  CHECK(token->revision == 42);
  CHECK(token->last_key == "pods/default/web");
}

// Found by fuzz_continue_token: "====" made the size underflow (std::length_error), and a "v"
// that is not a number made nlohmann's value() throw; both crashed cloudcore's list handler.
TEST_CASE("continue tokens that are only padding or have a non-numeric version are refused") {
  for (const char* text : {"====", "AA==", "eyJ2IjoiMSIsInJ2IjoxLCJzdGFydCI6IngifQ==",
                           "eyJ2IjpbXSwicnYiOjEsInN0YXJ0IjoieCJ9"}) {
    INFO(text);
    auto token = decode_continue(text);
    REQUIRE_FALSE(token.ok());
    CHECK(token.status().code() == common::Code::kInvalidArgument);
  }
}

}  // namespace
}  // namespace gantry::cloud::api
