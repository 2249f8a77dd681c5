// AttachManager: keeps the datapath's tc programs attached to every interface whose name
// matches the configured patterns, in the network namespace of the thread that calls Start().
// It follows netlink link events (new matching interfaces are attached at once, removed ones
// forgotten), removes exactly the tc filters it created on Stop() (and the clsact qdisc only if
// it created it), and on Start() removes what an earlier run that crashed left behind.
//
// All tc and netlink work happens on the manager's own thread. Start() and Stop() may be called
// from any one thread; Attached() from any thread.
//
//   FLOWSCOPE_ASSIGN_OR_RETURN(auto patterns, ParseInterfaceRules("veth*,lxc*", "eth0"));
//   AttachManager mgr(datapath, {.rules = patterns, .state_file = "/run/flowscope/tc.state"});
//   FLOWSCOPE_RETURN_IF_ERROR(mgr.Start());
//   ...
//   mgr.Stop();
#ifndef FLOWSCOPE_OBSERVER_ATTACH_MANAGER_H_
#define FLOWSCOPE_OBSERVER_ATTACH_MANAGER_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bpf/datapath.h"

namespace flowscope::observer {

// The tc handle and priority of every filter flowscope creates; with the program name prefix
// they identify our filters among others on the same hook.
inline constexpr uint32_t kTcHandle = 0xf10c;
inline constexpr uint32_t kTcPriority = 0x1f1;
inline constexpr absl::string_view kProgNamePrefix = "flowscope_";

struct InterfaceRule {
  std::string pattern;  // shell glob on the interface name ("lxc*") or an exact name
  fs_obs_point ingress = FS_OBS_FROM_ENDPOINT;
  fs_obs_point egress = FS_OBS_TO_ENDPOINT;
};

// Endpoint patterns (comma-separated; host sides of pod interfaces) and network interfaces
// (comma-separated uplinks: from-network / to-network). Empty entries and names longer than an
// interface name can be are errors.
absl::StatusOr<std::vector<InterfaceRule>> ParseInterfaceRules(absl::string_view endpoints,
                                                               absl::string_view network);

class InterfaceNames;

struct AttachOptions {
  std::vector<InterfaceRule> rules;
  // Where the manager records which clsact qdiscs it created, so a restart after a crash
  // removes only those. Empty: not recorded (leftover filters are still found and removed).
  std::string state_file;
  // Kept up to date with the names of attached interfaces (for flows' `interface`); optional.
  InterfaceNames* names = nullptr;
};

struct AttachedInterface {
  std::string name;
  uint32_t ifindex = 0;
  bool created_qdisc = false;
  fs_obs_point ingress = FS_OBS_UNKNOWN;
  fs_obs_point egress = FS_OBS_UNKNOWN;
};

class AttachManager {
 public:
  AttachManager(bpf::Datapath& datapath, AttachOptions options);
  ~AttachManager();  // Stop()s
  AttachManager(const AttachManager&) = delete;
  AttachManager& operator=(const AttachManager&) = delete;

  // Cleans up leftovers, attaches to every matching interface and starts following link
  // events. Fails (attaching nothing) if netlink is unavailable or the first attach is refused.
  absl::Status Start();

  // Detaches everything this manager attached and stops following events. Idempotent.
  void Stop();

  std::vector<AttachedInterface> Attached() const;

  // Blocks until `name` is attached (or detached, with attached=false) or the deadline passes.
  bool WaitFor(absl::string_view name, bool attached, absl::Time deadline) const;

  // Errors met while following events (an interface that could not be attached, say).
  std::vector<std::string> Errors() const;

 private:
  void Run(std::promise<absl::Status>* started);
  absl::Status Sync();  // dump links, attach matching ones
  void HandleNetlink();
  // Handles the link messages in `buf`; sets *dump_done at the end of our dump. Returns
  // PermissionDenied (nothing can attach) or a dump error; other problems go to Errors().
  absl::Status Process(const char* buf, size_t len, bool* dump_done);
  absl::Status OnLink(uint32_t ifindex, const std::string& name, bool removed);
  absl::Status AttachOne(uint32_t ifindex, const std::string& name, const InterfaceRule& rule);
  void DetachAll();
  void CleanupLeftovers();
  void SaveState();
  const InterfaceRule* Match(const std::string& name) const;
  void AddError(std::string error);

  bpf::Datapath& datapath_;
  const AttachOptions options_;
  int netlink_fd_ = -1;
  int stop_fd_ = -1;
  std::thread thread_;
  std::atomic<bool> running_{false};

  mutable std::mutex mu_;
  mutable std::condition_variable changed_;
  std::map<uint32_t, AttachedInterface> attached_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> errors_ ABSL_GUARDED_BY(mu_);
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_ATTACH_MANAGER_H_
