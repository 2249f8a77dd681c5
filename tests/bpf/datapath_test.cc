// The flow datapath (bpf/flow.bpf.c) run on packet fixtures with BPF_PROG_TEST_RUN: parsing of
// every family and protocol, malformed input, reply detection, TCP flag changes, aggregation
// levels, deny rules, observation points and lost events. No network needed.
#include "bpf/datapath.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <cstring>
#include <thread>
#include <vector>

#include "ringbuf/event_consumer.h"
#include "tests/testing/bpf_env.h"
#include "tests/testing/dns_wire.h"
#include "tests/testing/flow_events.h"
#include "tests/testing/packet.h"

namespace flowscope::bpf {
namespace {

using testing::BuildPacket;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using testing::PacketSpec;

std::string Addr(const __u32 a[4], uint8_t family) {
  char buf[INET6_ADDRSTRLEN];
  inet_ntop(family == FS_FAMILY_IPV4 ? AF_INET : AF_INET6, a, buf, sizeof buf);
  return buf;
}

class DatapathTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = testing::BpfUnavailableReason()) GTEST_SKIP() << *reason;
  }

  // Small maps keep loading fast.
  static DatapathOptions Small() {
    DatapathOptions o;
    o.ring_buffer_bytes = 1 << 20;
    o.flow_table_entries = 1024;
    return o;
  }

  void Start(DatapathOptions options = Small()) {
    auto dp = Datapath::Load(options);
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(dp).value();
    auto c = testing::FlowEventCollector::Create(*dp_);
    ASSERT_TRUE(c.ok()) << c.status();
    events_ = std::move(c).value();
  }

  // Runs the ingress (or egress) program on the packet; returns the tc verdict.
  int Run(const PacketSpec& spec, bool ingress = true) {
    return RunRaw(BuildPacket(spec), ingress);
  }
  int RunRaw(const std::vector<uint8_t>& packet, bool ingress = true) {
    auto r = testing::TestRun(ingress ? dp_->ingress_prog_fd() : dp_->egress_prog_fd(), packet);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? static_cast<int>(r->retval) : -1;
  }

  // Events emitted since the last call.
  std::vector<flow_event> Drain() { return events_->Drain(); }

  std::unique_ptr<Datapath> dp_;
  std::unique_ptr<testing::FlowEventCollector> events_;
};

PacketSpec Tcp(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport,
               uint16_t flags) {
  PacketSpec s;
  s.src = src;
  s.dst = dst;
  s.protocol = IPPROTO_TCP;
  s.sport = sport;
  s.dport = dport;
  s.tcp_flags = flags;
  return s;
}

PacketSpec Udp(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport) {
  PacketSpec s;
  s.src = src;
  s.dst = dst;
  s.protocol = IPPROTO_UDP;
  s.sport = sport;
  s.dport = dport;
  return s;
}

TEST_F(DatapathTest, Ipv4TcpSynIsANewFlowFromItsOriginator) {
  Start();
  EXPECT_EQ(Run(Tcp("10.0.1.5", 40000, "10.0.2.7", 80, FS_TCP_SYN)), TC_ACT_OK);
  const auto ev = Drain();
  ASSERT_EQ(ev.size(), 1u);
  const flow_event& e = ev[0];
  EXPECT_EQ(e.family, FS_FAMILY_IPV4);
  EXPECT_EQ(Addr(e.saddr, e.family), "10.0.1.5");
  EXPECT_EQ(Addr(e.daddr, e.family), "10.0.2.7");
  EXPECT_EQ(e.protocol, IPPROTO_TCP);
  EXPECT_EQ(e.sport, 40000);
  EXPECT_EQ(e.dport, 80);
  EXPECT_EQ(e.tcp_flags, FS_TCP_SYN);
  EXPECT_EQ(e.verdict, FS_VERDICT_FORWARDED);
  EXPECT_EQ(e.drop_reason, 0);
  EXPECT_EQ(e.is_reply, FS_REPLY_NO);
  EXPECT_EQ(e.obs_point, FS_OBS_FROM_ENDPOINT);
  EXPECT_EQ(e.emit_reason, FS_EMIT_NEW_FLOW);
  EXPECT_EQ(e.flow_packets, 1u);
  EXPECT_GT(e.pkt_len, 0u);
  EXPECT_GT(e.ktime_ns, 0u);
  EXPECT_EQ(Run(Tcp("10.0.1.5", 40000, "10.0.2.7", 80, FS_TCP_SYN), /*ingress=*/false), TC_ACT_OK);
  const auto eg = Drain();
  ASSERT_EQ(eg.size(), 0u) << "same flow, same interface, nothing new";
}

TEST_F(DatapathTest, TcpConnectionUnderMediumAggregation) {
  Start();
  const std::string c = "10.0.1.5";
  const std::string s = "10.0.2.7";
  Run(Tcp(c, 40000, s, 80, FS_TCP_SYN));
  Run(Tcp(s, 80, c, 40000, FS_TCP_SYN | FS_TCP_ACK));
  Run(Tcp(c, 40000, s, 80, FS_TCP_ACK));
  Run(Tcp(c, 40000, s, 80, FS_TCP_ACK | FS_TCP_PSH));
  Run(Tcp(s, 80, c, 40000, FS_TCP_ACK | FS_TCP_PSH));
  Run(Tcp(c, 40000, s, 80, FS_TCP_ACK | FS_TCP_FIN));
  Run(Tcp(s, 80, c, 40000, FS_TCP_ACK | FS_TCP_FIN));
  Run(Tcp(c, 40000, s, 80, FS_TCP_ACK));
  const auto ev = Drain();
  std::vector<std::pair<int, int>> seen;  // (flags, is_reply)
  for (const auto& e : ev) seen.emplace_back(e.tcp_flags, e.is_reply);
  EXPECT_THAT(seen, ElementsAre(std::pair(FS_TCP_SYN, FS_REPLY_NO),
                                std::pair(FS_TCP_SYN | FS_TCP_ACK, FS_REPLY_YES),
                                std::pair(FS_TCP_ACK | FS_TCP_FIN, FS_REPLY_NO),
                                std::pair(FS_TCP_ACK | FS_TCP_FIN, FS_REPLY_YES)));
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[1].emit_reason, FS_EMIT_NEW_DIR);
  EXPECT_EQ(ev[2].emit_reason, FS_EMIT_TCP_FLAG);
  EXPECT_EQ(ev[3].flow_packets, 7u);
  EXPECT_EQ(ev[3].flow_tcp_flags, FS_TCP_SYN | FS_TCP_ACK | FS_TCP_PSH | FS_TCP_FIN);
  // A new SYN on the closed 5-tuple starts a new flow.
  Run(Tcp(c, 40000, s, 80, FS_TCP_SYN));
  const auto again = Drain();
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].emit_reason, FS_EMIT_NEW_FLOW);
  EXPECT_EQ(again[0].flow_packets, 1u);
}

TEST_F(DatapathTest, SynAckSeenFirstMakesTheReceiverTheOriginator) {
  Start();
  Run(Tcp("10.0.2.7", 80, "10.0.1.5", 40000, FS_TCP_SYN | FS_TCP_ACK));
  Run(Tcp("10.0.1.5", 40000, "10.0.2.7", 80, FS_TCP_RST));
  const auto ev = Drain();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].is_reply, FS_REPLY_YES);
  EXPECT_EQ(ev[1].is_reply, FS_REPLY_NO);
  EXPECT_EQ(ev[1].tcp_flags, FS_TCP_RST);
}

TEST_F(DatapathTest, MidStreamTcpHasUnknownDirection) {
  Start();
  Run(Tcp("10.0.1.5", 40000, "10.0.2.7", 80, FS_TCP_ACK | FS_TCP_PSH));
  const auto ev = Drain();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].is_reply, FS_REPLY_UNKNOWN);
}

TEST_F(DatapathTest, UdpRequestAndResponse) {
  Start();
  Run(Udp("10.0.1.5", 53875, "10.0.3.2", 53));
  Run(Udp("10.0.3.2", 53, "10.0.1.5", 53875));
  Run(Udp("10.0.1.5", 53875, "10.0.3.2", 53));
  const auto ev = Drain();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].is_reply, FS_REPLY_NO);
  EXPECT_EQ(ev[0].dport, 53);
  EXPECT_EQ(ev[1].is_reply, FS_REPLY_YES);
  EXPECT_EQ(ev[1].sport, 53);
  EXPECT_EQ(ev[1].tcp_flags, 0);
}

// --- passive DNS ---------------------------------------------------------------------------------

std::vector<uint8_t> Query(uint16_t id = 0x1234) {
  testing::DnsWire q;
  q.Header(0x0100, 1, 0, id).Name("deathstar.default.svc.cluster.local").Question(1);
  return q.b;
}

PacketSpec Dns(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport,
               std::vector<uint8_t> message, uint8_t protocol = IPPROTO_UDP) {
  PacketSpec s = protocol == IPPROTO_UDP ? Udp(src, sport, dst, dport)
                                         : Tcp(src, sport, dst, dport, FS_TCP_ACK | FS_TCP_PSH);
  s.payload_bytes = std::move(message);
  return s;
}

std::vector<uint8_t> Copied(const dns_event& d) {
  return std::vector<uint8_t>(d.data, d.data + d.copied);
}

TEST_F(DatapathTest, DnsQueryLeavingAndAnswerReachingAnEndpointCarryTheMessage) {
  Start();
  const std::vector<uint8_t> query = Query();
  testing::DnsWire answer;
  answer.Header(0x8180, 1, 1).Name("deathstar.default.svc.cluster.local").Question(1);
  answer.Answer(1, 30, {10, 96, 0, 10});
  // The client's side: the query from the endpoint (ingress of its interface), the answer to it.
  EXPECT_EQ(Run(Dns("10.0.1.5", 53875, "10.0.3.2", 53, query), /*ingress=*/true), TC_ACT_OK);
  EXPECT_EQ(Run(Dns("10.0.3.2", 53, "10.0.1.5", 53875, answer.b), /*ingress=*/false), TC_ACT_OK);
  // The server's side of the same messages is not reported again.
  EXPECT_EQ(Run(Dns("10.0.1.5", 53875, "10.0.3.2", 53, query), /*ingress=*/false), TC_ACT_OK);
  EXPECT_EQ(Run(Dns("10.0.3.2", 53, "10.0.1.5", 53875, answer.b), /*ingress=*/true), TC_ACT_OK);
  const auto flows = Drain();
  const std::vector<dns_event> dns = events_->TakeDns();
  ASSERT_EQ(dns.size(), 2u);
  // Each message's record carries its packet's L3/L4 event: the new flow, its first reply.
  EXPECT_EQ(dns[0].flow_reason, FS_EMIT_NEW_FLOW);
  EXPECT_EQ(dns[1].flow_reason, FS_EMIT_NEW_DIR);
  ASSERT_EQ(flows.size(), 2u) << "and nothing else: the server's side has nothing new";
  EXPECT_EQ(flows[0].emit_reason, FS_EMIT_NEW_FLOW);
  EXPECT_EQ(flows[0].is_reply, FS_REPLY_NO);
  EXPECT_EQ(flows[1].emit_reason, FS_EMIT_NEW_DIR);
  EXPECT_EQ(flows[1].is_reply, FS_REPLY_YES);
  EXPECT_EQ(dns[0].flow.emit_reason, FS_EMIT_DNS);
  EXPECT_EQ(dns[0].flow.obs_point, FS_OBS_FROM_ENDPOINT);
  EXPECT_EQ(dns[0].flow.sport, 53875);
  EXPECT_EQ(dns[0].flow.dport, 53);
  EXPECT_EQ(dns[0].flow.verdict, FS_VERDICT_FORWARDED);
  EXPECT_EQ(dns[0].msg_len, query.size());
  EXPECT_EQ(Copied(dns[0]), query);
  EXPECT_EQ(dns[1].flow.obs_point, FS_OBS_TO_ENDPOINT);
  EXPECT_EQ(dns[1].flow.sport, 53);
  EXPECT_EQ(Copied(dns[1]), answer.b);
  auto st = dp_->ReadStats();
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->dns_messages, 2u);
}

TEST_F(DatapathTest, DnsOverTcpSkipsTheLengthPrefixAndPureAcks) {
  Start();
  const std::vector<uint8_t> query = Query();
  std::vector<uint8_t> framed = {static_cast<uint8_t>(query.size() >> 8),
                                 static_cast<uint8_t>(query.size())};
  framed.insert(framed.end(), query.begin(), query.end());
  Run(Dns("10.0.1.5", 40001, "10.0.3.2", 53, framed, IPPROTO_TCP));
  PacketSpec ack = Tcp("10.0.1.5", 40001, "10.0.3.2", 53, FS_TCP_ACK);
  ack.payload = 0;
  Run(ack);
  Drain();
  const std::vector<dns_event> dns = events_->TakeDns();
  ASSERT_EQ(dns.size(), 1u);
  EXPECT_EQ(dns[0].flow.protocol, IPPROTO_TCP);
  EXPECT_EQ(dns[0].msg_len, query.size());
  EXPECT_EQ(Copied(dns[0]), query);
}

TEST_F(DatapathTest, DnsMessagesAreCutAtTheBoundAndOddOnesStillReported) {
  Start();
  // Oversized: a 1,400-byte message is copied up to the bound and says how long it was.
  std::vector<uint8_t> big = Query();
  big.resize(1400, 0xab);
  Run(Dns("10.0.1.5", 50000, "10.0.3.2", 53, big));
  // Truncated and garbage payloads travel as they are: user space counts them as malformed.
  Run(Dns("10.0.1.5", 50001, "10.0.3.2", 53, {0x12, 0x34, 0x01}));
  testing::DnsWire loop;
  loop.Header(0x0100, 1, 0).Pointer(12).Question(1);  // a name pointing at itself
  Run(Dns("10.0.1.5", 50002, "10.0.3.2", 53, loop.b));
  PacketSpec empty = Udp("10.0.1.5", 50003, "10.0.3.2", 53);
  empty.payload = 0;
  Run(empty);
  Drain();
  const std::vector<dns_event> dns = events_->TakeDns();
  ASSERT_EQ(dns.size(), 4u);
  EXPECT_EQ(dns[0].copied, FS_DNS_MAX_PAYLOAD);
  EXPECT_EQ(dns[0].msg_len, 1400);
  EXPECT_EQ(Copied(dns[0]), std::vector<uint8_t>(big.begin(), big.begin() + FS_DNS_MAX_PAYLOAD));
  EXPECT_EQ(dns[1].copied, 3);
  EXPECT_EQ(Copied(dns[2]), loop.b);
  EXPECT_EQ(dns[3].copied, 0);
  EXPECT_EQ(dns[3].msg_len, 0);
}

TEST_F(DatapathTest, DnsIsNotReportedWhenDeniedOrTurnedOff) {
  DatapathOptions off = Small();
  off.dns = false;
  Start(off);
  Run(Dns("10.0.1.5", 53875, "10.0.3.2", 53, Query()));
  EXPECT_EQ(Drain().size(), 1u);
  EXPECT_TRUE(events_->TakeDns().empty());

  Start();
  auto rule = DenyRule::Parse("", "10.0.3.2", "udp", 53);
  ASSERT_TRUE(rule.ok());
  ASSERT_TRUE(dp_->SetDenyRules({*rule}).ok());
  EXPECT_EQ(Run(Dns("10.0.1.5", 53875, "10.0.3.2", 53, Query())), TC_ACT_SHOT);
  Drain();
  EXPECT_TRUE(events_->TakeDns().empty()) << "a dropped query reaches no server";
}

TEST_F(DatapathTest, IcmpEchoBothFamilies) {
  Start();
  for (auto [src, dst, proto, req, rep] : {std::tuple("10.0.1.5", "10.0.2.7", 1, 8, 0),
                                           std::tuple("fd00::1", "fd00::2", 58, 128, 129)}) {
    PacketSpec s;
    s.src = src;
    s.dst = dst;
    s.protocol = static_cast<uint8_t>(proto);
    s.icmp_type = static_cast<uint8_t>(req);
    Run(s);
    std::swap(s.src, s.dst);
    s.icmp_type = static_cast<uint8_t>(rep);
    Run(s);
    const auto ev = Drain();
    ASSERT_EQ(ev.size(), 2u) << src;
    EXPECT_EQ(ev[0].protocol, proto);
    EXPECT_EQ(ev[0].icmp_type, req);
    EXPECT_EQ(ev[0].is_reply, FS_REPLY_NO);
    EXPECT_EQ(ev[1].icmp_type, rep);
    EXPECT_EQ(ev[1].is_reply, FS_REPLY_YES);
    EXPECT_EQ(ev[1].sport, 0);
    EXPECT_EQ(ev[1].dport, 0);
  }
}

TEST_F(DatapathTest, Ipv6TcpUdpSctpAndExtensionHeaders) {
  Start();
  PacketSpec tcp = Tcp("fd00:1::5", 41000, "fd00:2::7", 443, FS_TCP_SYN | FS_TCP_ECE | FS_TCP_CWR);
  tcp.ipv6_ext = {0, 60};  // hop-by-hop, destination options
  Run(tcp);
  PacketSpec udp = Udp("fd00:1::5", 5000, "fd00:2::7", 5353);
  udp.vlan = true;
  Run(udp);
  PacketSpec sctp = Udp("10.0.1.5", 3868, "10.0.2.7", 3868);
  sctp.protocol = IPPROTO_SCTP;
  Run(sctp);
  const auto ev = Drain();
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].family, FS_FAMILY_IPV6);
  EXPECT_EQ(Addr(ev[0].saddr, ev[0].family), "fd00:1::5");
  EXPECT_EQ(Addr(ev[0].daddr, ev[0].family), "fd00:2::7");
  EXPECT_EQ(ev[0].protocol, IPPROTO_TCP);
  EXPECT_EQ(ev[0].dport, 443);
  EXPECT_EQ(ev[0].tcp_flags, FS_TCP_SYN | FS_TCP_ECE | FS_TCP_CWR);
  EXPECT_EQ(ev[1].protocol, IPPROTO_UDP);
  EXPECT_EQ(ev[1].dport, 5353) << "behind a VLAN tag";
  EXPECT_EQ(ev[2].protocol, IPPROTO_SCTP);
  EXPECT_EQ(ev[2].sport, 3868);
}

TEST_F(DatapathTest, NonFirstFragmentsHaveNoPorts) {
  Start();
  PacketSpec v6 = Udp("fd00:1::5", 5000, "fd00:2::7", 5353);
  v6.ipv6_ext = {44};
  v6.fragment_offset = 100;
  Run(v6);
  PacketSpec v4 = Udp("10.0.1.5", 5000, "10.0.2.7", 5353);
  v4.fragment_offset = 100;
  Run(v4);
  const auto ev = Drain();
  ASSERT_EQ(ev.size(), 2u);
  for (const auto& e : ev) {
    EXPECT_EQ(e.protocol, IPPROTO_UDP);
    EXPECT_EQ(e.sport, 0);
    EXPECT_EQ(e.dport, 0);
  }
}

TEST_F(DatapathTest, MalformedAndNonIpPacketsPassWithoutEvents) {
  Start();
  std::vector<std::vector<uint8_t>> bad;
  const auto good = BuildPacket(Tcp("10.0.1.5", 1, "10.0.2.7", 2, FS_TCP_SYN));
  bad.emplace_back(good.begin(), good.begin() + 14);  // Ethernet only
  bad.emplace_back(good.begin(), good.begin() + 30);  // IPv4 header cut
  bad.emplace_back(good.begin(), good.begin() + 44);  // TCP header cut
  auto bad_version = good;
  bad_version[14] = 0x55;  // version 5
  bad.push_back(bad_version);
  auto bad_ihl = good;
  bad_ihl[14] = 0x43;  // IHL 3
  bad.push_back(bad_ihl);
  PacketSpec v6 = Udp("fd00::1", 1, "fd00::2", 2);
  v6.ipv6_ext = {0, 0, 0, 0, 0, 0, 0, 0, 0};  // more extension headers than followed
  bad.push_back(BuildPacket(v6));
  const auto v6good = BuildPacket(Udp("fd00::1", 1, "fd00::2", 2));
  bad.emplace_back(v6good.begin(), v6good.begin() + 40);  // IPv6 header cut
  // Some kernels refuse to build an skb from a frame whose IP header is cut (EINVAL from
  // BPF_PROG_TEST_RUN); those cases are covered by the raw-socket test in netns_test.cc.
  size_t ran = 0;
  for (const auto& p : bad) {
    auto r = testing::TestRun(dp_->ingress_prog_fd(), p);
    if (!r.ok() && r.status().code() == absl::StatusCode::kInvalidArgument) continue;
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->retval, static_cast<uint32_t>(TC_ACT_OK));
    ++ran;
  }
  EXPECT_GE(ran, 4u) << "TCP header cut, bad version, bad IHL, too many extension headers";
  auto arp = good;
  arp[12] = 0x08;
  arp[13] = 0x06;
  EXPECT_EQ(RunRaw(arp), TC_ACT_OK);
  EXPECT_TRUE(Drain().empty());
  auto stats = dp_->ReadStats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->malformed, ran);
  EXPECT_EQ(stats->not_ip, 1u);
  EXPECT_EQ(stats->events, 0u);
  EXPECT_EQ(stats->packets, ran + 1);
}

TEST_F(DatapathTest, AggregationNoneReportsEveryPacket) {
  DatapathOptions o = Small();
  o.aggregation = Aggregation::kNone;
  Start(o);
  for (int i = 0; i < 5; ++i) Run(Udp("10.0.1.5", 7, "10.0.2.7", 9));
  const auto ev = Drain();
  ASSERT_EQ(ev.size(), 5u);
  EXPECT_EQ(ev[0].emit_reason, FS_EMIT_NEW_FLOW);
  EXPECT_EQ(ev[4].emit_reason, FS_EMIT_PACKET);
  EXPECT_EQ(ev[4].flow_packets, 5u);
}

TEST_F(DatapathTest, AggregationMaximumReportsNewFlowsClosesAndDrops) {
  DatapathOptions o = Small();
  o.aggregation = Aggregation::kMaximum;
  Start(o);
  const std::string c = "10.0.1.5";
  const std::string s = "10.0.2.7";
  Run(Tcp(c, 40000, s, 80, FS_TCP_SYN));
  Run(Tcp(s, 80, c, 40000, FS_TCP_SYN | FS_TCP_ACK));
  Run(Tcp(c, 40000, s, 80, FS_TCP_ACK | FS_TCP_PSH));
  Run(Tcp(c, 40000, s, 80, FS_TCP_ACK | FS_TCP_FIN));
  Run(Tcp(s, 80, c, 40000, FS_TCP_ACK | FS_TCP_FIN));
  auto rule = DenyRule::Parse("", "10.0.9.9", "udp", 0);
  ASSERT_TRUE(rule.ok());
  ASSERT_TRUE(dp_->SetDenyRules({*rule}).ok());
  EXPECT_EQ(Run(Udp(c, 1, "10.0.9.9", 2)), TC_ACT_SHOT);
  const auto ev = Drain();
  ASSERT_EQ(ev.size(), 4u);
  EXPECT_EQ(ev[0].emit_reason, FS_EMIT_NEW_FLOW);
  EXPECT_EQ(ev[1].tcp_flags, FS_TCP_ACK | FS_TCP_FIN);
  EXPECT_EQ(ev[1].is_reply, FS_REPLY_NO);
  EXPECT_EQ(ev[2].verdict, FS_VERDICT_DROPPED);
  EXPECT_EQ(ev[3].emit_reason, FS_EMIT_POLICY_VERDICT) << "drops are never aggregated away";
}

TEST_F(DatapathTest, MediumAggregationReportsActiveFlowsEveryInterval) {
  DatapathOptions o = Small();
  o.report_interval = absl::Milliseconds(1);
  Start(o);
  Run(Udp("10.0.1.5", 7, "10.0.2.7", 9));
  Run(Udp("10.0.1.5", 7, "10.0.2.7", 9));  // within the interval (microseconds later)
  // The program compares the kernel's own clock (bpf_ktime_get_ns), which no test can move:
  // this much of it has to pass.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  Run(Udp("10.0.1.5", 7, "10.0.2.7", 9));
  const auto ev = Drain();
  ASSERT_GE(ev.size(), 2u);
  EXPECT_EQ(ev.front().emit_reason, FS_EMIT_NEW_FLOW);
  EXPECT_EQ(ev.back().emit_reason, FS_EMIT_PERIODIC);
  EXPECT_EQ(ev.back().flow_packets, 3u);
}

TEST_F(DatapathTest, DenyRulesDropAndReportPolicyDenied) {
  Start();
  auto rule = DenyRule::Parse("10.0.1.5", "10.0.2.0/24", "tcp", 80);
  ASSERT_TRUE(rule.ok()) << rule.status();
  rule->raw.policy = 7;  // the rule's name id, reported with its drops
  ASSERT_TRUE(dp_->SetDenyRules({*rule}).ok());

  EXPECT_EQ(Run(Tcp("10.0.1.5", 40000, "10.0.2.7", 80, FS_TCP_SYN)), TC_ACT_SHOT);
  EXPECT_EQ(Run(Tcp("10.0.1.5", 40000, "10.0.2.7", 80, FS_TCP_SYN)), TC_ACT_SHOT);
  EXPECT_EQ(Run(Tcp("10.0.1.5", 40001, "10.0.2.7", 81, FS_TCP_SYN)), TC_ACT_OK) << "other port";
  EXPECT_EQ(Run(Tcp("10.0.1.6", 40000, "10.0.2.7", 80, FS_TCP_SYN)), TC_ACT_OK) << "other source";
  EXPECT_EQ(Run(Tcp("10.0.1.5", 40000, "10.0.3.7", 80, FS_TCP_SYN)), TC_ACT_OK) << "outside /24";
  EXPECT_EQ(Run(Udp("10.0.1.5", 40000, "10.0.2.7", 80)), TC_ACT_OK) << "other protocol";
  const auto ev = Drain();
  ASSERT_EQ(ev.size(), 8u) << "each drop is reported twice: the drop and the policy verdict";
  for (int i : {0, 1, 2, 3}) {
    EXPECT_EQ(ev[i].verdict, FS_VERDICT_DROPPED);
    EXPECT_EQ(ev[i].drop_reason, FS_DROP_POLICY_DENIED);
    EXPECT_EQ(ev[i].emit_reason, i % 2 == 0 ? FS_EMIT_DROP : FS_EMIT_POLICY_VERDICT);
    EXPECT_EQ(ev[i].policy, 7) << i;
    EXPECT_EQ(ev[i].is_reply, FS_REPLY_UNKNOWN) << "no established flow";
  }
  for (int i = 4; i < 8; ++i) {
    EXPECT_EQ(ev[i].verdict, FS_VERDICT_FORWARDED);
    EXPECT_EQ(ev[i].policy, 0);
  }
  EXPECT_EQ(dp_->ReadStats()->policy_drops, 2u);

  // A rule added while a flow is established: its direction is known.
  Run(Tcp("10.0.1.5", 40002, "10.0.4.4", 443, FS_TCP_SYN));
  auto v6rule = DenyRule::Parse("fd00::/8", "any", "", 0);
  auto late = DenyRule::Parse("any", "10.0.4.4", "any", 0);
  ASSERT_TRUE(v6rule.ok() && late.ok());
  ASSERT_TRUE(dp_->SetDenyRules({*v6rule, *late}).ok());
  EXPECT_EQ(Run(Tcp("10.0.4.4", 443, "10.0.1.5", 40002, FS_TCP_SYN | FS_TCP_ACK)), TC_ACT_OK)
      << "the rule matches destination 10.0.4.4 only";
  EXPECT_EQ(Run(Tcp("10.0.1.5", 40002, "10.0.4.4", 443, FS_TCP_ACK)), TC_ACT_SHOT);
  EXPECT_EQ(Run(Udp("fd00::1", 1, "fd00::2", 2)), TC_ACT_SHOT);
  EXPECT_EQ(Run(Tcp("10.0.1.5", 40000, "10.0.2.7", 80, FS_TCP_SYN)), TC_ACT_OK) << "replaced";
  const auto late_ev = Drain();
  ASSERT_EQ(late_ev.size(), 7u);
  EXPECT_EQ(late_ev[2].verdict, FS_VERDICT_DROPPED);
  EXPECT_EQ(late_ev[2].is_reply, FS_REPLY_NO);
  EXPECT_EQ(late_ev[3].emit_reason, FS_EMIT_POLICY_VERDICT);
  EXPECT_EQ(late_ev[3].is_reply, FS_REPLY_NO);
  EXPECT_EQ(late_ev[4].family, FS_FAMILY_IPV6);
  EXPECT_EQ(late_ev[4].verdict, FS_VERDICT_DROPPED);
  EXPECT_EQ(late_ev[4].policy, 0) << "an unnamed rule";

  // Clearing the rules lets everything through.
  ASSERT_TRUE(dp_->SetDenyRules({}).ok());
  EXPECT_EQ(Run(Udp("fd00::1", 1, "fd00::2", 2)), TC_ACT_OK);
}

TEST_F(DatapathTest, ObservationPointsPerInterface) {
  Start();
  Run(Udp("10.0.1.5", 7, "10.0.2.7", 9), true);
  Run(Udp("10.0.1.5", 7, "10.0.2.8", 9), false);
  auto ev = Drain();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].obs_point, FS_OBS_FROM_ENDPOINT);
  EXPECT_EQ(ev[1].obs_point, FS_OBS_TO_ENDPOINT);
  const uint32_t ifindex = ev[0].ifindex;  // the device BPF_PROG_TEST_RUN uses
  ASSERT_TRUE(dp_->SetInterfacePoints(ifindex, FS_OBS_FROM_NETWORK, FS_OBS_TO_NETWORK).ok());
  Run(Udp("10.0.1.5", 7, "10.0.2.9", 9), true);
  Run(Udp("10.0.1.5", 7, "10.0.2.10", 9), false);
  ev = Drain();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].obs_point, FS_OBS_FROM_NETWORK);
  EXPECT_EQ(ev[1].obs_point, FS_OBS_TO_NETWORK);
  ASSERT_TRUE(dp_->ClearInterfacePoints(ifindex).ok());
  Run(Udp("10.0.1.5", 7, "10.0.2.11", 9), true);
  EXPECT_EQ(Drain().at(0).obs_point, FS_OBS_FROM_ENDPOINT);
}

// A packet a deny rule drops is reported once, as the policy drop: the kernel's own drop event
// for it (BPF_PROG_TEST_RUN frees its packets with kfree_skb, a drop without a reason) is not
// reported again. A packet the tc program lets pass is, when its address is watched.
TEST_F(DatapathTest, DenyRuleDropsAreNotReportedAgainAsKernelDrops) {
  Start();
  if (!dp_->kernel_drops_unavailable().empty()) {
    GTEST_SKIP() << "this kernel cannot report drops: " << dp_->kernel_drops_unavailable();
  }
  watch_key k{};
  k.family = FS_FAMILY_IPV4;
  inet_pton(AF_INET, "10.0.1.5", &k.addr[0]);
  ASSERT_TRUE(dp_->SetWatchedAddresses({k}).ok());
  ASSERT_TRUE(dp_->SetDenyRules({*DenyRule::Parse("10.0.1.5", "", "tcp", 80)}).ok());
  EXPECT_EQ(Run(Tcp("10.0.1.5", 40000, "10.0.2.7", 80, FS_TCP_SYN)), TC_ACT_SHOT);
  EXPECT_EQ(Run(Tcp("10.0.1.5", 40000, "10.0.2.7", 443, FS_TCP_SYN)), TC_ACT_OK);
  std::vector<uint8_t> emits;
  std::vector<uint16_t> ports;
  for (const flow_event& e : Drain()) {
    emits.push_back(e.emit_reason);
    ports.push_back(e.dport);
  }
  EXPECT_THAT(emits, ElementsAre(FS_EMIT_DROP, FS_EMIT_POLICY_VERDICT, FS_EMIT_NEW_FLOW,
                                 FS_EMIT_KERNEL_DROP));
  EXPECT_THAT(ports, ElementsAre(80, 80, 443, 443));
}

// Without the tracepoint (turned off here; a kernel without BTF or skb_drop_reason alike) the
// tc programs load and work, and the datapath says why drops are not reported.
TEST_F(DatapathTest, WithoutKernelDropsTheTcProgramsStillLoad) {
  DatapathOptions o = Small();
  o.kernel_drops = false;
  Start(o);
  EXPECT_EQ(dp_->kernel_drops_unavailable(), "kernel drops are turned off");
  EXPECT_EQ(dp_->kfree_skb_prog_fd(), -1);
  EXPECT_TRUE(dp_->kernel_reason_ids().empty());
  EXPECT_EQ(Run(Udp("10.0.1.5", 1000, "10.0.2.7", 53)), TC_ACT_OK);
  EXPECT_EQ(Drain().size(), 1u);
}

TEST_F(DatapathTest, MapUsageCountsFlowsInterfacesAndRules) {
  Start();
  auto usage = dp_->ReadMapUsage();
  ASSERT_TRUE(usage.ok()) << usage.status();
  ASSERT_EQ(usage->size(), 4u);
  EXPECT_EQ((*usage)[0].name, "flows");
  EXPECT_EQ((*usage)[0].entries, 0u);
  EXPECT_EQ((*usage)[0].max_entries, 1024u);
  // 5,000 packets of 700 distinct flows (more than one batch of the kernel's buckets), and
  // repeats that add nothing.
  for (int i = 0; i < 5000; ++i) {
    Run(Udp("10.0.1.5", static_cast<uint16_t>(1000 + i % 700), "10.0.2.7", 53));
  }
  Drain();
  ASSERT_TRUE(dp_->SetInterfacePoints(7, FS_OBS_FROM_NETWORK, FS_OBS_TO_NETWORK).ok());
  ASSERT_TRUE(dp_->SetInterfacePoints(9, FS_OBS_FROM_NETWORK, FS_OBS_TO_NETWORK).ok());
  ASSERT_TRUE(dp_->SetDenyRules({*DenyRule::Parse("10.0.1.5/32", "", "tcp", 80)}).ok());
  usage = dp_->ReadMapUsage();
  ASSERT_TRUE(usage.ok()) << usage.status();
  EXPECT_EQ((*usage)[0].entries, 700u);
  EXPECT_EQ((*usage)[1].name, "if_config");
  EXPECT_EQ((*usage)[1].entries, 2u);
  EXPECT_EQ((*usage)[1].max_entries, 4096u);
  EXPECT_EQ((*usage)[2].name, "deny_rules");
  EXPECT_EQ((*usage)[2].entries, 1u);
  EXPECT_EQ((*usage)[2].max_entries, static_cast<uint64_t>(FS_MAX_DENY_RULES));
  EXPECT_EQ((*usage)[3].name, "watched_addrs");
  EXPECT_EQ((*usage)[3].entries, 0u);
}

TEST_F(DatapathTest, FullRingBufferCountsLostEvents) {
  DatapathOptions o = Small();
  o.aggregation = Aggregation::kNone;
  o.ring_buffer_bytes = 4096;
  Start(o);
  const auto packet = BuildPacket(Udp("10.0.1.5", 7, "10.0.2.7", 9));
  auto r = testing::TestRun(dp_->ingress_prog_fd(), packet, 1000);
  ASSERT_TRUE(r.ok()) << r.status();
  const size_t got = Drain().size();
  const uint64_t lost = *events_->consumer().TakeLost();
  EXPECT_GT(got, 0u);
  EXPECT_GT(lost, 0u);
  EXPECT_EQ(got + lost, 1000u);
}

TEST(DatapathOptionsTest, InvalidOptionsAndRulesAreClearErrors) {
  DatapathOptions o;
  o.ring_buffer_bytes = 5000;
  auto dp = Datapath::Load(o);
  ASSERT_FALSE(dp.ok());
  EXPECT_THAT(std::string(dp.status().message()), HasSubstr("power of two"));

  EXPECT_EQ(*ParseAggregation("Medium"), Aggregation::kMedium);
  EXPECT_THAT(std::string(ParseAggregation("max").status().message()), HasSubstr("\"max\""));

  struct {
    const char* src;
    const char* dst;
    const char* proto;
    int port;
    const char* want;
  } bad[] = {
      {"10.0.0.300", "", "", 0, "invalid source \"10.0.0.300\""},
      {"", "10.0.0.0/33", "", 0, "prefix length must be 0..32"},
      {"", "fd00::/129", "", 0, "prefix length must be 0..128"},
      {"10.0.0.1", "fd00::1", "", 0, "mixes an IPv4 and an IPv6 prefix"},
      {"", "", "gre", 0, "invalid protocol \"gre\""},
      {"", "", "icmp", 80, "needs protocol tcp, udp or sctp"},
      {"", "", "tcp", 70000, "invalid port 70000"},
  };
  for (const auto& b : bad) {
    auto r = DenyRule::Parse(b.src, b.dst, b.proto, b.port);
    ASSERT_FALSE(r.ok()) << b.want;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(b.want));
  }
  auto ok = DenyRule::Parse("10.1.2.3/8", "", "TCP", 80);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->raw.family, FS_FAMILY_IPV4);
  EXPECT_EQ(ok->raw.src_net[0], htonl(0x0a000000)) << "host bits cleared";
  EXPECT_EQ(ok->raw.src_mask[0], htonl(0xff000000));
  EXPECT_EQ(ok->raw.dst_mask[0], 0u);
  EXPECT_EQ(ok->raw.protocol, IPPROTO_TCP);
  EXPECT_EQ(ok->raw.dport, 80);
}

}  // namespace
}  // namespace flowscope::bpf
