// flowscope-observer: the per-node daemon. Reports the flows of the interfaces it attaches to
// (real eBPF, tc) and serves them with Hubble's observer.Observer API.
//
//   flowscope-observer --node-name node-1 --interfaces 'veth*,lxc*' --endpoints eps.yaml
//                      --policy policy.yaml --ring-capacity 65535 --aggregation medium
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/synchronization/mutex.h"
#include "api/listener.h"
#include "api/logging.h"
#include "api/memory.h"
#include "api/time_parse.h"
#include "api/version.h"
#include "bpf/drop_reasons.h"
#include "observer/daemon.h"

namespace {

int Fail(const std::string& message) {
  std::cerr << "flowscope-observer: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex (gRPC's too) would keep a lock
  // graph for deadlock detection: a cost on every lock and unlock, for a debugging aid.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  flowscope::TuneAllocatorForStreams();
  using flowscope::observer::DaemonOptions;
  DaemonOptions o;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  o.node_name = host;
  std::string aggregation = "medium";
  std::string report_interval = "5s";
  std::string log_level = "info";
  bool print_version = false;

  CLI::App app{"flowscope-observer: per-node flow observer (eBPF datapath, Hubble-compatible API)"};
  app.set_config("--config", "", "read flags from a TOML/INI file (key = value, one per flag)");
  // A key the daemon does not know is an error naming it, not silently ignored.
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.add_option("--node-name", o.node_name, "name of this node in flows and status")
      ->capture_default_str();
  app.add_option("--cluster-name", o.cluster_name, "cluster name for endpoints")
      ->capture_default_str();
  app.add_option("--interfaces", o.interfaces,
                 "comma-separated name patterns of endpoint interfaces (host side)")
      ->capture_default_str();
  app.add_option("--network-interfaces", o.network_interfaces,
                 "comma-separated uplink interfaces (from-network / to-network)");
  app.add_option("--endpoints", o.endpoints_file,
                 "JSON or YAML endpoints file (re-read on change)");
  app.add_flag("--kubernetes", o.kubernetes,
               "endpoints from the Kubernetes API server, with the pod's service account");
  app.add_option("--kubeconfig", o.kubeconfig,
                 "endpoints from the Kubernetes API server named in this kubeconfig file");
  app.add_option("--kube-context", o.kube_context,
                 "the kubeconfig context to use (default: its current-context)");
  app.add_option("--policy", o.policy_file, "JSON or YAML deny policy file (re-read on change)");
  app.add_option("--ring-capacity", o.ring_capacity, "flows kept in memory: 2^n-1, n in 1..24")
      ->capture_default_str();
  app.add_option("--aggregation", aggregation, "none, medium or maximum")->capture_default_str();
  app.add_option("--report-interval", report_interval,
                 "how often an active flow is reported under medium aggregation")
      ->capture_default_str();
  app.add_option("--ring-buffer-bytes", o.datapath.ring_buffer_bytes,
                 "BPF ring buffer size (a power of two)")
      ->capture_default_str();
  app.add_option("--flow-table-entries", o.datapath.flow_table_entries,
                 "BPF flow table (LRU) entries")
      ->capture_default_str();
  app.add_option("--kernel-drops", o.datapath.kernel_drops,
                 "report the kernel's drops of this node's endpoints' packets (skb:kfree_skb)")
      ->capture_default_str();
  app.add_option("--kernel-drops-ignore", o.datapath.ignored_kernel_reasons,
                 "kernel drop reasons not reported (comma-separated)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--dns", o.datapath.dns,
                 "report DNS queries and answers of this node's endpoints as Hubble's L7 DNS "
                 "flows (UDP and TCP port 53, read from the packets)")
      ->capture_default_str();
  app.add_option("--listen-socket", o.listen_socket, "unix socket to serve on ('' for none)")
      ->capture_default_str();
  app.add_option("--listen-address", o.listen_address, "TCP address to serve on, e.g. :4244");
  app.add_option("--cluster-nodes", o.cluster_nodes,
                 "other nodes' observers, name=address, announced by peer.Peer/Notify (Hubble's "
                 "discovery API) beside this node and, with --kubernetes, the cluster's Nodes")
      ->delimiter(',');
  app.add_option("--tls-cert-file", o.tls.cert_file, "TLS certificate (PEM) for --listen-address");
  app.add_option("--tls-key-file", o.tls.key_file, "TLS private key (PEM) for --listen-address");
  app.add_option("--tls-client-ca-files", o.tls.client_ca_files,
                 "CA files (PEM) clients must present certificates from (mutual TLS)")
      ->delimiter(',');
  app.add_option("--http-address", o.http_address,
                 "address of /metrics, /healthz and /readyz ('' for none)")
      ->capture_default_str();
  app.add_flag(
      "--http-tls", o.http_tls,
      "serve /metrics, /healthz and /readyz over HTTPS with --tls-cert-file/--tls-key-file "
      "(and --tls-client-ca-files)");
  app.add_option("--metrics", o.metrics,
                 "Hubble metrics to count, e.g. \"flow:sourceContext=namespace drop tcp\" (flow, "
                 "drop, tcp, port-distribution, icmp, flows-to-world; options as Hubble's)");
  uint64_t export_max_mb = 10;
  app.add_option("--export-file-path", o.export_file_path,
                 "write flows as JSON ExportEvent lines to this file ('stdout' for stdout)");
  app.add_option("--export-file-max-size-mb", export_max_mb, "rotate the export file at this size")
      ->capture_default_str()
      ->check(CLI::Range(uint64_t{1}, uint64_t{1} << 20));
  app.add_option("--export-file-max-backups", o.export_rotation.max_backups,
                 "rotated export files kept")
      ->capture_default_str()
      ->check(CLI::Range(0, 10000));
  app.add_flag("--export-file-compress", o.export_rotation.compress, "gzip rotated export files");
  app.add_option("--export-allowlist", o.export_allowlist,
                 "JSON FlowFilters: export only matching flows (several: comma-separated)");
  app.add_option("--export-denylist", o.export_denylist,
                 "JSON FlowFilters: do not export matching flows");
  app.add_option("--export-fieldmask", o.export_fieldmask,
                 "Flow fields to keep in exported flows, e.g. time source.namespace verdict")
      ->delimiter(',');
  app.add_option("--flowlogs-config", o.flowlogs_config,
                 "YAML file of dynamic exporters (flowLogs: name, filePath, fieldMask, "
                 "includeFilters, excludeFilters, end), re-read on change");
  app.add_option("--max-flow-streams", o.max_flow_streams,
                 "flow streams served at once; more are refused with RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--state-dir", o.state_dir, "runtime state (tc attachments)")
      ->capture_default_str();
  std::string history_max_age = "24h";
  app.add_option("--history", o.history,
                 "keep a flow history on disk (in --data-dir), so queries reach past the ring and "
                 "across restarts")
      ->capture_default_str();
  app.add_option("--data-dir", o.data_dir, "where the flow history lives (<dir>/history)")
      ->capture_default_str();
  app.add_option("--history-max-age", history_max_age,
                 "drop stored flows older than this (a duration: 90m, 24h, 7d is 168h)")
      ->capture_default_str();
  app.add_option("--history-max-bytes", o.history_max_bytes,
                 "keep the stored flows under this size on disk, the oldest going first (bytes, "
                 "or with a unit: 512MiB, 1GiB)")
      ->capture_default_str()
      ->transform(CLI::AsSizeValue(false))
      ->check(CLI::Range(uint64_t{16} << 20, uint64_t{1} << 44));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  app.add_flag("--version", print_version, "print the version and exit");
  CLI11_PARSE(app, argc, argv);

  if (print_version) {
    std::cout << flowscope::kObserverVersion << "\n";
    return 0;
  }
  auto level = flowscope::log::ParseLevel(log_level);
  if (!level.ok()) return Fail(std::string(level.status().message()));
  flowscope::log::Init("flowscope-observer", *level);
  auto agg = flowscope::bpf::ParseAggregation(aggregation);
  if (!agg.ok()) return Fail(std::string(agg.status().message()));
  o.datapath.aggregation = *agg;
  for (const std::string& name : o.datapath.ignored_kernel_reasons) {
    if (!flowscope::bpf::KernelDropReasonId(name).has_value()) {
      return Fail("invalid --kernel-drops-ignore \"" + name.substr(0, 100) +
                  "\": expected kernel drop reasons such as QUEUE_PURGE or NETFILTER_DROP");
    }
  }
  auto interval = flowscope::ParseGoDuration(report_interval);
  if (!interval.ok() || *interval <= absl::ZeroDuration()) {
    return Fail("invalid --report-interval \"" + report_interval +
                "\": expected a positive duration like 5s");
  }
  o.datapath.report_interval = *interval;
  if (!o.listen_address.empty() && o.listen_address[0] == ':') {
    o.listen_address = "0.0.0.0" + o.listen_address;
  }
  if (o.node_name.empty()) return Fail("--node-name must not be empty");
  o.export_rotation.max_size_bytes = export_max_mb << 20;
  auto max_age = flowscope::ParseGoDuration(history_max_age);
  if (!max_age.ok() || *max_age <= absl::ZeroDuration()) {
    return Fail("invalid --history-max-age \"" + history_max_age +
                "\": expected a positive duration like 24h or 90m");
  }
  o.history_max_age = *max_age;

  // Signals are taken by sigwait() below; every thread started from here inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Connections and streams each hold a descriptor: use every one the system allows.
  FLOWSCOPE_LOG_INFO("open-file limit {}", flowscope::RaiseOpenFileLimit());
  flowscope::observer::ObserverDaemon daemon(o);
  if (absl::Status s = daemon.Start(); !s.ok()) {
    daemon.Stop();
    return Fail(std::string(s.message()));
  }
  int sig = 0;
  sigwait(&signals, &sig);
  FLOWSCOPE_LOG_INFO("received {}, shutting down", sig == SIGTERM ? "SIGTERM" : "SIGINT");
  daemon.Stop();
  const auto stats = daemon.stats();
  FLOWSCOPE_LOG_INFO("stopped ({} events, {} malformed, {} lost in the kernel)", stats.events,
                     stats.malformed, stats.kernel_lost);
  return 0;
}
