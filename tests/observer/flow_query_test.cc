// GetFlows positioning and limits (number / first / follow / since / until) over a ring filled
// with known records, and the aggregation of lost-record notices.
#include "observer/flow_query.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "bpf/flow_event.h"
#include "tests/testing/flow_records.h"

namespace flowscope::observer {
namespace {

using ::testing::ElementsAre;

constexpr uint64_t kT0 = 1'700'000'000'000'000'000ULL;
uint64_t TimeOf(uint64_t seq) { return kT0 + seq * 1'000'000; }  // 1 ms apart

class FlowQueryTest : public ::testing::Test {
 protected:
  FlowQueryTest() : table_("default"), builder_(table_, "node-1", nullptr, 1) {
    EndpointInfo a;
    a.ips = {"10.0.1.5"};
    a.namespace_name = "default";
    a.pod_name = "tiefighter";
    EndpointInfo b;
    b.ips = {"10.0.1.6"};
    b.namespace_name = "default";
    b.pod_name = "xwing";
    table_.Update({a, b});
  }

  void Fill(Ring& ring, uint64_t from, uint64_t n) {
    EndpointTable::Resolver res(table_);
    for (uint64_t s = from; s < from + n; ++s) {
      // Even sequence numbers from tiefighter, odd from xwing; the port carries the number.
      ring.Write(testing::DnsQueryRecord(TimeOf(s), s % 2 == 0 ? "10.0.1.5" : "10.0.1.6",
                                         "10.0.2.7", static_cast<uint16_t>(s), res));
    }
    ring.Publish();
  }

  FlowPredicate Pred(const std::string& whitelist = "") {
    google::protobuf::RepeatedPtrField<flow::FlowFilter> w, b;
    if (!whitelist.empty()) {
      EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(whitelist, w.Add()));
    }
    return std::move(FlowPredicate::Compile(w, b, table_, builder_)).value();
  }

  // Runs a non-follow query to its end; returns the sequence numbers delivered.
  std::vector<uint64_t> Run(const Ring& ring, QueryOptions o, const std::string& filter = "") {
    auto q = FlowQuery::Create(ring, o, Pred(filter));
    EXPECT_TRUE(q.ok()) << q.status();
    std::vector<uint64_t> seqs;
    FlowQuery::Item item;
    for (int guard = 0; guard < 100000; ++guard) {
      const auto step = q->Next(absl::Now(), &item);
      if (step == FlowQuery::Step::kFlow) seqs.push_back(item.record.sport);
      if (step == FlowQuery::Step::kEnd || step == FlowQuery::Step::kWait) break;
    }
    return seqs;
  }

  std::unique_ptr<Ring> MakeRing(uint64_t cap) { return std::move(Ring::Create(cap)).value(); }

  EndpointTable table_;
  FlowBuilder builder_;
};

std::vector<uint64_t> Range(uint64_t from, uint64_t to) {
  std::vector<uint64_t> v;
  for (uint64_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

TEST_F(FlowQueryTest, EmptyRingEndsAtOnceUnlessFollowing) {
  auto ring = MakeRing(127);
  EXPECT_TRUE(Run(*ring, {.number = 20}).empty());
  EXPECT_TRUE(Run(*ring, {.number = 5, .first = true}).empty());
  auto q = FlowQuery::Create(*ring, {.follow = true}, Pred());
  FlowQuery::Item item;
  EXPECT_EQ(q->Next(absl::Now(), &item), FlowQuery::Step::kWait);
}

TEST_F(FlowQueryTest, LastNFirstNAndAll) {
  auto ring = MakeRing(127);
  Fill(*ring, 0, 100);
  EXPECT_EQ(Run(*ring, {.number = 20}), Range(80, 100));
  EXPECT_EQ(Run(*ring, {.number = 3, .first = true}), Range(0, 3));
  EXPECT_EQ(Run(*ring, {.number = 0}), Range(0, 100)) << "number 0 without follow: everything";
  EXPECT_EQ(Run(*ring, {.number = 1000}), Range(0, 100));
  // Filters count: the last 3 flows from xwing (odd numbers).
  EXPECT_THAT(Run(*ring, {.number = 3}, R"(source_pod: "xwing")"), ElementsAre(95, 97, 99));
  EXPECT_THAT(Run(*ring, {.number = 2, .first = true}, R"(source_pod: "xwing")"),
              ElementsAre(1, 3));
  EXPECT_TRUE(Run(*ring, {.number = 2}, R"(source_pod: "nobody")").empty());
}

TEST_F(FlowQueryTest, AfterWrapTheOldestHeldRecordIsFirst) {
  auto ring = MakeRing(63);
  Fill(*ring, 0, 200);
  EXPECT_EQ(Run(*ring, {.number = 2, .first = true}), Range(137, 139));
  EXPECT_EQ(Run(*ring, {.number = 0}).size(), 63u);
  // A since older than the ring seeks to the oldest record.
  EXPECT_EQ(Run(*ring, {.number = 2, .since_ns = TimeOf(0)}), Range(137, 139));
}

TEST_F(FlowQueryTest, SinceTakesPrecedenceAndUntilEnds) {
  auto ring = MakeRing(127);
  Fill(*ring, 0, 100);
  EXPECT_EQ(Run(*ring, {.since_ns = TimeOf(90)}), Range(90, 100));
  // --since 5m --last 10 returns the OLDEST 10 after since.
  EXPECT_EQ(Run(*ring, {.number = 10, .since_ns = TimeOf(50)}), Range(50, 60));
  EXPECT_EQ(Run(*ring, {.since_ns = TimeOf(50), .until_ns = TimeOf(55)}), Range(50, 56));
  EXPECT_EQ(Run(*ring, {.since_ns = TimeOf(50) + 1}), Range(51, 100)) << "between two records";
  EXPECT_TRUE(Run(*ring, {.since_ns = TimeOf(100)}).empty()) << "after the last";
  EXPECT_EQ(Run(*ring, {.number = 0, .until_ns = TimeOf(4)}), Range(0, 5));
  EXPECT_EQ(Run(*ring, {.first = true, .until_ns = TimeOf(2)}), Range(0, 3));
}

TEST_F(FlowQueryTest, InvalidCombinations) {
  auto ring = MakeRing(7);
  auto q = FlowQuery::Create(*ring, {.first = true, .follow = true}, Pred());
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(q.status().message(), "first cannot be specified with follow");
  EXPECT_FALSE(FlowQuery::Create(*ring, {.since_ns = 10, .until_ns = 5}, Pred()).ok());
}

TEST_F(FlowQueryTest, FollowWithUntilEndsAtTheFirstLaterRecordOrOnceUntilHasPassed) {
  auto ring = MakeRing(127);
  Fill(*ring, 0, 10);
  FlowQuery::Item item;
  const absl::Time now = absl::FromUnixNanos(static_cast<int64_t>(TimeOf(10)));
  {
    // From record 5 on, until record 7: a later record ends the follow.
    auto q = FlowQuery::Create(
        *ring, {.follow = true, .since_ns = TimeOf(5), .until_ns = TimeOf(7)}, Pred());
    ASSERT_TRUE(q.ok());
    std::vector<uint64_t> got;
    FlowQuery::Step step;
    while ((step = q->Next(now, &item)) == FlowQuery::Step::kFlow) got.push_back(item.record.sport);
    EXPECT_EQ(step, FlowQuery::Step::kEnd);
    EXPECT_THAT(got, ElementsAre(5, 6, 7));
  }
  {
    // Caught up with `until` still ahead: wait; once it is past (and late records had their
    // time), the end.
    const uint64_t until = TimeOf(20);
    auto q = FlowQuery::Create(*ring, {.follow = true, .until_ns = until}, Pred());
    ASSERT_TRUE(q.ok());
    EXPECT_EQ(q->Next(now, &item), FlowQuery::Step::kWait);
    const absl::Time until_time = absl::FromUnixNanos(static_cast<int64_t>(until));
    EXPECT_EQ(q->Next(until_time + FlowQuery::kLateRecords / 2, &item), FlowQuery::Step::kWait);
    EXPECT_EQ(q->Next(until_time + 2 * FlowQuery::kLateRecords, &item), FlowQuery::Step::kEnd);
  }
}

TEST_F(FlowQueryTest, FollowStreamsNewRecordsAfterTheRewind) {
  auto ring = MakeRing(127);
  Fill(*ring, 0, 10);
  auto q = FlowQuery::Create(*ring, {.number = 3, .follow = true}, Pred());
  ASSERT_TRUE(q.ok());
  FlowQuery::Item item;
  std::vector<uint64_t> got;
  auto drain = [&] {
    while (true) {
      const auto s = q->Next(absl::Now(), &item);
      if (s != FlowQuery::Step::kFlow) return s;
      got.push_back(item.record.sport);
    }
  };
  EXPECT_EQ(drain(), FlowQuery::Step::kWait);
  EXPECT_THAT(got, ElementsAre(7, 8, 9));
  Fill(*ring, 10, 2);
  EXPECT_EQ(drain(), FlowQuery::Step::kWait);
  EXPECT_THAT(got, ElementsAre(7, 8, 9, 10, 11));
  EXPECT_EQ(q->delivered(), 5u) << "follow has no limit";

  // follow with number 0 starts at the newest position.
  auto fresh = FlowQuery::Create(*ring, {.follow = true}, Pred());
  EXPECT_EQ(fresh->Next(absl::Now(), &item), FlowQuery::Step::kWait);
  Fill(*ring, 12, 1);
  ASSERT_EQ(fresh->Next(absl::Now(), &item), FlowQuery::Step::kFlow);
  EXPECT_EQ(item.record.sport, 12);
}

TEST_F(FlowQueryTest, LostRecordsAreAggregatedAtMostOncePerInterval) {
  auto ring = MakeRing(7);
  auto q = FlowQuery::Create(*ring, {.follow = true}, Pred());
  FlowQuery::Item item;
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  ASSERT_EQ(q->Next(t0, &item), FlowQuery::Step::kWait);
  Fill(*ring, 0, 30);  // the reader is lapped: 23 lost, 7 held
  ASSERT_EQ(q->Next(t0, &item), FlowQuery::Step::kLost);
  EXPECT_EQ(item.lost.count, 23u);
  std::vector<uint64_t> got;
  FlowQuery::Step s;
  while ((s = q->Next(t0, &item)) == FlowQuery::Step::kFlow) got.push_back(item.record.sport);
  EXPECT_EQ(s, FlowQuery::Step::kWait);
  EXPECT_EQ(got, Range(23, 30));

  // Lapped again within the same second: held back, flows keep coming.
  Fill(*ring, 30, 20);
  got.clear();
  while ((s = q->Next(t0 + absl::Milliseconds(100), &item)) == FlowQuery::Step::kFlow) {
    got.push_back(item.record.sport);
  }
  EXPECT_EQ(s, FlowQuery::Step::kWait);
  EXPECT_EQ(got, Range(43, 50));
  // A second later the pending count goes out, once.
  ASSERT_EQ(q->Next(t0 + absl::Seconds(2), &item), FlowQuery::Step::kLost);
  EXPECT_EQ(item.lost.count, 13u);
  EXPECT_EQ(q->Next(t0 + absl::Seconds(2), &item), FlowQuery::Step::kWait);
  EXPECT_EQ(q->delivered(), 14u) << "lost notices do not count as flows";
}

TEST_F(FlowQueryTest, NonFollowQueryFlushesLostBeforeEnding) {
  auto ring = MakeRing(7);
  Fill(*ring, 0, 5);
  auto q = FlowQuery::Create(*ring, {.first = true}, Pred());
  FlowQuery::Item item;
  ASSERT_EQ(q->Next(absl::Now(), &item), FlowQuery::Step::kFlow);  // positions at 0, reads 0
  Fill(*ring, 5, 20);  // overwrites what the query had not read yet
  std::vector<FlowQuery::Step> steps;
  uint64_t lost = 0;
  FlowQuery::Step s;
  while ((s = q->Next(absl::Now(), &item)) != FlowQuery::Step::kEnd) {
    if (s == FlowQuery::Step::kLost) lost += item.lost.count;
    steps.push_back(s);
  }
  EXPECT_EQ(lost + q->delivered(), 25u);
}

}  // namespace
}  // namespace flowscope::observer

namespace flowscope::observer {
namespace {

TEST_F(FlowQueryTest, KernelLossesReachFollowStreamsOncePerIntervalPerSource) {
  auto ring = MakeRing(7);
  LostEventLog log;
  const absl::Time t0 = absl::FromUnixSeconds(2000);
  log.Add(flow::PERF_EVENT_RING_BUFFER, 99, t0);  // before the query: not its business
  auto q = FlowQuery::Create(*ring, {.follow = true, .lost_log = &log}, Pred());
  FlowQuery::Item item;
  ASSERT_EQ(q->Next(t0, &item), FlowQuery::Step::kWait);
  log.Add(flow::PERF_EVENT_RING_BUFFER, 5, t0);
  ASSERT_EQ(q->Next(t0, &item), FlowQuery::Step::kLost);
  EXPECT_EQ(item.lost.source, flow::PERF_EVENT_RING_BUFFER);
  EXPECT_EQ(item.lost.count, 5u);
  log.Add(flow::PERF_EVENT_RING_BUFFER, 2, t0 + absl::Milliseconds(10));
  log.Add(flow::PERF_EVENT_RING_BUFFER, 3, t0 + absl::Milliseconds(20));
  EXPECT_EQ(q->Next(t0 + absl::Milliseconds(30), &item), FlowQuery::Step::kWait) << "held back";
  ASSERT_EQ(q->Next(t0 + absl::Seconds(2), &item), FlowQuery::Step::kLost);
  EXPECT_EQ(item.lost.count, 5u) << "2 + 3, aggregated";
  EXPECT_EQ(item.lost.first, t0 + absl::Milliseconds(10));
  EXPECT_EQ(item.lost.last, t0 + absl::Milliseconds(20));
  // A non-follow query does not report them.
  auto hist = FlowQuery::Create(*ring, {.number = 5, .lost_log = &log}, Pred());
  log.Add(flow::PERF_EVENT_RING_BUFFER, 1, t0);
  EXPECT_EQ(hist->Next(t0 + absl::Seconds(5), &item), FlowQuery::Step::kEnd);
}

}  // namespace
}  // namespace flowscope::observer
