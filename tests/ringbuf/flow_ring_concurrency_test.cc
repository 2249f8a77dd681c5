// One writer at full speed and 8 readers (followers and slow readers) for a bounded time: every
// reader sees records in order, never twice, never torn, and records seen + records reported
// lost = records written since it started. Runs under ThreadSanitizer too (label "tsan").
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "ringbuf/flow_ring.h"
#include "tests/ringbuf/test_record.h"

namespace flowscope::ringbuf {
namespace {

struct ReaderStats {
  uint64_t start = 0;
  uint64_t seen = 0;
  uint64_t lost = 0;
  uint64_t out_of_order = 0;
  uint64_t torn = 0;
  uint64_t lost_events = 0;
};

TEST(FlowRingConcurrencyTest, OneWriterEightReaders) {
  auto ring = std::move(FlowRing<TestRecord>::Create(1023)).value();
  std::atomic<bool> writer_done{false};
  std::atomic<int> readers_ready{0};
  constexpr int kReaders = 8;
  std::vector<ReaderStats> stats(kReaders);

  auto read_loop = [&](int id) {
    const bool follower = id % 2 == 0;        // even: follow with Wait; odd: slow, poll with yields
    const bool stalled = id == kReaders - 1;  // reads nothing until lapped for sure
    RingReader<TestRecord> reader(*ring, ring->EndPosition());
    ReaderStats& st = stats[static_cast<size_t>(id)];
    st.start = reader.position();
    uint64_t expected = st.start;
    readers_ready.fetch_add(1);
    if (stalled) {
      // Waits until the writer has gone round the ring twice past where this reader stands.
      while (ring->Written() < st.start + 2 * (ring->Cap() + 1)) std::this_thread::yield();
    }
    TestRecord r;
    uint64_t spin = 0;
    while (true) {
      const ReadStatus s = reader.Next(&r);
      if (s == ReadStatus::kRecord) {
        if (!r.Valid()) ++st.torn;
        if (r.seq != expected) ++st.out_of_order;
        expected = r.seq + 1;
        ++st.seen;
        if (!follower) {
          // A slow consumer: a little work per record, so the writer laps it.
          for (int i = 0; i < 200; ++i) spin = spin * 31 + r.payload[i % 12];
        }
        continue;
      }
      if (s == ReadStatus::kLost) {
        const uint64_t n = reader.TakeLost();
        st.lost += n;
        ++st.lost_events;
        expected += n;
        continue;
      }
      // kEnd: stop once the writer is done and everything has been read.
      if (writer_done.load() && reader.position() == ring->EndPosition()) break;
      if (follower) {
        reader.Wait(absl::Now() + absl::Milliseconds(20));
      } else {
        std::this_thread::yield();
      }
    }
    if (spin == 42) std::abort();  // keep the work
  };

  std::vector<std::thread> threads;
  for (int i = 0; i < kReaders; ++i) threads.emplace_back(read_loop, i);
  while (readers_ready.load() < kReaders) std::this_thread::yield();

  // Bounded in count and time: at most 2 M records or 400 ms, whichever comes first.
  const absl::Time stop = absl::Now() + absl::Milliseconds(400);
  uint64_t seq = ring->Written();
  // (And at least four ring-fulls, so the stalled reader is lapped however slow the machine.)
  while (seq < 2'000'000) {
    for (int i = 0; i < 64; ++i, ++seq) ring->Write(TestRecord::Make(seq, seq));
    ring->Publish();
    if ((seq & 4095) == 0 && absl::Now() > stop && seq >= 4 * (ring->Cap() + 1)) break;
  }
  writer_done = true;
  ring->Interrupt();
  for (auto& t : threads) t.join();

  const uint64_t written = ring->Written();
  uint64_t total_lost = 0;
  for (int i = 0; i < kReaders; ++i) {
    const ReaderStats& st = stats[static_cast<size_t>(i)];
    SCOPED_TRACE(testing::Message() << "reader " << i);
    EXPECT_EQ(st.torn, 0u);
    EXPECT_EQ(st.out_of_order, 0u);
    EXPECT_EQ(st.seen + st.lost, written - st.start);
    total_lost += st.lost;
  }
  const ReaderStats& stalled = stats[kReaders - 1];
  EXPECT_GT(stalled.lost, 0u) << "a reader that stood still while the writer went round twice";
  EXPECT_GE(stalled.lost_events, 1u);
  RecordProperty("written", static_cast<int>(written));
  RecordProperty("lost_by_all_readers", static_cast<int>(total_lost));
}

}  // namespace
}  // namespace flowscope::ringbuf
