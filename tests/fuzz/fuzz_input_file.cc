// libFuzzer: `flowscope observe --input-file` lines — Hubble's `-o json` GetFlowsResponse —
// parsed as the CLI parses them and printed in every output format.
#include <google/protobuf/util/json_util.h>

#include <cstdint>
#include <sstream>
#include <string>

#include "cmd/cli/printer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string line(reinterpret_cast<const char*>(data), size);
  ::observer::GetFlowsResponse resp;
  google::protobuf::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = true;
  if (!google::protobuf::util::JsonStringToMessage(line, &resp, parse).ok()) return 0;
  using flowscope::cli::Format;
  for (Format f : {Format::kCompact, Format::kDict, Format::kJson, Format::kTable}) {
    std::ostringstream out, err;
    flowscope::cli::PrinterOptions o;
    o.format = f;
    o.print_node_name = true;
    o.debug = true;
    o.print_policy_names = true;
    flowscope::cli::Printer printer(o, out, err);
    printer.Write(resp);
    printer.Finish();
  }
  return 0;
}
