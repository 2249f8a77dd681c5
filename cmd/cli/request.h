// What `flowscope observe` asks a server for: its options, and the GetFlowsRequest they make
// (number / first / follow / since / until as Hubble's CLI sets them, filters, raw
// --allowlist/--denylist JSON, field masks). Pure functions; called from main's thread.
#ifndef FLOWSCOPE_CMD_CLI_REQUEST_H_
#define FLOWSCOPE_CMD_CLI_REQUEST_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "cmd/cli/filters.h"
#include "cmd/cli/printer.h"
#include "observer/observer.pb.h"

namespace flowscope::cli {

struct ObserveOptions {
  std::optional<uint64_t> last;
  std::optional<uint64_t> first;
  bool all = false;
  bool follow = false;
  std::string since;
  std::string until;
  PrinterOptions printer;
  bool print_raw_filters = false;
  std::vector<std::string> allowlist;  // raw JSON FlowFilters
  std::vector<std::string> denylist;
  std::vector<std::string> field_mask;  // --field-mask (json output only)
  bool use_default_field_masks = true;  // compact/dict/table ask only for what they print
  // --input-file: read `-o json` lines from this file ("-" for stdin) instead of a server, and
  // apply the filters, --last/--first/--all and --since/--until here.
  std::string input_file;
};

// The flow fields compact, dict and table output print (sent as the request's field_mask).
const std::vector<std::string>& DefaultFieldMask();

// Builds the GetFlowsRequest (number / first / follow / since / until rules of the CLI).
absl::StatusOr<::observer::GetFlowsRequest> BuildRequest(const ObserveOptions& o,
                                                         const Filters& filters, absl::Time now);

// The number / follow / since / until of an agent- or debug-events request, as Hubble's
// `observe agent-events|debug-events` sets them (returned in a GetFlowsRequest's fields).
absl::StatusOr<::observer::GetFlowsRequest> BuildEventsRequest(const ObserveOptions& o,
                                                               absl::Time now);

// Parses --allowlist / --denylist values: one or more JSON FlowFilter objects, concatenated
// or comma-separated.
absl::StatusOr<std::vector<flow::FlowFilter>> ParseRawFilters(const std::string& text);

}  // namespace flowscope::cli

#endif  // FLOWSCOPE_CMD_CLI_REQUEST_H_
