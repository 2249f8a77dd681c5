// Golden tests of the observe printers against the layouts in the reference §6.2–§6.3.
#include "cmd/cli/printer.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "absl/time/time.h"
#include "flowscope/v1/flowscope.pb.h"

namespace flowscope::cli {
namespace {

using ::testing::HasSubstr;

::observer::GetFlowsResponse Resp(const std::string& text) {
  ::observer::GetFlowsResponse r;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &r)) << text;
  return r;
}

// The reference's json example, as a message.
const char* kDropped = R"pb(
  flow {
    time { seconds: 1234 nanos: 567800000 }
    verdict: DROPPED
    IP { source: "1.1.1.1" destination: "2.2.2.2" }
    l4 { TCP { source_port: 31793 destination_port: 8080 } }
    source { identity: 4 }
    destination { identity: 12345 }
    Type: L3_L4
    node_name: "k8s1"
    event_type { type: 1 sub_type: 133 }
    is_reply { value: false }
    Summary: "TCP Flags: SYN"
  }
  node_name: "k8s1"
  time { seconds: 1234 nanos: 567800000 })pb";

// May 4 12:47:08.811 UTC, tiefighter asking coredns.
const char* kDnsQuery = R"pb(
  flow {
    time { seconds: 1714826828 nanos: 811000000 }
    verdict: FORWARDED
    IP { source: "10.0.1.5" destination: "10.0.3.2" ipVersion: IPv4 }
    l4 { UDP { source_port: 53875 destination_port: 53 } }
    source { identity: 1234 namespace: "default" pod_name: "tiefighter" }
    destination { identity: 5678 namespace: "kube-system" pod_name: "coredns-74ff55c5b-66f4n" }
    Type: L3_L4
    node_name: "node-1"
    event_type { type: 4 sub_type: 0 }
    is_reply { value: false }
    Summary: "UDP"
  }
  node_name: "node-1"
  time { seconds: 1714826828 nanos: 811000000 })pb";

const char* kSynAckReply = R"pb(
  flow {
    time { seconds: 1714826828 nanos: 812000000 }
    verdict: FORWARDED
    IP { source: "10.0.2.7" destination: "10.0.1.5" ipVersion: IPv4 }
    l4 {
      TCP {
        source_port: 80
        destination_port: 50214
        flags { SYN: true ACK: true }
      }
    }
    source { identity: 4242 namespace: "default" pod_name: "deathstar-c74d84667-cx5kp" }
    destination { identity: 1234 namespace: "default" pod_name: "tiefighter" }
    event_type { type: 4 sub_type: 0 }
    is_reply { value: true }
    Summary: "TCP Flags: SYN, ACK"
  })pb";

std::string Print(const std::vector<const char*>& resps, PrinterOptions o,
                  std::string* err = nullptr) {
  std::ostringstream out, e;
  Printer p(o, out, e);
  for (const char* r : resps) EXPECT_TRUE(p.Write(Resp(r)));
  EXPECT_TRUE(p.Finish());
  if (err) *err = e.str();
  return out.str();
}

TEST(PrinterTest, CompactMatchesTheReferenceExample) {
  PrinterOptions o;
  o.print_node_name = true;
  EXPECT_EQ(Print({kDropped}, o),
            "Jan  1 00:20:34.567 [k8s1]: 1.1.1.1:31793 (health) -> 2.2.2.2:8080 (ID:12345) "
            "Policy denied DROPPED (TCP Flags: SYN)\n");
}

// A kernel drop as flowscope's CLI gets it (with the KernelDrop extension): the reason after the
// verdict, "kernel-drop" as its type; in JSON the extension with its type.
TEST(PrinterTest, KernelDrops) {
  const char* drop = R"pb(
    flow {
      time { seconds: 1714826828 nanos: 811000000 }
      verdict: DROPPED
      IP { source: "10.0.1.5" destination: "10.0.2.7" ipVersion: IPv4 }
      l4 { UDP { source_port: 41000 destination_port: 9 } }
      source { identity: 1234 namespace: "default" pod_name: "tiefighter" }
      destination { identity: 4242 namespace: "default" pod_name: "deathstar" }
      Type: L3_L4
      event_type { type: 1 }
      Summary: "NO_SOCKET"
    })pb";
  ::observer::GetFlowsResponse resp = Resp(drop);
  flowscope::v1::KernelDrop why;
  why.set_reason("NO_SOCKET");
  resp.mutable_flow()->mutable_extensions()->PackFrom(why);
  auto print = [&](PrinterOptions o) {
    std::ostringstream out, err;
    Printer p(o, out, err);
    EXPECT_TRUE(p.Write(resp));
    EXPECT_TRUE(p.Finish());
    return out.str();
  };
  EXPECT_EQ(print({}),
            "May  4 12:47:08.811: default/tiefighter:41000 (ID:1234) <> default/deathstar:9 "
            "(ID:4242) kernel-drop DROPPED (NO_SOCKET)\n");
  // Without the extension (a Hubble server's flow) it is Hubble's drop type.
  EXPECT_THAT(Print({drop}, {}), HasSubstr("(ID:4242) Success DROPPED (NO_SOCKET)"));
  PrinterOptions o;
  o.format = Format::kJson;
  const auto j = nlohmann::json::parse(print(o));
  EXPECT_EQ(j["flow"]["extensions"]["@type"], "type.googleapis.com/flowscope.v1.KernelDrop");
  EXPECT_EQ(j["flow"]["extensions"]["reason"], "NO_SOCKET");
  EXPECT_EQ(j["flow"]["Summary"], "NO_SOCKET");
}

TEST(PrinterTest, CompactPodsRepliesAndUnknownDirection) {
  EXPECT_EQ(Print({kDnsQuery}, {}),
            "May  4 12:47:08.811: default/tiefighter:53875 (ID:1234) -> "
            "kube-system/coredns-74ff55c5b-66f4n:53 (ID:5678) to-endpoint FORWARDED (UDP)\n");
  // A reply: the arrow points back and the client stays on the left.
  EXPECT_EQ(Print({kSynAckReply}, {}),
            "May  4 12:47:08.812: default/tiefighter:50214 (ID:1234) <- "
            "default/deathstar-c74d84667-cx5kp:80 (ID:4242) to-endpoint FORWARDED "
            "(TCP Flags: SYN, ACK)\n");
  // No is_reply: "<>", and --numeric shows addresses.
  PrinterOptions numeric;
  numeric.ip_translation = false;
  auto r = Resp(kDnsQuery);
  r.mutable_flow()->clear_is_reply();
  std::ostringstream out, err;
  Printer p(numeric, out, err);
  p.Write(r);
  EXPECT_EQ(out.str(),
            "May  4 12:47:08.811: 10.0.1.5:53875 (ID:1234) <> 10.0.3.2:53 (ID:5678) to-endpoint "
            "FORWARDED (UDP)\n");
}

TEST(PrinterTest, CompactIcmpIpv6WorldAndMissingTime) {
  const char* icmp6 = R"pb(
    flow {
      verdict: FORWARDED
      IP { source: "fd00::1" destination: "fd00::2" ipVersion: IPv6 }
      l4 { ICMPv6 { type: 128 } }
      source { identity: 2 }
      destination { identity: 0 }
      event_type { type: 4 sub_type: 5 }
      is_reply { value: false }
      Summary: "ICMPv6 EchoRequest"
    })pb";
  EXPECT_EQ(
      Print({icmp6}, {}),
      "N/A: fd00::1 (world) -> fd00::2 (unknown) from-endpoint FORWARDED (ICMPv6 EchoRequest)\n");
  const char* v6tcp = R"pb(
    flow {
      time { seconds: 0 }
      verdict: FORWARDED
      IP { source: "fd00::1" destination: "fd00::2" ipVersion: IPv6 }
      l4 {
        TCP {
          source_port: 40000
          destination_port: 443
          flags { SYN: true }
        }
      }
      source { identity: 300 }
      destination { identity: 1 }
      event_type { type: 4 sub_type: 11 }
      is_reply { value: false }
      Summary: "TCP Flags: SYN"
    })pb";
  EXPECT_EQ(Print({v6tcp}, {}),
            "Jan  1 00:00:00.000: [fd00::1]:40000 (ID:300) -> [fd00::2]:443 (host) to-network "
            "FORWARDED (TCP Flags: SYN)\n");
}

TEST(PrinterTest, CompactIcmpv4) {
  const char* echo = R"pb(
    flow {
      time { seconds: 1714826828 nanos: 5000000 }
      verdict: FORWARDED
      IP { source: "10.0.2.7" destination: "10.0.1.5" ipVersion: IPv4 }
      l4 { ICMPv4 { type: 0 } }
      source { identity: 4242 namespace: "default" pod_name: "deathstar-1" }
      destination { identity: 1234 namespace: "default" pod_name: "xwing" }
      event_type { type: 4 sub_type: 0 }
      is_reply { value: true }
      Summary: "ICMPv4 EchoReply"
    })pb";
  EXPECT_EQ(Print({echo}, {}),
            "May  4 12:47:08.005: default/xwing (ID:1234) <- default/deathstar-1 (ID:4242) "
            "to-endpoint FORWARDED (ICMPv4 EchoReply)\n");
}

TEST(PrinterTest, LostEventsAndNodeStatus) {
  const char* lost = R"pb(
    lost_events {
      source: HUBBLE_RING_BUFFER
      num_events_lost: 1
      cpu { value: 0 }
    }
    time { seconds: 0 })pb";
  EXPECT_EQ(Print({lost}, {}), "Jan  1 00:00:00.000 EVENTS LOST: HUBBLE_RING_BUFFER CPU(0) 1\n");
  const char* lost2 = R"pb(
    lost_events {
      source: PERF_EVENT_RING_BUFFER
      num_events_lost: 42
      first { seconds: 60 }
      last { seconds: 61 }
    }
    time { seconds: 61 })pb";
  EXPECT_EQ(Print({lost2}, {}),
            "Jan  1 00:01:01.000 EVENTS LOST: PERF_EVENT_RING_BUFFER CPU(0) 42 (first: Jan  1 "
            "00:01:00.000, last: Jan  1 00:01:01.000)\n");
  const char* error = R"pb(
    node_status { state_change: NODE_ERROR node_names: "k8s2" message: "connection refused" }
    node_name: "relay"
    time { seconds: 5 })pb";
  const char* connected = R"pb(
    node_status { state_change: NODE_CONNECTED node_names: "k8s1" node_names: "k8s2" }
    node_name: "relay"
    time { seconds: 5 })pb";
  std::string err;
  EXPECT_EQ(Print({connected, error}, {}, &err), "") << "node status goes to stderr";
  EXPECT_EQ(err, "Jan  1 00:00:05.000 [relay]: Error \"connection refused\" on 1 nodes: k8s2\n");
  PrinterOptions debug;
  debug.debug = true;
  Print({connected}, debug, &err);
  EXPECT_EQ(err, "Jan  1 00:00:05.000 [relay]: Receiving flows from 2 nodes: k8s1, k8s2\n");
}

TEST(PrinterTest, Dict) {
  PrinterOptions o;
  o.format = Format::kDict;
  const char* lost = R"pb(
    lost_events { source: HUBBLE_RING_BUFFER num_events_lost: 3 }
    time { seconds: 0 })pb";
  EXPECT_EQ(Print({kDnsQuery, lost}, o),
            "  TIMESTAMP: May  4 12:47:08.811\n"
            "     SOURCE: default/tiefighter:53875\n"
            "DESTINATION: kube-system/coredns-74ff55c5b-66f4n:53\n"
            "       TYPE: to-endpoint\n"
            "    VERDICT: FORWARDED\n"
            "    SUMMARY: UDP\n"
            "------------\n"
            "  TIMESTAMP: Jan  1 00:00:00.000\n"
            "     SOURCE: HUBBLE_RING_BUFFER\n"
            "       TYPE: EVENTS LOST\n"
            "    VERDICT: -\n"
            "    SUMMARY: CPU(0) - 3\n");
}

TEST(PrinterTest, TableIsAlignedAndPrintedAtTheEnd) {
  PrinterOptions o;
  o.format = Format::kTable;
  EXPECT_EQ(
      Print({kDnsQuery, kSynAckReply}, o),
      "TIMESTAMP             SOURCE                                 DESTINATION                   "
      "           TYPE          VERDICT     SUMMARY\n"
      "May  4 12:47:08.811   default/tiefighter:53875               kube-system/coredns-74ff55c5b-"
      "66f4n:53   to-endpoint   FORWARDED   UDP\n"
      "May  4 12:47:08.812   default/deathstar-c74d84667-cx5kp:80   default/tiefighter:50214      "
      "           to-endpoint   FORWARDED   TCP Flags: SYN, ACK\n")
      << "a reply keeps its own source and destination (only the compact layout turns it)";
  o.format = Format::kDict;
  EXPECT_THAT(Print({kSynAckReply}, o),
              HasSubstr("     SOURCE: default/deathstar-c74d84667-cx5kp:80\n"
                        "DESTINATION: default/tiefighter:50214\n"));
}

TEST(PrinterTest, JsonIsOneObjectPerLineWithProtoNames) {
  PrinterOptions o;
  o.format = Format::kJson;
  const std::string out = Print({kDropped, kDnsQuery}, o);
  std::istringstream lines(out);
  std::string line;
  std::getline(lines, line);
  EXPECT_EQ(
      nlohmann::json::parse(line),
      nlohmann::json::parse(
          R"({"flow":{"time":"1970-01-01T00:20:34.567800Z","verdict":"DROPPED","IP":{"source":"1.1.1.1","destination":"2.2.2.2"},"l4":{"TCP":{"source_port":31793,"destination_port":8080}},"source":{"identity":4},"destination":{"identity":12345},"Type":"L3_L4","node_name":"k8s1","event_type":{"type":1,"sub_type":133},"is_reply":false,"Summary":"TCP Flags: SYN"},"node_name":"k8s1","time":"1970-01-01T00:20:34.567800Z"})"));
  std::getline(lines, line);
  EXPECT_EQ(nlohmann::json::parse(line)["flow"]["source"]["pod_name"], "tiefighter");
  EXPECT_FALSE(std::getline(lines, line)) << "exactly one line per response";
}

TEST(PrinterTest, ColoursOnlyWhenAsked) {
  PrinterOptions o;
  o.color = true;
  EXPECT_EQ(
      Print({kDnsQuery}, o),
      "May  4 12:47:08.811: \x1b[36mdefault/tiefighter\x1b[0m:\x1b[33m53875\x1b[0m "
      "\x1b[35m(ID:1234)\x1b[0m -> \x1b[36mkube-system/coredns-74ff55c5b-66f4n\x1b[0m:"
      "\x1b[33m53\x1b[0m \x1b[35m(ID:5678)\x1b[0m to-endpoint \x1b[32mFORWARDED\x1b[0m (UDP)\n");
  EXPECT_NE(Print({kDropped}, o).find("\x1b[31mDROPPED\x1b[0m"), std::string::npos);
  o.format = Format::kTable;
  EXPECT_EQ(Print({kDnsQuery}, o).find('\x1b'), std::string::npos) << "tables are never coloured";
  // A summary carrying an escape sequence cannot colour the terminal.
  auto r = Resp(kDnsQuery);
  r.mutable_flow()->set_summary("\x1b[31mevil");
  std::ostringstream out, err;
  Printer p({}, out, err);
  p.Write(r);
  EXPECT_NE(out.str().find("(^[[31mevil)"), std::string::npos) << out.str();
}

TEST(PrinterTest, PolicyNamesAndSilentErrors) {
  // As Hubble: only a policy-verdict event names its policies, those of its own direction that
  // have a name and a kind; in every layout.
  auto r = Resp(kDropped);
  flow::Flow* f = r.mutable_flow();
  f->mutable_event_type()->set_type(5);
  f->set_traffic_direction(flow::EGRESS);
  auto* p = f->add_egress_denied_by();
  p->set_name("deny-xwing");
  p->set_kind("CiliumNetworkPolicy");
  f->add_egress_denied_by()->set_name("no-kind");
  auto* in = f->add_ingress_denied_by();
  in->set_name("ingress-rule");
  in->set_kind("CiliumNetworkPolicy");
  PrinterOptions o;
  o.print_policy_names = true;
  const auto print = [&](const ::observer::GetFlowsResponse& resp, Format format) {
    std::ostringstream out, err;
    o.format = format;
    Printer printer(o, out, err);
    printer.Write(resp);
    printer.Finish();
    return out.str();
  };
  EXPECT_THAT(print(r, Format::kCompact),
              HasSubstr(" DENIED BY deny-xwing (CiliumNetworkPolicy) (TCP Flags"));
  EXPECT_THAT(print(r, Format::kDict),
              HasSubstr("VERDICT: DENIED BY deny-xwing (CiliumNetworkPolicy)\n"));
  EXPECT_THAT(print(r, Format::kTable), HasSubstr("DENIED BY deny-xwing (CiliumNetworkPolicy)   "));
  f->set_traffic_direction(flow::INGRESS);
  EXPECT_THAT(print(r, Format::kCompact),
              HasSubstr(" DENIED BY ingress-rule (CiliumNetworkPolicy) (TCP Flags"));
  f->mutable_event_type()->set_type(1);  // the drop itself names no policy
  EXPECT_THAT(print(r, Format::kCompact), HasSubstr(" DROPPED (TCP Flags"));
  o.print_policy_names = false;
  f->mutable_event_type()->set_type(5);
  EXPECT_THAT(print(r, Format::kCompact), HasSubstr(" DENIED (TCP Flags"));
  PrinterOptions silent;
  silent.silent_errors = true;
  std::string e;
  Print({R"pb(node_status { state_change: NODE_ERROR node_names: "x" message: "m" })pb"}, silent,
        &e);
  EXPECT_EQ(e, "");
}

TEST(PrinterTest, TimeFormats) {
  google::protobuf::Timestamp ts;
  ts.set_seconds(1714826828);
  ts.set_nanos(811000000);
  EXPECT_EQ(FormatTime(&ts, "StampMilli"), "May  4 12:47:08.811");
  EXPECT_EQ(FormatTime(&ts, "RFC3339"), "2024-05-04T12:47:08Z");
  EXPECT_EQ(FormatTime(&ts, "rfc3339milli"), "2024-05-04T12:47:08.811Z");
  EXPECT_EQ(FormatTime(&ts, "RFC3339Micro"), "2024-05-04T12:47:08.811000Z");
  EXPECT_EQ(FormatTime(&ts, "RFC3339Nano"), "2024-05-04T12:47:08.811Z");
  EXPECT_EQ(FormatTime(&ts, "YearMonthDay"), "2024-05-04");
  EXPECT_EQ(FormatTime(&ts, "YearMonthDayHour"), "2024-05-04T12Z");
  EXPECT_EQ(FormatTime(&ts, "YearMonthDayHourMinute"), "2024-05-04T12:47Z");
  EXPECT_EQ(FormatTime(&ts, "RFC1123Z"), "Sat, 04 May 2024 12:47:08 +0000");
  EXPECT_EQ(FormatTime(&ts, "no-such-format"), "May  4 12:47:08.811");
  EXPECT_EQ(FormatTime(nullptr, "StampMilli"), "N/A");
}

// The seconds are formatted once per second and layout: the result is what absl::FormatTime
// gives for the whole time, whatever came before (same second, other layouts, other seconds).
TEST(PrinterTest, TimeFormatsAgreeWithAbslAcrossSecondsAndLayouts) {
  const std::vector<std::pair<std::string, std::string>> layouts = {
      {"StampMilli", "%b %e %H:%M:%E3S"},         {"RFC3339", "%Y-%m-%dT%H:%M:%SZ"},
      {"RFC3339Milli", "%Y-%m-%dT%H:%M:%E3SZ"},   {"RFC3339Micro", "%Y-%m-%dT%H:%M:%E6SZ"},
      {"RFC3339Nano", "%Y-%m-%dT%H:%M:%E*SZ"},    {"YearMonthDayHourMinute", "%Y-%m-%dT%H:%MZ"},
      {"RFC1123Z", "%a, %d %b %Y %H:%M:%S +0000"}};
  uint64_t x = 88172645463325252ULL;
  auto next = [&x] {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return x;
  };
  google::protobuf::Timestamp ts;
  for (int i = 0; i < 20000; ++i) {
    if (i % 7 == 0) ts.set_seconds(static_cast<int64_t>(next() % 4'000'000'000ULL) - 100'000'000);
    const int32_t nanos_choices[] = {0, 1, 999'999'999, 500'000'000, 123'000, 42};
    ts.set_nanos(i % 3 == 0 ? nanos_choices[next() % 6]
                            : static_cast<int32_t>(next() % 1'000'000'000));
    const auto& [layout, fmt] = layouts[next() % layouts.size()];
    const absl::Time t = absl::FromUnixSeconds(ts.seconds()) + absl::Nanoseconds(ts.nanos());
    ASSERT_EQ(FormatTime(&ts, layout), absl::FormatTime(fmt, t, absl::UTCTimeZone()))
        << layout << " " << ts.ShortDebugString();
  }
}

TEST(PrinterTest, FormatNames) {
  EXPECT_EQ(*ParseFormat("jsonpb"), Format::kJson);
  EXPECT_EQ(*ParseFormat("tab"), Format::kTable);
  EXPECT_FALSE(ParseFormat("yaml").ok());
}

}  // namespace
}  // namespace flowscope::cli

namespace flowscope::cli {
namespace {

template <typename M>
M ParseText(const std::string& text) {
  M m;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &m)) << text;
  return m;
}

const char* kAgentEvents[] = {
    R"pb(agent_event {
           type: AGENT_STARTED
           agent_start { time { seconds: 1714826828 nanos: 811000000 } }
         }
         node_name: "node-1"
         time { seconds: 1714826828 nanos: 811000000 })pb",
    R"pb(agent_event {
           type: POLICY_UPDATED
           policy_update { labels: "k8s:a=b" labels: "k8s:c=d" revision: 7 rule_count: 2 }
         }
         node_name: "node-1"
         time { seconds: 1714826829 })pb",
    R"pb(agent_event {
           type: IPCACHE_UPSERTED
           ipcache_update {
             cidr: "10.0.1.5/32"
             identity: 1234
             old_identity { value: 2 }
             host_ip: "192.168.0.1"
           }
         }
         node_name: "node-2"
         time { seconds: 1714826830 })pb",
    R"pb(agent_event {
           type: SERVICE_UPSERTED
           service_upsert {
             id: 3
             frontend_address { ip: "fd00::1" port: 80 }
             backend_addresses { ip: "10.0.2.7" port: 8080 }
             backend_addresses { ip: "10.0.2.8" port: 8080 }
             type: "ClusterIP"
             namespace: "default"
             name: "deathstar"
           }
         }
         time { seconds: 1714826831 })pb",
    R"pb(agent_event { type: ENDPOINT_CREATED }
         time { seconds: 1714826832 })pb",
};

std::string PrintAgent(PrinterOptions o) {
  std::ostringstream out, err;
  Printer p(o, out, err);
  for (const char* e : kAgentEvents) {
    EXPECT_TRUE(p.WriteAgentEvent(ParseText<::observer::GetAgentEventsResponse>(e)));
  }
  EXPECT_TRUE(p.Finish());
  return out.str();
}

// `observe agent-events` in each format, as Hubble prints the events (type name, then the
// details Hubble words for each kind; UNKNOWN when a kind comes without its notification).
TEST(PrinterTest, AgentEventsInEveryFormat) {
  PrinterOptions o;
  o.print_node_name = true;
  EXPECT_EQ(PrintAgent(o),
            "May  4 12:47:08.811 [node-1]: AGENT_STARTED (start time: May  4 12:47:08.811)\n"
            "May  4 12:47:09.000 [node-1]: POLICY_UPDATED (labels: [k8s:a=b,k8s:c=d], "
            "revision: 7, count: 2)\n"
            "May  4 12:47:10.000 [node-2]: IPCACHE_UPSERTED (cidr: 10.0.1.5/32, identity: 1234, "
            "old identity: 2, host ip: 192.168.0.1, encrypt key: 0)\n"
            "May  4 12:47:11.000 []: SERVICE_UPSERTED (id: 3, frontend: [fd00::1]:80, backends: "
            "[10.0.2.7:8080,10.0.2.8:8080], type: ClusterIP, namespace: default, name: "
            "deathstar)\n"
            "May  4 12:47:12.000 []: ENDPOINT_CREATED (UNKNOWN)\n");
  o.print_node_name = false;
  o.time_format = "RFC3339";
  o.format = Format::kDict;
  const std::string dict = PrintAgent(o);
  EXPECT_THAT(dict, ::testing::StartsWith(
                        "  TIMESTAMP: 2024-05-04T12:47:08Z\n"
                        "       TYPE: AGENT_STARTED\n"
                        "    DETAILS: start time: 2024-05-04T12:47:08Z\n"
                        "------------  TIMESTAMP: 2024-05-04T12:47:09Z\n"
                        "       TYPE: POLICY_UPDATED\n"
                        "    DETAILS: labels: [k8s:a=b,k8s:c=d], revision: 7, count: 2\n"))
      << "Hubble's separator between agent events has no newline of its own";
  o.format = Format::kTable;
  const std::string table = PrintAgent(o);
  EXPECT_THAT(table,
              ::testing::StartsWith(
                  "TIMESTAMP              TYPE               DETAILS\n"
                  "2024-05-04T12:47:08Z   AGENT_STARTED      start time: 2024-05-04T12:47:08Z\n"
                  "2024-05-04T12:47:09Z   POLICY_UPDATED     "));
  o.format = Format::kJson;
  const std::string json = PrintAgent(o);
  EXPECT_EQ(
      json.substr(0, json.find('\n')),
      R"({"agent_event":{"type":"AGENT_STARTED","agent_start":{"time":)"
      R"("2024-05-04T12:47:08.811Z"}},"node_name":"node-1","time":"2024-05-04T12:47:08.811Z"})");
}

TEST(PrinterTest, DebugEventsInEveryFormat) {
  const auto e = ParseText<::observer::GetDebugEventsResponse>(R"pb(
    debug_event {
      type: DBG_CT_VERDICT
      source { ID: 1821 namespace: "default" pod_name: "xwing" }
      hash { value: 3735928559 }
      cpu { value: 3 }
      message: "CT verdict: New"
    }
    node_name: "node-1"
    time { seconds: 1714826828 nanos: 811000000 })pb");
  const auto host = ParseText<::observer::GetDebugEventsResponse>(R"pb(
    debug_event {
      type: DBG_GENERIC
      source { ID: 1 labels: "reserved:host" }
      message: "x"
    }
    time { seconds: 1714826829 })pb");
  const auto print = [&](PrinterOptions o) {
    std::ostringstream out, err;
    Printer p(o, out, err);
    EXPECT_TRUE(p.WriteDebugEvent(e));
    EXPECT_TRUE(p.WriteDebugEvent(host));
    EXPECT_TRUE(p.Finish());
    return out.str();
  };
  PrinterOptions o;
  EXPECT_EQ(print(o),
            "May  4 12:47:08.811: default/xwing (ID: 1821) DBG_CT_VERDICT MARK: 0xdeadbeef CPU: "
            "03 (CT verdict: New)\n"
            "May  4 12:47:09.000: reserved:host (ID: 1) DBG_GENERIC MARK: N/A CPU: N/A (x)\n");
  o.format = Format::kDict;
  EXPECT_EQ(print(o),
            "  TIMESTAMP: May  4 12:47:08.811\n"
            "       TYPE: DBG_CT_VERDICT\n"
            "       FROM: default/xwing (ID: 1821)\n"
            "       MARK: 0xdeadbeef\n"
            "        CPU: 03\n"
            "    MESSAGE: CT verdict: New\n"
            "------------  TIMESTAMP: May  4 12:47:09.000\n"
            "       TYPE: DBG_GENERIC\n"
            "       FROM: reserved:host (ID: 1)\n"
            "       MARK: N/A\n"
            "        CPU: N/A\n"
            "    MESSAGE: x\n");
  o.format = Format::kTable;
  EXPECT_EQ(print(o),
            "TIMESTAMP             FROM                          TYPE             CPU/MARK        "
            "MESSAGE\n"
            "May  4 12:47:08.811   default/xwing (ID: 1821)      DBG_CT_VERDICT   03 0xdeadbeef   "
            "CT verdict: New\n"
            "May  4 12:47:09.000   reserved:host (ID: 1)         DBG_GENERIC      N/A N/A         "
            "x\n")
      << "an empty column after FROM, as Hubble's";
}

}  // namespace
}  // namespace flowscope::cli
