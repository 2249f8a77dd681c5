// WaitUntil: the one way tests wait for something to become true — a stream parked, a file
// there, a log line written — instead of sleeping for a fixed time. Looks often at first, then
// less often (up to every 50 ms), and gives up at the limit.
//
//   ASSERT_TRUE(testing::WaitUntil([&] { return service->parked_streams() == 1; }));
//   std::string out;
//   testing::WaitUntil([&] { return (out = Cli("status")).find("2/2") != npos; }, Seconds(20));
#ifndef FLOWSCOPE_TESTS_TESTING_WAIT_H_
#define FLOWSCOPE_TESTS_TESTING_WAIT_H_

#include <algorithm>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace flowscope::testing {

// True once done() is; false if it still is not after `limit`.
template <typename Done>
bool WaitUntil(Done&& done, absl::Duration limit = absl::Seconds(10)) {
  const absl::Time deadline = absl::Now() + limit;
  absl::Duration pause = absl::Microseconds(200);
  while (!done()) {
    if (absl::Now() >= deadline) return false;
    absl::SleepFor(pause);
    pause = std::min(pause * 2, absl::Milliseconds(50));
  }
  return true;
}

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_WAIT_H_
