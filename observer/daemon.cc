#include "observer/daemon.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/file_util.h"
#include "api/logging.h"
#include "api/memory.h"
#include "api/version.h"

namespace flowscope::observer {
std::vector<std::string> LocalAddresses() {
  std::vector<std::string> out;
  ifaddrs* list = nullptr;
  if (getifaddrs(&list) != 0) return out;
  for (ifaddrs* a = list; a != nullptr; a = a->ifa_next) {
    if (a->ifa_addr == nullptr) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    if (a->ifa_addr->sa_family == AF_INET) {
      inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(a->ifa_addr)->sin_addr, buf, sizeof buf);
    } else if (a->ifa_addr->sa_family == AF_INET6) {
      inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(a->ifa_addr)->sin6_addr, buf,
                sizeof buf);
    } else {
      continue;
    }
    out.emplace_back(buf);
  }
  freeifaddrs(list);
  return out;
}

ObserverDaemon::ObserverDaemon(DaemonOptions options) : options_(std::move(options)) {}

ObserverDaemon::~ObserverDaemon() { Stop(); }

absl::Status ObserverDaemon::Start() {
  auto ring = Ring::Create(options_.ring_capacity);
  if (!ring.ok()) return ring.status();
  auto metric_specs = ParseMetricSpecs(options_.metrics);
  if (!metric_specs.ok()) return metric_specs.status();
  ExporterConfig export_config{.file_path = options_.export_file_path,
                               .field_mask = options_.export_fieldmask};
  if (!options_.export_file_path.empty()) {
    auto allow = ParseFilterList(options_.export_allowlist);
    if (!allow.ok())
      return absl::InvalidArgumentError(
          absl::StrCat("--export-allowlist: ", allow.status().message()));
    auto deny = ParseFilterList(options_.export_denylist);
    if (!deny.ok())
      return absl::InvalidArgumentError(
          absl::StrCat("--export-denylist: ", deny.status().message()));
    export_config.include = *std::move(allow);
    export_config.exclude = *std::move(deny);
  }
  if (options_.http_tls && !options_.tls.enabled()) {
    return absl::InvalidArgumentError(
        "--http-tls serves HTTPS with the TLS certificate flags: give --tls-cert-file and "
        "--tls-key-file too");
  }
  ring_ = std::move(ring).value();
  names_.Track(ring_.get());

  table_ = std::make_unique<EndpointTable>(options_.cluster_name);
  for (const std::string& e : table_->SetNodeAddresses(LocalAddresses())) {
    FLOWSCOPE_LOG_WARN("node address: {}", e);
  }
  std::random_device rd;
  const uint64_t run_id = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  builder_ = std::make_unique<FlowBuilder>(*table_, options_.node_name, &names_, run_id);
  // One DNS message per ring slot at most: every DNS record in the ring has its message.
  dns_ = std::make_unique<DnsTable>(ring_->Cap() + 1);
  builder_->AttachDns(dns_.get());
  dns_names_ = std::make_unique<NameCache>();
  builder_->AttachNames(dns_names_.get());
  if (options_.history) {
    auto history = HistoryStore::Open({.dir = options_.data_dir + "/history",
                                       .max_age = options_.history_max_age,
                                       .max_bytes = options_.history_max_bytes,
                                       .run_id = run_id});
    if (!history.ok()) return history.status();
    history_ = std::move(history).value();
    // Ids above the stored ones: a stored flow's endpoint keeps its meaning.
    table_->AttachArchive(history_.get(), history_->next_endpoint_id(),
                          history_->next_service_id());
    table_->RestorePolicies(history_->LoadPolicies());
    builder_->AttachRuns(history_.get(), history_->run());
    dns_->AttachArchive(history_.get(), history_->next_dns_id());
    history_writer_ = std::make_unique<HistoryWriter>(*history_, *ring_, *table_, &names_);
    history_writer_->SetDns(dns_.get());
    history_writer_->Start();
    FLOWSCOPE_LOG_INFO("history in {} (run {}, up to {} and {} MiB)", history_->options().dir,
                       history_->run(), absl::FormatDuration(options_.history_max_age),
                       options_.history_max_bytes >> 20);
  }

  const bool kube = options_.kubernetes || !options_.kubeconfig.empty();
  if (kube && !options_.endpoints_file.empty()) {
    return absl::InvalidArgumentError(
        "--endpoints and --kubernetes/--kubeconfig are two sources of the same endpoints: give "
        "one");
  }
  if (!options_.endpoints_file.empty()) {
    endpoints_ = std::make_unique<FileEndpointSource>(options_.endpoints_file, *table_);
    if (absl::Status s = endpoints_->Start(); !s.ok()) return s;
  }
  if (kube) {
    auto config = options_.kubeconfig.empty()
                      ? InClusterConfig()
                      : LoadKubeconfig(options_.kubeconfig, options_.kube_context);
    if (!config.ok()) return config.status();
    auto client = KubeClient::Create(*config);
    if (!client.ok()) return client.status();
    kube_ = std::make_unique<KubernetesEndpointSource>(
        *std::move(client), *table_,
        KubeSourceOptions{.node_name = options_.node_name, .cluster_name = options_.cluster_name});
    if (absl::Status s = kube_->Start(); !s.ok()) return s;
  }
  if (!options_.policy_file.empty()) {
    // Checked before anything is attached: a missing or broken policy is a start-up error.
    if (absl::Status s = LoadPolicyFile(); !s.ok()) return s;
  }

  // TLS files are checked before anything is attached: a bad one is a start-up error.
  std::shared_ptr<grpc::ServerCredentials> tls;
  if (options_.tls.enabled() || !options_.tls.client_ca_files.empty()) {
    if (options_.listen_address.empty()) {
      return absl::InvalidArgumentError(
          "TLS is for the TCP listener: give --listen-address too (the unix socket is "
          "protected by its permissions)");
    }
    auto creds = ServerTlsCredentials(options_.tls);
    if (!creds.ok()) return creds.status();
    tls = *std::move(creds);
  }

  auto dp = bpf::Datapath::Load(options_.datapath);
  if (!dp.ok()) return dp.status();
  datapath_ = std::move(dp).value();
  if (!options_.policy_file.empty()) {
    if (absl::Status s = ApplyPolicy(); !s.ok()) return s;
  }

  if (datapath_->kernel_drops_unavailable().empty()) {
    FLOWSCOPE_LOG_INFO("kernel drops: reported for the endpoints' addresses (skb:kfree_skb)");
  } else {
    FLOWSCOPE_LOG_WARN("kernel drops are not reported: {}", datapath_->kernel_drops_unavailable());
  }
  parser_ = std::make_unique<EventParser>(*table_);
  parser_->SetKernelReasons(datapath_->kernel_reason_ids());
  parser_->SetDnsTable(dns_.get());
  parser_->SetNameCache(dns_names_.get());
  WatchEndpointAddresses();
  auto consumer = ringbuf::RingBufferConsumer::Create(
      datapath_->events_fd(), datapath_->lost_events_fd(), sizeof(flow_event),
      [this](absl::Span<const uint8_t> ev) {
        events_.fetch_add(1, std::memory_order_relaxed);
        FlowRecord r;
        if (parser_->Parse(ev, &r)) ring_->Write(r);
        if (parser_->TakeDns(&r)) ring_->Write(r);  // a DNS message beside its packet's flow
        const ParserStats& st = parser_->stats();
        malformed_.store(st.malformed, std::memory_order_relaxed);
        dns_malformed_.store(st.dns_malformed, std::memory_order_relaxed);
      });
  if (!consumer.ok()) return consumer.status();
  consumer_ = std::move(consumer).value();
  drain_ = std::thread([this] { Drain(); });

  auto rules = ParseInterfaceRules(options_.interfaces, options_.network_interfaces);
  if (!rules.ok()) return rules.status();
  attach_ = std::make_unique<AttachManager>(
      *datapath_, AttachOptions{*rules, options_.state_dir + "/tc-attach.state", &names_});
  if (absl::Status s = attach_->Start(); !s.ok()) return s;

  service_ = std::make_unique<ObserverService>(
      *ring_, *table_, *builder_,
      ObserverOptions{.node_name = options_.node_name,
                      .address = options_.listen_address.empty()
                                     ? "unix://" + options_.listen_socket
                                     : options_.listen_address,
                      .watermark = &watermark_,
                      .tls = tls != nullptr,
                      .max_streams = options_.max_flow_streams,
                      .history = history_.get(),
                      .history_writer = history_writer_.get()});
  // Hubble's discovery API: this node, the configured ones and the Kubernetes Nodes.
  std::vector<PeerEntry> cluster;
  for (const std::string& n : options_.cluster_nodes) {
    const size_t eq = n.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == n.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid --cluster-nodes entry \"", n, "\": expected name=address"));
    }
    cluster.push_back(PeerEntry{n.substr(0, eq), n.substr(eq + 1), ""});
  }
  std::string port;  // the TCP port every node's observer serves (a DaemonSet's)
  if (const size_t colon = options_.listen_address.rfind(':'); colon != std::string::npos) {
    port = options_.listen_address.substr(colon + 1);
  }
  std::string self_address = "unix://" + options_.listen_socket;
  if (!options_.listen_address.empty() && !absl::StartsWith(options_.listen_address, ":") &&
      !absl::StartsWith(options_.listen_address, "0.0.0.0:") &&
      !absl::StartsWith(options_.listen_address, "[::]:")) {
    self_address = options_.listen_address;
  }
  peers_ = std::make_unique<PeerNotifyService>([this, cluster, port, self_address] {
    std::vector<PeerEntry> out = cluster;  // of two entries with one name the first counts
    if (kube_ != nullptr) {
      for (const KubeNode& n : kube_->Nodes()) {
        if (n.ips.empty()) continue;
        const std::string& ip = n.ips.front();
        std::string address = ip;
        if (!port.empty()) {
          address = absl::StrContains(ip, ':') ? absl::StrCat("[", ip, "]:", port)
                                               : absl::StrCat(ip, ":", port);
        }
        out.push_back(PeerEntry{n.name, address, ""});
      }
    }
    out.push_back(PeerEntry{options_.node_name, self_address, ""});
    return out;
  });
  ListenOptions listen(options_.listen_socket, options_.listen_address, tls);
  listen.headers = {{kServerVersionHeader, std::string(kVersionNumber)}};
  auto server = GrpcServer::Start(
      {service_.get(), service_->batch_service(), service_->history_service(), peers_.get()},
      listen);
  if (!server.ok()) return server.status();
  server_ = std::move(server).value();

  flow_metrics_ = std::make_unique<FlowMetrics>(
      *ring_, *table_,
      FlowMetricsOptions{.metrics = *metric_specs, .dns = dns_.get(), .names = dns_names_.get()});
  flow_metrics_->Start();
  if (!options_.export_file_path.empty()) {
    exporter_ = std::make_unique<FlowExporter>(*ring_, *table_, *builder_, export_config,
                                               options_.export_rotation);
    if (absl::Status s = exporter_->Start(); !s.ok()) return s;
    FLOWSCOPE_LOG_INFO("exporting flows to {}", options_.export_file_path);
  }
  if (!options_.flowlogs_config.empty()) {
    dynamic_exporters_ = std::make_unique<DynamicExporters>(
        *ring_, *table_, *builder_, options_.flowlogs_config, options_.export_rotation);
    // A file that cannot be used at start is a start-up error; later, the last good one stays.
    if (absl::Status s = dynamic_exporters_->Maintain(); !s.ok()) return s;
  }
  if (!options_.http_address.empty()) {
    std::map<std::string, HttpHandler> routes;
    routes["/healthz"] = [](const HttpRequest&) { return HttpResponse{.body = "ok\n"}; };
    routes["/readyz"] = [this](const HttpRequest&) {
      const std::string why = NotReady();
      return why.empty() ? HttpResponse{.body = "ready\n"}
                         : HttpResponse{.status = 503, .body = why + "\n"};
    };
    routes["/metrics"] = [this](const HttpRequest& r) {
      const MetricsFormat format = NegotiateMetricsFormat(r.accept);
      MetricsWriter w(format);
      CollectMetrics(w);
      return HttpResponse{.content_type = std::string(MetricsContentType(format)),
                          .body = std::move(w).Finish()};
    };
    auto http = HttpServer::Start({.address = options_.http_address,
                                   .tls = options_.http_tls ? options_.tls : TlsServerFiles{}},
                                  std::move(routes));
    if (!http.ok()) return http.status();
    http_ = std::move(http).value();
    FLOWSCOPE_LOG_INFO("http: /metrics, /healthz, /readyz on {}{}", http_->tls() ? "https://" : "",
                       http_->bound());
  }
  maintain_ = std::thread([this] { Maintain(); });
  started_ = true;
  FLOWSCOPE_LOG_INFO("serving on {} (node {}, ring capacity {}, {} interfaces attached)",
                     server_->bound(), options_.node_name, ring_->Cap(),
                     attach_->Attached().size());
  return absl::OkStatus();
}

void ObserverDaemon::Drain() {
  // Events are stamped by the kernel a little before they are committed to the BPF ring buffer;
  // one that is this late after a drain pass started is raised to the watermark instead.
  constexpr uint64_t kCommitSlackNs = 1'000'000;
  while (!stop_.load(std::memory_order_acquire)) {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    const uint64_t started = static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
    // Wake at least every 20 ms: the watermark must move while the node is idle.
    absl::StatusOr<int> n = consumer_->Poll(absl::Milliseconds(20));
    // Events submitted without a wake-up (threshold mode) are only seen by a consume pass.
    absl::StatusOr<int> m = n.ok() ? consumer_->Consume() : n;
    if (!m.ok()) {
      FLOWSCOPE_LOG_ERROR("draining the BPF ring buffer: {}", std::string(m.status().message()));
      absl::SleepFor(absl::Milliseconds(100));
      continue;
    }
    if (*n + *m > 0) ring_->Publish();
    drain_passes_.fetch_add(1, std::memory_order_release);
    drain_pass_ns_.store(static_cast<int64_t>(started), std::memory_order_relaxed);
    // Everything committed before `started` has been written and published now.
    watermark_.Advance(parser_->AdvanceFloor(started - kCommitSlackNs));
  }
}

absl::Status ObserverDaemon::LoadPolicyFile() {
  // The signature is taken first: a change while reading is seen on the next look.
  policy_signature_ = FileSignature(options_.policy_file);
  auto text = ReadOperatorFile(options_.policy_file, "policy file");
  if (!text.ok()) return text.status();
  auto rules = ParsePolicy(*text);
  if (!rules.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy file ", options_.policy_file, ": ", rules.status().message()));
  }
  std::lock_guard<std::mutex> lock(policy_mu_);
  policy_ = *std::move(rules);
  policy_error_.clear();
  return absl::OkStatus();
}

absl::Status ObserverDaemon::ApplyPolicy() {
  policy_table_version_ = table_->version();
  std::vector<PolicyRule> rules;
  {
    std::lock_guard<std::mutex> lock(policy_mu_);
    rules = policy_;
  }
  auto resolved = ResolvePolicy(rules, *table_);
  if (!resolved.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy file ", options_.policy_file, ": ", resolved.status().message()));
  }
  if (history_ != nullptr) {
    // Names first, so a drop stored after the rule is in force can be named after a restart.
    if (absl::Status s = history_->StorePolicies(table_->Policies()); !s.ok()) {
      FLOWSCOPE_LOG_ERROR("history: {} (older drops may lose their rule names)",
                          std::string(s.message()));
    }
  }
  if (absl::Status s = datapath_->SetDenyRules(*resolved); !s.ok()) return s;
  FLOWSCOPE_LOG_INFO("policy: {} rules, {} datapath deny entries", rules.size(), resolved->size());
  return absl::OkStatus();
}

void ObserverDaemon::MaintainPolicy() {
  // Fail closed: what the datapath enforces stays until a readable, valid file replaces it.
  auto refused = [this](const absl::Status& s) {
    policy_failures_.fetch_add(1, std::memory_order_relaxed);
    std::lock_guard<std::mutex> lock(policy_mu_);
    policy_error_ = std::string(s.message());
    FLOWSCOPE_LOG_ERROR("{}; the last good policy ({} rules) stays in force", policy_error_,
                        policy_.size());
  };
  bool reapply = table_->version() != policy_table_version_;
  if (FileSignature(options_.policy_file) != policy_signature_) {
    if (absl::Status s = LoadPolicyFile(); !s.ok()) {
      refused(s);
    } else {
      reapply = true;
    }
  }
  if (!reapply) return;
  if (absl::Status s = ApplyPolicy(); !s.ok()) refused(s);
}

void ObserverDaemon::Maintain() {
  absl::Time next_trim = absl::Now() + absl::Seconds(10);
  while (!stop_.load()) {
    absl::SleepFor(absl::Milliseconds(200));
    if (absl::Now() >= next_trim) {
      // Bursts (connections served and closed) leave freed pages behind in the allocator.
      ReturnFreedMemory();
      next_trim = absl::Now() + absl::Seconds(10);
    }
    if (auto lost = consumer_->TakeLost(); lost.ok() && *lost > 0) {
      kernel_lost_ += *lost;
      service_->lost_log().Add(flow::PERF_EVENT_RING_BUFFER, *lost, absl::Now());
    }
    names_.Expire();  // names of removed interfaces no record refers to any more
    if (dynamic_exporters_) (void)dynamic_exporters_->Maintain();  // logs what it refuses
    // Endpoints of pods that are gone, once no record in the ring refers to them and the
    // history writer has stored (with their endpoints) every record that did.
    uint64_t oldest = ring_->OldestPosition();
    if (history_writer_) oldest = std::min(oldest, history_writer_->persisted());
    table_->Expire(drain_passes_.load(std::memory_order_acquire), ring_->Written(), oldest);
    if (!options_.policy_file.empty()) MaintainPolicy();
    WatchEndpointAddresses();
  }
}

void ObserverDaemon::WatchEndpointAddresses() {
  if (!datapath_->kernel_drops_unavailable().empty()) return;
  const uint64_t version = table_->version();
  if (version == watched_table_version_) return;
  watched_table_version_ = version;
  // The addresses of the endpoints this node hosts (all of them when endpoints name no node): a
  // drop of their packets, in either direction, happened in this node's kernel. Not the node's
  // own addresses (the host entry): those would report the host's drops.
  std::vector<watch_key> keys;
  for (const auto& [addr, id] : table_->Addresses()) {
    if (id == kHostEndpointId || id == kWorldEndpointId) continue;
    const std::shared_ptr<const Endpoint> e = table_->Get(id);
    if (e == nullptr || (!e->node_name.empty() && e->node_name != options_.node_name)) continue;
    watch_key k{};
    std::memcpy(k.addr, addr.words.data(), sizeof k.addr);
    k.family = addr.family;
    keys.push_back(k);
  }
  if (absl::Status s = datapath_->SetWatchedAddresses(keys); !s.ok()) {
    FLOWSCOPE_LOG_WARN("kernel drops: {}", std::string(s.message()));
  }
}

void ObserverDaemon::Stop() {
  if (stop_.exchange(true)) return;
  if (http_) http_->Shutdown();
  if (flow_metrics_) flow_metrics_->Stop();
  if (exporter_) exporter_->Stop();
  if (dynamic_exporters_) dynamic_exporters_->Stop();
  if (peers_) peers_->Shutdown();  // its streams never end by themselves
  if (server_) server_->Shutdown(absl::Milliseconds(300));
  if (service_) service_->Shutdown();
  if (maintain_.joinable()) maintain_.join();
  if (consumer_) consumer_->Stop();
  if (drain_.joinable()) drain_.join();
  // After the drain: what it put in the ring is committed before the database closes.
  if (history_writer_) history_writer_->Stop();
  if (attach_) attach_->Stop();
  if (endpoints_) endpoints_->Stop();
  if (kube_) kube_->Stop();
  server_.reset();
  service_.reset();
  peers_.reset();
}

std::string ObserverDaemon::NotReady() const {
  if (!started_ || stop_.load()) return "not started";
  if (attach_ == nullptr) return "the datapath is not attached";
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  const int64_t now = static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  // A pass ends at least every 20 ms when idle.
  const int64_t idle = now - drain_pass_ns_.load(std::memory_order_relaxed);
  if (idle > 2'000'000'000) {
    return absl::StrCat("the drain has not completed a pass for ", idle / 1'000'000, " ms");
  }
  if (kube_) return kube_->NotSynced();
  return "";
}

void ObserverDaemon::CollectMetrics(MetricsWriter& w) const {
  const DaemonStats s = stats();
  // Hubble's, when any Hubble metric is on (as Hubble registers it).
  if (!options_.metrics.empty()) {
    w.Counter("hubble_lost_events_total", "Number of lost events");
    w.Sample({{"source", "perf_event_ring_buffer"}}, static_cast<double>(s.kernel_lost));
    w.Sample({{"source", "observer_events_queue"}}, 0);
    w.Sample({{"source", "hubble_ring_buffer"}},
             static_cast<double>(flow_metrics_ ? flow_metrics_->missed() : 0));
  }
  if (flow_metrics_) flow_metrics_->Collect(w);

  if (datapath_) {
    if (auto st = datapath_->ReadStats(); st.ok()) {
      w.Counter("flowscope_kernel_drops_total",
                "Packets of watched endpoints the kernel dropped (skb:kfree_skb)");
      w.Sample(static_cast<double>(st->kernel_drops));
      w.Counter("flowscope_kernel_drops_suppressed_total",
                "Kernel drops not reported as flows: the same flow and reason was reported less "
                "than a report interval before");
      w.Sample(static_cast<double>(st->kernel_drops_suppressed));
      w.Counter("flowscope_dns_messages_total",
                "DNS messages the datapath reported (queries leaving, answers reaching endpoints)");
      w.Sample(static_cast<double>(st->dns_messages));
    }
    w.Gauge("flowscope_kernel_drops_enabled",
            "1 when the kernel's drops are reported (skb:kfree_skb with BTF)");
    w.Sample(datapath_->kernel_drops_unavailable().empty() ? 1 : 0);
  }
  w.Gauge("flowscope_build_info", "flowscope's version");
  w.Sample({{"version", FLOWSCOPE_VERSION}, {"component", "observer"}}, 1);
  w.Gauge("flowscope_ready", "1 when /readyz answers 200");
  w.Sample(NotReady().empty() ? 1 : 0);
  w.Gauge("flowscope_ring_capacity", "Flows the in-memory ring holds at most");
  w.Sample(static_cast<double>(ring_->Cap()));
  w.Gauge("flowscope_ring_flows", "Flows the in-memory ring holds now");
  w.Sample(static_cast<double>(ring_->Len()));
  w.Counter("flowscope_ring_flows_written_total", "Flows written into the ring");
  w.Sample(static_cast<double>(ring_->Written()));
  if (history_writer_) {
    const HistoryWriter::Stats h = history_writer_->stats();
    const HistoryStore::Stats st = history_->stats();
    w.Counter("flowscope_history_flows_written_total", "Flows the history writer stored");
    w.Sample(static_cast<double>(h.written));
    w.Counter("flowscope_history_flows_lost_total",
              "Flows the history could not store (the ring moved past them, or a full disk)");
    w.Sample(static_cast<double>(h.lost));
    w.Gauge("flowscope_history_flows", "Flows stored on disk (estimate)");
    w.Sample(static_cast<double>(st.flows));
    w.Gauge("flowscope_history_bytes", "Bytes of the flow history on disk");
    w.Sample(static_cast<double>(st.bytes));
    w.Gauge("flowscope_history_oldest_flow_timestamp_seconds",
            "Time of the oldest stored flow (0: none)");
    w.Sample(st.oldest_ns ? static_cast<double>(*st.oldest_ns) / 1e9 : 0.0);
    w.Gauge("flowscope_history_writes_paused", "1 while history writes are paused (a full disk)");
    w.Sample(h.error.empty() ? 0.0 : 1.0);
  }
  w.Counter("flowscope_bpf_events_total", "Events drained from the BPF ring buffer");
  w.Sample(static_cast<double>(s.events));
  w.Counter("flowscope_bpf_events_malformed_total", "Drained events the parser refused");
  w.Sample(static_cast<double>(s.malformed));
  w.Counter("flowscope_dns_malformed_total",
            "DNS messages skipped because they could not be parsed (malformed or cut short)");
  w.Sample(static_cast<double>(s.dns_malformed));
  w.Counter("flowscope_bpf_ring_lost_total",
            "Events the datapath could not reserve in the BPF ring buffer");
  w.Sample(static_cast<double>(s.kernel_lost));
  w.Gauge("flowscope_bpf_ring_capacity_bytes", "Size of the BPF ring buffer");
  w.Sample(static_cast<double>(options_.datapath.ring_buffer_bytes));
  if (datapath_) {
    // Read at scrape time, on the HTTP thread: the drain never waits for it.
    if (auto usage = datapath_->ReadMapUsage(); usage.ok()) {
      w.Gauge("flowscope_bpf_map_pressure",
              "Fill of a datapath map, entries / max_entries (as cilium_bpf_map_pressure)");
      for (const auto& m : *usage) {
        w.Sample({{"map_name", m.name}},
                 m.max_entries == 0
                     ? 0
                     : static_cast<double>(m.entries) / static_cast<double>(m.max_entries));
      }
      w.Gauge("flowscope_bpf_map_entries", "Entries in use in a datapath map");
      for (const auto& m : *usage) w.Sample({{"map_name", m.name}}, static_cast<double>(m.entries));
    } else if (!map_usage_logged_.exchange(true)) {
      FLOWSCOPE_LOG_WARN("reading the datapath maps' usage: {}",
                         std::string(usage.status().message()));
    }
  }
  w.Counter("flowscope_drain_passes_total", "Passes of the drain over the BPF ring buffer");
  w.Sample(static_cast<double>(drain_passes_.load()));
  if (service_) {
    ::observer::ServerStatusResponse status;
    service_->Status(absl::Now(), &status);
    w.Gauge("flowscope_ingest_flows_per_second",
            "Flows per second over the last minute (or the time the ring covers)");
    w.Sample(status.flows_rate());
    w.Gauge("flowscope_flow_streams", "GetFlows and batch streams open");
    w.Sample(service_->active_streams());
    w.Gauge("flowscope_flow_streams_waiting", "Follow streams caught up, waiting for flows");
    w.Sample(static_cast<double>(service_->parked_streams()));
  }
  w.Gauge("flowscope_endpoints", "Endpoints the table holds (retired ones included)");
  w.Sample(static_cast<double>(table_->size()));
  w.Gauge("flowscope_endpoints_retired",
          "Endpoints no address maps to, kept while ring records refer to them");
  w.Sample(static_cast<double>(table_->retired()));
  if (kube_) {
    const KubernetesEndpointSource::Stats k = kube_->stats();
    w.Gauge("flowscope_kubernetes_synced",
            "1 once pods, services, nodes and namespaces are listed and applied");
    w.Sample(kube_->NotSynced().empty() ? 1 : 0);
    w.Counter("flowscope_kubernetes_lists_total", "Complete lists of a resource");
    w.Sample(static_cast<double>(k.lists));
    w.Counter("flowscope_kubernetes_relists_total", "Lists caused by 410 Gone");
    w.Sample(static_cast<double>(k.relists));
    w.Counter("flowscope_kubernetes_watch_events_total", "Watch events applied");
    w.Sample(static_cast<double>(k.events));
    w.Counter("flowscope_kubernetes_errors_total", "Failed requests and broken watches");
    w.Sample(static_cast<double>(k.errors));
    w.Counter("flowscope_kubernetes_malformed_total", "Objects and events skipped as malformed");
    w.Sample(static_cast<double>(k.malformed));
  }
  if (!options_.policy_file.empty()) {
    w.Gauge("flowscope_policy_rules", "Deny rules in force");
    w.Sample(static_cast<double>(s.policy_rules));
    w.Counter("flowscope_policy_reload_failures_total",
              "Policy file reloads refused (unreadable or invalid): the last good one stays");
    w.Sample(static_cast<double>(s.policy_failures));
    w.Gauge("flowscope_policy_file_in_force",
            "1 when the policy file's current content is what the datapath enforces");
    w.Sample(s.policy_error.empty() ? 1 : 0);
  }
  std::vector<std::pair<std::string, FlowExporter::Stats>> exporters;
  if (exporter_) exporters.emplace_back(exporter_->config().name, exporter_->stats());
  if (dynamic_exporters_) {
    for (auto& e : dynamic_exporters_->Stats()) exporters.push_back(std::move(e));
    dynamic_exporters_->Collect(w);
  }
  if (!exporters.empty()) {
    w.Counter("flowscope_exporter_flows_total", "Flows the exporter wrote");
    for (const auto& [name, e] : exporters) {
      w.Sample({{"name", name}}, static_cast<double>(e.exported));
    }
    w.Counter("flowscope_exporter_lost_total",
              "Flows the exporter lost: the ring moved past them before they were written");
    for (const auto& [name, e] : exporters) w.Sample({{"name", name}}, static_cast<double>(e.lost));
    w.Counter("flowscope_exporter_write_errors_total",
              "Export lines that could not be written (disk full, file gone)");
    for (const auto& [name, e] : exporters) {
      w.Sample({{"name", name}}, static_cast<double>(e.write_errors));
    }
  }
  if (http_) {
    const HttpServer::Stats h = http_->stats();
    w.Counter("flowscope_http_requests_total", "HTTP requests answered by a route");
    w.Sample(static_cast<double>(h.requests));
    w.Counter("flowscope_http_bad_requests_total", "HTTP requests refused with a 4xx");
    w.Sample(static_cast<double>(h.bad_requests));
    w.Gauge("flowscope_http_connections", "HTTP connections open");
    w.Sample(h.open_connections);
  }
}

DaemonStats ObserverDaemon::stats() const {
  DaemonStats out;
  out.events = events_.load();
  out.malformed = malformed_.load();
  out.dns_malformed = dns_malformed_.load();
  out.kernel_lost = kernel_lost_.load();
  out.policy_failures = policy_failures_.load();
  std::lock_guard<std::mutex> lock(policy_mu_);
  out.policy_rules = policy_.size();
  out.policy_error = policy_error_;
  return out;
}

}  // namespace flowscope::observer
