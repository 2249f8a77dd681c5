// Drains events that a BPF program writes into a BPF_MAP_TYPE_RINGBUF map (or, on kernels
// without it, a BPF_MAP_TYPE_PERF_EVENT_ARRAY) and hands each one to a callback, on the thread
// that calls Poll/Consume/Run. Stop() may be called from any other thread.
//
//   auto consumer = RingBufferConsumer::Create(
//       bpf_map__fd(skel->maps.events), bpf_map__fd(skel->maps.lost_events),
//       sizeof(struct flow_event), [&](absl::Span<const uint8_t> ev) { parser.Add(ev); });
//   std::thread drain([&] { consumer.value()->Run(absl::Milliseconds(100)); });
//   ...
//   consumer.value()->Stop();  drain.join();
//
// The callback receives events of at least `min_event_size` bytes, 8-byte aligned (copied out
// when the kernel's buffer position is not). Shorter events are counted as malformed and
// skipped. Kernel-side losses (a failed reservation in the BPF program, or perf samples the
// kernel dropped) are reported by TakeLost().
#ifndef FLOWSCOPE_RINGBUF_EVENT_CONSUMER_H_
#define FLOWSCOPE_RINGBUF_EVENT_CONSUMER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

struct ring_buffer;
struct perf_buffer;

namespace flowscope::ringbuf {

using EventCallback = std::function<void(absl::Span<const uint8_t> event)>;

struct ConsumerStats {
  uint64_t delivered = 0;  // events passed to the callback
  uint64_t malformed = 0;  // events shorter than the minimum size, skipped
};

class EventConsumer {
 public:
  virtual ~EventConsumer();
  EventConsumer(const EventConsumer&) = delete;
  EventConsumer& operator=(const EventConsumer&) = delete;

  // Waits up to `timeout` (epoll) for events or Stop(), then delivers every available event.
  // Returns how many were delivered.
  absl::StatusOr<int> Poll(absl::Duration timeout);

  // Delivers every available event without waiting (busy-consume mode for benchmarks).
  virtual absl::StatusOr<int> Consume() = 0;

  // Polls until Stop() is called; returns the first error, or OK after Stop().
  absl::Status Run(absl::Duration poll_timeout);

  // Makes Run() return and a blocked Poll() wake up. Any thread; idempotent.
  void Stop();
  bool stopped() const { return stop_.load(std::memory_order_acquire); }

  // Events the kernel side lost since the last call.
  virtual absl::StatusOr<uint64_t> TakeLost() = 0;

  // Counters; read on the consuming thread.
  const ConsumerStats& stats() const { return stats_; }

 protected:
  explicit EventConsumer(size_t min_event_size, EventCallback callback);

  // Builds the epoll set over libbpf's own epoll fd and the stop eventfd.
  absl::Status InitEpoll(int libbpf_epoll_fd);

  // Size check, alignment, callback.
  void Deliver(const void* data, size_t size);

 private:
  const size_t min_event_size_;
  EventCallback callback_;
  ConsumerStats stats_;
  std::vector<uint64_t> scratch_;  // aligned copy for misaligned events
  int epoll_fd_ = -1;
  int stop_fd_ = -1;
  std::atomic<bool> stop_{false};
};

// BPF ring buffer (BPF_MAP_TYPE_RINGBUF), with the program's per-CPU lost-event counter.
class RingBufferConsumer final : public EventConsumer {
 public:
  // `lost_counter_fd` is a BPF_MAP_TYPE_PERCPU_ARRAY with one __u64 at key 0 that the program
  // increments when bpf_ringbuf_reserve() fails; -1 if there is none.
  static absl::StatusOr<std::unique_ptr<RingBufferConsumer>> Create(int ringbuf_fd,
                                                                    int lost_counter_fd,
                                                                    size_t min_event_size,
                                                                    EventCallback callback);
  ~RingBufferConsumer() override;

  absl::StatusOr<int> Consume() override;
  absl::StatusOr<uint64_t> TakeLost() override;

 private:
  RingBufferConsumer(int lost_counter_fd, size_t min_event_size, EventCallback callback);
  static int OnSample(void* ctx, void* data, size_t size);

  ring_buffer* rb_ = nullptr;
  const int lost_counter_fd_;
  uint64_t lost_reported_ = 0;  // counter sum at the last TakeLost()
  std::vector<uint64_t> per_cpu_;
};

// Perf event array fallback: one mmap'ed buffer per CPU; the kernel reports dropped samples.
class PerfBufferConsumer final : public EventConsumer {
 public:
  static absl::StatusOr<std::unique_ptr<PerfBufferConsumer>> Create(int perf_map_fd,
                                                                    size_t pages_per_cpu,
                                                                    size_t min_event_size,
                                                                    EventCallback callback);
  ~PerfBufferConsumer() override;

  absl::StatusOr<int> Consume() override;
  absl::StatusOr<uint64_t> TakeLost() override;

 private:
  PerfBufferConsumer(size_t min_event_size, EventCallback callback);
  static void OnSample(void* ctx, int cpu, void* data, uint32_t size);
  static void OnLost(void* ctx, int cpu, unsigned long long count);  // NOLINT(runtime/int)

  perf_buffer* pb_ = nullptr;
  uint64_t lost_ = 0;
};

}  // namespace flowscope::ringbuf

#endif  // FLOWSCOPE_RINGBUF_EVENT_CONSUMER_H_
