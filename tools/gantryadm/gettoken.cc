#include "tools/gantryadm/gettoken.h"

#include <cctype>

#include "common/base/atomic_file.h"
#include "common/base/config.h"
#include "common/pki/pki.h"
#include "tools/gantryadm/init.h"

namespace gantry::adm {
namespace {

using common::Code;
using common::make_error;

std::string trim(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

// Provinces are Kubernetes label values (topology.gantry.io/province): at most 63 characters of
// [A-Za-z0-9._-], starting and ending with a letter or digit.
bool is_label_value(const std::string& text) {
  if (text.empty() || text.size() > 63) return false;
  if (!std::isalnum(static_cast<unsigned char>(text.front())) ||
      !std::isalnum(static_cast<unsigned char>(text.back())))
    return false;
  for (char c : text) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.')
      return false;
  }
  return true;
}

}  // namespace

common::Result<JoinToken> get_token(const GetTokenOptions& options) {
  auto ttl = common::parse_duration(options.ttl);
  if (!ttl.ok()) return make_error(Code::kInvalidArgument, "--ttl: {}", ttl.status().message());
  if (*ttl < kMinTokenTtl || *ttl > kMaxTokenTtl) {
    return make_error(Code::kInvalidArgument,
                      "--ttl: '{}' is out of range: a join token lives between {} and {} (8760h "
                      "is one year)",
                      options.ttl, common::format_duration(kMinTokenTtl),
                      common::format_duration(kMaxTokenTtl));
  }
  if (!options.province.empty() && !is_label_value(options.province)) {
    return make_error(Code::kInvalidArgument,
                      "--province: '{}' is not a valid province name (up to 63 letters, digits, "
                      "'-', '_' or '.', starting and ending with a letter or digit)",
                      options.province);
  }

  auto ca_pem = common::read_file(options.data_dir / kCaCert);
  auto key = common::read_file(options.data_dir / kTokenSigningKey);
  for (const auto* r : {&ca_pem, &key}) {
    if (r->ok()) continue;
    if (r->status().code() == Code::kNotFound) {
      return make_error(Code::kNotFound,
                        "{} has no {} and {}: it is not a cloudcore data dir made by `gantryadm "
                        "init` (run `gantryadm init --data-dir {} --advertise-address ADDR` "
                        "first, or give the --data-dir that init used)",
                        options.data_dir.string(), kCaCert, kTokenSigningKey,
                        options.data_dir.string());
    }
    return r->status();
  }
  auto ca = common::Certificate::from_pem(*ca_pem);
  if (!ca.ok()) return ca.status().with_context((options.data_dir / kCaCert).string());
  const std::string signing_key = trim(*key);
  if (signing_key.size() < 32) {
    return make_error(Code::kFailedPrecondition, "{}: the token-signing key is too short",
                      (options.data_dir / kTokenSigningKey).string());
  }

  JoinToken out;
  out.expires = options.now + std::chrono::duration_cast<std::chrono::system_clock::duration>(*ttl);
  common::JoinTokenClaims claims{.expires = out.expires, .province = options.province, .id = {}};
  out.token = common::make_join_token(common::ca_hash(*ca), claims, signing_key);
  return out;
}

}  // namespace gantry::adm
