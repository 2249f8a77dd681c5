// Datapath: loads flowscope's tc programs (flow.bpf.c, embedded through its skeleton) with the
// chosen aggregation level and sizes, and gives user space their maps: the event ring buffer and
// lost counter (for ringbuf::RingBufferConsumer), per-interface observation points, deny rules
// and datapath counters. Create it on one thread; the setters may then be called from any one
// thread at a time. Attaching the programs to interfaces is observer/'s attach manager's job.
//
//   DatapathOptions opts;
//   opts.aggregation = Aggregation::kMedium;
//   FLOWSCOPE_ASSIGN_OR_RETURN(auto dp, Datapath::Load(opts));
//   FLOWSCOPE_RETURN_IF_ERROR(dp->SetDenyRules({*DenyRule::Parse("10.0.1.5/32", "10.0.2.0/24",
//                                                                "tcp", 80)}));
//   auto consumer = RingBufferConsumer::Create(dp->events_fd(), dp->lost_events_fd(), ...);
#ifndef FLOWSCOPE_BPF_DATAPATH_H_
#define FLOWSCOPE_BPF_DATAPATH_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "bpf/flow_event.h"

struct flowscope_bpf;  // the generated skeleton

namespace flowscope::bpf {

enum class Aggregation { kNone = FS_AGG_NONE, kMedium = FS_AGG_MEDIUM, kMaximum = FS_AGG_MAXIMUM };

// "none", "medium" or "maximum".
absl::StatusOr<Aggregation> ParseAggregation(absl::string_view name);

struct DatapathOptions {
  Aggregation aggregation = Aggregation::kMedium;
  absl::Duration report_interval = absl::Seconds(5);
  uint32_t ring_buffer_bytes = 16u << 20;  // a power of two, at least one page
  uint32_t flow_table_entries = 65536;
  // 0: the kernel wakes the consumer adaptively; N: only once N bytes wait (poll with a timeout).
  uint32_t wakeup_bytes = 0;
  // Report the kernel's drops of packets from or to watched addresses (skb:kfree_skb, a
  // BTF-enabled tracepoint: Linux >= 5.17 with BTF). Where the kernel cannot, the datapath loads
  // without it and kernel_drops_unavailable() says why.
  bool kernel_drops = true;
  // Kernel reasons not reported (names as bpf/drop_reasons.h spells them). The default leaves
  // out what a closing socket purges from its queues: data nobody read, not a network drop.
  std::vector<std::string> ignored_kernel_reasons = {"QUEUE_PURGE"};
  // Report DNS messages (UDP and TCP port 53) with a prefix of their content (struct dns_event):
  // queries as they leave an endpoint, answers as they arrive at one.
  bool dns = true;
};

// A deny rule: source and destination prefixes, protocol and destination port; empty or zero
// parts are wildcards.
struct DenyRule {
  deny_rule raw{};

  // `src` / `dst`: "" or "any" (wildcard), an address, or a CIDR prefix; both sides must be of
  // the same family unless one is a wildcard. `protocol`: "", "any", "tcp", "udp", "sctp",
  // "icmp", "icmpv6". `port`: 0 (any) or 1..65535 (needs tcp, udp or sctp).
  static absl::StatusOr<DenyRule> Parse(absl::string_view src, absl::string_view dst,
                                        absl::string_view protocol, int port);
};

struct DatapathStats {
  uint64_t packets = 0;
  uint64_t events = 0;
  uint64_t malformed = 0;
  uint64_t not_ip = 0;
  uint64_t policy_drops = 0;
  uint64_t kernel_drops = 0;             // kernel drops of watched addresses
  uint64_t kernel_drops_suppressed = 0;  // of those, not reported (one per flow per interval)
  uint64_t dns_messages = 0;             // DNS messages reported (struct dns_event)
};

// How full one of the datapath's maps is (Cilium's cilium_bpf_map_pressure is entries/max).
struct MapUsage {
  std::string name;  // "flows", "if_config", "deny_rules"
  uint64_t entries = 0;
  uint64_t max_entries = 0;
};

class Datapath {
 public:
  // Opens and loads the programs. Fails with a message that says what is needed when not
  // privileged, and with the verifier's log when the kernel rejects the program.
  static absl::StatusOr<std::unique_ptr<Datapath>> Load(const DatapathOptions& options);
  ~Datapath();
  Datapath(const Datapath&) = delete;
  Datapath& operator=(const Datapath&) = delete;

  int ingress_prog_fd() const;
  int egress_prog_fd() const;
  int events_fd() const;       // BPF_MAP_TYPE_RINGBUF
  int lost_events_fd() const;  // per-CPU __u64 at key 0
  int flows_fd() const;        // LRU hash flow_key -> flow_state

  // Observation points reported for packets on `ifindex` (ingress and egress hooks).
  absl::Status SetInterfacePoints(uint32_t ifindex, fs_obs_point ingress, fs_obs_point egress);
  absl::Status ClearInterfacePoints(uint32_t ifindex);

  // Replaces every deny rule (at most FS_MAX_DENY_RULES).
  absl::Status SetDenyRules(const std::vector<DenyRule>& rules);

  // Replaces the addresses whose kernel drops are reported (at most FS_MAX_WATCHED_ADDRS;
  // the rest are left out and counted in the returned error).
  absl::Status SetWatchedAddresses(const std::vector<watch_key>& addresses);

  // Why kernel drops are not reported ("" when they are).
  const std::string& kernel_drops_unavailable() const { return kernel_drops_unavailable_; }
  // The running kernel's skb_drop_reason values mapped to flowscope's ids (bpf/drop_reasons.h),
  // indexed by value; empty when kernel drops are unavailable.
  const std::vector<uint8_t>& kernel_reason_ids() const { return kernel_reason_ids_; }
  // The kfree_skb program's fd (-1 when unavailable), for its run-time statistics.
  int kfree_skb_prog_fd() const;

  // Counters summed over CPUs.
  absl::StatusOr<DatapathStats> ReadStats() const;

  // Entries in use in the flow table, the interface table and the deny rules. Counting the flow
  // table reads it in batches (one syscall per few thousand entries); call it off the drain.
  absl::StatusOr<std::vector<MapUsage>> ReadMapUsage() const;

  const DatapathOptions& options() const { return options_; }

  // The running kernel's skb_drop_reason values the kfree_skb program leaves out.
  struct KernelReasonFilter {
    uint32_t not_dropped_yet = ~0U;
    uint32_t consumed = ~0U;
    std::array<uint64_t, 4> ignored{};  // a bit per value < 256
  };

 private:
  explicit Datapath(const DatapathOptions& options) : options_(options) {}

  // Opens and loads the skeleton into skel_ (left for the caller to destroy on failure), with
  // the kfree_skb program when given its filter.
  absl::Status LoadSkeleton(std::optional<KernelReasonFilter> kernel_drops, std::string* log);

  DatapathOptions options_;
  flowscope_bpf* skel_ = nullptr;
  std::string kernel_drops_unavailable_;
  std::vector<uint8_t> kernel_reason_ids_;
  std::vector<watch_key> watched_;  // what watched_addrs holds
};

}  // namespace flowscope::bpf

#endif  // FLOWSCOPE_BPF_DATAPATH_H_
