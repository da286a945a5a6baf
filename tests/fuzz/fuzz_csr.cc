// CSRs (an edge's CertificateRequest at rotation, /join's csr): any bytes are read or refused with
// a message; OpenSSL's PEM and DER parsers are behind this.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/pki/pki.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view pem(reinterpret_cast<const char*>(data), size);
  auto info = gantry::common::read_csr(pem);
  if (!info.ok() && info.status().message().empty()) __builtin_trap();
  return 0;
}
