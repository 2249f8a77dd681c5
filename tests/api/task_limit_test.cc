// The tightest pids limit over a process's cgroup and its ancestors, for cgroup v1 and v2
// layouts (fake /proc/self/cgroup and /sys/fs/cgroup trees in a temporary directory).
#include "api/task_limit.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace flowscope {
namespace {

class TaskLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = std::filesystem::temp_directory_path() / ("fs-tasklimit-" + std::to_string(getpid()));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void Put(const std::string& rel, const std::string& text) {
    const std::filesystem::path p = root_ / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
  }
  std::optional<TaskUse> Tightest() {
    return TightestTaskLimit((root_ / "proc-cgroup").string(), (root_ / "sys").string());
  }

  std::filesystem::path root_;
};

TEST_F(TaskLimitTest, V1TheTightestOfTheCgroupAndItsAncestors) {
  Put("proc-cgroup", "9:name=systemd:/\n8:pids:/kubepods/pod1/c1\n0::/\n");
  Put("sys/pids/kubepods/pids.max", "1000\n");
  Put("sys/pids/kubepods/pids.current", "900\n");
  Put("sys/pids/kubepods/pod1/pids.max", "max\n");
  Put("sys/pids/kubepods/pod1/pids.current", "40\n");
  Put("sys/pids/kubepods/pod1/c1/pids.max", "64\n");
  Put("sys/pids/kubepods/pod1/c1/pids.current", "20\n");
  auto use = Tightest();
  ASSERT_TRUE(use.has_value());
  EXPECT_EQ(use->headroom(), 44);
  EXPECT_EQ(use->current, 20);
  EXPECT_EQ(use->max, 64);
  EXPECT_EQ(use->cgroup, (root_ / "sys/pids/kubepods/pod1/c1").string());
  // The ancestor gets tighter.
  Put("sys/pids/kubepods/pids.current", "990\n");
  use = Tightest();
  ASSERT_TRUE(use.has_value());
  EXPECT_EQ(use->headroom(), 10);
  EXPECT_EQ(use->cgroup, (root_ / "sys/pids/kubepods").string());
}

TEST_F(TaskLimitTest, V2AndNoLimitAtAll) {
  Put("proc-cgroup", "0::/system.slice/relay.service\n");
  Put("sys/system.slice/relay.service/pids.max", "32\n");
  Put("sys/system.slice/relay.service/pids.current", "31\n");
  auto use = Tightest();
  ASSERT_TRUE(use.has_value());
  EXPECT_EQ(use->headroom(), 1);
  Put("sys/system.slice/relay.service/pids.max", "max\n");
  EXPECT_FALSE(Tightest().has_value());
  Put("proc-cgroup", "garbage\n");
  EXPECT_FALSE(Tightest().has_value());
  EXPECT_FALSE(TightestTaskLimit((root_ / "nosuch").string()).has_value());
}

}  // namespace
}  // namespace flowscope
