// gantryadm: flags only; the commands live in gantryadm_lib.
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "common/base/version.h"
#include "common/pki/pki.h"
#include "tools/gantryadm/gettoken.h"
#include "tools/gantryadm/init.h"
#include "tools/gantryadm/join.h"
#include "tools/gantryadm/reset.h"

namespace {

int fail(const gantry::common::Status& status) {
  fmt::print(stderr, "gantryadm: {}\n", status.message());
  return 1;
}

int run(int argc, char** argv) {
  CLI::App app{
      "gantryadm: sets up Gantry. `init` makes cloudcore's CA, certificates, tokens and config;\n"
      "`gettoken` mints a join token for an edge node; `join` makes this machine an edge node;\n"
      "`reset` undoes an edge node's join.",
      "gantryadm"};
  app.set_version_flag("--version", std::string("gantryadm ") + gantry::common::kVersion);
  app.require_subcommand(1);

  gantry::adm::InitOptions init;
  std::string init_dir;
  auto* init_cmd = app.add_subcommand(
      "init",
      "Create the CA, cloudcore's serving certificate, the token-signing key, an admin "
      "token, cloudcore.yaml and admin.kubeconfig in DIR");
  init_cmd->add_option("--data-dir", init_dir, "cloudcore's directory, e.g. /etc/gantry")
      ->required();
  init_cmd
      ->add_option("--advertise-address", init.advertise_addresses,
                   "IP addresses or DNS names that edge nodes and kubectl use to reach cloudcore, "
                   "comma-separated; all go into the serving certificate, the first into "
                   "admin.kubeconfig")
      ->required()
      ->delimiter(',');
  init_cmd->add_flag("--force", init.force,
                     "replace an existing CA and everything init made (every joined node must "
                     "join again)");

  gantry::adm::GetTokenOptions token;
  std::string token_dir;
  auto* token_cmd =
      app.add_subcommand("gettoken", "Print a join token for an edge node (on stdout, alone)");
  token_cmd->add_option("--data-dir", token_dir, "the directory given to init")->required();
  token_cmd->add_option("--ttl", token.ttl, "how long the token can be used: 1m to 8760h")
      ->capture_default_str();
  token_cmd->add_option("--province", token.province,
                        "only nodes joining this province may use the token (default: any)");

  gantry::adm::JoinOptions join;
  std::string join_dir;
  auto* join_cmd = app.add_subcommand(
      "join",
      "On an edge node: get a certificate from cloudcore's join endpoint with a token and write "
      "DIR/pki and DIR/edgecore.yaml; installs the systemd unit where systemd runs");
  join_cmd->add_option("--cloudcore", join.cloudcore, "cloudcore's join endpoint, HOST:10002")
      ->required();
  join_cmd->add_option("--token", join.token, "a join token from `gantryadm gettoken`")->required();
  join_cmd
      ->add_option("--node-name", join.node_name,
                   "this node's name (lowercase DNS name, unique in the fleet)")
      ->required();
  join_cmd->add_option("--province", join.province, "the province this node belongs to")
      ->required();
  join_cmd
      ->add_option("--data-dir", join_dir, "edgecore's directory, e.g. /var/lib/gantry/edgecore")
      ->required();
  join_cmd->add_option("--runtime-endpoint", join.runtime_endpoint, "containerd's CRI socket")
      ->capture_default_str();
  join_cmd->add_option("--labels", join.labels, "node labels, k=v,k2=v2")->delimiter(',');
  join_cmd->add_option("--tunnel-address", join.tunnel_address,
                       "cloudcore's tunnel address edgecore dials (default: the --cloudcore host, "
                       "port 10000)");
  join_cmd->add_option("--registry-mirror", join.registry_mirrors,
                       "[REGISTRY=]URL of a registry mirror, tried before the registry itself; "
                       "repeat it for several, nearest first (the URL alone: every registry)");
  join_cmd->add_option("--registry-config-path", join.registry_config_path,
                       "containerd's registry config_path, where edgecore writes the mirrors' "
                       "hosts.toml (default /etc/containerd/certs.d)");

  gantry::adm::ResetOptions reset;
  std::string reset_dir;
  auto* reset_cmd =
      app.add_subcommand("reset",
                         "On an edge node: stop the edgecore that join started and remove its "
                         "certificates, config and cache from DIR; nothing else is touched");
  reset_cmd->add_option("--data-dir", reset_dir, "the edge node's directory given to join")
      ->required();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (*init_cmd) {
    init.data_dir = init_dir;
    auto text = gantry::adm::init(init);
    if (!text.ok()) return fail(text.status());
    fmt::print("{}", *text);
    return 0;
  }
  if (*token_cmd) {
    token.data_dir = token_dir;
    auto result = gantry::adm::get_token(token);
    if (!result.ok()) return fail(result.status());
    // The token alone on stdout, so that TOKEN=$(gantryadm gettoken ...) works.
    fmt::print("{}\n", result->token);
    fmt::print(stderr, "gantryadm: join token valid until {}{}\n",
               gantry::common::format_rfc3339(result->expires),
               token.province.empty() ? " for any province"
                                      : fmt::format(" for province {}", token.province));
    return 0;
  }
  if (*join_cmd) {
    join.data_dir = join_dir;
    auto result = gantry::adm::join(join);
    if (!result.ok()) return fail(result.status());
    fmt::print("{}", result->text);
    return 0;
  }
  reset.data_dir = reset_dir;
  auto report = gantry::adm::reset(reset);
  if (!report.ok()) return fail(report.status());
  if (report->dir_missing) {
    fmt::print("{} does not exist: nothing to reset\n", reset_dir);
    return 0;
  }
  for (const auto& w : report->warnings) fmt::print(stderr, "gantryadm: warning: {}\n", w);
  if (report->stopped_pid != 0) {
    fmt::print("stopped edgecore (pid {}{})\n", report->stopped_pid,
               report->killed ? ", killed after it ignored SIGTERM" : "");
  }
  if (report->pods_removed > 0) {
    fmt::print("stopped and removed {} pod(s) edgecore ran on {}\n", report->pods_removed,
               report->runtime_endpoint);
  }
  fmt::print("removed from {}: {}\n", reset_dir, fmt::join(report->removed, ", "));
  if (!report->left.empty()) {
    fmt::print("left alone (not made by Gantry): {}\n", fmt::join(report->left, ", "));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // CLI11 reports bad definitions by exception; the commands themselves return Status.
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    fmt::print(stderr, "gantryadm: {}\n", e.what());
    return 1;
  }
}
