/* The event the ring-buffer test producer emits; shared by test_producer.bpf.c and C++. */
#ifndef FLOWSCOPE_TESTS_RINGBUF_TEST_EVENT_H_
#define FLOWSCOPE_TESTS_RINGBUF_TEST_EVENT_H_

#include <linux/types.h>

#define FLOWSCOPE_TEST_EVENT_MAGIC 0xF10775C0DEULL

struct test_event {
  __u64 seq;   /* 0, 1, 2, ... per loaded program instance */
  __u64 magic; /* FLOWSCOPE_TEST_EVENT_MAGIC */
  __u32 len;   /* length of the packet the program ran on */
  __u32 cpu;   /* CPU the program ran on */
  __u64 pad;
};

#ifdef __cplusplus
static_assert(sizeof(struct test_event) == 32, "test_event layout");
#else
_Static_assert(sizeof(struct test_event) == 32, "test_event layout");
#endif

#endif /* FLOWSCOPE_TESTS_RINGBUF_TEST_EVENT_H_ */
