// Clock: where the daemons' services read the time — stream timing, lost-event aggregation,
// status figures, relay peer timeouts and merge decisions — so that tests move time on
// instead of sleeping for it. Waits still happen in real time, in short slices, and look at
// the clock again after each.
//
//   const Clock& clock = options.clock ? *options.clock : Clock::Real();
//   absl::Time now = clock.Now();
//
//   ManualClock clock(absl::Now());  // in a test
//   clock.Advance(absl::Minutes(2));
//
// Thread-safety: Now() and Advance() from any thread.
#ifndef FLOWSCOPE_API_CLOCK_H_
#define FLOWSCOPE_API_CLOCK_H_

#include <algorithm>
#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace flowscope {

class Clock {
 public:
  virtual ~Clock() = default;
  virtual absl::Time Now() const = 0;

  // The system's wall clock.
  static const Clock& Real();
};

// A clock that moves only when told to.
class ManualClock final : public Clock {
 public:
  explicit ManualClock(absl::Time start) : ns_(absl::ToUnixNanos(start)) {}
  absl::Time Now() const override {
    return absl::FromUnixNanos(ns_.load(std::memory_order_acquire));
  }
  void Advance(absl::Duration d) {
    ns_.fetch_add(absl::ToInt64Nanoseconds(d), std::memory_order_acq_rel);
  }

 private:
  std::atomic<int64_t> ns_;
};

inline const Clock& Clock::Real() {
  class RealClock final : public Clock {
   public:
    absl::Time Now() const override { return absl::Now(); }
  };
  static const RealClock real;
  return real;
}

// How long to wait in real time before looking at `clock` again for `until`: what is left on
// it, at most `slice` (a clock other than the real one may jump while nobody waits).
inline absl::Duration WaitSlice(const Clock& clock, absl::Time until, absl::Duration slice) {
  const absl::Duration left = until - clock.Now();
  return std::max(absl::ZeroDuration(), std::min(left, slice));
}

}  // namespace flowscope

#endif  // FLOWSCOPE_API_CLOCK_H_
