// IpPrefix: an IPv4 or IPv6 address or CIDR prefix ("10.0.1.5", "10.0.0.0/8", "fd00::/64"),
// parsed strictly and in one place for the datapath's deny rules, the observer's filters and
// anything else that takes one. Words are in network byte order, as flow_event.h keeps
// addresses. Pure functions; no libbpf.
//
//   auto p = ParseIpPrefix("10.0.0.0/8");
//   if (p.ok() && p->Contains(FS_FAMILY_IPV4, record.saddr)) ...
#ifndef FLOWSCOPE_BPF_IP_PREFIX_H_
#define FLOWSCOPE_BPF_IP_PREFIX_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace flowscope::bpf {

struct IpPrefix {
  uint8_t family = 0;  // FS_FAMILY_IPV4 / FS_FAMILY_IPV6
  int length = 0;      // prefix length in bits
  uint32_t net[4] = {};
  uint32_t mask[4] = {};

  bool Contains(uint8_t fam, const uint32_t addr[4]) const {
    if (fam != family) return false;
    for (int i = 0; i < 4; ++i) {
      if ((addr[i] & mask[i]) != net[i]) return false;
    }
    return true;
  }
};

// An address (a full-length prefix) or "address/length". The length is decimal digits only,
// without a sign or a leading zero, within 0..32 or 0..128 (as Go's netip.ParsePrefix, which
// Hubble uses). InvalidArgument saying what is wrong, without repeating the text (callers name
// the field and quote the value).
absl::StatusOr<IpPrefix> ParseIpPrefix(absl::string_view text);

}  // namespace flowscope::bpf

#endif  // FLOWSCOPE_BPF_IP_PREFIX_H_
