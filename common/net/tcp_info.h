// Kernel TCP byte counters. Kept in its own file: <linux/tcp.h> (which has them) clashes with
// <netinet/tcp.h>, which Asio includes.
#pragma once

#include <cstdint>

namespace gantry::common::detail {

// Bytes acknowledged by the peer and bytes received on socket `fd`; false when unavailable.
bool read_tcp_byte_counts(int fd, uint64_t* bytes_acked, uint64_t* bytes_received);

}  // namespace gantry::common::detail
