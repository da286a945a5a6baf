#include "cloudcore/api/request_metrics.h"

#include <array>
#include <string_view>
#include <vector>

namespace gantry::cloud::api {
namespace {

std::vector<std::string_view> segments(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    if (path.front() == '/') {
      path.remove_prefix(1);
      continue;
    }
    auto slash = path.find('/');
    out.push_back(path.substr(0, slash));
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash);
  }
  return out;
}

bool is_watch(const common::Request& req) {
  auto w = req.query_param("watch");
  return w && (*w == "1" || *w == "true" || *w == "True");
}

std::string method_verb(const std::string& method) {
  static constexpr std::array<std::string_view, 7> kMethods = {"GET",   "HEAD",   "POST",   "PUT",
                                                               "PATCH", "DELETE", "OPTIONS"};
  for (auto m : kMethods)
    if (method == m) return method;
  return "OTHER";
}

std::string resource_verb(const common::Request& req, bool named) {
  const std::string& m = req.method;
  if (m == "GET" || m == "HEAD") {
    if (is_watch(req)) return "WATCH";
    return named ? "GET" : "LIST";
  }
  if (m == "POST") return "CREATE";
  if (m == "PUT") return "UPDATE";
  if (m == "PATCH") return "PATCH";
  if (m == "DELETE") return named ? "DELETE" : "DELETECOLLECTION";
  return method_verb(m);
}

}  // namespace

RequestLabels request_labels(const common::Request& req, int status, const KindRegistry& kinds) {
  RequestLabels out;
  out.code = status >= 100 && status <= 599 ? std::to_string(status) : "other";
  out.verb = method_verb(req.method);
  out.resource = "other";
  auto seg = segments(req.path);
  if (seg.empty()) return out;
  static constexpr std::array<std::string_view, 5> kOpen = {"healthz", "readyz", "livez", "metrics",
                                                            "version"};
  for (auto name : kOpen)
    if (seg.size() == 1 && seg[0] == name) {
      out.resource = std::string(name);
      return out;
    }
  if (seg[0] == "openapi") {
    out.resource = "openapi";
    return out;
  }
  if (seg[0] == "ui") {
    out.resource = "ui";
    return out;
  }
  if (seg[0] != "api" && seg[0] != "apis") return out;
  // /api, /api/v1, /apis, /apis/G, /apis/G/V: discovery.
  size_t at = seg[0] == "api" ? 2 : 3;
  if (seg.size() <= at) {
    out.resource = "discovery";
    return out;
  }
  std::string_view group = seg[0] == "api" ? std::string_view() : seg[1];
  std::string_view version = seg[at - 1];
  std::vector<std::string_view> rest(seg.begin() + static_cast<std::ptrdiff_t>(at), seg.end());
  // [namespaces/NS/]PLURAL[/NAME[/SUB]], as the server reads it; /namespaces/NAME[/SUB] when the
  // namespaced reading names no kind.
  const Kind* kind = nullptr;
  std::string_view name, sub;
  if (rest.size() >= 3 && rest[0] == "namespaces") {
    kind = kinds.find(group, version, rest[2]);
    if (kind) {
      if (rest.size() > 3) name = rest[3];
      if (rest.size() > 4) sub = rest[4];
    }
  }
  if (!kind) {
    kind = kinds.find(group, version, rest[0]);
    if (rest.size() > 1) name = rest[1];
    if (rest.size() > 2) sub = rest[2];
  }
  if (!kind) return out;
  out.verb = resource_verb(req, !name.empty());
  out.resource = kind->plural;
  if (!sub.empty()) {
    if (kind->subresource(sub))
      out.resource += "/" + std::string(sub);
    else
      out.resource = "other";
  }
  return out;
}

common::Result<RequestMetrics> RequestMetrics::create(common::MetricsRegistry& metrics,
                                                      const KindRegistry& kinds) {
  auto family = metrics.histogram(
      "gantry_api_request_duration_seconds",
      "REST API response latency by verb, resource and HTTP code (watches and streams: until the "
      "stream started).",
      {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60},
      {"verb", "resource", "code"});
  if (!family.ok()) return family.status();
  RequestMetrics m;
  m.latency_ = *family;
  m.kinds_ = &kinds;
  return m;
}

void RequestMetrics::observe(const common::Request& req, const common::Response& response,
                             std::chrono::steady_clock::duration took) const {
  if (kinds_ == nullptr || req.deferred) return;
  // A handler that streamed its answer returned a response nobody sends; streams start with 200.
  int status = req.taken_stream ? 200 : response.status;
  auto l = request_labels(req, status, *kinds_);
  latency_.with({l.verb, l.resource, l.code}).observe(std::chrono::duration<double>(took).count());
}

}  // namespace gantry::cloud::api
