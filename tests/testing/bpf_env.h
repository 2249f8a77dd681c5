// Helpers for tests and benchmarks that load real BPF programs: whether bpf() is usable here
// (tests skip with the reason only when it is not), and running a tc program on a packet with
// BPF_PROG_TEST_RUN. Callable from any thread.
#ifndef FLOWSCOPE_TESTS_TESTING_BPF_ENV_H_
#define FLOWSCOPE_TESTS_TESTING_BPF_ENV_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace flowscope::testing {

// nullopt when this process can create BPF maps and load programs; otherwise why not (not root,
// bpf() blocked or missing, memlock limit), as a sentence for GTEST_SKIP.
std::optional<std::string> BpfUnavailableReason();

// A minimal Ethernet + IPv4 + UDP frame (10.0.0.1:1000 -> 10.0.0.2:2000), `size` bytes long.
std::vector<uint8_t> UdpPacket(size_t size = 64);

struct TestRunResult {
  uint32_t retval = 0;    // the program's return value (last run)
  uint32_t duration = 0;  // average ns per run, as the kernel measured it
};

// Runs `prog_fd` `repeat` times on `packet` (BPF_PROG_TEST_RUN).
absl::StatusOr<TestRunResult> TestRun(int prog_fd, const std::vector<uint8_t>& packet,
                                      uint32_t repeat = 1);

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_BPF_ENV_H_
