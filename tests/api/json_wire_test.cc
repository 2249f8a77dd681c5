// JSON straight from the wire is byte for byte what the reflection encoder writes of the decoded
// message — for every field of every type the CLI prints, packed or not, with unknown fields —
// and bytes it cannot take safely are refused (the caller decodes them), never misread.
#include "api/json_wire.h"

#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <string>

#include "api/json.h"
#include "observer/observer.pb.h"
#include "relay/relay.pb.h"
#include "tests/testing/fill_message.h"

namespace flowscope {
namespace {

namespace pb = google::protobuf;

template <typename M>
void ExpectSameAsDecoded(const std::string& wire) {
  M m;
  ASSERT_TRUE(m.ParseFromString(wire));
  std::string decoded;
  AppendJson(m, &decoded);
  std::string ours = "prefix:";
  ASSERT_TRUE(AppendJsonFromWire(M::descriptor(), wire, &ours));
  EXPECT_EQ(ours, "prefix:" + decoded);
}

TEST(JsonWireTest, EveryFieldOfEveryPrintedType) {
  for (int depth = 0; depth < 4; ++depth) {
    ::observer::GetFlowsResponse flow;
    testing::FillEveryField(flow.mutable_flow(), depth);
    flow.set_node_name("n");
    ExpectSameAsDecoded<::observer::GetFlowsResponse>(flow.SerializeAsString());
    ::observer::GetFlowsResponse lost;
    testing::FillEveryField(lost.mutable_lost_events(), depth);
    ExpectSameAsDecoded<::observer::GetFlowsResponse>(lost.SerializeAsString());
    ::observer::ServerStatusResponse status;
    testing::FillEveryField(&status, depth);
    ExpectSameAsDecoded<::observer::ServerStatusResponse>(status.SerializeAsString());
    ::relay::NodeStatusEvent node;
    testing::FillEveryField(&node, depth);
    ExpectSameAsDecoded<::relay::NodeStatusEvent>(node.SerializeAsString());
  }
}

TEST(JsonWireTest, OneofDefaultsWrappersAndExtremes) {
  ::observer::GetFlowsResponse m;
  ASSERT_TRUE(pb::TextFormat::ParseFromString(
      R"pb(
        flow {
          time { seconds: -62135596800 nanos: 1 }
          l4 { UDP {} }
          is_reply {}
          drop_reason: 4294967295
          socket_cookie: 18446744073709551615
          proxy_port: 0
          interface { index: 0 name: "<&>\u2028" }
          source {
            ID: 1
            labels: ""
            labels: "b"
            workloads {}
          }
          ip_trace_id { trace_id: 1 }
          extensions { type_url: "type.googleapis.com/google.protobuf.Duration" value: "\x08\x01" }
        }
      )pb",
      &m));
  ExpectSameAsDecoded<::observer::GetFlowsResponse>(m.SerializeAsString());
  // An empty response: {}.
  ExpectSameAsDecoded<::observer::GetFlowsResponse>("");
}

TEST(JsonWireTest, UnpackedAndPackedRepeatedScalarsAndUnknownFields) {
  std::string wire;
  // drop_reason_desc (25, varint) given twice: the last counts.
  wire += std::string("\xc8\x01\x85\x01", 4);  // 25:133
  wire += std::string("\xc8\x01\x86\x01", 4);  // 25:134
  // an unknown field 9999 (varint) and an unknown length-delimited field 9998.
  wire += std::string("\xf8\xf0\x04\x07", 4);
  wire += std::string("\xf2\xf0\x04\x02hi", 6);
  ExpectSameAsDecoded<flow::Flow>(wire);
  // A repeated enum as protobuf packs it, then one more element unpacked.
  flow::FlowFilter filter;
  filter.add_verdict(flow::DROPPED);
  filter.add_verdict(flow::FORWARDED);
  filter.add_drop_reason_desc(flow::POLICY_DENIED);
  std::string packed = filter.SerializeAsString();
  packed += std::string("\x28\x01", 2);  // verdict (5) once more, unpacked
  ExpectSameAsDecoded<flow::FlowFilter>(packed);
}

// A 32-bit field keeps the low 32 bits of its varint: an enum written as the 10-byte varint of
// 1 << 63 is 0, its default, and is left out as the decoder leaves it out (found by fuzzing).
TEST(JsonWireTest, ThirtyTwoBitFieldsOfWideVarintsTakeTheirLowBits) {
  const std::string flow = std::string("\x10\x10", 2) +  // verdict 16, then
                           std::string("\x10\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01", 11) +
                           std::string("\x18\x80\x80\x80\x80\x10", 6);  // drop_reason 1 << 32
  const std::string wire = std::string("\x0a", 1) + static_cast<char>(flow.size()) + flow;
  ExpectSameAsDecoded<::observer::GetFlowsResponse>(wire);
  std::string ours;
  ASSERT_TRUE(AppendJsonFromWire(::observer::GetFlowsResponse::descriptor(), wire, &ours));
  EXPECT_EQ(ours, R"({"flow":{}})");
}

TEST(JsonWireTest, TheLastMemberOfAOneofSetIsTheOneWritten) {
  ::observer::GetFlowsResponse flow, lost;
  flow.mutable_flow()->set_uuid("a");
  lost.mutable_lost_events()->set_num_events_lost(3);
  // flow, then lost_events, then flow again: the last flow alone (not merged with the first).
  ::observer::GetFlowsResponse again;
  again.mutable_flow()->set_node_name("b");
  for (const std::string& wire :
       {flow.SerializeAsString() + lost.SerializeAsString(),
        lost.SerializeAsString() + flow.SerializeAsString(),
        flow.SerializeAsString() + lost.SerializeAsString() + again.SerializeAsString()}) {
    ExpectSameAsDecoded<::observer::GetFlowsResponse>(wire);
  }
}

TEST(JsonWireTest, MalformedBytesAreRefusedNeverMisread) {
  ::observer::GetFlowsResponse m;
  testing::FillEveryField(m.mutable_flow(), 3);
  const std::string wire = m.SerializeAsString();
  size_t refused = 0;
  for (size_t n = 0; n <= wire.size(); ++n) {
    const std::string prefix = wire.substr(0, n);
    ::observer::GetFlowsResponse decoded;
    const bool parses = decoded.ParseFromString(prefix);
    std::string ours = "x";
    const bool ok = AppendJsonFromWire(::observer::GetFlowsResponse::descriptor(), prefix, &ours);
    if (!ok) {
      EXPECT_EQ(ours, "x") << n;  // left as it was
      ++refused;
      continue;
    }
    ASSERT_TRUE(parses) << "took a prefix protobuf refuses, at " << n;
    std::string theirs = "x";
    AppendJson(decoded, &theirs);
    EXPECT_EQ(ours, theirs) << n;
  }
  EXPECT_GT(refused, wire.size() / 2);
  // A bad wire type, a zero field number, an overlong varint, a length past the end.
  for (const std::string& bad :
       {std::string("\x0b", 1), std::string("\x00\x01", 2), std::string(11, '\xff'),
        std::string("\x0a\x05\x01", 3), std::string("\x08\x01", 2)}) {
    std::string out;
    EXPECT_FALSE(AppendJsonFromWire(::observer::GetFlowsResponse::descriptor(), bad, &out));
    EXPECT_TRUE(out.empty());
  }
  // A singular message given twice (a decoder merges them): refused, for the caller to decode.
  std::string twice = m.SerializeAsString() + m.SerializeAsString();
  std::string out;
  EXPECT_FALSE(AppendJsonFromWire(::observer::GetFlowsResponse::descriptor(), twice, &out));
}

}  // namespace
}  // namespace flowscope
