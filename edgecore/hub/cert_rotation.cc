#include "edgecore/hub/cert_rotation.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/base/atomic_file.h"

namespace gantry::edge {
namespace {

namespace fs = std::filesystem;
using common::Code;
using common::make_error;

constexpr std::string_view kNodeCnPrefix = "system:node:";

// rename(2), then fsync of the directory so that the rename survives a power cut.
common::Status rename_durably(const fs::path& from, const fs::path& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) {
    return make_error(Code::kInternal, "renaming {} to {}: {}", from.string(), to.string(),
                      std::strerror(errno));
  }
  fs::path dir = to.parent_path().empty() ? fs::path(".") : to.parent_path();
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return make_error(Code::kInternal, "opening {}: {}", dir.string(), std::strerror(errno));
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0)
    return make_error(Code::kInternal, "syncing {}: {}", dir.string(), std::strerror(err));
  return common::ok_status();
}

bool key_matches(const common::Certificate& cert, const common::PrivateKey& key) {
  bool ok = X509_check_private_key(cert.get(), key.get()) == 1;
  ERR_clear_error();
  return ok;
}

// A `.next` pair left by an interrupted on_response: the key and certificate are each written
// complete (temporary file + rename) before either replaces the live files, key first. So:
//   cert.next absent            -> the certificate never arrived: drop key.next;
//   cert.next and key.next      -> both written, nothing renamed: finish;
//   cert.next only              -> the key was renamed already: finish with the live key.
// Finishing needs the new certificate to match the new key; otherwise the .next files go.
common::Status recover_interrupted(const fs::path& cert_file, const fs::path& key_file) {
  const fs::path cert_next = next_file(cert_file);
  const fs::path key_next = next_file(key_file);
  std::error_code ec;
  const bool has_cert = fs::exists(cert_next, ec);
  const bool has_key = fs::exists(key_next, ec);
  if (!has_cert) {
    if (has_key) {
      spdlog::warn(
          "certificate rotation: {} without {}: the rotation was interrupted before the "
          "certificate arrived; discarding it",
          key_next.string(), cert_next.string());
      fs::remove(key_next, ec);
    }
    return common::ok_status();
  }
  const fs::path new_key_file = has_key ? key_next : key_file;
  auto cert_pem = common::read_file(cert_next);
  auto key_pem = common::read_file(new_key_file);
  std::optional<common::Certificate> cert;
  std::optional<common::PrivateKey> key;
  if (cert_pem.ok()) {
    if (auto c = common::Certificate::from_pem(*cert_pem); c.ok()) cert = std::move(c).value();
  }
  if (key_pem.ok()) {
    if (auto k = common::PrivateKey::from_pem(*key_pem); k.ok()) key = std::move(k).value();
  }
  if (!cert || !key || !key_matches(*cert, *key)) {
    spdlog::warn("certificate rotation: {} does not match {}; discarding the interrupted rotation",
                 cert_next.string(), new_key_file.string());
    fs::remove(cert_next, ec);
    fs::remove(key_next, ec);
    return common::ok_status();
  }
  if (has_key) GANTRY_RETURN_IF_ERROR(rename_durably(key_next, key_file));
  GANTRY_RETURN_IF_ERROR(rename_durably(cert_next, cert_file));
  spdlog::info("certificate rotation: finished an interrupted rotation: {} is now serial {}",
               cert_file.string(), cert->serial_hex());
  return common::ok_status();
}

}  // namespace

fs::path next_file(const fs::path& file) {
  return fs::path(file.string() + ".next");
}

common::Result<std::unique_ptr<CertRotation>> CertRotation::load(CertRotationOptions options,
                                                                 const common::Clock& clock,
                                                                 common::Random& random) {
  if (!(options.window_start > 0 && options.window_start <= options.window_end &&
        options.window_end < 1)) {
    return make_error(Code::kInvalidArgument, "the renewal window must lie within (0, 1)");
  }
  std::unique_ptr<CertRotation> rotation(new CertRotation(std::move(options), clock, random));
  GANTRY_RETURN_IF_ERROR(rotation->reload());
  return rotation;
}

common::Status CertRotation::reload() {
  GANTRY_RETURN_IF_ERROR(recover_interrupted(options_.cert_file, options_.key_file));
  GANTRY_ASSIGN_OR_RETURN(std::string ca_pem, common::read_file(options_.ca_file));
  auto roots = common::Certificate::bundle_from_pem(ca_pem);
  if (!roots.ok()) return roots.status().with_context("tls.ca " + options_.ca_file.string());
  GANTRY_ASSIGN_OR_RETURN(std::string cert_pem, common::read_file(options_.cert_file));
  GANTRY_ASSIGN_OR_RETURN(std::string key_pem, common::read_file(options_.key_file));
  auto cert = common::Certificate::from_pem(cert_pem);
  if (!cert.ok()) return cert.status().with_context("tls.cert " + options_.cert_file.string());
  auto key = common::PrivateKey::from_pem(key_pem);
  if (!key.ok()) return key.status().with_context("tls.key " + options_.key_file.string());
  if (!key_matches(*cert, *key)) {
    return make_error(Code::kInvalidArgument, "tls.key {} is not the key of tls.cert {}",
                      options_.key_file.string(), options_.cert_file.string());
  }
  ca_pem_ = std::move(ca_pem);
  roots_ = std::move(roots).value();
  return install(std::move(cert).value(), std::move(key).value());
}

common::Status CertRotation::install(common::Certificate cert, common::PrivateKey key) {
  common::TlsOptions tls_options;
  tls_options.cert_pem = cert.to_pem();
  tls_options.key_pem = key.to_pem();
  tls_options.ca_pem = ca_pem_;
  tls_options.verify_peer = true;
  GANTRY_ASSIGN_OR_RETURN(tls_, common::TlsContext::create(common::TlsRole::kClient, tls_options));
  cert_ = std::move(cert);
  draw_renew_at();
  return common::ok_status();
}

void CertRotation::draw_renew_at() {
  const auto not_before = cert_.not_before();
  const auto lifetime = cert_.not_after() - not_before;
  const double fraction =
      options_.window_start + random_.uniform01() * (options_.window_end - options_.window_start);
  renew_at_ = not_before +
              std::chrono::duration_cast<std::chrono::system_clock::duration>(lifetime * fraction);
}

bool CertRotation::expired() const {
  return clock_.system_now() >= cert_.not_after();
}

common::Status CertRotation::check_before_connect() {
  if (!expired()) return common::ok_status();
  const std::string old_serial = cert_.serial_hex();
  if (auto s = reload(); !s.ok()) {
    spdlog::warn("certificate: reading the replaced certificate files failed: {}", s.to_string());
  } else if (cert_.serial_hex() != old_serial && !expired()) {
    spdlog::info("certificate: loaded a new certificate from {} (serial {}, valid until {})",
                 options_.cert_file.string(), cert_.serial_hex(),
                 common::format_rfc3339(cert_.not_after()));
    return common::ok_status();
  }
  if (!expired()) return common::ok_status();
  return make_error(Code::kDeadlineExceeded,
                    "this node's certificate expired at {}: get a new one with gantryadm join "
                    "(see docs/operations.md)",
                    common::format_rfc3339(cert_.not_after()));
}

common::Result<v1::Frame> CertRotation::make_request() {
  GANTRY_ASSIGN_OR_RETURN(common::PrivateKey key, common::PrivateKey::generate());
  GANTRY_ASSIGN_OR_RETURN(std::string csr,
                          common::create_csr(key, std::string(kNodeCnPrefix) + options_.node_name));
  pending_key_ = std::move(key);
  v1::Frame frame;
  frame.mutable_certificate_request()->set_csr_pem(std::move(csr));
  return frame;
}

common::Status CertRotation::on_response(const v1::CertificateResponse& response) {
  if (!pending_key_) {
    return make_error(Code::kFailedPrecondition, "a certificate arrived that was not asked for");
  }
  common::PrivateKey key = std::move(*pending_key_);
  pending_key_.reset();
  if (!response.error().empty()) {
    return make_error(Code::kUnavailable, "cloudcore refused to renew the certificate: {}",
                      response.error());
  }
  auto cert = common::Certificate::from_pem(response.certificate_pem());
  if (!cert.ok()) return cert.status().with_context("the renewed certificate");
  if (!key_matches(*cert, key)) {
    return make_error(Code::kInvalidArgument,
                      "the renewed certificate (serial {}) is not for the key this node sent",
                      cert->serial_hex());
  }
  const std::string expected_cn = std::string(kNodeCnPrefix) + options_.node_name;
  if (cert->common_name() != expected_cn) {
    return make_error(Code::kInvalidArgument, "the renewed certificate is for '{}', not '{}'",
                      cert->common_name(), expected_cn);
  }
  // At the certificate's own start when this clock is behind: a skewed clock is not a reason to
  // refuse a fresh certificate; an expired one (by this clock) is refused below.
  const auto now = clock_.system_now();
  GANTRY_RETURN_IF_ERROR(
      common::verify_certificate(*cert, roots_, std::max(now, cert->not_before())));
  if (cert->not_after() <= now) {
    return make_error(Code::kInvalidArgument, "the renewed certificate expired at {}",
                      common::format_rfc3339(cert->not_after()));
  }

  // Both files complete on disk before either replaces the live pair; key first (see
  // recover_interrupted for how load() finishes what a power cut interrupted).
  const fs::path key_next = next_file(options_.key_file);
  const fs::path cert_next = next_file(options_.cert_file);
  auto written = common::write_file_atomic(key_next, key.to_pem(), 0600);
  if (written.ok()) written = common::write_file_atomic(cert_next, cert->to_pem(), 0644);
  if (!written.ok()) {
    std::error_code ec;
    fs::remove(cert_next, ec);
    fs::remove(key_next, ec);
    return written.with_context("writing the renewed certificate");
  }
  GANTRY_RETURN_IF_ERROR(rename_durably(key_next, options_.key_file));
  GANTRY_RETURN_IF_ERROR(rename_durably(cert_next, options_.cert_file));
  return install(std::move(cert).value(), std::move(key));
}

std::chrono::milliseconds CertRotation::retry_delay() {
  using std::chrono::milliseconds;
  auto left = std::chrono::duration_cast<milliseconds>(cert_.not_after() - clock_.system_now());
  auto base = std::clamp(left / 10, options_.retry_min, options_.retry_max);
  double jitter = 0.5 + random_.uniform01();
  return milliseconds(static_cast<int64_t>(static_cast<double>(base.count()) * jitter));
}

}  // namespace gantry::edge
