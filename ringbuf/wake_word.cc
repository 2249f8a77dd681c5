#include "ringbuf/wake_word.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <ctime>

namespace flowscope::ringbuf {
namespace {

long Futex(std::atomic<uint32_t>* addr, int op, uint32_t val, const timespec* timeout) {
  static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t));
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(addr), op, val, timeout, nullptr, 0);
}

}  // namespace

uint32_t WakeWord::Prepare() {
  // Read-modify-writes of waiters_ are totally ordered: either WakeAll()'s comes later and sees
  // this waiter, or it comes earlier and this one synchronizes with it, so the caller's check
  // of its condition after Prepare() sees what the signaller stored before WakeAll().
  waiters_.fetch_add(1, std::memory_order_seq_cst);
  return epoch_.load(std::memory_order_acquire);
}

void WakeWord::Cancel() { waiters_.fetch_sub(1, std::memory_order_release); }

bool WakeWord::WaitUntil(uint32_t epoch, absl::Time deadline) {
  bool woken = true;
  if (epoch_.load(std::memory_order_acquire) == epoch) {
    if (deadline == absl::InfiniteFuture()) {
      Futex(&epoch_, FUTEX_WAIT_PRIVATE, epoch, nullptr);
    } else {
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) {
        woken = false;
      } else {
        const timespec ts = absl::ToTimespec(left);
        if (Futex(&epoch_, FUTEX_WAIT_PRIVATE, epoch, &ts) != 0 && errno == ETIMEDOUT) {
          woken = false;
        }
      }
    }
  }
  waiters_.fetch_sub(1, std::memory_order_relaxed);
  return woken;
}

void WakeWord::WakeAll() {
  // An RMW rather than a load (see Prepare()); one locked instruction per call.
  if (waiters_.fetch_add(0, std::memory_order_seq_cst) == 0) return;
  epoch_.fetch_add(1, std::memory_order_release);
  Futex(&epoch_, FUTEX_WAKE_PRIVATE, INT_MAX, nullptr);
}

}  // namespace flowscope::ringbuf
