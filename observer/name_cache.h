// NameCache: the DNS names each client looked up, by the addresses the answers gave it —
// Hubble's source_names and destination_names. A flow's destination_names are the names its
// source had resolved to the destination address at the flow's time (source_names the same the
// other way round), as Cilium's per-endpoint DNS history gives them: sorted, without the
// trailing dot. A client is its endpoint (a pod: both its address families) or, outside the
// known endpoints, its address. A name holds from its answer for the answer's TTL, at least
// `min_ttl` (Cilium keeps DNS data an hour by default); looked up by time, so a flow read back
// later gets the names it had when it was seen. At most `max_entries` (client, address) pairs
// are kept, the oldest leaving first.
// Thread-safe: the drain thread adds, queries look up.
//
//   NameCache names;
//   names.Add(NameCache::ClientOf(answer, /*source=*/false), "deathstar.default.svc.", ips, 30,
//             answer.time_ns);
//   std::vector<std::string> n = names.DestinationNames(flow);  // {"deathstar.default.svc"}
#ifndef FLOWSCOPE_OBSERVER_NAME_CACHE_H_
#define FLOWSCOPE_OBSERVER_NAME_CACHE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <shared_mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "observer/flow_record.h"

namespace flowscope::observer {

class NameCache {
 public:
  struct Options {
    size_t max_entries = 65536;
    absl::Duration min_ttl = absl::Hours(1);
    size_t max_names_per_entry = 16;
  };
  // Who looked a name up: an endpoint id, or (host, world) an address.
  struct Client {
    uint32_t endpoint = 0;
    uint8_t family = 0;
    std::array<uint32_t, 4> addr{};
    bool operator==(const Client&) const = default;
  };
  static Client ClientOf(const FlowRecord& r, bool source);

  NameCache() : NameCache(Options{}) {}
  explicit NameCache(Options options);

  // An answer to `client` at `time_ns`: `name` resolves to each of `ips` (text addresses) for
  // `ttl_s` seconds (at least min_ttl). Addresses that do not parse are skipped.
  void Add(const Client& client, const std::string& name, const std::vector<std::string>& ips,
           uint32_t ttl_s, uint64_t time_ns);

  // The names `client` had for `addr` at `time_ns`, sorted, without trailing dots.
  std::vector<std::string> Lookup(const Client& client, uint8_t family, const uint32_t addr[4],
                                  uint64_t time_ns) const;
  // A record's destination_names (its source's names for its destination) and source_names.
  std::vector<std::string> DestinationNames(const FlowRecord& r) const;
  std::vector<std::string> SourceNames(const FlowRecord& r) const;

  bool empty() const { return size_.load(std::memory_order_relaxed) == 0; }
  size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  struct Key {
    Client client;
    uint8_t family = 0;
    std::array<uint32_t, 4> addr{};
    bool operator==(const Key&) const = default;
    template <typename H>
    friend H AbslHashValue(H h, const Key& k) {
      return H::combine(std::move(h), k.client.endpoint, k.client.family, k.client.addr, k.family,
                        k.addr);
    }
  };
  struct Name {
    std::string name;  // without the trailing dot
    uint64_t from_ns = 0, until_ns = 0;
  };

  const Options options_;
  // A reader-writer lock of pthreads (ThreadSanitizer sees its ordering; Debian's abseil is not
  // built for it). Guards entries_ and order_.
  mutable std::shared_mutex mu_;
  absl::flat_hash_map<Key, std::vector<Name>> entries_;
  std::deque<Key> order_;  // keys by first insertion, for eviction
  std::atomic<size_t> size_{0};
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_NAME_CACHE_H_
