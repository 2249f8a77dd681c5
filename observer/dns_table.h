// DnsTable: the DNS messages that L7 DNS records refer to. A FlowRecord is 96 bytes and has no
// room for names and answers: a DNS record (emit_reason FS_EMIT_DNS) keeps its message's id here
// in flow_bytes and the request-to-response latency in flow_packets (DnsIdOf, DnsLatencyOf). An
// entry is the message as Hubble's flow.DNS, serialized — the bytes a flow carries, the bytes the
// history stores — and never changes under its id. The table keeps the newest `capacity`
// entries; older ids are looked up in the archive (the history) when one is attached.
// Thread-safe: the drain thread adds, queries read.
//
//   DnsTable dns(65536);
//   const uint64_t id = dns.Add(EncodeDns(message));
//   std::shared_ptr<const std::string> bytes = dns.Get(id);  // serialized flow.DNS, or null
#ifndef FLOWSCOPE_OBSERVER_DNS_TABLE_H_
#define FLOWSCOPE_OBSERVER_DNS_TABLE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "flow/flow.pb.h"
#include "observer/dns_message.h"
#include "observer/flow_record.h"

namespace flowscope::observer {

inline bool IsDns(const FlowRecord& r) { return r.emit_reason == FS_EMIT_DNS; }
inline uint64_t DnsIdOf(const FlowRecord& r) { return IsDns(r) ? r.flow_bytes : 0; }
inline uint64_t DnsLatencyOf(const FlowRecord& r) { return IsDns(r) ? r.flow_packets : 0; }

// Where flowscope's DNS flows come from, as Hubble's l7.dns.observation_source names it (the
// CLI prints it after the type: "dns-request proxy").
inline constexpr char kDnsObservationSource[] = "proxy";

// The message as Hubble's flow.DNS, serialized: query, answer addresses, the smallest TTL
// (4294967295 for an answer without records, as Cilium reports it), CNAME targets, rcode,
// question and answer types, observation source.
std::string EncodeDns(const DnsMessage& m);

// Hubble's Summary of a DNS flow: "DNS Query <name> <qtypes>", "DNS Answer "<ips>" TTL: <ttl>
// (Proxy <name> <qtypes>)", "DNS Answer RCode: Non-Existent Domain TTL: ... (...)".
std::string DnsSummary(const flow::DNS& dns, bool response);

// IANA's description of an rcode ("Non-Existent Domain"), as Hubble's Summary spells it.
std::string DnsRcodeText(uint32_t rcode);

class DnsTable {
 public:
  // The history: entries older than the table holds, by id.
  class Archive {
   public:
    virtual ~Archive() = default;
    virtual std::shared_ptr<const std::string> FindDns(uint64_t id) const = 0;
  };

  explicit DnsTable(size_t capacity = 65536);

  // Ids continue above `next_id` (the history's); call before the first Add.
  void AttachArchive(const Archive* archive, uint64_t next_id);

  // Stores a serialized flow.DNS; returns its id (never 0).
  uint64_t Add(std::string encoded);
  // The entry, from the table or the archive; null when neither has it any more.
  std::shared_ptr<const std::string> Get(uint64_t id) const;
  // The entry decoded into *out; false when it is gone.
  bool Decode(uint64_t id, flow::DNS* out) const;

  size_t capacity() const { return slots_.size(); }
  uint64_t next_id() const;

 private:
  struct Slot {
    uint64_t id = 0;
    std::shared_ptr<const std::string> bytes;
  };
  mutable absl::Mutex mu_;
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  const Archive* archive_ ABSL_GUARDED_BY(mu_) = nullptr;
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_DNS_TABLE_H_
