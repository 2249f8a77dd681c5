// A small leveled logger for daemons and the CLI, on top of spdlog. Configure once at start-up
// from main() (not thread-safe against concurrent logging); the FLOWSCOPE_LOG_* macros are
// thread-safe afterwards. Per-event failures are counters, never log lines.
//
//   FLOWSCOPE_ASSIGN_OR_RETURN(auto level, flowscope::log::ParseLevel(flag_value));
//   flowscope::log::Init("flowscope-observer", level);
//   FLOWSCOPE_LOG_INFO("attached to {} interfaces", n);
#ifndef FLOWSCOPE_API_LOGGING_H_
#define FLOWSCOPE_API_LOGGING_H_

#include <spdlog/spdlog.h>

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace flowscope::log {

enum class Level { kTrace, kDebug, kInfo, kWarn, kError, kOff };

// Accepts trace, debug, info, warn (or warning), error, off; case-insensitive.
absl::StatusOr<Level> ParseLevel(absl::string_view name);

absl::string_view LevelName(Level level);

// Sends log lines to stderr as `<UTC time> <LEVEL> <program>: <message>`.
void Init(absl::string_view program, Level level);

// Changes the level of the logger set up by Init().
void SetLevel(Level level);

}  // namespace flowscope::log

#define FLOWSCOPE_LOG_TRACE(...) ::spdlog::trace(__VA_ARGS__)
#define FLOWSCOPE_LOG_DEBUG(...) ::spdlog::debug(__VA_ARGS__)
#define FLOWSCOPE_LOG_INFO(...) ::spdlog::info(__VA_ARGS__)
#define FLOWSCOPE_LOG_WARN(...) ::spdlog::warn(__VA_ARGS__)
#define FLOWSCOPE_LOG_ERROR(...) ::spdlog::error(__VA_ARGS__)

#endif  // FLOWSCOPE_API_LOGGING_H_
