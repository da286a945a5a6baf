#include "cloudcore/api/selectors.h"

#include <catch2/catch.hpp>

using gantry::cloud::api::FieldSelector;
using gantry::cloud::api::LabelSelector;

TEST_CASE("label selectors match as Kubernetes defines each operator", "[api][selectors]") {
  const std::map<std::string, std::string> labels = {
      {"app", "web"}, {"tier", "front"}, {"topology.gantry.io/province", "zhejiang"}};
  struct Case {
    const char* selector;
    bool matches;
  };
  auto c = GENERATE(values<Case>({
      {"", true},
      {"app=web", true},
      {"app==web", true},
      {"app=db", false},
      {"app!=db", true},
      {"app!=web", false},
      {"missing!=x", true},
      {"app in (web, api)", true},
      {"app in (db)", false},
      {"app notin (db,cache)", true},
      {"app notin (web)", false},
      {"missing notin (web)", true},
      {"tier", true},
      {"missing", false},
      {"!missing", true},
      {"!tier", false},
      {"app=web,tier=front", true},
      {"app=web,tier=back", false},
      {"topology.gantry.io/province=zhejiang", true},
      {" app = web , !missing ", true},
  }));
  auto s = LabelSelector::parse(c.selector);
  INFO(c.selector);
  REQUIRE(s.ok());
  CHECK(s->matches(labels) == c.matches);
}

TEST_CASE("malformed label selectors are refused with the offending part named",
          "[api][selectors]") {
  auto text =
      GENERATE(values<std::string>({"app in (web", "app in web)", "app=we b", "=web", "app in ()",
                                    "app=web=x", "-bad-key=1", "app between (a)"}));
  auto s = LabelSelector::parse(text);
  INFO(text);
  REQUIRE_FALSE(s.ok());
  CHECK(s.status().message().find("labelSelector") != std::string::npos);
}

TEST_CASE("field selectors accept only the supported fields and honour != ", "[api][selectors]") {
  std::vector<std::string> supported = {"metadata.name", "spec.nodeName", "status.phase"};
  std::map<std::string, std::string> values = {
      {"metadata.name", "web"}, {"spec.nodeName", "n1"}, {"status.phase", "Running"}};
  auto value_of = [&](const std::string& f) { return values[f]; };
  auto s = FieldSelector::parse("spec.nodeName=n1,status.phase!=Pending", supported);
  REQUIRE(s.ok());
  CHECK(s->matches(value_of));
  auto s2 = FieldSelector::parse("metadata.name==db", supported);
  REQUIRE(s2.ok());
  CHECK_FALSE(s2->matches(value_of));
  auto bad = FieldSelector::parse("spec.hostname=x", supported);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("spec.hostname") != std::string::npos);
  CHECK(bad.status().message().find("supported: metadata.name") != std::string::npos);
  CHECK_FALSE(FieldSelector::parse("metadata.name", supported).ok());
}
