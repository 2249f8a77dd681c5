// The `flowscope status` and `flowscope list nodes|namespaces` layouts, as Hubble's CLI prints
// them (reference §6): compact/dict/table/json status, table/wide/json lists. Pure printing
// beside the flow printer; callable from any thread.
#ifndef FLOWSCOPE_CMD_CLI_TABLES_H_
#define FLOWSCOPE_CMD_CLI_TABLES_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/time/time.h"
#include "cmd/cli/printer.h"
#include "flowscope/v1/flowscope.pb.h"
#include "observer/observer.pb.h"

namespace flowscope::cli {

void PrintStatus(const ::observer::ServerStatusResponse& st, Format format, std::ostream& out);
// `format`: table, wide or json (checked by the caller).
// The nodes' flow histories under `flowscope status` (compact format; nothing when none has one).
void PrintHistory(const ::flowscope::v1::HistoryStatusResponse& history, absl::Time now,
                  std::ostream& out);
// One node's history in a few words: "1,204 flows, 2h13m (3.1 MiB)", "off", "N/A".
std::string HistoryCell(const ::flowscope::v1::NodeHistory* h, absl::Time now);

// `history` (may be null: a Hubble server) adds a HISTORY column to the table.
void PrintNodes(const ::observer::GetNodesResponse& resp,
                const ::flowscope::v1::HistoryStatusResponse* history, const std::string& format,
                std::ostream& out);
void PrintNamespaces(const ::observer::GetNamespacesResponse& resp, const std::string& format,
                     std::ostream& out);

// "2,031": digits grouped by three.
std::string GroupDigits(uint64_t v);

}  // namespace flowscope::cli

#endif  // FLOWSCOPE_CMD_CLI_TABLES_H_
