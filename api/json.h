// Fast proto3-JSON encoding of responses (the CLI's `-o json`, the flow exporter): the mapping
// protobuf's JSON printer uses with original field names (enums by name, 64-bit integers as
// strings, wrappers as bare values, RFC3339 UTC timestamps with 0/3/6/9 fractional digits,
// defaults omitted), fields in the .proto's declaration order as protojson (so Hubble's CLI)
// writes them, written directly through reflection instead of protobuf's slower generic path.
// Strings are escaped as Go's encoder does in Hubble's CLI (including <, > and &). Pure; any
// thread.
#ifndef FLOWSCOPE_API_JSON_H_
#define FLOWSCOPE_API_JSON_H_

#include <google/protobuf/message.h>

#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace flowscope {

// Appends `s` as a JSON string, escaped as Go's encoder does.
void AppendJsonString(absl::string_view s, std::string* out);

// A double as protojson writes it (NaN and the infinities as strings), and a Timestamp's
// seconds and nanos as its RFC3339 string (0, 3, 6 or 9 fractional digits), quotes included.
void AppendJsonDouble(double v, std::string* out);
void AppendJsonTimestamp(int64_t seconds, int32_t nanos, std::string* out);

// Appends `m` as one compact JSON object.
void AppendJson(const google::protobuf::Message& m, std::string* out);

// The same with enums as numbers, as Go's encoding/json writes a generated message (Hubble's
// `observe --print-raw-filters`: `{"verdict":[2]}`).
void AppendJsonEnumNumbers(const google::protobuf::Message& m, std::string* out);

}  // namespace flowscope

#endif  // FLOWSCOPE_API_JSON_H_
