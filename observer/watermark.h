// IngestWatermark: the drain thread's promise to the readers of the flow ring. Once Advance(t)
// has returned, every record written to the ring afterwards has a time of at least t (the
// parser raises earlier times to it), so a reader that has read everything published before
// it loaded the watermark may tell its client "nothing older than t will follow". Flow batch
// streams send it to the relay, which merges nodes in strict time order with it.
//
// One writer (the drain thread); any number of readers.
#ifndef FLOWSCOPE_OBSERVER_WATERMARK_H_
#define FLOWSCOPE_OBSERVER_WATERMARK_H_

#include <atomic>
#include <cstdint>

namespace flowscope::observer {

class IngestWatermark {
 public:
  // Never moves backwards. Call after the records it covers are published.
  void Advance(uint64_t time_ns) {
    uint64_t cur = ns_.load(std::memory_order_relaxed);
    while (time_ns > cur && !ns_.compare_exchange_weak(cur, time_ns, std::memory_order_release,
                                                       std::memory_order_relaxed)) {
    }
  }
  // Load before looking at the ring's end.
  uint64_t Get() const { return ns_.load(std::memory_order_acquire); }

 private:
  std::atomic<uint64_t> ns_{0};
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_WATERMARK_H_
