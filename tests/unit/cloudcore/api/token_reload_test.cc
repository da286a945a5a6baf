#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "cloudcore/api/auth.h"
#include "common/base/atomic_file.h"
#include "tests/support/test_support.h"

using namespace gantry::cloud::api;
using gantry::test::eventually;
using gantry::test::TempDir;
using Outcome = TokenFileReloader::Outcome;

namespace {

void write(const std::filesystem::path& path, const std::string& text) {
  REQUIRE(gantry::common::write_file_atomic(path, text, 0600).ok());
}

struct Loaded {
  TempDir dir;
  std::filesystem::path path = dir / "tokens.csv";
  TokenAuthenticator tokens;
  Loaded() {
    write(path, "old,alice,1,\"system:masters\"\nkept,bob,2\n");
    auto loaded = TokenAuthenticator::load(path.string());
    REQUIRE(loaded.ok());
    tokens = *loaded;
  }
};

}  // namespace

TEST_CASE("a changed token file replaces the tokens every copy of the authenticator answers from",
          "[api][auth][reload]") {
  Loaded f;
  TokenAuthenticator server_copy = f.tokens;  // what the API server holds
  TokenFileReloader reloader(f.path, f.tokens);
  CHECK(reloader.check() == Outcome::kUnchanged);
  write(f.path, "new,carol,3,\"gantry:province:zhejiang:viewer\"\nkept,bob,2\n");
  CHECK(reloader.check() == Outcome::kReloaded);
  CHECK_FALSE(server_copy.authenticate("Bearer old"));
  auto carol = server_copy.authenticate("Bearer new");
  REQUIRE(carol);
  CHECK(carol->user == "carol");
  CHECK(server_copy.authenticate("Bearer kept"));
  CHECK(reloader.check() == Outcome::kUnchanged);
}

TEST_CASE("a bad, empty or missing token file keeps the tokens in force", "[api][auth][reload]") {
  Loaded f;
  TokenFileReloader reloader(f.path, f.tokens);
  write(f.path, "new,carol\nlonely\n");  // line 2 has no user
  CHECK(reloader.check() == Outcome::kKept);
  CHECK(f.tokens.authenticate("Bearer old"));
  CHECK_FALSE(f.tokens.authenticate("Bearer new"));
  write(f.path, "# all gone\n");
  CHECK(reloader.check() == Outcome::kKept);
  CHECK(f.tokens.authenticate("Bearer old"));
  std::filesystem::remove(f.path);
  CHECK(reloader.check() == Outcome::kKept);
  CHECK(f.tokens.authenticate("Bearer old"));
  // Fixed: taken.
  write(f.path, "new,carol\n");
  CHECK(reloader.check() == Outcome::kReloaded);
  CHECK(f.tokens.authenticate("Bearer new"));
  CHECK_FALSE(f.tokens.authenticate("Bearer old"));
}

TEST_CASE("a forced check (SIGHUP) reads the file even when it looks unchanged",
          "[api][auth][reload]") {
  Loaded f;
  TokenFileReloader reloader(f.path, f.tokens);
  CHECK(reloader.check(/*force=*/true) == Outcome::kReloaded);
  CHECK(f.tokens.authenticate("Bearer old"));
}

TEST_CASE("the reloader's thread picks up a change without being asked", "[api][auth][reload]") {
  Loaded f;
  TokenFileReloader reloader(f.path, f.tokens);
  reloader.start(std::chrono::milliseconds(20));
  write(f.path, "new,carol\n");
  CHECK(eventually([&] { return f.tokens.authenticate("Bearer new").has_value(); }));
  reloader.stop();
  reloader.stop();
}

TEST_CASE("requests authenticated during reloads never fail for a token in both files",
          "[api][auth][reload]") {
  Loaded f;
  TokenFileReloader reloader(f.path, f.tokens);
  std::atomic<bool> done{false};
  std::atomic<int> failures{0}, checks{0};
  std::thread client([&] {
    while (!done) {
      if (!f.tokens.authenticate("Bearer kept")) ++failures;
      ++checks;
    }
  });
  for (int i = 0; i < 50; ++i) {
    write(f.path, "kept,bob,2\nv" + std::to_string(i) + ",x\n");
    CHECK(reloader.check() == Outcome::kReloaded);
  }
  done = true;
  client.join();
  CHECK(failures == 0);
  CHECK(checks > 0);
  CHECK(f.tokens.authenticate("Bearer v49"));
}
