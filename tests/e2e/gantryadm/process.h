// Runs the real binaries for the gantryadm e2e tests: to completion (capturing output) or in the
// background (output in a log file the test polls).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <vector>

namespace gantry::adm_test {

struct RunResult {
  int exit_code = -1;  // 128 + signal when killed
  std::string out;
  std::string err;
};

// Runs argv[0] (a path) with argv, waits for it, returns its exit code, stdout and stderr.
// `scratch` is a directory for the captured output.
RunResult run(const std::vector<std::string>& argv, const std::filesystem::path& scratch);

// A process running in the background with stdout and stderr appended to `log`. Killed (SIGKILL)
// when the object dies if it is still running.
class Background {
 public:
  Background(const std::vector<std::string>& argv, std::filesystem::path log);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;

  pid_t pid() const { return pid_; }
  bool running();  // reaps the child once it has exited
  void signal(int sig);
  // Exit code (128 + signal when killed), or -1 if it did not end within `timeout`.
  int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30));
  std::string log() const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
  std::filesystem::path log_;
};

std::string read_text(const std::filesystem::path& path);
void write_text(const std::filesystem::path& path, const std::string& text);
// Every occurrence of `from` in `text` replaced by `to`.
std::string replace_all(std::string text, const std::string& from, const std::string& to);

}  // namespace gantry::adm_test
