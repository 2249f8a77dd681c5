#include "api/json_wire.h"

#include <google/protobuf/dynamic_message.h>
#include <google/protobuf/message.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/synchronization/mutex.h"
#include "api/json.h"

namespace flowscope {
namespace {

namespace pb = google::protobuf;
using Type = pb::FieldDescriptor::Type;

enum WireType : uint8_t { kVarint = 0, kFixed64 = 1, kLen = 2, kFixed32 = 5 };

struct Layout;

// One field of a message type, with what writing it needs.
struct Field {
  const pb::FieldDescriptor* descriptor;
  std::string key;  // ,"name": (the comma left off before a message's first field)
  Type type;
  bool repeated;
  bool presence;  // written even when it holds its default (messages, oneofs, optional)
  const Layout* message = nullptr;
  int oneof = -1;  // the index of its (real) oneof
  // An enum's values 0..n as quoted JSON names (empty where the number has no name).
  std::vector<std::string> enum_names;
};

// How a message type is written: its own fields, or one of protobuf's well-known types.
struct Layout {
  enum Kind { kFields, kTimestamp, kWrapper, kDecode };
  const pb::Descriptor* descriptor;
  Kind kind = kFields;
  std::vector<Field> fields;  // by declaration index
  // Field number -> declaration index: small numbers in a table, the rest in a map.
  static constexpr int kDirect = 128;
  std::vector<int> direct = std::vector<int>(kDirect, -1);
  absl::flat_hash_map<int, int> by_number;

  int IndexOf(uint64_t number) const {
    if (number < kDirect) return direct[number];
    auto it = by_number.find(static_cast<int>(number));
    return it == by_number.end() ? -1 : it->second;
  }
};

class Layouts {
 public:
  static Layouts& Get() {
    static auto* layouts = new Layouts();
    return *layouts;
  }

  const Layout* For(const pb::Descriptor* d) {
    absl::MutexLock lock(&mu_);
    return BuildLocked(d);
  }

 private:
  const Layout* BuildLocked(const pb::Descriptor* d) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = layouts_.find(d);
    if (it != layouts_.end()) return it->second.get();
    auto owned = std::make_unique<Layout>();
    Layout* layout = owned.get();
    layouts_.emplace(d, std::move(owned));  // before the fields: types may refer to themselves
    layout->descriptor = d;
    if (d->full_name() == "google.protobuf.Timestamp") {
      layout->kind = Layout::kTimestamp;
    } else if (d->file()->name() == "google/protobuf/wrappers.proto") {
      layout->kind = Layout::kWrapper;
    } else if (d->file()->package() == "google.protobuf") {
      layout->kind = Layout::kDecode;
      return layout;
    }
    for (int i = 0; i < d->field_count(); ++i) {
      const pb::FieldDescriptor* f = d->field(i);
      Field field{f,
                  "",
                  f->type(),
                  f->is_repeated(),
                  f->has_presence() || f->containing_oneof() != nullptr,
                  nullptr,
                  f->real_containing_oneof() != nullptr ? f->real_containing_oneof()->index() : -1,
                  {}};
      field.key.push_back(',');
      AppendJsonString(f->name(), &field.key);
      field.key.push_back(':');
      if (f->type() == Type::TYPE_ENUM) {
        const pb::EnumDescriptor* e = f->enum_type();
        for (int v = 0; v < 256; ++v) {
          const pb::EnumValueDescriptor* value = e->FindValueByNumber(v);
          if (value == nullptr) continue;
          field.enum_names.resize(static_cast<size_t>(v) + 1);
          AppendJsonString(value->name(), &field.enum_names[static_cast<size_t>(v)]);
        }
      }
      if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_MESSAGE) {
        if (f->is_map()) {  // not in the APIs written here; decoded instead
          layout->kind = Layout::kDecode;
          layout->fields.clear();
          layout->direct.assign(Layout::kDirect, -1);
          layout->by_number.clear();
          return layout;
        }
        field.message = BuildLocked(f->message_type());
      }
      if (f->number() < Layout::kDirect) {
        layout->direct[static_cast<size_t>(f->number())] = i;
      } else {
        layout->by_number.emplace(f->number(), i);
      }
      layout->fields.push_back(std::move(field));
    }
    return layout;
  }

  absl::Mutex mu_;
  absl::flat_hash_map<const pb::Descriptor*, std::unique_ptr<Layout>> layouts_ ABSL_GUARDED_BY(mu_);
};

// One field as it appears on the wire.
struct Occurrence {
  int index;  // the field's declaration index
  WireType wire;
  uint64_t value;             // varint and fixed
  absl::string_view payload;  // length-delimited
};

class Reader {
 public:
  explicit Reader(absl::string_view s)
      : p_(reinterpret_cast<const uint8_t*>(s.data())), end_(p_ + s.size()) {}
  bool done() const { return p_ == end_; }

  bool Varint(uint64_t* v) {
    uint64_t out = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ == end_) return false;
      const uint8_t b = *p_++;
      out |= static_cast<uint64_t>(b & 0x7F) << shift;
      if ((b & 0x80) == 0) {
        *v = out;
        return true;
      }
    }
    return false;
  }
  bool Fixed(int bytes, uint64_t* v) {
    if (end_ - p_ < bytes) return false;
    uint64_t out = 0;
    for (int i = bytes - 1; i >= 0; --i) out = (out << 8) | p_[i];
    p_ += bytes;
    *v = out;
    return true;
  }
  // The next field: its number and its value (by wire type). False at malformed bytes or a
  // group (not in proto3).
  bool Next(uint64_t* number, Occurrence* o);

  bool Bytes(absl::string_view* s) {
    uint64_t len = 0;
    if (!Varint(&len) || len > static_cast<uint64_t>(end_ - p_)) return false;
    *s = absl::string_view(reinterpret_cast<const char*>(p_), len);
    p_ += len;
    return true;
  }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

bool Reader::Next(uint64_t* number, Occurrence* o) {
  uint64_t tag = 0;
  if (!Varint(&tag)) return false;
  *number = tag >> 3;
  o->wire = static_cast<WireType>(tag & 7);
  switch (o->wire) {
    case kVarint:
      return Varint(&o->value);
    case kFixed64:
      return Fixed(8, &o->value);
    case kFixed32:
      return Fixed(4, &o->value);
    case kLen:
      return Bytes(&o->payload);
  }
  return false;
}

WireType ScalarWire(Type t) {
  switch (t) {
    case Type::TYPE_DOUBLE:
    case Type::TYPE_FIXED64:
    case Type::TYPE_SFIXED64:
      return kFixed64;
    case Type::TYPE_FLOAT:
    case Type::TYPE_FIXED32:
    case Type::TYPE_SFIXED32:
      return kFixed32;
    case Type::TYPE_STRING:
    case Type::TYPE_BYTES:
    case Type::TYPE_MESSAGE:
    case Type::TYPE_GROUP:
      return kLen;
    default:
      return kVarint;
  }
}

void AppendUnsigned(uint64_t v, bool quoted, std::string* out) {
  char buf[24];
  char* end = absl::numbers_internal::FastIntToBuffer(v, buf);
  if (quoted) out->push_back('"');
  out->append(buf, static_cast<size_t>(end - buf));
  if (quoted) out->push_back('"');
}

void AppendSigned(int64_t v, bool quoted, std::string* out) {
  char buf[24];
  char* end = absl::numbers_internal::FastIntToBuffer(v, buf);
  if (quoted) out->push_back('"');
  out->append(buf, static_cast<size_t>(end - buf));
  if (quoted) out->push_back('"');
}

bool AppendMessage(const Layout& layout, absl::string_view wire, std::string* out, int depth);

// A scalar held in `v` (varint or fixed bits), as the decoded field would be written.
void AppendScalar(const Field& f, uint64_t v, std::string* out) {
  switch (f.type) {
    case Type::TYPE_INT32:
    case Type::TYPE_SFIXED32:
      AppendSigned(static_cast<int32_t>(v), false, out);
      break;
    case Type::TYPE_SINT32:
      AppendSigned(static_cast<int32_t>((static_cast<uint32_t>(v) >> 1) ^
                                        (~(static_cast<uint32_t>(v) & 1) + 1)),
                   false, out);
      break;
    case Type::TYPE_UINT32:
    case Type::TYPE_FIXED32:
      AppendUnsigned(static_cast<uint32_t>(v), false, out);
      break;
    case Type::TYPE_INT64:
    case Type::TYPE_SFIXED64:
      AppendSigned(static_cast<int64_t>(v), true, out);
      break;
    case Type::TYPE_SINT64:
      AppendSigned(static_cast<int64_t>((v >> 1) ^ (~(v & 1) + 1)), true, out);
      break;
    case Type::TYPE_UINT64:
    case Type::TYPE_FIXED64:
      AppendUnsigned(v, true, out);
      break;
    case Type::TYPE_BOOL:
      out->append(v != 0 ? "true" : "false");
      break;
    case Type::TYPE_ENUM: {
      const int n = static_cast<int32_t>(v);
      if (n >= 0 && static_cast<size_t>(n) < f.enum_names.size() &&
          !f.enum_names[static_cast<size_t>(n)].empty()) {
        out->append(f.enum_names[static_cast<size_t>(n)]);
        break;
      }
      const pb::EnumValueDescriptor* e = f.descriptor->enum_type()->FindValueByNumber(n);
      if (e != nullptr) {
        AppendJsonString(e->name(), out);
      } else {
        AppendSigned(n, false, out);
      }
      break;
    }
    case Type::TYPE_DOUBLE: {
      double d;
      std::memcpy(&d, &v, sizeof d);
      AppendJsonDouble(d, out);
      break;
    }
    case Type::TYPE_FLOAT: {
      float x;
      const uint32_t bits = static_cast<uint32_t>(v);
      std::memcpy(&x, &bits, sizeof x);
      AppendJsonDouble(x, out);
      break;
    }
    default:
      break;
  }
}

// One value of a field (a scalar's bits, or a length-delimited payload).
bool AppendValue(const Field& f, const Occurrence& o, std::string* out, int depth) {
  switch (f.type) {
    case Type::TYPE_STRING:
      AppendJsonString(o.payload, out);
      return true;
    case Type::TYPE_BYTES:
      AppendJsonString(absl::Base64Escape(o.payload), out);
      return true;
    case Type::TYPE_MESSAGE:
      return AppendMessage(*f.message, o.payload, out, depth + 1);
    default:
      AppendScalar(f, o.value, out);
      return true;
  }
}

// Whether the decoded field holds its default. A 32-bit field keeps the low 32 bits of a varint
// (a 10-byte varint of 1 << 63 decodes to 0 in an enum).
bool IsDefault(const Field& f, const Occurrence& o) {
  if (o.wire == kLen) return o.payload.empty();
  switch (f.type) {
    case Type::TYPE_INT32:
    case Type::TYPE_UINT32:
    case Type::TYPE_SINT32:
    case Type::TYPE_ENUM:
      return static_cast<uint32_t>(o.value) == 0;
    default:
      return o.value == 0;
  }
}

// The elements of a packed run of scalars.
template <typename Fn>
bool ForEachPacked(Type t, absl::string_view payload, Fn fn) {
  Reader r(payload);
  const WireType w = ScalarWire(t);
  while (!r.done()) {
    uint64_t v = 0;
    const bool ok = w == kVarint ? r.Varint(&v) : r.Fixed(w == kFixed64 ? 8 : 4, &v);
    if (!ok) return false;
    fn(v);
  }
  return true;
}

bool AppendWrapper(const Layout& layout, absl::string_view wire, std::string* out) {
  if (layout.fields.empty()) return false;
  const Field& value = layout.fields[0];
  Reader r(wire);
  std::optional<Occurrence> last;
  while (!r.done()) {
    uint64_t number = 0;
    Occurrence o{0, kVarint, 0, {}};
    if (!r.Next(&number, &o)) return false;
    if (number == static_cast<uint64_t>(value.descriptor->number())) {
      if (o.wire != ScalarWire(value.type)) return false;
      last = o;
    }
  }
  if (last) return AppendValue(value, *last, out, 0);
  // A present wrapper holding the default value.
  switch (value.type) {
    case Type::TYPE_BOOL:
      out->append("false");
      break;
    case Type::TYPE_STRING:
    case Type::TYPE_BYTES:
      out->append("\"\"");
      break;
    case Type::TYPE_INT64:
    case Type::TYPE_UINT64:
      out->append("\"0\"");
      break;
    default:
      out->append("0");
  }
  return true;
}

bool AppendDecoded(const pb::Descriptor* d, absl::string_view wire, std::string* out) {
  const pb::Message* prototype = pb::MessageFactory::generated_factory()->GetPrototype(d);
  if (prototype == nullptr) return false;
  std::unique_ptr<pb::Message> m(prototype->New());
  if (!m->ParseFromArray(wire.data(), static_cast<int>(wire.size()))) return false;
  AppendJson(*m, out);
  return true;
}

bool AppendMessage(const Layout& layout, absl::string_view wire, std::string* out, int depth) {
  if (depth > 64) return false;
  switch (layout.kind) {
    case Layout::kTimestamp: {
      Reader r(wire);
      int64_t seconds = 0;
      int32_t nanos = 0;
      while (!r.done()) {
        uint64_t tag = 0, v = 0;
        if (!r.Varint(&tag) || (tag & 7) != kVarint || !r.Varint(&v)) return false;
        if ((tag >> 3) == 1) seconds = static_cast<int64_t>(v);
        if ((tag >> 3) == 2) nanos = static_cast<int32_t>(v);
      }
      AppendJsonTimestamp(seconds, nanos, out);
      return true;
    }
    case Layout::kWrapper:
      return AppendWrapper(layout, wire, out);
    case Layout::kDecode:
      return AppendDecoded(layout.descriptor, wire, out);
    case Layout::kFields:
      break;
  }
  absl::InlinedVector<Occurrence, 32> seen;
  Reader r(wire);
  while (!r.done()) {
    uint64_t number = 0;
    Occurrence o{-1, kVarint, 0, {}};
    if (!r.Next(&number, &o) || number == 0 || number > (1u << 29)) return false;
    const int index = layout.IndexOf(number);
    if (index < 0) continue;  // unknown fields are not written
    const Field& f = layout.fields[static_cast<size_t>(index)];
    const WireType want = ScalarWire(f.type);
    // Repeated scalars come packed (length-delimited) or one by one.
    if (o.wire != want && !(f.repeated && o.wire == kLen && want != kLen)) return false;
    o.index = index;
    if (f.oneof >= 0) {
      // Setting one member of a oneof clears the others (and what this one held before them):
      // only the occurrences since the last other member count.
      for (Occurrence& earlier : seen) {
        if (earlier.index >= 0 &&
            layout.fields[static_cast<size_t>(earlier.index)].oneof == f.oneof &&
            earlier.index != index) {
          for (Occurrence& e : seen) {
            if (e.index >= 0 && layout.fields[static_cast<size_t>(e.index)].oneof == f.oneof) {
              e.index = -1;
            }
          }
          break;
        }
      }
    }
    seen.push_back(o);
  }
  seen.erase(
      std::remove_if(seen.begin(), seen.end(), [](const Occurrence& o) { return o.index < 0; }),
      seen.end());
  // Into declaration order, keeping the wire order of a field's occurrences: an insertion sort
  // (a few dozen fields, mostly in order already; std::stable_sort would allocate).
  for (size_t i = 1; i < seen.size(); ++i) {
    const Occurrence o = seen[i];
    size_t j = i;
    for (; j > 0 && seen[j - 1].index > o.index; --j) seen[j] = seen[j - 1];
    seen[j] = o;
  }
  const size_t mark = out->size();
  out->push_back('{');
  bool first = true;
  for (size_t i = 0; i < seen.size();) {
    size_t j = i + 1;
    while (j < seen.size() && seen[j].index == seen[i].index) ++j;
    const Field& f = layout.fields[static_cast<size_t>(seen[i].index)];
    const size_t before = out->size();
    out->append(f.key, first ? 1 : 0);
    if (!f.repeated) {
      // A scalar given twice: the last counts. A message given twice is merged by a decoder.
      if (j - i > 1 && f.type == Type::TYPE_MESSAGE) {
        out->resize(mark);
        return false;
      }
      const Occurrence& o = seen[j - 1];
      if (!f.presence && IsDefault(f, o)) {
        out->resize(before);
      } else {
        if (!AppendValue(f, o, out, depth)) {
          out->resize(mark);
          return false;
        }
        first = false;
      }
    } else {
      out->push_back('[');
      size_t n = 0;
      for (size_t k = i; k < j; ++k) {
        const Occurrence& o = seen[k];
        if (o.wire == kLen && ScalarWire(f.type) != kLen) {
          const bool ok = ForEachPacked(f.type, o.payload, [&](uint64_t v) {
            if (n++ > 0) out->push_back(',');
            AppendScalar(f, v, out);
          });
          if (!ok) {
            out->resize(mark);
            return false;
          }
          continue;
        }
        if (n++ > 0) out->push_back(',');
        if (!AppendValue(f, o, out, depth)) {
          out->resize(mark);
          return false;
        }
      }
      if (n == 0) {
        out->resize(before);  // an empty packed run: nothing
      } else {
        out->push_back(']');
        first = false;
      }
    }
    i = j;
  }
  out->push_back('}');
  return true;
}

}  // namespace

bool AppendJsonFromWire(const pb::Descriptor* type, absl::string_view wire, std::string* out) {
  thread_local const pb::Descriptor* last_type = nullptr;
  thread_local const Layout* last_layout = nullptr;
  if (type != last_type) {
    last_layout = Layouts::Get().For(type);
    last_type = type;
  }
  const size_t mark = out->size();
  if (AppendMessage(*last_layout, wire, out, 0)) return true;
  out->resize(mark);
  return false;
}

}  // namespace flowscope
