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
#include "cmd/cli/request.h"
#include "cmd/cli/tables.h"

namespace flowscope::cli {

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

}  // namespace flowscope::cli

#endif  // FLOWSCOPE_CMD_CLI_COMMANDS_H_
