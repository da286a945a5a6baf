// Bearer-token authentication from a Kubernetes-style token file, and the roles Gantry gives
// groups: system:masters is admin; gantry:province:P:viewer / gantry:province:P:operator read /
// read-write the nodes of province P and the pods bound to them.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
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

class TokenAuthenticator {
 public:
  // CSV lines `token,user,uid,"group1,group2"` (the last two optional); '#' starts a comment.
  // Errors name the line.
  static common::Result<TokenAuthenticator> parse(std::string_view csv);
  static common::Result<TokenAuthenticator> load(const std::string& path);

  // From an Authorization header value ("Bearer <token>"); nullopt when absent or unknown.
  std::optional<Identity> authenticate(std::string_view authorization) const;
  size_t size() const { return tokens_.size(); }

 private:
  std::map<std::string, Identity, std::less<>> tokens_;
};

}  // namespace gantry::cloud::api
