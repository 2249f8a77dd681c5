#include "api/json.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/reflection.h>
#include <google/protobuf/timestamp.pb.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstring>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"

namespace flowscope {
namespace {

namespace pb = google::protobuf;

// The bytes Go's encoder escapes (or looks at twice: 0xE2 may start U+2028/U+2029).
constexpr std::array<bool, 256> kNeedsEscape = [] {
  std::array<bool, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[static_cast<size_t>(c)] = true;
  for (unsigned char c : {'"', '\\', '<', '>', '&'}) t[c] = true;
  t[0xE2] = true;
  return t;
}();

bool NeedsEscape(unsigned char c) { return kNeedsEscape[c]; }

}  // namespace

void AppendJsonString(absl::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (size_t i = 0; i < s.size(); ++i) {
    // Copy runs of plain characters at once.
    size_t j = i;
    while (j < s.size() && !NeedsEscape(static_cast<unsigned char>(s[j]))) ++j;
    if (j > i) {
      out->append(s.data() + i, j - i);
      i = j;
      if (i == s.size()) break;
    }
    const unsigned char c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '<':
      case '>':
      case '&':
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 15]);
        break;
      default:
        if (c < 0x20) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
                   (static_cast<unsigned char>(s[i + 2]) == 0xA8 ||
                    static_cast<unsigned char>(s[i + 2]) == 0xA9)) {
          out->append(static_cast<unsigned char>(s[i + 2]) == 0xA8 ? "\\u2028" : "\\u2029");
          i += 2;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

void AppendJsonDouble(double v, std::string* out) {
  if (std::isnan(v)) {
    out->append("\"NaN\"");
  } else if (std::isinf(v)) {
    out->append(v > 0 ? "\"Infinity\"" : "\"-Infinity\"");
  } else {
    char buf[32];
    auto r = std::to_chars(buf, buf + sizeof buf, v);
    out->append(buf, r.ptr);
  }
}

void AppendJsonTimestamp(int64_t seconds, int32_t nanos, std::string* out) {
  // Flows come in time order, many within one second: its "YYYY-MM-DDTHH:MM:SS is kept.
  struct Second {
    int64_t seconds = 0;
    bool valid = false;
    char text[24];
    size_t size = 0;
  };
  thread_local Second last;
  auto put = [](char* p, int64_t v, int width) {
    for (int k = width - 1; k >= 0; --k) {
      p[k] = static_cast<char>('0' + v % 10);
      v /= 10;
    }
    return p + width;
  };
  if (!last.valid || last.seconds != seconds) {
    const absl::CivilSecond c =
        absl::ToCivilSecond(absl::FromUnixSeconds(seconds), absl::UTCTimeZone());
    char* p = last.text;
    *p++ = '"';
    p = put(p, c.year(), 4);
    *p++ = '-';
    p = put(p, c.month(), 2);
    *p++ = '-';
    p = put(p, c.day(), 2);
    *p++ = 'T';
    p = put(p, c.hour(), 2);
    *p++ = ':';
    p = put(p, c.minute(), 2);
    *p++ = ':';
    p = put(p, c.second(), 2);
    last.size = static_cast<size_t>(p - last.text);
    last.seconds = seconds;
    last.valid = true;
  }
  char buf[40];
  std::memcpy(buf, last.text, last.size);
  char* p = buf + last.size;
  if (nanos != 0) {
    *p++ = '.';
    if (nanos % 1'000'000 == 0) {
      p = put(p, nanos / 1'000'000, 3);
    } else if (nanos % 1'000 == 0) {
      p = put(p, nanos / 1'000, 6);
    } else {
      p = put(p, nanos, 9);
    }
  }
  *p++ = 'Z';
  *p++ = '"';
  out->append(buf, static_cast<size_t>(p - buf));
}

namespace {

void AppendTimestamp(const pb::Message& m, std::string* out) {
  const pb::Reflection* r = m.GetReflection();
  const pb::Descriptor* d = m.GetDescriptor();
  AppendJsonTimestamp(r->GetInt64(m, d->FindFieldByNumber(1)),
                      r->GetInt32(m, d->FindFieldByNumber(2)), out);
}

void AppendValue(const pb::Message& m, const pb::FieldDescriptor* f, int index, bool enum_numbers,
                 std::string* out);

void AppendMessage(const pb::Message& m, bool enum_numbers, std::string* out) {
  const pb::Descriptor* d = m.GetDescriptor();
  const std::string& name = d->full_name();
  if (name == "google.protobuf.Timestamp") {
    AppendTimestamp(m, out);
    return;
  }
  if (d->file()->name() == "google/protobuf/wrappers.proto") {
    const pb::FieldDescriptor* value = d->FindFieldByNumber(1);
    if (m.GetReflection()->HasField(m, value)) {
      AppendValue(m, value, -1, enum_numbers, out);
    } else {
      // A present wrapper holding the default value.
      switch (value->cpp_type()) {
        case pb::FieldDescriptor::CPPTYPE_BOOL:
          out->append("false");
          break;
        case pb::FieldDescriptor::CPPTYPE_STRING:
          out->append(value->type() == pb::FieldDescriptor::TYPE_BYTES ? "\"\"" : "\"\"");
          break;
        case pb::FieldDescriptor::CPPTYPE_INT64:
        case pb::FieldDescriptor::CPPTYPE_UINT64:
          out->append("\"0\"");
          break;
        default:
          out->append("0");
      }
    }
    return;
  }
  if (d->file()->package() == "google.protobuf") {
    // Any, Duration, FieldMask, Struct...: rare in responses; protobuf's own printer.
    std::string json;
    pb::util::JsonPrintOptions o;
    o.preserve_proto_field_names = true;
    (void)pb::util::MessageToJsonString(m, &json, o);
    out->append(json);
    return;
  }
  std::vector<const pb::FieldDescriptor*> fields;
  m.GetReflection()->ListFields(m, &fields);  // by number
  // In the .proto's declaration order, as protojson (Hubble's CLI) writes them.
  std::sort(fields.begin(), fields.end(),
            [](const pb::FieldDescriptor* a, const pb::FieldDescriptor* b) {
              return a->index() < b->index();
            });
  out->push_back('{');
  bool first = true;
  for (const pb::FieldDescriptor* f : fields) {
    if (!first) out->push_back(',');
    first = false;
    AppendJsonString(f->name(), out);
    out->push_back(':');
    if (f->is_repeated()) {
      out->push_back('[');
      const int n = m.GetReflection()->FieldSize(m, f);
      for (int i = 0; i < n; ++i) {
        if (i > 0) out->push_back(',');
        AppendValue(m, f, i, enum_numbers, out);
      }
      out->push_back(']');
    } else {
      AppendValue(m, f, -1, enum_numbers, out);
    }
  }
  out->push_back('}');
}

void AppendValue(const pb::Message& m, const pb::FieldDescriptor* f, int i, bool enum_numbers,
                 std::string* out) {
  const pb::Reflection* r = m.GetReflection();
  const bool rep = i >= 0;
  switch (f->cpp_type()) {
    case pb::FieldDescriptor::CPPTYPE_INT32:
      absl::StrAppend(out, rep ? r->GetRepeatedInt32(m, f, i) : r->GetInt32(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_UINT32:
      absl::StrAppend(out, rep ? r->GetRepeatedUInt32(m, f, i) : r->GetUInt32(m, f));
      break;
    case pb::FieldDescriptor::CPPTYPE_INT64:
      absl::StrAppend(out, "\"", rep ? r->GetRepeatedInt64(m, f, i) : r->GetInt64(m, f), "\"");
      break;
    case pb::FieldDescriptor::CPPTYPE_UINT64:
      absl::StrAppend(out, "\"", rep ? r->GetRepeatedUInt64(m, f, i) : r->GetUInt64(m, f), "\"");
      break;
    case pb::FieldDescriptor::CPPTYPE_DOUBLE:
      AppendJsonDouble(rep ? r->GetRepeatedDouble(m, f, i) : r->GetDouble(m, f), out);
      break;
    case pb::FieldDescriptor::CPPTYPE_FLOAT:
      AppendJsonDouble(rep ? r->GetRepeatedFloat(m, f, i) : r->GetFloat(m, f), out);
      break;
    case pb::FieldDescriptor::CPPTYPE_BOOL:
      out->append((rep ? r->GetRepeatedBool(m, f, i) : r->GetBool(m, f)) ? "true" : "false");
      break;
    case pb::FieldDescriptor::CPPTYPE_ENUM: {
      const int v = rep ? r->GetRepeatedEnumValue(m, f, i) : r->GetEnumValue(m, f);
      const pb::EnumValueDescriptor* e = f->enum_type()->FindValueByNumber(v);
      if (e != nullptr && !enum_numbers) {
        AppendJsonString(e->name(), out);
      } else {
        absl::StrAppend(out, v);
      }
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_STRING: {
      std::string scratch;
      const std::string& s = rep ? r->GetRepeatedStringReference(m, f, i, &scratch)
                                 : r->GetStringReference(m, f, &scratch);
      if (f->type() == pb::FieldDescriptor::TYPE_BYTES) {
        AppendJsonString(absl::Base64Escape(s), out);
      } else {
        AppendJsonString(s, out);
      }
      break;
    }
    case pb::FieldDescriptor::CPPTYPE_MESSAGE:
      AppendMessage(rep ? r->GetRepeatedMessage(m, f, i) : r->GetMessage(m, f), enum_numbers, out);
      break;
  }
}

}  // namespace

void AppendJson(const pb::Message& m, std::string* out) { AppendMessage(m, false, out); }

void AppendJsonEnumNumbers(const pb::Message& m, std::string* out) { AppendMessage(m, true, out); }

}  // namespace flowscope
