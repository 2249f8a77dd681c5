#include "observer/flow_builder.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <array>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "bpf/drop_reasons.h"
#include "bpf/flow_event.h"
#include "flowscope/v1/flowscope.pb.h"

namespace flowscope::observer {
namespace {

// The Summary of a DNS flow whose message is no longer kept (older than the DNS table, with no
// history to find it in).
constexpr char kDnsGoneSummary[] = "DNS (message no longer kept)";

// Monitor trace sub-types (the reference §2.6) and the proto enum for each observation point.
struct PointInfo {
  int32_t monitor_sub_type;
  flow::TraceObservationPoint proto;
};
PointInfo Point(uint8_t obs) {
  switch (obs) {
    case FS_OBS_FROM_ENDPOINT:
      return {5, flow::FROM_ENDPOINT};
    case FS_OBS_TO_ENDPOINT:
      return {0, flow::TO_ENDPOINT};
    case FS_OBS_FROM_NETWORK:
      return {10, flow::FROM_NETWORK};
    case FS_OBS_TO_NETWORK:
      return {11, flow::TO_NETWORK};
    default:
      return {0, flow::UNKNOWN_POINT};
  }
}

std::string AddrString(uint8_t family, const uint32_t addr[4]) {
  if (family == FS_FAMILY_IPV4) {
    // Dotted quad by hand: glibc's inet_ntop formats IPv4 through sprintf, a tenth of the
    // observer's time per flow sent.
    const auto* b = reinterpret_cast<const uint8_t*>(addr);
    char buf[16];
    char* p = buf;
    for (int i = 0; i < 4; ++i) {
      if (i > 0) *p++ = '.';
      const unsigned v = b[i];
      if (v >= 100) *p++ = static_cast<char>('0' + v / 100);
      if (v >= 10) *p++ = static_cast<char>('0' + v / 10 % 10);
      *p++ = static_cast<char>('0' + v % 10);
    }
    return std::string(buf, static_cast<size_t>(p - buf));
  }
  char buf[INET6_ADDRSTRLEN] = {};
  inet_ntop(AF_INET6, addr, buf, sizeof buf);
  return buf;
}

// gopacket's names for ICMP type/codes, which Hubble's Summary uses.
struct IcmpName {
  uint8_t type;
  const char* name;
  std::array<const char*, 16> codes;  // nullptr-terminated; empty: the type has no code names
};

constexpr IcmpName kIcmpv4[] = {
    {0, "EchoReply", {}},
    {3,
     "DestinationUnreachable",
     {"Net", "Host", "Protocol", "Port", "FragmentationNeeded", "SourceRoutingFailed", "NetUnknown",
      "HostUnknown", "SourceIsolated", "NetAdminProhibited", "HostAdminProhibited", "NetTOS",
      "HostTOS", "CommAdminProhibited", "HostPrecedence", "PrecedenceCutoff"}},
    {4, "SourceQuench", {}},
    {5, "Redirect", {"Net", "Host", "TOS+Net", "TOS+Host"}},
    {8, "EchoRequest", {}},
    {9, "RouterAdvertisement", {}},
    {10, "RouterSolicitation", {}},
    {11, "TimeExceeded", {"TTLExceeded", "FragmentReassemblyTimeExceeded"}},
    {12, "ParameterProblem", {"PointerIndicatesError", "MissingOption", "BadLength"}},
    {13, "TimestampRequest", {}},
    {14, "TimestampReply", {}},
    {15, "InfoRequest", {}},
    {16, "InfoReply", {}},
    {17, "AddressMaskRequest", {}},
    {18, "AddressMaskReply", {}},
};

constexpr IcmpName kIcmpv6[] = {
    {1,
     "DestinationUnreachable",
     {"NoRouteToDst", "AdminProhibited", "BeyondScopeOfSrc", "AddressUnreachable",
      "PortUnreachable", "SrcAddressFailedPolicy", "RejectRouteToDst"}},
    {2, "PacketTooBig", {}},
    {3, "TimeExceeded", {"HopLimitExceeded", "FragmentReassemblyTimeExceeded"}},
    {4,
     "ParameterProblem",
     {"ErroneousHeaderField", "UnrecognizedNextHeader", "UnrecognizedIPv6Option"}},
    {128, "EchoRequest", {}},
    {129, "EchoReply", {}},
    {133, "RouterSolicitation", {}},
    {134, "RouterAdvertisement", {}},
    {135, "NeighborSolicitation", {}},
    {136, "NeighborAdvertisement", {}},
    {137, "Redirect", {}},
};

template <size_t N>
std::string IcmpTypeCode(const IcmpName (&table)[N], uint8_t type, uint8_t code) {
  for (const IcmpName& t : table) {
    if (t.type != type) continue;
    if (t.codes[0] == nullptr) return t.name;
    if (code < t.codes.size() && t.codes[code] != nullptr) {
      return absl::StrCat(t.name, "(", t.codes[code], ")");
    }
    return absl::StrCat(t.name, "(Code: ", code, ")");
  }
  return absl::StrCat(type, "(", code, ")");
}

}  // namespace

void InterfaceNames::Track(const ringbuf::FlowRing<FlowRecord>* ring) {
  absl::MutexLock lock(&mu_);
  ring_ = ring;
}

void InterfaceNames::Set(uint32_t ifindex, std::string name) {
  absl::MutexLock lock(&mu_);
  names_[ifindex] = Name{std::move(name), 0};
}

void InterfaceNames::Retire(uint32_t ifindex) {
  absl::MutexLock lock(&mu_);
  auto it = names_.find(ifindex);
  if (it == names_.end()) return;
  if (ring_ == nullptr) {
    names_.erase(it);
    return;
  }
  // Records at positions below this may name it; +1 keeps 0 for "live".
  it->second.retired_at = ring_->Written() + 1;
}

void InterfaceNames::Remove(uint32_t ifindex) {
  absl::MutexLock lock(&mu_);
  names_.erase(ifindex);
}

size_t InterfaceNames::Expire() {
  absl::MutexLock lock(&mu_);
  if (ring_ != nullptr) {
    const uint64_t oldest = ring_->OldestPosition();
    absl::erase_if(names_, [oldest](const auto& kv) {
      return kv.second.retired_at != 0 && kv.second.retired_at - 1 <= oldest;
    });
  }
  return names_.size();
}

std::string InterfaceNames::Get(uint32_t ifindex) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = names_.find(ifindex);
  return it == names_.end() ? "" : it->second.name;
}

size_t InterfaceNames::size() const {
  absl::ReaderMutexLock lock(&mu_);
  return names_.size();
}

std::string FlowSummary(const FlowRecord& r) {
  // What Hubble's CLI prints in parentheses after the verdict: "DROPPED (NETFILTER_DROP)".
  if (IsKernelDrop(r)) return std::string(bpf::KernelDropReasonName(r.policy));
  switch (r.protocol) {
    case IPPROTO_TCP: {
      // Hubble's order.
      static constexpr std::pair<uint16_t, const char*> kFlags[] = {
          {FS_TCP_SYN, "SYN"}, {FS_TCP_ACK, "ACK"}, {FS_TCP_RST, "RST"},
          {FS_TCP_FIN, "FIN"}, {FS_TCP_PSH, "PSH"}, {FS_TCP_URG, "URG"},
          {FS_TCP_ECE, "ECE"}, {FS_TCP_CWR, "CWR"}, {FS_TCP_NS, "NS"}};
      std::vector<const char*> set;
      for (const auto& [bit, name] : kFlags) {
        if (r.tcp_flags & bit) set.push_back(name);
      }
      // Non-first fragments have no TCP header: the last layer decoded is IP.
      if (set.empty() && r.sport == 0 && r.dport == 0) {
        return r.family == FS_FAMILY_IPV4 ? "IPv4" : "IPv6";
      }
      return absl::StrCat("TCP Flags: ", absl::StrJoin(set, ", "));
    }
    case IPPROTO_UDP:
      return "UDP";
    case IPPROTO_SCTP:
      return "SCTP";
    case IPPROTO_ICMP:
      return absl::StrCat("ICMPv4 ", IcmpTypeName(false, r.icmp_type, r.icmp_code));
    case IPPROTO_ICMPV6:
      return absl::StrCat("ICMPv6 ", IcmpTypeName(true, r.icmp_type, r.icmp_code));
    default:
      return r.family == FS_FAMILY_IPV4 ? "IPv4" : "IPv6";
  }
}

std::string IcmpTypeName(bool v6, uint8_t type, uint8_t code) {
  return v6 ? IcmpTypeCode(kIcmpv6, type, code) : IcmpTypeCode(kIcmpv4, type, code);
}

int32_t MonitorType(const FlowRecord& r) {
  if (r.emit_reason == FS_EMIT_POLICY_VERDICT) return 5;
  if (IsDns(r)) return 129;
  return r.verdict == FS_VERDICT_DROPPED ? 1 : 4;
}

int32_t MonitorSubType(const FlowRecord& r) {
  if (r.emit_reason == FS_EMIT_POLICY_VERDICT || IsDns(r)) return 0;
  return r.verdict == FS_VERDICT_DROPPED ? r.drop_reason : Point(r.obs_point).monitor_sub_type;
}

flow::TrafficDirection TrafficDirectionOf(const FlowRecord& r) {
  // Packets leaving the endpoint (or the node, at the uplink) in the original direction are
  // egress; replies flip it.
  if (r.obs_point == FS_OBS_UNKNOWN) {
    // A policy verdict always has one (Cilium's are per ingress or egress policy): where the
    // hook's side is not known, a denial is the destination's ingress.
    return r.emit_reason == FS_EMIT_POLICY_VERDICT ? flow::INGRESS
                                                   : flow::TRAFFIC_DIRECTION_UNKNOWN;
  }
  const bool leaving = r.obs_point == FS_OBS_FROM_ENDPOINT || r.obs_point == FS_OBS_TO_NETWORK;
  const bool reply = r.is_reply == FS_REPLY_YES;
  return leaving != reply ? flow::EGRESS : flow::INGRESS;
}

std::string FlowBuilder::InterfaceName(uint32_t ifindex) const {
  return interfaces_ == nullptr ? "" : interfaces_->Get(ifindex);
}

void FlowBuilder::AttachRuns(const RunArchive* runs, uint32_t current_run) {
  runs_ = runs;
  current_run_ = current_run;
}

std::string FlowBuilder::InterfaceName(uint32_t ifindex, uint32_t run) const {
  if (run == 0 || run == current_run_ || runs_ == nullptr) return InterfaceName(ifindex);
  return runs_->InterfaceName(run, ifindex);
}

std::string FlowBuilder::Uuid(uint64_t position, uint32_t run) const {
  if (run == 0 || run == current_run_ || runs_ == nullptr) return Uuid(position);
  return UuidOf(runs_->RunId(run), position);
}

std::string FlowBuilder::Uuid(uint64_t position) const { return UuidOf(run_id_, position); }

std::string FlowBuilder::UuidOf(uint64_t run_id, uint64_t position) {
  std::string out(36, '-');
  UuidInto(run_id, position, out.data());
  return out;
}

void FlowBuilder::UuidInto(uint64_t run_id, uint64_t position, char out[36]) {
  // A version-4-shaped UUID from the run and the ring position: unique per record.
  uint64_t hi = run_id ^ (position * 0x9E3779B97F4A7C15ULL);
  uint64_t lo = ((position + 1) * 0xBF58476D1CE4E5B9ULL) ^ (run_id >> 7);
  hi = (hi & 0xFFFFFFFFFFFF0FFFULL) | 0x0000000000004000ULL;
  lo = (lo & 0x3FFFFFFFFFFFFFFFULL) | 0x8000000000000000ULL;
  // 8-4-4-4-12 hex digits, without printf (this runs once per flow sent).
  static constexpr char kHex[] = "0123456789abcdef";
  size_t at = 0;
  auto put = [&](uint64_t v, int digits) {
    for (int i = digits - 1; i >= 0; --i) out[at++] = kHex[(v >> (4 * i)) & 0xF];
  };
  put(hi >> 32, 8);
  out[at++] = '-';
  put((hi >> 16) & 0xFFFF, 4);
  out[at++] = '-';
  put(hi & 0xFFFF, 4);
  out[at++] = '-';
  put(lo >> 48, 4);
  out[at++] = '-';
  put(lo & 0xFFFFFFFFFFFFULL, 12);
}

FlowBuilder::FlowBuilder(const EndpointTable& table, std::string node_name,
                         const InterfaceNames* interfaces, uint64_t run_id)
    : table_(table), node_name_(std::move(node_name)), interfaces_(interfaces), run_id_(run_id) {}

void FlowBuilder::FillEndpoint(uint32_t id, flow::Endpoint* out) const {
  const std::shared_ptr<const Endpoint> held = table_.Get(id);
  const Endpoint& e = *held;
  if (!e.reserved) out->set_id(e.id);
  out->set_identity(e.identity);
  if (!e.namespace_name.empty()) out->set_namespace_(e.namespace_name);
  for (const std::string& l : e.labels) out->add_labels(l);
  if (!e.pod_name.empty()) out->set_pod_name(e.pod_name);
  if (!e.workload_name.empty()) {
    flow::Workload* w = out->add_workloads();
    w->set_name(e.workload_name);
    w->set_kind(e.workload_kind);
  }
  if (!e.reserved && !e.cluster_name.empty()) out->set_cluster_name(e.cluster_name);
}

void FlowBuilder::FillService(uint32_t id, flow::Flow* out, bool source) const {
  source ? out->clear_source_service() : out->clear_destination_service();
  if (id == 0) return;
  std::shared_ptr<const Service> svc = table_.GetService(id);
  if (svc == nullptr) return;
  flow::Service* s = source ? out->mutable_source_service() : out->mutable_destination_service();
  s->set_name(svc->name);
  s->set_namespace_(svc->namespace_name);
}

void FlowBuilder::Build(const FlowRecord& r, uint64_t position, flow::Flow* out, uint32_t run,
                        bool extensions) const {
  out->mutable_time()->set_seconds(static_cast<int64_t>(r.time_ns / 1'000'000'000));
  out->mutable_time()->set_nanos(static_cast<int32_t>(r.time_ns % 1'000'000'000));

  out->set_uuid(Uuid(position, run));

  const bool dropped = r.verdict == FS_VERDICT_DROPPED;
  out->set_verdict(dropped ? flow::DROPPED : flow::FORWARDED);
  if (dropped) {
    out->set_drop_reason(r.drop_reason);
    out->set_drop_reason_desc(static_cast<flow::DropReason>(r.drop_reason));
  }

  flow::IP* ip = out->mutable_ip();
  ip->set_source(AddrString(r.family, r.saddr));
  ip->set_destination(AddrString(r.family, r.daddr));
  ip->set_ipversion(r.family == FS_FAMILY_IPV4 ? flow::IPv4 : flow::IPv6);

  flow::Layer4* l4 = out->mutable_l4();
  switch (r.protocol) {
    case IPPROTO_TCP: {
      flow::TCP* tcp = l4->mutable_tcp();
      tcp->set_source_port(r.sport);
      tcp->set_destination_port(r.dport);
      if (r.tcp_flags != 0) {
        flow::TCPFlags* f = tcp->mutable_flags();
        f->set_fin(r.tcp_flags & FS_TCP_FIN);
        f->set_syn(r.tcp_flags & FS_TCP_SYN);
        f->set_rst(r.tcp_flags & FS_TCP_RST);
        f->set_psh(r.tcp_flags & FS_TCP_PSH);
        f->set_ack(r.tcp_flags & FS_TCP_ACK);
        f->set_urg(r.tcp_flags & FS_TCP_URG);
        f->set_ece(r.tcp_flags & FS_TCP_ECE);
        f->set_cwr(r.tcp_flags & FS_TCP_CWR);
        f->set_ns(r.tcp_flags & FS_TCP_NS);
      }
      break;
    }
    case IPPROTO_UDP:
      l4->mutable_udp()->set_source_port(r.sport);
      l4->mutable_udp()->set_destination_port(r.dport);
      break;
    case IPPROTO_SCTP:
      l4->mutable_sctp()->set_source_port(r.sport);
      l4->mutable_sctp()->set_destination_port(r.dport);
      break;
    case IPPROTO_ICMP:
      l4->mutable_icmpv4()->set_type(r.icmp_type);
      l4->mutable_icmpv4()->set_code(r.icmp_code);
      break;
    case IPPROTO_ICMPV6:
      l4->mutable_icmpv6()->set_type(r.icmp_type);
      l4->mutable_icmpv6()->set_code(r.icmp_code);
      break;
    default:
      out->clear_l4();
      break;
  }

  FillEndpoint(r.src_endpoint, out->mutable_source());
  FillEndpoint(r.dst_endpoint, out->mutable_destination());
  FillService(r.src_service, out, true);
  FillService(r.dst_service, out, false);
  const bool dns = IsDns(r);
  out->set_type(dns ? flow::L7 : flow::L3_L4);
  out->set_node_name(node_name_);
  if (names_ != nullptr && !names_->empty()) {
    for (std::string& n : names_->SourceNames(r)) out->add_source_names(std::move(n));
    for (std::string& n : names_->DestinationNames(r)) out->add_destination_names(std::move(n));
  }
  flow::DNS message;
  const bool have_message = dns && dns_ != nullptr && dns_->Decode(DnsIdOf(r), &message);
  if (!have_message) message.Clear();  // what a failed parse left in it is not sent
  if (dns) {
    flow::Layer7* l7 = out->mutable_l7();
    l7->set_type(r.is_reply == FS_REPLY_YES ? flow::RESPONSE : flow::REQUEST);
    l7->set_latency_ns(DnsLatencyOf(r));
    *l7->mutable_dns() = message;
  } else {
    out->clear_l7();
  }

  out->mutable_event_type()->set_type(MonitorType(r));
  out->mutable_event_type()->set_sub_type(MonitorSubType(r));
  out->set_trace_observation_point(!dropped && !dns ? Point(r.obs_point).proto
                                                    : flow::UNKNOWN_POINT);

  out->set_traffic_direction(TrafficDirectionOf(r));
  out->clear_egress_denied_by();
  out->clear_ingress_denied_by();
  out->set_policy_match_type(0);
  if (PolicyIdOf(r) != 0) {
    // The named rule that denied it, on the side of the flow's direction (as Hubble's
    // --print-policy-names reads it).
    if (std::shared_ptr<const PolicyName> p = table_.GetPolicy(r.policy)) {
      flow::Policy* policy = out->traffic_direction() == flow::EGRESS
                                 ? out->add_egress_denied_by()
                                 : out->add_ingress_denied_by();
      policy->set_name(p->name);
      policy->set_namespace_(p->namespace_name);
      policy->set_kind(p->kind);
      if (r.emit_reason == FS_EMIT_POLICY_VERDICT) {
        out->set_policy_match_type(static_cast<uint32_t>(p->match_type));
      }
    }
  }
  const bool reply = r.is_reply == FS_REPLY_YES;
  if (r.is_reply != FS_REPLY_UNKNOWN) {
    out->mutable_is_reply()->set_value(reply);
    out->set_reply(reply);
  }

  if (dns) {
    out->clear_interface();  // an L7 flow, as Cilium's proxy reports it: no interface
    out->set_summary(have_message ? DnsSummary(message, r.is_reply == FS_REPLY_YES)
                                  : std::string(kDnsGoneSummary));
  } else {
    flow::NetworkInterface* iface = out->mutable_interface();
    iface->set_index(r.ifindex);
    if (std::string name = InterfaceName(r.ifindex, run); !name.empty()) {
      iface->set_name(std::move(name));
    }
    out->set_summary(FlowSummary(r));
  }
  out->clear_extensions();
  if (extensions && IsKernelDrop(r)) {
    flowscope::v1::KernelDrop drop;
    drop.set_reason(std::string(bpf::KernelDropReasonName(r.policy)));
    out->mutable_extensions()->PackFrom(drop);
  }
}

void FlowBuilder::BuildResponse(const FlowRecord& r, uint64_t position,
                                ::observer::GetFlowsResponse* out, uint32_t run,
                                bool extensions) const {
  Build(r, position, out->mutable_flow(), run, extensions);
  out->set_node_name(node_name_);
  *out->mutable_time() = out->flow().time();
}

namespace {

constexpr absl::string_view kKernelDropTypeUrl = "type.googleapis.com/flowscope.v1.KernelDrop";

// --- encoding straight to the wire ------------------------------------------------------------

// Appends protobuf wire format as the generated serializer writes it for proto3 messages:
// fields in number order, scalars left out at their default, present messages always written.
class Wire {
 public:
  explicit Wire(std::string* out) : out_(*out) {}

  void Varint(uint64_t v) {
    char buf[10];
    size_t n = 0;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out_.append(buf, n);
  }
  void Tag(uint32_t field, uint32_t wire_type) { Varint((uint64_t{field} << 3) | wire_type); }
  // uint32, uint64, bool and enums (never negative here); int32/int64 sign-extend.
  void U64(uint32_t field, uint64_t v) {
    if (v == 0) return;
    Tag(field, 0);
    Varint(v);
  }
  void I64(uint32_t field, int64_t v) { U64(field, static_cast<uint64_t>(v)); }
  void Bytes(uint32_t field, absl::string_view v) {  // a repeated element: even when empty
    Tag(field, 2);
    Varint(v.size());
    out_.append(v.data(), v.size());
  }
  void Str(uint32_t field, absl::string_view v) {
    if (!v.empty()) Bytes(field, v);
  }
  // A nested message: Open() before its fields, Close() after (the length goes in front, in
  // `room` bytes kept for it: 1 for small messages, 2 for a flow, which is mostly 128 bytes to
  // 16 KiB; Close() moves the message when its length takes another size).
  size_t Open(uint32_t field, size_t room = 1) {
    Tag(field, 2);
    out_.append(room, '\0');
    return out_.size();
  }
  void Close(size_t start, size_t room = 1) {
    const size_t len = out_.size() - start;
    char buf[10];
    size_t n = 0;
    uint64_t v = len;
    for (; v >= 0x80; v >>= 7) buf[n++] = static_cast<char>((v & 0x7F) | 0x80);
    buf[n++] = static_cast<char>(v);
    if (n == room) {
      std::memcpy(&out_[start - room], buf, n);
    } else {
      out_.replace(start - room, room, buf, n);
    }
  }
  void Timestamp(uint32_t field, uint64_t ns) {
    const size_t at = Open(field);
    I64(1, static_cast<int64_t>(ns / 1'000'000'000));
    I64(2, static_cast<int64_t>(ns % 1'000'000'000));
    Close(at);
  }

 private:
  std::string& out_;
};

}  // namespace

size_t OpenLengthDelimited(uint32_t field, std::string* out) { return Wire(out).Open(field, 2); }

void CloseLengthDelimited(size_t start, std::string* out) { Wire(out).Close(start, 2); }

void FlowBuilder::EncodeEndpointBody(uint32_t id, std::string* out) const {
  const std::shared_ptr<const Endpoint> held = table_.Get(id);
  const Endpoint& e = *held;
  Wire w(out);
  if (!e.reserved) w.U64(1, e.id);
  w.U64(2, e.identity);
  w.Str(3, e.namespace_name);
  for (const std::string& l : e.labels) w.Bytes(4, l);
  w.Str(5, e.pod_name);
  if (!e.workload_name.empty()) {
    const size_t wl = w.Open(6);
    w.Str(1, e.workload_name);
    w.Str(2, e.workload_kind);
    w.Close(wl);
  }
  if (!e.reserved) w.Str(7, e.cluster_name);
}

void FlowBuilder::EncodeEndpoint(uint32_t field, uint32_t id, std::string* out,
                                 EndpointCache* cache) const {
  Wire w(out);
  if (cache == nullptr) {
    const size_t at = w.Open(field);
    EncodeEndpointBody(id, out);
    w.Close(at);
    return;
  }
  w.Bytes(field, cache->Body(*this, id));
}

absl::string_view FlowBuilder::EndpointCache::Body(const FlowBuilder& builder, uint32_t id) {
  auto it = bodies_.find(id);
  if (it != bodies_.end()) return it->second;
  if (bodies_.size() >= kMaxEntries) bodies_.clear();
  std::string body;
  builder.EncodeEndpointBody(id, &body);
  return bodies_.emplace(id, std::move(body)).first->second;
}

void FlowBuilder::EndpointCache::Refresh(const EndpointTable& table) {
  const uint64_t version = table.version();
  if (version != version_) {
    bodies_.clear();
    version_ = version;
  }
}

void FlowBuilder::EncodeService(uint32_t field, uint32_t id, std::string* out) const {
  if (id == 0) return;
  std::shared_ptr<const Service> svc = table_.GetService(id);
  if (svc == nullptr) return;
  Wire w(out);
  const size_t at = w.Open(field);
  w.Str(1, svc->name);
  w.Str(2, svc->namespace_name);
  w.Close(at);
}

void FlowBuilder::EncodeResponse(const FlowRecord& r, uint64_t position, std::string* out,
                                 uint32_t run, EndpointCache* cache, bool extensions) const {
  Wire w(out);
  const size_t flow_at = w.Open(1, 2);  // GetFlowsResponse.flow
  w.Timestamp(1, r.time_ns);
  const bool dropped = r.verdict == FS_VERDICT_DROPPED;
  w.U64(2, dropped ? flow::DROPPED : flow::FORWARDED);
  if (dropped) w.U64(3, r.drop_reason);
  {
    const size_t at = w.Open(5);  // IP
    w.Str(1, AddrString(r.family, r.saddr));
    w.Str(2, AddrString(r.family, r.daddr));
    w.U64(3, r.family == FS_FAMILY_IPV4 ? flow::IPv4 : flow::IPv6);
    w.Close(at);
  }
  auto ports = [&](uint32_t field, uint32_t a, uint32_t b) {
    const size_t at = w.Open(field);
    w.U64(1, a);
    w.U64(2, b);
    return at;
  };
  switch (r.protocol) {
    case IPPROTO_TCP: {
      const size_t l4 = w.Open(6);
      const size_t tcp = ports(1, r.sport, r.dport);
      if (r.tcp_flags != 0) {
        const size_t f = w.Open(3);
        static constexpr uint16_t kBits[] = {FS_TCP_FIN, FS_TCP_SYN, FS_TCP_RST,
                                             FS_TCP_PSH, FS_TCP_ACK, FS_TCP_URG,
                                             FS_TCP_ECE, FS_TCP_CWR, FS_TCP_NS};
        for (uint32_t i = 0; i < 9; ++i) w.U64(i + 1, (r.tcp_flags & kBits[i]) != 0);
        w.Close(f);
      }
      w.Close(tcp);
      w.Close(l4);
      break;
    }
    case IPPROTO_UDP:
    case IPPROTO_SCTP:
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6: {
      const bool icmp = r.protocol == IPPROTO_ICMP || r.protocol == IPPROTO_ICMPV6;
      const uint32_t field = r.protocol == IPPROTO_UDP    ? 2
                             : r.protocol == IPPROTO_SCTP ? 5
                             : r.protocol == IPPROTO_ICMP ? 3
                                                          : 4;
      const size_t l4 = w.Open(6);
      w.Close(icmp ? ports(field, r.icmp_type, r.icmp_code) : ports(field, r.sport, r.dport));
      w.Close(l4);
      break;
    }
    default:
      break;
  }
  EncodeEndpoint(8, r.src_endpoint, out, cache);
  EncodeEndpoint(9, r.dst_endpoint, out, cache);
  const bool dns = IsDns(r);
  w.U64(10, dns ? flow::L7 : flow::L3_L4);
  w.Str(11, node_name_);
  if (names_ != nullptr && !names_->empty()) {
    for (const std::string& n : names_->SourceNames(r)) w.Bytes(13, n);
    for (const std::string& n : names_->DestinationNames(r)) w.Bytes(14, n);
  }
  const bool reply = r.is_reply == FS_REPLY_YES;
  std::shared_ptr<const std::string> message;
  flow::DNS decoded;  // for the Summary; bytes that do not decode are sent as none, as Build does
  if (dns) {
    if (dns_ != nullptr) message = dns_->Get(DnsIdOf(r));
    if (message != nullptr && !decoded.ParseFromString(*message)) message = nullptr;
    const size_t at = w.Open(15, 2);  // l7
    w.U64(1, reply ? flow::RESPONSE : flow::REQUEST);
    w.U64(2, DnsLatencyOf(r));
    w.Bytes(100, message != nullptr ? absl::string_view(*message) : absl::string_view());
    w.Close(at, 2);
  }
  if (r.is_reply != FS_REPLY_UNKNOWN) w.U64(16, reply);
  {
    const size_t at = w.Open(19);  // event_type
    w.I64(1, MonitorType(r));
    w.I64(2, MonitorSubType(r));
    w.Close(at);
  }
  EncodeService(20, r.src_service, out);
  EncodeService(21, r.dst_service, out);
  const flow::TrafficDirection direction = TrafficDirectionOf(r);
  w.U64(22, direction);
  std::shared_ptr<const PolicyName> policy;
  if (PolicyIdOf(r) != 0) policy = table_.GetPolicy(r.policy);
  if (policy != nullptr && r.emit_reason == FS_EMIT_POLICY_VERDICT) {
    w.U64(23, static_cast<uint32_t>(policy->match_type));
  }
  if (!dropped && !dns) w.U64(24, Point(r.obs_point).proto);
  if (dropped) w.U64(25, r.drop_reason);
  if (r.is_reply != FS_REPLY_UNKNOWN) {
    const size_t at = w.Open(26);  // is_reply
    w.U64(1, reply);
    w.Close(at);
  }
  if (!dns) {
    const size_t at = w.Open(28);  // interface
    w.U64(1, r.ifindex);
    w.Str(2, InterfaceName(r.ifindex, run));
    w.Close(at);
  }
  char uuid[36];
  UuidInto(run == 0 || run == current_run_ || runs_ == nullptr ? run_id_ : runs_->RunId(run),
           position, uuid);
  w.Bytes(34, absl::string_view(uuid, sizeof uuid));
  if (policy != nullptr) {
    // The named rule that denied it, on the side of the flow's direction.
    const size_t at = w.Open(direction == flow::EGRESS ? 21004 : 21005);
    w.Str(1, policy->name);
    w.Str(2, policy->namespace_name);
    w.Str(5, policy->kind);
    w.Close(at);
  }
  if (!dns) {
    w.Str(100000, FlowSummary(r));
  } else {
    w.Str(100000, message != nullptr ? DnsSummary(decoded, reply) : kDnsGoneSummary);
  }
  if (extensions && IsKernelDrop(r)) {
    const size_t any = w.Open(150000);
    w.Str(1, kKernelDropTypeUrl);
    const size_t value = w.Open(2);
    w.Str(1, bpf::KernelDropReasonName(r.policy));  // flowscope.v1.KernelDrop.reason
    w.Close(value);
    w.Close(any);
  }
  w.Close(flow_at, 2);
  w.Str(1000, node_name_);
  w.Timestamp(1001, r.time_ns);
}

}  // namespace flowscope::observer
