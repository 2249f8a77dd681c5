#include "bpf/ip_prefix.h"

#include <arpa/inet.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "bpf/flow_event.h"

namespace flowscope::bpf {

absl::StatusOr<IpPrefix> ParseIpPrefix(absl::string_view text) {
  const size_t slash = text.find('/');
  const std::string addr(text.substr(0, slash));
  IpPrefix p;
  uint8_t bytes[16] = {};
  int bits;
  if (inet_pton(AF_INET, addr.c_str(), bytes) == 1) {
    p.family = FS_FAMILY_IPV4;
    bits = 32;
  } else if (inet_pton(AF_INET6, addr.c_str(), bytes) == 1) {
    p.family = FS_FAMILY_IPV6;
    bits = 128;
  } else {
    return absl::InvalidArgumentError("not an IP address or CIDR prefix");
  }
  p.length = bits;
  if (slash != absl::string_view::npos) {
    const absl::string_view len = text.substr(slash + 1);
    bool ok = !len.empty() && len.size() <= 3 && (len.size() == 1 || len[0] != '0');
    int v = 0;
    for (size_t i = 0; ok && i < len.size(); ++i) {
      ok = len[i] >= '0' && len[i] <= '9';
      v = v * 10 + (len[i] - '0');
    }
    if (!ok || v > bits) {
      return absl::InvalidArgumentError(absl::StrCat("prefix length must be 0..", bits));
    }
    p.length = v;
  }
  uint8_t m[16] = {};
  for (int i = 0; i < p.length; ++i) m[i / 8] |= static_cast<uint8_t>(0x80 >> (i % 8));
  for (int i = 0; i < 16; ++i) bytes[i] &= m[i];
  std::memcpy(p.net, bytes, 16);
  std::memcpy(p.mask, m, 16);
  return p;
}

}  // namespace flowscope::bpf
