/* The one definition of what the flowscope datapath (flow.bpf.c) and user space share: the
 * event it writes into the BPF ring buffer, the keys and values of its maps, and the enums and
 * limits both sides use. Included by the BPF C program and by C++; never redeclared elsewhere.
 *
 * Byte order: addresses are in network byte order exactly as on the wire (IPv4 in addr[0]);
 * ports, lengths and counters are in host byte order. */
#ifndef FLOWSCOPE_BPF_FLOW_EVENT_H_
#define FLOWSCOPE_BPF_FLOW_EVENT_H_

#include <linux/types.h>

/* Address family of an event. */
#define FS_FAMILY_IPV4 4
#define FS_FAMILY_IPV6 6

/* Observation points (mapped to Hubble's trace observation points in user space). */
enum fs_obs_point {
  FS_OBS_UNKNOWN = 0,
  FS_OBS_FROM_ENDPOINT = 1, /* host side of an endpoint's interface, tc ingress */
  FS_OBS_TO_ENDPOINT = 2,   /* host side of an endpoint's interface, tc egress */
  FS_OBS_FROM_NETWORK = 3,  /* the node's uplink, tc ingress */
  FS_OBS_TO_NETWORK = 4,    /* the node's uplink, tc egress */
};

enum fs_verdict {
  FS_VERDICT_FORWARDED = 1,
  FS_VERDICT_DROPPED = 2,
};

/* skb->mark of a packet the tc programs drop: the kfree_skb program does not report it again. */
#define FS_DROP_MARK 0x5c0fd20fU

/* Drop reasons use Hubble's numbering (flow.DropReason). */
#define FS_DROP_POLICY_DENIED 133

/* is_reply: whether the packet goes from the flow's responder to its originator. */
enum fs_reply {
  FS_REPLY_NO = 0,
  FS_REPLY_YES = 1,
  FS_REPLY_UNKNOWN = 2, /* originator not known (mid-stream TCP, or a drop with no flow) */
};

/* Why the datapath emitted this event. */
enum fs_emit_reason {
  FS_EMIT_PACKET = 1,         /* aggregation "none": every packet */
  FS_EMIT_NEW_FLOW = 2,       /* the first packet of a flow */
  FS_EMIT_NEW_DIR = 3,        /* the first packet in the reply direction */
  FS_EMIT_TCP_FLAG = 4,       /* a SYN, FIN or RST not seen before in this direction */
  FS_EMIT_PERIODIC = 5,       /* the report interval passed while the flow was active */
  FS_EMIT_DROP = 6,           /* the packet was dropped */
  FS_EMIT_POLICY_VERDICT = 7, /* the policy verdict on a denied packet (beside its drop event),
                                 as Cilium's policy-verdict notification */
  FS_EMIT_KERNEL_DROP = 8,    /* the kernel freed the packet as dropped (skb:kfree_skb): no
                                 observation point or interface, kernel_reason says why */
  FS_EMIT_DNS = 9,            /* a DNS message (struct dns_event): a query leaving an endpoint
                                 (from-endpoint, to port 53) or an answer arriving at one
                                 (to-endpoint, from port 53), once per packet */
};

/* TCP flags as in byte 13 of the TCP header, plus NS (the low bit of byte 12) as bit 8. */
#define FS_TCP_FIN 0x001
#define FS_TCP_SYN 0x002
#define FS_TCP_RST 0x004
#define FS_TCP_PSH 0x008
#define FS_TCP_ACK 0x010
#define FS_TCP_URG 0x020
#define FS_TCP_ECE 0x040
#define FS_TCP_CWR 0x080
#define FS_TCP_NS 0x100

/* Aggregation levels, chosen at load (flow.bpf.c's `aggregation`). */
enum fs_aggregation {
  FS_AGG_NONE = 0,    /* an event for every packet */
  FS_AGG_MEDIUM = 1,  /* new flow, first reply, new SYN/FIN/RST, drops, every report interval */
  FS_AGG_MAXIMUM = 2, /* new flows, closes (FIN/RST) and drops */
};

/* One event in the ring buffer: 88 bytes. */
struct flow_event {
  __u64 ktime_ns;     /* bpf_ktime_get_ns() when the packet was seen */
  __u64 flow_packets; /* packets of this flow at this hook so far, both directions */
  __u64 flow_bytes;   /* bytes of those packets */
  __u32 saddr[4];     /* network byte order; IPv4 uses saddr[0] */
  __u32 daddr[4];
  __u32 ifindex; /* interface the hook is attached to */
  __u32 pkt_len; /* skb->len */
  __u16 sport;   /* host byte order; 0 for ICMP */
  __u16 dport;
  __u16 tcp_flags;      /* FS_TCP_* of this packet */
  __u16 flow_tcp_flags; /* FS_TCP_* seen on this flow so far, both directions */
  __u8 family;          /* FS_FAMILY_* */
  __u8 protocol;        /* IPPROTO_* */
  __u8 obs_point;       /* enum fs_obs_point */
  __u8 verdict;         /* enum fs_verdict */
  __u8 drop_reason;     /* 0, or a DropReason code (< 256) */
  __u8 is_reply;        /* enum fs_reply */
  __u8 icmp_type;
  __u8 icmp_code;
  __u8 emit_reason;    /* enum fs_emit_reason */
  __u8 policy;         /* drops by a deny rule: the rule's policy name id (0: unnamed) */
  __u16 kernel_reason; /* FS_EMIT_KERNEL_DROP: the running kernel's enum skb_drop_reason value
                          (0xffff: a subsystem's reason); user space names it */
  __u8 pad[4];
};

/* A DNS message's event: the packet's flow_event (emit_reason FS_EMIT_DNS) and a bounded prefix of
 * the message (UDP payload; over TCP the message after its 2-byte length, from segments that
 * start one). When the packet is also reported as an L3/L4 flow, the same event carries that
 * (flow_reason: its fs_emit_reason; 0 when not): one ring-buffer record per packet. 608 bytes. */
#define FS_DNS_MAX_PAYLOAD 512
struct dns_event {
  struct flow_event flow;
  __u16 copied;     /* bytes of the message in data (<= FS_DNS_MAX_PAYLOAD) */
  __u16 msg_len;    /* the message's length: the UDP payload's, or TCP's length prefix */
  __u8 flow_reason; /* the packet's L3/L4 event (FS_EMIT_NEW_FLOW .. FS_EMIT_PERIODIC), or 0 */
  __u8 pad[3];
  __u8 data[FS_DNS_MAX_PAYLOAD];
};

/* Flow table key: both directions of a flow at one interface share it. Endpoint "a" is the
 * smaller (address, port) pair. */
struct flow_key {
  __u32 addr_a[4];
  __u32 addr_b[4];
  __u16 port_a; /* for ICMP echo: the echo identifier on both sides */
  __u16 port_b;
  __u32 ifindex;
  __u8 protocol;
  __u8 family;
  __u8 pad[2];
};

struct flow_state {
  __u64 first_ns;
  __u64 last_report_ns[2]; /* per direction: 0 originator -> responder, 1 reply */
  __u64 packets;
  __u64 bytes;
  __u16 flags_seen[2]; /* FS_TCP_* seen per direction */
  __u8 origin_is_a;    /* endpoint "a" of the key originated the flow */
  __u8 origin_known;   /* 0 when guessed from a mid-stream TCP packet */
  __u8 dirs_seen;      /* bit d: a packet in direction d was seen */
  __u8 closed;         /* a FIN or RST was seen */
  __u8 pad[8];
};

/* Per-interface settings (map if_config, key: ifindex). Missing interfaces use the program's
 * defaults (from-endpoint on ingress, to-endpoint on egress). */
struct if_config {
  __u8 ingress_point; /* enum fs_obs_point */
  __u8 egress_point;
  __u8 pad[2];
};

/* A deny rule (map deny_rules, key: 0 .. deny_rule_count-1). A packet matches when every part
 * matches: (addr & mask) == net for source and destination (a zero mask is a wildcard),
 * protocol (0: any) and destination port (0: any). */
#define FS_MAX_DENY_RULES 64
struct deny_rule {
  __u32 src_net[4];
  __u32 src_mask[4];
  __u32 dst_net[4];
  __u32 dst_mask[4];
  __u16 dport;   /* host byte order; 0: any */
  __u8 protocol; /* IPPROTO_*; 0: any */
  __u8 family;   /* FS_FAMILY_*; 0: either */
  __u8 policy;   /* policy name id reported with the drops it causes; 0: unnamed */
  __u8 pad[3];
};

/* An address whose kernel drops are reported (map watched_addrs): the observed endpoints'. */
#define FS_MAX_WATCHED_ADDRS 65536
struct watch_key {
  __u32 addr[4]; /* network byte order; IPv4 in addr[0], the rest zero */
  __u8 family;   /* FS_FAMILY_* */
  __u8 pad[3];
};

/* Kernel drops are reported once per report interval per flow and reason (map kernel_drops);
 * the drops in between are counted (FS_STAT_KERNEL_DROPS_SUPPRESSED). */
struct kernel_drop_key {
  __u32 saddr[4];
  __u32 daddr[4];
  __u16 sport;
  __u16 dport;
  __u16 reason;
  __u8 protocol;
  __u8 family;
};

/* Counters in the per-CPU array datapath_stats. */
enum fs_stat {
  FS_STAT_PACKETS = 0,   /* packets the hooks saw */
  FS_STAT_EVENTS = 1,    /* events written to the ring buffer */
  FS_STAT_MALFORMED = 2, /* IP packets too short or malformed to describe (no event) */
  FS_STAT_NOT_IP = 3,    /* non-IP frames, passed through */
  FS_STAT_POLICY_DROPS = 4,
  FS_STAT_KERNEL_DROPS = 5,            /* kernel drops of watched addresses */
  FS_STAT_KERNEL_DROPS_SUPPRESSED = 6, /* of those, not reported (rate limit per flow) */
  FS_STAT_DNS = 7,                     /* DNS messages reported */
  FS_STAT_MAX = 8,
};

#ifdef __cplusplus
static_assert(sizeof(struct flow_event) == 88, "flow_event layout");
static_assert(sizeof(struct dns_event) == 608, "dns_event layout");
static_assert(sizeof(struct flow_key) == 44, "flow_key layout");
static_assert(sizeof(struct flow_state) == 56, "flow_state layout");
static_assert(sizeof(struct deny_rule) == 72, "deny_rule layout");
static_assert(sizeof(struct watch_key) == 20, "watch_key layout");
static_assert(sizeof(struct kernel_drop_key) == 40, "kernel_drop_key layout");
#else
_Static_assert(sizeof(struct flow_event) == 88, "flow_event layout");
_Static_assert(sizeof(struct dns_event) == 608, "dns_event layout");
_Static_assert(sizeof(struct flow_key) == 44, "flow_key layout");
_Static_assert(sizeof(struct flow_state) == 56, "flow_state layout");
_Static_assert(sizeof(struct deny_rule) == 72, "deny_rule layout");
_Static_assert(sizeof(struct watch_key) == 20, "watch_key layout");
_Static_assert(sizeof(struct kernel_drop_key) == 40, "kernel_drop_key layout");
#endif

#endif /* FLOWSCOPE_BPF_FLOW_EVENT_H_ */
