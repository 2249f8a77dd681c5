// The `flowscope` commands — observe, status, list nodes / namespaces, version — against an
// observer or a relay (anything serving observer.Observer). Each writes its results to `out`,
// diagnostics to `err`, and returns the process exit code. Called from main's thread.
#ifndef FLOWSCOPE_CMD_CLI_COMMANDS_H_
#define FLOWSCOPE_CMD_CLI_COMMANDS_H_

#include <atomic>
#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/version.h"
#include "cmd/cli/connection.h"
#include "cmd/cli/filters.h"
#include "cmd/cli/printer.h"

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

// Parses --allowlist / --denylist values: one or more JSON FlowFilter objects, concatenated
// or comma-separated.
absl::StatusOr<std::vector<flow::FlowFilter>> ParseRawFilters(const std::string& text);

int Observe(const ServerOptions& server, const ObserveOptions& o, const Filters& filters,
            std::ostream& out, std::ostream& err, std::atomic<bool>* interrupted);
int Status(const ServerOptions& server, Format format, std::ostream& out, std::ostream& err);
int ListNodes(const ServerOptions& server, const std::string& format, std::ostream& out,
              std::ostream& err);
int ListNamespaces(const ServerOptions& server, const std::string& format, std::ostream& out,
                   std::ostream& err);
int Version(const ServerOptions* server, std::ostream& out, std::ostream& err);

// `observe agent-events` / `observe debug-events`: the server's events as JSON lines.
int ObserveEvents(const ServerOptions& server, bool agent, const ObserveOptions& o,
                  std::ostream& out, std::ostream& err, std::atomic<bool>* interrupted);

// "2,031": digits grouped by three.
std::string GroupDigits(uint64_t v);

}  // namespace flowscope::cli

#endif  // FLOWSCOPE_CMD_CLI_COMMANDS_H_
