#include "tests/testing/packet.h"

#include <arpa/inet.h>

#include <cstring>
#include <stdexcept>

namespace flowscope::testing {
namespace {

void Put16(std::vector<uint8_t>& b, size_t at, uint16_t v) {
  b[at] = static_cast<uint8_t>(v >> 8);
  b[at + 1] = static_cast<uint8_t>(v);
}

size_t L4HeaderSize(const PacketSpec& s) {
  switch (s.protocol) {
    case 6:
      return 20;
    case 17:
      return 8;
    case 132:
      return 12;
    case 1:
    case 58:
      return 8;
    default:
      return 0;
  }
}

std::vector<uint8_t> L4(const PacketSpec& s) {
  std::vector<uint8_t> h(L4HeaderSize(s) + s.payload, 0);
  if (!s.payload_bytes.empty()) {
    h.resize(L4HeaderSize(s));
    h.insert(h.end(), s.payload_bytes.begin(), s.payload_bytes.end());
  }
  switch (s.protocol) {
    case 6:
      Put16(h, 0, s.sport);
      Put16(h, 2, s.dport);
      h[12] = static_cast<uint8_t>(5 << 4) | static_cast<uint8_t>((s.tcp_flags >> 8) & 1);
      h[13] = static_cast<uint8_t>(s.tcp_flags & 0xff);
      Put16(h, 14, 65535);
      break;
    case 17:
      Put16(h, 0, s.sport);
      Put16(h, 2, s.dport);
      Put16(h, 4, static_cast<uint16_t>(h.size()));
      break;
    case 132:
      Put16(h, 0, s.sport);
      Put16(h, 2, s.dport);
      break;
    case 1:
    case 58:
      h[0] = s.icmp_type;
      h[1] = s.icmp_code;
      Put16(h, 4, s.echo_id);
      Put16(h, 6, 1);
      break;
    default:
      break;
  }
  return h;
}

}  // namespace

std::vector<uint8_t> BuildPacket(const PacketSpec& s) {
  uint8_t src[16] = {};
  uint8_t dst[16] = {};
  bool v6 = false;
  if (inet_pton(AF_INET, s.src.c_str(), src) == 1) {
    if (inet_pton(AF_INET, s.dst.c_str(), dst) != 1) throw std::invalid_argument("dst family");
  } else if (inet_pton(AF_INET6, s.src.c_str(), src) == 1) {
    v6 = true;
    if (inet_pton(AF_INET6, s.dst.c_str(), dst) != 1) throw std::invalid_argument("dst family");
  } else {
    throw std::invalid_argument("bad src address " + s.src);
  }

  std::vector<uint8_t> l4 =
      s.fragment_offset != 0 && !v6 ? std::vector<uint8_t>(s.payload, 0) : L4(s);
  std::vector<uint8_t> out(14, 0);
  out[0] = 0x02;
  out[5] = 0x02;
  out[6] = 0x02;
  out[11] = 0x01;
  size_t ethertype_at = 12;
  if (s.vlan) {
    Put16(out, 12, 0x8100);
    out.resize(18, 0);
    Put16(out, 14, 42);  // VLAN id
    ethertype_at = 16;
  }

  if (!v6) {
    Put16(out, ethertype_at, 0x0800);
    std::vector<uint8_t> ip(20, 0);
    ip[0] = 0x45;
    Put16(ip, 2, static_cast<uint16_t>(20 + l4.size()));
    Put16(ip, 6, s.fragment_offset & 0x1fff);
    ip[8] = 64;
    ip[9] = s.protocol;
    std::memcpy(&ip[12], src, 4);
    std::memcpy(&ip[16], dst, 4);
    out.insert(out.end(), ip.begin(), ip.end());
  } else {
    Put16(out, ethertype_at, 0x86DD);
    // Extension headers, each naming the next; the last names the L4 protocol.
    std::vector<uint8_t> ext;
    for (size_t i = 0; i < s.ipv6_ext.size(); ++i) {
      const uint8_t next = i + 1 < s.ipv6_ext.size() ? s.ipv6_ext[i + 1] : s.protocol;
      std::vector<uint8_t> h(8, 0);
      h[0] = next;
      if (s.ipv6_ext[i] == 44) {
        Put16(h, 2, static_cast<uint16_t>(s.fragment_offset << 3));
      } else {
        h[1] = 0;  // 8 bytes
      }
      ext.insert(ext.end(), h.begin(), h.end());
    }
    std::vector<uint8_t> ip(40, 0);
    ip[0] = 0x60;
    Put16(ip, 4, static_cast<uint16_t>(ext.size() + l4.size()));
    ip[6] = s.ipv6_ext.empty() ? s.protocol : s.ipv6_ext[0];
    ip[7] = 64;
    std::memcpy(&ip[8], src, 16);
    std::memcpy(&ip[24], dst, 16);
    out.insert(out.end(), ip.begin(), ip.end());
    out.insert(out.end(), ext.begin(), ext.end());
  }
  out.insert(out.end(), l4.begin(), l4.end());
  return out;
}

}  // namespace flowscope::testing
