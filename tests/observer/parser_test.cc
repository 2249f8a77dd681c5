#include "observer/parser.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "bpf/drop_reasons.h"
#include "bpf/flow_event.h"
#include "observer/dns_table.h"
#include "tests/testing/dns_wire.h"

namespace flowscope::observer {
namespace {

flow_event Event(uint64_t ktime, const char* src, const char* dst) {
  flow_event e{};
  e.ktime_ns = ktime;
  inet_pton(AF_INET, src, e.saddr);
  inet_pton(AF_INET, dst, e.daddr);
  e.family = FS_FAMILY_IPV4;
  e.protocol = IPPROTO_TCP;
  e.sport = 40000;
  e.dport = 80;
  e.tcp_flags = FS_TCP_SYN;
  e.verdict = FS_VERDICT_FORWARDED;
  e.obs_point = FS_OBS_FROM_ENDPOINT;
  e.is_reply = FS_REPLY_NO;
  e.flow_packets = 1;
  e.flow_bytes = 74;
  e.ifindex = 7;
  e.pkt_len = 74;
  e.emit_reason = FS_EMIT_NEW_FLOW;
  return e;
}

absl::Span<const uint8_t> Raw(const flow_event& e) {
  return {reinterpret_cast<const uint8_t*>(&e), sizeof e};
}

class ParserTest : public ::testing::Test {
 protected:
  ParserTest() : table_("default"), parser_(table_) {
    EndpointInfo tie;
    tie.ips = {"10.0.1.5"};
    tie.namespace_name = "default";
    tie.pod_name = "tiefighter";
    table_.Update({tie});
    table_.SetNodeAddresses({"10.0.0.1"});
    parser_.SetFixedClockOffset(1'700'000'000'000'000'000LL);
  }
  EndpointTable table_;
  EventParser parser_;
};

TEST_F(ParserTest, ConvertsTimeResolvesEndpointsAndCopiesFields) {
  FlowRecord r;
  const flow_event e = Event(5'000'000'000, "10.0.1.5", "10.0.2.7");
  ASSERT_TRUE(parser_.Parse(Raw(e), &r));
  EXPECT_EQ(r.time_ns, 1'700'000'005'000'000'000ULL);
  EXPECT_EQ(table_.Get(r.src_endpoint)->pod_name, "tiefighter");
  EXPECT_EQ(r.dst_endpoint, kWorldEndpointId);
  EXPECT_EQ(r.sport, 40000);
  EXPECT_EQ(r.dport, 80);
  EXPECT_EQ(r.tcp_flags, FS_TCP_SYN);
  EXPECT_EQ(r.ifindex, 7u);
  EXPECT_EQ(r.flow_bytes, 74u);
  EXPECT_EQ(std::memcmp(r.saddr, e.saddr, 16), 0);
  FlowRecord h;
  ASSERT_TRUE(parser_.Parse(Raw(Event(5'000'000'001, "10.0.0.1", "10.0.1.5")), &h));
  EXPECT_EQ(h.src_endpoint, kHostEndpointId);
  EXPECT_EQ(parser_.stats().parsed, 2u);
}

TEST_F(ParserTest, KeepsTimesNonDecreasing) {
  FlowRecord a, b, c;
  ASSERT_TRUE(parser_.Parse(Raw(Event(2'000, "10.0.1.5", "10.0.2.7")), &a));
  ASSERT_TRUE(parser_.Parse(Raw(Event(1'000, "10.0.1.5", "10.0.2.7")), &b));  // another CPU, late
  ASSERT_TRUE(parser_.Parse(Raw(Event(3'000, "10.0.1.5", "10.0.2.7")), &c));
  EXPECT_EQ(b.time_ns, a.time_ns);
  EXPECT_GT(c.time_ns, b.time_ns);
  EXPECT_EQ(parser_.stats().clamped, 1u);
}

TEST_F(ParserTest, CountsMalformedEvents) {
  FlowRecord r;
  const flow_event good = Event(1, "10.0.1.5", "10.0.2.7");
  EXPECT_FALSE(parser_.Parse(Raw(good).subspan(0, 40), &r)) << "short";
  std::vector<flow_event> bad(8, good);
  bad[0].family = 5;
  bad[1].verdict = 9;
  bad[2].obs_point = 77;
  bad[3].is_reply = 3;
  bad[4].drop_reason = 133;  // a drop reason on a forwarded flow
  bad[5].ktime_ns = 0;
  // Stamped at a kernel time not reached yet (found by fuzzing: it overflowed, and would have
  // dragged every later record's time into the future).
  bad[6].ktime_ns = 8'680'797'543'026'667'854ULL;
  bad[7].ktime_ns = ~uint64_t{0};
  for (const auto& e : bad) EXPECT_FALSE(parser_.Parse(Raw(e), &r));
  EXPECT_EQ(parser_.stats().malformed, 9u);
  EXPECT_EQ(parser_.stats().parsed, 0u);
  EXPECT_TRUE(parser_.Parse(Raw(good), &r));
}

// A kernel drop's reason is the running kernel's number: the parser names it with the kernel's
// table (flowscope's ids), and fills in Hubble's code where one means the same.
TEST_F(ParserTest, KernelDropsGetFlowscopesReasonIdAndHubblesCode) {
  std::vector<uint8_t> ids(200, bpf::kKernelReasonUnknown);
  ids[12] = *bpf::KernelDropReasonId("NETFILTER_DROP");
  ids[88] = *bpf::KernelDropReasonId("IP_INNOROUTES");
  parser_.SetKernelReasons(ids);
  flow_event e = Event(1, "10.0.2.7", "10.0.1.5");
  e.verdict = FS_VERDICT_DROPPED;
  e.emit_reason = FS_EMIT_KERNEL_DROP;
  e.obs_point = FS_OBS_UNKNOWN;
  e.is_reply = FS_REPLY_UNKNOWN;
  e.kernel_reason = 12;
  FlowRecord r;
  ASSERT_TRUE(parser_.Parse(Raw(e), &r));
  EXPECT_TRUE(IsKernelDrop(r));
  EXPECT_EQ(bpf::KernelDropReasonName(r.policy), "NETFILTER_DROP");
  EXPECT_EQ(r.drop_reason, 0);
  EXPECT_EQ(PolicyIdOf(r), 0);
  e.kernel_reason = 88;
  ASSERT_TRUE(parser_.Parse(Raw(e), &r));
  EXPECT_EQ(r.drop_reason, 169);            // FIB_LOOKUP_FAILED
  for (uint16_t unknown : {150, 0xffff}) {  // not in the kernel's table / a subsystem's
    e.kernel_reason = unknown;
    ASSERT_TRUE(parser_.Parse(Raw(e), &r));
    EXPECT_EQ(r.policy, bpf::kKernelReasonUnknown);
  }
  // Impossible kernel drops: forwarded, with a datapath reason, with a policy.
  flow_event bad = e;
  bad.verdict = FS_VERDICT_FORWARDED;
  EXPECT_FALSE(parser_.Parse(Raw(bad), &r));
  bad = e;
  bad.drop_reason = 133;
  EXPECT_FALSE(parser_.Parse(Raw(bad), &r));
  bad = e;
  bad.policy = 1;
  EXPECT_FALSE(parser_.Parse(Raw(bad), &r));
}

dns_event DnsEvent(uint64_t ktime, const char* src, uint16_t sport, const char* dst, uint16_t dport,
                   const std::vector<uint8_t>& message, size_t msg_len = 0) {
  dns_event d{};
  d.flow = Event(ktime, src, dst);
  d.flow.protocol = IPPROTO_UDP;
  d.flow.tcp_flags = 0;
  d.flow.sport = sport;
  d.flow.dport = dport;
  d.flow.emit_reason = FS_EMIT_DNS;
  d.copied = static_cast<uint16_t>(std::min<size_t>(message.size(), FS_DNS_MAX_PAYLOAD));
  d.msg_len = static_cast<uint16_t>(msg_len != 0 ? msg_len : message.size());
  std::memcpy(d.data, message.data(), d.copied);
  return d;
}

absl::Span<const uint8_t> Raw(const dns_event& d) {
  return {reinterpret_cast<const uint8_t*>(&d), sizeof d};
}

// DNS events: the message goes to the DnsTable, the record refers to it; an answer gets the
// latency from its query (matched by client, server and DNS id); malformed messages are counted
// and skipped, never a crash; without a table DNS events are skipped.
TEST_F(ParserTest, DnsMessagesBecomeRecordsWithLatencyAndMalformedOnesAreCounted) {
  testing::DnsWire q;
  q.Header(0x0100, 1, 0, 77).Name("deathstar.default.svc.cluster.local").Question(1);
  testing::DnsWire a;
  a.Header(0x8183, 1, 0, 77).Name("deathstar.default.svc.cluster.local").Question(1);
  FlowRecord r;
  EXPECT_FALSE(parser_.Parse(Raw(DnsEvent(1000, "10.0.1.5", 40000, "10.0.3.2", 53, q.b)), &r));
  EXPECT_EQ(parser_.stats().dns_skipped, 1u);

  DnsTable dns(64);
  parser_.SetDnsTable(&dns);
  ASSERT_TRUE(parser_.Parse(Raw(DnsEvent(1000, "10.0.1.5", 40000, "10.0.3.2", 53, q.b)), &r));
  EXPECT_TRUE(IsDns(r));
  EXPECT_EQ(r.is_reply, FS_REPLY_NO);
  EXPECT_EQ(DnsLatencyOf(r), 0u);
  flow::DNS m;
  ASSERT_TRUE(dns.Decode(DnsIdOf(r), &m));
  EXPECT_EQ(m.query(), "deathstar.default.svc.cluster.local.");
  // Another client's answer with the same DNS id is not this query's.
  ASSERT_TRUE(parser_.Parse(Raw(DnsEvent(2000, "10.0.3.2", 53, "10.0.1.6", 40000, a.b)), &r));
  EXPECT_EQ(DnsLatencyOf(r), 0u);
  ASSERT_TRUE(parser_.Parse(Raw(DnsEvent(4500, "10.0.3.2", 53, "10.0.1.5", 40000, a.b)), &r));
  EXPECT_EQ(r.is_reply, FS_REPLY_YES);
  EXPECT_EQ(DnsLatencyOf(r), 3500u);
  ASSERT_TRUE(dns.Decode(DnsIdOf(r), &m));
  EXPECT_EQ(m.rcode(), 3u);
  EXPECT_EQ(r.sport, 53);
  EXPECT_EQ(r.tcp_flags, 0);

  // Malformed: truncated header, a name pointing at itself, a label running past the end, a
  // prefix of a long message that ends inside its question.
  testing::DnsWire loop;
  loop.Header(0x0100, 1, 0).Pointer(12).Question(1);
  testing::DnsWire past;
  past.Header(0x0100, 1, 0).U8(40).U8('a');
  std::vector<uint8_t> cut = q.b;
  cut.resize(20);
  const uint64_t parsed = parser_.stats().parsed;
  for (const auto& [bytes, len] :
       {std::pair{std::vector<uint8_t>{0x12, 0x34, 0x01}, size_t{0}}, std::pair{loop.b, size_t{0}},
        std::pair{past.b, size_t{0}}, std::pair{cut, size_t{900}}}) {
    EXPECT_FALSE(
        parser_.Parse(Raw(DnsEvent(5000, "10.0.1.5", 40001, "10.0.3.2", 53, bytes, len)), &r));
  }
  EXPECT_EQ(parser_.stats().dns_malformed, 4u);
  EXPECT_EQ(parser_.stats().parsed, parsed);
  EXPECT_EQ(parser_.stats().malformed, 0u) << "the events themselves were sound";
  // An event too short to hold its message is a malformed event.
  const dns_event d = DnsEvent(6000, "10.0.1.5", 40000, "10.0.3.2", 53, q.b);
  EXPECT_FALSE(parser_.Parse({reinterpret_cast<const uint8_t*>(&d), sizeof(flow_event)}, &r));
  EXPECT_EQ(parser_.stats().malformed, 1u);
}

// A DNS event that carries its packet's L3/L4 event (flow_reason) makes two records: the L3/L4
// flow from Parse() and the L7 DNS flow from TakeDns(); a malformed message leaves the first.
TEST_F(ParserTest, ADnsEventCarryingItsPacketsFlowMakesTwoRecords) {
  DnsTable dns(8);
  parser_.SetDnsTable(&dns);
  testing::DnsWire q;
  q.Header(0x0100, 1, 0, 9).Name("deathstar.default.svc.cluster.local").Question(1);
  dns_event d = DnsEvent(1000, "10.0.1.5", 40000, "10.0.3.2", 53, q.b);
  d.flow_reason = FS_EMIT_NEW_FLOW;
  d.flow.flow_bytes = 74;
  d.flow.is_reply = FS_REPLY_UNKNOWN;
  FlowRecord flow, l7;
  ASSERT_TRUE(parser_.Parse(Raw(d), &flow));
  EXPECT_EQ(flow.emit_reason, FS_EMIT_NEW_FLOW);
  EXPECT_EQ(flow.flow_bytes, 74u);
  EXPECT_EQ(flow.is_reply, FS_REPLY_UNKNOWN);
  ASSERT_TRUE(parser_.TakeDns(&l7));
  EXPECT_TRUE(IsDns(l7));
  EXPECT_EQ(l7.is_reply, FS_REPLY_NO) << "the message says it is a query";
  EXPECT_EQ(l7.time_ns, flow.time_ns);
  EXPECT_EQ(l7.src_endpoint, flow.src_endpoint);
  flow::DNS m;
  ASSERT_TRUE(dns.Decode(DnsIdOf(l7), &m));
  EXPECT_EQ(m.query(), "deathstar.default.svc.cluster.local.");
  EXPECT_FALSE(parser_.TakeDns(&l7)) << "taken once";

  dns_event bad = DnsEvent(2000, "10.0.1.5", 40001, "10.0.3.2", 53, {1, 2, 3});
  bad.flow_reason = FS_EMIT_NEW_FLOW;
  ASSERT_TRUE(parser_.Parse(Raw(bad), &flow)) << "the packet's flow stands";
  EXPECT_EQ(flow.emit_reason, FS_EMIT_NEW_FLOW);
  EXPECT_FALSE(parser_.TakeDns(&l7));
  EXPECT_EQ(parser_.stats().dns_malformed, 1u);
  bad.flow_reason = 99;  // no such event
  EXPECT_FALSE(parser_.Parse(Raw(bad), &flow));
  EXPECT_EQ(parser_.stats().malformed, 1u);
}

// An answer with addresses teaches its client the name (the client's flows to them get
// destination_names from then on); queries, NXDOMAIN and answers without addresses teach nothing.
TEST_F(ParserTest, AnswersGiveTheirClientNamesForTheirAddresses) {
  DnsTable dns(8);
  NameCache names;
  parser_.SetDnsTable(&dns);
  parser_.SetNameCache(&names);
  testing::DnsWire q, a, nx;
  q.Header(0x0100, 1, 0, 5).Name("API.example.com").Question(1);
  a.Header(0x8180, 1, 2, 5).Name("API.example.com").Question(1);
  a.Answer(1, 30, {93, 184, 216, 34}).Answer(1, 60, {93, 184, 216, 35});
  nx.Header(0x8183, 1, 0, 6).Name("nope.example.com").Question(1);
  FlowRecord r;
  ASSERT_TRUE(parser_.Parse(Raw(DnsEvent(1000, "10.0.1.5", 40000, "10.0.3.2", 53, q.b)), &r));
  ASSERT_TRUE(parser_.Parse(Raw(DnsEvent(2000, "10.0.3.2", 53, "10.0.1.5", 40001, nx.b)), &r));
  EXPECT_TRUE(names.empty());
  ASSERT_TRUE(parser_.Parse(Raw(DnsEvent(3000, "10.0.3.2", 53, "10.0.1.5", 40000, a.b)), &r));
  EXPECT_EQ(names.size(), 2u);

  FlowRecord out;
  ASSERT_TRUE(parser_.Parse(Raw(Event(4000, "10.0.1.5", "93.184.216.35")), &out));
  EXPECT_THAT(names.DestinationNames(out), ::testing::ElementsAre("api.example.com"));
  FlowRecord other;
  ASSERT_TRUE(parser_.Parse(Raw(Event(4000, "10.0.2.7", "93.184.216.35")), &other));
  EXPECT_THAT(names.DestinationNames(other), ::testing::IsEmpty()) << "another client";
}

TEST(ParserClockTest, RealClockOffsetGivesCurrentUtc) {
  EndpointTable table("default");
  EventParser parser(table);
  timespec mono{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  flow_event e = Event(static_cast<uint64_t>(mono.tv_sec) * 1'000'000'000 + mono.tv_nsec,
                       "10.0.1.5", "10.0.2.7");
  FlowRecord r;
  ASSERT_TRUE(parser.Parse(Raw(e), &r));
  const absl::Time t = absl::FromUnixNanos(static_cast<int64_t>(r.time_ns));
  EXPECT_LT(absl::AbsDuration(absl::Now() - t), absl::Seconds(5));
}

}  // namespace
}  // namespace flowscope::observer
