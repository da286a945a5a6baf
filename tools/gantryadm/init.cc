#include "tools/gantryadm/init.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <system_error>
#include <utility>

#include "common/base/atomic_file.h"
#include "common/base/version.h"
#include "common/pki/pki.h"

namespace gantry::adm {
namespace {

namespace fs = std::filesystem;
using common::Code;
using common::make_error;
using common::Result;
using common::Status;

bool is_ip(const std::string& text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

// RFC 1123 host name: dot-separated labels of [a-z0-9-], not starting or ending with '-'.
bool is_dns_name(const std::string& text) {
  if (text.empty() || text.size() > 253) return false;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find('.', start);
    if (end == std::string::npos) end = text.size();
    std::string_view label(text.data() + start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
      return false;
    for (char c : label) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return false;
    }
    start = end + 1;
  }
  return true;
}

std::string to_lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

// A YAML double-quoted scalar: paths may hold ':', '#' or spaces.
std::string yaml_quote(std::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

std::string base64(std::string_view data) {
  std::string out(4 * ((data.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(data.data()),
                          static_cast<int>(data.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

std::string unbracket(const std::string& address) {
  if (address.size() > 2 && address.front() == '[' && address.back() == ']')
    return address.substr(1, address.size() - 2);
  return address;
}

std::string url_host(const std::string& address) {
  return address.find(':') != std::string::npos ? "[" + address + "]" : address;
}

struct GeneratedFile {
  std::string_view path;  // relative to the data dir
  std::string contents;
  mode_t mode;
};

std::string cloudcore_yaml(const fs::path& dir) {
  auto p = [&](std::string_view rel) { return yaml_quote((dir / rel).string()); };
  return fmt::format(
      "# cloudcore configuration, written by gantryadm init ({}).\n"
      "# Every option, with its default and range, is described in deploy/cloudcore.yaml.\n"
      "data_dir: {}\n"
      "tunnel:\n"
      "  # Edge nodes connect to wss://ADDRESS:{}/v1/tunnel.\n"
      "  listen: \"0.0.0.0:{}\"\n"
      "tls:\n"
      "  cert: {}\n"
      "  key: {}\n"
      "  ca: {}\n"
      "join:\n"
      "  # Edge nodes join with gantryadm join --cloudcore ADDRESS:{}.\n"
      "  listen: \"0.0.0.0:{}\"\n"
      "  ca_key: {}\n"
      "  token_signing_key: {}\n"
      "  certificate_lifetime: 365d\n"
      "api:\n"
      "  # kubectl and the dashboard: https://ADDRESS:{}/ (admin.kubeconfig).\n"
      "  listen: \"0.0.0.0:{}\"\n"
      "  token_file: {}\n"
      "log:\n"
      "  level: info\n"
      "  format: text\n",
      common::kVersion, yaml_quote((dir / "data").string()), kTunnelPort, kTunnelPort,
      p(kServingCert), p(kServingKey), p(kCaCert), kJoinPort, kJoinPort, p(kCaKey),
      p(kTokenSigningKey), kApiPort, kApiPort, p(kTokenFile));
}

std::string kubeconfig(const std::string& server, const std::string& ca_pem,
                       const std::string& token) {
  return fmt::format(
      "apiVersion: v1\n"
      "kind: Config\n"
      "clusters:\n"
      "- name: gantry\n"
      "  cluster:\n"
      "    server: {}\n"
      "    certificate-authority-data: {}\n"
      "users:\n"
      "- name: admin\n"
      "  user:\n"
      "    token: {}\n"
      "contexts:\n"
      "- name: admin@gantry\n"
      "  context:\n"
      "    cluster: gantry\n"
      "    user: admin\n"
      "current-context: admin@gantry\n",
      server, base64(ca_pem), token);
}

bool exists_no_follow(const fs::path& p) {
  std::error_code ec;
  return fs::symlink_status(p, ec).type() != fs::file_type::not_found && !ec;
}

Status make_dir(const fs::path& p, mode_t mode) {
  if (::mkdir(p.c_str(), mode) != 0 && errno != EEXIST) {
    return make_error(Code::kInternal, "creating {}: {}", p.string(), std::strerror(errno));
  }
  return common::ok_status();
}

void sync_dir(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Renames staging/F -> dir/F for every generated file F (pki/ is created when missing, other
// files in it are left alone); a file already there (only with --force) is first moved to
// dir/.init-old. Any failure puts everything back as it was.
Status move_into_place(const fs::path& dir, const fs::path& staging, const fs::path& old,
                       const std::vector<GeneratedFile>& files) {
  std::vector<std::pair<fs::path, fs::path>> done;  // (from, to), undone in reverse
  const bool made_pki = !exists_no_follow(dir / "pki");
  auto undo = [&] {
    for (auto it = done.rbegin(); it != done.rend(); ++it) {
      std::error_code ignored;
      fs::rename(it->second, it->first, ignored);
    }
    std::error_code ignored;
    if (made_pki) fs::remove(dir / "pki", ignored);  // only when empty again
  };
  if (made_pki) GANTRY_RETURN_IF_ERROR(make_dir(dir / "pki", 0700));
  for (const GeneratedFile& f : files) {
    const fs::path target = dir / f.path;
    // Flattened, so that .init-old needs no subdirectories.
    const fs::path aside = old / fs::path(f.path).filename();
    std::error_code ec;
    if (exists_no_follow(target)) {
      fs::rename(target, aside, ec);
      if (ec) {
        undo();
        return make_error(Code::kInternal, "moving the old {} aside: {}", target.string(),
                          ec.message());
      }
      done.emplace_back(target, aside);
    }
    fs::rename(staging / f.path, target, ec);
    if (ec) {
      undo();
      return make_error(Code::kInternal, "moving {} into place: {}", target.string(), ec.message());
    }
    done.emplace_back(staging / f.path, target);
  }
  return common::ok_status();
}

}  // namespace

Result<ServingNames> serving_names(const std::vector<std::string>& advertise_addresses) {
  ServingNames names;
  auto add = [](std::vector<std::string>& list, std::string value) {
    if (std::find(list.begin(), list.end(), value) == list.end()) list.push_back(std::move(value));
  };
  for (const std::string& raw : advertise_addresses) {
    std::string address = unbracket(raw);
    if (is_ip(address)) {
      add(names.ips, address);
    } else if (is_dns_name(address)) {
      add(names.dns_names, to_lower(address));
    } else {
      return make_error(Code::kInvalidArgument,
                        "--advertise-address: '{}' is neither an IP address nor a DNS name (give "
                        "addresses without port or scheme, e.g. 10.0.0.5 or cloud.example.com)",
                        raw);
    }
  }
  add(names.dns_names, "localhost");
  add(names.ips, "127.0.0.1");
  return names;
}

Result<std::string> init(const InitOptions& options) {
  if (options.data_dir.empty()) return make_error(Code::kInvalidArgument, "--data-dir is empty");
  if (options.advertise_addresses.empty()) {
    return make_error(Code::kInvalidArgument,
                      "--advertise-address: give at least one address edge nodes and kubectl use "
                      "to reach cloudcore");
  }
  GANTRY_ASSIGN_OR_RETURN(ServingNames names, serving_names(options.advertise_addresses));

  std::error_code ec;
  const fs::path dir = fs::absolute(options.data_dir, ec).lexically_normal();
  if (ec) return make_error(Code::kInvalidArgument, "--data-dir: {}", ec.message());
  if (exists_no_follow(dir) && !fs::is_directory(dir)) {
    return make_error(Code::kFailedPrecondition, "--data-dir {} exists and is not a directory",
                      dir.string());
  }

  std::vector<std::string> existing;
  for (std::string_view rel : {kCaCert, kCaKey, kServingCert, kServingKey, kTokenSigningKey,
                               kTokenFile, kCloudcoreConfig, kAdminKubeconfig}) {
    if (exists_no_follow(dir / rel)) existing.emplace_back(rel);
  }
  if (!existing.empty() && !options.force) {
    return make_error(
        Code::kAlreadyExists,
        "{} was already initialised (it has {}). Replacing it makes a new CA: every joined edge "
        "node would have to join again and old join tokens stop working. To keep it, start "
        "cloudcore with --config {}; to replace it, run init again with --force; or choose "
        "another --data-dir.",
        dir.string(), fmt::join(existing, ", "), (dir / kCloudcoreConfig).string());
  }

  // Everything is generated in memory before the first byte is written.
  GANTRY_ASSIGN_OR_RETURN(common::PrivateKey ca_key, common::PrivateKey::generate());
  GANTRY_ASSIGN_OR_RETURN(common::Certificate ca,
                          common::create_ca(ca_key, "gantry-ca", options.ca_lifetime));
  GANTRY_ASSIGN_OR_RETURN(common::PrivateKey serving_key, common::PrivateKey::generate());
  common::CertificateSpec spec;
  spec.common_name = "cloudcore";
  spec.dns_names = names.dns_names;
  spec.ip_addresses = names.ips;
  spec.lifetime = options.serving_lifetime;
  spec.server_auth = true;
  spec.client_auth = false;
  GANTRY_ASSIGN_OR_RETURN(common::Certificate serving,
                          common::issue_certificate(serving_key.get(), spec, ca, ca_key));
  const std::string signing_key = common::random_hex(32);
  const std::string admin_token = common::random_hex(32);
  const std::string first = url_host(unbracket(options.advertise_addresses.front()));
  const std::string server = fmt::format("https://{}:{}", first, kApiPort);

  const std::vector<GeneratedFile> files = {
      {kCaCert, ca.to_pem(), 0644},
      {kCaKey, ca_key.to_pem(), 0600},
      {kServingCert, serving.to_pem(), 0644},
      {kServingKey, serving_key.to_pem(), 0600},
      {kTokenSigningKey, signing_key + "\n", 0600},
      // Kubernetes static token file: token,user,uid,"group1,group2"
      {kTokenFile, fmt::format("{},admin,admin,\"system:masters\"\n", admin_token), 0600},
      {kCloudcoreConfig, cloudcore_yaml(dir), 0644},
      {kAdminKubeconfig, kubeconfig(server, ca.to_pem(), admin_token), 0600},
  };

  const bool created_dir = !exists_no_follow(dir);
  fs::create_directories(dir, ec);
  if (ec) return make_error(Code::kInternal, "creating {}: {}", dir.string(), ec.message());
  const fs::path staging = dir / ".init-tmp";
  const fs::path old = dir / ".init-old";
  auto clean_up = [&](bool failed) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    fs::remove_all(old, ignored);
    if (failed && created_dir) fs::remove(dir, ignored);  // only if still empty
  };
  clean_up(false);  // leftovers of an interrupted run

  Status status = make_dir(staging, 0700);
  if (status.ok()) status = make_dir(staging / "pki", 0700);
  if (status.ok()) status = make_dir(old, 0700);
  for (const GeneratedFile& f : files) {
    if (!status.ok()) break;
    status = common::write_file_atomic(staging / f.path, f.contents, f.mode);
  }
  if (status.ok()) status = move_into_place(dir, staging, old, files);
  if (!status.ok()) {
    clean_up(true);
    return status;
  }
  clean_up(false);
  sync_dir(dir / "pki");
  sync_dir(dir);

  std::vector<std::string> sans = names.ips;
  sans.insert(sans.begin(), names.dns_names.begin(), names.dns_names.end());
  const std::string join_address = fmt::format("{}:{}", first, kJoinPort);
  return fmt::format(
      "Initialised Gantry's control plane in {dir}:\n"
      "  {ca_crt:<24} CA certificate (ECDSA P-256), valid until {ca_until}\n"
      "  {ca_key:<24} CA private key: keep it secret and back it up\n"
      "  {srv:<24} cloudcore's serving certificate for {sans}, valid until {srv_until}\n"
      "  {sign:<24} signs join tokens: keep it secret\n"
      "  {tokens:<24} API bearer tokens (admin)\n"
      "  {yaml:<24} cloudcore's configuration\n"
      "  {kube:<24} kubectl credentials for admin ({server})\n"
      "\n"
      "Next:\n"
      "  1. Start cloudcore:\n"
      "       cloudcore --config {yaml_abs}\n"
      "     (or under systemd: deploy/systemd/cloudcore.service)\n"
      "  2. Get a join token for an edge node:\n"
      "       gantryadm gettoken --data-dir {dir} --ttl 24h --province PROVINCE\n"
      "  3. On the edge node, join with that token (cloudcore's join endpoint is on :{jp}):\n"
      "       gantryadm join --cloudcore {join} --token TOKEN --node-name NAME "
      "--province PROVINCE --data-dir /var/lib/gantry/edgecore\n",
      fmt::arg("dir", dir.string()), fmt::arg("ca_crt", kCaCert),
      fmt::arg("ca_until", common::format_rfc3339(ca.not_after())), fmt::arg("ca_key", kCaKey),
      fmt::arg("srv", "pki/cloudcore.{crt,key}"), fmt::arg("sans", fmt::join(sans, ", ")),
      fmt::arg("srv_until", common::format_rfc3339(serving.not_after())),
      fmt::arg("sign", kTokenSigningKey), fmt::arg("tokens", kTokenFile),
      fmt::arg("yaml", kCloudcoreConfig), fmt::arg("kube", kAdminKubeconfig),
      fmt::arg("server", server), fmt::arg("yaml_abs", (dir / kCloudcoreConfig).string()),
      fmt::arg("jp", kJoinPort), fmt::arg("join", join_address));
}

}  // namespace gantry::adm
