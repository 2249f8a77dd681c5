#include "tests/testing/bpf_env.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace flowscope::testing {

std::optional<std::string> BpfUnavailableReason() {
  if (geteuid() != 0) return std::string("BPF tests need root (CAP_BPF + CAP_NET_ADMIN)");
  // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
  rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
  setrlimit(RLIMIT_MEMLOCK, &unlimited);
  const int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "fs_probe", 4, 8, 1, nullptr);
  if (fd < 0) {
    return absl::StrCat("bpf(BPF_MAP_CREATE) is unavailable here: ", std::strerror(errno));
  }
  close(fd);
  return std::nullopt;
}

std::vector<uint8_t> UdpPacket(size_t size) {
  if (size < 42) size = 42;
  std::vector<uint8_t> p(size, 0);
  const uint8_t dst_mac[6] = {0x02, 0, 0, 0, 0, 2};
  const uint8_t src_mac[6] = {0x02, 0, 0, 0, 0, 1};
  std::memcpy(&p[0], dst_mac, 6);
  std::memcpy(&p[6], src_mac, 6);
  p[12] = 0x08;  // ETH_P_IP
  p[13] = 0x00;
  uint8_t* ip = &p[14];
  const size_t ip_len = size - 14;
  ip[0] = 0x45;
  ip[2] = static_cast<uint8_t>(ip_len >> 8);
  ip[3] = static_cast<uint8_t>(ip_len);
  ip[8] = 64;  // TTL
  ip[9] = 17;  // UDP
  const uint8_t saddr[4] = {10, 0, 0, 1};
  const uint8_t daddr[4] = {10, 0, 0, 2};
  std::memcpy(&ip[12], saddr, 4);
  std::memcpy(&ip[16], daddr, 4);
  uint8_t* udp = ip + 20;
  const size_t udp_len = ip_len - 20;
  udp[0] = 1000 >> 8;
  udp[1] = 1000 & 0xff;
  udp[2] = 2000 >> 8;
  udp[3] = 2000 & 0xff;
  udp[4] = static_cast<uint8_t>(udp_len >> 8);
  udp[5] = static_cast<uint8_t>(udp_len);
  return p;
}

absl::StatusOr<TestRunResult> TestRun(int prog_fd, const std::vector<uint8_t>& packet,
                                      uint32_t repeat) {
  LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet.data(),
              .data_size_in = static_cast<uint32_t>(packet.size()),
              .repeat = static_cast<int>(repeat));
  if (bpf_prog_test_run_opts(prog_fd, &opts) != 0) {
    return absl::ErrnoToStatus(errno, "bpf_prog_test_run_opts");
  }
  return TestRunResult{opts.retval, opts.duration};
}

}  // namespace flowscope::testing
