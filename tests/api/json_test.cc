// The fast JSON encoder gives what protobuf's JSON printer gives (as parsed JSON), for rich
// messages of every kind the CLI prints.
#include "api/json.h"

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "api/json_wire.h"
#include "observer/observer.pb.h"

namespace flowscope {
namespace {

template <typename M>
void ExpectSameAsProtobuf(const std::string& text) {
  M m;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &m)) << text;
  std::string ours;
  AppendJson(m, &ours);
  std::string theirs;
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(m, &theirs, o).ok());
  EXPECT_EQ(nlohmann::json::parse(ours), nlohmann::json::parse(theirs)) << ours << "\n" << theirs;
  EXPECT_EQ(ours.find('\n'), std::string::npos);
  // And the same bytes straight from the wire.
  std::string wire;
  ASSERT_TRUE(AppendJsonFromWire(M::descriptor(), m.SerializeAsString(), &wire));
  EXPECT_EQ(wire, ours);
  // And it reads back into the same message.
  M back;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(ours, &back).ok()) << ours;
  EXPECT_EQ(back.SerializeAsString(), m.SerializeAsString());
}

TEST(JsonTest, FlowsWithEveryKindOfField) {
  ExpectSameAsProtobuf<::observer::GetFlowsResponse>(R"pb(
    flow {
      time { seconds: 1714826828 nanos: 811000000 }
      uuid: "5c1a2f3e-0000-4000-8000-000000000001"
      verdict: DROPPED
      drop_reason: 133
      IP { source: "fd00::1" destination: "fd00::2" ipVersion: IPv6 }
      l4 {
        TCP {
          source_port: 1
          destination_port: 2
          flags { SYN: true NS: true }
        }
      }
      source {
        ID: 7
        identity: 4242
        namespace: "default"
        labels: "k8s:app=x"
        labels: "k8s:io.kubernetes.pod.namespace=default"
        pod_name: "tiefighter"
        workloads { name: "tiefighter" kind: "Deployment" }
      }
      destination { identity: 2 labels: "reserved:world" }
      Type: L3_L4
      node_name: "node-1"
      reply: true
      event_type { type: 1 sub_type: 133 }
      traffic_direction: EGRESS
      trace_observation_point: TO_ENDPOINT
      drop_reason_desc: POLICY_DENIED
      is_reply { value: false }
      interface { index: 12 name: "lxc12" }
      socket_cookie: 18446744073709551615
      Summary: "TCP Flags: SYN, NS <a&b>"
    }
    node_name: "node-1"
    time { seconds: 1714826828 nanos: 811000000 })pb");
}

// Fields come in the .proto's declaration order, as protojson (Hubble's CLI) writes them, not
// by number: `uuid` (34) right after `time` (1), `ip_trace_id` (40) before `drop_reason_desc`
// (25), so outputs of both diff line by line.
TEST(JsonTest, FieldsInDeclarationOrder) {
  ::observer::GetFlowsResponse m;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(R"pb(
                                                              flow {
                                                                time { seconds: 1 }
                                                                uuid: "u"
                                                                verdict: DROPPED
                                                                auth_type: SPIRE
                                                                Type: L3_L4
                                                                node_name: "n"
                                                                ip_trace_id { trace_id: 9 }
                                                                drop_reason_desc: POLICY_DENIED
                                                                is_reply { value: true }
                                                              }
                                                              node_name: "n"
                                                              time { seconds: 1 })pb",
                                                            &m));
  std::string out;
  AppendJson(m, &out);
  const auto j = nlohmann::ordered_json::parse(out);
  std::vector<std::string> keys;
  for (const auto& [k, v] : j["flow"].items()) keys.push_back(k);
  EXPECT_EQ(keys,
            (std::vector<std::string>{"time", "uuid", "verdict", "auth_type", "Type", "node_name",
                                      "ip_trace_id", "drop_reason_desc", "is_reply"}))
      << out;
  std::vector<std::string> top;
  for (const auto& [k, v] : j.items()) top.push_back(k);
  EXPECT_EQ(top, (std::vector<std::string>{"flow", "node_name", "time"}));
}

TEST(JsonTest, TimestampsLostEventsNodeStatusAndStatus) {
  for (const char* nanos : {"0", "5", "567000", "567800000", "567890123"}) {
    ExpectSameAsProtobuf<::observer::GetFlowsResponse>(std::string(R"pb(lost_events {
                                                                          source: HUBBLE_RING_BUFFER
                                                                          num_events_lost: 1
                                                                          cpu { value: 0 }
                                                                          first { seconds: 1 }
                                                                        })pb") +
                                                       " time { seconds: 1234 nanos: " + nanos +
                                                       " }");
  }
  ExpectSameAsProtobuf<::observer::GetFlowsResponse>(
      R"pb(node_status {
             state_change: NODE_ERROR
             node_names: "a"
             node_names: "b"
             message: "x\n\"y\""
           }
           node_name: "relay")pb");
  ExpectSameAsProtobuf<::observer::ServerStatusResponse>(
      R"pb(num_flows: 2031
           max_flows: 4095
           seen_flows: 2348885
           uptime_ns: 301515181665
           version: "flowscope v0.1.0"
           flows_rate: 23.456
           num_connected_nodes { value: 2 }
           num_unavailable_nodes { value: 0 }
           unavailable_nodes: "n3")pb");
  ExpectSameAsProtobuf<::observer::Node>(R"pb(name: "node-1"
                                              state: NODE_CONNECTED
                                              tls { enabled: false }
                                              uptime_ns: 1)pb");
}

TEST(JsonTest, EscapesLikeGosEncoder) {
  flow::Flow f;
  f.set_summary("<script>&\x01\xe2\x80\xa8");
  std::string out;
  AppendJson(f, &out);
  EXPECT_EQ(out, R"({"Summary":"\u003cscript\u003e\u0026\u0001\u2028"})");
}

}  // namespace
}  // namespace flowscope
