// The BPF ring-buffer consumer against a real BPF program (test_producer.bpf.c) run with
// BPF_PROG_TEST_RUN: exactly the produced events arrive; reservation failures in a tiny ring
// buffer show up as lost counts; the perf-buffer fallback behaves the same.
#include "ringbuf/event_consumer.h"

#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include "test_producer.skel.h"
#include "tests/ringbuf/test_event.h"
#include "tests/testing/bpf_env.h"
#include "tests/testing/wait.h"

namespace flowscope::ringbuf {
namespace {

struct SkelDeleter {
  void operator()(test_producer* s) const { test_producer__destroy(s); }
};
using Skel = std::unique_ptr<test_producer, SkelDeleter>;

class EventConsumerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = testing::BpfUnavailableReason()) GTEST_SKIP() << *reason;
  }

  // Opens and loads the producer; `ringbuf_bytes` sets the ring buffer size.
  Skel Load(uint32_t ringbuf_bytes = 1 << 22) {
    Skel skel(test_producer__open());
    EXPECT_NE(skel, nullptr) << "test_producer__open: " << std::strerror(errno);
    if (!skel) return nullptr;
    EXPECT_EQ(bpf_map__set_max_entries(skel->maps.events, ringbuf_bytes), 0);
    const int err = test_producer__load(skel.get());
    EXPECT_EQ(err, 0) << "test_producer__load: " << std::strerror(-err);
    if (err != 0) return nullptr;
    return skel;
  }

  void Produce(bpf_program* prog, uint32_t repeat) {
    auto r = testing::TestRun(bpf_program__fd(prog), testing::UdpPacket(), repeat);
    ASSERT_TRUE(r.ok()) << r.status();
  }
};

// Collects events on the consuming thread; `count` can be watched from others.
struct Collector {
  std::vector<test_event> events;
  std::atomic<uint64_t> count{0};
  uint64_t misaligned = 0;

  EventCallback Callback() {
    return [this](absl::Span<const uint8_t> ev) {
      if (reinterpret_cast<uintptr_t>(ev.data()) % 8 != 0) ++misaligned;
      test_event e;
      std::memcpy(&e, ev.data(), sizeof e);
      events.push_back(e);
      count.fetch_add(1, std::memory_order_release);
    };
  }
};

void ExpectSequence(const std::vector<test_event>& events, uint64_t first, uint64_t n) {
  ASSERT_EQ(events.size(), n);
  for (uint64_t i = 0; i < n; ++i) {
    ASSERT_EQ(events[i].seq, first + i) << "event " << i;
    ASSERT_EQ(events[i].magic, FLOWSCOPE_TEST_EVENT_MAGIC);
    ASSERT_EQ(events[i].len, 64u);
  }
}

bool WaitForCount(const std::atomic<uint64_t>& count, uint64_t n) {
  return flowscope::testing::WaitUntil([&] { return count.load(std::memory_order_acquire) >= n; },
                                       absl::Seconds(30));
}

TEST_F(EventConsumerTest, DeliversExactlyTheEventsProduced) {
  Skel skel = Load();
  ASSERT_TRUE(skel);
  Collector got;
  auto consumer = RingBufferConsumer::Create(bpf_map__fd(skel->maps.events),
                                             bpf_map__fd(skel->maps.lost_events),
                                             sizeof(test_event), got.Callback());
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  absl::Status run_status;
  std::thread drain([&] { run_status = (*consumer)->Run(absl::Milliseconds(50)); });

  constexpr uint32_t kEvents = 20000;
  Produce(skel->progs.produce_ringbuf, kEvents);
  EXPECT_TRUE(WaitForCount(got.count, kEvents));
  (*consumer)->Stop();
  drain.join();
  EXPECT_TRUE(run_status.ok()) << run_status;

  ExpectSequence(got.events, 0, kEvents);
  EXPECT_EQ(got.misaligned, 0u);
  EXPECT_EQ((*consumer)->stats().delivered, kEvents);
  EXPECT_EQ((*consumer)->stats().malformed, 0u);
  EXPECT_EQ(*(*consumer)->TakeLost(), 0u);
}

TEST_F(EventConsumerTest, TinyRingBufferReportsReservationFailuresAsLost) {
  Skel skel = Load(4096);
  ASSERT_TRUE(skel);
  Collector got;
  auto consumer = RingBufferConsumer::Create(bpf_map__fd(skel->maps.events),
                                             bpf_map__fd(skel->maps.lost_events),
                                             sizeof(test_event), got.Callback());
  ASSERT_TRUE(consumer.ok()) << consumer.status();

  constexpr uint32_t kEvents = 5000;
  Produce(skel->progs.produce_ringbuf, kEvents);  // nobody drains meanwhile
  auto n = (*consumer)->Consume();
  ASSERT_TRUE(n.ok()) << n.status();
  auto lost = (*consumer)->TakeLost();
  ASSERT_TRUE(lost.ok()) << lost.status();

  EXPECT_GT(*n, 0);
  EXPECT_GT(*lost, 0u);
  EXPECT_EQ(static_cast<uint64_t>(*n) + *lost, kEvents);
  // What arrived is the start of the sequence, in order: the ring filled, then refused.
  ExpectSequence(got.events, 0, static_cast<uint64_t>(*n));
  EXPECT_EQ(*(*consumer)->TakeLost(), 0u) << "TakeLost reports a delta";

  // After draining there is room again.
  Produce(skel->progs.produce_ringbuf, 10);
  EXPECT_EQ(*(*consumer)->Consume(), 10);
  EXPECT_EQ(*(*consumer)->TakeLost(), 0u);
  EXPECT_EQ(got.events.back().seq, kEvents + 9);
}

TEST_F(EventConsumerTest, ShortEventsAreCountedAndSkipped) {
  Skel skel = Load();
  ASSERT_TRUE(skel);
  Collector got;
  auto consumer = RingBufferConsumer::Create(bpf_map__fd(skel->maps.events), -1, sizeof(test_event),
                                             got.Callback());
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  skel->bss->emit_short = 1;
  Produce(skel->progs.produce_ringbuf, 7);
  skel->bss->emit_short = 0;
  Produce(skel->progs.produce_ringbuf, 3);
  EXPECT_EQ(*(*consumer)->Consume(), 3);
  EXPECT_EQ((*consumer)->stats().malformed, 7u);
  ExpectSequence(got.events, 0, 3);
}

TEST_F(EventConsumerTest, StopWakesABlockedPoll) {
  Skel skel = Load();
  ASSERT_TRUE(skel);
  Collector got;
  auto consumer = RingBufferConsumer::Create(bpf_map__fd(skel->maps.events), -1, sizeof(test_event),
                                             got.Callback());
  ASSERT_TRUE(consumer.ok()) << consumer.status();
  std::atomic<bool> returned{false};
  std::thread drain([&] {
    EXPECT_TRUE((*consumer)->Run(absl::InfiniteDuration()).ok());
    returned = true;
  });
  (*consumer)->Stop();
  drain.join();
  EXPECT_TRUE(returned);
  EXPECT_TRUE((*consumer)->stopped());
}

// Keeps the calling thread on the CPU it runs on for its lifetime. A perf buffer is one ring
// per CPU and the kernel writes a ring's lost-samples record on that CPU's next sample: a
// burst and the sample after it must come from the same CPU.
class PinToThisCpu {
 public:
  PinToThisCpu() {
    pthread_getaffinity_np(pthread_self(), sizeof(old_), &old_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(sched_getcpu(), &one);
    pinned_ = pthread_setaffinity_np(pthread_self(), sizeof(one), &one) == 0;
  }
  ~PinToThisCpu() { pthread_setaffinity_np(pthread_self(), sizeof(old_), &old_); }
  bool pinned() const { return pinned_; }

 private:
  cpu_set_t old_;
  bool pinned_ = false;
};

TEST_F(EventConsumerTest, PerfBufferFallbackDeliversAlignedEventsAndCountsLoss) {
  Skel skel = Load();
  ASSERT_TRUE(skel);
  PinToThisCpu pin;
  ASSERT_TRUE(pin.pinned());
  Collector got;
  auto consumer = PerfBufferConsumer::Create(bpf_map__fd(skel->maps.perf_events), 1,
                                             sizeof(test_event), got.Callback());
  ASSERT_TRUE(consumer.ok()) << consumer.status();

  // A few events fit: all arrive, aligned for the callback.
  Produce(skel->progs.produce_perf, 20);
  ASSERT_TRUE((*consumer)->Poll(absl::Seconds(5)).ok());
  ExpectSequence(got.events, 0, 20);
  EXPECT_EQ(got.misaligned, 0u);

  // Far more than one page holds: the kernel drops samples and reports how many, in a record
  // it writes once there is room again (so produce one more after draining).
  constexpr uint32_t kBurst = 5000;
  Produce(skel->progs.produce_perf, kBurst);
  auto first = (*consumer)->Consume();
  ASSERT_TRUE(first.ok()) << first.status();
  Produce(skel->progs.produce_perf, 1);
  auto second = (*consumer)->Consume();
  ASSERT_TRUE(second.ok()) << second.status();
  const uint64_t lost = *(*consumer)->TakeLost();
  EXPECT_GT(lost, 0u);
  EXPECT_EQ(static_cast<uint64_t>(*first + *second) + lost, kBurst + 1u);
  EXPECT_EQ(got.events.back().seq, 20u + kBurst);
}

TEST(EventConsumerErrorsTest, BadMapFdIsAClearError) {
  if (auto reason = testing::BpfUnavailableReason()) GTEST_SKIP() << *reason;
  auto c = RingBufferConsumer::Create(12345, -1, 8, [](absl::Span<const uint8_t>) {});
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("ring_buffer__new"), absl::string_view::npos) << c.status();
  auto p = PerfBufferConsumer::Create(-1, 3, 8, [](absl::Span<const uint8_t>) {});
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace flowscope::ringbuf
