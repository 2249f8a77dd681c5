// The `flowscope observe` printers: GetFlowsResponses (and agent and debug events) rendered
// exactly as Hubble's CLI prints them (the reference §6.2–§6.3) in the compact, dict, table and
// json/jsonpb formats. Flows and
// lost events go to `out`; node-status notices to `err`. One printer per command; not
// thread-safe.
//
//   cli::Printer p({.format = cli::Format::kCompact}, std::cout, std::cerr);
//   for (const auto& resp : stream) p.Write(resp);
//   p.Finish();   // the table format prints everything here
#ifndef FLOWSCOPE_CMD_CLI_PRINTER_H_
#define FLOWSCOPE_CMD_CLI_PRINTER_H_

#include <google/protobuf/arena.h>

#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "observer/observer.pb.h"

namespace flowscope::cli {

enum class Format { kCompact, kDict, kTable, kJson };

// "compact", "dict", "table" (or "tab"), "json" / "jsonpb".
absl::StatusOr<Format> ParseFormat(absl::string_view name);

struct PrinterOptions {
  Format format = Format::kCompact;
  std::string time_format = "StampMilli";  // Hubble's --time-format names
  bool print_node_name = false;
  bool ip_translation = true;       // false: addresses instead of pod names (--numeric)
  bool debug = false;               // also print CONNECTED / GONE node notices
  bool flush_each_line = true;      // follow mode: every line out at once (`| jq`, `| head`)
  bool color = false;               // ANSI colours (compact and dict only)
  bool silent_errors = false;       // no node-status notices on stderr
  bool print_policy_names = false;  // " BY name (Kind)" after the verdict
};

// A timestamp in one of Hubble's --time-format layouts, in UTC; "N/A" when it is missing
// (nullptr) or invalid.
std::string FormatTime(const google::protobuf::Timestamp* ts, absl::string_view layout);

// The compact TYPE column for a flow ("to-endpoint", "Policy denied", ...).
std::string FlowType(const flow::Flow& f);

class Printer {
 public:
  Printer(PrinterOptions options, std::ostream& out, std::ostream& err);

  // Prints (or, for the table, keeps) one response. Returns false if `out` failed (a closed
  // pipe), so the caller can stop quietly.
  bool Write(const ::observer::GetFlowsResponse& resp);
  // The same for a response still encoded (a FlowStream batch's event): `-o json` is written
  // straight from the bytes; other formats decode it. Bytes that do not decode are reported on
  // `err` and skipped.
  bool WriteEncoded(absl::string_view wire);

  // `observe agent-events` and `observe debug-events`, in the same formats as Hubble prints
  // them (one printer prints one kind of response).
  bool WriteAgentEvent(const ::observer::GetAgentEventsResponse& resp);
  bool WriteDebugEvent(const ::observer::GetDebugEventsResponse& resp);

  // Prints what is kept (the table) and flushes.
  bool Finish();

 private:
  void WriteFlowCompact(const ::observer::GetFlowsResponse& resp);
  void WriteFlowDict(const ::observer::GetFlowsResponse& resp);
  void WriteLost(const ::observer::GetFlowsResponse& resp);
  void WriteNodeStatus(const ::observer::GetFlowsResponse& resp);
  std::string Host(const flow::Flow& f, bool source) const;

  std::string Paint(const char* color, absl::string_view text) const;
  std::string PaintedVerdict(const flow::Flow& f) const;

  PrinterOptions options_;
  std::ostream& out_;
  std::ostream& err_;
  bool WriteJson(const google::protobuf::Message& m);
  // An agent or debug event, after its time and node: the compact line's rest, the dict's
  // fields (labels padded as Hubble's), the table's columns.
  struct EventLayout {
    std::string compact;
    std::vector<std::pair<const char*, std::string>> dict;
    std::vector<std::string> header;
    std::vector<std::string> row;
  };
  bool WriteEvent(const google::protobuf::Timestamp* time, const std::string& node,
                  const EventLayout& e);
  // A dict record's separator (Hubble prints none before the first).
  void DictSeparator(const char* after);

  bool first_dict_ = true;
  std::vector<std::string> table_header_;  // when not the flows' header
  std::vector<std::vector<std::string>> table_;
  std::string line_;  // reused for -o json
  // WriteEncoded decodes into an arena inside one block, reset every few responses: no malloc
  // and free per field, and no memory handed back and forth with the kernel.
  static constexpr size_t kArenaBlock = 256 << 10;
  std::unique_ptr<char[]> arena_block_{new char[kArenaBlock]};
  google::protobuf::Arena arena_{arena_block_.get(), kArenaBlock};
  int arena_uses_ = 0;
};

// Go's text/tabwriter with Hubble's settings (minwidth 2, padding 3, spaces): every cell but
// the last of each row is padded to its column's widest cell plus 3.
std::string TabWrite(const std::vector<std::vector<std::string>>& rows);

}  // namespace flowscope::cli

#endif  // FLOWSCOPE_CMD_CLI_PRINTER_H_
