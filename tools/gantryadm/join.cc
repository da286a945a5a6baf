// <utility> first: Boost 1.74's Asio headers use std::exchange without including it.
#include "tools/gantryadm/join.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <cctype>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <system_error>
#include <utility>

#include "common/base/address.h"
#include "common/base/atomic_file.h"
#include "common/base/names.h"
#include "common/base/version.h"
#include "common/net/tls.h"
#include "common/pki/pki.h"
#include "edgecore/runtime/registry_mirrors.h"
#include "tools/gantryadm/edgecore_unit.h"

namespace gantry::adm {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace fs = std::filesystem;
using asio::ip::tcp;
using common::Code;
using common::make_error;
using common::Result;
using common::Status;
using json = nlohmann::json;

constexpr uint16_t kJoinPort = 10002;
constexpr uint16_t kTunnelPort = 10000;

struct HttpsResponse {
  int status = 0;
  std::string body;
  std::string retry_after;
};

// Runs one asynchronous operation to completion on `ioc`; the stream's expiry bounds it.
template <typename Start>
beast::error_code run_op(asio::io_context& ioc, Start start) {
  beast::error_code result = asio::error::would_block;
  start([&result](beast::error_code ec, auto&&...) { result = ec; });
  ioc.restart();
  ioc.run();
  return result;
}

// One HTTPS request on a fresh connection. `tls` decides whether the server is verified.
Result<HttpsResponse> https_request(const common::HostPort& server, common::TlsContext& tls,
                                    http::verb method, const std::string& target,
                                    const std::string& body, const std::string& bearer,
                                    std::chrono::milliseconds timeout) {
  const std::string where = server.to_string();
  asio::io_context ioc;
  tcp::resolver resolver(ioc);
  beast::error_code ec;
  auto endpoints = resolver.resolve(server.host, std::to_string(server.port), ec);
  if (ec) {
    return make_error(Code::kUnavailable,
                      "cannot reach cloudcore at {}: resolving {}: {} (check --cloudcore)", where,
                      server.host, ec.message());
  }
  beast::ssl_stream<beast::tcp_stream> stream(ioc, tls.native());
  beast::get_lowest_layer(stream).expires_after(timeout);
  ec = run_op(ioc, [&](auto handler) {
    beast::get_lowest_layer(stream).async_connect(endpoints, std::move(handler));
  });
  if (ec) {
    std::vector<std::string> tried;
    for (const auto& e : endpoints) {
      const auto a = e.endpoint().address();
      tried.push_back(a.is_v6() ? fmt::format("[{}]:{}", a.to_string(), e.endpoint().port())
                                : fmt::format("{}:{}", a.to_string(), e.endpoint().port()));
    }
    return make_error(Code::kUnavailable,
                      "cannot reach cloudcore at {} (tried {}): {}; check that cloudcore runs "
                      "with a join section in its config and that TCP port {} is open between "
                      "this machine and it",
                      where, fmt::join(tried, ", "),
                      ec == beast::error::timeout ? "timed out" : ec.message(), server.port);
  }
  GANTRY_RETURN_IF_ERROR(tls.prepare_client(stream.native_handle(), server.host));
  beast::get_lowest_layer(stream).expires_after(timeout);
  ec = run_op(ioc, [&](auto handler) {
    stream.async_handshake(asio::ssl::stream_base::client, std::move(handler));
  });
  if (ec) {
    return make_error(
        Code::kUnavailable, "TLS with cloudcore at {} failed: {}", where,
        common::describe_tls_failure(stream.native_handle(),
                                     ec == beast::error::timeout ? "timed out" : ec.message()));
  }
  http::request<http::string_body> req{method, target, 11};
  req.set(http::field::host, where);
  req.set(http::field::user_agent, std::string("gantryadm/") + common::kVersion);
  if (!bearer.empty()) req.set(http::field::authorization, "Bearer " + bearer);
  if (method == http::verb::post) {
    req.set(http::field::content_type, "application/json");
    req.body() = body;
  }
  req.prepare_payload();
  beast::get_lowest_layer(stream).expires_after(timeout);
  ec = run_op(ioc, [&](auto handler) { http::async_write(stream, req, std::move(handler)); });
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(uint64_t{1024} * 1024);
  if (!ec) {
    beast::get_lowest_layer(stream).expires_after(timeout);
    ec = run_op(
        ioc, [&](auto handler) { http::async_read(stream, buffer, parser, std::move(handler)); });
  }
  if (ec) {
    return make_error(Code::kUnavailable, "talking to cloudcore at {}: {}", where,
                      ec == beast::error::timeout ? "timed out" : ec.message());
  }
  auto& res = parser.get();
  HttpsResponse out;
  out.status = static_cast<int>(res.result_int());
  out.body = std::move(res.body());
  if (auto it = res.find(http::field::retry_after); it != res.end())
    out.retry_after = std::string(it->value());
  // The connection is dropped without a TLS close_notify: one request per connection, and the
  // response is complete.
  return out;
}

std::string to_lower(std::string text) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string yaml_quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

bool exists_no_follow(const fs::path& p) {
  std::error_code ec;
  return fs::symlink_status(p, ec).type() != fs::file_type::not_found && !ec;
}

// The edgecore binary: next to gantryadm, in the build tree's layout, on PATH, or the
// installed default.
std::string find_edgecore() {
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    for (const fs::path& candidate :
         {self.parent_path() / "edgecore",
          self.parent_path().parent_path().parent_path() / "edgecore" / "edgecore"}) {
      if (::access(candidate.c_str(), X_OK) == 0) return candidate.lexically_normal().string();
    }
  }
  if (const char* path = std::getenv("PATH")) {
    std::string_view rest = path;
    while (!rest.empty()) {
      auto colon = rest.find(':');
      fs::path candidate = fs::path(std::string(rest.substr(0, colon))) / "edgecore";
      if (!candidate.parent_path().empty() && ::access(candidate.c_str(), X_OK) == 0)
        return candidate.string();
      if (colon == std::string_view::npos) break;
      rest.remove_prefix(colon + 1);
    }
  }
  return "/usr/local/bin/edgecore";
}

// edgecore.yaml's registry section for --registry-mirror; "" when none was given.
std::string registry_yaml(const JoinOptions& options) {
  if (options.registry_mirrors.empty() && options.registry_config_path.empty()) return "";
  std::string out =
      "# Registry mirrors, tried in order before the registry itself (gantryadm join "
      "--registry-mirror).\n"
      "registry:\n";
  if (!options.registry_config_path.empty()) {
    out += fmt::format("  config_path: {}\n", yaml_quote(options.registry_config_path));
  }
  out += options.registry_mirrors.empty() ? "  mirrors: []\n" : "  mirrors:\n";
  for (const std::string& m : options.registry_mirrors) {
    out += fmt::format("    - {}\n", yaml_quote(m));
  }
  return out;
}

std::string edgecore_yaml(const JoinOptions& options, const fs::path& dir,
                          const std::string& tunnel) {
  auto p = [&](std::string_view rel) { return yaml_quote((dir / rel).string()); };
  return fmt::format(
      "# edgecore configuration, written by gantryadm join ({}).\n"
      "# Every option, with its default and range, is described in deploy/edgecore.yaml.\n"
      "node_name: {}\n"
      "data_dir: {}\n"
      "# cloudcore's tunnel (wss://ADDRESS/v1/tunnel).\n"
      "cloudcore: {}\n"
      "tls:\n"
      "  cert: {}\n"
      "  key: {}\n"
      "  ca: {}\n"
      "# The container runtime (CRI) edgecore runs pods with.\n"
      "runtime:\n"
      "  endpoint: {}\n"
      "{}"
      "log:\n"
      "  level: info\n"
      "  format: text\n",
      common::kVersion, yaml_quote(options.node_name), yaml_quote(dir.string()), yaml_quote(tunnel),
      p("pki/node.crt"), p("pki/node.key"), p("pki/ca.crt"), yaml_quote(options.runtime_endpoint),
      registry_yaml(options));
}

// A refusal from cloudcore: its JSON message as is, or the status line when there is none.
Status refusal(const HttpsResponse& r) {
  json body = json::parse(r.body, nullptr, false);
  std::string message = body.is_object() ? body.value("message", "") : "";
  std::string reason = body.is_object() ? body.value("reason", "") : "";
  if (message.empty()) message = fmt::format("HTTP {}: {}", r.status, r.body.substr(0, 200));
  Code code = Code::kFailedPrecondition;
  switch (r.status) {
    case 400:
      code = Code::kInvalidArgument;
      break;
    case 401:
      code = reason == "TokenExpired" ? Code::kDeadlineExceeded : Code::kUnauthenticated;
      break;
    case 403:
      code = Code::kPermissionDenied;
      break;
    case 409:
      code = Code::kAlreadyExists;
      break;
    case 429:
      code = Code::kResourceExhausted;
      break;
    default:
      code = r.status >= 500 ? Code::kUnavailable : Code::kFailedPrecondition;
  }
  return make_error(code, "cloudcore refused the join: {}", message);
}

// Moves staging/{pki,edgecore.yaml} into dir; on failure puts back what was moved.
Status move_into_place(const fs::path& staging, const fs::path& dir) {
  std::error_code ec;
  fs::rename(staging / "pki", dir / "pki", ec);
  if (ec)
    return make_error(Code::kInternal, "moving {} into place: {}", (dir / "pki").string(),
                      ec.message());
  fs::rename(staging / "edgecore.yaml", dir / "edgecore.yaml", ec);
  if (ec) {
    std::error_code ignored;
    fs::rename(dir / "pki", staging / "pki", ignored);
    return make_error(Code::kInternal, "moving {} into place: {}", (dir / "edgecore.yaml").string(),
                      ec.message());
  }
  return common::ok_status();
}

std::string shell_quote(const std::string& text) {
  std::string out = "'";
  for (char c : text) {
    if (c == '\'')
      out += "'\\''";
    else
      out += c;
  }
  return out + "'";
}

// Installs and starts the systemd unit; returns what happened, for the operator.
std::string install_unit(const JoinOptions& options, const std::string& edgecore,
                         const fs::path& config) {
  std::string unit(kEdgecoreUnit);
  const std::string exec =
      "ExecStart=/usr/local/bin/edgecore --config "
      "/var/lib/gantry/edgecore/edgecore.yaml";
  if (auto at = unit.find(exec); at != std::string::npos) {
    unit.replace(at, exec.size(),
                 fmt::format("ExecStart={} --config {}", edgecore, config.string()));
  }
  const fs::path path = options.systemd_unit_dir / "edgecore.service";
  if (auto s = common::write_file_atomic(path, unit, 0644); !s.ok()) {
    return fmt::format(
        "could not install the systemd unit ({}); start edgecore by hand:\n  {} --config {}\n",
        s.message(), edgecore, config.string());
  }
  const int rc = std::system("systemctl daemon-reload && systemctl enable --now edgecore");
  if (rc != 0) {
    return fmt::format(
        "installed {} but `systemctl enable --now edgecore` failed (status {}); see "
        "`systemctl status edgecore`\n",
        path.string(), rc);
  }
  return fmt::format(
      "installed {} and started it: systemctl status edgecore, journalctl -u edgecore\n",
      path.string());
}

}  // namespace

Result<JoinResult> join(const JoinOptions& options) {
  // Everything the command line gives is checked before any network traffic.
  if (options.data_dir.empty()) return make_error(Code::kInvalidArgument, "--data-dir is empty");
  if (!common::is_dns1123_subdomain(options.node_name)) {
    return make_error(Code::kInvalidArgument,
                      "--node-name '{}' is not valid: use lowercase letters, digits, '-' and '.', "
                      "starting and ending with a letter or digit, at most 253",
                      options.node_name);
  }
  if (options.province.empty()) return make_error(Code::kInvalidArgument, "--province is empty");
  if (options.runtime_endpoint.rfind("unix://", 0) != 0) {
    return make_error(Code::kInvalidArgument,
                      "--runtime-endpoint '{}' must be a unix socket URL, e.g. "
                      "unix:///run/containerd/containerd.sock",
                      options.runtime_endpoint);
  }
  for (const std::string& m : options.registry_mirrors) {
    if (auto parsed = edge::parse_registry_mirror(m); !parsed.ok()) {
      return make_error(Code::kInvalidArgument, "--registry-mirror {}", parsed.status().message());
    }
  }
  json labels = json::object();
  for (const std::string& kv : options.labels) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) {
      return make_error(Code::kInvalidArgument, "--labels: '{}' is not key=value", kv);
    }
    labels[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  auto parsed = common::parse_join_token(options.token);
  if (!parsed.ok()) {
    return make_error(Code::kInvalidArgument,
                      "--token is not a join token ({}); copy it whole from `gantryadm gettoken`",
                      parsed.status().message());
  }
  const std::string token_ca_hash = to_lower(parsed->first);
  auto join_address = common::parse_host_port(options.cloudcore, kJoinPort);
  if (!join_address.ok()) {
    return make_error(Code::kInvalidArgument, "--cloudcore '{}': {} (expected HOST:{})",
                      options.cloudcore, join_address.status().message(), kJoinPort);
  }
  if (join_address->port == 0) {
    return make_error(Code::kInvalidArgument, "--cloudcore '{}': the port is 0", options.cloudcore);
  }
  const std::string tunnel = options.tunnel_address.empty()
                                 ? common::HostPort{join_address->host, kTunnelPort}.to_string()
                                 : options.tunnel_address;
  if (auto t = common::parse_host_port(tunnel, kTunnelPort); !t.ok()) {
    return make_error(Code::kInvalidArgument, "--tunnel-address '{}': {}", tunnel,
                      t.status().message());
  }

  std::error_code ec;
  const fs::path dir = fs::absolute(options.data_dir, ec).lexically_normal();
  if (ec) return make_error(Code::kInvalidArgument, "--data-dir: {}", ec.message());
  if (exists_no_follow(dir) && !fs::is_directory(dir)) {
    return make_error(Code::kFailedPrecondition, "--data-dir {} exists and is not a directory",
                      dir.string());
  }
  for (const char* entry : {"edgecore.yaml", "pki"}) {
    if (exists_no_follow(dir / entry)) {
      return make_error(Code::kAlreadyExists,
                        "{} already has {}: this machine has joined before. To join again, run "
                        "`gantryadm reset --data-dir {}` first, or choose another --data-dir",
                        dir.string(), entry, dir.string());
    }
  }

  // 1. The CA, fetched without verification (we have no CA yet) and checked against the hash
  //    the token carries: a man in the middle cannot produce a CA with that hash.
  common::TlsOptions insecure;
  insecure.verify_peer = false;
  GANTRY_ASSIGN_OR_RETURN(auto insecure_tls,
                          common::TlsContext::create(common::TlsRole::kClient, insecure));
  GANTRY_ASSIGN_OR_RETURN(HttpsResponse ca_response,
                          https_request(*join_address, *insecure_tls, http::verb::get, "/ca.crt",
                                        "", "", options.timeout));
  if (ca_response.status != 200) return refusal(ca_response);
  auto ca = common::Certificate::from_pem(ca_response.body);
  if (!ca.ok() || common::ca_hash(*ca) != token_ca_hash) {
    return make_error(Code::kPermissionDenied,
                      "the CA served by {} does not match the token: possible interception; "
                      "check the address or get a new token",
                      join_address->to_string());
  }
  const std::string ca_pem = ca->to_pem();

  // 2. From here on cloudcore is verified against that CA.
  common::TlsOptions verified;
  verified.ca_pem = ca_pem;
  verified.verify_peer = true;
  GANTRY_ASSIGN_OR_RETURN(auto tls, common::TlsContext::create(common::TlsRole::kClient, verified));
  GANTRY_ASSIGN_OR_RETURN(common::PrivateKey key, common::PrivateKey::generate());
  GANTRY_ASSIGN_OR_RETURN(std::string csr,
                          common::create_csr(key, "system:node:" + options.node_name));
  json request = {{"csr", csr},
                  {"node_name", options.node_name},
                  {"province", options.province},
                  {"labels", labels}};
  GANTRY_ASSIGN_OR_RETURN(
      HttpsResponse response,
      https_request(*join_address, *tls, http::verb::post, "/v1/certificates",
                    request.dump(-1, ' ', false, json::error_handler_t::replace), options.token,
                    options.timeout));
  if (response.status != 200) return refusal(response);
  json body = json::parse(response.body, nullptr, false);
  if (!body.is_object() || !body.contains("certificate") || !body["certificate"].is_string()) {
    return make_error(Code::kInternal, "cloudcore's answer has no certificate: {}",
                      response.body.substr(0, 200));
  }
  auto cert = common::Certificate::from_pem(body["certificate"].get<std::string>());
  if (!cert.ok()) return cert.status().with_context("the certificate cloudcore returned");
  if (auto s = common::verify_certificate(*cert, {*ca}, std::chrono::system_clock::now());
      !s.ok()) {
    return s.with_context("the certificate cloudcore returned");
  }

  // 3. Files: staged in DIR/.join-tmp, moved into place together.
  const bool created_dir = !exists_no_follow(dir);
  fs::create_directories(dir, ec);
  if (ec) return make_error(Code::kInternal, "creating {}: {}", dir.string(), ec.message());
  const fs::path staging = dir / ".join-tmp";
  auto clean_up = [&](bool failed) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    if (failed && created_dir) fs::remove(dir, ignored);  // only if still empty
  };
  clean_up(false);
  fs::create_directories(staging / "pki", ec);
  Status status =
      ec ? make_error(Code::kInternal, "creating {}: {}", staging.string(), ec.message())
         : common::ok_status();
  if (status.ok()) ::chmod((staging / "pki").c_str(), 0700);
  if (status.ok())
    status = common::write_file_atomic(staging / "pki" / "node.key", key.to_pem(), 0600);
  if (status.ok())
    status = common::write_file_atomic(staging / "pki" / "node.crt", cert->to_pem(), 0644);
  if (status.ok()) status = common::write_file_atomic(staging / "pki" / "ca.crt", ca_pem, 0644);
  const fs::path config = dir / "edgecore.yaml";
  if (status.ok()) {
    status = common::write_file_atomic(staging / "edgecore.yaml",
                                       edgecore_yaml(options, dir, tunnel), 0644);
  }
  if (status.ok()) status = move_into_place(staging, dir);
  if (!status.ok()) {
    clean_up(true);
    return make_error(status.code(),
                      "node {} joined cloudcore, but writing its files failed: {}. Delete the "
                      "node in cloudcore and join again",
                      options.node_name, status.message());
  }
  clean_up(false);

  // 4. Running edgecore.
  const std::string edgecore = find_edgecore();
  std::string text = fmt::format(
      "Node {} joined province {} (certificate valid until {}). Wrote in {}:\n"
      "  pki/node.key, pki/node.crt, pki/ca.crt, edgecore.yaml (tunnel to {})\n",
      options.node_name, options.province, common::format_rfc3339(cert->not_after()), dir.string(),
      tunnel);
  if (fs::is_directory(options.systemd_marker, ec)) {
    text += install_unit(options, edgecore, config);
  } else {
    text += fmt::format(
        "systemd is not running here; start edgecore with:\n"
        "  nohup {} --config {} >>{} 2>&1 & echo $! >{}\n"
        "(`gantryadm reset --data-dir {}` stops it through edgecore.pid)\n",
        shell_quote(edgecore), shell_quote(config.string()),
        shell_quote((dir / "edgecore.log").string()), shell_quote((dir / "edgecore.pid").string()),
        shell_quote(dir.string()));
  }
  return JoinResult{text};
}

}  // namespace gantry::adm
