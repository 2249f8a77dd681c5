// Builds DNS messages (RFC 1035) byte by byte for tests: header, names (with compression
// pointers), questions and answers. Header-only.
//
//   DnsWire q;
//   q.Header(0x0100, 1, 0).Name("deathstar.default.svc.cluster.local").Question(1);
#ifndef FLOWSCOPE_TESTS_TESTING_DNS_WIRE_H_
#define FLOWSCOPE_TESTS_TESTING_DNS_WIRE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace flowscope::testing {

class DnsWire {
 public:
  DnsWire& U8(uint8_t v) {
    b.push_back(v);
    return *this;
  }
  DnsWire& U16(uint16_t v) { return U8(static_cast<uint8_t>(v >> 8)).U8(static_cast<uint8_t>(v)); }
  DnsWire& U32(uint32_t v) {
    return U16(static_cast<uint16_t>(v >> 16)).U16(static_cast<uint16_t>(v));
  }
  // flags 0x0100: a query (RD); 0x8180: an answer (QR, RD, RA), | rcode.
  DnsWire& Header(uint16_t flags, uint16_t qd, uint16_t an, uint16_t id = 0x1234) {
    return U16(id).U16(flags).U16(qd).U16(an).U16(0).U16(0);
  }
  DnsWire& Name(const std::string& dotted) {
    for (absl::string_view label : absl::StrSplit(dotted, '.', absl::SkipEmpty())) {
      U8(static_cast<uint8_t>(label.size()));
      for (char c : label) U8(static_cast<uint8_t>(c));
    }
    return U8(0);
  }
  DnsWire& Pointer(uint16_t to) { return U16(static_cast<uint16_t>(0xC000 | to)); }
  DnsWire& Question(uint16_t type) { return U16(type).U16(1); }
  // An answer whose owner name points at the first question's.
  DnsWire& Answer(uint16_t type, uint32_t ttl, const std::vector<uint8_t>& data) {
    Pointer(12).U16(type).U16(1).U32(ttl).U16(static_cast<uint16_t>(data.size()));
    for (uint8_t d : data) U8(d);
    return *this;
  }
  std::vector<uint8_t> b;
};

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_DNS_WIRE_H_
