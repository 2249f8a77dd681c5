// The `flowscope status` and `flowscope list nodes|namespaces` layouts, as Hubble's CLI prints
// them (reference §6): compact/dict/table/json status, table/wide/json lists. Pure printing
// beside the flow printer; callable from any thread.
#ifndef FLOWSCOPE_CMD_CLI_TABLES_H_
#define FLOWSCOPE_CMD_CLI_TABLES_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "cmd/cli/printer.h"
#include "observer/observer.pb.h"

namespace flowscope::cli {

void PrintStatus(const ::observer::ServerStatusResponse& st, Format format, std::ostream& out);
// `format`: table, wide or json (checked by the caller).
void PrintNodes(const ::observer::GetNodesResponse& resp, const std::string& format,
                std::ostream& out);
void PrintNamespaces(const ::observer::GetNamespacesResponse& resp, const std::string& format,
                     std::ostream& out);

// "2,031": digits grouped by three.
std::string GroupDigits(uint64_t v);

}  // namespace flowscope::cli

#endif  // FLOWSCOPE_CMD_CLI_TABLES_H_
