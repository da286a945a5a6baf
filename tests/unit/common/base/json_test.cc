#include "common/base/json.h"

#include <catch2/catch.hpp>
#include <string>

namespace gantry::common {
namespace {

using nlohmann::json;

std::string nested(size_t depth, char open = '[', char close = ']') {
  return std::string(depth, open) + std::string(depth, close);
}

TEST_CASE("parse_json reads ordinary objects") {
  auto r = parse_json(R"({"kind":"Pod","metadata":{"name":"web","labels":{"a":"b"}},"n":[1,2.5]})");
  REQUIRE(r.ok());
  CHECK((*r)["metadata"]["labels"]["a"] == "b");
  CHECK((*r)["n"][1] == 2.5);
}

TEST_CASE("parse_json refuses 100000 levels of nesting without overflowing the stack") {
  auto arrays = parse_json(nested(100'000));
  REQUIRE_FALSE(arrays.ok());
  CHECK(arrays.status().code() == Code::kInvalidArgument);
  CHECK(arrays.status().message() == "nested more than 1000 levels deep (at byte 1000)");

  // Objects inside objects, the shape of a hostile Kubernetes body.
  std::string objects;
  for (int i = 0; i < 100'000; ++i) objects += R"({"a":)";
  objects += "1" + std::string(100'000, '}');
  auto deep_objects = parse_json(objects);
  REQUIRE_FALSE(deep_objects.ok());
  CHECK(deep_objects.status().message().find("nested more than 1000 levels") != std::string::npos);

  // Unbalanced: only openers, as a truncated attack would send.
  CHECK_FALSE(parse_json(std::string(100'000, '{')).ok());
}

TEST_CASE("parse_json accepts nesting up to the bound and refuses one more") {
  CHECK(parse_json(nested(1000)).ok());
  CHECK_FALSE(parse_json(nested(1001)).ok());
  JsonLimits small;
  small.max_depth = 3;
  CHECK(parse_json(R"({"a":{"b":[1]}})", small).ok());
  CHECK_FALSE(parse_json(R"({"a":{"b":[[1]]}})", small).ok());
}

TEST_CASE("brackets inside strings do not count as nesting") {
  std::string text = "{\"a\":\"" + std::string(5000, '[') + "\\\"" + std::string(5000, '{') + "\"}";
  auto r = parse_json(text);
  REQUIRE(r.ok());
  CHECK((*r)["a"].get<std::string>().size() == 10'001);
  CHECK(json_nesting_depth(text, 100) == 1);
  CHECK(json_nesting_depth("[[],[[]]]", 100) == 3);
}

TEST_CASE("parse_json refuses bodies over the size bound before parsing") {
  JsonLimits limits;
  limits.max_bytes = 10;
  auto r = parse_json(R"({"a":"0123456789"})", limits);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kResourceExhausted);
  CHECK(r.status().message() == "18 bytes, more than the limit of 10");
}

TEST_CASE("parse_json says where the syntax is wrong") {
  auto r = parse_json(R"({"a": tru})");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == Code::kInvalidArgument);
  CHECK(r.status().message().starts_with("not valid JSON: parse error at line 1, column"));
  CHECK_FALSE(parse_json("").ok());
  CHECK_FALSE(parse_json("{} {}").ok());
}

TEST_CASE("parse_yaml_as_json reads what kubectl sends as apply-patch+yaml") {
  auto r = parse_yaml_as_json(R"(apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web, "tier": "1"}
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: c
    image: nginx
    ports: [{containerPort: 80}]
    env:
    - {name: A, value: "true"}
    - {name: B, value: true}
    - {name: C, value: ~}
    - {name: D, value: 1.5}
)");
  REQUIRE(r.ok());
  const json& pod = *r;
  CHECK(pod["metadata"]["labels"]["tier"] == "1");
  CHECK(pod["spec"]["terminationGracePeriodSeconds"] == 30);
  CHECK(pod["spec"]["terminationGracePeriodSeconds"].is_number_integer());
  CHECK(pod["spec"]["containers"][0]["ports"][0]["containerPort"] == 80);
  CHECK(pod["spec"]["containers"][0]["env"][0]["value"] == "true");
  CHECK(pod["spec"]["containers"][0]["env"][1]["value"] == true);
  CHECK(pod["spec"]["containers"][0]["env"][2]["value"].is_null());
  CHECK(pod["spec"]["containers"][0]["env"][3]["value"] == 1.5);
}

TEST_CASE("parse_yaml_as_json is bounded: depth, aliases, documents") {
  CHECK_FALSE(parse_yaml_as_json(nested(100'000)).ok());
  CHECK_FALSE(parse_yaml_as_json(nested(100'000, '{', '}')).ok());

  // Block nesting without brackets: "- - - - ... x".
  std::string block;
  for (int i = 0; i < 5000; ++i) block += "- ";
  block += "x\n";
  CHECK_FALSE(parse_yaml_as_json(block).ok());

  // A billion laughs: 10 levels of 10 aliases each would be 10^10 values.
  std::string laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  char prev = 'a';
  for (char c = 'b'; c <= 'k'; ++c, ++prev)
    laughs += fmt::format(
        "{0}: &{0} [*{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}, *{1}]\n", c, prev);
  auto bomb = parse_yaml_as_json(laughs);
  REQUIRE_FALSE(bomb.ok());
  CHECK(bomb.status().code() == Code::kResourceExhausted);

  CHECK_FALSE(parse_yaml_as_json("a: 1\n---\nb: 2\n").ok());
  CHECK_FALSE(parse_yaml_as_json("a: [1, 2\n").ok());
}

TEST_CASE("parse_yaml_as_json refuses bytes that are not UTF-8, so a stored object always dumps") {
  // Found by fuzz_json: a name with 0xFF bytes decoded, then every dump() of the object threw.
  auto bad = parse_yaml_as_json("metadata: {name: we\xff\xffb}\n");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == Code::kInvalidArgument);
  CHECK_THAT(bad.status().message(), Catch::Contains("UTF-8 at byte 19"));
  CHECK_FALSE(parse_yaml_as_json("a: \xed\xa0\x80\n").ok());  // a surrogate
  CHECK_FALSE(parse_yaml_as_json("a: \xc0\xaf\n").ok());      // an overlong '/'
  CHECK_FALSE(parse_yaml_as_json("a: \xe4\xb8\n").ok());      // cut short
  auto good = parse_yaml_as_json("name: \xe6\x94\xb6\xe8\xb4\xb9\xe7\xab\x99 \xf0\x9f\x9a\x97\n");
  REQUIRE(good.ok());
  CHECK((*good)["name"].dump().size() > 4);
}

}  // namespace
}  // namespace gantry::common
