#include "observer/flow_metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "bpf/flow_event.h"
#include "tests/testing/flow_records.h"
#include "tests/testing/wait.h"

namespace flowscope::observer {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class FlowMetricsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ring_ = std::move(Ring::Create(1023)).value();
    EndpointInfo tie{.ips = {"10.0.1.5"},
                     .namespace_name = "default",
                     .pod_name = "tiefighter-6d5b9c7f4d-x2x9z",
                     .labels = {"app=tiefighter", "org=empire"},
                     .workload_name = "tiefighter",
                     .workload_kind = "Deployment"};
    EndpointInfo dns{.ips = {"10.0.3.2"},
                     .namespace_name = "kube-system",
                     .pod_name = "coredns-1",
                     .labels = {"k8s-app=kube-dns"}};
    table_.Update({tie, dns});
  }
  // Metrics from --metrics values, on the test's clock.
  std::unique_ptr<FlowMetrics> Make(std::vector<std::string> flags, size_t max_series = 10000) {
    auto specs = ParseMetricSpecs(flags);
    EXPECT_TRUE(specs.ok()) << specs.status();
    return std::make_unique<FlowMetrics>(*ring_, table_,
                                         FlowMetricsOptions{.metrics = *specs,
                                                            .max_series = max_series,
                                                            .clock = &clock_,
                                                            .dns = &dns_,
                                                            .names = &names_});
  }
  // The L7 DNS record of `m` (kept in dns_) between src and dst, as the parser writes it.
  FlowRecord Dns(const char* src, const char* dst, const DnsMessage& m) {
    FlowRecord r = m.response ? Udp(src, dst, 40000) : Udp(src, dst, 53);
    if (m.response) r.sport = 53;
    r.emit_reason = FS_EMIT_DNS;
    r.obs_point = m.response ? FS_OBS_TO_ENDPOINT : FS_OBS_FROM_ENDPOINT;
    r.is_reply = m.response ? FS_REPLY_YES : FS_REPLY_NO;
    r.flow_bytes = dns_.Add(EncodeDns(m));
    return r;
  }
  FlowRecord Udp(const char* src, const char* dst, uint16_t dport) {
    EndpointTable::Resolver res(table_);
    FlowRecord r = testing::DnsQueryRecord(1, src, dst, 40000, res);
    r.dport = dport;
    return r;
  }
  static std::string Text(const FlowMetrics& m) {
    MetricsWriter w(MetricsFormat::kText);
    m.Collect(w);
    return std::move(w).Finish();
  }

  ManualClock clock_{absl::Now()};
  std::unique_ptr<Ring> ring_;
  EndpointTable table_{"default"};
  DnsTable dns_{64};
  NameCache names_;
};

TEST(MetricSpecTest, HubbleSyntaxAndClearErrors) {
  auto specs = ParseMetricSpecs(
      {"flow:sourceContext=workload-name|reserved-identity;destinationContext=namespace drop",
       "tcp:labelsContext=destination_namespace,source_namespace,traffic_direction "
       "flows-to-world:any-drop;port;syn-only port-distribution icmp"});
  ASSERT_TRUE(specs.ok()) << specs.status();
  ASSERT_EQ(specs->size(), 6u);
  EXPECT_EQ((*specs)[0].name, "flow");
  EXPECT_THAT((*specs)[0].context.source, ::testing::ElementsAre(MetricContext::kWorkloadName,
                                                                 MetricContext::kReservedIdentity));
  EXPECT_THAT((*specs)[0].context.LabelNames(), ::testing::ElementsAre("source", "destination"));
  EXPECT_THAT(
      (*specs)[2].context.LabelNames(),
      ::testing::ElementsAre("source_namespace", "destination_namespace", "traffic_direction"))
      << "Hubble's order, whatever order they were given in";
  EXPECT_TRUE((*specs)[3].any_drop && (*specs)[3].port && (*specs)[3].syn_only);
  auto dns = ParseMetricSpecs({"dns:query;ignoreAAAA;sourceContext=pod"});
  ASSERT_TRUE(dns.ok()) << dns.status();
  EXPECT_TRUE((*dns)[0].query && (*dns)[0].ignore_aaaa);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"flows", "unknown metric"},
      {"http", "not available"},
      {"dns:ignoreAAAA=yes", "unknown option"},
      {"dns:port", "unknown option"},
      {"flow:sourceContext=pods", "unknown context \"pods\""},
      {"flow:labelsContext=source_pod,nope", "invalid labelsContext value \"nope\""},
      {"drop:colour=blue", "unknown option"},
      {"tcp:port", "unknown option"},
      {"flow drop flow", "more than once"},
  };
  for (const auto& [value, says] : bad) {
    auto s = ParseMetricSpecs({value});
    ASSERT_FALSE(s.ok()) << value;
    EXPECT_THAT(std::string(s.status().message()), HasSubstr(says)) << value;
  }
}

TEST_F(FlowMetricsTest, FlowDropTcpPortAndIcmpCountLikeHubble) {
  auto m = Make({"flow drop tcp port-distribution icmp"});
  m->Process(Udp("10.0.1.5", "10.0.3.2", 53));
  m->Process(Udp("10.0.1.5", "10.0.3.2", 53));
  FlowRecord denied = Udp("10.0.1.5", "10.0.3.2", 8081);
  denied.protocol = IPPROTO_TCP;
  denied.tcp_flags = FS_TCP_SYN;
  denied.verdict = FS_VERDICT_DROPPED;
  denied.drop_reason = 133;
  m->Process(denied);
  FlowRecord synack = Udp("10.0.3.2", "10.0.1.5", 40000);
  synack.protocol = IPPROTO_TCP;
  synack.tcp_flags = FS_TCP_SYN | FS_TCP_ACK;
  synack.is_reply = FS_REPLY_YES;
  synack.obs_point = FS_OBS_TO_ENDPOINT;
  m->Process(synack);
  FlowRecord ping = Udp("10.0.1.5", "10.0.3.2", 0);
  ping.protocol = IPPROTO_ICMP;
  ping.icmp_type = 8;
  m->Process(ping);
  const std::string text = Text(*m);
  EXPECT_THAT(text, HasSubstr("# TYPE hubble_flows_processed_total counter\n"));
  EXPECT_THAT(text, HasSubstr("hubble_flows_processed_total{protocol=\"UDP\",type=\"Trace\","
                              "subtype=\"from-endpoint\",verdict=\"FORWARDED\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("hubble_flows_processed_total{protocol=\"TCP\",type=\"Drop\","
                              "subtype=\"\",verdict=\"DROPPED\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("hubble_flows_processed_total{protocol=\"TCP\",type=\"Trace\","
                              "subtype=\"to-endpoint\",verdict=\"FORWARDED\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("hubble_drop_total{reason=\"POLICY_DENIED\",protocol=\"TCP\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("hubble_tcp_flags_total{flag=\"SYN-ACK\",family=\"IPv4\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("flag=\"SYN\""))) << "the denied SYN was not forwarded";
  EXPECT_THAT(text, HasSubstr("hubble_port_distribution_total{protocol=\"UDP\",port=\"53\"} 2\n"));
  EXPECT_THAT(text,
              HasSubstr("hubble_port_distribution_total{protocol=\"ICMPv4\",port=\"0\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("port=\"40000\""))) << "replies do not count";
  EXPECT_THAT(text, HasSubstr("hubble_icmp_total{family=\"IPv4\",type=\"EchoRequest\"} 1\n"));
  EXPECT_EQ(m->processed(), 5u);
}

TEST_F(FlowMetricsTest, ContextsNameTheWorkloadsAsHubbleDoes) {
  auto m =
      Make({"flow:sourceContext=pod-short;destinationContext=app|namespace "
            "drop:sourceContext=workload-name|reserved-identity;destinationContext=pod "
            "tcp:labelsContext=source_ip,source_namespace,destination_pod,traffic_direction"});
  m->Process(Udp("10.0.1.5", "10.0.3.2", 53));
  FlowRecord out = Udp("10.0.1.5", "8.8.8.8", 443);
  out.protocol = IPPROTO_TCP;
  out.tcp_flags = FS_TCP_SYN;
  out.verdict = FS_VERDICT_DROPPED;
  out.drop_reason = 133;
  m->Process(out);
  FlowRecord from_world = Udp("8.8.8.8", "10.0.1.5", 443);
  from_world.protocol = IPPROTO_TCP;
  from_world.tcp_flags = FS_TCP_RST;
  from_world.obs_point = FS_OBS_TO_ENDPOINT;
  m->Process(from_world);
  const std::string text = Text(*m);
  EXPECT_THAT(text, HasSubstr("hubble_flows_processed_total{protocol=\"UDP\",type=\"Trace\","
                              "subtype=\"from-endpoint\",verdict=\"FORWARDED\",source=\"default/"
                              "tiefighter\",destination=\"kube-dns\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("source=\"default/tiefighter\",destination=\"\"} 1\n"))
      << "the world has neither app nor namespace";
  EXPECT_THAT(text, HasSubstr("hubble_drop_total{source=\"tiefighter\",destination=\"\","
                              "reason=\"POLICY_DENIED\",protocol=\"TCP\"} 1\n"))
      << "drop's context labels come first";
  EXPECT_THAT(text,
              HasSubstr("hubble_tcp_flags_total{flag=\"RST\",family=\"IPv4\","
                        "source_ip=\"8.8.8.8\",source_namespace=\"\",destination_pod="
                        "\"tiefighter-6d5b9c7f4d-x2x9z\",traffic_direction=\"ingress\"} 1\n"));
}

TEST_F(FlowMetricsTest, FlowsToWorldWithItsOptions) {
  auto m = Make({"flows-to-world:port;syn-only"});
  FlowRecord syn = Udp("10.0.1.5", "8.8.8.8", 443);
  syn.protocol = IPPROTO_TCP;
  syn.tcp_flags = FS_TCP_SYN;
  m->Process(syn);
  FlowRecord ack = syn;
  ack.tcp_flags = FS_TCP_ACK;
  m->Process(ack);                              // not a SYN
  m->Process(Udp("10.0.1.5", "10.0.3.2", 53));  // not to the world
  FlowRecord dropped = syn;
  dropped.verdict = FS_VERDICT_DROPPED;
  dropped.drop_reason = 130;  // not a policy drop: needs any-drop
  m->Process(dropped);
  EXPECT_THAT(Text(*m), HasSubstr("hubble_flows_to_world_total{protocol=\"TCP\",verdict="
                                  "\"FORWARDED\",port=\"443\"} 1\n# HELP"));
}

// A DNS flow is an L7 flow to Hubble's metrics: flow counts it as {DNS, L7, DNS}, tcp and icmp
// leave it, port-distribution counts a request by its port and flows-to-world by "DNS"; the dns
// metric reads its message.
TEST_F(FlowMetricsTest, DnsFlowsAreL7FlowsAndHubblesDnsMetricsCountTheirMessages) {
  auto m = Make({"flow port-distribution flows-to-world tcp dns:query;sourceContext=pod"});
  DnsMessage query;
  query.query = "deathstar.default.svc.cluster.local.";
  query.qtypes = {1};
  m->Process(Dns("10.0.1.5", "10.0.3.2", query));
  m->Process(Udp("10.0.1.5", "10.0.3.2", 53));  // the query's packet, its L3/L4 flow
  DnsMessage answer = query;
  answer.response = true;
  answer.ips = {"10.96.0.20", "10.96.0.21"};
  answer.rrtypes = {1, 1};
  answer.ttl = 30;
  m->Process(Dns("10.0.3.2", "10.0.1.5", answer));
  DnsMessage nx = query;
  nx.response = true;
  nx.rcode = 3;
  m->Process(Dns("10.0.3.2", "10.0.1.5", nx));
  DnsMessage out = query;
  out.query = "example.com.";
  m->Process(Dns("10.0.1.5", "8.8.8.8", out));  // to a resolver in the world
  FlowRecord gone = Dns("10.0.1.5", "10.0.3.2", query);
  gone.flow_bytes = 999;  // a message the table no longer has
  m->Process(gone);

  const std::string text = Text(*m);
  EXPECT_THAT(text, HasSubstr("hubble_flows_processed_total{protocol=\"DNS\",type=\"L7\","
                              "subtype=\"DNS\",verdict=\"FORWARDED\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("hubble_flows_processed_total{protocol=\"UDP\",type=\"Trace\","
                              "subtype=\"from-endpoint\",verdict=\"FORWARDED\"} 1\n"))
      << "the L3/L4 flow is a Trace flow, the DNS ones are not";
  EXPECT_THAT(text, HasSubstr("hubble_port_distribution_total{protocol=\"UDP\",port=\"53\"} 4\n"))
      << "three requests and the L3/L4 flow; answers are replies";
  EXPECT_THAT(text, HasSubstr("hubble_flows_to_world_total{protocol=\"DNS\",verdict="
                              "\"FORWARDED\"} 1\n"));
  EXPECT_THAT(text, Not(HasSubstr("hubble_tcp_flags_total{")));

  const std::string tie = "source=\"default/tiefighter-6d5b9c7f4d-x2x9z\"";
  const std::string coredns = "source=\"kube-system/coredns-1\"";
  EXPECT_THAT(text, HasSubstr("# TYPE hubble_dns_queries_total counter\n"));
  EXPECT_THAT(text, HasSubstr("hubble_dns_queries_total{" + tie +
                              ",rcode=\"\",qtypes=\"A\",ips_returned=\"0\",query=\"deathstar."
                              "default.svc.cluster.local.\"} 1\n"))
      << "the request whose message is gone is not counted here";
  EXPECT_THAT(text, HasSubstr("hubble_dns_queries_total{" + tie +
                              ",rcode=\"\",qtypes=\"A\",ips_returned=\"0\",query=\"example."
                              "com.\"} 1\n"));
  EXPECT_THAT(text,
              HasSubstr("hubble_dns_responses_total{" + coredns +
                        ",rcode=\"No Error\",qtypes=\"A\",ips_returned=\"2\",query=\"deathstar."
                        "default.svc.cluster.local.\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("hubble_dns_responses_total{" + coredns +
                              ",rcode=\"Non-Existent Domain\",qtypes=\"A\",ips_returned=\"0\","
                              "query=\"deathstar.default.svc.cluster.local.\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("hubble_dns_response_types_total{" + coredns +
                              ",type=\"A\",qtypes=\"A\",query=\"deathstar.default.svc.cluster."
                              "local.\"} 2\n"))
      << "one per answer record";
  EXPECT_THAT(text, HasSubstr("flowscope_metrics_series{metric=\"dns\"} 5\n"));
  EXPECT_EQ(m->missed(), 1u);
  EXPECT_EQ(m->processed(), 6u);

  // ignoreAAAA leaves AAAA-only lookups out; without context the labels are Hubble's own.
  auto plain = Make({"dns:ignoreAAAA"});
  DnsMessage aaaa = query;
  aaaa.qtypes = {28};
  plain->Process(Dns("10.0.1.5", "10.0.3.2", aaaa));
  plain->Process(Dns("10.0.1.5", "10.0.3.2", query));
  const std::string counted = Text(*plain);
  EXPECT_THAT(
      counted,
      HasSubstr("hubble_dns_queries_total{rcode=\"\",qtypes=\"A\",ips_returned=\"0\"} 1\n"));
  EXPECT_THAT(counted, Not(HasSubstr("AAAA")));
}

// The dns context: the names the flow's client looked up for the other side (Hubble's
// destination_names / source_names, joined by ','); the next context in the list otherwise.
TEST_F(FlowMetricsTest, TheDnsContextIsTheNamesTheClientLookedUp) {
  auto m = Make({"flow:destinationContext=dns|ip"});
  FlowRecord answer = Udp("10.0.3.2", "10.0.1.5", 40000);
  names_.Add(NameCache::ClientOf(answer, /*source=*/false), "www.example.com.", {"93.184.216.34"},
             30, 0);
  names_.Add(NameCache::ClientOf(answer, /*source=*/false), "example.com.", {"93.184.216.34"}, 30,
             0);
  m->Process(Udp("10.0.1.5", "93.184.216.34", 443));
  m->Process(Udp("10.0.1.5", "93.184.216.35", 443));
  const std::string text = Text(*m);
  EXPECT_THAT(text, HasSubstr("destination=\"example.com,www.example.com\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("destination=\"93.184.216.35\"} 1\n"));
}

TEST_F(FlowMetricsTest, SeriesAreCappedWithAnOverflowSeriesAndExpire) {
  auto m = Make({"flow:sourceContext=ip"}, /*max_series=*/3);
  for (int i = 1; i <= 10; ++i) {
    m->Process(Udp(absl::StrCat("10.9.0.", i).c_str(), "10.0.3.2", 53));
  }
  std::string text = Text(*m);
  EXPECT_THAT(text, HasSubstr("source=\"overflow\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("flowscope_metrics_overflow_total{metric=\"flow\"} 7\n"));
  EXPECT_THAT(text, HasSubstr("flowscope_metrics_series{metric=\"flow\"} 4\n"));
  // Ten minutes without a flow from them: their series go.
  clock_.Advance(absl::Minutes(5));
  m->Process(Udp("10.9.0.1", "10.0.3.2", 53));
  clock_.Advance(absl::Minutes(6));
  m->Expire();
  text = Text(*m);
  EXPECT_THAT(text, HasSubstr("source=\"10.9.0.1\"} 2\n"));
  EXPECT_THAT(text, Not(HasSubstr("10.9.0.2")));
  EXPECT_THAT(text, HasSubstr("flowscope_metrics_series{metric=\"flow\"} 1\n"));
}

TEST_F(FlowMetricsTest, TheReaderCountsWhatTheDrainWritesAndWhatItMissed) {
  auto m = Make({"flow"});
  m->Start();
  for (int i = 0; i < 500; ++i) ring_->Write(Udp("10.0.1.5", "10.0.3.2", 53));
  ring_->Publish();
  ASSERT_TRUE(testing::WaitUntil([&] { return m->processed() + m->missed() == 500; }));
  m->Stop();
  EXPECT_THAT(Text(*m), HasSubstr(absl::StrCat("verdict=\"FORWARDED\"} ", m->processed(), "\n")));
  EXPECT_THAT(Text(*m), HasSubstr("flowscope_metrics_flows_missed_total " +
                                  absl::StrCat(m->missed()) + "\n"));
}

}  // namespace
}  // namespace flowscope::observer
