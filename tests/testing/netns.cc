#include "tests/testing/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "tests/testing/wait.h"

namespace flowscope::testing {

absl::StatusOr<std::string> Sh(const std::string& command) {
  FILE* p = popen((command + " 2>&1").c_str(), "r");
  if (p == nullptr) return absl::ErrnoToStatus(errno, "popen");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  if (status != 0) {
    return absl::InternalError(absl::StrCat("`", command, "` failed (status ", status, "): ", out));
  }
  return out;
}

absl::StatusOr<std::string> ShIn(const std::string& netns, const std::string& command) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return absl::ErrnoToStatus(errno, "pipe");
  const pid_t child = fork();
  if (child < 0) return absl::ErrnoToStatus(errno, "fork");
  if (child == 0) {
    dup2(out[1], 1);
    dup2(out[1], 2);
    if (!EnterNetns(netns).ok()) _exit(126);
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return absl::InternalError(
        absl::StrCat("`", command, "` in netns ", netns, " failed (status ", status, "): ", text));
  }
  return text;
}

absl::Status EnterNetns(const std::string& name) {
  const std::string path = "/run/netns/" + name;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", path));
  const int r = setns(fd, CLONE_NEWNET);
  const int err = errno;
  close(fd);
  if (r != 0) return absl::ErrnoToStatus(err, absl::StrCat("setns ", path));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<NetnsProcess>> NetnsProcess::Start(
    const std::string& netns, const std::vector<std::string>& argv, const std::string& log_path) {
  const pid_t child = fork();
  if (child < 0) return absl::ErrnoToStatus(errno, "fork");
  if (child == 0) {
    const int log = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log >= 0) {
      dup2(log, 1);
      dup2(log, 2);
    }
    if (!netns.empty() && !EnterNetns(netns).ok()) _exit(126);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  auto p = std::unique_ptr<NetnsProcess>(new NetnsProcess());
  p->pid_ = child;
  return p;
}

bool NetnsProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  const pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) pid_ = -1;
  return r == 0;
}

absl::StatusOr<int> NetnsProcess::Signal(int sig, absl::Duration timeout) {
  if (pid_ <= 0) return absl::FailedPreconditionError("not running");
  kill(pid_, sig);
  int status = 0;
  if (!WaitUntil([&] { return waitpid(pid_, &status, WNOHANG) == pid_; }, timeout)) {
    return absl::DeadlineExceededError("the process did not exit");
  }
  pid_ = -1;
  return status;
}

NetnsProcess::~NetnsProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

NetnsThread::NetnsThread(std::string netns, std::function<void()> fn)
    : thread_([netns = std::move(netns), fn = std::move(fn)] {
        if (absl::Status s = EnterNetns(netns); !s.ok()) {
          fprintf(stderr, "NetnsThread: %s\n", std::string(s.message()).c_str());
          return;
        }
        fn();
      }) {}

NetnsThread::~NetnsThread() { Join(); }

void NetnsThread::Join() {
  if (thread_.joinable()) thread_.join();
}

void InNetns(const std::string& name, const std::function<void()>& fn) {
  NetnsThread t(name, fn);
  t.Join();
}

absl::StatusOr<std::unique_ptr<TestNetwork>> TestNetwork::Create() {
  std::unique_ptr<TestNetwork> net(new TestNetwork());
  const unsigned id = static_cast<unsigned>(getpid()) & 0xfffff;
  net->prefix_ = absl::StrFormat("fs%05x", id);
  net->node_ = net->prefix_ + "-node";
  net->pod_a_ = net->prefix_ + "-pa";
  net->pod_b_ = net->prefix_ + "-pb";
  net->Destroy();  // leftovers of an earlier process with the same pid

  const std::string& n = net->node_;
  const std::string& a = net->pod_a_;
  const std::string& b = net->pod_b_;
  // {namespace to run in ("" = here), command}
  const std::pair<std::string, std::string> cmds[] = {
      {"", absl::StrCat("ip netns add ", n)},
      {"", absl::StrCat("ip netns add ", a)},
      {"", absl::StrCat("ip netns add ", b)},
      {n, "ip link set lo up"},
      {n, "sysctl -qw net.ipv4.ip_forward=1"},
      // pod a
      {n, absl::StrCat("ip link add ", net->veth_a(), " type veth peer name eth0 netns ", a)},
      {n, absl::StrCat("ip addr add 10.200.1.1/24 dev ", net->veth_a())},
      {n, absl::StrCat("ip link set ", net->veth_a(), " up")},
      {a, "ip link set lo up"},
      {a, absl::StrCat("ip addr add ", kIpA, "/24 dev eth0")},
      {a, "ip link set eth0 up"},
      {a, "ip route add default via 10.200.1.1"},
      // pod b
      {n, absl::StrCat("ip link add ", net->veth_b(), " type veth peer name eth0 netns ", b)},
      {n, absl::StrCat("ip addr add 10.200.2.1/24 dev ", net->veth_b())},
      {n, absl::StrCat("ip link set ", net->veth_b(), " up")},
      {b, "ip link set lo up"},
      {b, absl::StrCat("ip addr add ", kIpB, "/24 dev eth0")},
      {b, "ip link set eth0 up"},
      {b, "ip route add default via 10.200.2.1"},
  };
  for (const auto& [ns, c] : cmds) {
    auto r = ns.empty() ? Sh(c) : ShIn(ns, c);
    if (!r.ok()) return r.status();  // the destructor removes what was made
  }
  return net;
}

absl::Status TestNetwork::AddNodeVeth(const std::string& suffix) {
  return ShIn(node_, absl::StrCat("ip link add ", prefix_, suffix, " type veth peer name ", prefix_,
                                  suffix, "p"))
      .status();
}

void TestNetwork::Destroy() {
  // Deleting a namespace deletes the interfaces in it, and so both ends of its veth pairs.
  for (const std::string& ns : {pod_a_, pod_b_, node_}) {
    (void)Sh(absl::StrCat("ip netns del ", ns));
  }
}

TestNetwork::~TestNetwork() { Destroy(); }

}  // namespace flowscope::testing
