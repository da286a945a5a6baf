// `gantryadm init`: the cloud side's CA, serving certificate, token-signing key, admin token,
// cloudcore.yaml and admin.kubeconfig, all in one data directory.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/base/status.h"

namespace gantry::adm {

// Where init puts things, relative to the data dir (cloudcore.yaml points at these).
inline constexpr std::string_view kCaCert = "pki/ca.crt";
inline constexpr std::string_view kCaKey = "pki/ca.key";
inline constexpr std::string_view kServingCert = "pki/cloudcore.crt";
inline constexpr std::string_view kServingKey = "pki/cloudcore.key";
inline constexpr std::string_view kTokenSigningKey = "pki/token-signing.key";
inline constexpr std::string_view kTokenFile = "tokens.csv";
inline constexpr std::string_view kCloudcoreConfig = "cloudcore.yaml";
inline constexpr std::string_view kAdminKubeconfig = "admin.kubeconfig";

inline constexpr uint16_t kTunnelPort = 10000;
inline constexpr uint16_t kJoinPort = 10002;
inline constexpr uint16_t kApiPort = 10443;

struct InitOptions {
  std::filesystem::path data_dir;
  // As given on the command line: "10.0.0.5", "cloud.example.com,10.0.0.5", "fd00::1".
  std::vector<std::string> advertise_addresses;
  bool force = false;  // replace an existing CA (every joined node must join again)
  std::chrono::seconds ca_lifetime{10 * 365 * 24 * 3600};
  std::chrono::seconds serving_lifetime{5 * 365 * 24 * 3600};
};

// The advertise addresses split into IP and DNS SANs (plus localhost and 127.0.0.1), in order,
// without duplicates. kInvalidArgument names an address that is neither an IP nor a DNS name
// (e.g. one with a port).
struct ServingNames {
  std::vector<std::string> ips;
  std::vector<std::string> dns_names;
};
common::Result<ServingNames> serving_names(const std::vector<std::string>& advertise_addresses);

// Creates everything under data_dir. All files are generated in DIR/.init-tmp first and moved into
// place only when all of them are written, so a failure leaves DIR as it was. Refuses
// (kAlreadyExists, naming the files) when any of them exists, unless options.force.
// Returns the text to print: what was written and the next commands.
common::Result<std::string> init(const InitOptions& options);

}  // namespace gantry::adm
