// FlowRing: the observer's bounded in-memory store of compact flow records. One writer thread
// (the drain thread) appends; any number of reader threads follow it through RingReader, each at
// its own absolute 64-bit position. The writer never blocks and never takes a lock.
//
//   auto ring = FlowRing<FlowRecord>::Create(65535).value();
//   ring->Write(record);              // writer thread only
//   ring->Publish();                  // after a batch: wakes waiting followers (if any)
//
//   RingReader<FlowRecord> reader(*ring, ring->SeekTime(since_ns));   // any thread
//   FlowRecord r;
//   while (true) {
//     ReadStatus s = reader.Next(&r);
//     if (s == ReadStatus::kRecord) { ... }
//     else if (s == ReadStatus::kLost) { report(reader.TakeLost()); }
//     else if (!follow || cancelled) break;                  // kEnd
//     else reader.Wait(deadline);                             // then loop and re-check
//   }
//
// Capacity is 2^n - 1 (n in 1..24); the ring has 2^n slots and the spare one is where the writer
// writes next, so the oldest readable record is never the one being overwritten. Every slot has
// a sequence number (a seqlock): a reader copies the record and checks the sequence before and
// after, so a torn record is never returned; a reader the writer has lapped learns exactly how
// many records it lost and moves to the oldest record still present.
#ifndef FLOWSCOPE_RINGBUF_FLOW_RING_H_
#define FLOWSCOPE_RINGBUF_FLOW_RING_H_

#include <algorithm>
#include <atomic>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <type_traits>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "ringbuf/ring_capacity.h"
#include "ringbuf/wake_word.h"

namespace flowscope::ringbuf {

// A record the ring can hold: trivially copyable, with a `time_ns` (wall-clock UTC nanoseconds)
// that the writer keeps non-decreasing.
template <typename R>
concept RingRecord = std::is_trivially_copyable_v<R> && std::is_default_constructible_v<R> &&
    requires(const R& r) {
  { r.time_ns } -> std::convertible_to<uint64_t>;
};

enum class ReadStatus {
  kRecord,  // a record was copied out and the position advanced
  kEnd,     // nothing more to read in this direction (caught up with the writer, or at the start)
  kLost,    // the writer lapped this reader; TakeLost() tells how many records were skipped
};

template <RingRecord R>
class FlowRing {
 public:
  using Record = R;

  // Fails with InvalidArgument (naming the nearest valid values) unless capacity is 2^n - 1 for
  // n in 1..24.
  static absl::StatusOr<std::unique_ptr<FlowRing>> Create(uint64_t capacity) {
    if (absl::Status s = ValidateCapacity(capacity); !s.ok()) return s;
    return std::unique_ptr<FlowRing>(new FlowRing(capacity + 1));
  }

  FlowRing(const FlowRing&) = delete;
  FlowRing& operator=(const FlowRing&) = delete;

  // --- writer thread only --------------------------------------------------------------------

  // Stores one record. Wait-free; never blocks. Readers see it after the next Publish().
  void Write(const R& record) {
    const uint64_t pos = written_.load(std::memory_order_relaxed);
    Slot& slot = slots_[pos & mask_];
    slot.seq.store(2 * pos + 1, std::memory_order_relaxed);  // odd: being written
    uint64_t words[kWords] = {};
    std::memcpy(words, &record, sizeof(R));
    // Release stores (plain moves on x86): a reader that sees any new word also sees the odd
    // sequence number stored before it, so its second sequence check fails. No fences, which
    // ThreadSanitizer cannot model.
    for (size_t i = 0; i < kWords; ++i) slot.words[i].store(words[i], std::memory_order_release);
    slot.seq.store(2 * pos + 2, std::memory_order_release);  // even: holds position `pos`
    written_.store(pos + 1, std::memory_order_release);
  }

  // Makes every record written so far readable, including the newest, and wakes readers
  // blocked in Wait(). Call it once per batch of writes: readers that have caught up look only
  // at the published position, which changes once per batch, so they never contend with the
  // writer on the slot it is writing or on a per-record counter.
  void Publish() {
    published_.store(written_.load(std::memory_order_relaxed), std::memory_order_release);
    wake_.WakeAll();
  }

  // --- any thread ----------------------------------------------------------------------------

  uint64_t Cap() const { return mask_; }
  // Records written since creation, and how many of them are published (readable).
  uint64_t Written() const { return written_.load(std::memory_order_acquire); }
  uint64_t Published() const { return published_.load(std::memory_order_acquire); }
  // Records currently held: min(Written(), Cap()).
  uint64_t Len() const {
    const uint64_t w = Written();
    return w < Cap() ? w : Cap();
  }
  // Absolute position of the oldest record still held, and one past the newest readable one.
  uint64_t OldestPosition() const { return OldestFor(Written()); }
  uint64_t EndPosition() const { return Published(); }

  // Copies the record at absolute position `pos`. kEnd if it is not written yet, kLost if it has
  // been (or is being) overwritten; `out` holds the record only after kRecord.
  ReadStatus ReadAt(uint64_t pos, R* out) const {
    const Slot& slot = slots_[pos & mask_];
    const uint64_t want = 2 * pos + 2;
    const uint64_t before = slot.seq.load(std::memory_order_acquire);
    if (before != want) return before < want ? ReadStatus::kEnd : ReadStatus::kLost;
    // Word by word straight into `out` (no staging copy: the caller's reads of its fields then
    // come from the stores of whole words).
    char* dst = reinterpret_cast<char*>(out);
    for (size_t i = 0; i < kWords; ++i) {
      const uint64_t w = slot.words[i].load(std::memory_order_acquire);
      std::memcpy(dst + i * sizeof w, &w, std::min(sizeof w, sizeof(R) - i * sizeof w));
    }
    if (slot.seq.load(std::memory_order_relaxed) != want) return ReadStatus::kLost;
    return ReadStatus::kRecord;
  }

  // Time of the oldest / newest readable record; nullopt when there is none.
  std::optional<uint64_t> OldestTime() const { return TimeNear(true); }
  std::optional<uint64_t> NewestTime() const { return TimeNear(false); }

  // The position of the first record with time_ns >= t_ns (binary search over the readable
  // records), or EndPosition() when every record is older. Records lapped during the search make it
  // restart from the new oldest record.
  uint64_t SeekTime(uint64_t t_ns) const {
    while (true) {
      const uint64_t end = Published();
      uint64_t lo = OldestPosition();
      uint64_t hi = end < lo ? lo : end;
      bool lapped = false;
      R r;
      while (lo < hi) {
        const uint64_t mid = lo + (hi - lo) / 2;
        if (ReadAt(mid, &r) != ReadStatus::kRecord) {
          lapped = true;
          break;
        }
        if (static_cast<uint64_t>(r.time_ns) < t_ns) {
          lo = mid + 1;
        } else {
          hi = mid;
        }
      }
      if (!lapped) return lo;
    }
  }

  // Blocks until a record is published at `pos`, `deadline` passes, or Interrupt()
  // is called, and returns whether a record is there. May return false before the deadline
  // (interrupted or spurious): callers check their own stop condition and wait again.
  bool WaitFor(uint64_t pos, absl::Time deadline) const {
    const uint32_t epoch = wake_.Prepare();
    if (pos < Published()) {
      wake_.Cancel();
      return true;
    }
    wake_.WaitUntil(epoch, deadline);
    return pos < Published();
  }

  // Wakes every waiter (for example when a stream is cancelled); they re-check and return.
  void Interrupt() const { wake_.WakeAll(); }

 private:
  static constexpr size_t kWords = (sizeof(R) + 7) / 8;

  // Slots whose size is a multiple of a cache line (a 120-byte record) are aligned to one, so
  // no two slots share a line and readers right behind the writer do not slow it down.
  static constexpr size_t kSlotBytes = 8 * (kWords + 1);
  static constexpr size_t kSlotAlign = kSlotBytes % 64 == 0 ? 64 : 8;
  struct alignas(kSlotAlign) Slot {
    std::atomic<uint64_t> seq{0};  // 2*pos+1 while writing pos, 2*pos+2 once it holds pos
    std::atomic<uint64_t> words[kWords];
  };
  static_assert(sizeof(Slot) == kSlotBytes, "slots are never padded");

  explicit FlowRing(uint64_t slots) : mask_(slots - 1), slots_(new Slot[slots]) {}

  uint64_t OldestFor(uint64_t written) const { return written > Cap() ? written - Cap() : 0; }

  std::optional<uint64_t> TimeNear(bool oldest) const {
    R r;
    while (true) {
      const uint64_t end = Published();
      if (end == 0) return std::nullopt;
      const uint64_t pos = oldest ? OldestPosition() : end - 1;
      if (ReadAt(pos, &r) == ReadStatus::kRecord) return static_cast<uint64_t>(r.time_ns);
    }
  }

  const uint64_t mask_;
  std::unique_ptr<Slot[]> slots_;
  alignas(64) std::atomic<uint64_t> written_{0};    // stored by every Write()
  alignas(64) std::atomic<uint64_t> published_{0};  // stored by Publish()
  alignas(64) mutable WakeWord wake_;
};

// A cursor into a FlowRing, owned by one thread. Reads forward (Next) or backward (Prev) from an
// absolute position, and counts what the writer overwrote before it could be read.
template <RingRecord R>
class RingReader {
 public:
  RingReader(const FlowRing<R>& ring, uint64_t position)
      : ring_(&ring), pos_(position), end_(ring.Published()) {}

  // Copies the record at the current position and advances. kEnd when caught up with the
  // writer. kLost when lapped: the position has moved to the oldest record still held and
  // TakeLost() returns how many were skipped (added up until taken).
  ReadStatus Next(R* out) {
    // The published position is re-read only on catching up with it: once per batch.
    if (pos_ >= end_) {
      end_ = ring_->Published();
      if (pos_ >= end_) return ReadStatus::kEnd;
    }
    if (SkipLapped()) return ReadStatus::kLost;
    const ReadStatus s = ring_->ReadAt(pos_, out);
    if (s == ReadStatus::kRecord) {
      ++pos_;
      return s;
    }
    if (s == ReadStatus::kLost) {
      if (!SkipLapped(ring_->OldestPosition())) {
        // Overwritten before `end_` moved past it (the writer is mid-write): only this one.
        lost_ += 1;
        pos_ += 1;
      }
    }
    return s;
  }

  // Moves back one position and copies that record. kEnd at the oldest record still held (or
  // when the writer overwrites it during the walk); the position does not move then.
  ReadStatus Prev(R* out) {
    if (pos_ == 0 || pos_ - 1 < Oldest()) return ReadStatus::kEnd;
    if (ring_->ReadAt(pos_ - 1, out) != ReadStatus::kRecord) return ReadStatus::kEnd;
    --pos_;
    return ReadStatus::kRecord;
  }

  // Blocks until a record is available at the current position, `deadline` passes or the ring
  // is interrupted; see FlowRing::WaitFor.
  bool Wait(absl::Time deadline) const { return ring_->WaitFor(pos_, deadline); }

  uint64_t position() const { return pos_; }
  void Seek(uint64_t position) {
    pos_ = position;
    end_ = ring_->Published();
  }

  // Records skipped because the writer lapped this reader, since the last call.
  uint64_t TakeLost() {
    const uint64_t n = lost_;
    lost_ = 0;
    return n;
  }

 private:
  // The oldest record held as of `end_`: never newer than the true oldest.
  uint64_t Oldest() const { return end_ > ring_->Cap() ? end_ - ring_->Cap() : 0; }

  // If the position is older than `oldest`, counts the records in between as lost and skips.
  bool SkipLapped() { return SkipLapped(Oldest()); }
  bool SkipLapped(uint64_t oldest) {
    if (pos_ >= oldest) return false;
    lost_ += oldest - pos_;
    pos_ = oldest;
    return true;
  }

  const FlowRing<R>* ring_;
  uint64_t pos_;
  uint64_t end_;  // Published() as last seen by this reader
  uint64_t lost_ = 0;
};

}  // namespace flowscope::ringbuf

#endif  // FLOWSCOPE_RINGBUF_FLOW_RING_H_
