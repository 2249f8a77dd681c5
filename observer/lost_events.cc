#include "observer/lost_events.h"

namespace flowscope::observer {

void LostEventLog::Add(flow::LostEventSource source, uint64_t count, absl::Time time) {
  if (count == 0) return;
  absl::MutexLock lock(&mu_);
  const uint64_t seq = seq_.load(std::memory_order_relaxed) + 1;
  entries_.push_back({seq, source, count, time});
  if (entries_.size() > kKeep) entries_.pop_front();
  seq_.store(seq, std::memory_order_release);
}

std::vector<LostEventLog::Entry> LostEventLog::Since(uint64_t after) const {
  absl::ReaderMutexLock lock(&mu_);
  std::vector<Entry> out;
  for (const Entry& e : entries_) {
    if (e.seq > after) out.push_back(e);
  }
  return out;
}

}  // namespace flowscope::observer
