// Real kubectl asks the in-process API server what each role may do: `kubectl auth can-i`
// (SelfSubjectAccessReview), `can-i --list` (SelfSubjectRulesReview) and `auth whoami`
// (SelfSubjectReview), for the administrator, a province viewer and a province operator.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "tests/unit/cloudcore/api/api_fixture.h"
#include "tests/unit/cloudcore/api/kubectl_runner.h"

using namespace gantry;
using namespace gantry::test;

namespace {

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// First word of kubectl's answer ("yes" / "no"), ignoring warnings on other lines.
std::string answer(const std::string& out) {
  std::string last;
  size_t start = 0;
  while (start < out.size()) {
    size_t nl = out.find('\n', start);
    std::string line = out.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (line == "yes" || line == "no" || line.starts_with("no - "))
      last = line.substr(0, line.find(' '));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return last;
}

void make_namespace(ApiFixture& api, const std::string& name, const std::string& province) {
  std::string ns = R"({"apiVersion":"v1","kind":"Namespace","metadata":{"name":")" + name +
                   R"(","labels":{"topology.gantry.io/province":")" + province + R"("}}})";
  REQUIRE(api.call("POST", "/api/v1/namespaces", kAdminToken, ns).code == 201);
}

}  // namespace

TEST_CASE("kubectl auth can-i answers for the admin, a viewer and an operator",
          "[e2e][kubectl][auth]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  INFO(binary);
  ApiFixture api;
  api.put_node("js1", "jiangsu");
  make_namespace(api, "zj-apps", "zhejiang");
  make_namespace(api, "js-apps", "jiangsu");
  Kubectl admin(api, binary, kAdminToken);
  Kubectl viewer(api, binary, kZhejiangViewerToken);  // zhejiang viewer
  Kubectl op(api, binary, kJiangsuOperatorToken);     // jiangsu operator
  struct Case {
    std::vector<std::string> args;
    const char* admin;
    const char* viewer;
    const char* op;
  };
  const std::vector<Case> cases = {
      {{"create", "pods", "-n", "js-apps"}, "yes", "no", "yes"},
      {{"create", "pods", "-n", "zj-apps"}, "yes", "no", "no"},
      {{"list", "pods", "-n", "zj-apps"}, "yes", "yes", "no"},
      {{"get", "secrets", "-n", "zj-apps"}, "yes", "no", "no"},
      {{"get", "secrets", "-n", "js-apps"}, "yes", "no", "yes"},
      {{"delete", "configmaps", "-n", "js-apps"}, "yes", "no", "yes"},
      {{"create", "namespaces"}, "yes", "no", "no"},
      {{"create", "nodes"}, "yes", "no", "no"},
      {{"get", "pods", "--subresource=log", "-n", "zj-apps"}, "yes", "yes", "no"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"auth", "can-i"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    for (auto [k, expected] :
         {std::pair{&admin, c.admin}, std::pair{&viewer, c.viewer}, std::pair{&op, c.op}}) {
      auto [code, out] = k->run(args);
      INFO(c.args[0] << " " << c.args[1] << " as " << k->kubeconfig << ": " << out);
      // can-i exits 0 for yes, 1 for no.
      CHECK(answer(out) == expected);
      CHECK(code == (std::string(expected) == "yes" ? 0 : 1));
    }
  }

  // --list: the rules for the namespace.
  auto [code, out] = op.run({"auth", "can-i", "--list", "-n", "js-apps"});
  INFO(out);
  CHECK(code == 0);
  CHECK(contains(out, "secrets"));
  CHECK(contains(out, "pods"));
  auto [vcode, vout] = viewer.run({"auth", "can-i", "--list", "-n", "zj-apps"});
  INFO(vout);
  CHECK(vcode == 0);
  CHECK(contains(vout, "pods"));
  CHECK_FALSE(contains(vout, "secrets"));
}

TEST_CASE("kubectl auth whoami names the user and groups cloudcore sees", "[e2e][kubectl][auth]") {
  auto binaries = kubectl_binaries();
  REQUIRE_FALSE(binaries.empty());
  auto binary = GENERATE_COPY(from_range(binaries));
  INFO(binary);
  ApiFixture api;
  Kubectl probe(api, binary, kAdminToken);
  auto [hcode, help] = probe.run({"auth", "whoami", "--help"});
  if (hcode != 0 || probe.minor() < 26) {  // 1.20 answers `auth`'s help
    WARN(binary << " has no `auth whoami`");
    return;
  }
  for (auto [token, user, group] :
       {std::tuple{kAdminToken, "admin", "system:masters"},
        std::tuple{kZhejiangViewerToken, "zj-viewer", "gantry:province:zhejiang:viewer"},
        std::tuple{kJiangsuOperatorToken, "js-operator", "gantry:province:jiangsu:operator"}}) {
    Kubectl k(api, binary, token);
    auto [code, out] = k.run({"auth", "whoami"});
    INFO(out);
    CHECK(code == 0);
    CHECK(contains(out, user));
    CHECK(contains(out, group));
  }
}
