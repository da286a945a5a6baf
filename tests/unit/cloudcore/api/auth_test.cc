#include "cloudcore/api/auth.h"

#include <catch2/catch.hpp>

#include "cloudcore/api/continue_token.h"

using namespace gantry::cloud::api;

TEST_CASE("the token file maps bearer tokens to users and groups", "[api][auth]") {
  auto auth = TokenAuthenticator::parse(
      "# comment\n"
      "t-admin,admin,1,\"system:masters\"\n"
      "t-zj,zj,2,\"gantry:province:zhejiang:viewer,gantry:province:jiangsu:operator\"\n"
      "t-plain,plain\n");
  REQUIRE(auth.ok());
  CHECK(auth->size() == 3);
  auto admin = auth->authenticate("Bearer t-admin");
  REQUIRE(admin);
  CHECK(permissions_of(*admin).admin);
  auto zj = auth->authenticate("bearer t-zj");
  REQUIRE(zj);
  auto p = permissions_of(*zj);
  CHECK_FALSE(p.admin);
  CHECK(p.can_read("zhejiang"));
  CHECK_FALSE(p.can_write("zhejiang"));
  CHECK(p.can_write("jiangsu"));
  CHECK_FALSE(p.can_read("anhui"));
  CHECK_FALSE(auth->authenticate("Bearer nope"));
  CHECK_FALSE(auth->authenticate("Basic t-admin"));
  CHECK_FALSE(auth->authenticate(""));
  CHECK_FALSE(permissions_of(*auth->authenticate("Bearer t-plain")).can_read(""));
}

TEST_CASE("a token file with a bad line names the line", "[api][auth]") {
  auto auth = TokenAuthenticator::parse("ok,user\nlonely\n");
  REQUIRE_FALSE(auth.ok());
  CHECK(auth.status().message().find("line 2") != std::string::npos);
  CHECK_FALSE(TokenAuthenticator::parse("a,u\na,v\n").ok());
}

TEST_CASE("continue tokens round-trip and garbage is refused", "[api][continue]") {
  ContinueToken t{42, "/pods/default/web-7"};
  auto back = decode_continue(encode_continue(t));
  REQUIRE(back.ok());
  CHECK(back->revision == 42);
  CHECK(back->last_key == "/pods/default/web-7");
  CHECK_FALSE(decode_continue("not-a-token").ok());
  CHECK_FALSE(decode_continue("").ok());
  CHECK_FALSE(decode_continue("eyJ4IjoxfQ==").ok());  // {"x":1}
}
