// libFuzzer: JSON straight from the wire (the CLI's -o json of every flow a server sends). Any
// bytes: either refused, or exactly what decoding them and printing the message gives.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "absl/strings/string_view.h"
#include "api/json.h"
#include "api/json_wire.h"
#include "observer/observer.pb.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view wire(reinterpret_cast<const char*>(data), size);
  std::string ours;
  if (!flowscope::AppendJsonFromWire(::observer::GetFlowsResponse::descriptor(), wire, &ours)) {
    if (!ours.empty()) std::abort();  // a refusal leaves the output as it was
    return 0;
  }
  ::observer::GetFlowsResponse m;
  // protobuf also refuses strings that are not UTF-8, which the writer passes through.
  if (!m.ParseFromArray(data, static_cast<int>(size))) return 0;
  std::string theirs;
  flowscope::AppendJson(m, &theirs);
  if (ours != theirs) std::abort();
  return 0;
}
