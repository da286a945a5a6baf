// One exec or attach session with a CRI runtime's streaming server (the URL CRI Exec/Attach
// return: containerd's server on 127.0.0.1, a random port, a one-time token).
//
// containerd 1.6 (Debian 12) serves SPDY/3.1 and WebSocket (v4.channel.k8s.io and older). Its
// WebSocket protocols cannot end stdin without ending the whole session (that is what the v5
// protocol added upstream, which 1.6 does not have), so `echo abc | kubectl exec -i POD -- cat`
// would lose cat's output: this client speaks SPDY/3.1 with the v4.channel.k8s.io streams instead,
// where stdin ends with a FIN on its own stream.
//
// What it implements of SPDY/3.1 (draft-mbelshe-httpbis-spdy-00 and its 3.1 revision): an HTTP/1.1
// Upgrade, SYN_STREAM (client streams 1, 3, 5, ... with one header `streamtype`), data frames with
// FIN, PING echoed; SYN_REPLY, SETTINGS, WINDOW_UPDATE, HEADERS and GOAWAY are read and ignored.
// Header blocks are sent as zlib "stored" (uncompressed) deflate blocks, which a SPDY peer's zlib
// reads without the SPDY dictionary; the server's header blocks are never needed, so they are
// skipped, not inflated.
//
// The process's result comes on the error stream as a metav1.Status (v4): Success, or Failure
// with reason NonZeroExitCode and the code in details.causes[reason=ExitCode].message.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/base/status.h"

namespace boost::asio {
class io_context;
}

namespace gantry::edge {

struct SpdyExecOptions {
  bool stdin = false;
  bool stdout = true;
  bool stderr = true;  // ignored with tty
  bool tty = false;
};

// How a session ended.
struct ExecResult {
  bool exited = false;  // the process ended: exit_code holds its code
  int exit_code = 0;
  std::string error;  // otherwise: why the session failed (for a person)
};

class SpdyExec {
 public:
  // Called on the session's strand, one at a time.
  struct Callbacks {
    std::function<void()> on_ready;                                     // streams set up
    std::function<void(uint32_t channel, std::string data)> on_output;  // 1 stdout, 2 stderr
    std::function<void(ExecResult result)> on_end;                      // once, last
  };

  // Connects to `url` (http://HOST:PORT/PATH) and runs the session on `ioc`. Callbacks may run
  // before start() returns only through `ioc` (never inline).
  static std::shared_ptr<SpdyExec> start(boost::asio::io_context& ioc, std::string url,
                                         SpdyExecOptions options, Callbacks callbacks);
  virtual ~SpdyExec() = default;

  // All thread-safe (posted onto the session's strand); ignored once the session ended.
  // `written` runs on the strand when the bytes have gone to the socket.
  virtual void write_stdin(std::string data, std::function<void()> written) = 0;
  virtual void close_stdin() = 0;
  virtual void resize(uint32_t width, uint32_t height) = 0;
  // Stops (true) or resumes reading output: the caller's flow control. While paused, the
  // runtime's output waits in the kernel's socket buffers and then in the process.
  virtual void pause_output(bool paused) = 0;
  // Ends the session without on_end (closes the connection: the runtime ends the process's
  // streams).
  virtual void cancel() = 0;
};

// The exit code in a v4 error-stream Status, or why the process failed. Exposed for tests.
ExecResult parse_exec_status(const std::string& status_json);

}  // namespace gantry::edge
