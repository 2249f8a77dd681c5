#include "ringbuf/flow_ring.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "tests/ringbuf/test_record.h"

namespace flowscope::ringbuf {
namespace {

using ::testing::HasSubstr;
using Ring = FlowRing<TestRecord>;
using Reader = RingReader<TestRecord>;

std::unique_ptr<Ring> MakeRing(uint64_t capacity) {
  auto ring = Ring::Create(capacity);
  EXPECT_TRUE(ring.ok()) << ring.status();
  return std::move(ring).value();
}

// Writes records seq = first..first+n-1 with time = seq * 10.
void WriteSeq(Ring& ring, uint64_t first, uint64_t n) {
  for (uint64_t s = first; s < first + n; ++s) ring.Write(TestRecord::Make(s, s * 10));
  ring.Publish();
}

std::vector<uint64_t> ReadForward(Reader& reader) {
  std::vector<uint64_t> seqs;
  TestRecord r;
  while (reader.Next(&r) == ReadStatus::kRecord) seqs.push_back(r.seq);
  return seqs;
}

TEST(RingCapacityTest, AcceptsOnlyPowersOfTwoMinusOne) {
  for (int n = 1; n <= 24; ++n) {
    EXPECT_TRUE(ValidateCapacity((uint64_t{1} << n) - 1).ok()) << n;
  }
  for (uint64_t bad :
       {0ULL, 2ULL, 4ULL, 1000ULL, 4096ULL, 65536ULL, 1ULL << 24, (1ULL << 25) - 1}) {
    const absl::Status s = ValidateCapacity(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_THAT(std::string(s.message()), HasSubstr(absl::StrCat("ring capacity ", bad)));
  }
  EXPECT_THAT(std::string(ValidateCapacity(1000).message()),
              HasSubstr("nearest valid values are 511 and 1023"));
  EXPECT_THAT(std::string(ValidateCapacity(4096).message()),
              HasSubstr("nearest valid values are 4095 and 8191"));
  EXPECT_THAT(std::string(ValidateCapacity(0).message()), HasSubstr("nearest valid value is 1"));
  EXPECT_THAT(std::string(ValidateCapacity(1ULL << 24).message()),
              HasSubstr("largest valid value is 16777215"));
  EXPECT_FALSE(Ring::Create(100).ok());
  EXPECT_EQ(MakeRing(kDefaultRingCapacity)->Cap(), 65535u);
}

TEST(FlowRingTest, EmptyRing) {
  auto ring = MakeRing(7);
  EXPECT_EQ(ring->Len(), 0u);
  EXPECT_EQ(ring->Written(), 0u);
  EXPECT_FALSE(ring->OldestTime().has_value());
  EXPECT_FALSE(ring->NewestTime().has_value());
  EXPECT_EQ(ring->SeekTime(0), 0u);
  Reader reader(*ring, ring->OldestPosition());
  TestRecord r;
  EXPECT_EQ(reader.Next(&r), ReadStatus::kEnd);
  EXPECT_EQ(reader.Prev(&r), ReadStatus::kEnd);
  EXPECT_FALSE(reader.Wait(absl::Now() + absl::Milliseconds(1)));
}

TEST(FlowRingTest, NewestRecordIsReadable) {
  auto ring = MakeRing(7);
  ring->Write(TestRecord::Make(0, 0));
  EXPECT_EQ(ring->EndPosition(), 0u) << "written, not yet published";
  EXPECT_EQ(ring->Written(), 1u);
  ring->Publish();
  EXPECT_EQ(ring->Len(), 1u);
  EXPECT_EQ(ring->NewestTime(), 0u);
  Reader reader(*ring, ring->EndPosition() - 1);
  TestRecord r;
  ASSERT_EQ(reader.Next(&r), ReadStatus::kRecord);
  EXPECT_EQ(r.seq, 0u);
  EXPECT_TRUE(r.Valid());
  EXPECT_EQ(reader.Next(&r), ReadStatus::kEnd);
  WriteSeq(*ring, 1, 1);
  ASSERT_EQ(reader.Next(&r), ReadStatus::kRecord) << "the record written last is readable at once";
  EXPECT_EQ(r.seq, 1u);
}

TEST(FlowRingTest, WrapAroundKeepsTheNewestCapRecords) {
  auto ring = MakeRing(7);
  WriteSeq(*ring, 0, 20);
  EXPECT_EQ(ring->Len(), 7u);
  EXPECT_EQ(ring->Written(), 20u);
  EXPECT_EQ(ring->OldestPosition(), 13u);
  EXPECT_EQ(ring->OldestTime(), 130u);
  EXPECT_EQ(ring->NewestTime(), 190u);
  Reader reader(*ring, ring->OldestPosition());
  EXPECT_THAT(ReadForward(reader), ::testing::ElementsAre(13, 14, 15, 16, 17, 18, 19));
  EXPECT_EQ(reader.TakeLost(), 0u);
}

TEST(FlowRingTest, BackwardThenForward) {
  auto ring = MakeRing(7);
  WriteSeq(*ring, 0, 20);
  Reader reader(*ring, ring->EndPosition());
  TestRecord r;
  std::vector<uint64_t> back;
  while (reader.Prev(&r) == ReadStatus::kRecord) back.push_back(r.seq);
  EXPECT_THAT(back, ::testing::ElementsAre(19, 18, 17, 16, 15, 14, 13));
  EXPECT_EQ(reader.position(), 13u);
  // "last 3": walk back three, then read forward.
  reader.Seek(ring->EndPosition());
  for (int i = 0; i < 3; ++i) ASSERT_EQ(reader.Prev(&r), ReadStatus::kRecord);
  EXPECT_THAT(ReadForward(reader), ::testing::ElementsAre(17, 18, 19));
}

TEST(FlowRingTest, SeekTime) {
  auto ring = MakeRing(15);
  // times: 10, 20, 20, 20, 30, 40, 50
  for (uint64_t t : {10, 20, 20, 20, 30, 40, 50}) {
    ring->Write(TestRecord::Make(ring->Written(), t));
  }
  EXPECT_EQ(ring->SeekTime(0), ring->EndPosition()) << "nothing is readable before Publish()";
  ring->Publish();
  EXPECT_EQ(ring->SeekTime(20), 1u) << "exact: the first of equal times";
  EXPECT_EQ(ring->SeekTime(25), 4u) << "between: the next later record";
  EXPECT_EQ(ring->SeekTime(10), 0u);
  EXPECT_EQ(ring->SeekTime(5), 0u) << "before the first";
  EXPECT_EQ(ring->SeekTime(50), 6u);
  EXPECT_EQ(ring->SeekTime(51), ring->EndPosition()) << "after the last";

  // After wrapping, a time older than the oldest record held seeks to the oldest.
  auto wrapped = MakeRing(7);
  WriteSeq(*wrapped, 0, 100);  // times 0..990, oldest held 930
  EXPECT_EQ(wrapped->SeekTime(0), 93u);
  EXPECT_EQ(wrapped->SeekTime(955), 96u);
  EXPECT_EQ(wrapped->SeekTime(990), 99u);
  EXPECT_EQ(wrapped->SeekTime(991), 100u);
}

TEST(FlowRingTest, LappedReaderLearnsExactlyHowManyItLost) {
  auto ring = MakeRing(7);
  Reader reader(*ring, 0);
  WriteSeq(*ring, 0, 3);
  EXPECT_THAT(ReadForward(reader), ::testing::ElementsAre(0, 1, 2));
  WriteSeq(*ring, 3, 30);  // positions 3..32; the ring now holds 26..32
  TestRecord r;
  EXPECT_EQ(reader.Next(&r), ReadStatus::kLost);
  EXPECT_EQ(reader.TakeLost(), 23u);
  EXPECT_EQ(reader.TakeLost(), 0u);
  EXPECT_THAT(ReadForward(reader), ::testing::ElementsAre(26, 27, 28, 29, 30, 31, 32));

  // A reader that started before a full lap and a reader exactly at the oldest record.
  Reader early(*ring, 0);
  EXPECT_EQ(early.Next(&r), ReadStatus::kLost);
  EXPECT_EQ(early.TakeLost(), 26u);
  Reader at_oldest(*ring, ring->OldestPosition());
  ASSERT_EQ(at_oldest.Next(&r), ReadStatus::kRecord);
  EXPECT_EQ(r.seq, 26u);
}

TEST(FlowRingTest, LappedWhileReadingCountsEveryOverwrittenRecord) {
  auto ring = MakeRing(3);
  WriteSeq(*ring, 0, 3);
  Reader reader(*ring, 0);
  TestRecord r;
  ASSERT_EQ(reader.Next(&r), ReadStatus::kRecord);  // reader has seen Written() == 3
  WriteSeq(*ring, 3, 5);  // positions 3..7; the ring holds 5..7; the reader's end_ is stale
  uint64_t seen = 1;
  uint64_t lost = 0;
  while (true) {
    const ReadStatus s = reader.Next(&r);
    if (s == ReadStatus::kEnd) break;
    if (s == ReadStatus::kRecord) ++seen;
    lost += reader.TakeLost();
  }
  EXPECT_EQ(seen + lost, 8u);
  EXPECT_EQ(lost, 4u);
}

TEST(FlowRingTest, FollowerWaitsForTheNextWrite) {
  auto ring = MakeRing(7);
  Reader reader(*ring, ring->EndPosition());
  EXPECT_FALSE(reader.Wait(absl::Now() + absl::Milliseconds(5))) << "times out when idle";
  std::thread writer([&] { WriteSeq(*ring, 0, 1); });
  while (!reader.Wait(absl::InfiniteFuture())) {
  }
  writer.join();
  TestRecord r;
  ASSERT_EQ(reader.Next(&r), ReadStatus::kRecord);
  EXPECT_EQ(r.seq, 0u);
}

TEST(FlowRingTest, InterruptWakesAWaiterWithoutARecord) {
  auto ring = MakeRing(7);
  Reader reader(*ring, ring->EndPosition());
  std::atomic<bool> returned{false};
  bool got_record = true;
  std::thread waiter([&] {
    got_record = reader.Wait(absl::InfiniteFuture());
    returned = true;
  });
  // The interrupt may land before the waiter sleeps; repeat until it has returned.
  while (!returned) {
    ring->Interrupt();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  waiter.join();
  EXPECT_FALSE(got_record);
  EXPECT_EQ(ring->Written(), 0u);
}

}  // namespace
}  // namespace flowscope::ringbuf
