// SPDX-License-Identifier: GPL-2.0
// flowscope's datapath: tc (sched_cls, direct-action) programs for the ingress and egress hooks
// of the interfaces they are attached to. Each parses Ethernet, IPv4/IPv6 (skipping extension
// headers), TCP/UDP/SCTP/ICMPv4/ICMPv6; keeps per-flow state in an LRU hash (both directions of
// a flow at one interface share an entry, which remembers who originated it); drops packets
// that match a deny rule; and reports flows into a BPF ring buffer, as often as the aggregation
// level asks. A third program, on the skb:kfree_skb tracepoint, reports the packets the kernel
// drops (with its reason) when they come from or go to a watched address. The event layout and
// every map key and value live in bpf/flow_event.h.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/pkt_cls.h>

// After the kernel headers, which define the types they use.
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#include "bpf/flow_event.h"

// --- load-time settings ------------------------------------------------------------------------

const volatile __u8 aggregation = FS_AGG_MEDIUM;
const volatile __u64 report_interval_ns = 5000000000ULL;
// 0: the kernel's adaptive wake-up of the consumer. N > 0: wake it only once at least N bytes
// wait in the ring buffer (the consumer then polls with a timeout to bound latency).
const volatile __u32 wakeup_bytes = 0;
// Observation points for interfaces that have no if_config entry.
const volatile __u8 default_ingress_point = FS_OBS_FROM_ENDPOINT;
const volatile __u8 default_egress_point = FS_OBS_TO_ENDPOINT;
// Report DNS messages (port 53) with a prefix of their content (struct dns_event).
const volatile __u8 dns_messages = 1;

// The running kernel's enum skb_drop_reason values that are not drops (set from its BTF at load;
// ~0 where the kernel has no such value).
const volatile __u32 reason_not_dropped_yet = ~0U;
const volatile __u32 reason_consumed = ~0U;
// Reasons (< 256) not reported, a bit each: frees the kernel calls drops that are not news, such
// as a closing socket purging what it had queued (QUEUE_PURGE).
const volatile __u64 ignored_reasons[4] = {};

// Number of valid entries in deny_rules; written by user space.
__u32 deny_rule_count = 0;
// Number of entries in watched_addrs; 0 turns the kfree_skb program into an early return.
__u32 watched_count = 0;

// --- maps --------------------------------------------------------------------------------------

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 24);  // resized at load
} events SEC(".maps");

// Events that could not be reserved in the ring buffer, per CPU.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} lost_events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 65536);  // resized at load
  __type(key, struct flow_key);
  __type(value, struct flow_state);
} flows SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, 4096);
  __type(key, __u32);
  __type(value, struct if_config);
} if_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, FS_MAX_DENY_RULES);
  __type(key, __u32);
  __type(value, struct deny_rule);
} deny_rules SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, FS_MAX_WATCHED_ADDRS);
  __type(key, struct watch_key);
  __type(value, __u8);
} watched_addrs SEC(".maps");

// Last report time per dropped flow and reason.
struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, 16384);
  __type(key, struct kernel_drop_key);
  __type(value, __u64);
} kernel_drops SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, FS_STAT_MAX);
  __type(key, __u32);
  __type(value, __u64);
} datapath_stats SEC(".maps");

// --- parsing -----------------------------------------------------------------------------------

#define ETH_HLEN_ 14
#define VLAN_HLEN_ 4
#define IPV6_MAX_EXT_HEADERS 8

// IPv6 extension header numbers.
#define NEXTHDR_HOP 0
#define NEXTHDR_ROUTING 43
#define NEXTHDR_FRAGMENT 44
#define NEXTHDR_AUTH 51
#define NEXTHDR_NONE 59
#define NEXTHDR_DEST 60

#ifndef IPPROTO_ICMPV6
#define IPPROTO_ICMPV6 58  // <linux/in6.h> has it, but clashes with <linux/in.h> here
#endif

struct pkt {
  __u32 saddr[4];
  __u32 daddr[4];
  __u16 sport;
  __u16 dport;
  __u16 tcp_flags;
  __u16 echo_id;  // ICMP echo identifier (flow key port on both sides)
  __u8 family;
  __u8 protocol;
  __u8 icmp_type;
  __u8 icmp_code;
  __u8 is_echo_request;
  __u8 is_echo_reply;
  __u16 payload_off;  // TCP and UDP: where the L4 payload starts in the frame
};

static __always_inline void stat_inc(__u32 idx) {
  __u64* v = bpf_map_lookup_elem(&datapath_stats, &idx);
  if (v) *v += 1;
}

enum parse_result { PARSE_OK = 0, PARSE_NOT_IP = 1, PARSE_MALFORMED = 2 };

// Reads the L4 header at `off`. `has_l4` is 0 for non-first fragments (protocol, no ports).
static __always_inline int parse_l4(struct __sk_buff* skb, __u32 off, int has_l4, struct pkt* p) {
  if (!has_l4) return PARSE_OK;
  __u8 b[20];
  switch (p->protocol) {
    case IPPROTO_TCP:
      if (bpf_skb_load_bytes(skb, off, b, 20) < 0) return PARSE_MALFORMED;
      p->sport = ((__u16)b[0] << 8) | b[1];
      p->dport = ((__u16)b[2] << 8) | b[3];
      p->tcp_flags = b[13] | ((__u16)(b[12] & 1) << 8);
      p->payload_off = (__u16)(off + (b[12] >> 4) * 4);
      return PARSE_OK;
    case IPPROTO_UDP:
    case IPPROTO_SCTP:
      if (bpf_skb_load_bytes(skb, off, b, 4) < 0) return PARSE_MALFORMED;
      p->sport = ((__u16)b[0] << 8) | b[1];
      p->dport = ((__u16)b[2] << 8) | b[3];
      p->payload_off = (__u16)(off + 8);
      return PARSE_OK;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      if (bpf_skb_load_bytes(skb, off, b, 8) < 0) return PARSE_MALFORMED;
      p->icmp_type = b[0];
      p->icmp_code = b[1];
      if (p->protocol == IPPROTO_ICMP) {
        p->is_echo_request = b[0] == 8;
        p->is_echo_reply = b[0] == 0;
      } else {
        p->is_echo_request = b[0] == 128;
        p->is_echo_reply = b[0] == 129;
      }
      if (p->is_echo_request || p->is_echo_reply) p->echo_id = ((__u16)b[4] << 8) | b[5];
      return PARSE_OK;
    default:
      return PARSE_OK;  // other protocols: addresses and protocol only
  }
}

static __always_inline int parse(struct __sk_buff* skb, struct pkt* p) {
  __u16 eth_proto;
  __u32 off = ETH_HLEN_;
  if (bpf_skb_load_bytes(skb, 12, &eth_proto, 2) < 0) return PARSE_NOT_IP;
  if (eth_proto == bpf_htons(ETH_P_8021Q) || eth_proto == bpf_htons(ETH_P_8021AD)) {
    if (bpf_skb_load_bytes(skb, 16, &eth_proto, 2) < 0) return PARSE_NOT_IP;
    off += VLAN_HLEN_;
  }

  if (eth_proto == bpf_htons(ETH_P_IP)) {
    __u8 ip[20];
    if (bpf_skb_load_bytes(skb, off, ip, 20) < 0) return PARSE_MALFORMED;
    const __u8 ihl = ip[0] & 0x0f;
    if ((ip[0] >> 4) != 4 || ihl < 5) return PARSE_MALFORMED;
    p->family = FS_FAMILY_IPV4;
    p->protocol = ip[9];
    __builtin_memcpy(&p->saddr[0], &ip[12], 4);
    __builtin_memcpy(&p->daddr[0], &ip[16], 4);
    const __u16 frag = ((__u16)(ip[6] & 0x1f) << 8) | ip[7];
    return parse_l4(skb, off + ihl * 4, frag == 0, p);
  }

  if (eth_proto == bpf_htons(ETH_P_IPV6)) {
    __u8 ip6[40];
    if (bpf_skb_load_bytes(skb, off, ip6, 40) < 0) return PARSE_MALFORMED;
    if ((ip6[0] >> 4) != 6) return PARSE_MALFORMED;
    p->family = FS_FAMILY_IPV6;
    __builtin_memcpy(p->saddr, &ip6[8], 16);
    __builtin_memcpy(p->daddr, &ip6[24], 16);
    __u8 next = ip6[6];
    off += 40;
    int has_l4 = 1;
#pragma unroll
    for (int i = 0; i < IPV6_MAX_EXT_HEADERS; i++) {
      __u8 ext[8];
      if (next == NEXTHDR_HOP || next == NEXTHDR_ROUTING || next == NEXTHDR_DEST) {
        if (bpf_skb_load_bytes(skb, off, ext, 2) < 0) return PARSE_MALFORMED;
        next = ext[0];
        off += ((__u32)ext[1] + 1) * 8;
      } else if (next == NEXTHDR_AUTH) {
        if (bpf_skb_load_bytes(skb, off, ext, 2) < 0) return PARSE_MALFORMED;
        next = ext[0];
        off += ((__u32)ext[1] + 2) * 4;
      } else if (next == NEXTHDR_FRAGMENT) {
        if (bpf_skb_load_bytes(skb, off, ext, 8) < 0) return PARSE_MALFORMED;
        next = ext[0];
        if ((((__u16)ext[2] << 8) | ext[3]) & 0xfff8) has_l4 = 0;  // not the first fragment
        off += 8;
      } else {
        break;
      }
    }
    if (next == NEXTHDR_HOP || next == NEXTHDR_ROUTING || next == NEXTHDR_DEST ||
        next == NEXTHDR_AUTH || next == NEXTHDR_FRAGMENT) {
      return PARSE_MALFORMED;  // more extension headers than we follow
    }
    if (next == NEXTHDR_NONE) has_l4 = 0;
    p->protocol = next;
    return parse_l4(skb, off, has_l4, p);
  }
  return PARSE_NOT_IP;
}

// --- policy ------------------------------------------------------------------------------------

static __always_inline int masked_eq(const __u32* addr, const __u32* net, const __u32* mask) {
  return (addr[0] & mask[0]) == net[0] && (addr[1] & mask[1]) == net[1] &&
         (addr[2] & mask[2]) == net[2] && (addr[3] & mask[3]) == net[3];
}

// The packet being handled, for fs_denied(): a global function is verified once on its own,
// not once per path of the caller, which keeps the 64-rule scan cheap for the verifier.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct pkt);
} scratch_pkt SEC(".maps");

__attribute__((noinline)) int fs_denied(__u32 slot) {
  const struct pkt* p = bpf_map_lookup_elem(&scratch_pkt, &slot);
  if (!p) return 0;
  const __u32 count = deny_rule_count;
  for (__u32 i = 0; i < FS_MAX_DENY_RULES; i++) {
    if (i >= count) break;
    __u32 key = i;
    const struct deny_rule* r = bpf_map_lookup_elem(&deny_rules, &key);
    if (!r) break;
    if (r->family && r->family != p->family) continue;
    if (r->protocol && r->protocol != p->protocol) continue;
    if (r->dport && r->dport != p->dport) continue;
    if (!masked_eq(p->saddr, r->src_net, r->src_mask)) continue;
    if (!masked_eq(p->daddr, r->dst_net, r->dst_mask)) continue;
    return 1 + r->policy;
  }
  return 0;
}

// 0, or 1 + the policy name id of the first rule that denies the packet.
static __always_inline int denied(const struct pkt* p) {
  if (!deny_rule_count) return 0;
  __u32 slot = 0;
  struct pkt* scratch = bpf_map_lookup_elem(&scratch_pkt, &slot);
  if (!scratch) return 0;
  __builtin_memcpy(scratch, p, sizeof(*p));
  return fs_denied(0);
}

// --- flow state --------------------------------------------------------------------------------

// Whether (a, pa) sorts before (b, pb): compares addresses word by word, then ports.
static __always_inline int endpoint_less(const __u32* a, __u16 pa, const __u32* b, __u16 pb) {
#pragma unroll
  for (int i = 0; i < 4; i++) {
    const __u32 x = bpf_ntohl(a[i]);
    const __u32 y = bpf_ntohl(b[i]);
    if (x != y) return x < y;
  }
  return pa < pb;
}

// Builds the flow key; returns whether the packet's source is endpoint "a".
static __always_inline int make_key(const struct pkt* p, __u32 ifindex, struct flow_key* k) {
  const int icmp = p->protocol == IPPROTO_ICMP || p->protocol == IPPROTO_ICMPV6;
  const __u16 sport = icmp ? p->echo_id : p->sport;
  const __u16 dport = icmp ? p->echo_id : p->dport;
  const int src_is_a = !endpoint_less(p->daddr, dport, p->saddr, sport);
  if (src_is_a) {
    __builtin_memcpy(k->addr_a, p->saddr, 16);
    __builtin_memcpy(k->addr_b, p->daddr, 16);
    k->port_a = sport;
    k->port_b = dport;
  } else {
    __builtin_memcpy(k->addr_a, p->daddr, 16);
    __builtin_memcpy(k->addr_b, p->saddr, 16);
    k->port_a = dport;
    k->port_b = sport;
  }
  k->ifindex = ifindex;
  k->protocol = p->protocol;
  k->family = p->family;
  return src_is_a;
}

// Who originated a flow whose first packet is `p`: 1 if the sender, 0 if the receiver. Sets
// *known to 0 when that is a guess (TCP picked up mid-stream).
static __always_inline int sender_originates(const struct pkt* p, __u8* known) {
  *known = 1;
  if (p->protocol == IPPROTO_TCP) {
    if (p->tcp_flags & FS_TCP_SYN) return !(p->tcp_flags & FS_TCP_ACK);  // SYN / SYN-ACK
    *known = 0;
    return 1;
  }
  if (p->is_echo_reply) return 0;
  return 1;
}

// --- events ------------------------------------------------------------------------------------

static __always_inline void count_lost(void) {
  __u32 key = 0;
  __u64* lost = bpf_map_lookup_elem(&lost_events, &key);
  if (lost) *lost += 1;
}

static __always_inline void fill(struct flow_event* e, __u32 ifindex, __u32 len,
                                 const struct pkt* p, __u8 obs_point, __u8 verdict,
                                 __u8 drop_reason, __u8 is_reply, __u8 reason, __u8 policy,
                                 __u16 kernel_reason, __u64 now, const struct flow_state* st) {
  e->ktime_ns = now;
  e->flow_packets = st ? st->packets : 1;
  e->flow_bytes = st ? st->bytes : len;
  __builtin_memcpy(e->saddr, p->saddr, 16);
  __builtin_memcpy(e->daddr, p->daddr, 16);
  e->ifindex = ifindex;
  e->pkt_len = len;
  e->sport = p->sport;
  e->dport = p->dport;
  e->tcp_flags = p->tcp_flags;
  e->flow_tcp_flags = st ? (st->flags_seen[0] | st->flags_seen[1]) : p->tcp_flags;
  e->family = p->family;
  e->protocol = p->protocol;
  e->obs_point = obs_point;
  e->verdict = verdict;
  e->drop_reason = drop_reason;
  e->is_reply = is_reply;
  e->icmp_type = p->icmp_type;
  e->icmp_code = p->icmp_code;
  e->emit_reason = reason;
  e->policy = policy;
  e->kernel_reason = kernel_reason;
  __builtin_memset(e->pad, 0, sizeof(e->pad));
  stat_inc(FS_STAT_EVENTS);
}

// With wakeup_bytes: wake the consumer when this record (of `size` bytes, reserved already)
// takes what waits across the threshold — once per crossing, not on every record after it (a
// wakeup is an interrupt; the consumer, once awake, drains everything, and polls with a timeout).
static __always_inline __u64 submit_flags(__u64 size) {
  if (!wakeup_bytes) return 0;
  const __u64 avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
  const __u64 taken = size + 8;  // the record and its header (BPF_RINGBUF_HDR_SZ)
  return avail >= wakeup_bytes && avail < wakeup_bytes + taken ? BPF_RB_FORCE_WAKEUP
                                                               : BPF_RB_NO_WAKEUP;
}

static __always_inline void emit(__u32 ifindex, __u32 len, const struct pkt* p, __u8 obs_point,
                                 __u8 verdict, __u8 drop_reason, __u8 is_reply, __u8 reason,
                                 __u8 policy, __u16 kernel_reason, __u64 now,
                                 const struct flow_state* st) {
  struct flow_event* e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count_lost();
    return;
  }
  fill(e, ifindex, len, p, obs_point, verdict, drop_reason, is_reply, reason, policy, kernel_reason,
       now, st);
  bpf_ringbuf_submit(e, submit_flags(sizeof(*e)));
}

// Whether the packet is a DNS message this hook reports: a query leaving an endpoint
// (from-endpoint, to port 53) or an answer arriving at one (to-endpoint, from port 53) — the
// client's side, where Cilium's DNS proxy sees them — so each message is reported once however
// many hooks it crosses.
static __always_inline int dns_here(const struct pkt* p, __u8 obs_point) {
  if (!dns_messages) return 0;
  if (p->protocol != IPPROTO_UDP && p->protocol != IPPROTO_TCP) return 0;
  return (p->dport == 53 && p->sport != 53 && obs_point == FS_OBS_FROM_ENDPOINT) ||
         (p->sport == 53 && obs_point == FS_OBS_TO_ENDPOINT);
}

// Reports the DNS message in the packet with its first FS_DNS_MAX_PAYLOAD bytes, and the
// packet's L3/L4 event in the same record when `flow_reason` is one. Returns whether it did (a
// TCP segment that does not start a message has none).
static __always_inline int emit_dns(struct __sk_buff* skb, const struct pkt* p, __u8 obs_point,
                                    __u8 is_reply, __u8 flow_reason, __u64 now,
                                    const struct flow_state* st) {
  __u32 off = p->payload_off;
  const __u32 len = skb->len;
  if (off == 0 || off > len) return 0;
  __u32 avail = len - off;
  __u32 msg_len = avail;
  if (p->protocol == IPPROTO_TCP) {
    // Only segments that start a message: a length prefix and a header. Pure ACKs and the
    // rest of long messages carry none.
    if (avail < 2 + 12) return 0;
    __u8 prefix[2];
    if (bpf_skb_load_bytes(skb, off, prefix, 2) < 0) return 0;
    msg_len = ((__u32)prefix[0] << 8) | prefix[1];
    off += 2;
    avail -= 2;
  }
  __u32 n = avail < FS_DNS_MAX_PAYLOAD ? avail : FS_DNS_MAX_PAYLOAD;
  struct dns_event* e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) {
    count_lost();
    return 1;
  }
  fill(&e->flow, skb->ifindex, len, p, obs_point, FS_VERDICT_FORWARDED, 0, is_reply, FS_EMIT_DNS, 0,
       0, now, st);
  e->msg_len = msg_len > 0xffff ? 0xffff : (__u16)msg_len;
  e->flow_reason = flow_reason;
  __builtin_memset(e->pad, 0, sizeof(e->pad));
  // Bounded for the verifier: 1 .. FS_DNS_MAX_PAYLOAD.
  if (n > 0 && n <= FS_DNS_MAX_PAYLOAD && bpf_skb_load_bytes(skb, off, e->data, n) == 0) {
    e->copied = (__u16)n;
  } else {
    e->copied = 0;
  }
  stat_inc(FS_STAT_DNS);
  bpf_ringbuf_submit(e, submit_flags(sizeof(*e)));
  return 1;
}

static __always_inline int handle(struct __sk_buff* skb, int ingress) {
  stat_inc(FS_STAT_PACKETS);
  struct pkt p = {};
  const int parsed = parse(skb, &p);
  if (parsed == PARSE_NOT_IP) {
    stat_inc(FS_STAT_NOT_IP);
    return TC_ACT_OK;
  }
  if (parsed != PARSE_OK) {
    stat_inc(FS_STAT_MALFORMED);
    return TC_ACT_OK;
  }

  __u32 ifindex = skb->ifindex;
  __u8 obs_point = ingress ? default_ingress_point : default_egress_point;
  const struct if_config* cfg = bpf_map_lookup_elem(&if_config, &ifindex);
  if (cfg) obs_point = ingress ? cfg->ingress_point : cfg->egress_point;

  const __u64 now = bpf_ktime_get_ns();
  struct flow_key key = {};
  const int src_is_a = make_key(&p, ifindex, &key);
  struct flow_state* st = bpf_map_lookup_elem(&flows, &key);

  const int deny = denied(&p);
  if (deny) {
    // Always reported: the drop, and the policy verdict (Cilium reports both). The direction
    // is known only if the flow was established before.
    __u8 is_reply = FS_REPLY_UNKNOWN;
    if (st && st->origin_known)
      is_reply = (src_is_a == st->origin_is_a) ? FS_REPLY_NO : FS_REPLY_YES;
    stat_inc(FS_STAT_POLICY_DROPS);
    const __u8 policy = (__u8)(deny - 1);
    emit(skb->ifindex, skb->len, &p, obs_point, FS_VERDICT_DROPPED, FS_DROP_POLICY_DENIED, is_reply,
         FS_EMIT_DROP, policy, 0, now, st);
    emit(skb->ifindex, skb->len, &p, obs_point, FS_VERDICT_DROPPED, FS_DROP_POLICY_DENIED, is_reply,
         FS_EMIT_POLICY_VERDICT, policy, 0, now, st);
    skb->mark = FS_DROP_MARK;  // reported: the kernel's own drop event for it is not
    return TC_ACT_SHOT;
  }

  const int syn_only =
      p.protocol == IPPROTO_TCP && (p.tcp_flags & (FS_TCP_SYN | FS_TCP_ACK)) == FS_TCP_SYN;
  int new_flow = 0;
  if (!st || (st->closed && syn_only)) {
    struct flow_state fresh = {};
    __u8 known;
    const int sender = sender_originates(&p, &known);
    fresh.first_ns = now;
    fresh.origin_is_a = sender ? src_is_a : !src_is_a;
    fresh.origin_known = known;
    if (bpf_map_update_elem(&flows, &key, &fresh, BPF_ANY) != 0) return TC_ACT_OK;
    st = bpf_map_lookup_elem(&flows, &key);
    if (!st) return TC_ACT_OK;
    new_flow = 1;
  }

  const int dir = (src_is_a == st->origin_is_a) ? 0 : 1;
  __sync_fetch_and_add(&st->packets, 1);
  __sync_fetch_and_add(&st->bytes, skb->len);

  const __u16 seen = dir ? st->flags_seen[1] : st->flags_seen[0];
  const __u16 new_flags = p.tcp_flags & ~seen & (FS_TCP_SYN | FS_TCP_FIN | FS_TCP_RST);
  const int first_in_dir = !(st->dirs_seen & (1 << dir));
  const __u64 last = dir ? st->last_report_ns[1] : st->last_report_ns[0];
  const int closing = (p.tcp_flags & (FS_TCP_FIN | FS_TCP_RST)) && !st->closed;

  __u8 reason = 0;
  if (aggregation == FS_AGG_NONE) {
    reason = new_flow ? FS_EMIT_NEW_FLOW : FS_EMIT_PACKET;
  } else if (aggregation == FS_AGG_MAXIMUM) {
    if (new_flow)
      reason = FS_EMIT_NEW_FLOW;
    else if (closing)
      reason = FS_EMIT_TCP_FLAG;
  } else {
    if (new_flow)
      reason = FS_EMIT_NEW_FLOW;
    else if (first_in_dir)
      reason = FS_EMIT_NEW_DIR;
    else if (new_flags)
      reason = FS_EMIT_TCP_FLAG;
    else if (now - last >= report_interval_ns)
      reason = FS_EMIT_PERIODIC;
  }

  if (dir) {
    st->flags_seen[1] |= p.tcp_flags;
  } else {
    st->flags_seen[0] |= p.tcp_flags;
  }
  st->dirs_seen |= 1 << dir;
  if (p.tcp_flags & (FS_TCP_FIN | FS_TCP_RST)) st->closed = 1;

  const __u8 is_reply = !st->origin_known ? FS_REPLY_UNKNOWN : (dir ? FS_REPLY_YES : FS_REPLY_NO);
  const int dns = dns_here(&p, obs_point);
  if (reason) {
    if (dir) {
      st->last_report_ns[1] = now;
    } else {
      st->last_report_ns[0] = now;
    }
    // A DNS message carries its packet's L3/L4 event: one record instead of two.
    if (!dns || !emit_dns(skb, &p, obs_point, is_reply, reason, now, st)) {
      emit(skb->ifindex, skb->len, &p, obs_point, FS_VERDICT_FORWARDED, 0, is_reply, reason, 0, 0,
           now, st);
    }
  } else if (dns) {
    emit_dns(skb, &p, obs_point, is_reply, 0, now, st);
  }
  return TC_ACT_OK;
}

SEC("tc")
int flowscope_ingress(struct __sk_buff* skb) { return handle(skb, 1); }

SEC("tc")
int flowscope_egress(struct __sk_buff* skb) { return handle(skb, 0); }

// --- kernel drops ------------------------------------------------------------------------------

// The fields of the kernel's struct sk_buff this program reads, relocated against the running
// kernel's BTF at load (CO-RE): the build never needs the kernel's headers.
struct sk_buff {
  unsigned int len;
  __u32 mark;
  __u16 transport_header;
  __u16 network_header;
  __be16 protocol;
  unsigned char* head;
} __attribute__((preserve_access_index));

// Reads the L4 header of a dropped packet at `l4`.
static __always_inline void read_l4(const unsigned char* l4, struct pkt* p) {
  __u8 b[14];
  switch (p->protocol) {
    case IPPROTO_TCP:
      if (bpf_probe_read_kernel(b, 14, l4) < 0) return;
      p->sport = ((__u16)b[0] << 8) | b[1];
      p->dport = ((__u16)b[2] << 8) | b[3];
      p->tcp_flags = b[13] | ((__u16)(b[12] & 1) << 8);
      return;
    case IPPROTO_UDP:
    case IPPROTO_SCTP:
      if (bpf_probe_read_kernel(b, 4, l4) < 0) return;
      p->sport = ((__u16)b[0] << 8) | b[1];
      p->dport = ((__u16)b[2] << 8) | b[3];
      return;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
      if (bpf_probe_read_kernel(b, 2, l4) < 0) return;
      p->icmp_type = b[0];
      p->icmp_code = b[1];
      return;
    default:
      return;
  }
}

static __always_inline int watched(const struct pkt* p) {
  struct watch_key k = {};
  k.family = p->family;
  __builtin_memcpy(k.addr, p->saddr, 16);
  if (bpf_map_lookup_elem(&watched_addrs, &k)) return 1;
  __builtin_memcpy(k.addr, p->daddr, 16);
  return bpf_map_lookup_elem(&watched_addrs, &k) != 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(flowscope_kfree_skb, struct sk_buff* skb, void* location, int reason) {
  if (!watched_count) return 0;
  const __u32 why = (__u32)reason;
  if (why == reason_not_dropped_yet || why == reason_consumed) return 0;
  if (why < 256 && (ignored_reasons[why / 64] >> (why % 64)) & 1) return 0;

  if (BPF_CORE_READ(skb, mark) == FS_DROP_MARK) return 0;  // a deny rule's, reported already

  const unsigned char* head = BPF_CORE_READ(skb, head);
  const __u16 nh = BPF_CORE_READ(skb, network_header);
  if (!head || nh == (__u16)~0U) return 0;  // no network header set: not an IP packet yet
  const unsigned char* l3 = head + nh;
  __u8 ip[40];
  if (bpf_probe_read_kernel(ip, 20, l3) < 0) return 0;
  struct pkt p = {};
  const unsigned char* l4;
  const __u8 version = ip[0] >> 4;
  const __be16 proto = BPF_CORE_READ(skb, protocol);
  if (version == 4 && (proto == bpf_htons(ETH_P_IP) || proto == 0)) {
    const __u8 ihl = ip[0] & 0x0f;
    if (ihl < 5) return 0;
    p.family = FS_FAMILY_IPV4;
    p.protocol = ip[9];
    __builtin_memcpy(&p.saddr[0], &ip[12], 4);
    __builtin_memcpy(&p.daddr[0], &ip[16], 4);
    l4 = l3 + ihl * 4;
    if (((((__u16)(ip[6] & 0x1f) << 8) | ip[7])) != 0) l4 = 0;  // a non-first fragment
  } else if (version == 6 && (proto == bpf_htons(ETH_P_IPV6) || proto == 0)) {
    if (bpf_probe_read_kernel(ip, 40, l3) < 0) return 0;
    p.family = FS_FAMILY_IPV6;
    p.protocol = ip[6];  // extension headers are not followed: their packets carry no ports
    __builtin_memcpy(p.saddr, &ip[8], 16);
    __builtin_memcpy(p.daddr, &ip[24], 16);
    l4 = l3 + 40;
  } else {
    return 0;
  }
  if (!watched(&p)) return 0;
  if (l4) read_l4(l4, &p);
  stat_inc(FS_STAT_KERNEL_DROPS);

  const __u64 now = bpf_ktime_get_ns();
  const __u16 why16 = why > 0xffff ? 0xffff : (__u16)why;
  if (aggregation != FS_AGG_NONE) {
    struct kernel_drop_key k = {};
    __builtin_memcpy(k.saddr, p.saddr, 16);
    __builtin_memcpy(k.daddr, p.daddr, 16);
    k.sport = p.sport;
    k.dport = p.dport;
    k.reason = why16;
    k.protocol = p.protocol;
    k.family = p.family;
    __u64* last = bpf_map_lookup_elem(&kernel_drops, &k);
    if (last && now - *last < report_interval_ns) {
      stat_inc(FS_STAT_KERNEL_DROPS_SUPPRESSED);
      return 0;
    }
    if (last) {
      *last = now;
    } else {
      bpf_map_update_elem(&kernel_drops, &k, &now, BPF_ANY);
    }
  }
  const unsigned int len = BPF_CORE_READ(skb, len);
  emit(0, len, &p, FS_OBS_UNKNOWN, FS_VERDICT_DROPPED, 0, FS_REPLY_UNKNOWN, FS_EMIT_KERNEL_DROP, 0,
       why16, now, 0);
  return 0;
}

char LICENSE[] SEC("license") = "GPL";
