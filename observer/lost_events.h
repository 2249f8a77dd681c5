// LostEventLog: losses that happen outside any one stream — events the datapath could not
// reserve in the BPF ring buffer (PERF_EVENT_RING_BUFFER) — recorded by the daemon and picked
// up by every follow stream, which reports them in-stream at most once per second per source.
// Thread-safe.
#ifndef FLOWSCOPE_OBSERVER_LOST_EVENTS_H_
#define FLOWSCOPE_OBSERVER_LOST_EVENTS_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "flow/flow.pb.h"

namespace flowscope::observer {

class LostEventLog {
 public:
  struct Entry {
    uint64_t seq = 0;
    flow::LostEventSource source = flow::UNKNOWN_LOST_EVENT_SOURCE;
    uint64_t count = 0;
    absl::Time time;
  };

  void Add(flow::LostEventSource source, uint64_t count, absl::Time time);

  // Sequence number of the newest entry (0: none yet). A cheap atomic load.
  uint64_t seq() const { return seq_.load(std::memory_order_acquire); }

  // Entries newer than `after` (oldest first). Only the newest kKeep are kept.
  std::vector<Entry> Since(uint64_t after) const;

  static constexpr size_t kKeep = 1024;

 private:
  mutable absl::Mutex mu_;
  std::deque<Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::atomic<uint64_t> seq_{0};
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_LOST_EVENTS_H_
