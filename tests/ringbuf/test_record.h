// A 120-byte record (the size FlowRecord aims at) for ring tests and benchmarks, with a checksum
// that detects torn copies.
#ifndef FLOWSCOPE_TESTS_RINGBUF_TEST_RECORD_H_
#define FLOWSCOPE_TESTS_RINGBUF_TEST_RECORD_H_

#include <cstdint>

namespace flowscope::ringbuf {

struct TestRecord {
  uint64_t time_ns = 0;
  uint64_t seq = 0;
  uint64_t payload[12] = {};
  uint64_t checksum = 0;

  static TestRecord Make(uint64_t seq, uint64_t time_ns) {
    TestRecord r;
    r.time_ns = time_ns;
    r.seq = seq;
    for (int i = 0; i < 12; ++i)
      r.payload[i] = seq * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(i);
    r.checksum = r.Sum();
    return r;
  }
  uint64_t Sum() const {
    uint64_t h = time_ns ^ (seq * 0xC2B2AE3D27D4EB4FULL);
    for (uint64_t p : payload) h = (h ^ p) * 0x100000001B3ULL;
    return h;
  }
  bool Valid() const { return checksum == Sum(); }
};
// 120 bytes: with the ring's 8-byte sequence number a slot is exactly two cache lines.
static_assert(sizeof(TestRecord) == 120);

}  // namespace flowscope::ringbuf

#endif  // FLOWSCOPE_TESTS_RINGBUF_TEST_RECORD_H_
