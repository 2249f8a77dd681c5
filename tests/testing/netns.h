// Test hosts in network namespaces: a "node" namespace with two "pods" (namespaces connected to
// it by veth pairs, routed through it), created per test process with unique names and removed
// in the destructor, even when the test fails. Also: running code on a thread inside a
// namespace, and running iproute2 commands. Needs root.
//
//   auto net = TestNetwork::Create();                 // node, pod a (10.200.1.2), pod b (.2.2)
//   InNetns((*net)->pod_b(), [&] { ... listen ... });
#ifndef FLOWSCOPE_TESTS_TESTING_NETNS_H_
#define FLOWSCOPE_TESTS_TESTING_NETNS_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace flowscope::testing {

// Runs `command` with /bin/sh; returns its stdout+stderr, or an error with them if it failed.
absl::StatusOr<std::string> Sh(const std::string& command);

// The same, inside network namespace `netns` (entered with setns() in the child, so it works
// where `ip netns exec` cannot remount, e.g. in a chroot).
absl::StatusOr<std::string> ShIn(const std::string& netns, const std::string& command);

// Moves the calling thread into network namespace `name` (/run/netns/<name>).
absl::Status EnterNetns(const std::string& name);

// Runs `fn` on a new thread inside namespace `name` and waits for it.
void InNetns(const std::string& name, const std::function<void()>& fn);

// A process started inside a namespace (stdout and stderr to `log_path`). The destructor kills
// it (SIGKILL) if it is still running.
class NetnsProcess {
 public:
  static absl::StatusOr<std::unique_ptr<NetnsProcess>> Start(const std::string& netns,
                                                             const std::vector<std::string>& argv,
                                                             const std::string& log_path);
  ~NetnsProcess();
  pid_t pid() const { return pid_; }
  // Sends `sig`, waits up to `timeout`; returns the exit status (as waitpid reports it), or
  // DeadlineExceeded if it did not exit.
  absl::StatusOr<int> Signal(int sig, absl::Duration timeout);
  bool Running();

 private:
  pid_t pid_ = -1;
};

// A thread running inside a namespace; joined by the destructor.
class NetnsThread {
 public:
  NetnsThread(std::string netns, std::function<void()> fn);
  ~NetnsThread();
  void Join();

 private:
  std::thread thread_;
};

class TestNetwork {
 public:
  static absl::StatusOr<std::unique_ptr<TestNetwork>> Create();
  ~TestNetwork();

  const std::string& node() const { return node_; }
  const std::string& pod_a() const { return pod_a_; }
  const std::string& pod_b() const { return pod_b_; }
  // Node-side veth names; all interfaces this network makes start with prefix().
  const std::string& prefix() const { return prefix_; }
  std::string veth_a() const { return prefix_ + "a"; }
  std::string veth_b() const { return prefix_ + "b"; }
  static constexpr const char* kIpA = "10.200.1.2";
  static constexpr const char* kIpB = "10.200.2.2";

  // Adds another veth pair to the node (the peer end stays in the node, down).
  absl::Status AddNodeVeth(const std::string& suffix);

 private:
  TestNetwork() = default;
  void Destroy();

  std::string prefix_;
  std::string node_;
  std::string pod_a_;
  std::string pod_b_;
};

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_NETNS_H_
