// RawEvent: one event of a peer's answer as the relay handles it — the encoded
// observer.GetFlowsResponse, never decoded: a slice of the batch it came in (the batch's bytes are
// shared by its events, so nothing is copied or allocated per event), with the few things the
// relay reads from its top-level fields: what it is (flow, node notice, lost events), its time
// and its node's name. Batches (flowscope.v1.FlowBatch) are read and written the same way.
//
//   auto bytes = std::make_shared<const std::string>(ReadMessage());
//   std::vector<RawEvent> events;
//   std::optional<absl::Time> watermark;
//   if (!ParseRawBatch(bytes, &events, &watermark)) Fail("malformed batch");
//   for (const RawEvent& e : events) Merge(e.time(), e);
//   AppendBatchEvent(&out, e.bytes());  // ... AppendBatchWatermark(&out, t);
//
// Only the top level is checked (field keys and lengths, the time's two varints); the flow inside
// passes on as it came. Copies share the bytes; a RawEvent is immutable.
#ifndef FLOWSCOPE_RELAY_RAW_EVENT_H_
#define FLOWSCOPE_RELAY_RAW_EVENT_H_

#include <grpcpp/support/byte_buffer.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "api/byte_buffer.h"

namespace flowscope::relay {

class RawEvent {
 public:
  enum class Kind : uint8_t { kOther, kFlow, kNodeStatus, kLost };

  RawEvent() = default;
  // The event encoded in `bytes`, which `hold` keeps alive; none when the bytes are not a
  // well-formed message (at the top level).
  static std::optional<RawEvent> Parse(std::shared_ptr<const std::string> hold,
                                       absl::string_view bytes);
  static std::optional<RawEvent> Parse(std::string bytes);

  // The encoded observer.GetFlowsResponse.
  absl::string_view bytes() const { return bytes_; }
  Kind kind() const { return kind_; }
  bool is_flow() const { return kind_ == Kind::kFlow; }
  bool is_node_status() const { return kind_ == Kind::kNodeStatus; }
  // The envelope's time; the flow's own when the envelope has none; else the epoch.
  absl::Time time() const { return time_; }
  absl::string_view node_name() const { return node_name_; }
  absl::string_view flow() const { return flow_; }  // the encoded flow.Flow (empty if none)

 private:
  std::shared_ptr<const std::string> hold_;
  absl::string_view bytes_;
  absl::string_view node_name_;
  absl::string_view flow_;
  absl::Time time_ = absl::UnixEpoch();
  Kind kind_ = Kind::kOther;
};

// A flowscope.v1.FlowBatch: its events (appended to `events`) and its watermark. False when
// malformed (what was appended is then to be dropped).
bool ParseRawBatch(const std::shared_ptr<const std::string>& batch, std::vector<RawEvent>* events,
                   std::optional<absl::Time>* watermark);

// Building a FlowBatch: events in order, then the watermark.
void AppendBatchEvent(std::string* batch, absl::string_view event);
void AppendBatchWatermark(std::string* batch, absl::Time watermark);

// The bytes of a gRPC message, in one piece; and a message from bytes (copied; TakeByteBuffer
// in api/byte_buffer.h takes a string over instead).
std::string FlattenByteBuffer(const grpc::ByteBuffer& bb);
grpc::ByteBuffer ToByteBuffer(absl::string_view bytes);

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_RAW_EVENT_H_
