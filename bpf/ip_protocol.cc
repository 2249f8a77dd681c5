#include "bpf/ip_protocol.h"

#include <netinet/in.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace flowscope::bpf {
namespace {

struct Entry {
  const char* name;
  std::vector<uint8_t> numbers;
};

const std::vector<Entry>& Table() {
  static const auto* table = new std::vector<Entry>{
      {"icmp", {IPPROTO_ICMP, IPPROTO_ICMPV6}},
      {"icmpv4", {IPPROTO_ICMP}},
      {"icmpv6", {IPPROTO_ICMPV6}},
      {"tcp", {IPPROTO_TCP}},
      {"udp", {IPPROTO_UDP}},
      {"sctp", {IPPROTO_SCTP}},
      {"vrrp", {112}},
      {"igmp", {IPPROTO_IGMP}},
      {"dns", {}},
      {"http", {}},
      {"kafka", {}},
  };
  return *table;
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> IpProtocolNumbers(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  for (const Entry& e : Table()) {
    if (lower == e.name) return e.numbers;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown protocol; expected ", KnownIpProtocolNames()));
}

absl::string_view KnownIpProtocolNames() {
  return "icmp, icmpv4, icmpv6, tcp, udp, sctp, vrrp, igmp, dns, http or kafka";
}

}  // namespace flowscope::bpf
