#include "tests/e2e/gantryadm/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "tests/support/test_support.h"

namespace gantry::adm_test {
namespace {

pid_t spawn(const std::vector<std::string>& argv, const std::filesystem::path& out,
            const std::filesystem::path& err) {
  std::vector<std::string> copy = argv;
  std::vector<char*> args;
  args.reserve(copy.size() + 1);
  for (auto& a : copy) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid == 0) {
    int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int e = out == err ? o : ::open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (o < 0 || e < 0) ::_exit(126);
    ::dup2(o, 1);
    ::dup2(e, 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  return pid;
}

int decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_text(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string replace_all(std::string text, const std::string& from, const std::string& to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

RunResult run(const std::vector<std::string>& argv, const std::filesystem::path& scratch) {
  static int counter = 0;
  const auto base =
      scratch / ("run-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
  const auto out = base.string() + ".out";
  const auto err = base.string() + ".err";
  pid_t pid = spawn(argv, out, err);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  RunResult r;
  r.exit_code = decode(status);
  r.out = read_text(out);
  r.err = read_text(err);
  std::error_code ec;
  std::filesystem::remove(out, ec);
  std::filesystem::remove(err, ec);
  return r;
}

Background::Background(const std::vector<std::string>& argv, std::filesystem::path log)
    : log_(std::move(log)) {
  pid_ = spawn(argv, log_, log_);
}

Background::~Background() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait();
  }
}

bool Background::running() {
  if (reaped_) return false;
  int status = 0;
  if (::waitpid(pid_, &status, WNOHANG) == pid_) {
    reaped_ = true;
    status_ = status;
    return false;
  }
  return true;
}

void Background::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

int Background::wait(std::chrono::milliseconds timeout) {
  if (!test::eventually([&] { return !running(); }, timeout)) return -1;
  return decode(status_);
}

std::string Background::log() const {
  return read_text(log_);
}

}  // namespace gantry::adm_test
