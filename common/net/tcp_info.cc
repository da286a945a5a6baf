#include "common/net/tcp_info.h"

#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>

namespace gantry::common::detail {

bool read_tcp_byte_counts(int fd, uint64_t* bytes_acked, uint64_t* bytes_received) {
  struct tcp_info info {};
  socklen_t length = sizeof(info);
  if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &length) != 0) return false;
  // Older kernels return a shorter struct without the byte counters.
  if (length < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(info.tcpi_bytes_received)) {
    return false;
  }
  *bytes_acked = info.tcpi_bytes_acked;
  *bytes_received = info.tcpi_bytes_received;
  return true;
}

}  // namespace gantry::common::detail
