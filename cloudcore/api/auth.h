// Bearer-token authentication from a Kubernetes-style token file, and the roles Gantry gives
// groups: system:masters is admin; gantry:province:P:viewer / gantry:province:P:operator read /
// read-write the nodes of province P and the pods bound to them.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/base/status.h"

namespace gantry::cloud::api {

struct Identity {
  std::string user;
  std::string uid;
  std::vector<std::string> groups;
};

struct Permissions {
  bool admin = false;
  std::set<std::string> read_provinces;  // includes the write ones
  std::set<std::string> write_provinces;

  bool can_read(const std::string& province) const {
    return admin || read_provinces.count(province);
  }
  bool can_write(const std::string& province) const {
    return admin || write_provinces.count(province);
  }
  bool any_write() const { return admin || !write_provinces.empty(); }
};

Permissions permissions_of(const Identity& identity);

// A handle on one token set: copies share it, so that replace() through the reloader's copy is
// seen by the API server's copy at once. authenticate() and replace() may run concurrently; a
// request is authenticated entirely against either the old or the new set.
class TokenAuthenticator {
 public:
  TokenAuthenticator();  // no tokens
  // CSV lines `token,user,uid,"group1,group2"` (the last two optional); '#' starts a comment.
  // Errors name the line.
  static common::Result<TokenAuthenticator> parse(std::string_view csv);
  static common::Result<TokenAuthenticator> load(const std::string& path);

  // From an Authorization header value ("Bearer <token>"); nullopt when absent or unknown.
  std::optional<Identity> authenticate(std::string_view authorization) const;
  size_t size() const;
  // Every copy of this handle answers from `fresh`'s tokens from now on.
  void replace(const TokenAuthenticator& fresh);

 private:
  using Map = std::map<std::string, Identity, std::less<>>;
  struct Shared {
    mutable std::mutex mu;
    std::shared_ptr<const Map> tokens;
  };
  std::shared_ptr<const Map> snapshot() const;
  std::shared_ptr<Shared> shared_;
};

// Reloads the token file into a TokenAuthenticator when the file changes (its inode, size or
// modification time: an edit in place, a rename over it, a Kubernetes secret's symlink swap), and
// on demand (SIGHUP). A file that cannot be read, does not parse or holds no token keeps the
// tokens in force, and the reason is logged once per version of the file.
class TokenFileReloader {
 public:
  enum class Outcome { kUnchanged, kReloaded, kKept };

  // `tokens` was loaded from `path`; the file as it is now counts as seen.
  TokenFileReloader(std::filesystem::path path, TokenAuthenticator tokens);
  ~TokenFileReloader();
  TokenFileReloader(const TokenFileReloader&) = delete;
  TokenFileReloader& operator=(const TokenFileReloader&) = delete;

  // Looks at the file now; `force` reads it even when it looks unchanged.
  Outcome check(bool force = false);
  // Calls check() every `interval` on a thread of its own until stop().
  void start(std::chrono::milliseconds interval);
  void stop();  // idempotent

 private:
  struct Signature {
    bool exists = false;
    uintmax_t inode = 0, size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const Signature&) const = default;
  };
  Signature signature() const;

  std::filesystem::path path_;
  TokenAuthenticator tokens_;
  std::mutex check_mu_;  // one check at a time (the timer thread and SIGHUP)
  Signature seen_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace gantry::cloud::api
