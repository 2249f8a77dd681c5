#include "tests/testing/flow_events.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

namespace flowscope::testing {

absl::StatusOr<std::unique_ptr<FlowEventCollector>> FlowEventCollector::Create(
    const bpf::Datapath& dp) {
  auto c = std::make_unique<FlowEventCollector>();
  FlowEventCollector* self = c.get();
  auto consumer = ringbuf::RingBufferConsumer::Create(
      dp.events_fd(), dp.lost_events_fd(), sizeof(flow_event),
      [self](absl::Span<const uint8_t> ev) {
        flow_event e;
        std::memcpy(&e, ev.data(), sizeof e);
        if (e.emit_reason != FS_EMIT_DNS) {
          self->events_.push_back(e);
          return;
        }
        EXPECT_EQ(ev.size(), sizeof(dns_event));
        dns_event d{};
        std::memcpy(&d, ev.data(), std::min(ev.size(), sizeof d));
        self->dns_.push_back(d);
        if (d.flow_reason != 0) {  // the packet's L3/L4 event, carried in the same record
          e.emit_reason = d.flow_reason;
          self->events_.push_back(e);
        }
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

std::vector<dns_event> FlowEventCollector::TakeDns() {
  EXPECT_TRUE(consumer_->Consume().ok());
  std::vector<dns_event> out;
  out.swap(dns_);
  return out;
}

}  // namespace flowscope::testing
