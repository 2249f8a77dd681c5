#include "relay/raw_event.h"

#include <utility>

#include "api/grpc_util.h"

namespace flowscope::relay {
namespace {

enum WireType { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

// One field of a message: its number and wire type, the value of a varint, the bytes of a
// length-delimited one.
struct Field {
  uint32_t number = 0;
  int type = 0;
  uint64_t value = 0;
  absl::string_view bytes;
};

// Walks the fields of one message level.
class FieldReader {
 public:
  explicit FieldReader(absl::string_view b) : p_(b.data()), end_(b.data() + b.size()) {}
  bool done() const { return p_ == end_; }

  // The next field; false when the bytes end early or are not a field.
  bool Next(Field* f) {
    uint64_t key = 0;
    if (!Varint(&key) || (key >> 3) == 0 || (key >> 3) > 0x1FFFFFFF) return false;
    f->number = static_cast<uint32_t>(key >> 3);
    f->type = static_cast<int>(key & 7);
    switch (f->type) {
      case kVarint:
        return Varint(&f->value);
      case kFixed64:
        return Skip(8);
      case kLen: {
        uint64_t len = 0;
        if (!Varint(&len) || len > static_cast<uint64_t>(end_ - p_)) return false;
        f->bytes = absl::string_view(p_, static_cast<size_t>(len));
        p_ += len;
        return true;
      }
      case kFixed32:
        return Skip(4);
      default:
        return false;  // groups: not in these messages
    }
  }

 private:
  bool Varint(uint64_t* v) {
    uint64_t r = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const auto b = static_cast<uint8_t>(*p_++);
      r |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) {
        *v = r;
        return true;
      }
    }
    return false;
  }
  bool Skip(size_t n) {
    if (static_cast<size_t>(end_ - p_) < n) return false;
    p_ += n;
    return true;
  }

  const char* p_;
  const char* end_;
};

// A google.protobuf.Timestamp merged into `seconds`/`nanos` (as protobuf merges a message given
// twice).
bool MergeTimestamp(absl::string_view b, int64_t* seconds, int32_t* nanos) {
  FieldReader r(b);
  while (!r.done()) {
    Field f;
    if (!r.Next(&f)) return false;
    if (f.type != kVarint) continue;
    if (f.number == 1) *seconds = static_cast<int64_t>(f.value);
    if (f.number == 2) *nanos = static_cast<int32_t>(f.value);
  }
  return true;
}

absl::Time TimeOf(int64_t seconds, int32_t nanos) {
  return absl::FromUnixSeconds(seconds) + absl::Nanoseconds(nanos);
}

// flow.Flow's `time` (field 1), read from the encoded flow without decoding the rest; the epoch
// when it has none (or is not readable up to it).
absl::Time EncodedFlowTime(absl::string_view flow) {
  FieldReader r(flow);
  int64_t seconds = 0;
  int32_t nanos = 0;
  bool any = false;
  while (!r.done()) {
    Field f;
    if (!r.Next(&f)) break;
    if (f.number == 1 && f.type == kLen) any = MergeTimestamp(f.bytes, &seconds, &nanos) || any;
  }
  return any ? TimeOf(seconds, nanos) : absl::UnixEpoch();
}

void AppendVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

void AppendLenField(std::string* out, uint32_t field, absl::string_view bytes) {
  AppendVarint(out, (uint64_t{field} << 3) | kLen);
  AppendVarint(out, bytes.size());
  out->append(bytes.data(), bytes.size());
}

}  // namespace

std::optional<RawEvent> RawEvent::Parse(std::shared_ptr<const std::string> hold,
                                        absl::string_view bytes) {
  RawEvent e;
  e.bytes_ = bytes;
  FieldReader r(bytes);
  bool has_time = false;
  int64_t seconds = 0;
  int32_t nanos = 0;
  while (!r.done()) {
    Field f;
    if (!r.Next(&f)) return std::nullopt;
    switch (f.number) {
      case 1:  // the response_types oneof: the last one given is the one
      case 2:
      case 3:
      case 4:
      case 5:
        if (f.type != kLen) return std::nullopt;
        e.kind_ = f.number == 1   ? Kind::kFlow
                  : f.number == 2 ? Kind::kNodeStatus
                  : f.number == 3 ? Kind::kLost
                                  : Kind::kOther;
        e.flow_ = f.number == 1 ? f.bytes : absl::string_view();
        break;
      case 1000:  // node_name
        if (f.type != kLen) return std::nullopt;
        e.node_name_ = f.bytes;
        break;
      case 1001:  // time
        if (f.type != kLen || !MergeTimestamp(f.bytes, &seconds, &nanos)) return std::nullopt;
        has_time = true;
        break;
      default:
        break;  // unknown to us: passed on as it is
    }
  }
  if (has_time) {
    e.time_ = TimeOf(seconds, nanos);
  } else if (e.is_flow()) {
    e.time_ = EncodedFlowTime(e.flow_);
  }
  e.hold_ = std::move(hold);
  return e;
}

std::optional<RawEvent> RawEvent::Parse(std::string bytes) {
  auto hold = std::make_shared<const std::string>(std::move(bytes));
  const absl::string_view view(*hold);
  return Parse(std::move(hold), view);
}

bool ParseRawBatch(const std::shared_ptr<const std::string>& batch, std::vector<RawEvent>* events,
                   std::optional<absl::Time>* watermark) {
  FieldReader r(*batch);
  bool has_watermark = false;
  int64_t seconds = 0;
  int32_t nanos = 0;
  while (!r.done()) {
    Field f;
    if (!r.Next(&f)) return false;
    if (f.number == 1) {  // events
      if (f.type != kLen) return false;
      std::optional<RawEvent> e = RawEvent::Parse(batch, f.bytes);
      if (!e) return false;
      events->push_back(*std::move(e));
    } else if (f.number == 2) {  // watermark
      if (f.type != kLen || !MergeTimestamp(f.bytes, &seconds, &nanos)) return false;
      has_watermark = true;
    }
  }
  if (has_watermark) *watermark = TimeOf(seconds, nanos);
  return true;
}

void AppendBatchEvent(std::string* batch, absl::string_view event) {
  AppendLenField(batch, 1, event);
}

void AppendBatchWatermark(std::string* batch, absl::Time watermark) {
  AppendLenField(batch, 2, ToTimestamp(watermark).SerializeAsString());
}

std::string FlattenByteBuffer(const grpc::ByteBuffer& bb) {
  std::vector<grpc::Slice> slices;
  std::string out;
  if (!bb.Dump(&slices).ok()) return out;
  out.reserve(bb.Length());
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return out;
}

grpc::ByteBuffer ToByteBuffer(absl::string_view bytes) {
  grpc::Slice slice(bytes.data(), bytes.size());
  return grpc::ByteBuffer(&slice, 1);
}

}  // namespace flowscope::relay
