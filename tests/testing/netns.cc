#include "tests/testing/netns.h"

#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

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
  const std::string cmds[] = {
      absl::StrCat("ip netns add ", n),
      absl::StrCat("ip netns add ", net->pod_a_),
      absl::StrCat("ip netns add ", net->pod_b_),
      absl::StrCat("ip -n ", n, " link set lo up"),
      absl::StrCat("ip netns exec ", n, " sysctl -qw net.ipv4.ip_forward=1"),
      // pod a
      absl::StrCat("ip -n ", n, " link add ", net->veth_a(), " type veth peer name eth0 netns ",
                   net->pod_a_),
      absl::StrCat("ip -n ", n, " addr add 10.200.1.1/24 dev ", net->veth_a()),
      absl::StrCat("ip -n ", n, " link set ", net->veth_a(), " up"),
      absl::StrCat("ip -n ", net->pod_a_, " link set lo up"),
      absl::StrCat("ip -n ", net->pod_a_, " addr add ", kIpA, "/24 dev eth0"),
      absl::StrCat("ip -n ", net->pod_a_, " link set eth0 up"),
      absl::StrCat("ip -n ", net->pod_a_, " route add default via 10.200.1.1"),
      // pod b
      absl::StrCat("ip -n ", n, " link add ", net->veth_b(), " type veth peer name eth0 netns ",
                   net->pod_b_),
      absl::StrCat("ip -n ", n, " addr add 10.200.2.1/24 dev ", net->veth_b()),
      absl::StrCat("ip -n ", n, " link set ", net->veth_b(), " up"),
      absl::StrCat("ip -n ", net->pod_b_, " link set lo up"),
      absl::StrCat("ip -n ", net->pod_b_, " addr add ", kIpB, "/24 dev eth0"),
      absl::StrCat("ip -n ", net->pod_b_, " link set eth0 up"),
      absl::StrCat("ip -n ", net->pod_b_, " route add default via 10.200.2.1"),
  };
  for (const std::string& c : cmds) {
    if (auto r = Sh(c); !r.ok()) return r.status();  // the destructor removes what was made
  }
  return net;
}

absl::Status TestNetwork::AddNodeVeth(const std::string& suffix) {
  return Sh(absl::StrCat("ip -n ", node_, " link add ", prefix_, suffix, " type veth peer name ",
                         prefix_, suffix, "p"))
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
