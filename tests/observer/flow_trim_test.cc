// The trimmer's table of generated clear functions covers every field of flow.Flow and
// flow.Endpoint, each clearing its own field and nothing else; and a trimmed flow is what
// protobuf's FieldMaskUtil::TrimMessage makes of it, for every mask the CLI and users send.
#include "observer/flow_trim.h"

#include <google/protobuf/reflection.h>
#include <google/protobuf/text_format.h>
#include <google/protobuf/util/field_mask_util.h>
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "cmd/cli/request.h"
#include "tests/testing/fill_message.h"

namespace flowscope::observer {
namespace {

namespace pb = google::protobuf;

template <typename M, typename Fn>
void ExpectTableIsComplete(const std::vector<std::pair<int, Fn>>& table) {
  const pb::Descriptor* d = M::descriptor();
  std::set<int> numbers;
  for (const auto& [n, fn] : table) {
    ASSERT_TRUE(numbers.insert(n).second) << d->full_name() << ": field " << n << " twice";
    const pb::FieldDescriptor* f = d->FindFieldByNumber(n);
    ASSERT_NE(f, nullptr) << d->full_name() << " has no field " << n;
    M ours;
    flowscope::testing::FillEveryField(&ours, 2);
    M theirs = ours;
    fn(&ours);
    theirs.GetReflection()->ClearField(&theirs, f);
    EXPECT_EQ(ours.SerializeAsString(), theirs.SerializeAsString())
        << d->full_name() << "." << f->name();
  }
  EXPECT_EQ(numbers.size(), static_cast<size_t>(d->field_count()))
      << d->full_name() << ": a field without its clear function (a new field in the .proto?)";
}

TEST(FlowTrimmerTest, TheTablesClearEveryFieldAndOnlyIt) {
  ExpectTableIsComplete<flow::Flow>(FlowTrimmer::FlowClears());
  ExpectTableIsComplete<flow::Endpoint>(FlowTrimmer::EndpointClears());
}

void ExpectSameAsProtobuf(const flow::Flow& flow, const std::vector<std::string>& paths) {
  pb::FieldMask mask;
  for (const std::string& p : paths) mask.add_paths(p);
  auto compiled = CompiledFieldMask::Compile(mask, flow::Flow::descriptor());
  ASSERT_TRUE(compiled.ok()) << compiled.status();
  flow::Flow ours = flow;
  FlowTrimmer(*compiled).Trim(&ours);
  flow::Flow theirs = flow;
  pb::util::FieldMaskUtil::TrimMessage(mask, &theirs);
  EXPECT_EQ(ours.SerializeAsString(), theirs.SerializeAsString())
      << ::testing::PrintToString(paths) << "\nours:\n"
      << ours.DebugString() << "theirs:\n"
      << theirs.DebugString();
}

TEST(FlowTrimmerTest, TrimsAsProtobufDoes) {
  flow::Flow full;
  flowscope::testing::FillEveryField(&full, 3);
  flow::Flow sparse;
  ASSERT_TRUE(pb::TextFormat::ParseFromString(R"pb(
                                                time { seconds: 1 }
                                                verdict: FORWARDED
                                                source { identity: 3 labels: "a=b" }
                                                Summary: "x"
                                              )pb",
                                              &sparse));
  std::vector<std::vector<std::string>> masks = {
      {"time"},
      {"verdict", "IP", "l4"},
      {"source.identity", "source.namespace", "destination.pod_name"},
      {"source", "source.identity"},
      {"source.identity", "source"},
      {"l4.TCP.flags", "IP.source", "event_type.type"},
      {"source.workloads", "source.labels", "destination.ID", "destination.cluster_name"},
      {"is_reply", "egress_denied_by", "extensions", "aggregate", "Summary"},
  };
  // The CLI's compact mask, with what it adds to Hubble's.
  std::vector<std::string> compact = cli::DefaultFieldMask();
  compact.insert(compact.end(), {"traffic_direction", "policy_match_type"});
  masks.push_back(compact);
  for (const auto& paths : masks) {
    ExpectSameAsProtobuf(full, paths);
    ExpectSameAsProtobuf(sparse, paths);
  }
  // No mask: everything kept.
  flow::Flow kept = full;
  FlowTrimmer().Trim(&kept);
  EXPECT_EQ(kept.SerializeAsString(), full.SerializeAsString());
}

}  // namespace
}  // namespace flowscope::observer
