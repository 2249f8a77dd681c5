// protojson straight from the wire: a message's encoded bytes written as AppendJson (json.h)
// writes the decoded message — fields in declaration order, the same mapping and escaping — but
// without decoding it into a message first (no allocation per field; the CLI's `-o json` of a
// large dump spent most of its time decoding and walking messages through reflection). Types of
// google.protobuf other than Timestamp and the wrappers are decoded and written by AppendJson.
// Pure; any thread (the per-type layouts are built once, under a lock).
#ifndef FLOWSCOPE_API_JSON_WIRE_H_
#define FLOWSCOPE_API_JSON_WIRE_H_

#include <google/protobuf/descriptor.h>

#include <string>

#include "absl/strings/string_view.h"

namespace flowscope {

// Appends the message of type `type` encoded in `wire` as one compact JSON object. Returns false
// (and leaves `out` as it was) when the bytes are not a well-formed encoding this writer takes
// (malformed, or a singular message field given twice, which a decoder would merge): the caller
// decodes them then, and writes what it gets.
bool AppendJsonFromWire(const google::protobuf::Descriptor* type, absl::string_view wire,
                        std::string* out);

}  // namespace flowscope

#endif  // FLOWSCOPE_API_JSON_WIRE_H_
