// flowscope: the command people type. Hubble's flags, defaults and output layouts.
//
//   flowscope observe --since 3m --pod default/tiefighter
//   flowscope observe -o json --last 100 | jq .flow.verdict
//   flowscope status
//   flowscope list nodes
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <iostream>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "api/memory.h"
#include "api/text.h"
#include "api/time_parse.h"
#include "api/version.h"
#include "cmd/cli/commands.h"
#include "cmd/cli/config.h"
#include "cmd/cli/fd_output.h"
#include "cmd/cli/filters.h"
#include "cmd/cli/port_forward.h"

namespace {

std::atomic<bool> interrupted{false};

void OnInterrupt(int) { interrupted.store(true); }

bool IsBooleanFilter(const std::string& name) {
  return name == "not" || name == "all-namespaces" || name == "from-all-namespaces" ||
         name == "to-all-namespaces" || name == "ipv4" || name == "ipv6" || name == "encrypted" ||
         name == "unencrypted";
}

const std::map<std::string, std::string>& ShortNames() {
  static const auto* m = new std::map<std::string, std::string>{
      {"namespace", "-n"}, {"all-namespaces", "-A"}, {"label", "-l"},
      {"type", "-t"},      {"ipv4", "-4"},           {"ipv6", "-6"}};
  return *m;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex (gRPC's too) would keep a lock
  // graph for deadlock detection: a cost on every lock and unlock, for a debugging aid.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  flowscope::TuneAllocatorForStreams();
  using namespace flowscope::cli;
  signal(SIGPIPE, SIG_IGN);
  // std::cout with its own buffer: through stdio, every << is an fwrite of its own (a large
  // dump spent a fifth of its time there), and unsynchronized it writes every 8 KiB. Nothing
  // here writes to stdout through stdio. The buffer lives to the end: std::cout is flushed last.
  std::ios::sync_with_stdio(false);
  std::cout.rdbuf(new FdOutputBuffer(STDOUT_FILENO, 256 << 10));
  signal(SIGINT, OnInterrupt);
  signal(SIGTERM, OnInterrupt);

  CLI::App app{"flowscope: see which workload talked to which, and what was dropped and why"};
  app.require_subcommand(1);
  // Every option knows its default: `config view`/`get` print it, help shows it.
  app.option_defaults()->always_capture_default();
  // Checked where they are given, so a config file or `config set` refuses them too.
  const CLI::Validator duration(
      [](std::string& v) -> std::string {
        auto d = flowscope::ParseGoDuration(v);
        if (d.ok() && *d > absl::ZeroDuration()) return "";
        return "invalid duration \"" + flowscope::Quote(v) + "\": expected a duration like 5s";
      },
      "DURATION");
  const CLI::Validator time_value(
      [](std::string& v) -> std::string {
        auto t = flowscope::ParseHubbleTime(v, absl::Now());
        return t.ok() ? "" : std::string(t.status().message());
      },
      "TIME");
  const CLI::Validator format_value(
      [](std::string& v) -> std::string {
        auto f = ParseFormat(v);
        return f.ok() ? "" : std::string(f.status().message());
      },
      "FORMAT");
  const CLI::Validator list_format(
      [](std::string& v) -> std::string {
        if (v == "table" || v == "wide" || v == "json") return "";
        return "invalid output format \"" + flowscope::Quote(v) +
               "\": expected table, wide or json";
      },
      "FORMAT");
  app.set_version_flag("--version", std::string(flowscope::kClientVersion),
                       "print the client's version and exit");
  std::string server_flag = "localhost:4245", timeout_flag = "5s", request_timeout_flag = "12s";
  std::string config_path;
  bool debug = false;
  app.add_option("--server", server_flag,
                 "address of an observer or relay: host:port, tls://host:port or unix:///path");
  app.add_option("--timeout", timeout_flag, "how long to wait for the connection")->check(duration);
  app.add_option("--request-timeout", request_timeout_flag, "timeout of unary requests")
      ->check(duration);
  app.add_option("--config", config_path,
                 "config file: a YAML map of flag names to values, e.g. `server: relay:4245` "
                 "(default ~/.config/flowscope/config.yaml)");
  app.add_flag("-D,--debug", debug, "print more (node connections)");
  bool tls = false;
  flowscope::TlsClientOptions tls_options;
  std::string basic_user, basic_password;
  app.add_flag("--tls", tls, "connect with TLS (a tls://host:port server does too)");
  app.add_flag("--tls-allow-insecure", tls_options.allow_insecure,
               "TLS without checking the server's certificate");
  app.add_option("--tls-ca-cert-files", tls_options.ca_files,
                 "CA files (PEM) to check the server's certificate against (default: system)")
      ->delimiter(',');
  app.add_option("--tls-client-cert-file", tls_options.cert_file,
                 "client certificate (PEM) for mutual TLS");
  app.add_option("--tls-client-key-file", tls_options.key_file, "client key (PEM) for mutual TLS");
  app.add_option("--tls-server-name", tls_options.server_name,
                 "the name the server's certificate must carry (default: the server's host)");
  app.add_option("--basic-auth-username", basic_user, "basic auth username (TLS only)");
  app.add_option("--basic-auth-password", basic_password, "basic auth password (TLS only)");
  bool port_forward = false;
  PortForwardOptions forward_options;
  app.add_flag("-P,--port-forward", port_forward,
               "reach the relay through `kubectl port-forward` to its Service for this command");
  app.add_option("--port-forward-port", forward_options.local_port, "local port for --port-forward")
      ->capture_default_str();
  app.add_option("--kubeconfig", forward_options.kubeconfig,
                 "kubeconfig file for --port-forward (default: kubectl's, $KUBECONFIG)");
  app.add_option("--kube-context", forward_options.kube_context,
                 "kubeconfig context for --port-forward (default: the current one)");
  app.add_option("--kube-namespace", forward_options.kube_namespace,
                 "namespace of the flowscope-relay Service for --port-forward")
      ->capture_default_str();

  // --- observe ---------------------------------------------------------------------------------
  CLI::App* observe = app.add_subcommand("observe", "observe flows of an observer or the relay");
  observe->fallthrough();
  std::string what;
  observe->add_option("what", what, "flows (the default), agent-events or debug-events")
      ->check(CLI::IsMember({"flows", "agent-events", "debug-events"}));
  ObserveOptions o;
  // As text: CLI11 would take "-1" for a uint64 as 2^64-1; Hubble refuses it.
  std::string last, first;
  CLI::Option* last_opt = observe->add_option("--last", last, "get the last N flows");
  CLI::Option* first_opt = observe->add_option("--first", first, "get the first N flows");
  observe->add_flag("--all", o.all, "get all flows stored");
  observe->add_flag("-f,--follow", o.follow, "follow flows as they arrive");
  observe->add_option("--since", o.since, "flows since: a duration (3m) or a time (RFC3339)")
      ->check(time_value);
  observe->add_option("--until", o.until, "flows until: a duration or a time")->check(time_value);
  std::string output = "compact";
  observe->add_option("-o,--output", output, "compact, dict, json, jsonpb or table")
      ->check(format_value)
      ->capture_default_str();
  observe->add_flag("--print-node-name", o.printer.print_node_name, "print the node name");
  observe
      ->add_option("--time-format", o.printer.time_format,
                   "StampMilli, RFC3339, RFC3339Milli, RFC3339Micro, RFC3339Nano, RFC1123Z, "
                   "YearMonthDay, YearMonthDayHour, YearMonthDayHourMinute")
      ->capture_default_str();
  bool numeric = false;
  observe->add_flag("--numeric", numeric, "addresses instead of names");
  observe->add_option("--ip-translation", o.printer.ip_translation,
                      "names instead of addresses (default true)");
  std::string color = "auto";
  observe->add_option("--color", color, "auto (on a terminal), always or never")
      ->check(CLI::IsMember({"auto", "always", "never"}));
  std::vector<std::string> field_mask;
  observe
      ->add_option("--field-mask", field_mask,
                   "comma-separated flow fields to return (json output only; repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  observe->add_option("--use-default-field-masks", o.use_default_field_masks,
                      "ask only for the fields compact, dict and table print (default true)");
  observe->add_flag("-s,--silent-errors", o.printer.silent_errors,
                    "print no node errors or warnings on stderr");
  observe->add_flag("--print-policy-names", o.printer.print_policy_names,
                    "print the names of the policies that allowed or denied a flow");
  observe->add_option("--input-file", o.input_file,
                      "read `-o json` lines from this file ('-' for stdin) instead of a server");
  observe->add_flag("--print-raw-filters", o.print_raw_filters,
                    "print the filters that would be sent, and exit");
  // Repeatable, as Hubble's (each occurrence adds).
  observe->add_option("--allowlist", o.allowlist, "JSON FlowFilter(s) to include (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  observe->add_option("--denylist", o.denylist, "JSON FlowFilter(s) to exclude (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);

  // Filter flags, in command-line order (for --not): remember each option's flag name.
  std::map<CLI::Option*, std::string> filter_options;
  std::map<std::string, std::vector<std::string>> filter_values;
  std::map<std::string, int> filter_counts;
  for (const std::string& name : FilterFlagNames()) {
    std::string spec = "--" + name;
    if (auto s = ShortNames().find(name); s != ShortNames().end()) spec = s->second + "," + spec;
    CLI::Option* opt;
    if (IsBooleanFilter(name)) {
      opt = observe->add_flag(spec, filter_counts[name], "filter: --" + name);
    } else {
      opt = observe->add_option(spec, filter_values[name], "filter: --" + name)
                ->expected(1)
                ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    }
    filter_options[opt] = name;
  }

  // --- status, list, version -------------------------------------------------------------------
  CLI::App* status = app.add_subcommand("status", "health and flow counts of the server");
  status->fallthrough();
  std::string status_output = "compact";
  status->add_option("-o,--output", status_output, "compact, dict, json or table")
      ->check(format_value)
      ->capture_default_str();
  CLI::App* list = app.add_subcommand("list", "list nodes or namespaces");
  list->fallthrough();
  list->require_subcommand(1);
  std::string list_output = "table";
  CLI::App* nodes = list->add_subcommand("nodes", "the nodes behind the server")->alias("node");
  nodes->fallthrough();
  nodes->add_option("-o,--output", list_output, "table, wide or json")->check(list_format);
  CLI::App* namespaces = list->add_subcommand("namespaces", "namespaces seen in the last hour");
  namespaces->fallthrough();
  namespaces->add_option("-o,--output", list_output, "table, wide or json")->check(list_format);
  CLI::App* version = app.add_subcommand("version",
                                         "print the client (and with --server, the "
                                         "server) version");
  version->fallthrough();
  CLI::App* config_cmd = app.add_subcommand("config", "view or change the config file's settings");
  config_cmd->fallthrough();
  config_cmd->require_subcommand(1);
  std::string config_key, config_value;
  for (auto [name, help] :
       {std::pair{"view", "print the merged settings (flags, FLOWSCOPE_*, config file, defaults)"},
        std::pair{"get", "print one setting: get [KEY]"},
        std::pair{"set", "set a key in the config file: set KEY [VALUE] (no VALUE: its default)"},
        std::pair{"reset", "reset one key, or all, to the default: reset [KEY]"}}) {
    CLI::App* sub = config_cmd->add_subcommand(name, help);
    sub->fallthrough();
    // One string each, so CLI11 leaves a "[a,b]" list value whole.
    if (std::string(name) != "view") sub->add_option("key", config_key, "a flag's name");
    if (std::string(name) == "set") sub->add_option("value", config_value, "its value");
  }
  CLI::App* completion = app.add_subcommand("completion", "print a shell completion script");
  std::string shell;
  completion->add_option("shell", shell, "bash, zsh or fish")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh", "fish"}));

  std::vector<std::string> all_keys;  // every flag a config file can set
  for (CLI::App* a : {&app, observe, status, nodes, namespaces}) {
    for (CLI::Option* opt : a->get_options()) {
      if (opt->get_lnames().empty()) continue;
      const std::string& n = opt->get_lnames().front();
      if (n != "help" && n != "version" && n != "config" && n != "not" &&
          std::find(all_keys.begin(), all_keys.end(), n) == all_keys.end()) {
        all_keys.push_back(n);
      }
    }
  }
  std::sort(all_keys.begin(), all_keys.end());
  const std::set<std::string> filter_names(FilterFlagNames().begin(), FilterFlagNames().end());
  FlagHooks hooks;
  hooks.is_filter = [&](const std::string& name) { return filter_names.count(name) > 0; };
  hooks.check_filter = [](const std::string& name, const std::string& value) {
    FilterBuilder b;
    return b.Add(name, value);
  };
  hooks.fixed_values = [&](const CLI::App& cmd, const std::string& flag) {
    const std::string& c = cmd.get_name();
    std::vector<std::string> v;
    if (flag.empty()) {
      if (&cmd == observe) v = {"flows", "agent-events", "debug-events"};
      if (&cmd == completion) v = {"bash", "zsh", "fish"};
      if (cmd.get_parent() == config_cmd && c != "view") v = all_keys;
    } else if (flag == "output") {
      if (&cmd == observe) v = {"compact", "dict", "json", "jsonpb", "table"};
      if (&cmd == status) v = {"compact", "dict", "json", "table"};
      if (&cmd == nodes || &cmd == namespaces) v = {"table", "wide", "json"};
    } else if (flag == "color") {
      v = {"auto", "always", "never"};
    } else if (flag == "time-format") {
      v = {"StampMilli", "RFC3339",      "RFC3339Milli",     "RFC3339Micro",          "RFC3339Nano",
           "RFC1123Z",   "YearMonthDay", "YearMonthDayHour", "YearMonthDayHourMinute"};
    } else if (hooks.is_filter(flag)) {
      v = FilterFlagValues(flag);
    }
    return v;
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "flowscope: " << e.what() << "\n";
    return 2;
  }

  if (*completion) {
    auto script = CompletionScript(app, shell, hooks);
    if (!script.ok()) {
      std::cerr << "flowscope: " << script.status().message() << "\n";
      return 1;
    }
    std::cout << *script;
    return 0;
  }

  // FLOWSCOPE_<FLAG>, then the config file, fill what the command line left unset.
  if (const char* env = std::getenv("FLOWSCOPE_CONFIG"); config_path.empty() && env != nullptr) {
    config_path = env;
  }
  const bool server_given =
      app.get_option("--server")->count() > 0 || std::getenv("FLOWSCOPE_SERVER") != nullptr;
  auto config =
      LoadConfig(config_path.empty() ? DefaultConfigPath() : config_path, !config_path.empty());
  if (*config_cmd) {
    // As Hubble's: `config` works on a config the other commands refuse (to repair it).
    ConfigFile file;
    file.path = config_path.empty() ? DefaultConfigPath() : config_path;
    if (config.ok()) file = *config;
    std::vector<std::string> config_args;
    for (CLI::App* sub : config_cmd->get_subcommands()) {
      for (auto [name, value] :
           {std::pair{"key", &config_key}, std::pair{"value", &config_value}}) {
        const CLI::Option* opt = sub->get_option_no_throw(name);
        if (opt != nullptr && opt->count() > 0) config_args.push_back(*value);
      }
    }
    if (!config.ok() && !(*config_cmd->get_subcommand("reset") && config_args.empty())) {
      std::cerr << "flowscope: " << config.status().message() << "\n";
      return 1;
    }
    if (config.ok()) ApplyConfig(file, app, hooks).IgnoreError();
    for (CLI::App* sub : config_cmd->get_subcommands()) {
      return RunConfigCommand(app, sub->get_name(), config_args, file, hooks, std::cout, std::cerr);
    }
    return 1;
  }
  if (!config.ok()) {
    std::cerr << "flowscope: " << config.status().message() << "\n";
    return 1;
  }
  auto config_filters = ApplyConfig(*config, app, hooks);
  if (!config_filters.ok()) {
    std::cerr << "flowscope: " << config_filters.status().message() << "\n";
    return 1;
  }

  auto server = ResolveServer(server_flag, timeout_flag, request_timeout_flag);
  if (server.ok()) {
    server->tls = tls;
    server->tls_options = tls_options;
    server->basic_auth_username = basic_user;
    server->basic_auth_password = basic_password;
    if (absl::Status s = CheckConnectionSettings(*server); !s.ok()) server = s;
  }
  if (!server.ok()) {
    std::cerr << "flowscope: " << server.status().message() << "\n";
    return 1;
  }
  // -P: kubectl port-forward for as long as the command runs (not needed for a recorded file,
  // nor for the client's own version).
  std::unique_ptr<PortForward> forward;
  if (port_forward && !(*observe && !o.input_file.empty())) {
    if (server_given) {
      std::cerr << "flowscope: --port-forward and --server exclude each other\n";
      return 1;
    }
    auto pf = PortForward::Start(forward_options);
    if (!pf.ok()) {
      std::cerr << "flowscope: " << pf.status().message() << "\n";
      return 1;
    }
    forward = *std::move(pf);
    server->server = forward->target();
  }

  if (*observe) {
    auto format = ParseFormat(output);
    if (!format.ok()) {
      std::cerr << "flowscope: " << format.status().message() << "\n";
      return 1;
    }
    o.printer.format = *format;
    o.printer.debug = debug;
    if (numeric) o.printer.ip_translation = false;
    o.printer.color = color == "always" || (color == "auto" && isatty(STDOUT_FILENO));
    for (auto [opt, text, out] :
         {std::tuple{last_opt, &last, &o.last}, std::tuple{first_opt, &first, &o.first}}) {
      if (opt->count() == 0) continue;
      uint64_t n;
      if (!flowscope::ParseDecimal(*text, 0, std::numeric_limits<uint64_t>::max(), &n)) {
        std::cerr << "flowscope: invalid argument \"" << flowscope::Quote(*text) << "\" for \""
                  << opt->get_name() << "\" flag: expected a number 0.."
                  << std::numeric_limits<uint64_t>::max() << "\n";
        return 1;
      }
      *out = n;
    }
    for (const std::string& value : field_mask) {
      for (absl::string_view p : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        o.field_mask.emplace_back(absl::StripAsciiWhitespace(p));
      }
    }
    FilterBuilder builder;
    // FLOWSCOPE_<FILTER> and the config file's filters first, then the command line's.
    for (const auto& [name, value] : *config_filters) {
      if (absl::Status s = builder.Add(name, value); !s.ok()) {
        std::cerr << "flowscope: " << s.message() << "\n";
        return 1;
      }
    }
    std::map<std::string, size_t> used;
    for (CLI::Option* opt : observe->parse_order()) {
      auto it = filter_options.find(opt);
      if (it == filter_options.end()) continue;
      const std::string& name = it->second;
      std::string value;
      if (!IsBooleanFilter(name)) value = filter_values[name].at(used[name]++);
      if (absl::Status s = builder.Add(name, value); !s.ok()) {
        std::cerr << "flowscope: " << s.message() << "\n";
        return 1;
      }
    }
    auto filters = builder.Build();
    if (!filters.ok()) {
      std::cerr << "flowscope: " << filters.status().message() << "\n";
      return 1;
    }
    if (what == "agent-events" || what == "debug-events") {
      return ObserveEvents(*server, what == "agent-events", o, std::cout, std::cerr, &interrupted);
    }
    return Observe(*server, o, *filters, std::cout, std::cerr, &interrupted);
  }
  if (*status) {
    auto format = ParseFormat(status_output);
    if (!format.ok()) {
      std::cerr << "flowscope: " << format.status().message() << "\n";
      return 1;
    }
    return Status(*server, *format, std::cout, std::cerr);
  }
  if (*nodes) return ListNodes(*server, list_output, std::cout, std::cerr);
  if (*namespaces) return ListNamespaces(*server, list_output, std::cout, std::cerr);
  if (*version) {
    const bool ask_server = server_given || forward != nullptr;
    return Version(ask_server ? &*server : nullptr, std::cout, std::cerr);
  }
  return 0;
}
