#include "cloudcore/api/auth.h"

#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cctype>

#include "common/base/atomic_file.h"

namespace gantry::cloud::api {
namespace {

using common::Code;
using common::make_error;

// One CSV record with double-quoted fields ("a,b" stays one field; "" is a quote).
common::Result<std::vector<std::string>> split_csv(std::string_view line) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (size_t i = 0; i < line.size(); ++i) {
    char c = line[i];
    if (quoted) {
      if (c == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        fields.back() += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        fields.back() += c;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == ',') {
      fields.emplace_back();
    } else {
      fields.back() += c;
    }
  }
  if (quoted) return make_error(Code::kInvalidArgument, "unterminated quote");
  return fields;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.pop_back();
  size_t start = s.find_first_not_of(" \t");
  return start == std::string::npos ? "" : s.substr(start);
}

}  // namespace

Permissions permissions_of(const Identity& identity) {
  Permissions p;
  constexpr std::string_view kPrefix = "gantry:province:";
  for (const auto& g : identity.groups) {
    if (g == "system:masters") {
      p.admin = true;
      continue;
    }
    if (!g.starts_with(kPrefix)) continue;
    std::string_view rest = std::string_view(g).substr(kPrefix.size());
    auto colon = rest.rfind(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string province(rest.substr(0, colon));
    std::string_view role = rest.substr(colon + 1);
    if (role == "viewer" || role == "operator") p.read_provinces.insert(province);
    if (role == "operator") p.write_provinces.insert(province);
  }
  return p;
}

TokenAuthenticator::TokenAuthenticator() : shared_(std::make_shared<Shared>()) {
  shared_->tokens = std::make_shared<const Map>();
}

std::shared_ptr<const TokenAuthenticator::Map> TokenAuthenticator::snapshot() const {
  std::lock_guard lock(shared_->mu);
  return shared_->tokens;
}

size_t TokenAuthenticator::size() const {
  return snapshot()->size();
}

void TokenAuthenticator::replace(const TokenAuthenticator& fresh) {
  auto tokens = fresh.snapshot();
  std::lock_guard lock(shared_->mu);
  shared_->tokens = std::move(tokens);
}

common::Result<TokenAuthenticator> TokenAuthenticator::parse(std::string_view csv) {
  Map tokens;
  size_t line_no = 0;
  while (!csv.empty()) {
    auto nl = csv.find('\n');
    std::string line(csv.substr(0, nl));
    csv.remove_prefix(nl == std::string_view::npos ? csv.size() : nl + 1);
    ++line_no;
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    auto fields = split_csv(line);
    if (!fields.ok()) return fields.status().with_context(fmt::format("line {}", line_no));
    if (fields->size() < 2)
      return make_error(Code::kInvalidArgument, "line {}: expected token,user[,uid[,\"groups\"]]",
                        line_no);
    Identity id;
    std::string token = trim((*fields)[0]);
    id.user = trim((*fields)[1]);
    if (token.empty() || id.user.empty())
      return make_error(Code::kInvalidArgument, "line {}: empty token or user", line_no);
    if (fields->size() > 2) id.uid = trim((*fields)[2]);
    if (fields->size() > 3) {
      std::string_view groups = (*fields)[3];
      size_t start = 0;
      for (size_t i = 0; i <= groups.size(); ++i) {
        if (i == groups.size() || groups[i] == ',') {
          std::string g = trim(std::string(groups.substr(start, i - start)));
          if (!g.empty()) id.groups.push_back(g);
          start = i + 1;
        }
      }
    }
    if (!tokens.emplace(token, std::move(id)).second)
      return make_error(Code::kInvalidArgument, "line {}: the same token appears twice", line_no);
  }
  TokenAuthenticator auth;
  auth.shared_->tokens = std::make_shared<const Map>(std::move(tokens));
  return auth;
}

common::Result<TokenAuthenticator> TokenAuthenticator::load(const std::string& path) {
  auto text = common::read_file(path);
  if (!text.ok()) return text.status();
  auto auth = parse(*text);
  if (!auth.ok()) return auth.status().with_context(path);
  return auth;
}

std::optional<Identity> TokenAuthenticator::authenticate(std::string_view authorization) const {
  constexpr std::string_view kBearer = "Bearer ";
  if (authorization.size() <= kBearer.size()) return std::nullopt;
  // The scheme is case-insensitive.
  for (size_t i = 0; i < kBearer.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) !=
        std::tolower(static_cast<unsigned char>(kBearer[i])))
      return std::nullopt;
  std::string_view token = authorization.substr(kBearer.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  auto tokens = snapshot();
  auto it = tokens->find(token);
  if (it == tokens->end()) return std::nullopt;
  return it->second;
}

TokenFileReloader::TokenFileReloader(std::filesystem::path path, TokenAuthenticator tokens)
    : path_(std::move(path)), tokens_(std::move(tokens)), seen_(signature()) {}

TokenFileReloader::~TokenFileReloader() {
  stop();
}

TokenFileReloader::Signature TokenFileReloader::signature() const {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) return {};
  return {true, static_cast<uintmax_t>(st.st_ino), static_cast<uintmax_t>(st.st_size),
          int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
}

TokenFileReloader::Outcome TokenFileReloader::check(bool force) {
  std::lock_guard lock(check_mu_);
  Signature now = signature();
  if (!force && now == seen_) return Outcome::kUnchanged;
  seen_ = now;
  size_t in_force = tokens_.size();
  auto fresh = TokenAuthenticator::load(path_.string());
  if (!fresh.ok()) {
    spdlog::error("api.token_file: {}; keeping the {} tokens in force", fresh.status().to_string(),
                  in_force);
    return Outcome::kKept;
  }
  // An empty file is far more often a copy in progress or a mistake than a wish to lock everyone
  // out (remove the lines you want gone instead).
  if (fresh->size() == 0) {
    spdlog::error("api.token_file: {} holds no token; keeping the {} tokens in force",
                  path_.string(), in_force);
    return Outcome::kKept;
  }
  tokens_.replace(*fresh);
  spdlog::info("api.token_file: {} reloaded: {} tokens (were {})", path_.string(), fresh->size(),
               in_force);
  return Outcome::kReloaded;
}

void TokenFileReloader::start(std::chrono::milliseconds interval) {
  stop();
  {
    std::lock_guard lock(mu_);
    stopping_ = false;
  }
  thread_ = std::thread([this, interval] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, interval, [this] { return stopping_; })) {
      lock.unlock();
      (void)check();
      lock.lock();
    }
  });
}

void TokenFileReloader::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

}  // namespace gantry::cloud::api
