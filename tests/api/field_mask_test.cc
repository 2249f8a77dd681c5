// A compiled field mask trims exactly as protobuf's FieldMaskUtil::TrimMessage does, and names
// the path it cannot compile.
#include "api/field_mask.h"

#include <google/protobuf/text_format.h>
#include <google/protobuf/util/field_mask_util.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "flow/flow.pb.h"

namespace flowscope {
namespace {

namespace pb = google::protobuf;

flow::Flow RichFlow() {
  flow::Flow f;
  EXPECT_TRUE(pb::TextFormat::ParseFromString(
      R"pb(
        time { seconds: 1714826828 nanos: 811000000 }
        uuid: "5c1a2f3e-0000-4000-8000-000000000001"
        verdict: DROPPED
        drop_reason_desc: POLICY_DENIED
        ethernet { source: "aa:bb" destination: "cc:dd" }
        IP { source: "10.0.0.1" destination: "10.0.0.2" ipVersion: IPv4 }
        l4 {
          TCP {
            source_port: 1
            destination_port: 2
            flags { SYN: true }
          }
        }
        source {
          ID: 7
          identity: 4242
          namespace: "default"
          labels: "k8s:app=x"
          pod_name: "tiefighter"
          workloads { name: "tiefighter" kind: "Deployment" }
        }
        destination { identity: 2 namespace: "kube-system" pod_name: "coredns" labels: "a=b" }
        Type: L3_L4
        node_name: "node-1"
        source_names: "a.example"
        event_type { type: 4 sub_type: 3 }
        traffic_direction: INGRESS
        is_reply { value: true }
        Summary: "TCP Flags: SYN"
        trace_observation_point: TO_ENDPOINT
        egress_denied_by { name: "deny" namespace: "default" }
      )pb",
      &f));
  return f;
}

void ExpectSameAsProtobuf(const std::vector<std::string>& paths) {
  pb::FieldMask mask;
  for (const std::string& p : paths) mask.add_paths(p);
  auto compiled = CompiledFieldMask::Compile(mask, flow::Flow::descriptor());
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  flow::Flow ours = RichFlow();
  compiled->Trim(&ours);
  flow::Flow theirs = RichFlow();
  pb::util::FieldMaskUtil::TrimMessage(mask, &theirs);
  EXPECT_EQ(ours.DebugString(), theirs.DebugString());
  EXPECT_EQ(ours.SerializeAsString(), theirs.SerializeAsString());
}

TEST(CompiledFieldMaskTest, TrimsAsProtobufDoes) {
  ExpectSameAsProtobuf({"time"});
  ExpectSameAsProtobuf({"verdict", "IP", "l4"});
  ExpectSameAsProtobuf({"source.identity", "source.namespace", "destination.pod_name"});
  // A shorter path wins over a longer one, in either order.
  ExpectSameAsProtobuf({"source.identity", "source"});
  ExpectSameAsProtobuf({"source", "source.identity"});
  ExpectSameAsProtobuf({"l4.TCP.flags", "IP.source"});
  ExpectSameAsProtobuf({"is_reply", "event_type.type", "egress_denied_by"});
}

TEST(CompiledFieldMaskTest, AnEmptyMaskKeepsEverything) {
  auto compiled = CompiledFieldMask::Compile({}, flow::Flow::descriptor());
  ASSERT_TRUE(compiled.ok());
  EXPECT_TRUE(compiled->empty());
  flow::Flow f = RichFlow();
  compiled->Trim(&f);
  EXPECT_EQ(f.SerializeAsString(), RichFlow().SerializeAsString());
}

TEST(CompiledFieldMaskTest, NamesThePathItCannotCompile) {
  for (const auto& [path, says] : std::vector<std::pair<std::string, std::string>>{
           {"nosuch", "flow.Flow has no field \"nosuch\""},
           {"source.nosuch", "flow.Endpoint has no field \"nosuch\""},
           {"verdict.x", "\"verdict\" is not a singular message field"},
           {"egress_denied_by.name", "\"egress_denied_by\" is not a singular message field"},
           {"", "has no field \"\""},
       }) {
    pb::FieldMask mask;
    mask.add_paths(path);
    auto compiled = CompiledFieldMask::Compile(mask, flow::Flow::descriptor());
    ASSERT_FALSE(compiled.ok()) << path;
    EXPECT_NE(compiled.status().message().find(says), std::string::npos)
        << compiled.status().message();
    EXPECT_NE(compiled.status().message().find("\"" + path + "\""), std::string::npos);
  }
}

}  // namespace
}  // namespace flowscope
