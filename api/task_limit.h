// The room a process has left for new threads under a pids cgroup limit (v1's pids controller or
// v2's pids.max; the tightest of its cgroup and that cgroup's ancestors), read afresh on each
// call: a daemon refuses new work while little is left, rather than let a library's thread
// creation fail under load (gRPC's executors then lose their work and stop serving).
#ifndef FLOWSCOPE_API_TASK_LIMIT_H_
#define FLOWSCOPE_API_TASK_LIMIT_H_

#include <cstdint>
#include <optional>
#include <string>

namespace flowscope {

struct TaskUse {
  int64_t current = 0;  // tasks (threads) in the cgroup
  int64_t max = 0;      // its pids.max
  std::string cgroup;   // the directory that limits
  int64_t headroom() const { return max - current; }
};

// The tightest pids limit over this process's cgroup and its ancestors; none when unlimited or
// when the cgroup files cannot be read. `proc_cgroup` and `root` are for tests.
std::optional<TaskUse> TightestTaskLimit(const std::string& proc_cgroup = "/proc/self/cgroup",
                                         const std::string& root = "/sys/fs/cgroup");

}  // namespace flowscope

#endif  // FLOWSCOPE_API_TASK_LIMIT_H_
