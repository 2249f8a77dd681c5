#include "cmd/cli/port_forward.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

extern char** environ;

namespace flowscope::cli {
namespace {

bool Accepts(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return std::string(absl::StripAsciiWhitespace(text.str()));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PortForward>> PortForward::Start(const PortForwardOptions& options) {
  if (options.local_port <= 0 || options.local_port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid --port-forward-port ", options.local_port));
  }
  if (Accepts(options.local_port)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot port-forward: local port ", options.local_port,
                     " is already in use (pick another with --port-forward-port)"));
  }
  std::vector<std::string> args = {options.kubectl};
  if (!options.kubeconfig.empty()) {
    args.push_back("--kubeconfig");
    args.push_back(options.kubeconfig);
  }
  if (!options.kube_context.empty()) {
    args.push_back("--context");
    args.push_back(options.kube_context);
  }
  args.insert(args.end(), {"--namespace", options.kube_namespace, "port-forward", "--address",
                           "127.0.0.1", "service/" + options.service,
                           absl::StrCat(options.local_port, ":", options.service_port)});
  char log_template[] = "/tmp/flowscope-port-forward-XXXXXX";
  const int log_fd = mkstemp(log_template);
  if (log_fd < 0) {
    return absl::InternalError(absl::StrCat("cannot create a log file: ", strerror(errno)));
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, log_fd, 1);
  posix_spawn_file_actions_adddup2(&actions, log_fd, 2);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, args[0].c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(log_fd);
  if (rc != 0) {
    unlink(log_template);
    return absl::FailedPreconditionError(
        absl::StrCat("cannot port-forward: cannot run ", options.kubectl, ": ", strerror(rc),
                     rc == ENOENT ? " (is kubectl installed and on PATH?)" : ""));
  }
  std::unique_ptr<PortForward> pf(new PortForward(pid, options.local_port, log_template));
  const absl::Time deadline = absl::Now() + options.ready_timeout;
  while (!Accepts(options.local_port)) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      pf->pid_ = 0;  // already gone
      const std::string said = ReadAll(pf->log_);
      return absl::UnavailableError(absl::StrCat("cannot port-forward to service/", options.service,
                                                 " in namespace ", options.kube_namespace,
                                                 ": kubectl exited",
                                                 said.empty() ? "" : absl::StrCat(": ", said)));
    }
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "cannot port-forward to service/", options.service, ": local port ", options.local_port,
          " did not open within ", absl::FormatDuration(options.ready_timeout)));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return pf;
}

PortForward::~PortForward() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    const absl::Time deadline = absl::Now() + absl::Seconds(2);
    int status = 0;
    while (waitpid(pid_, &status, WNOHANG) != pid_) {
      if (absl::Now() >= deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        break;
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  unlink(log_.c_str());
}

std::string PortForward::target() const { return absl::StrCat("127.0.0.1:", local_port_); }

}  // namespace flowscope::cli
