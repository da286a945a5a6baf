// Strict parsing of the scalars that arrive as text (query parameters, headers, flags, object
// fields): the whole text must be the value, or the caller gets an error saying what was
// expected. One set for the whole tree, so "abc" is never read as 0 anywhere.
//
// Error messages are the detail only ("must be an integer"); callers name the field, e.g. with
// invalid_value(): `gracePeriodSeconds: Invalid value: "abc": must be an integer`, the way
// kube-apiserver words a field error.
#pragma once

#include <chrono>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "common/base/status.h"

namespace gantry::common {

// Decimal integer, optional sign, nothing else (no spaces, no "0x", no "1e3"); within [min, max].
Result<int64_t> parse_int64(std::string_view text,
                            int64_t min = std::numeric_limits<int64_t>::min(),
                            int64_t max = std::numeric_limits<int64_t>::max());
// Decimal digits only (no sign); at most `max`.
Result<uint64_t> parse_uint64(std::string_view text,
                              uint64_t max = std::numeric_limits<uint64_t>::max());

// What Go's strconv.ParseBool (so kube-apiserver) accepts: 1 t T TRUE true True, 0 f F FALSE
// false False.
Result<bool> parse_bool(std::string_view text);

// Go's time.ParseDuration syntax (what Kubernetes API fields and flags use; configuration files
// use common/base/config.h's parse_duration, which adds days and has no fractions): "300ms",
// "1.5h", "2h45m", "-10s"; units ns, us (µs), ms, s, m, h; "0" alone needs no unit.
Result<std::chrono::nanoseconds> parse_go_duration(std::string_view text);

// RFC 3339 as Kubernetes writes and reads times: "2026-12-02T14:44:00Z",
// "2026-12-02T14:44:00.123456Z", "2026-12-02T16:44:00+02:00" ('T'/'Z' in either case).
Result<std::chrono::system_clock::time_point> parse_rfc3339(std::string_view text);
// "2026-11-20T10:00:00Z" (metav1.Time: whole seconds, UTC).
std::string format_rfc3339(std::chrono::system_clock::time_point t);
// "2026-11-20T10:00:00.123456Z" (metav1.MicroTime).
std::string format_rfc3339_micro(std::chrono::system_clock::time_point t);

// Standard base64 with padding (RFC 4648 §4), as Kubernetes stores Secret data. Decoding, like
// Go's base64.StdEncoding (which kube-apiserver uses for []byte fields), skips '\r' and '\n' and
// refuses anything else outside the alphabet, wrong padding or non-zero trailing bits.
std::string base64_encode(std::string_view data);
Result<std::string> base64_decode(std::string_view text);
// base64url without padding (RFC 4648 §5); decoding refuses padding and other characters.
std::string base64url_encode(std::string_view data);
std::optional<std::string> base64url_decode(std::string_view text);

// `name: Invalid value: "text": detail` as a kInvalidArgument Status (a 400 for a query
// parameter). The value is quoted as Go's %q would, cut after 100 characters.
Status invalid_value(std::string_view name, std::string_view text, std::string_view detail);

// Named values (query parameters, headers): absent stays absent (nullopt); present must parse,
// or the error is invalid_value(name, text, detail) — the 400 kube-apiserver gives.
Result<std::optional<int64_t>> parse_int64_param(std::string_view name,
                                                 const std::optional<std::string>& text,
                                                 int64_t min = std::numeric_limits<int64_t>::min(),
                                                 int64_t max = std::numeric_limits<int64_t>::max());
Result<std::optional<uint64_t>> parse_uint64_param(std::string_view name,
                                                   const std::optional<std::string>& text);
Result<std::optional<bool>> parse_bool_param(std::string_view name,
                                             const std::optional<std::string>& text);
Result<std::optional<std::chrono::system_clock::time_point>> parse_rfc3339_param(
    std::string_view name, const std::optional<std::string>& text);

}  // namespace gantry::common
