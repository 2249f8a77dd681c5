// Wire-format checks of the Hubble-compatible messages: the exact tag bytes of each field,
// computed here independently as (number << 3) | wire_type, and the proto3-JSON shape that
// Hubble's `-o json` consumers read.
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "flow/flow.pb.h"
#include "observer/observer.pb.h"
#include "relay/relay.pb.h"

namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

std::string Tag(uint32_t number, WireType wt) {
  return Varint((static_cast<uint64_t>(number) << 3) | wt);
}
std::string Len(uint32_t number, const std::string& payload) {
  return Tag(number, kLen) + Varint(payload.size()) + payload;
}
std::string VarintField(uint32_t number, uint64_t v) { return Tag(number, kVarint) + Varint(v); }

std::string Hex(const std::string& s) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
    out.push_back(' ');
  }
  return out;
}

template <typename Msg>
struct Case {
  const char* name;
  std::function<void(Msg&)> set;
  std::string expected;
};

template <typename Msg>
void RunCases(const std::vector<Case<Msg>>& cases) {
  for (const auto& c : cases) {
    Msg m;
    c.set(m);
    std::string bytes;
    ASSERT_TRUE(m.SerializeToString(&bytes)) << c.name;
    EXPECT_EQ(Hex(bytes), Hex(c.expected)) << Msg::descriptor()->full_name() << "." << c.name;
  }
}

TEST(WireTest, FlowFieldTags) {
  using flow::Flow;
  const std::string endpoint =
      VarintField(2, 1234) + Len(3, "default") + Len(4, "k8s:org=empire") + Len(5, "tiefighter") +
      Len(6, Len(1, "tiefighter") + Len(2, "Deployment")) + Len(7, "default");
  const std::string tcp =
      VarintField(1, 42690) + VarintField(2, 80) + Len(3, VarintField(2, 1) + VarintField(5, 1));
  RunCases<Flow>({
      {"time", [](Flow& f) { f.mutable_time()->set_seconds(1234); }, Len(1, VarintField(1, 1234))},
      {"verdict", [](Flow& f) { f.set_verdict(flow::DROPPED); }, VarintField(2, 2)},
      {"drop_reason", [](Flow& f) { f.set_drop_reason(133); }, VarintField(3, 133)},
      {"IP",
       [](Flow& f) {
         f.mutable_ip()->set_source("10.0.0.1");
         f.mutable_ip()->set_ipversion(flow::IPv4);
       },
       Len(5, Len(1, "10.0.0.1") + VarintField(3, 1))},
      {"l4.TCP.flags",
       [](Flow& f) {
         auto* t = f.mutable_l4()->mutable_tcp();
         t->set_source_port(42690);
         t->set_destination_port(80);
         t->mutable_flags()->set_syn(true);
         t->mutable_flags()->set_ack(true);
       },
       Len(6, Len(1, tcp))},
      {"l4.ICMPv6", [](Flow& f) { f.mutable_l4()->mutable_icmpv6()->set_type(128); },
       Len(6, Len(4, VarintField(1, 128)))},
      {"source (Endpoint)",
       [](Flow& f) {
         auto* e = f.mutable_source();
         e->set_identity(1234);
         e->set_namespace_("default");
         e->add_labels("k8s:org=empire");
         e->set_pod_name("tiefighter");
         auto* w = e->add_workloads();
         w->set_name("tiefighter");
         w->set_kind("Deployment");
         e->set_cluster_name("default");
       },
       Len(8, endpoint)},
      {"destination", [](Flow& f) { f.mutable_destination()->set_id(7); },
       Len(9, VarintField(1, 7))},
      {"Type", [](Flow& f) { f.set_type(flow::L3_L4); }, VarintField(10, 1)},
      {"node_name", [](Flow& f) { f.set_node_name("k8s1"); }, Len(11, "k8s1")},
      {"reply", [](Flow& f) { f.set_reply(true); }, VarintField(16, 1)},
      {"event_type",
       [](Flow& f) {
         f.mutable_event_type()->set_type(1);
         f.mutable_event_type()->set_sub_type(133);
       },
       Len(19, VarintField(1, 1) + VarintField(2, 133))},
      {"traffic_direction", [](Flow& f) { f.set_traffic_direction(flow::EGRESS); },
       VarintField(22, 2)},
      {"trace_observation_point", [](Flow& f) { f.set_trace_observation_point(flow::TO_ENDPOINT); },
       VarintField(24, 101)},
      {"drop_reason_desc", [](Flow& f) { f.set_drop_reason_desc(flow::POLICY_DENIED); },
       VarintField(25, 133)},
      {"is_reply=false (present)", [](Flow& f) { f.mutable_is_reply()->set_value(false); },
       Len(26, "")},
      {"is_reply=true", [](Flow& f) { f.mutable_is_reply()->set_value(true); },
       Len(26, VarintField(1, 1))},
      {"interface",
       [](Flow& f) {
         f.mutable_interface()->set_index(4);
         f.mutable_interface()->set_name("lxc1");
       },
       Len(28, VarintField(1, 4) + Len(2, "lxc1"))},
      {"uuid", [](Flow& f) { f.set_uuid("u"); }, Len(34, "u")},
      {"emitter", [](Flow& f) { f.mutable_emitter()->set_name("flowscope"); },
       Len(41, Len(1, "flowscope"))},
      {"Summary", [](Flow& f) { f.set_summary("TCP Flags: SYN"); }, Len(100000, "TCP Flags: SYN")},
      {"egress_denied_by", [](Flow& f) { f.add_egress_denied_by()->set_name("p"); },
       Len(21004, Len(1, "p"))},
      {"aggregate", [](Flow& f) { f.mutable_aggregate()->set_egress_flow_count(3); },
       Len(21007, VarintField(2, 3))},
  });
}

TEST(WireTest, GetFlowsResponseOneofAndEnvelope) {
  using observer::GetFlowsResponse;
  RunCases<GetFlowsResponse>({
      {"flow", [](GetFlowsResponse& r) { r.mutable_flow()->set_node_name("n"); },
       Len(1, Len(11, "n"))},
      {"node_status",
       [](GetFlowsResponse& r) {
         r.mutable_node_status()->set_state_change(relay::NODE_ERROR);
         r.mutable_node_status()->add_node_names("a");
         r.mutable_node_status()->set_message("boom");
       },
       Len(2, VarintField(1, 4) + Len(2, "a") + Len(3, "boom"))},
      {"lost_events",
       [](GetFlowsResponse& r) {
         r.mutable_lost_events()->set_source(flow::HUBBLE_RING_BUFFER);
         r.mutable_lost_events()->set_num_events_lost(5);
         r.mutable_lost_events()->mutable_cpu()->set_value(1);
       },
       Len(3, VarintField(1, 3) + VarintField(2, 5) + Len(3, VarintField(1, 1)))},
      {"node_name + time",
       [](GetFlowsResponse& r) {
         r.set_node_name("k8s1");
         r.mutable_time()->set_nanos(5);
       },
       Len(1000, "k8s1") + Len(1001, VarintField(2, 5))},
  });
  GetFlowsResponse r;
  r.mutable_flow();
  r.mutable_lost_events();
  EXPECT_EQ(r.response_types_case(), GetFlowsResponse::kLostEvents) << "members share one oneof";
}

TEST(WireTest, GetFlowsRequestTags) {
  using observer::GetFlowsRequest;
  RunCases<GetFlowsRequest>({
      {"number", [](GetFlowsRequest& r) { r.set_number(20); }, VarintField(1, 20)},
      {"follow", [](GetFlowsRequest& r) { r.set_follow(true); }, VarintField(3, 1)},
      {"blacklist", [](GetFlowsRequest& r) { r.add_blacklist()->add_source_pod("x"); },
       Len(5, Len(2, "x"))},
      {"whitelist", [](GetFlowsRequest& r) { r.add_whitelist()->add_source_ip("1.1.1.1"); },
       Len(6, Len(1, "1.1.1.1"))},
      {"since", [](GetFlowsRequest& r) { r.mutable_since()->set_seconds(1); },
       Len(7, VarintField(1, 1))},
      {"until", [](GetFlowsRequest& r) { r.mutable_until()->set_seconds(2); },
       Len(8, VarintField(1, 2))},
      {"first", [](GetFlowsRequest& r) { r.set_first(true); }, VarintField(9, 1)},
      {"field_mask", [](GetFlowsRequest& r) { r.mutable_field_mask()->add_paths("time"); },
       Len(10, Len(1, "time"))},
      {"experimental", [](GetFlowsRequest& r) { r.mutable_experimental(); }, Len(999, "")},
  });
}

TEST(WireTest, FlowFilterTags) {
  using flow::FlowFilter;
  RunCases<FlowFilter>({
      {"source_ip", [](FlowFilter& f) { f.add_source_ip("10.0.0.0/8"); }, Len(1, "10.0.0.0/8")},
      {"source_pod", [](FlowFilter& f) { f.add_source_pod("default/"); }, Len(2, "default/")},
      {"destination_ip", [](FlowFilter& f) { f.add_destination_ip("a"); }, Len(3, "a")},
      {"destination_pod", [](FlowFilter& f) { f.add_destination_pod("b"); }, Len(4, "b")},
      // proto3 repeated scalars are packed: one LEN record.
      {"verdict (packed)",
       [](FlowFilter& f) {
         f.add_verdict(flow::DROPPED);
         f.add_verdict(flow::FORWARDED);
       },
       Len(5, Varint(2) + Varint(1))},
      {"event_type",
       [](FlowFilter& f) {
         auto* e = f.add_event_type();
         e->set_type(4);
         e->set_match_sub_type(true);
         e->set_sub_type(5);
       },
       Len(6, VarintField(1, 4) + VarintField(2, 1) + VarintField(3, 5))},
      {"source_label", [](FlowFilter& f) { f.add_source_label("org=empire"); },
       Len(10, "org=empire")},
      {"protocol", [](FlowFilter& f) { f.add_protocol("tcp"); }, Len(12, "tcp")},
      {"destination_port", [](FlowFilter& f) { f.add_destination_port("80"); }, Len(14, "80")},
      {"reply (packed)", [](FlowFilter& f) { f.add_reply(true); }, Len(15, Varint(1))},
      {"source_identity", [](FlowFilter& f) { f.add_source_identity(300); }, Len(19, Varint(300))},
      {"tcp_flags", [](FlowFilter& f) { f.add_tcp_flags()->set_fin(true); },
       Len(23, VarintField(1, 1))},
      {"node_name", [](FlowFilter& f) { f.add_node_name("k8s*"); }, Len(24, "k8s*")},
      {"ip_version", [](FlowFilter& f) { f.add_ip_version(flow::IPv6); }, Len(25, Varint(2))},
      {"source_workload", [](FlowFilter& f) { f.add_source_workload()->set_kind("Deployment"); },
       Len(26, Len(2, "Deployment"))},
      {"uuid", [](FlowFilter& f) { f.add_uuid("u"); }, Len(29, "u")},
      {"traffic_direction", [](FlowFilter& f) { f.add_traffic_direction(flow::INGRESS); },
       Len(30, Varint(1))},
      {"drop_reason_desc", [](FlowFilter& f) { f.add_drop_reason_desc(flow::POLICY_DENIED); },
       Len(33, Varint(133))},
      {"interface", [](FlowFilter& f) { f.add_interface()->set_name("eth0"); },
       Len(35, Len(2, "eth0"))},
      {"source_cluster_name", [](FlowFilter& f) { f.add_source_cluster_name("c"); }, Len(37, "c")},
      {"ip_trace_id", [](FlowFilter& f) { f.add_ip_trace_id(9); }, Len(39, Varint(9))},
      {"encrypted", [](FlowFilter& f) { f.add_encrypted(false); }, Len(40, Varint(0))},
      {"experimental.cel_expression",
       [](FlowFilter& f) { f.mutable_experimental()->add_cel_expression("x"); },
       Len(999, Len(1, "x"))},
  });
}

TEST(WireTest, ServerStatusResponseTags) {
  using observer::ServerStatusResponse;
  std::string rate_bytes(8, '\0');
  const double rate = 23.456;
  uint64_t bits;
  std::memcpy(&bits, &rate, sizeof bits);
  for (int i = 0; i < 8; ++i)
    rate_bytes[static_cast<size_t>(i)] = static_cast<char>(bits >> (8 * i));
  RunCases<ServerStatusResponse>({
      {"num_flows", [](ServerStatusResponse& s) { s.set_num_flows(2031); }, VarintField(1, 2031)},
      {"max_flows", [](ServerStatusResponse& s) { s.set_max_flows(4095); }, VarintField(2, 4095)},
      {"seen_flows", [](ServerStatusResponse& s) { s.set_seen_flows(7); }, VarintField(3, 7)},
      {"uptime_ns", [](ServerStatusResponse& s) { s.set_uptime_ns(1ULL << 40); },
       VarintField(4, 1ULL << 40)},
      {"num_connected_nodes (wrapper)",
       [](ServerStatusResponse& s) { s.mutable_num_connected_nodes()->set_value(2); },
       Len(5, VarintField(1, 2))},
      {"num_unavailable_nodes=0 (wrapper, present)",
       [](ServerStatusResponse& s) { s.mutable_num_unavailable_nodes()->set_value(0); },
       Len(6, "")},
      {"unavailable_nodes", [](ServerStatusResponse& s) { s.add_unavailable_nodes("n3"); },
       Len(7, "n3")},
      {"version", [](ServerStatusResponse& s) { s.set_version("v"); }, Len(8, "v")},
      {"flows_rate", [rate](ServerStatusResponse& s) { s.set_flows_rate(rate); },
       Tag(9, kFixed64) + rate_bytes},
  });
}

// --- proto3 JSON shape -----------------------------------------------------------------------

std::string ToJson(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string out;
  EXPECT_TRUE(google::protobuf::util::MessageToJsonString(m, &out, options).ok());
  return out;
}

TEST(WireJsonTest, FlowResponseMatchesHubbleExample) {
  // The reference's `-o json` example line, built from the message.
  observer::GetFlowsResponse r;
  flow::Flow* f = r.mutable_flow();
  f->mutable_time()->set_seconds(1234);
  f->mutable_time()->set_nanos(567800000);
  f->set_verdict(flow::DROPPED);
  f->mutable_ip()->set_source("1.1.1.1");
  f->mutable_ip()->set_destination("2.2.2.2");
  f->mutable_l4()->mutable_tcp()->set_source_port(31793);
  f->mutable_l4()->mutable_tcp()->set_destination_port(8080);
  f->mutable_source()->set_identity(4);
  f->mutable_destination()->set_identity(12345);
  f->set_type(flow::L3_L4);
  f->set_node_name("k8s1");
  f->mutable_event_type()->set_type(1);
  f->mutable_event_type()->set_sub_type(133);
  f->mutable_is_reply()->set_value(false);
  f->set_summary("TCP Flags: SYN");
  r.set_node_name("k8s1");
  *r.mutable_time() = f->time();

  const std::string line = ToJson(r);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.size(), nlohmann::json::parse(line).dump().size()) << "compact: " << line;
  const auto expected = nlohmann::json::parse(
      R"({"flow":{"time":"1970-01-01T00:20:34.567800Z","verdict":"DROPPED","IP":{"source":"1.1.1.1","destination":"2.2.2.2"},"l4":{"TCP":{"source_port":31793,"destination_port":8080}},"source":{"identity":4},"destination":{"identity":12345},"Type":"L3_L4","node_name":"k8s1","event_type":{"type":1,"sub_type":133},"is_reply":false,"Summary":"TCP Flags: SYN"},"node_name":"k8s1","time":"1970-01-01T00:20:34.567800Z"})");
  EXPECT_EQ(nlohmann::json::parse(line), expected) << line;

  // And it parses back into the same message.
  observer::GetFlowsResponse back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &back).ok());
  EXPECT_EQ(back.SerializeAsString(), r.SerializeAsString());
}

TEST(WireJsonTest, OriginalNamesEnumNamesAndInt64Strings) {
  flow::Flow f;
  f.mutable_ip()->set_ipversion(flow::IPv6);
  f.set_trace_observation_point(flow::TO_ENDPOINT);
  f.set_drop_reason_desc(flow::POLICY_DENIED);
  f.set_socket_cookie(1ULL << 40);
  f.mutable_interface()->set_name("lxc1");
  const auto j = nlohmann::json::parse(ToJson(f));
  EXPECT_EQ(j["IP"]["ipVersion"], "IPv6");
  EXPECT_EQ(j["trace_observation_point"], "TO_ENDPOINT");
  EXPECT_EQ(j["drop_reason_desc"], "POLICY_DENIED");
  EXPECT_EQ(j["socket_cookie"], "1099511627776");
  EXPECT_EQ(j["interface"]["name"], "lxc1");

  observer::GetFlowsResponse lost;
  lost.mutable_lost_events()->set_source(flow::HUBBLE_RING_BUFFER);
  lost.mutable_lost_events()->set_num_events_lost(1);
  lost.mutable_lost_events()->mutable_cpu()->set_value(0);
  EXPECT_EQ(
      nlohmann::json::parse(ToJson(lost)),
      nlohmann::json::parse(
          R"({"lost_events":{"source":"HUBBLE_RING_BUFFER","num_events_lost":"1","cpu":0}})"));

  observer::GetFlowsResponse status;
  status.mutable_node_status()->set_state_change(relay::NODE_CONNECTED);
  status.mutable_node_status()->add_node_names("a");
  EXPECT_EQ(nlohmann::json::parse(ToJson(status)),
            nlohmann::json::parse(
                R"({"node_status":{"state_change":"NODE_CONNECTED","node_names":["a"]}})"));
}

TEST(WireJsonTest, TimestampsAreRfc3339UtcWith0369Digits) {
  struct {
    int32_t nanos;
    const char* want;
  } cases[] = {{0, "1970-01-01T00:20:34Z"},
               {567000000, "1970-01-01T00:20:34.567Z"},
               {567800000, "1970-01-01T00:20:34.567800Z"},
               {567890123, "1970-01-01T00:20:34.567890123Z"}};
  for (const auto& c : cases) {
    observer::GetFlowsResponse r;
    r.mutable_time()->set_seconds(1234);
    r.mutable_time()->set_nanos(c.nanos);
    EXPECT_EQ(nlohmann::json::parse(ToJson(r))["time"], c.want);
  }
}

TEST(WireJsonTest, ServerStatusMatchesHubbleExample) {
  observer::ServerStatusResponse s;
  s.set_num_flows(2031);
  s.set_max_flows(4095);
  s.set_seen_flows(2348885);
  s.set_uptime_ns(301515181665);
  s.set_version("cilium v1.15.0+g4145278");
  s.set_flows_rate(23.456);
  EXPECT_EQ(
      nlohmann::json::parse(ToJson(s)),
      nlohmann::json::parse(
          R"({"num_flows":"2031","max_flows":"4095","seen_flows":"2348885","uptime_ns":"301515181665","version":"cilium v1.15.0+g4145278","flows_rate":23.456})"));
  s.mutable_num_connected_nodes()->set_value(0);
  EXPECT_EQ(nlohmann::json::parse(ToJson(s))["num_connected_nodes"], 0)
      << "a set wrapper prints its value even when zero";
}

}  // namespace
