#include "tests/testing/flow_events.h"

#include <gtest/gtest.h>

#include <cstring>

namespace flowscope::testing {

absl::StatusOr<std::unique_ptr<FlowEventCollector>> FlowEventCollector::Create(
    const bpf::Datapath& dp) {
  auto c = std::make_unique<FlowEventCollector>();
  FlowEventCollector* self = c.get();
  auto consumer =
      ringbuf::RingBufferConsumer::Create(dp.events_fd(), dp.lost_events_fd(), sizeof(flow_event),
                                          [self](absl::Span<const uint8_t> ev) {
                                            flow_event e;
                                            std::memcpy(&e, ev.data(), sizeof e);
                                            self->events_.push_back(e);
                                          });
  if (!consumer.ok()) return consumer.status();
  c->consumer_ = std::move(consumer).value();
  return c;
}

std::vector<flow_event> FlowEventCollector::Drain() {
  events_.clear();
  EXPECT_TRUE(consumer_->Consume().ok());
  return events_;
}

}  // namespace flowscope::testing
