#include "bpf/drop_reasons.h"

#include <array>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/strip.h"

namespace flowscope::bpf {
namespace {

// Index: flowscope's id. Linux 6.18's enum skb_drop_reason, in its order; append only.
constexpr const char* kNames[] = {
    "NOT_DROPPED_YET",
    "CONSUMED",
    "NOT_SPECIFIED",
    "NO_SOCKET",
    "SOCKET_CLOSE",
    "SOCKET_FILTER",
    "SOCKET_RCVBUFF",
    "UNIX_DISCONNECT",
    "UNIX_SKIP_OOB",
    "PKT_TOO_SMALL",
    "TCP_CSUM",
    "UDP_CSUM",
    "NETFILTER_DROP",
    "OTHERHOST",
    "IP_CSUM",
    "IP_INHDR",
    "IP_RPFILTER",
    "UNICAST_IN_L2_MULTICAST",
    "XFRM_POLICY",
    "IP_NOPROTO",
    "PROTO_MEM",
    "TCP_AUTH_HDR",
    "TCP_MD5NOTFOUND",
    "TCP_MD5UNEXPECTED",
    "TCP_MD5FAILURE",
    "TCP_AONOTFOUND",
    "TCP_AOUNEXPECTED",
    "TCP_AOKEYNOTFOUND",
    "TCP_AOFAILURE",
    "SOCKET_BACKLOG",
    "TCP_FLAGS",
    "TCP_ABORT_ON_DATA",
    "TCP_ZEROWINDOW",
    "TCP_OLD_DATA",
    "TCP_OVERWINDOW",
    "TCP_OFOMERGE",
    "TCP_RFC7323_PAWS",
    "TCP_RFC7323_PAWS_ACK",
    "TCP_RFC7323_TW_PAWS",
    "TCP_RFC7323_TSECR",
    "TCP_LISTEN_OVERFLOW",
    "TCP_OLD_SEQUENCE",
    "TCP_INVALID_SEQUENCE",
    "TCP_INVALID_END_SEQUENCE",
    "TCP_INVALID_ACK_SEQUENCE",
    "TCP_RESET",
    "TCP_INVALID_SYN",
    "TCP_CLOSE",
    "TCP_FASTOPEN",
    "TCP_OLD_ACK",
    "TCP_TOO_OLD_ACK",
    "TCP_ACK_UNSENT_DATA",
    "TCP_OFO_QUEUE_PRUNE",
    "TCP_OFO_DROP",
    "IP_OUTNOROUTES",
    "BPF_CGROUP_EGRESS",
    "IPV6DISABLED",
    "NEIGH_CREATEFAIL",
    "NEIGH_FAILED",
    "NEIGH_QUEUEFULL",
    "NEIGH_DEAD",
    "NEIGH_HH_FILLFAIL",
    "TC_EGRESS",
    "SECURITY_HOOK",
    "QDISC_DROP",
    "QDISC_OVERLIMIT",
    "QDISC_CONGESTED",
    "CAKE_FLOOD",
    "FQ_BAND_LIMIT",
    "FQ_HORIZON_LIMIT",
    "FQ_FLOW_LIMIT",
    "CPU_BACKLOG",
    "XDP",
    "TC_INGRESS",
    "UNHANDLED_PROTO",
    "SKB_CSUM",
    "SKB_GSO_SEG",
    "SKB_UCOPY_FAULT",
    "DEV_HDR",
    "DEV_READY",
    "FULL_RING",
    "NOMEM",
    "HDR_TRUNC",
    "TAP_FILTER",
    "TAP_TXFILTER",
    "ICMP_CSUM",
    "INVALID_PROTO",
    "IP_INADDRERRORS",
    "IP_INNOROUTES",
    "IP_LOCAL_SOURCE",
    "IP_INVALID_SOURCE",
    "IP_LOCALNET",
    "IP_INVALID_DEST",
    "PKT_TOO_BIG",
    "DUP_FRAG",
    "FRAG_REASM_TIMEOUT",
    "FRAG_TOO_FAR",
    "TCP_MINTTL",
    "IPV6_BAD_EXTHDR",
    "IPV6_TOO_MANY_EXTHDRS",
    "IPV6_NDISC_FRAG",
    "IPV6_NDISC_HOP_LIMIT",
    "IPV6_NDISC_BAD_CODE",
    "IPV6_NDISC_BAD_OPTIONS",
    "IPV6_NDISC_NS_OTHERHOST",
    "QUEUE_PURGE",
    "TC_COOKIE_ERROR",
    "PACKET_SOCK_ERROR",
    "TC_CHAIN_NOTFOUND",
    "TC_RECLASSIFY_LOOP",
    "VXLAN_INVALID_HDR",
    "VXLAN_VNI_NOT_FOUND",
    "MAC_INVALID_SOURCE",
    "VXLAN_ENTRY_EXISTS",
    "NO_TX_TARGET",
    "IP_TUNNEL_ECN",
    "TUNNEL_TXINFO",
    "LOCAL_MAC",
    "ARP_PVLAN_DISABLE",
    "MAC_IEEE_MAC_CONTROL",
    "BRIDGE_INGRESS_STP_STATE",
    "CAN_RX_INVALID_FRAME",
    "CANFD_RX_INVALID_FRAME",
    "CANXL_RX_INVALID_FRAME",
    "PFMEMALLOC",
    "DUALPI2_STEP_DROP",
    "PSP_INPUT",
    "PSP_OUTPUT",
    "RECURSION_LIMIT",
    "SKB_RX_HEADROOM",
};
static_assert(std::size(kNames) < kKernelReasonUnknown);

}  // namespace

absl::string_view KernelDropReasonName(uint8_t id) {
  return id < std::size(kNames) ? kNames[id] : "UNKNOWN";
}

std::optional<uint8_t> KernelDropReasonId(absl::string_view name) {
  std::string upper = absl::AsciiStrToUpper(name);
  absl::string_view n = upper;
  absl::ConsumePrefix(&n, "SKB_DROP_REASON_");
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (n == kNames[i]) return static_cast<uint8_t>(i);
  }
  return std::nullopt;
}

uint8_t KernelDropReasonIdOfEnumerator(absl::string_view enumerator) {
  if (!absl::ConsumePrefix(&enumerator, "SKB_DROP_REASON_") &&
      !absl::ConsumePrefix(&enumerator, "SKB_")) {
    return kKernelReasonUnknown;
  }
  for (size_t i = 0; i < std::size(kNames); ++i) {
    if (enumerator == kNames[i]) return static_cast<uint8_t>(i);
  }
  return kKernelReasonUnknown;
}

uint32_t HubbleDropReasonOf(uint8_t id) {
  const absl::string_view n = KernelDropReasonName(id);
  // Only where Cilium's reason says the same thing about the packet.
  if (n == "IP_RPFILTER" || n == "IP_INVALID_SOURCE") return 132;  // INVALID_SOURCE_IP
  if (n == "UNHANDLED_PROTO") return 139;                          // UNSUPPORTED_L3_PROTOCOL
  if (n == "IP_NOPROTO") return 142;                               // UNKNOWN_L4_PROTOCOL
  if (n == "IPV6_BAD_EXTHDR") return 156;                          // INVALID_IPV6_EXTENSION_HEADER
  if (n == "IP_INNOROUTES" || n == "IP_OUTNOROUTES") return 169;   // FIB_LOOKUP_FAILED
  return 0;
}

}  // namespace flowscope::bpf
