#include "observer/flow_builder.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <array>
#include <random>

#include "bpf/drop_reasons.h"
#include "bpf/flow_event.h"
#include "flowscope/v1/flowscope.pb.h"

namespace flowscope::observer {
namespace {

using ::testing::ElementsAre;

FlowRecord Record(const char* src, const char* dst, uint8_t protocol) {
  FlowRecord r;
  const bool v6 = std::string(src).find(':') != std::string::npos;
  r.family = v6 ? FS_FAMILY_IPV6 : FS_FAMILY_IPV4;
  inet_pton(v6 ? AF_INET6 : AF_INET, src, r.saddr);
  inet_pton(v6 ? AF_INET6 : AF_INET, dst, r.daddr);
  r.protocol = protocol;
  r.time_ns = 1'714'826'828'811'000'000ULL;  // 2024-05-04T12:47:08.811Z
  r.verdict = FS_VERDICT_FORWARDED;
  r.obs_point = FS_OBS_TO_ENDPOINT;
  r.is_reply = FS_REPLY_NO;
  r.ifindex = 12;
  r.src_endpoint = kWorldEndpointId;
  r.dst_endpoint = kWorldEndpointId;
  return r;
}

class FlowBuilderTest : public ::testing::Test {
 protected:
  FlowBuilderTest() : table_("default"), builder_(table_, "node-1", &names_, 42) {
    EndpointInfo tie;
    tie.ips = {"10.0.1.5"};
    tie.namespace_name = "default";
    tie.pod_name = "tiefighter";
    tie.labels = {"org=empire", "class=tiefighter"};
    tie.workload_name = "tiefighter";
    tie.workload_kind = "Deployment";
    EndpointInfo dns;
    dns.ips = {"10.0.3.2"};
    dns.namespace_name = "kube-system";
    dns.pod_name = "coredns-74ff55c5b-66f4n";
    table_.Update({tie, dns});
    names_.Set(12, "lxc12");
  }

  uint32_t Id(const char* ip) {
    auto a = ParseAddr(ip);
    EndpointTable::Resolver r(table_);
    return r.Lookup(a->family, a->words.data());
  }

  EndpointTable table_;
  InterfaceNames names_;
  FlowBuilder builder_;
};

TEST_F(FlowBuilderTest, UdpToAPodAsHubbleShowsIt) {
  FlowRecord r = Record("10.0.1.5", "10.0.3.2", IPPROTO_UDP);
  r.sport = 53875;
  r.dport = 53;
  r.src_endpoint = Id("10.0.1.5");
  r.dst_endpoint = Id("10.0.3.2");
  ::observer::GetFlowsResponse resp;
  builder_.BuildResponse(r, 7, &resp);
  const flow::Flow& f = resp.flow();
  EXPECT_EQ(f.time().seconds(), 1714826828);
  EXPECT_EQ(f.time().nanos(), 811000000);
  EXPECT_EQ(resp.time().seconds(), 1714826828);
  EXPECT_EQ(resp.node_name(), "node-1");
  EXPECT_EQ(f.node_name(), "node-1");
  EXPECT_EQ(f.verdict(), flow::FORWARDED);
  EXPECT_EQ(f.ip().source(), "10.0.1.5");
  EXPECT_EQ(f.ip().destination(), "10.0.3.2");
  EXPECT_EQ(f.ip().ipversion(), flow::IPv4);
  EXPECT_EQ(f.l4().udp().source_port(), 53875u);
  EXPECT_EQ(f.l4().udp().destination_port(), 53u);
  EXPECT_EQ(f.source().namespace_(), "default");
  EXPECT_EQ(f.source().pod_name(), "tiefighter");
  EXPECT_THAT(f.source().labels(),
              ElementsAre("k8s:class=tiefighter", "k8s:io.kubernetes.pod.namespace=default",
                          "k8s:org=empire"));
  ASSERT_EQ(f.source().workloads_size(), 1);
  EXPECT_EQ(f.source().workloads(0).kind(), "Deployment");
  EXPECT_GE(f.source().identity(), kMinPodIdentity);
  EXPECT_EQ(f.destination().pod_name(), "coredns-74ff55c5b-66f4n");
  EXPECT_EQ(f.type(), flow::L3_L4);
  EXPECT_EQ(f.event_type().type(), 4);
  EXPECT_EQ(f.event_type().sub_type(), 0) << "to-endpoint";
  EXPECT_EQ(f.trace_observation_point(), flow::TO_ENDPOINT);
  EXPECT_EQ(f.traffic_direction(), flow::INGRESS);
  ASSERT_TRUE(f.has_is_reply());
  EXPECT_FALSE(f.is_reply().value());
  EXPECT_EQ(f.interface().index(), 12u);
  EXPECT_EQ(f.interface().name(), "lxc12");
  EXPECT_EQ(f.summary(), "UDP");
  ASSERT_EQ(f.uuid().size(), 36u);
  for (size_t i : {8u, 13u, 18u, 23u}) EXPECT_EQ(f.uuid()[i], '-') << f.uuid();
  EXPECT_EQ(f.uuid()[14], '4') << "version 4 layout: " << f.uuid();
  EXPECT_EQ(f.uuid().find_first_not_of("0123456789abcdef-"), std::string::npos) << f.uuid();
  ::observer::GetFlowsResponse other;
  builder_.BuildResponse(r, 8, &other);
  EXPECT_NE(other.flow().uuid(), f.uuid()) << "uuids differ per record";
}

TEST_F(FlowBuilderTest, Ipv4AddressesAsInetNtopWritesThem) {
  for (const char* addr : {"0.0.0.0", "255.255.255.255", "1.20.100.9", "10.0.9.99", "200.2.30.0"}) {
    FlowRecord r = Record(addr, "100.10.1.0", IPPROTO_UDP);
    flow::Flow f;
    builder_.Build(r, 1, &f);
    EXPECT_EQ(f.ip().source(), addr);
    EXPECT_EQ(f.ip().destination(), "100.10.1.0");
  }
}

TEST_F(FlowBuilderTest, TcpFlagsInHubblesOrder) {
  struct {
    uint16_t flags;
    const char* summary;
  } cases[] = {
      {FS_TCP_SYN, "TCP Flags: SYN"},
      {FS_TCP_SYN | FS_TCP_ACK, "TCP Flags: SYN, ACK"},
      {FS_TCP_ACK | FS_TCP_PSH, "TCP Flags: ACK, PSH"},
      {FS_TCP_ACK | FS_TCP_FIN, "TCP Flags: ACK, FIN"},
      {FS_TCP_RST | FS_TCP_ACK, "TCP Flags: ACK, RST"},
      {FS_TCP_SYN | FS_TCP_ECE | FS_TCP_CWR | FS_TCP_NS | FS_TCP_URG,
       "TCP Flags: SYN, URG, ECE, CWR, NS"},
  };
  for (const auto& c : cases) {
    FlowRecord r = Record("10.0.1.5", "10.0.2.7", IPPROTO_TCP);
    r.sport = 50214;
    r.dport = 80;
    r.tcp_flags = c.flags;
    EXPECT_EQ(FlowSummary(r), c.summary);
    flow::Flow f;
    builder_.Build(r, 0, &f);
    EXPECT_EQ(f.l4().tcp().flags().syn(), (c.flags & FS_TCP_SYN) != 0);
    EXPECT_EQ(f.l4().tcp().flags().ack(), (c.flags & FS_TCP_ACK) != 0);
    EXPECT_EQ(f.l4().tcp().flags().ns(), (c.flags & FS_TCP_NS) != 0);
  }
}

TEST_F(FlowBuilderTest, IcmpSummaries) {
  FlowRecord r = Record("10.0.1.5", "10.0.2.7", IPPROTO_ICMP);
  r.icmp_type = 8;
  EXPECT_EQ(FlowSummary(r), "ICMPv4 EchoRequest");
  r.icmp_type = 0;
  EXPECT_EQ(FlowSummary(r), "ICMPv4 EchoReply");
  r.icmp_type = 3;
  r.icmp_code = 3;
  EXPECT_EQ(FlowSummary(r), "ICMPv4 DestinationUnreachable(Port)");
  FlowRecord v6 = Record("fd00::1", "fd00::2", IPPROTO_ICMPV6);
  v6.icmp_type = 128;
  EXPECT_EQ(FlowSummary(v6), "ICMPv6 EchoRequest");
  v6.icmp_type = 135;
  EXPECT_EQ(FlowSummary(v6), "ICMPv6 NeighborSolicitation");
  flow::Flow f;
  builder_.Build(v6, 0, &f);
  EXPECT_EQ(f.ip().ipversion(), flow::IPv6);
  EXPECT_EQ(f.ip().source(), "fd00::1");
  EXPECT_EQ(f.l4().icmpv6().type(), 135u);
  FlowRecord sctp = Record("10.0.1.5", "10.0.2.7", IPPROTO_SCTP);
  EXPECT_EQ(FlowSummary(sctp), "SCTP");
  FlowRecord gre = Record("10.0.1.5", "10.0.2.7", 47);
  EXPECT_EQ(FlowSummary(gre), "IPv4");
}

TEST_F(FlowBuilderTest, PolicyDropWithUnknownDirection) {
  FlowRecord r = Record("10.0.1.6", "10.0.2.7", IPPROTO_TCP);
  r.verdict = FS_VERDICT_DROPPED;
  r.drop_reason = FS_DROP_POLICY_DENIED;
  r.obs_point = FS_OBS_FROM_ENDPOINT;
  r.is_reply = FS_REPLY_UNKNOWN;
  r.tcp_flags = FS_TCP_SYN;
  flow::Flow f;
  builder_.Build(r, 0, &f);
  EXPECT_EQ(f.verdict(), flow::DROPPED);
  EXPECT_EQ(f.drop_reason(), 133u);
  EXPECT_EQ(f.drop_reason_desc(), flow::POLICY_DENIED);
  EXPECT_EQ(f.event_type().type(), 1);
  EXPECT_EQ(f.event_type().sub_type(), 133);
  EXPECT_EQ(f.trace_observation_point(), flow::UNKNOWN_POINT);
  EXPECT_FALSE(f.has_is_reply()) << "unknown direction: is_reply unset";
  EXPECT_EQ(f.traffic_direction(), flow::EGRESS);
  EXPECT_EQ(f.source().identity(), kIdentityWorld);
  EXPECT_THAT(f.source().labels(), ElementsAre("reserved:world"));
  EXPECT_EQ(f.source().id(), 0u) << "reserved entries have no endpoint id";

  std::string json;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(f, &json, o).ok());
  EXPECT_THAT(json, ::testing::HasSubstr("\"drop_reason_desc\":\"POLICY_DENIED\""));
  EXPECT_THAT(json, ::testing::HasSubstr("\"Summary\":\"TCP Flags: SYN\""));
}

// A kernel drop: Hubble's fields as any Hubble client reads them (the kernel's reason in Summary,
// Hubble's code where one means the same), flowscope's KernelDrop only for a client that asked.
TEST_F(FlowBuilderTest, KernelDropsSayWhyAndCarryTheirTypeOnlyWhenAsked) {
  FlowRecord r = Record("10.0.1.5", "10.0.2.7", IPPROTO_UDP);
  r.verdict = FS_VERDICT_DROPPED;
  r.emit_reason = FS_EMIT_KERNEL_DROP;
  r.obs_point = FS_OBS_UNKNOWN;
  r.is_reply = FS_REPLY_UNKNOWN;
  r.ifindex = 0;
  r.policy = *bpf::KernelDropReasonId("NETFILTER_DROP");
  r.drop_reason = 0;
  flow::Flow f;
  builder_.Build(r, 0, &f);
  EXPECT_EQ(f.verdict(), flow::DROPPED);
  EXPECT_EQ(f.summary(), "NETFILTER_DROP");
  EXPECT_EQ(f.drop_reason_desc(), flow::DROP_REASON_UNKNOWN) << "Hubble has no netfilter reason";
  EXPECT_EQ(f.event_type().type(), 1);
  EXPECT_EQ(f.event_type().sub_type(), 0);
  EXPECT_FALSE(f.has_is_reply());
  EXPECT_TRUE(f.egress_denied_by().empty() && f.ingress_denied_by().empty())
      << "the reason id is not a policy id";
  EXPECT_FALSE(f.has_extensions()) << "a Hubble client cannot resolve flowscope's types";

  builder_.Build(r, 0, &f, 0, /*extensions=*/true);
  flowscope::v1::KernelDrop drop;
  ASSERT_TRUE(f.extensions().UnpackTo(&drop));
  EXPECT_EQ(drop.reason(), "NETFILTER_DROP");
  EXPECT_EQ(f.extensions().type_url(), "type.googleapis.com/flowscope.v1.KernelDrop");

  r.policy = *bpf::KernelDropReasonId("IP_INNOROUTES");
  r.drop_reason = static_cast<uint8_t>(bpf::HubbleDropReasonOf(r.policy));
  builder_.Build(r, 0, &f);
  EXPECT_EQ(f.drop_reason_desc(), flow::FIB_LOOKUP_FAILED) << "the same meaning in Hubble's words";
  EXPECT_EQ(f.event_type().sub_type(), flow::FIB_LOOKUP_FAILED);
  EXPECT_EQ(f.summary(), "IP_INNOROUTES");

  r.policy = bpf::kKernelReasonUnknown;
  EXPECT_EQ(FlowSummary(r), "UNKNOWN");
}

// Passive DNS: Hubble's L7 DNS flows — type L7, event type 129, l7 REQUEST/RESPONSE with the
// message and the latency, Summary as Hubble's proxy flows have it, no observation point and no
// interface — and Hubble-compatible JSON.
TEST_F(FlowBuilderTest, DnsQueryAndAnswerAreHubblesL7DnsFlows) {
  DnsTable dns(16);
  builder_.AttachDns(&dns);
  DnsMessage query;
  query.query = "deathstar.default.svc.cluster.local.";
  query.qtypes = {1};
  FlowRecord q = Record("10.0.1.5", "10.0.3.2", IPPROTO_UDP);
  q.sport = 53875;
  q.dport = 53;
  q.src_endpoint = Id("10.0.1.5");
  q.dst_endpoint = Id("10.0.3.2");
  q.emit_reason = FS_EMIT_DNS;
  q.obs_point = FS_OBS_FROM_ENDPOINT;
  q.is_reply = FS_REPLY_NO;
  q.flow_bytes = dns.Add(EncodeDns(query));
  flow::Flow f;
  builder_.Build(q, 3, &f);
  EXPECT_EQ(f.type(), flow::L7);
  EXPECT_EQ(f.event_type().type(), 129);
  EXPECT_EQ(f.event_type().sub_type(), 0);
  EXPECT_EQ(f.l7().type(), flow::REQUEST);
  EXPECT_EQ(f.l7().dns().query(), "deathstar.default.svc.cluster.local.");
  EXPECT_THAT(f.l7().dns().qtypes(), ElementsAre("A"));
  EXPECT_EQ(f.l7().dns().observation_source(), "proxy");
  EXPECT_EQ(f.summary(), "DNS Query deathstar.default.svc.cluster.local. A");
  EXPECT_EQ(f.traffic_direction(), flow::EGRESS);
  EXPECT_FALSE(f.is_reply().value());
  EXPECT_EQ(f.trace_observation_point(), flow::UNKNOWN_POINT);
  EXPECT_FALSE(f.has_interface());
  EXPECT_EQ(f.l4().udp().destination_port(), 53u);

  DnsMessage answer = query;
  answer.response = true;
  answer.ips = {"10.96.0.20", "fd00::20"};
  answer.rrtypes = {1, 28};
  answer.ttl = 30;
  FlowRecord a = Record("10.0.3.2", "10.0.1.5", IPPROTO_UDP);
  a.sport = 53;
  a.dport = 53875;
  a.emit_reason = FS_EMIT_DNS;
  a.obs_point = FS_OBS_TO_ENDPOINT;
  a.is_reply = FS_REPLY_YES;
  a.flow_bytes = dns.Add(EncodeDns(answer));
  a.flow_packets = 412'000;  // latency
  builder_.Build(a, 4, &f);
  EXPECT_EQ(f.l7().type(), flow::RESPONSE);
  EXPECT_EQ(f.l7().latency_ns(), 412'000u);
  EXPECT_THAT(f.l7().dns().ips(), ElementsAre("10.96.0.20", "fd00::20"));
  EXPECT_THAT(f.l7().dns().rrtypes(), ElementsAre("A", "AAAA"));
  EXPECT_EQ(f.l7().dns().ttl(), 30u);
  EXPECT_EQ(f.summary(),
            "DNS Answer \"10.96.0.20,fd00::20\" TTL: 30 (Proxy "
            "deathstar.default.svc.cluster.local. A)");
  EXPECT_EQ(f.traffic_direction(), flow::EGRESS) << "the client's egress, as the proxy's flows";
  EXPECT_TRUE(f.is_reply().value());

  DnsMessage nx = query;
  nx.response = true;
  nx.rcode = 3;
  a.flow_bytes = dns.Add(EncodeDns(nx));
  builder_.Build(a, 5, &f);
  EXPECT_EQ(f.l7().dns().rcode(), 3u);
  EXPECT_EQ(f.summary(),
            "DNS Answer RCode: Non-Existent Domain TTL: 4294967295 (Proxy "
            "deathstar.default.svc.cluster.local. A)");

  DnsMessage cname = answer;
  cname.cnames = {"ds.example."};
  a.flow_bytes = dns.Add(EncodeDns(cname));
  builder_.Build(a, 6, &f);
  EXPECT_THAT(f.summary(), ::testing::HasSubstr("\"10.96.0.20,fd00::20\" CNAMEs: \"ds.example.\""));

  // Hubble's JSON names: l7.dns, qtypes, observation_source, latency_ns.
  std::string json;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  builder_.Build(q, 3, &f);
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(f, &json, o).ok());
  EXPECT_THAT(json, ::testing::HasSubstr("\"Type\":\"L7\""));
  EXPECT_THAT(json, ::testing::HasSubstr(
                        "\"l7\":{\"type\":\"REQUEST\",\"dns\":{\"query\":\"deathstar.default.svc."
                        "cluster.local.\",\"observation_source\":\"proxy\",\"qtypes\":[\"A\"]}}"));

  // A message no longer kept (older than the table, no history): still an L7 DNS flow.
  for (int i = 0; i < 16; ++i) dns.Add(EncodeDns(query));
  builder_.Build(q, 3, &f);
  EXPECT_EQ(f.type(), flow::L7);
  EXPECT_TRUE(f.l7().has_dns());
  EXPECT_EQ(f.summary(), "DNS (message no longer kept)");
}

// EncodeDns writes flow.DNS by hand: byte for byte what protobuf writes for the same message.
TEST(DnsEncodeTest, WritesWhatProtobufWrites) {
  std::vector<DnsMessage> messages(5);
  messages[0].query = "deathstar.default.svc.cluster.local.";
  messages[0].qtypes = {1};
  messages[1] = messages[0];
  messages[1].response = true;
  messages[1].ips = {"10.244.1.20", "fd00::20", ""};
  messages[1].rrtypes = {1, 28, 99};
  messages[1].ttl = 300;
  messages[1].cnames = {"a.example.", ""};
  messages[2] = messages[0];
  messages[2].response = true;
  messages[2].rcode = 3;  // no answers: TTL 4294967295
  messages[3].response = true;
  messages[3].query = std::string(300, 'x');  // a length of two bytes
  messages[3].rcode = 200;
  for (const DnsMessage& m : messages) {
    flow::DNS dns;
    dns.set_query(m.query);
    for (const auto& ip : m.ips) dns.add_ips(ip);
    if (m.response) dns.set_ttl(m.rrtypes.empty() ? 4294967295u : m.ttl);
    for (const auto& c : m.cnames) dns.add_cnames(c);
    dns.set_observation_source("proxy");
    dns.set_rcode(m.rcode);
    for (uint16_t t : m.qtypes) dns.add_qtypes(DnsTypeName(t));
    for (uint16_t t : m.rrtypes) dns.add_rrtypes(DnsTypeName(t));
    EXPECT_EQ(EncodeDns(m), dns.SerializeAsString()) << dns.ShortDebugString();
  }
}

// A named rule's denial: the drop and the policy verdict (type 5) both name it, on the side of
// the flow's direction; the verdict carries the rule's match type.
TEST_F(FlowBuilderTest, PolicyVerdictNamesTheRuleThatDenied) {
  const uint8_t id = table_.InternPolicy(PolicyName{0, "no-web", "default", "FlowscopePolicy", 2});
  FlowRecord r = Record("10.0.1.5", "10.0.2.7", IPPROTO_TCP);
  r.verdict = FS_VERDICT_DROPPED;
  r.drop_reason = FS_DROP_POLICY_DENIED;
  r.obs_point = FS_OBS_FROM_ENDPOINT;
  r.is_reply = FS_REPLY_UNKNOWN;
  r.emit_reason = FS_EMIT_DROP;
  r.policy = id;
  flow::Flow drop;
  builder_.Build(r, 0, &drop);
  EXPECT_EQ(drop.event_type().type(), 1);
  EXPECT_EQ(drop.policy_match_type(), 0u);
  ASSERT_EQ(drop.egress_denied_by_size(), 1);
  EXPECT_EQ(drop.egress_denied_by(0).name(), "no-web");
  EXPECT_EQ(drop.ingress_denied_by_size(), 0);

  r.emit_reason = FS_EMIT_POLICY_VERDICT;
  r.obs_point = FS_OBS_TO_ENDPOINT;  // denied as it reached the destination: ingress
  flow::Flow verdict = drop;         // reused messages are rebuilt whole
  builder_.Build(r, 1, &verdict);
  EXPECT_EQ(verdict.event_type().type(), 5);
  EXPECT_EQ(verdict.event_type().sub_type(), 0);
  EXPECT_EQ(verdict.verdict(), flow::DROPPED);
  EXPECT_EQ(verdict.drop_reason_desc(), flow::POLICY_DENIED);
  EXPECT_EQ(verdict.traffic_direction(), flow::INGRESS);
  EXPECT_EQ(verdict.policy_match_type(), 2u);
  EXPECT_EQ(verdict.egress_denied_by_size(), 0);
  ASSERT_EQ(verdict.ingress_denied_by_size(), 1);
  EXPECT_EQ(verdict.ingress_denied_by(0).namespace_(), "default");
  EXPECT_EQ(verdict.ingress_denied_by(0).kind(), "FlowscopePolicy");
  EXPECT_EQ(verdict.trace_observation_point(), flow::UNKNOWN_POINT);

  r.policy = 0;  // an unnamed rule: no names, match type unknown
  builder_.Build(r, 2, &verdict);
  EXPECT_EQ(verdict.ingress_denied_by_size(), 0);
  EXPECT_EQ(verdict.policy_match_type(), 0u);
}

TEST_F(FlowBuilderTest, TrafficDirectionFollowsTheConnection) {
  struct {
    uint8_t point;
    uint8_t reply;
    flow::TrafficDirection want;
    int32_t sub_type;
  } cases[] = {
      {FS_OBS_FROM_ENDPOINT, FS_REPLY_NO, flow::EGRESS, 5},
      {FS_OBS_FROM_ENDPOINT, FS_REPLY_YES, flow::INGRESS, 5},
      {FS_OBS_TO_ENDPOINT, FS_REPLY_NO, flow::INGRESS, 0},
      {FS_OBS_TO_ENDPOINT, FS_REPLY_YES, flow::EGRESS, 0},
      {FS_OBS_FROM_NETWORK, FS_REPLY_NO, flow::INGRESS, 10},
      {FS_OBS_TO_NETWORK, FS_REPLY_NO, flow::EGRESS, 11},
  };
  for (const auto& c : cases) {
    FlowRecord r = Record("10.0.1.5", "10.0.2.7", IPPROTO_UDP);
    r.obs_point = c.point;
    r.is_reply = c.reply;
    flow::Flow f;
    builder_.Build(r, 0, &f);
    EXPECT_EQ(f.traffic_direction(), c.want) << int(c.point) << "/" << int(c.reply);
    EXPECT_EQ(f.event_type().sub_type(), c.sub_type);
    EXPECT_EQ(f.is_reply().value(), c.reply == FS_REPLY_YES);
    EXPECT_EQ(f.reply(), c.reply == FS_REPLY_YES);
  }
}

}  // namespace
}  // namespace flowscope::observer

namespace flowscope::observer {
namespace {

TEST(InterfaceNamesTest, NamesOfRemovedInterfacesGoOnceTheRingHasMovedPastThem) {
  auto ring = std::move(ringbuf::FlowRing<FlowRecord>::Create(63)).value();
  InterfaceNames names;
  names.Track(ring.get());
  // Pod churn: 10,000 interfaces come and go, a few records each.
  FlowRecord r;
  for (uint32_t ifindex = 100; ifindex < 10'100; ++ifindex) {
    names.Set(ifindex, "lxc" + std::to_string(ifindex));
    for (int i = 0; i < 3; ++i) {
      r.ifindex = ifindex;
      ring->Write(r);
    }
    ring->Publish();
    names.Retire(ifindex);
    names.Expire();
  }
  // Only interfaces whose records are still in the ring (63 records: the last 21) keep names.
  EXPECT_LE(names.size(), 22u) << "memory is bounded by the ring, not by the churn";
  EXPECT_EQ(names.Get(10'099), "lxc10099") << "its records are still in the ring";
  EXPECT_EQ(names.Get(100), "") << "long gone from the ring";
  // A live interface is never expired; an ifindex reused by a new interface is live again.
  names.Set(7, "eth0");
  names.Set(10'099, "lxc-new");
  for (int i = 0; i < 200; ++i) ring->Write(r);
  ring->Publish();
  names.Expire();
  EXPECT_EQ(names.Get(7), "eth0");
  EXPECT_EQ(names.Get(10'099), "lxc-new");
  EXPECT_EQ(names.size(), 2u);
}

}  // namespace
}  // namespace flowscope::observer

namespace flowscope::observer {
namespace {

// Earlier runs as the history keeps them: their uuid seeds and interface names.
class TwoRuns final : public RunArchive {
 public:
  uint64_t RunId(uint32_t run) const override { return 1000 + run; }
  std::string InterfaceName(uint32_t run, uint32_t ifindex) const override {
    return ifindex % 2 == 0 ? "" : "run" + std::to_string(run) + "-if" + std::to_string(ifindex);
  }
};

// EncodeResponse writes what BuildResponse's message serializes to, byte for byte, over records
// of every shape: each protocol (and one without L4), verdicts, emit reasons, reply states,
// observation points, TCP flags, named and unnamed deny rules, services, endpoints with and
// without labels, workloads and cluster names (some longer than a one-byte length), interfaces
// with and without names, this run and earlier ones.
TEST(FlowEncodeTest, WritesWhatTheBuiltMessageSerializesTo) {
  EndpointTable table("cluster-a");
  std::vector<EndpointInfo> endpoints;
  for (int i = 0; i < 6; ++i) {
    EndpointInfo e;
    e.ips = {"10.1.0." + std::to_string(i + 1), "fd00::" + std::to_string(i + 1)};
    e.namespace_name = i == 0 ? "" : "ns-" + std::to_string(i);
    e.pod_name = i == 1 ? "" : "pod-" + std::to_string(i);
    for (int l = 0; l < i * 4; ++l) {
      e.labels.push_back("k8s:app.kubernetes.io/label-" + std::to_string(l) + "=value-" +
                         std::to_string(i));
    }
    if (i % 2 == 0) {
      e.workload_name = "wl-" + std::to_string(i);
      e.workload_kind = i == 4 ? "" : "Deployment";
    }
    if (i == 3) e.cluster_name = "cluster-b";
    if (i == 5) e.identity = 0;
    if (i == 2) e.labels.push_back("k8s:big=" + std::string(20000, 'v'));  // 3-byte lengths
    endpoints.push_back(e);
  }
  table.Update(endpoints);
  ServiceInfo svc;
  svc.namespace_name = "default";
  svc.name = "deathstar";
  svc.ips = {"10.96.0.20"};
  svc.ports = {80};
  ServiceInfo unnamed;
  unnamed.ips = {"10.96.0.21"};
  unnamed.ports = {81};
  table.UpdateServices({svc, unnamed});
  const uint8_t deny = table.InternPolicy(PolicyName{0, "no-web", "default", "FlowscopePolicy", 2});
  const uint8_t odd = table.InternPolicy(PolicyName{0, "", "", "", -1});
  InterfaceNames names;
  names.Set(3, "lxc3");
  names.Set(4, std::string(200, 'i'));
  TwoRuns runs;
  FlowBuilder builder(table, "node-1", &names, 77);
  builder.AttachRuns(&runs, 5);
  DnsTable dns(8);
  builder.AttachDns(&dns);
  std::vector<uint64_t> dns_ids = {0, 12345};
  for (int i = 0; i < 6; ++i) {
    DnsMessage m;
    m.response = i % 2 == 1;
    m.query = i == 5 ? std::string(250, 'q') + "." : "deathstar.default.svc.cluster.local.";
    m.qtypes = {1, 28};
    if (m.response) m.ips = {"10.96.0.20"};
    if (m.response) m.rrtypes = {1};
    m.rcode = static_cast<uint8_t>(i == 3 ? 3 : 0);
    dns_ids.push_back(dns.Add(EncodeDns(m)));
  }
  dns_ids.push_back(dns.Add(std::string("\x0a\x02\xff\xfe", 4)));  // not UTF-8: unreadable

  EndpointTable::Resolver res(table);
  std::vector<uint32_t> ids, services = {0, 12345};
  for (int i = 0; i < 6; ++i) {
    auto a = ParseAddr("10.1.0." + std::to_string(i + 1));
    ids.push_back(res.Lookup(a->family, a->words.data()));
  }
  ids.push_back(kWorldEndpointId);
  for (const char* ip : {"10.96.0.20", "10.96.0.21"}) {
    auto a = ParseAddr(ip);
    services.push_back(res.LookupService(a->family, a->words.data(), ip[9] == '0' ? 80 : 81));
  }
  ASSERT_NE(services[2], 0u);
  // Names two clients looked up for one address (source_names, destination_names).
  NameCache lookups;
  builder.AttachNames(&lookups);
  lookups.Add(NameCache::Client{.endpoint = ids[0]}, "z.example.", {"10.200.0.1"}, 30, 0);
  lookups.Add(NameCache::Client{.endpoint = ids[0]}, "api.example.", {"10.200.0.1"}, 30, 0);
  lookups.Add(NameCache::Client{.endpoint = ids[1]}, std::string(200, 'n') + ".example.",
              {"10.200.0.1"}, 30, 0);
  const std::array<uint32_t, 4> named = {htonl(0x0AC80001), 0, 0, 0};
  int with_names = 0;

  std::mt19937_64 rng(7);
  auto pick = [&](auto... v) {
    const std::array<uint64_t, sizeof...(v)> all{static_cast<uint64_t>(v)...};
    return all[rng() % all.size()];
  };
  int checked = 0;
  FlowBuilder::EndpointCache cache;  // used for half the records, kept across them
  for (int i = 0; i < 20000; ++i) {
    if (i == 10000) {  // the table changes (ids keep their content): the cache starts over
      endpoints.push_back(EndpointInfo{.ips = {"10.9.9.9"}, .pod_name = "late"});
      table.Update(endpoints);
    }
    cache.Refresh(table);
    FlowRecord r;
    r.time_ns = pick(0, 999'999'999, 1'000'000'000, 1'714'826'828'811'000'000ULL) + rng() % 1000;
    r.family = static_cast<uint8_t>(pick(FS_FAMILY_IPV4, FS_FAMILY_IPV6));
    for (int w = 0; w < 4; ++w) {
      r.saddr[w] = static_cast<uint32_t>(rng());
      r.daddr[w] = static_cast<uint32_t>(pick(0, rng()));
    }
    r.protocol = static_cast<uint8_t>(
        pick(IPPROTO_TCP, IPPROTO_UDP, IPPROTO_SCTP, IPPROTO_ICMP, IPPROTO_ICMPV6, 47));
    r.sport = static_cast<uint16_t>(pick(0, 53, rng()));
    r.dport = static_cast<uint16_t>(pick(0, 80, rng()));
    r.tcp_flags =
        static_cast<uint16_t>(pick(0, FS_TCP_SYN, FS_TCP_SYN | FS_TCP_ACK, rng() & 0x1FF));
    r.icmp_type = static_cast<uint8_t>(pick(0, 3, 8, rng()));
    r.icmp_code = static_cast<uint8_t>(pick(0, 3, rng()));
    r.obs_point =
        static_cast<uint8_t>(pick(FS_OBS_UNKNOWN, FS_OBS_FROM_ENDPOINT, FS_OBS_TO_ENDPOINT,
                                  FS_OBS_FROM_NETWORK, FS_OBS_TO_NETWORK));
    r.verdict = static_cast<uint8_t>(pick(FS_VERDICT_FORWARDED, FS_VERDICT_DROPPED));
    r.drop_reason = static_cast<uint8_t>(pick(0, FS_DROP_POLICY_DENIED, rng()));
    r.is_reply = static_cast<uint8_t>(pick(FS_REPLY_UNKNOWN, FS_REPLY_NO, FS_REPLY_YES));
    r.emit_reason = static_cast<uint8_t>(
        pick(FS_EMIT_DROP, FS_EMIT_POLICY_VERDICT, FS_EMIT_KERNEL_DROP, FS_EMIT_DNS, 0));
    if (r.emit_reason == FS_EMIT_DNS) {
      r.verdict = FS_VERDICT_FORWARDED;
      r.drop_reason = 0;
      r.flow_bytes = dns_ids[rng() % dns_ids.size()];
      r.flow_packets = pick(0, 1, rng());
    }
    r.policy = static_cast<uint8_t>(pick(0, deny, odd, 12, 200, 255));
    r.src_endpoint = ids[rng() % ids.size()];
    r.dst_endpoint = ids[rng() % ids.size()];
    r.src_service = static_cast<uint32_t>(services[rng() % services.size()]);
    r.dst_service = static_cast<uint32_t>(services[rng() % services.size()]);
    r.ifindex = static_cast<uint32_t>(pick(0, 3, 4, 9, rng()));
    const uint64_t position = pick(0, 1, rng());
    const uint32_t run = static_cast<uint32_t>(pick(0, 5, 2));

    if (rng() % 4 == 0) {  // to or from the named address
      r.family = FS_FAMILY_IPV4;
      std::copy(named.begin(), named.end(), rng() % 2 == 0 ? r.daddr : r.saddr);
    }
    const bool extensions = rng() % 2 == 0;

    ::observer::GetFlowsResponse built;
    builder.BuildResponse(r, position, &built, run, extensions);
    with_names += built.flow().source_names_size() + built.flow().destination_names_size() > 0;
    std::string expected;
    ASSERT_TRUE(built.SerializeToString(&expected));
    std::string encoded = "prefix";  // appended to what is there
    builder.EncodeResponse(r, position, &encoded, run, i % 2 == 0 ? &cache : nullptr, extensions);
    ASSERT_EQ(encoded.substr(0, 6), "prefix");
    if (encoded.substr(6) != expected) {
      ::observer::GetFlowsResponse got;
      got.ParseFromString(encoded.substr(6));
      FAIL() << "record " << i << " encodes differently\nbuilt:   " << built.ShortDebugString()
             << "\nencoded: " << got.ShortDebugString();
    }
    ++checked;
  }
  EXPECT_EQ(checked, 20000);
  EXPECT_GT(with_names, 100);
}

// A length-delimited field written in place has the minimal length protobuf writes, whatever
// the length's size (two bytes are kept for it).
TEST(FlowEncodeTest, LengthDelimitedFieldsInPlaceAreMinimal) {
  for (size_t len : {0, 1, 127, 128, 300, 16383, 16384, 70000, (1 << 21) + 5}) {
    std::string out = "ab";
    const size_t at = OpenLengthDelimited(3, &out);
    out.append(len, 'x');
    CloseLengthDelimited(at, &out);
    std::string expected;
    {
      google::protobuf::io::StringOutputStream raw(&expected);
      google::protobuf::io::CodedOutputStream coded(&raw);
      coded.WriteRaw("ab", 2);
      coded.WriteTag((3 << 3) | 2);
      coded.WriteVarint32(static_cast<uint32_t>(len));
      coded.WriteString(std::string(len, 'x'));
    }
    EXPECT_EQ(out, expected) << len;
  }
}

}  // namespace
}  // namespace flowscope::observer
