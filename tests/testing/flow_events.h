// Collects the flow_events a loaded Datapath writes, for tests: Drain() consumes what is in
// the ring buffer now and returns its L3/L4 flow events (those a DNS event carries too, with
// their own emit reason); the DNS events (struct dns_event) are kept for TakeDns(). One thread.
#ifndef FLOWSCOPE_TESTS_TESTING_FLOW_EVENTS_H_
#define FLOWSCOPE_TESTS_TESTING_FLOW_EVENTS_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "bpf/datapath.h"
#include "ringbuf/event_consumer.h"

namespace flowscope::testing {

class FlowEventCollector {
 public:
  static absl::StatusOr<std::unique_ptr<FlowEventCollector>> Create(const bpf::Datapath& dp);
  std::vector<flow_event> Drain();
  // The DNS events consumed so far (by Drain() or now), oldest first; forgets them.
  std::vector<dns_event> TakeDns();
  ringbuf::RingBufferConsumer& consumer() { return *consumer_; }

 private:
  std::unique_ptr<ringbuf::RingBufferConsumer> consumer_;
  std::vector<flow_event> events_;
  std::vector<dns_event> dns_;
};

}  // namespace flowscope::testing

#endif  // FLOWSCOPE_TESTS_TESTING_FLOW_EVENTS_H_
