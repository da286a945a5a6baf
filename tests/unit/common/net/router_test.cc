#include <catch2/catch.hpp>

#include "common/net/http_server.h"

namespace gantry::common {
namespace {

HttpHandler named(std::string name) {
  return [name](Request&) { return Response::text(200, name); };
}

std::string route(const Router& router, std::string method, std::string path) {
  Request request;
  request.method = std::move(method);
  request.path = std::move(path);
  Response response = router.dispatch(request);
  std::string out = std::to_string(response.status) + " " + response.body;
  for (const auto& [key, value] : request.path_params) out += " " + key + "=" + value;
  return out;
}

TEST_CASE("the router matches literals and fills path parameters", "[net][router]") {
  Router router;
  router.add("GET", "/api/v1/namespaces/{ns}/pods/{name}", named("pod"));
  router.add("GET", "/api/v1/namespaces/{ns}/pods", named("pods"));
  router.add("GET", "/api/v1/nodes", named("nodes"));
  CHECK(route(router, "GET", "/api/v1/namespaces/default/pods/web") ==
        "200 pod name=web ns=default");
  CHECK(route(router, "GET", "/api/v1/namespaces/default/pods") == "200 pods ns=default");
  CHECK(route(router, "GET", "/api/v1/nodes") == "200 nodes");
  CHECK(route(router, "GET", "/api/v1/namespaces/default/pods/web/extra").substr(0, 3) == "404");
  CHECK(route(router, "GET", "/api/v1/namespaces//pods").substr(0, 3) == "404");
}

TEST_CASE("the most literal route wins whatever the order routes were added in", "[net][router]") {
  Router router;
  router.add("GET", "/api/v1/namespaces/{ns}/pods/{name}", named("pod"));
  router.add("GET", "/api/v1/namespaces/{ns}/pods/status", named("status"));
  router.add("GET", "/api/v1/{rest...}", named("catch-all"));
  CHECK(route(router, "GET", "/api/v1/namespaces/a/pods/status") == "200 status ns=a");
  CHECK(route(router, "GET", "/api/v1/namespaces/a/pods/b") == "200 pod name=b ns=a");
  CHECK(route(router, "GET", "/api/v1/namespaces/a") == "200 catch-all rest=namespaces/a");
}

TEST_CASE("a rest parameter takes the remainder of the path, possibly empty", "[net][router]") {
  Router router;
  router.add("GET", "/ui/{file...}", named("ui"));
  CHECK(route(router, "GET", "/ui/js/app.js") == "200 ui file=js/app.js");
  CHECK(route(router, "GET", "/ui") == "200 ui file=");
}

TEST_CASE(
    "a known path with another method gets 405 with Allow, unknown paths go to the "
    "fallback",
    "[net][router]") {
  Router router;
  router.add("GET", "/healthz", named("health"));
  router.add("POST", "/healthz", named("post-health"));
  Request request;
  request.method = "DELETE";
  request.path = "/healthz";
  Response response = router.dispatch(request);
  CHECK(response.status == 405);
  bool has_allow = false;
  for (const auto& [name, value] : response.headers) {
    if (name == "Allow") {
      has_allow = true;
      CHECK(value == "GET, POST");
    }
  }
  CHECK(has_allow);
  CHECK(route(router, "GET", "/nope").substr(0, 3) == "404");
  router.set_fallback(named("fallback"));
  CHECK(route(router, "GET", "/nope") == "200 fallback");
}

TEST_CASE("method * matches any method", "[net][router]") {
  Router router;
  router.add("*", "/v1/certificates", named("any"));
  CHECK(route(router, "PUT", "/v1/certificates") == "200 any");
}

TEST_CASE("percent-decoding keeps invalid escapes and decodes + only in queries", "[net][router]") {
  CHECK(percent_decode("/a%20b/c%2Fd") == "/a b/c/d");
  CHECK(percent_decode("a+b") == "a+b");
  CHECK(percent_decode("a+b", true) == "a b");
  CHECK(percent_decode("100%") == "100%");
  CHECK(percent_decode("%zz%4") == "%zz%4");
}

TEST_CASE("escaped slashes in a segment do not split it", "[net][router]") {
  Router router;
  router.add("GET", "/objects/{name}", named("object"));
  CHECK(route(router, "GET", "/objects/a%2Fb") == "200 object name=a/b");
}

}  // namespace
}  // namespace gantry::common
