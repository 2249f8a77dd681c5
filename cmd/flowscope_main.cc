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
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/text.h"
#include "api/version.h"
#include "cmd/cli/commands.h"
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
  using namespace flowscope::cli;
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, OnInterrupt);
  signal(SIGTERM, OnInterrupt);

  CLI::App app{"flowscope: see which workload talked to which, and what was dropped and why"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string(flowscope::kClientVersion),
                       "print the client's version and exit");
  std::string server_flag, timeout_flag, request_timeout_flag, config_path;
  bool debug = false;
  app.add_option("--server", server_flag,
                 "address of an observer or relay: host:port or unix:///path "
                 "(default localhost:4245, or $FLOWSCOPE_SERVER)");
  app.add_option("--timeout", timeout_flag, "how long to wait for the connection (default 5s)");
  app.add_option("--request-timeout", request_timeout_flag,
                 "timeout of unary requests (default 12s)");
  app.add_option("--config", config_path,
                 "config file (default ~/.config/flowscope/config.yaml): server, timeouts, tls-*, "
                 "basic-auth-*");
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
  observe->add_option("--since", o.since, "flows since: a duration (3m) or a time (RFC3339)");
  observe->add_option("--until", o.until, "flows until: a duration or a time");
  std::string output = "compact";
  observe->add_option("-o,--output", output, "compact, dict, json, jsonpb or table")
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
      ->capture_default_str();
  CLI::App* list = app.add_subcommand("list", "list nodes or namespaces");
  list->fallthrough();
  list->require_subcommand(1);
  std::string list_output = "table";
  CLI::App* nodes = list->add_subcommand("nodes", "the nodes behind the server")->alias("node");
  nodes->fallthrough();
  nodes->add_option("-o,--output", list_output, "table, wide or json")->capture_default_str();
  CLI::App* namespaces = list->add_subcommand("namespaces", "namespaces seen in the last hour");
  namespaces->fallthrough();
  namespaces->add_option("-o,--output", list_output, "table, wide or json")->capture_default_str();
  CLI::App* version = app.add_subcommand("version",
                                         "print the client (and with --server, the "
                                         "server) version");
  version->fallthrough();

  // Every flag but the filters can also come from FLOWSCOPE_<FLAG> (as Hubble's from HUBBLE_*):
  // the command line wins over the environment, the environment over the config file.
  const auto bind_environment = [&](CLI::App* a) {
    for (CLI::Option* opt : a->get_options()) {
      if (filter_options.count(opt) > 0 || opt->get_lnames().empty()) continue;
      const std::string& name = opt->get_lnames().front();
      if (name == "help" || name == "version") continue;
      std::string env = "FLOWSCOPE_" + absl::AsciiStrToUpper(name);
      std::replace(env.begin(), env.end(), '-', '_');
      opt->envname(env);
    }
  };
  for (CLI::App* a : {&app, observe, status, list, nodes, namespaces, version}) bind_environment(a);

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

  auto server = ResolveServer(server_flag, timeout_flag, request_timeout_flag, config_path);
  if (server.ok()) {
    // Flags win over the config file.
    if (tls) server->tls = true;
    if (tls_options.allow_insecure) server->tls_options.allow_insecure = true;
    if (!tls_options.ca_files.empty()) server->tls_options.ca_files = tls_options.ca_files;
    if (!tls_options.cert_file.empty()) server->tls_options.cert_file = tls_options.cert_file;
    if (!tls_options.key_file.empty()) server->tls_options.key_file = tls_options.key_file;
    if (!tls_options.server_name.empty()) {
      server->tls_options.server_name = tls_options.server_name;
    }
    if (!basic_user.empty()) server->basic_auth_username = basic_user;
    if (!basic_password.empty()) server->basic_auth_password = basic_password;
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
    if (!server_flag.empty()) {
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
    const bool ask_server = !server_flag.empty() || forward != nullptr;
    return Version(ask_server ? &*server : nullptr, std::cout, std::cerr);
  }
  return 0;
}
