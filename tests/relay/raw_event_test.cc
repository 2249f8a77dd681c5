// The relay's encoded events and batches: read back as protobuf writes them, built byte for byte
// as protobuf would, and malformed bytes refused (at any cut, with any wrong key) — never a crash.
#include "relay/raw_event.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "api/grpc_util.h"
#include "flowscope/v1/flowscope.pb.h"
#include "observer/observer.pb.h"

namespace flowscope::relay {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'714'826'828);

::observer::GetFlowsResponse Flow(const std::string& node, int ms) {
  ::observer::GetFlowsResponse r;
  r.mutable_flow()->set_node_name(node);
  *r.mutable_flow()->mutable_time() = ToTimestamp(kT0 + absl::Milliseconds(ms));
  r.mutable_flow()->mutable_l4()->mutable_tcp()->set_destination_port(80);
  r.set_node_name(node);
  *r.mutable_time() = ToTimestamp(kT0 + absl::Milliseconds(ms));
  return r;
}

::flowscope::v1::FlowBatch SampleBatch() {
  ::flowscope::v1::FlowBatch b;
  *b.add_events() = Flow("node-a", 1);
  ::observer::GetFlowsResponse lost;
  lost.mutable_lost_events()->set_num_events_lost(7);
  lost.set_node_name("node-b");
  *lost.mutable_time() = ToTimestamp(kT0 + absl::Milliseconds(2));
  *b.add_events() = lost;
  ::observer::GetFlowsResponse notice;
  notice.mutable_node_status()->add_node_names("node-c");
  *b.add_events() = notice;                          // no time at all
  *b.add_events() = Flow(std::string(300, 'n'), 3);  // lengths over one byte
  *b.mutable_watermark() = ToTimestamp(kT0 + absl::Milliseconds(5));
  return b;
}

TEST(RawEventTest, ABatchReadsBackAsProtobufWroteIt) {
  const ::flowscope::v1::FlowBatch b = SampleBatch();
  auto bytes = std::make_shared<const std::string>(b.SerializeAsString());
  std::vector<RawEvent> events;
  std::optional<absl::Time> watermark;
  ASSERT_TRUE(ParseRawBatch(bytes, &events, &watermark));
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(watermark, kT0 + absl::Milliseconds(5));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(events[i].bytes(), b.events(i).SerializeAsString());
  EXPECT_TRUE(events[0].is_flow());
  EXPECT_EQ(events[0].node_name(), "node-a");
  EXPECT_EQ(events[0].time(), kT0 + absl::Milliseconds(1));
  EXPECT_EQ(events[0].flow(), b.events(0).flow().SerializeAsString());
  EXPECT_EQ(events[1].kind(), RawEvent::Kind::kLost);
  EXPECT_EQ(events[1].time(), kT0 + absl::Milliseconds(2));
  EXPECT_TRUE(events[2].is_node_status());
  EXPECT_EQ(events[2].time(), absl::UnixEpoch()) << "no time anywhere";
  EXPECT_EQ(events[3].node_name(), std::string(300, 'n'));

  // Built again from the events: what protobuf writes for the same batch.
  std::string rebuilt;
  for (const RawEvent& e : events) AppendBatchEvent(&rebuilt, e.bytes());
  AppendBatchWatermark(&rebuilt, *watermark);
  EXPECT_EQ(rebuilt, *bytes);

  // Events outlive the batch's other owners: they share its bytes.
  bytes.reset();
  EXPECT_EQ(events[3].node_name(), std::string(300, 'n'));

  std::vector<RawEvent> none;
  std::optional<absl::Time> no_watermark;
  EXPECT_TRUE(ParseRawBatch(std::make_shared<const std::string>(), &none, &no_watermark));
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(no_watermark.has_value());
}

TEST(RawEventTest, TimesFallBackToTheFlowsAndTheLastOneOfAOneofCounts) {
  ::observer::GetFlowsResponse r = Flow("a", 42);
  r.clear_time();
  std::optional<RawEvent> e = RawEvent::Parse(r.SerializeAsString());
  ASSERT_TRUE(e);
  EXPECT_EQ(e->time(), kT0 + absl::Milliseconds(42)) << "the flow's own time";

  // A flow, then a lost-events notice in the same oneof: the notice is what it is (protobuf's
  // rule), and unknown fields are carried along.
  std::string bytes = Flow("a", 1).SerializeAsString();
  ::observer::GetFlowsResponse lost;
  lost.mutable_lost_events()->set_num_events_lost(1);
  bytes += lost.SerializeAsString();
  bytes += std::string("\xf8\x01\x05", 3);  // field 31, varint 5: unknown here
  e = RawEvent::Parse(bytes);
  ASSERT_TRUE(e);
  EXPECT_EQ(e->kind(), RawEvent::Kind::kLost);
  EXPECT_TRUE(e->flow().empty());
  EXPECT_EQ(e->bytes(), bytes);
  ::observer::GetFlowsResponse decoded;
  ASSERT_TRUE(decoded.ParseFromString(bytes));
  EXPECT_TRUE(decoded.has_lost_events());
}

TEST(RawEventTest, MalformedBytesAreRefusedWhereverTheyBreak) {
  const std::string good = SampleBatch().SerializeAsString();
  // Every cut: refused, or (at a field boundary) the events before it. Never more.
  int refused = 0;
  for (size_t cut = 0; cut < good.size(); ++cut) {
    auto bytes = std::make_shared<const std::string>(good.substr(0, cut));
    std::vector<RawEvent> events;
    std::optional<absl::Time> watermark;
    if (!ParseRawBatch(bytes, &events, &watermark)) {
      ++refused;
      continue;
    }
    EXPECT_LE(events.size(), 4u);
    for (const RawEvent& e : events) EXPECT_LE(e.bytes().size(), cut);
  }
  EXPECT_GT(refused, static_cast<int>(good.size()) - 10) << "only field boundaries parse";

  auto refuses = [](const std::string& raw) {
    std::vector<RawEvent> events;
    std::optional<absl::Time> watermark;
    return !ParseRawBatch(std::make_shared<const std::string>(raw), &events, &watermark);
  };
  EXPECT_TRUE(refuses(std::string("\x08\x01", 2))) << "events as a varint";
  EXPECT_TRUE(refuses(std::string("\x0a\x05\x01", 3))) << "a length past the end";
  EXPECT_TRUE(refuses(std::string("\x0b\x0c", 2))) << "a group";
  EXPECT_TRUE(refuses(std::string("\x00\x00", 2))) << "field number 0";
  EXPECT_TRUE(refuses(std::string("\x0a\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff", 11)))
      << "a varint longer than ten bytes";
  EXPECT_TRUE(refuses(std::string("\x0a\x02\x08\x01", 4))) << "an event's flow as a varint";
  EXPECT_TRUE(refuses(std::string("\x0a\x04\xca\x3e\x01\x08", 6))) << "an event's time cut short";
  EXPECT_TRUE(refuses(std::string("\x12\x01\x08", 3))) << "a watermark cut short";
  EXPECT_FALSE(RawEvent::Parse(std::string("\x0a", 1)));
}

TEST(RawEventTest, ByteBuffersFlattenInOnePiece) {
  const std::string bytes = SampleBatch().SerializeAsString();
  grpc::Slice parts[] = {grpc::Slice(bytes.data(), 10), grpc::Slice(bytes.data() + 10, 1),
                         grpc::Slice(bytes.data() + 11, bytes.size() - 11)};
  EXPECT_EQ(FlattenByteBuffer(grpc::ByteBuffer(parts, 3)), bytes);
  EXPECT_EQ(FlattenByteBuffer(ToByteBuffer(bytes)), bytes);
  std::string taken = bytes;
  const grpc::ByteBuffer bb = TakeByteBuffer(&taken);
  EXPECT_TRUE(taken.empty());
  EXPECT_GE(taken.capacity(), bytes.size()) << "room for the next one";
  EXPECT_EQ(FlattenByteBuffer(bb), bytes);
}

// A full batch is taken over; a few bytes in a large room are copied, so a message waiting for a
// slow reader holds its size, not the room of a full batch (which the string keeps).
TEST(RawEventTest, TakenByteBuffersHoldTheirSizeNotTheirRoom) {
  std::string full(256 << 10, 'x');
  const char* const full_data = full.data();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(TakeByteBuffer(&full).Dump(&slices).ok());
  ASSERT_EQ(slices.size(), 1u);
  EXPECT_EQ(slices[0].begin(), reinterpret_cast<const uint8_t*>(full_data)) << "not copied";

  std::string small;
  small.reserve(1 << 20);
  small = "a few bytes";
  const char* const room = small.data();
  const grpc::ByteBuffer bb = TakeByteBuffer(&small);
  EXPECT_EQ(FlattenByteBuffer(bb), "a few bytes");
  ASSERT_TRUE(bb.Dump(&slices).ok());
  EXPECT_NE(slices[0].begin(), reinterpret_cast<const uint8_t*>(room)) << "copied";
  EXPECT_TRUE(small.empty());
  EXPECT_EQ(small.data(), room) << "the room is kept for the next batch";
}

}  // namespace
}  // namespace flowscope::relay
