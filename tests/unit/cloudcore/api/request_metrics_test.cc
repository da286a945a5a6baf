// gantry_api_request_duration_seconds: labels a client cannot multiply, and what gets timed.
#include "cloudcore/api/request_metrics.h"

#include <catch2/catch.hpp>

using namespace gantry;
using namespace gantry::cloud::api;

namespace {

common::Request request(std::string method, std::string path,
                        std::vector<std::pair<std::string, std::string>> query = {}) {
  common::Request r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.query = std::move(query);
  return r;
}

std::string labels(const common::Request& r, int code = 200) {
  auto l = request_labels(r, code, builtin_kinds());
  return l.verb + " " + l.resource + " " + l.code;
}

}  // namespace

TEST_CASE("API request labels follow kube-apiserver's verbs and name only served resources",
          "[api][metrics]") {
  CHECK(labels(request("GET", "/api/v1/pods")) == "LIST pods 200");
  CHECK(labels(request("GET", "/api/v1/namespaces/default/pods")) == "LIST pods 200");
  CHECK(labels(request("GET", "/api/v1/namespaces/default/pods/web")) == "GET pods 200");
  CHECK(labels(request("GET", "/api/v1/namespaces/default/pods", {{"watch", "1"}})) ==
        "WATCH pods 200");
  CHECK(labels(request("GET", "/api/v1/namespaces/default/pods/web/log")) == "GET pods/log 200");
  CHECK(labels(request("POST", "/api/v1/namespaces/default/pods"), 201) == "CREATE pods 201");
  CHECK(labels(request("PUT", "/api/v1/nodes/n1/status")) == "UPDATE nodes/status 200");
  CHECK(labels(request("PATCH", "/apis/apps/v1/namespaces/default/deployments/web")) ==
        "PATCH deployments 200");
  CHECK(labels(request("DELETE", "/api/v1/namespaces/default/pods/web")) == "DELETE pods 200");
  CHECK(labels(request("DELETE", "/api/v1/namespaces/default/configmaps")) ==
        "DELETECOLLECTION configmaps 200");
  CHECK(labels(request("GET", "/api/v1/namespaces/kube-system")) == "GET namespaces 200");
  CHECK(labels(request("GET", "/apis/gantry.io/v1/provinces")) == "LIST provinces 200");
  // Non-resource paths: fixed names.
  CHECK(labels(request("GET", "/readyz")) == "GET readyz 200");
  CHECK(labels(request("GET", "/metrics")) == "GET metrics 200");
  CHECK(labels(request("GET", "/apis")) == "GET discovery 200");
  CHECK(labels(request("GET", "/apis/apps/v1")) == "GET discovery 200");
  CHECK(labels(request("GET", "/openapi/v2")) == "GET openapi 200");
  CHECK(labels(request("GET", "/ui/index.html")) == "GET ui 200");
  // Whatever a client makes up collapses into "other".
  CHECK(labels(request("GET", "/api/v1/made-up-1"), 404) == "GET other 404");
  CHECK(labels(request("GET", "/api/v1/namespaces/default/pods/web/made-up"), 404) ==
        "GET other 404");
  CHECK(labels(request("GET", "/random/path"), 404) == "GET other 404");
  CHECK(labels(request("BREW", "/api/v1/pods"), 405) == "OTHER pods 405");
  CHECK(labels(request("GET", "/api/v1/pods"), 999) == "LIST pods other");
}

TEST_CASE("API request latency is observed per answered request, not for deferred ones",
          "[api][metrics]") {
  common::MetricsRegistry registry;
  auto m = RequestMetrics::create(registry);
  REQUIRE(m.ok());
  common::Response ok;
  ok.status = 200;
  m->observe(request("GET", "/api/v1/pods"), ok, std::chrono::milliseconds(3));
  auto deferred = request("GET", "/api/v1/namespaces/default/pods/web/log");
  deferred.deferred = true;
  m->observe(deferred, ok, std::chrono::milliseconds(3));
  std::string text = registry.render_prometheus();
  CHECK(text.find("gantry_api_request_duration_seconds_count{verb=\"LIST\",resource=\"pods\","
                  "code=\"200\"} 1") != std::string::npos);
  CHECK(text.find("pods/log") == std::string::npos);
  // A default-constructed one (no metrics configured) ignores everything.
  RequestMetrics none;
  none.observe(request("GET", "/api/v1/pods"), ok, std::chrono::milliseconds(1));
}
