// OwnedThreads: every thread started is joined — the finished ones when the next starts, the
// rest by JoinAll() — and none outlives its owner.
#include "api/owned_threads.h"

#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

namespace flowscope {
namespace {

TEST(OwnedThreadsTest, FinishedThreadsAreJoinedAsNewOnesStartAndTheRestAtJoinAll) {
  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::atomic<int> ran{0};
  OwnedThreads threads;
  for (int i = 0; i < 5; ++i) threads.Start([&] { ran.fetch_add(1); });
  // One that waits: it stays owned until it ends.
  threads.Start([&] {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return release; });
    ran.fetch_add(1);
  });
  while (ran.load() < 5) std::this_thread::yield();
  threads.Start([] {});  // reaps the five that finished
  EXPECT_LE(threads.size(), 3u) << "the waiting one, the new one, and at most one not yet marked";
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  threads.JoinAll();
  EXPECT_EQ(ran.load(), 6);
  EXPECT_EQ(threads.size(), 0u);
}

TEST(OwnedThreadsTest, TheDestructorWaitsForRunningThreads) {
  std::atomic<bool> finished{false};
  {
    OwnedThreads threads;
    threads.Start([&] {
      for (int i = 0; i < 1000; ++i) std::this_thread::yield();
      finished = true;
    });
  }
  EXPECT_TRUE(finished.load()) << "nothing runs after its owner is gone";
}

}  // namespace
}  // namespace flowscope
