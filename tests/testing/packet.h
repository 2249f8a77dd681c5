// Builds Ethernet frames for BPF_PROG_TEST_RUN fixtures: IPv4/IPv6 (optionally with IPv6
// extension headers or a VLAN tag) carrying TCP, UDP, SCTP, ICMPv4 or ICMPv6. Pure functions.
#ifndef FLOWSCOPE_TESTS_TESTING_PACKET_H_
#define FLOWSCOPE_TESTS_TESTING_PACKET_H_

#include <cstdint>
#include <string>
#include <vector>

namespace flowscope::testing {

struct PacketSpec {
  std::string src = "10.0.0.1";  // IPv4 or IPv6 literal; both must be of one family
  std::string dst = "10.0.0.2";
  uint8_t protocol = 17;  // IPPROTO_*
  uint16_t sport = 1000;
  uint16_t dport = 2000;
  uint16_t tcp_flags = 0;  // FS_TCP_* bits (NS is bit 8)
  uint8_t icmp_type = 8;
  uint8_t icmp_code = 0;
  uint16_t echo_id = 77;
  size_t payload = 16;
  std::vector<uint8_t> payload_bytes;  // the L4 payload; when empty, `payload` zero bytes
  bool vlan = false;
  // IPv6 only: extension headers to insert before the L4 header (0 hop-by-hop, 60 destination
  // options, 43 routing, 44 fragment).
  std::vector<uint8_t> ipv6_ext;
  uint16_t fragment_offset = 0;  // in 8-byte units; non-zero makes a non-first fragment
};

std::vector<uint8_t> BuildPacket(const PacketSpec& spec);

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_PACKET_H_
