// ObserverDaemon: flowscope-observer's parts wired together — the BPF datapath, the attach
// manager, the endpoint and policy files, the drain thread (ring buffer -> parser -> FlowRing),
// and the gRPC server. main() builds DaemonOptions from flags, calls Start(), waits for a
// signal and calls Stop(). Start/Stop from one thread.
#ifndef FLOWSCOPE_OBSERVER_DAEMON_H_
#define FLOWSCOPE_OBSERVER_DAEMON_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "api/grpc_server.h"
#include "api/http_server.h"
#include "api/metrics.h"
#include "api/peer_service.h"
#include "api/tls.h"
#include "bpf/datapath.h"
#include "observer/attach_manager.h"
#include "observer/dynamic_exporters.h"
#include "observer/endpoint_source.h"
#include "observer/exporter.h"
#include "observer/flow_builder.h"
#include "observer/flow_metrics.h"
#include "observer/flow_query.h"
#include "observer/history.h"
#include "observer/kube_source.h"
#include "observer/observer_service.h"
#include "observer/parser.h"
#include "observer/policy.h"
#include "observer/watermark.h"
#include "ringbuf/event_consumer.h"

namespace flowscope::observer {

struct DaemonOptions {
  std::string node_name;
  std::string cluster_name = "default";
  std::string interfaces = "lxc*,veth*,cali*";  // endpoint interface patterns
  std::string network_interfaces;               // uplinks
  std::string endpoints_file;
  // Endpoints from the Kubernetes API server (kube_source.h): in-cluster when `kubernetes`,
  // through a kubeconfig file when one is given.
  bool kubernetes = false;
  std::string kubeconfig;
  std::string kube_context;
  std::string policy_file;
  uint64_t ring_capacity = 65535;
  bpf::DatapathOptions datapath;
  std::string listen_socket = "/var/run/flowscope/observer.sock";
  std::string listen_address;  // TCP, off when empty
  // Other nodes' observers, "name=address", announced by peer.Peer/Notify beside this node and
  // the Kubernetes Nodes (when the Kubernetes source is on).
  std::vector<std::string> cluster_nodes;
  TlsServerFiles tls;  // TLS (and with client CAs, mTLS) for the TCP listener
  std::string state_dir = "/var/run/flowscope";
  int max_flow_streams = 1024;  // concurrent GetFlows / batch streams
  // /metrics, /healthz, /readyz; off when empty. With http_tls, HTTPS with `tls`'s files.
  std::string http_address = ":9965";
  bool http_tls = false;
  std::vector<std::string> metrics;  // Hubble's --metrics items (flow-metrics.h)
  // Flow export (exporter.h): off when the path is empty.
  std::string export_file_path;
  RotationOptions export_rotation;
  std::string export_allowlist;  // JSON FlowFilters
  std::string export_denylist;
  std::vector<std::string> export_fieldmask;
  // Hubble's dynamic flow logs file (dynamic_exporters.h), re-read on change; off when empty.
  std::string flowlogs_config;
  // The on-disk flow history (history.h) in <data_dir>/history.
  bool history = true;
  std::string data_dir = "/var/lib/flowscope";
  absl::Duration history_max_age = absl::Hours(24);
  uint64_t history_max_bytes = uint64_t{1} << 30;
};

struct DaemonStats {
  uint64_t events = 0;         // ring-buffer events received
  uint64_t malformed = 0;      // dropped by the parser
  uint64_t dns_malformed = 0;  // DNS messages the parser could not read (skipped)
  uint64_t kernel_lost = 0;    // reservation failures in the datapath
  // The deny policy in force, and why the file's current content is not (empty when it is).
  uint64_t policy_rules = 0;
  uint64_t policy_failures = 0;  // reloads refused (unreadable or invalid file)
  std::string policy_error;
};

class ObserverDaemon {
 public:
  explicit ObserverDaemon(DaemonOptions options);
  ~ObserverDaemon();

  // Loads the datapath, attaches, starts the drain thread and the server. Clear errors when
  // not privileged, when the kernel rejects the program, or when the socket is taken.
  absl::Status Start();
  // Stops serving, detaches, removes the socket. Idempotent.
  void Stop();

  DaemonStats stats() const;
  std::string target() const { return server_ ? server_->target() : ""; }
  // The HTTP server's address ("" when off).
  std::string http_bound() const { return http_ ? http_->bound() : ""; }

  // /readyz: the datapath is attached and the drain has completed a pass lately (empty: ready).
  std::string NotReady() const;
  // /metrics.
  void CollectMetrics(MetricsWriter& w) const;

 private:
  void Drain();
  void Maintain();
  // Reads and parses the policy file; only a valid one replaces the policy in force.
  absl::Status LoadPolicyFile();
  // Resolves the policy in force against the endpoint table into the datapath.
  absl::Status ApplyPolicy();
  // On the maintenance thread: reload on a file change, re-resolve on an endpoint change.
  void MaintainPolicy();

  const DaemonOptions options_;
  std::unique_ptr<bpf::Datapath> datapath_;
  std::unique_ptr<Ring> ring_;
  IngestWatermark watermark_;
  std::unique_ptr<EndpointTable> table_;
  InterfaceNames names_;
  std::unique_ptr<DnsTable> dns_;
  std::unique_ptr<NameCache> dns_names_;  // the names DNS answers gave each client
  std::unique_ptr<FlowBuilder> builder_;
  std::unique_ptr<FileEndpointSource> endpoints_;
  std::unique_ptr<KubernetesEndpointSource> kube_;
  std::unique_ptr<AttachManager> attach_;
  std::unique_ptr<ringbuf::RingBufferConsumer> consumer_;
  std::unique_ptr<EventParser> parser_;
  std::unique_ptr<ObserverService> service_;
  std::unique_ptr<PeerNotifyService> peers_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<FlowMetrics> flow_metrics_;
  std::unique_ptr<HistoryStore> history_;
  std::unique_ptr<HistoryWriter> history_writer_;
  std::unique_ptr<FlowExporter> exporter_;
  std::unique_ptr<DynamicExporters> dynamic_exporters_;
  std::unique_ptr<HttpServer> http_;
  std::atomic<int64_t> drain_pass_ns_{0};  // when the drain last completed a pass (monotonic)
  std::thread drain_;
  std::thread maintain_;
  std::atomic<bool> stop_{false};
  mutable std::atomic<bool> map_usage_logged_{false};  // a failed map read is logged once
  std::atomic<uint64_t> events_{0};
  std::atomic<uint64_t> drain_passes_{0};  // completed: everything parsed is in the ring
  std::atomic<uint64_t> malformed_{0};
  std::atomic<uint64_t> dns_malformed_{0};
  std::atomic<uint64_t> kernel_lost_{0};
  std::string policy_signature_;
  uint64_t policy_table_version_ = 0;
  // Keeps the datapath's watched addresses (kernel drops) those of the table's endpoints.
  void WatchEndpointAddresses();
  uint64_t watched_table_version_ = ~uint64_t{0};  // the table version they were taken from
  mutable std::mutex policy_mu_;
  std::vector<PolicyRule> policy_ ABSL_GUARDED_BY(policy_mu_);
  std::string policy_error_ ABSL_GUARDED_BY(policy_mu_);
  std::atomic<uint64_t> policy_failures_{0};
  bool started_ = false;
};

// The node's own IP addresses in this network namespace (for the host identity).
std::vector<std::string> LocalAddresses();

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_DAEMON_H_
