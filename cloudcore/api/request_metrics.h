// gantry_api_request_duration_seconds: the REST API's latency by verb, resource and code, with
// label sets bounded by what the server serves (never by what a client sends).
#pragma once

#include <chrono>
#include <string>

#include "cloudcore/api/kind.h"
#include "common/metrics/metrics.h"
#include "common/net/http_server.h"

namespace gantry::cloud::api {

struct RequestLabels {
  // kube-apiserver's verbs: GET, LIST, WATCH, CREATE, UPDATE, PATCH, DELETE, DELETECOLLECTION;
  // other methods (or non-resource paths) keep their HTTP method, an unknown one is "OTHER".
  std::string verb;
  // A served kind's plural, with its subresource when it has one ("pods/log", "nodes/status");
  // "provinces"; a fixed name for non-resource paths ("healthz", "readyz", "livez", "metrics",
  // "version", "openapi", "discovery", "ui"); anything else is "other".
  std::string resource;
  std::string code;  // the HTTP status ("200"; streamed responses: the status they started with)
};

RequestLabels request_labels(const common::Request& req, int status, const KindRegistry& kinds);

class RequestMetrics {
 public:
  RequestMetrics() = default;  // observes nothing
  // Registers gantry_api_request_duration_seconds{verb,resource,code} in `metrics` (which must
  // outlive this object).
  static common::Result<RequestMetrics> create(common::MetricsRegistry& metrics,
                                               const KindRegistry& kinds = builtin_kinds());

  // One answered request: from the handler's start until its response (or, for watches and
  // streamed responses, until the stream started). Requests answered later (deferred) are not
  // timed: their handler's return says nothing about the answer.
  void observe(const common::Request& req, const common::Response& response,
               std::chrono::steady_clock::duration took) const;

 private:
  common::HistogramFamily latency_;
  const KindRegistry* kinds_ = nullptr;
};

}  // namespace gantry::cloud::api
