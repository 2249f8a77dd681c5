// A BPF producer for consumer tests and the raw-drain benchmark: each run (bpf_prog_test_run,
// any `repeat`) emits one test_event with the next sequence number. Single producer at a time.
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

// After the kernel headers, which define the types it uses.
#include <bpf/bpf_helpers.h>

#include "tests/ringbuf/test_event.h"

struct {
  __uint(type, BPF_MAP_TYPE_RINGBUF);
  __uint(max_entries, 1 << 22);
} events SEC(".maps");

// Reservation failures, per CPU, summed by user space.
struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, __u64);
} lost_events SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
  __uint(key_size, sizeof(__u32));
  __uint(value_size, sizeof(__u32));
} perf_events SEC(".maps");

__u64 next_seq = 0;
// When non-zero, emit a 4-byte (malformed) event instead of a test_event.
__u32 emit_short = 0;
// 0: the kernel's adaptive wake-up on every submit. N > 0: wake the consumer only on every Nth
// event (BPF_RB_NO_WAKEUP otherwise), for busy-consuming benchmarks.
__u32 wakeup_every = 0;

static __always_inline void fill(struct test_event* e, struct __sk_buff* skb) {
  e->seq = next_seq++;
  e->magic = FLOWSCOPE_TEST_EVENT_MAGIC;
  e->len = skb->len;
  e->cpu = bpf_get_smp_processor_id();
  e->pad = 0;
}

SEC("tc")
int produce_ringbuf(struct __sk_buff* skb) {
  if (emit_short) {
    __u32 word = 0xBAD;
    if (bpf_ringbuf_output(&events, &word, sizeof(word), 0) != 0) goto lost;
    return TC_ACT_OK;
  }
  struct test_event* e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
  if (!e) goto lost;
  fill(e, skb);
  __u64 flags = 0;
  if (wakeup_every) flags = (e->seq % wakeup_every == 0) ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
  bpf_ringbuf_submit(e, flags);
  return TC_ACT_OK;
lost:;
  __u32 key = 0;
  __u64* count = bpf_map_lookup_elem(&lost_events, &key);
  if (count) *count += 1;
  next_seq++;
  return TC_ACT_OK;
}

SEC("tc")
int produce_perf(struct __sk_buff* skb) {
  struct test_event e;
  fill(&e, skb);
  bpf_perf_event_output(skb, &perf_events, BPF_F_CURRENT_CPU, &e, sizeof(e));
  return TC_ACT_OK;
}

char LICENSE[] SEC("license") = "GPL";
