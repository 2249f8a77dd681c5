#include "ringbuf/ring_capacity.h"

#include "absl/strings/str_cat.h"

namespace flowscope::ringbuf {

absl::Status ValidateCapacity(uint64_t capacity) {
  uint64_t below = 0;  // largest valid value < capacity (0: none)
  for (int n = 1; n <= kMaxRingCapacityBits; ++n) {
    const uint64_t valid = (uint64_t{1} << n) - 1;
    if (valid == capacity) return absl::OkStatus();
    if (valid < capacity) below = valid;
  }
  const uint64_t above = below == 0 ? 1 : below * 2 + 1;  // smallest valid value > capacity
  std::string nearest;
  if (below == 0) {
    nearest = "the nearest valid value is 1";
  } else if (above > kMaxRingCapacity) {
    nearest = absl::StrCat("the largest valid value is ", kMaxRingCapacity);
  } else {
    nearest = absl::StrCat("the nearest valid values are ", below, " and ", above);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("ring capacity ", capacity, " is invalid: it must be 2^n - 1 for n in 1..",
                   kMaxRingCapacityBits, " (1, 3, 7, ..., ", kMaxRingCapacity, "); ", nearest));
}

}  // namespace flowscope::ringbuf
