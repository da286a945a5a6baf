// Real kubectl against an ApiFixture's API server, signed in with one bearer token.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/test_support.h"
#include "tests/unit/cloudcore/api/api_fixture.h"

namespace gantry::test {

struct Kubectl {
  ApiFixture& api;
  std::string binary;
  std::string kubeconfig;  // one per token, in the fixture's directory
  int runs = 0;
  int minor_ = -1;

  Kubectl(ApiFixture& a, std::string bin, const std::string& token)
      : api(a), binary(std::move(bin)) {
    kubeconfig =
        (api.dir() / ("kubeconfig-" + std::to_string(std::hash<std::string>{}(token)))).string();
    std::ofstream(kubeconfig)
        << "apiVersion: v1\nkind: Config\nclusters:\n- name: gantry\n  cluster:\n"
        << "    server: " << api.url("") << "\n    certificate-authority: " << api.ca_path()
        << "\nusers:\n- name: user\n  user:\n    token: " << token
        << "\ncontexts:\n- name: gantry\n  context:\n    cluster: gantry\n    user: user\n"
        << "current-context: gantry\n";
  }

  // The command line for `kubectl ARGS...` (for a ChildProcess the test manages itself).
  std::vector<std::string> argv(const std::vector<std::string>& args) const {
    std::vector<std::string> out = {binary, "--kubeconfig", kubeconfig, "--cache-dir",
                                    (api.dir() / "kube-cache").string()};
    out.insert(out.end(), args.begin(), args.end());
    return out;
  }

  // The client's minor version (20 for Debian's 1.20, 27..33 for the kubectl package), read once
  // from `kubectl version --client -o json`; 0 when it cannot be read.
  int minor() {
    if (minor_ < 0) {
      auto [code, out] = run({"version", "--client", "-o", "json"});
      std::smatch m;
      static const std::regex kMinor(R"re("minor":\s*"(\d+))re");
      minor_ = code == 0 && std::regex_search(out, m, kMinor) ? std::stoi(m[1].str()) : 0;
    }
    return minor_;
  }

  // Runs `kubectl ARGS...` to completion: the exit code and the combined output. Each run keeps
  // its own log, named after the kubeconfig, so two Kubectl of one fixture never share one.
  std::pair<int, std::string> run(const std::vector<std::string>& args) {
    ChildProcess p(argv(args), api.dir() / (std::filesystem::path(kubeconfig).filename().string() +
                                            "-run-" + std::to_string(++runs) + ".log"));
    int code = p.wait(std::chrono::seconds(120));
    return {code, p.log()};
  }
};

}  // namespace gantry::test
