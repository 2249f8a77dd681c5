// FlowRecord: the compact, fixed-size, trivially copyable form in which the observer keeps a
// flow in its FlowRing (96 bytes). Endpoint metadata is not copied in: records refer to
// immutable EndpointTable entries by id, so a record keeps the names it had when it was seen.
// A flow.Flow protobuf is built from a record only when a query wants it (flow_builder.h).
#ifndef FLOWSCOPE_OBSERVER_FLOW_RECORD_H_
#define FLOWSCOPE_OBSERVER_FLOW_RECORD_H_

#include <cstdint>
#include <type_traits>

#include "bpf/flow_event.h"

namespace flowscope::observer {

struct FlowRecord {
  uint64_t time_ns = 0;       // wall-clock UTC nanoseconds; non-decreasing along the ring
  uint64_t flow_packets = 0;  // packets of this flow at this interface so far
  uint64_t flow_bytes = 0;
  uint32_t saddr[4] = {};  // network byte order; IPv4 in [0]
  uint32_t daddr[4] = {};
  uint32_t src_endpoint = 0;  // EndpointTable id; never 0 once parsed
  uint32_t dst_endpoint = 0;
  uint32_t src_service = 0;  // EndpointTable service id of the frontend address:port; 0: none
  uint32_t dst_service = 0;
  uint32_t ifindex = 0;
  uint32_t pkt_len = 0;
  uint16_t sport = 0;  // host byte order
  uint16_t dport = 0;
  uint16_t tcp_flags = 0;  // FS_TCP_* (bpf/flow_event.h)
  uint8_t family = 0;      // FS_FAMILY_*
  uint8_t protocol = 0;    // IPPROTO_*
  uint8_t obs_point = 0;   // fs_obs_point
  uint8_t verdict = 0;     // fs_verdict
  uint8_t drop_reason = 0;
  uint8_t is_reply = 0;  // fs_reply
  uint8_t icmp_type = 0;
  uint8_t icmp_code = 0;
  uint8_t emit_reason = 0;  // fs_emit_reason; FS_EMIT_POLICY_VERDICT makes a policy-verdict event
  // Drops by a named deny rule: EndpointTable::PolicyNames id. Kernel drops (emit_reason
  // FS_EMIT_KERNEL_DROP): flowscope's id of the kernel's reason (bpf/drop_reasons.h), and then
  // drop_reason is the Hubble code that means the same, or 0.
  uint8_t policy = 0;
};

inline bool IsKernelDrop(const FlowRecord& r) { return r.emit_reason == FS_EMIT_KERNEL_DROP; }
// The deny rule's name id of a policy drop; 0 for anything else.
inline uint8_t PolicyIdOf(const FlowRecord& r) {
  return r.verdict == FS_VERDICT_DROPPED && !IsKernelDrop(r) ? r.policy : 0;
}

static_assert(std::is_trivially_copyable_v<FlowRecord>);
static_assert(sizeof(FlowRecord) == 96, "FlowRecord layout");

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_FLOW_RECORD_H_
