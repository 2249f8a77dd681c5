// DNS messages (RFC 1035) as the passive DNS view reads them from the datapath's bounded copy of
// a packet's payload: the header, the questions' name and types, and the answers' addresses,
// CNAME targets, types and TTLs. Defensive: every length and offset is checked against the
// bytes present, compression pointers may only point backwards and at most 16 times per name,
// names are at most 255 bytes and labels 63, counts are capped; anything else is an error that
// names the problem, never a crash or an unbounded loop. Pure functions.
//
//   auto m = ParseDnsMessage(payload, /*complete=*/true);
//   if (m.ok()) use(m->query, m->qtypes, m->rcode, m->ips, m->ttl);
#ifndef FLOWSCOPE_OBSERVER_DNS_MESSAGE_H_
#define FLOWSCOPE_OBSERVER_DNS_MESSAGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace flowscope::observer {

struct DnsMessage {
  uint16_t id = 0;
  bool response = false;
  uint8_t opcode = 0;
  uint8_t rcode = 0;                // 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, ...
  std::string query;                // the first question's name, "deathstar.default.svc."
  std::vector<uint16_t> qtypes;     // every question's type
  std::vector<std::string> ips;     // A and AAAA answers, as text
  std::vector<std::string> cnames;  // CNAME answers' targets, "x.example."
  std::vector<uint16_t> rrtypes;    // every answer's type
  uint32_t ttl = 0;                 // the smallest answer TTL; 0 without answers
  bool answers_cut = false;         // the copy ended inside the answers (complete = false)
};

// Parses `msg`. `complete`: `msg` is the whole message; when false it is a prefix of it (the
// datapath copies a bounded prefix), and answers cut off at its end are left out rather than
// refused (answers_cut says so). The header and the questions must always be there. Errors:
// OutOfRange when the bytes end too early, InvalidArgument when they are malformed.
absl::StatusOr<DnsMessage> ParseDnsMessage(absl::Span<const uint8_t> msg, bool complete);

// Appends a label in DNS presentation format: printable ASCII as it is, '.', '\\', '"', '(',
// ')', ';' and '@' escaped with a backslash, any other byte as \DDD (decimal) — so a name is
// always valid UTF-8 text, whatever bytes its labels hold.
void AppendLabel(absl::Span<const uint8_t> label, std::string* out);

// "A", "AAAA", "CNAME", ... as Hubble's qtypes and rrtypes spell them; "TYPE<n>" for others.
std::string DnsTypeName(uint16_t type);

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_DNS_MESSAGE_H_
