// libFuzzer: the relay's reading of a peer's batch without decoding it (relay/raw_event.h). Any
// bytes: refused, or events that are slices of them, each read again alone the same way, as many
// as protobuf finds when it parses the same bytes.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "flowscope/v1/flowscope.pb.h"
#include "relay/raw_event.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto bytes = std::make_shared<const std::string>(reinterpret_cast<const char*>(data), size);
  std::vector<flowscope::relay::RawEvent> events;
  std::optional<absl::Time> watermark;
  if (!flowscope::relay::ParseRawBatch(bytes, &events, &watermark)) return 0;
  for (const flowscope::relay::RawEvent& e : events) {
    if (e.bytes().data() < bytes->data() ||
        e.bytes().data() + e.bytes().size() > bytes->data() + bytes->size()) {
      std::abort();
    }
    std::optional<flowscope::relay::RawEvent> again =
        flowscope::relay::RawEvent::Parse(std::string(e.bytes()));
    if (!again || again->kind() != e.kind() || again->time() != e.time() ||
        again->node_name() != e.node_name()) {
      std::abort();
    }
  }
  ::flowscope::v1::RawFlowBatch batch;
  if (batch.ParseFromString(*bytes) && static_cast<size_t>(batch.events_size()) != events.size()) {
    std::abort();
  }
  return 0;
}
