// IP protocol names as Hubble's --protocol flag and filter take them ("tcp", "icmp", ...), in
// one table for the filters, the CLI's flag check and the datapath's deny rules. Pure
// functions; no libbpf.
//
//   auto numbers = IpProtocolNumbers("icmp");  // {IPPROTO_ICMP, IPPROTO_ICMPV6}
#ifndef FLOWSCOPE_BPF_IP_PROTOCOL_H_
#define FLOWSCOPE_BPF_IP_PROTOCOL_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace flowscope::bpf {

// The IP protocol numbers a name stands for, case-insensitively: "icmp" is ICMPv4 and ICMPv6;
// the L7 names ("dns", "http", "kafka") stand for none (no L3/L4 flow is one). InvalidArgument
// listing the known names otherwise.
absl::StatusOr<std::vector<uint8_t>> IpProtocolNumbers(absl::string_view name);

// "icmp, icmpv4, icmpv6, tcp, udp, sctp, vrrp, igmp, dns, http or kafka".
absl::string_view KnownIpProtocolNames();

}  // namespace flowscope::bpf

#endif  // FLOWSCOPE_BPF_IP_PROTOCOL_H_
