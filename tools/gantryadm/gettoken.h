// `gantryadm gettoken`: a join token signed with the data dir's token-signing key.
#pragma once

#include <chrono>
#include <filesystem>
#include <string>

#include "common/base/status.h"

namespace gantry::adm {

inline constexpr std::chrono::milliseconds kMinTokenTtl = std::chrono::minutes(1);
inline constexpr std::chrono::milliseconds kMaxTokenTtl = std::chrono::hours(8760);

struct GetTokenOptions {
  std::filesystem::path data_dir;
  std::string ttl = "24h";  // parse_duration syntax, kMinTokenTtl..kMaxTokenTtl
  std::string province;     // empty: the token joins any province
  std::chrono::system_clock::time_point now = std::chrono::system_clock::now();
};

struct JoinToken {
  std::string token;
  std::chrono::system_clock::time_point expires;
};

// kInvalidArgument for a bad ttl or province (the message gives the allowed form), kNotFound when
// the data dir was not initialised (the message says to run `gantryadm init`).
common::Result<JoinToken> get_token(const GetTokenOptions& options);

}  // namespace gantry::adm
