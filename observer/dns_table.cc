#include "observer/dns_table.h"

#include <algorithm>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace flowscope::observer {

namespace {

// Protobuf's wire format for the few field kinds flow.DNS has, written directly: one string
// per message and no flow::DNS object built on the drain thread.
void Varint(uint64_t v, std::string* out) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}
void Text(uint32_t field, absl::string_view v, std::string* out) {  // a repeated element
  Varint((field << 3) | 2, out);
  Varint(v.size(), out);
  out->append(v.data(), v.size());
}
void Number(uint32_t field, uint64_t v, std::string* out) {
  if (v == 0) return;
  Varint(field << 3, out);
  Varint(v, out);
}

}  // namespace

std::string EncodeDns(const DnsMessage& m) {
  // flow.DNS in field order: query 1, ips 2, ttl 3, cnames 4, observation_source 5, rcode 6,
  // qtypes 7, rrtypes 8; empty singular fields are left out, as protobuf does.
  std::string out;
  out.reserve(64 + m.query.size() + 20 * m.ips.size());
  if (!m.query.empty()) Text(1, m.query, &out);
  for (const std::string& ip : m.ips) Text(2, ip, &out);
  // Cilium's proxy reports the smallest TTL of the answers, starting from the largest.
  if (m.response) Number(3, m.rrtypes.empty() ? std::numeric_limits<uint32_t>::max() : m.ttl, &out);
  for (const std::string& c : m.cnames) Text(4, c, &out);
  Text(5, kDnsObservationSource, &out);
  Number(6, m.rcode, &out);
  for (uint16_t t : m.qtypes) Text(7, DnsTypeName(t), &out);
  for (uint16_t t : m.rrtypes) Text(8, DnsTypeName(t), &out);
  return out;
}

std::string DnsRcodeText(uint32_t rcode) {
  static constexpr const char* kText[] = {"No Error",
                                          "Format Error",
                                          "Server Failure",
                                          "Non-Existent Domain",
                                          "Not Implemented",
                                          "Query Refused",
                                          "Name Exists when it should not",
                                          "RR Set Exists when it should not",
                                          "RR Set that should exist does not",
                                          "Server Not Authoritative for zone",
                                          "Name not contained in zone",
                                          "DSO-TYPE Not Implemented"};
  if (rcode < std::size(kText)) return kText[rcode];
  return absl::StrCat(rcode);
}

std::string DnsSummary(const flow::DNS& dns, bool response) {
  const std::string qtypes = absl::StrJoin(dns.qtypes(), ",");
  if (!response) return absl::StrCat("DNS Query ", dns.query(), " ", qtypes);
  std::string answer;
  if (dns.rcode() != 0) {
    answer = absl::StrCat("RCode: ", DnsRcodeText(dns.rcode()));
  } else {
    answer = absl::StrCat("\"", absl::StrJoin(dns.ips(), ","), "\"");
    if (dns.cnames_size() > 0) {
      absl::StrAppend(&answer, " CNAMEs: \"", absl::StrJoin(dns.cnames(), ","), "\"");
    }
  }
  const char* source = dns.observation_source() == kDnsObservationSource ? "Proxy" : "Query";
  return absl::StrCat("DNS Answer ", answer, " TTL: ", dns.ttl(), " (", source, " ", dns.query(),
                      " ", qtypes, ")");
}

DnsTable::DnsTable(size_t capacity) : slots_(std::max<size_t>(capacity, 1)) {}

void DnsTable::AttachArchive(const Archive* archive, uint64_t next_id) {
  absl::MutexLock lock(&mu_);
  archive_ = archive;
  next_id_ = std::max<uint64_t>(next_id, 1);
}

uint64_t DnsTable::Add(std::string encoded) {
  auto bytes = std::make_shared<const std::string>(std::move(encoded));
  absl::MutexLock lock(&mu_);
  const uint64_t id = next_id_++;
  Slot& slot = slots_[id % slots_.size()];
  slot.id = id;
  slot.bytes = std::move(bytes);
  return id;
}

std::shared_ptr<const std::string> DnsTable::Get(uint64_t id) const {
  if (id == 0) return nullptr;
  const Archive* archive;
  {
    absl::ReaderMutexLock lock(&mu_);
    const Slot& slot = slots_[id % slots_.size()];
    if (slot.id == id) return slot.bytes;
    archive = archive_;
  }
  return archive != nullptr ? archive->FindDns(id) : nullptr;
}

bool DnsTable::Decode(uint64_t id, flow::DNS* out) const {
  std::shared_ptr<const std::string> bytes = Get(id);
  return bytes != nullptr && out->ParseFromString(*bytes);
}

uint64_t DnsTable::next_id() const {
  absl::ReaderMutexLock lock(&mu_);
  return next_id_;
}

}  // namespace flowscope::observer
