// Capacity rules of FlowRing: 2^n - 1 records for n in 1..24. Pure functions; any thread.
#ifndef FLOWSCOPE_RINGBUF_RING_CAPACITY_H_
#define FLOWSCOPE_RINGBUF_RING_CAPACITY_H_

#include <cstdint>

#include "absl/status/status.h"

namespace flowscope::ringbuf {

inline constexpr uint64_t kDefaultRingCapacity = 65535;
inline constexpr int kMaxRingCapacityBits = 24;
inline constexpr uint64_t kMaxRingCapacity = (uint64_t{1} << kMaxRingCapacityBits) - 1;

// OK if `capacity` is 2^n - 1 for n in 1..24; otherwise InvalidArgument naming the nearest
// valid values, e.g. "ring capacity 1000 is invalid: it must be 2^n - 1 for n in 1..24
// (1, 3, 7, ..., 16777215); the nearest valid values are 511 and 1023".
absl::Status ValidateCapacity(uint64_t capacity);

}  // namespace flowscope::ringbuf

#endif  // FLOWSCOPE_RINGBUF_RING_CAPACITY_H_
