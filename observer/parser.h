// EventParser: turns raw datapath events (bpf/flow_event.h) into FlowRecords on the drain
// thread — validating them, converting kernel time to wall-clock UTC, keeping record times
// non-decreasing, and resolving both addresses to EndpointTable ids. Malformed events are
// counted, never logged one by one. One instance per drain thread; not thread-safe.
//
//   EventParser parser(table);
//   FlowRecord rec;
//   if (parser.Parse(raw_event, &rec)) ring.Write(rec);
#ifndef FLOWSCOPE_OBSERVER_PARSER_H_
#define FLOWSCOPE_OBSERVER_PARSER_H_

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "observer/dns_table.h"
#include "observer/endpoint_table.h"
#include "observer/flow_record.h"
#include "observer/name_cache.h"

namespace flowscope::observer {

struct ParserStats {
  uint64_t parsed = 0;
  uint64_t malformed = 0;      // wrong size, impossible field values, a time not yet reached
  uint64_t clamped = 0;        // times raised to keep the ring in order
  uint64_t dns = 0;            // DNS messages made into records
  uint64_t dns_malformed = 0;  // DNS messages that could not be parsed (their L7 record skipped)
  uint64_t dns_skipped = 0;    // DNS events while no DnsTable is attached
};

class EventParser {
 public:
  explicit EventParser(const EndpointTable& table);

  // Fills *out from one ring-buffer event. Returns false (and counts it) if it is malformed. A
  // DNS event that also carries its packet's L3/L4 event gives two records: the L3/L4 one here,
  // then the DNS one from TakeDns() (a malformed message leaves the first alone).
  bool Parse(absl::Span<const uint8_t> raw, FlowRecord* out);
  // The DNS record of the event Parse() just read, when it made two; false otherwise.
  bool TakeDns(FlowRecord* out);

  // Re-measures the offset between the kernel's monotonic clock (bpf_ktime_get_ns) and UTC.
  // Parse() does it by itself once a second of kernel time has passed.
  void RefreshClock();

  // For tests: a fixed offset (UTC ns = kernel ns + offset) that RefreshClock() will not change.
  void SetFixedClockOffset(int64_t offset_ns);

  // Raises the time floor to the UTC equivalent of kernel time `ktime_ns`: events parsed
  // afterwards get at least that time. Returns the floor (UTC ns), which the drain thread
  // publishes as the ring's IngestWatermark.
  uint64_t AdvanceFloor(uint64_t ktime_ns);

  const ParserStats& stats() const { return stats_; }

  // The running kernel's skb_drop_reason values mapped to flowscope's ids (Datapath::
  // kernel_reason_ids()); without them every kernel drop's reason is unknown.
  void SetKernelReasons(std::vector<uint8_t> ids) { kernel_reason_ids_ = std::move(ids); }

  // Where DNS messages (FS_EMIT_DNS events) go; without a table they are skipped. Must outlive
  // the parser.
  void SetDnsTable(DnsTable* dns) { dns_ = dns; }
  // Where the names answers give their clients go (source_names/destination_names). Must
  // outlive the parser.
  void SetNameCache(NameCache* names) { names_ = names; }

 private:
  EndpointTable::Resolver resolver_;
  ParserStats stats_;
  int64_t offset_ns_ = 0;
  bool fixed_offset_ = false;
  uint64_t next_refresh_ktime_ = 0;
  uint64_t last_time_ns_ = 0;  // the floor: record times never go below it
  uint64_t ktime_passed_ = 0;  // a kernel (monotonic) time known to have passed
  std::vector<uint8_t> kernel_reason_ids_;
  DnsTable* dns_ = nullptr;
  NameCache* names_ = nullptr;
  FlowRecord dns_record_;  // the second record of the last event, for TakeDns()
  bool has_dns_ = false;
  // Queries waiting for their answer: (client address, client port, server port, DNS id) ->
  // the query's kernel time. Bounded; unanswered ones are forgotten after a while.
  struct PendingKey {
    uint32_t client[4];
    uint32_t server[4];
    uint16_t client_port;
    uint16_t id;
    uint8_t family;
    uint8_t protocol;
    template <typename H>
    friend H AbslHashValue(H h, const PendingKey& k) {
      return H::combine(H::combine_contiguous(std::move(h), k.client, 4), k.server[0], k.server[1],
                        k.server[2], k.server[3], k.client_port, k.id, k.family, k.protocol);
    }
    friend bool operator==(const PendingKey& a, const PendingKey& b) {
      return std::equal(a.client, a.client + 4, b.client) &&
             std::equal(a.server, a.server + 4, b.server) && a.client_port == b.client_port &&
             a.id == b.id && a.family == b.family && a.protocol == b.protocol;
    }
  };
  absl::flat_hash_map<PendingKey, uint64_t> pending_;

  void MaybeRefreshClock(uint64_t ktime_ns);
  // What a DNS event's message gives its L7 record; nullopt when it is malformed (counted).
  struct DnsFacts {
    uint64_t id = 0;  // in the DNS table
    uint64_t latency_ns = 0;
    uint8_t is_reply = FS_REPLY_NO;  // an answer
    // An answer's name and addresses, for the name cache.
    std::string name;
    std::vector<std::string> ips;
    uint32_t ttl = 0;
  };
  std::optional<DnsFacts> ParseDns(absl::Span<const uint8_t> raw, const flow_event& e);
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_PARSER_H_
