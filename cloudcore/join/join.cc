#include "cloudcore/join/join.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <utility>

#include "cloudcore/registry/keys.h"
#include "cloudcore/registry/objects.h"
#include "cloudcore/registry/registry.h"
#include "common/base/atomic_file.h"
#include "common/base/json.h"
#include "common/base/uid.h"

namespace gantry::cloud {
namespace {

using json = nlohmann::json;
using common::Request;
using common::Response;

constexpr std::string_view kNodeCnPrefix = "system:node:";
constexpr const char* kHostnameLabel = "kubernetes.io/hostname";

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

Response refuse(int status, std::string_view reason, std::string message) {
  Response r = Response::json(status, dump(json{{"reason", reason}, {"message", message}}));
  return r;
}

std::string trim(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) text.pop_back();
  size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start]))) ++start;
  return text.substr(start);
}

bool is_alnum(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0;
}

// Kubernetes label value: empty, or at most 63 of [A-Za-z0-9._-] starting and ending alphanumeric.
bool is_label_value(std::string_view v) {
  if (v.empty()) return true;
  if (v.size() > 63 || !is_alnum(v.front()) || !is_alnum(v.back())) return false;
  return std::all_of(v.begin(), v.end(),
                     [](char c) { return is_alnum(c) || c == '-' || c == '_' || c == '.'; });
}

// Kubernetes label key: [prefix/]name, prefix a DNS-1123 subdomain, name a non-empty label value.
bool is_label_key(std::string_view k) {
  auto slash = k.find('/');
  std::string_view name = k;
  if (slash != std::string_view::npos) {
    if (!is_dns1123_subdomain(k.substr(0, slash))) return false;
    name = k.substr(slash + 1);
  }
  return !name.empty() && is_label_value(name);
}

// "10.0.0.7:51234" -> "10.0.0.7", "[::1]:51234" -> "::1".
std::string client_ip(const std::string& remote) {
  if (!remote.empty() && remote.front() == '[') {
    auto close = remote.find(']');
    return close == std::string::npos ? remote : remote.substr(1, close - 1);
  }
  auto colon = remote.rfind(':');
  return colon == std::string::npos ? remote : remote.substr(0, colon);
}

bool joined_before(const v1::StoredObject& stored) {
  json obj = json::parse(stored.json(), nullptr, false);
  if (!obj.is_object()) return false;
  auto meta = obj.find("metadata");
  if (meta == obj.end() || !meta->is_object()) return false;
  auto annotations = meta->find("annotations");
  return annotations != meta->end() && annotations->is_object() &&
         annotations->contains(kJoinedAtAnnotation);
}

// "labels a=b, c=d; taints t1; annotations k1": what a prepared node object holds, for the refusal.
std::string prepared_summary(const v1::StoredObject& stored) {
  json obj = json::parse(stored.json(), nullptr, false);
  std::vector<std::string> parts;
  auto keys_of = [&](const json* m, bool values) {
    std::string out;
    if (!m || !m->is_object()) return out;
    for (auto it = m->begin(); it != m->end(); ++it) {
      out += out.empty() ? "" : ", ";
      out += it.key();
      if (values && it->is_string()) out += "=" + it->get<std::string>();
    }
    return out;
  };
  const json* meta = obj.is_object() && obj.contains("metadata") ? &obj["metadata"] : nullptr;
  if (meta && meta->is_object()) {
    if (auto created = meta->find("creationTimestamp");
        created != meta->end() && created->is_string())
      parts.push_back("created " + created->get<std::string>());
    if (auto l = keys_of(meta->contains("labels") ? &(*meta)["labels"] : nullptr, true); !l.empty())
      parts.push_back("labels " + l);
    if (auto a = keys_of(meta->contains("annotations") ? &(*meta)["annotations"] : nullptr, false);
        !a.empty())
      parts.push_back("annotations " + a);
  }
  if (obj.is_object() && obj.contains("spec") && obj["spec"].is_object() &&
      obj["spec"].contains("taints") && obj["spec"]["taints"].is_array()) {
    std::string t;
    for (const auto& taint : obj["spec"]["taints"])
      if (taint.is_object())
        t += (t.empty() ? "" : ", ") + taint.value("key", std::string("?")) + ":" +
             taint.value("effect", std::string());
    if (!t.empty()) parts.push_back("taints " + t);
  }
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : "; ") + p;
  return out.empty() ? "no labels" : out;
}

}  // namespace

JoinRateLimiter::JoinRateLimiter(const common::Clock& clock, TokenBucketSpec per_client,
                                 TokenBucketSpec global, size_t max_clients)
    : clock_(clock), per_client_(per_client), global_(global), max_clients_(max_clients) {
  global_bucket_ = Bucket{global_.burst, clock_.steady_now()};
}

void JoinRateLimiter::refill(Bucket& bucket, const TokenBucketSpec& spec,
                             std::chrono::steady_clock::time_point now) const {
  const double elapsed = std::chrono::duration<double>(now - bucket.updated).count();
  if (elapsed > 0) {
    bucket.tokens = std::min(spec.burst, bucket.tokens + elapsed * spec.per_second);
    bucket.updated = now;
  }
}

std::optional<std::chrono::seconds> JoinRateLimiter::acquire(const std::string& client) {
  const auto now = clock_.steady_now();
  std::lock_guard lock(mu_);
  // Full buckets carry no information: drop them so that many one-off clients cost nothing.
  if (clients_.size() >= max_clients_) {
    for (auto it = clients_.begin(); it != clients_.end();) {
      refill(it->second, per_client_, now);
      it = it->second.tokens >= per_client_.burst ? clients_.erase(it) : std::next(it);
    }
  }
  auto [it, inserted] = clients_.try_emplace(client, Bucket{per_client_.burst, now});
  Bucket& mine = it->second;
  refill(mine, per_client_, now);
  refill(global_bucket_, global_, now);
  auto wait_for = [](const Bucket& b, const TokenBucketSpec& spec) {
    return std::max<int64_t>(1, static_cast<int64_t>(std::ceil((1 - b.tokens) / spec.per_second)));
  };
  if (mine.tokens < 1) return std::chrono::seconds(wait_for(mine, per_client_));
  if (global_bucket_.tokens < 1) return std::chrono::seconds(wait_for(global_bucket_, global_));
  mine.tokens -= 1;
  global_bucket_.tokens -= 1;
  return std::nullopt;
}

common::Result<JoinCredentials> load_join_credentials(const std::filesystem::path& ca_cert,
                                                      const std::filesystem::path& ca_key,
                                                      const std::filesystem::path& signing_key) {
  auto cert_pem = common::read_file(ca_cert);
  if (!cert_pem.ok()) return cert_pem.status().with_context(ca_cert.string());
  auto key_pem = common::read_file(ca_key);
  if (!key_pem.ok()) return key_pem.status().with_context(ca_key.string());
  auto signing = common::read_file(signing_key);
  if (!signing.ok()) return signing.status().with_context(signing_key.string());
  auto ca = common::Certificate::from_pem(*cert_pem);
  if (!ca.ok()) return ca.status().with_context(ca_cert.string());
  auto key = common::PrivateKey::from_pem(*key_pem);
  if (!key.ok()) return key.status().with_context(ca_key.string());
  // gantryadm gettoken uses the trimmed hex text itself as the HMAC key.
  std::string hex = trim(std::move(signing).value());
  if (hex.size() < 32) {
    return common::make_error(common::Code::kFailedPrecondition,
                              "{}: the token-signing key is too short (expected 64 hex characters)",
                              signing_key.string());
  }
  return JoinCredentials{std::move(ca).value(), std::move(key).value(), std::move(hex)};
}

JoinService::JoinService(Store& store, JoinCredentials credentials, const common::Clock& clock,
                         JoinOptions options)
    : store_(store),
      credentials_(std::move(credentials)),
      ca_pem_(credentials_.ca.to_pem()),
      ca_hash_(common::ca_hash(credentials_.ca)),
      clock_(clock),
      options_(options),
      limiter_(clock, options.per_client, options.global) {}

Response JoinService::get_ca(Request&) const {
  Response r;
  r.status = 200;
  r.headers.emplace_back("Content-Type", "application/x-pem-file");
  r.body = ca_pem_;
  return r;
}

Response JoinService::post_certificate(Request& request) {
  const std::string ip = client_ip(request.peer.remote_address);
  if (auto wait = limiter_.acquire(ip)) {
    Response r = refuse(429, "RateLimited",
                        fmt::format("too many join requests; retry in {} s", wait->count()));
    r.headers.emplace_back("Retry-After", std::to_string(wait->count()));
    return r;
  }

  auto parsed = common::parse_json(request.body);
  json body = parsed.ok() ? std::move(*parsed) : json();
  if (!parsed.ok() || !body.is_object()) {
    return refuse(400, "MalformedRequest", "the request body is not a JSON object");
  }
  auto string_field = [&](const char* name) -> std::optional<std::string> {
    auto it = body.find(name);
    if (it == body.end() || it->is_null()) return std::string();
    if (!it->is_string()) return std::nullopt;
    return it->get<std::string>();
  };
  auto csr_field = string_field("csr");
  auto name_field = string_field("node_name");
  auto province_field = string_field("province");
  for (auto [value, name] : {std::pair{&csr_field, "csr"}, std::pair{&name_field, "node_name"},
                             std::pair{&province_field, "province"}}) {
    if (!*value) return refuse(400, "MalformedRequest", fmt::format("{} must be a string", name));
  }
  const std::string& csr = *csr_field;
  const std::string& name = *name_field;
  const std::string& province = *province_field;
  std::map<std::string, std::string> labels;
  if (auto it = body.find("labels"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) {
      return refuse(400, "MalformedRequest", "labels must be an object of strings");
    }
    for (const auto& [k, v] : it->items()) {
      if (!v.is_string()) return refuse(400, "MalformedRequest", "labels must be strings");
      if (!is_label_key(k) || !is_label_value(v.get<std::string>())) {
        return refuse(400, "InvalidLabel",
                      fmt::format("label {}={} is not a valid Kubernetes label (key [prefix/]name, "
                                  "value up to 63 of A-Z a-z 0-9 . _ -)",
                                  k, v.get<std::string>()));
      }
      labels[k] = v.get<std::string>();
    }
  }

  // The token first: without a valid one, nothing else about the request is revealed.
  auto auth = request.header("Authorization");
  constexpr std::string_view kBearer = "Bearer ";
  if (!auth || auth->size() <= kBearer.size() || auth->compare(0, kBearer.size(), kBearer) != 0) {
    return refuse(401, "TokenRequired",
                  "a join token is required (Authorization: Bearer TOKEN); create one on the "
                  "cloud with gantryadm gettoken");
  }
  auto claims = common::verify_join_token(trim(auth->substr(kBearer.size())), ca_hash_,
                                          credentials_.signing_key, clock_.system_now());
  if (!claims.ok()) {
    const auto& s = claims.status();
    switch (s.code()) {
      case common::Code::kDeadlineExceeded:
        return refuse(401, "TokenExpired", "join " + s.message());
      case common::Code::kPermissionDenied:
        return refuse(403, "TokenForAnotherCluster", "join " + s.message());
      case common::Code::kInvalidArgument:
        return refuse(401, "InvalidToken", "join token is malformed: " + s.message());
      case common::Code::kUnauthenticated:
        return refuse(401, "InvalidToken", "join " + s.message());
      default:
        spdlog::error("join: checking a token: {}", s.to_string());
        return refuse(500, "Internal", "cloudcore could not check the token: " + s.message());
    }
  }

  if (name.empty()) return refuse(400, "InvalidNodeName", "node_name is required");
  if (!is_dns1123_subdomain(name)) {
    return refuse(400, "InvalidNodeName",
                  fmt::format("node name '{}' is not valid: use lowercase letters, digits, '-' and "
                              "'.', starting and ending with a letter or digit, at most 253",
                              name));
  }
  if (province.empty()) return refuse(400, "InvalidProvince", "province is required");
  if (!is_label_value(province)) {
    return refuse(400, "InvalidProvince",
                  fmt::format("province '{}' is not valid: up to 63 letters, digits, '-', '_' "
                              "or '.', starting and ending with a letter or digit",
                              province));
  }
  if (csr.empty()) return refuse(400, "InvalidCSR", "csr is required (PEM)");
  auto info = common::read_csr(csr);
  if (!info.ok()) {
    return refuse(400, "InvalidCSR",
                  "the certificate request is not valid: " + info.status().message());
  }
  const std::string expected_cn = std::string(kNodeCnPrefix) + name;
  if (info->common_name != expected_cn) {
    return refuse(400, "InvalidCSR",
                  fmt::format("the certificate request's CN is '{}'; it must be '{}'",
                              info->common_name, expected_cn));
  }
  if (!claims->province.empty() && claims->province != province) {
    return refuse(403, "ProvinceMismatch",
                  fmt::format("this token is for province {}; node {} asked to join province {} "
                              "(use a token for {} or join province {})",
                              claims->province, name, province, province, claims->province));
  }

  const std::string key = keys::object_key(v1::OBJECT_KIND_NODE, "", name);
  const std::string taken =
      fmt::format("node name {} is taken; choose another or delete the node", name);
  auto existing = store_.get(key);
  if (!existing.ok()) {
    spdlog::error("join: reading {}: {}", key, existing.status().to_string());
    return refuse(503, "StoreUnavailable", "cloudcore's store is not available; retry later");
  }
  if (existing->has_value()) {
    v1::StoredObject stored;
    // A node that joined, or that connected with a certificate made another way, owns its name.
    auto status = store_.get(keys::status_key(v1::OBJECT_KIND_NODE, "", name));
    if (!stored.ParseFromString((*existing)->value) || joined_before(stored) ||
        (status.ok() && status->has_value())) {
      return refuse(409, "NodeNameTaken", taken);
    }
    // Created beforehand (through the API) and never joined. Taking it over would hand this node
    // whatever someone prepared under its name (labels, taints, annotations, and through them
    // pods): refused, so that nothing is inherited and nothing is deleted behind anyone's back.
    spdlog::warn(
        "join: refused node {} of province {} from {}: a node object prepared under "
        "that name exists ({})",
        name, province, ip, prepared_summary(stored));
    return refuse(
        409, "NodeNamePrepared",
        fmt::format("node name {} has a node object that no join created ({}); a join never "
                    "takes over what was prepared under its name. An administrator checks it "
                    "and deletes it (kubectl delete node {}), or this node joins under another "
                    "name",
                    name, prepared_summary(stored), name));
  }
  if (options_.pods_bound_to) {
    if (size_t bound = options_.pods_bound_to(name); bound > 0) {
      spdlog::warn("join: refused node {} of province {} from {}: {} pods are bound to that name",
                   name, province, ip, bound);
      return refuse(
          409, "PodsBoundToNodeName",
          fmt::format("{} {} bound to node name {}, which no node holds; a join never inherits "
                      "them. Pods of a deleted node are garbage-collected within a minute; "
                      "otherwise an administrator deletes them (kubectl delete pods -A "
                      "--field-selector spec.nodeName={}); then join again, or join under another "
                      "name",
                      bound, bound == 1 ? "pod is" : "pods are", name, name));
    }
  }
  const Revision expect = 0;  // the name must still be free when the node object is written
  json node = {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", json::object()}};
  const std::string now = common::format_rfc3339(clock_.system_now());
  json& meta = node["metadata"];
  if (!meta.is_object()) meta = json::object();
  meta["name"] = name;
  // A fresh object: every object has a uid (clients key caches and owner references on it).
  meta["uid"] = common::new_uid();
  meta["creationTimestamp"] = now;
  if (!meta["labels"].is_object()) meta["labels"] = json::object();
  for (const auto& [k, v] : labels) meta["labels"][k] = v;
  meta["labels"][kProvinceLabel] = province;
  meta["labels"][kHostnameLabel] = name;
  if (!meta["annotations"].is_object()) meta["annotations"] = json::object();
  meta["annotations"][kJoinedAtAnnotation] = now;

  auto stored = decode_object(v1::OBJECT_KIND_NODE, dump(node));
  if (!stored.ok()) {
    return refuse(400, "InvalidNode", "the node object is not valid: " + stored.status().message());
  }
  common::CertificateSpec spec;
  spec.common_name = expected_cn;
  spec.server_auth = false;
  spec.client_auth = true;
  spec.lifetime = options_.certificate_lifetime;
  spec.backdate = node_certificate_backdate(spec.lifetime);
  spec.now = clock_.system_now();
  // Signed before the write so that a signing failure leaves no node object behind.
  auto cert = common::sign_csr(csr, spec, credentials_.ca, credentials_.ca_key);
  if (!cert.ok()) {
    return refuse(400, "InvalidCSR",
                  "the certificate request cannot be signed: " + cert.status().message());
  }
  auto written = store_.txn({Op::put(key, stored->SerializeAsString(), expect)});
  if (!written.ok()) {
    if (written.status().code() == common::Code::kFailedPrecondition) {
      return refuse(409, "NodeNameTaken", taken);  // another join or a connect won the race
    }
    spdlog::error("join: writing {}: {}", key, written.status().to_string());
    return refuse(503, "StoreUnavailable", "cloudcore's store is not available; retry later");
  }
  spdlog::info("join: node {} joined province {} from {} (certificate until {}, token {})", name,
               province, ip, common::format_rfc3339(cert->not_after()), claims->id);
  return Response::json(200, dump(json{{"certificate", cert->to_pem()}, {"ca", ca_pem_}}));
}

std::chrono::seconds node_certificate_backdate(std::chrono::seconds lifetime) {
  return std::min(std::chrono::seconds(300), lifetime / 10);
}

NodeCertificateSigner::NodeCertificateSigner(JoinCredentials credentials,
                                             std::chrono::seconds lifetime,
                                             const common::Clock& clock)
    : credentials_(std::move(credentials)), lifetime_(lifetime), clock_(clock) {}

common::Result<common::Certificate> NodeCertificateSigner::sign(const std::string& node,
                                                                std::string_view csr_pem) const {
  if (csr_pem.empty()) return common::make_error(Code::kInvalidArgument, "the request has no CSR");
  auto info = common::read_csr(csr_pem);
  if (!info.ok()) {
    return common::make_error(Code::kInvalidArgument, "the certificate request is not valid: {}",
                              info.status().message());
  }
  const std::string expected_cn = std::string(kNodeCnPrefix) + node;
  if (info->common_name != expected_cn) {
    return common::make_error(Code::kInvalidArgument,
                              "the certificate request's CN is '{}'; this connection is node {}, "
                              "so it must be '{}'",
                              info->common_name, node, expected_cn);
  }
  common::CertificateSpec spec;
  spec.common_name = expected_cn;
  spec.server_auth = false;
  spec.client_auth = true;
  spec.lifetime = lifetime_;
  spec.backdate = node_certificate_backdate(lifetime_);
  spec.now = clock_.system_now();
  auto cert =
      common::issue_certificate(info->public_key.get(), spec, credentials_.ca, credentials_.ca_key);
  if (!cert.ok()) {
    return common::make_error(Code::kInvalidArgument,
                              "the certificate request cannot be signed: {}",
                              cert.status().message());
  }
  return cert;
}

common::Router JoinService::router() {
  common::Router router;
  router.add("GET", "/ca.crt", [this](Request& r) { return get_ca(r); });
  router.add("POST", "/v1/certificates", [this](Request& r) { return post_certificate(r); });
  router.set_fallback([](Request& r) {
    return refuse(
        404, "NotFound",
        fmt::format("{} is not a join endpoint (GET /ca.crt, POST /v1/certificates)", r.path));
  });
  return router;
}

common::Result<std::unique_ptr<JoinServer>> JoinServer::start(
    common::EventLoop& loop, std::shared_ptr<common::TlsContext> tls, Store& store,
    JoinCredentials credentials, const common::Clock& clock, JoinOptions options,
    common::HttpServerOptions http) {
  std::unique_ptr<JoinServer> server(new JoinServer());
  server->service_ = std::make_unique<JoinService>(store, std::move(credentials), clock, options);
  // A CSR and a token are small: a tight body limit costs an attacker's flood its bandwidth.
  http.max_body_bytes = std::min<size_t>(http.max_body_bytes, size_t{64} * 1024);
  GANTRY_ASSIGN_OR_RETURN(server->server_, common::HttpServer::start(loop, std::move(tls), http,
                                                                     server->service_->router()));
  return server;
}

JoinServer::~JoinServer() {
  stop();
}

uint16_t JoinServer::port() const {
  return server_ ? server_->port() : 0;
}

void JoinServer::stop() {
  if (server_) server_->stop();
}

}  // namespace gantry::cloud
