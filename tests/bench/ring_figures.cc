// Ring and drain figures: B2 (ring write cost with 0 and 8 following readers vs a plain array
// copy), B4 (--since seek in a full 1 M ring), and the raw BPF drain rate (the bare-counting
// baseline that B1 compares the observer's ingest with).
#include <bpf/libbpf.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <iostream>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "ringbuf/event_consumer.h"
#include "ringbuf/flow_ring.h"
#include "test_producer.skel.h"
#include "tests/bench/figures.h"
#include "tests/ringbuf/test_event.h"
#include "tests/ringbuf/test_record.h"
#include "tests/testing/bpf_env.h"

namespace flowscope::bench {
namespace {

using ringbuf::FlowRing;
using ringbuf::ReadStatus;
using ringbuf::RingReader;
using ringbuf::TestRecord;
using Clock = std::chrono::steady_clock;

template <typename T>
void Escape(T* p) {
  asm volatile("" : : "g"(p) : "memory");
}

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// CPU time of the calling thread: the writer's own cost, without the time it spends preempted
// while 8 readers share the machine's 2 cores with it.
double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

constexpr uint64_t kBigRing = (1u << 20) - 1;  // 1,048,575 records
constexpr uint64_t kWrites = 8'000'000;

// Writer-thread CPU ns per record to copy kWrites records into a preallocated array of the
// ring's size.
double ArrayCopyNs() {
  std::vector<TestRecord> array(kBigRing + 1);
  TestRecord rec = TestRecord::Make(0, 0);
  const double start = ThreadCpuSeconds();
  for (uint64_t i = 0; i < kWrites; ++i) {
    rec.seq = i;
    rec.time_ns = i;
    array[i & kBigRing] = rec;
    Escape(array.data());
  }
  return (ThreadCpuSeconds() - start) * 1e9 / kWrites;
}

// Writer-thread CPU ns per record for FlowRing::Write (publishing every 1,024 records, as the drain
// thread does per drained batch) with `followers` reader threads following the writer.
double RingWriteNs(int followers) {
  auto ring = std::move(FlowRing<TestRecord>::Create(kBigRing)).value();
  std::atomic<bool> done{false};
  std::vector<std::thread> readers;
  std::atomic<uint64_t> sink{0};
  for (int i = 0; i < followers; ++i) {
    readers.emplace_back([&] {
      RingReader<TestRecord> reader(*ring, ring->EndPosition());
      TestRecord r;
      uint64_t sum = 0;
      while (!done.load(std::memory_order_relaxed)) {
        const ReadStatus s = reader.Next(&r);
        if (s == ReadStatus::kRecord) {
          sum += r.seq;
        } else if (s == ReadStatus::kLost) {
          reader.TakeLost();
        } else {
          reader.Wait(absl::Now() + absl::Milliseconds(10));
        }
      }
      sink += sum;
    });
  }
  TestRecord rec = TestRecord::Make(0, 0);
  const double start = ThreadCpuSeconds();
  for (uint64_t i = 0; i < kWrites; ++i) {
    rec.seq = i;
    rec.time_ns = i;
    ring->Write(rec);
    if ((i & 1023) == 1023) ring->Publish();
  }
  const double ns = (ThreadCpuSeconds() - start) * 1e9 / kWrites;
  done = true;
  ring->Interrupt();
  for (auto& t : readers) t.join();
  return ns;
}

std::vector<FigureResult> RunB2(const Options& options) {
  std::vector<double> base;
  std::vector<double> zero;
  std::vector<double> eight;
  for (int run = 0; run < options.runs; ++run) {
    base.push_back(ArrayCopyNs());
    zero.push_back(RingWriteNs(0));
    eight.push_back(RingWriteNs(8));
  }
  return {
      MakeFigure("B2", "ring_write_ns_0_readers", "ns/record", zero, base,
                 {Target::AtMostTimesBaseline(2.0)}),
      MakeFigure("B2", "ring_write_ns_8_readers", "ns/record", eight, base,
                 {Target::AtMostTimesBaseline(3.0)}),
  };
}

std::vector<FigureResult> RunB4(const Options& options) {
  auto ring = std::move(FlowRing<TestRecord>::Create(kBigRing)).value();
  // A full ring (written 1.5 times over), 1 µs apart.
  const uint64_t total = kBigRing + kBigRing / 2;
  for (uint64_t i = 0; i < total; ++i) ring->Write(TestRecord::Make(i, 1'000'000'000 + i * 1000));
  ring->Publish();
  const uint64_t lo = *ring->OldestTime();
  const uint64_t hi = *ring->NewestTime();
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<uint64_t> dist(lo, hi);
  constexpr int kSeeks = 200'000;
  std::vector<uint64_t> targets(kSeeks);
  for (auto& t : targets) t = dist(rng);
  std::vector<double> us;
  for (int run = 0; run < options.runs; ++run) {
    uint64_t sum = 0;
    const auto start = Clock::now();
    for (uint64_t t : targets) sum += ring->SeekTime(t);
    us.push_back(SecondsSince(start) * 1e6 / kSeeks);
    Escape(&sum);
  }
  return {MakeFigure("B4", "since_seek_1m_ring", "us/seek", us, std::nullopt,
                     {Target::AtMost(10, "us")})};
}

struct SkelDeleter {
  void operator()(test_producer* s) const { test_producer__destroy(s); }
};

// Events/s a bare libbpf ring-buffer consumer (it only counts) drains while the BPF producer
// runs at full speed on the other core (BPF_PROG_TEST_RUN with a large repeat).
std::vector<FigureResult> RunRawDrain(const Options& options) {
  if (auto reason = testing::BpfUnavailableReason()) {
    std::cerr << "flowscope-bench: raw drain skipped: " << *reason << "\n";
    return {};
  }
  constexpr uint32_t kEvents = 4'000'000;
  std::vector<double> rates;
  std::vector<double> loss;
  for (int run = 0; run < options.runs; ++run) {
    std::unique_ptr<test_producer, SkelDeleter> skel(test_producer__open());
    if (!skel || bpf_map__set_max_entries(skel->maps.events, 1 << 24) != 0 ||
        test_producer__load(skel.get()) != 0) {
      std::cerr << "flowscope-bench: raw drain: cannot load the test producer\n";
      return {};
    }
    skel->bss->wakeup_every = 4096;  // the consumer busy-polls; per-event wake-ups only cost
    uint64_t count = 0;
    auto consumer = ringbuf::RingBufferConsumer::Create(
        bpf_map__fd(skel->maps.events), bpf_map__fd(skel->maps.lost_events), sizeof(test_event),
        [&count](absl::Span<const uint8_t>) { ++count; });
    if (!consumer.ok()) {
      std::cerr << "flowscope-bench: raw drain: " << consumer.status() << "\n";
      return {};
    }
    std::atomic<bool> produced{false};
    const auto start = Clock::now();
    std::thread producer([&] {
      auto r = testing::TestRun(bpf_program__fd(skel->progs.produce_ringbuf), testing::UdpPacket(),
                                kEvents);
      if (!r.ok()) std::cerr << "flowscope-bench: raw drain: " << r.status() << "\n";
      produced = true;
    });
    uint64_t lost = 0;
    while (true) {
      const bool finished = produced.load();
      (void)(*consumer)->Consume();  // busy-consume mode
      if (finished) {
        (void)(*consumer)->Consume();
        break;
      }
    }
    const double seconds = SecondsSince(start);
    producer.join();
    lost = *(*consumer)->TakeLost();
    rates.push_back(static_cast<double>(count) / seconds);
    loss.push_back(static_cast<double>(lost) / kEvents);
  }
  std::cerr << "flowscope-bench: raw drain: median share of events lost to a full ring buffer: "
            << Median(loss) << "\n";
  return {MakeFigure("B1", "raw_drain_events_per_s (B1 baseline)", "events/s", rates, std::nullopt,
                     {})};
}

}  // namespace

std::vector<Figure> RingFigures() {
  return {
      {"B2", "ring write ns/record, 0 and 8 following readers, vs a plain array copy", RunB2},
      {"B4", "--since seek in a full 1 M-record ring", RunB4},
      {"B1", "raw BPF ring-buffer drain (bare counting consumer)", RunRawDrain},
  };
}

}  // namespace flowscope::bench
