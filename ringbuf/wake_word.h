// WakeWord: lets threads sleep until another thread signals, with a deadline, where the
// signalling side costs one atomic load when nobody sleeps (Linux futex). Thread-safe.
//
// Waiter:  uint32_t e = w.Prepare();
//          if (condition()) { w.Cancel(); return; }
//          w.WaitUntil(e, deadline);   // then re-check condition()
// Signaller: make condition() true, then w.WakeAll().
#ifndef FLOWSCOPE_RINGBUF_WAKE_WORD_H_
#define FLOWSCOPE_RINGBUF_WAKE_WORD_H_

#include <atomic>
#include <cstdint>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace flowscope::ringbuf {

class WakeWord {
 public:
  // Registers the caller as a waiter and returns the epoch to wait on.
  uint32_t Prepare();
  // Unregisters after Prepare() when the caller decides not to wait.
  void Cancel();
  // Sleeps until WakeAll() moves the epoch past `epoch` or `deadline` passes; unregisters.
  // Returns false on timeout. May return true spuriously.
  bool WaitUntil(uint32_t epoch, absl::Time deadline);
  // Wakes every registered waiter. One locked read-modify-write when there are none.
  void WakeAll();

 private:
  std::atomic<uint32_t> epoch_{0};
  std::atomic<uint32_t> waiters_{0};
};

}  // namespace flowscope::ringbuf

#endif  // FLOWSCOPE_RINGBUF_WAKE_WORD_H_
