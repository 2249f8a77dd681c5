// The CLI's settings beyond the command line, as Hubble's: a YAML config file whose keys are
// flag names (`server: relay:4245`, `since: 3m`, `pod: [default/tiefighter]`, and the
// `allowlist:`/`denylist:` that `observe --print-raw-filters` prints), FLOWSCOPE_<FLAG>
// environment variables, and the precedence flag > environment > config file > default.
//
// This file also holds the commands that work on those settings: `config view|get|set|reset`
// and `completion bash|zsh|fish`. Everything is driven by the CLI11 command tree main() builds,
// so a new flag is configurable, settable and completed without being listed here. Called
// from main's thread.
#ifndef FLOWSCOPE_CMD_CLI_CONFIG_H_
#define FLOWSCOPE_CMD_CLI_CONFIG_H_

#include <CLI/CLI.hpp>
#include <functional>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace flowscope::cli {

struct ConfigEntry {
  std::string key;                  // a flag's long name, lowercased
  std::vector<std::string> values;  // a scalar is one value
  bool list = false;                // written as a YAML sequence
  bool plain = false;               // written unquoted (a bool or a number)
};

struct ConfigFile {
  std::string path;  // the file read (or to write): --config, FLOWSCOPE_CONFIG or the default
  bool exists = false;
  std::vector<ConfigEntry> entries;  // in file order

  const ConfigEntry* Find(const std::string& key) const;
};

// $XDG_CONFIG_HOME/flowscope/config.yaml, else ~/.config/flowscope/config.yaml ("" without a
// home).
std::string DefaultConfigPath();

// Reads a config file. A file that does not exist is an error only when `required` (the path
// was given with --config or FLOWSCOPE_CONFIG); otherwise it is an empty config. Errors name
// the file and the line or key: not a map, a nested map, a YAML syntax error.
absl::StatusOr<ConfigFile> LoadConfig(const std::string& path, bool required);

// Rewrites `path` (creating its directory) with `key` set to `value`, or removed when `value`
// is nullopt; other keys keep their values and order. An empty `key` with nullopt removes all.
absl::Status SaveConfigValue(const std::string& path, const std::string& key,
                             const std::optional<ConfigEntry>& value);

// A YAML scalar as Go's yaml.v3 writes one: plain when it reads back as the same string,
// otherwise quoted ("" for empty).
std::string YamlScalar(const std::string& s);

// What main() knows about its flags that the CLI11 tree does not say.
struct FlagHooks {
  // Filter flags do not bind to a variable: their values go to the filter builder in order.
  std::function<bool(const std::string& name)> is_filter;
  // Whether `value` is a valid value of filter flag `name` (as the filter builder takes it).
  std::function<absl::Status(const std::string& name, const std::string& value)> check_filter;
  // The fixed values a flag of `command` takes, for completion ({} when free text).
  std::function<std::vector<std::string>(const CLI::App& command, const std::string& flag)>
      fixed_values;
};

// After `app.parse`: every option of the commands being run that neither the command line nor
// the environment set takes its value from `config`. Filter flags are not set; the values of
// those the command line did not give come back, environment first (FLOWSCOPE_POD=…), then
// config file, as (name, value) pairs to add before the command line's filters. Errors name
// the file and key: a key that is no flag of any command, a list for a one-value flag, a value
// the flag refuses.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> ApplyConfig(
    const ConfigFile& config, CLI::App& app, const FlagHooks& hooks);

// `config <action> args…` (view, get [KEY], set KEY [VALUE], reset [KEY]) as Hubble's: view
// prints the merged settings of the global flags and the file's other keys, get one key's
// value, set/reset rewrite `config.path` (set KEY without a value and reset KEY remove the key,
// so it takes its default again). Returns the exit code.
int RunConfigCommand(CLI::App& app, const std::string& action, const std::vector<std::string>& args,
                     const ConfigFile& config, const FlagHooks& hooks, std::ostream& out,
                     std::ostream& err);

// A completion script for `shell` (bash, zsh or fish) covering every command, flag and the
// fixed values of the flags that have them (-o, --verdict, …).
absl::StatusOr<std::string> CompletionScript(const CLI::App& app, const std::string& shell,
                                             const FlagHooks& hooks);

}  // namespace flowscope::cli

#endif  // FLOWSCOPE_CMD_CLI_CONFIG_H_
