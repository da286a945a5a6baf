#include "tests/support/test_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <system_error>
#include <thread>

namespace gantry::test {

TempDir::TempDir() {
  std::random_device rd;
  auto base = std::filesystem::temp_directory_path();
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = base / ("gantry-test-" + std::to_string(rd()));
    std::error_code ec;
    if (std::filesystem::create_directory(candidate, ec)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds timeout,
                std::chrono::milliseconds interval) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return condition();
    std::this_thread::sleep_for(interval);
  }
}

unsigned short free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    throw std::system_error(errno, std::generic_category(), "bind");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

ChildProcess::ChildProcess(std::vector<std::string> argv, std::filesystem::path log)
    : log_(std::move(log)) {
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_ = ::fork();
  if (pid_ < 0) throw std::system_error(errno, std::generic_category(), "fork");
  if (pid_ == 0) {
    int fd = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    ::execv(args[0], args.data());
    ::_exit(127);
  }
}

ChildProcess::~ChildProcess() {
  if (running()) {
    ::kill(pid_, SIGKILL);
    wait();
  }
}

bool ChildProcess::running() {
  if (reaped_ || pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = status;
    return false;
  }
  return true;
}

void ChildProcess::signal(int sig) {
  if (running()) ::kill(pid_, sig);
}

int ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (!eventually([&] { return !running(); }, timeout, std::chrono::milliseconds(5))) return -1;
  if (WIFEXITED(status_)) return WEXITSTATUS(status_);
  if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
  return -1;
}

std::string ChildProcess::log() const {
  std::ifstream in(log_);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

std::filesystem::path build_dir() {
  if (const char* dir = std::getenv("GANTRY_BUILD_DIR")) return dir;
  return std::filesystem::current_path();
}

bool gantryadm_init_on_loopback(const std::filesystem::path& dir, uint16_t tunnel, uint16_t api,
                                uint16_t join) {
  ChildProcess init({(build_dir() / "tools/gantryadm/gantryadm").string(), "init", "--data-dir",
                     dir.string(), "--advertise-address", "127.0.0.1"},
                    dir.string() + ".log");
  if (init.wait() != 0) return false;
  const auto yaml_path = dir / "cloudcore.yaml";
  std::stringstream in;
  in << std::ifstream(yaml_path).rdbuf();
  std::string yaml = in.str();
  for (auto [from, port] :
       {std::pair{"0.0.0.0:10000", tunnel}, {"0.0.0.0:10443", api}, {"0.0.0.0:10002", join}}) {
    const std::string to = "127.0.0.1:" + std::to_string(port);
    for (size_t at = yaml.find(from); at != std::string::npos; at = yaml.find(from, at + to.size()))
      yaml.replace(at, std::string_view(from).size(), to);
  }
  std::ofstream(yaml_path) << yaml;
  return true;
}

std::vector<std::string> kubectl_binaries() {
  std::vector<std::string> out;
  for (const char* p : {"/usr/lib/google-cloud-sdk/bin/kubectl.1.27",
                        "/usr/lib/google-cloud-sdk/bin/kubectl.1.33", "/usr/bin/kubectl",
                        "/usr/local/bin/kubectl", "/var/cache/gantry-kubectl/1.20/usr/bin/kubectl"})
    if (std::filesystem::exists(p)) out.emplace_back(p);
  return out;
}

}  // namespace gantry::test
