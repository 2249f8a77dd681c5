// flowscope-relay: one endpoint for the whole cluster. Queries every observer and merges their
// flows in time order behind the same observer.Observer API.
//
//   flowscope-relay --peers unix:///run/flowscope/node-1.sock,10.0.0.2:4244
//   flowscope-relay --peer-dns flowscope-observer.kube-system.svc:4244
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "api/grpc_server.h"
#include "api/listener.h"
#include "api/logging.h"
#include "api/memory.h"
#include "api/time_parse.h"
#include "api/tls.h"
#include "api/version.h"
#include "relay/peer_pool.h"
#include "relay/relay_http.h"
#include "relay/relay_service.h"

namespace {

int Fail(const std::string& message) {
  std::cerr << "flowscope-relay: " << message << "\n";
  return 1;
}

std::vector<std::string> SplitList(const std::string& s) {
  std::vector<std::string> out;
  for (absl::string_view p : absl::StrSplit(s, ',', absl::SkipEmpty())) out.emplace_back(p);
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex (gRPC's too) would keep a lock
  // graph for deadlock detection: a cost on every lock and unlock, for a debugging aid.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  flowscope::TuneAllocatorForStreams();
  std::string peers, peer_dns, peers_file, listen_address = "0.0.0.0:4245", listen_socket;
  std::string dial_timeout = "5s", drain = "1s", peer_timeout = "2s", log_level = "info";
  std::string http_address = ":9966";
  bool http_tls = false;
  int max_streams = 1024;
  size_t stream_memory_mib = 512;
  int workers = 2;
  int min_task_headroom = 16;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  std::string name = host;
  size_t sort_len = 100;
  flowscope::TlsServerFiles server_tls;
  flowscope::TlsClientOptions peer_tls;
  bool peer_tls_insecure = false;
  CLI::App app{"flowscope-relay: merges the flows of every observer in time order"};
  app.set_config("--config", "", "read flags from a TOML/INI file");
  // A key the daemon does not know is an error naming it, not silently ignored.
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.add_option("--peers", peers, "comma-separated observers: host:port or unix:///path");
  app.add_option("--peer-dns", peer_dns, "comma-separated name:port, re-resolved every second");
  app.add_option("--peers-file", peers_file, "file with one observer address per line");
  std::string peer_service;
  app.add_option("--peer-service", peer_service,
                 "a peer.Peer/Notify server (observer, relay or Cilium agent) whose announced "
                 "nodes are peers too, as Hubble's relay discovers them");
  app.add_option("--listen-address", listen_address, "TCP address to serve on ('' for none)")
      ->capture_default_str();
  app.add_option("--listen-socket", listen_socket, "unix socket to serve on");
  app.add_option("--node-name", name, "the relay's name in its own messages")
      ->capture_default_str();
  app.add_option("--dial-timeout", dial_timeout, "connection timeout per peer")
      ->capture_default_str();
  app.add_option("--sort-buffer-len-max", sort_len,
                 "follow, peers with only Hubble's API: sort buffer length")
      ->capture_default_str();
  app.add_option("--sort-buffer-drain-timeout", drain,
                 "follow, peers with only Hubble's API: how late their flows may be")
      ->capture_default_str();
  app.add_option("--peer-timeout", peer_timeout,
                 "stop waiting for a peer that sends nothing for this long (reported)")
      ->capture_default_str();
  app.add_option("--max-flow-streams", max_streams,
                 "client flow streams served at once; more are refused with RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  app.add_option("--stream-memory-budget", stream_memory_mib,
                 "MiB all client streams together may buffer (peer messages, merges, write "
                 "queues); beyond it peers are read only as the merges need them and new streams "
                 "are refused with RESOURCE_EXHAUSTED")
      ->capture_default_str()
      ->check(CLI::Range(size_t{16}, size_t{1} << 20));
  app.add_option("--workers", workers,
                 "threads that merge client streams, whatever the number of streams and peers")
      ->capture_default_str()
      ->check(CLI::Range(1, 64));
  app.add_option("--min-task-headroom", min_task_headroom,
                 "new calls are refused with RESOURCE_EXHAUSTED while fewer tasks than this are "
                 "left under the process's pids cgroup limit (0: never)")
      ->capture_default_str()
      ->check(CLI::Range(0, 100000));
  app.add_option("--http-address", http_address,
                 "address of /metrics, /healthz and /readyz ('' for none)")
      ->capture_default_str();
  app.add_flag("--http-tls", http_tls,
               "serve /metrics, /healthz and /readyz over HTTPS with the relay's server "
               "certificate (--tls-relay-server-cert-file, --tls-relay-server-key-file)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str();
  app.add_option("--tls-relay-server-cert-file", server_tls.cert_file,
                 "TLS certificate (PEM) for --listen-address");
  app.add_option("--tls-relay-server-key-file", server_tls.key_file,
                 "TLS private key (PEM) for --listen-address");
  app.add_option("--tls-relay-client-ca-files", server_tls.client_ca_files,
                 "CA files (PEM) clients must present certificates from (mutual TLS)")
      ->delimiter(',');
  app.add_option("--tls-hubble-server-ca-files", peer_tls.ca_files,
                 "TLS towards TCP peers: CA files (PEM) their certificates are checked against")
      ->delimiter(',');
  app.add_option("--tls-hubble-client-cert-file", peer_tls.cert_file,
                 "TLS towards TCP peers: the relay's client certificate (mutual TLS)");
  app.add_option("--tls-hubble-client-key-file", peer_tls.key_file,
                 "TLS towards TCP peers: the relay's client key");
  app.add_option("--tls-hubble-server-name", peer_tls.server_name,
                 "TLS towards TCP peers: the name their certificates must carry");
  app.add_flag("--tls-hubble-allow-insecure", peer_tls_insecure,
               "TLS towards TCP peers without checking their certificates");
  bool print_version = false;
  app.add_flag("--version", print_version, "print the version and exit");
  CLI11_PARSE(app, argc, argv);
  if (print_version) {
    std::cout << flowscope::kRelayVersion << "\n";
    return 0;
  }

  auto level = flowscope::log::ParseLevel(log_level);
  if (!level.ok()) return Fail(std::string(level.status().message()));
  flowscope::log::Init("flowscope-relay", *level);
  flowscope::relay::PoolOptions po;
  po.static_peers = SplitList(peers);
  po.dns_peers = SplitList(peer_dns);
  po.peers_file = peers_file;
  po.peer_service = peer_service;
  auto dial = flowscope::ParseGoDuration(dial_timeout);
  if (!dial.ok() || *dial <= absl::ZeroDuration())
    return Fail("invalid --dial-timeout " + dial_timeout);
  po.dial_timeout = *dial;
  auto drain_d = flowscope::ParseGoDuration(drain);
  if (!drain_d.ok() || *drain_d <= absl::ZeroDuration()) {
    return Fail("invalid --sort-buffer-drain-timeout " + drain);
  }
  auto peer_timeout_d = flowscope::ParseGoDuration(peer_timeout);
  if (!peer_timeout_d.ok() || *peer_timeout_d <= absl::ZeroDuration()) {
    return Fail("invalid --peer-timeout " + peer_timeout);
  }
  if (po.static_peers.empty() && po.dns_peers.empty() && po.peers_file.empty() &&
      po.peer_service.empty()) {
    return Fail("no peers: give --peers, --peer-dns, --peers-file or --peer-service");
  }
  if (!listen_address.empty() && listen_address[0] == ':')
    listen_address = "0.0.0.0" + listen_address;
  std::shared_ptr<grpc::ServerCredentials> tls_creds;
  if (server_tls.enabled() || !server_tls.client_ca_files.empty()) {
    if (listen_address.empty()) return Fail("TLS is for the TCP listener: give --listen-address");
    auto creds = flowscope::ServerTlsCredentials(server_tls);
    if (!creds.ok()) return Fail(std::string(creds.status().message()));
    tls_creds = *std::move(creds);
  }
  if (http_tls && !server_tls.enabled()) {
    return Fail(
        "--http-tls serves HTTPS with the relay's server certificate: give "
        "--tls-relay-server-cert-file and --tls-relay-server-key-file too");
  }
  peer_tls.allow_insecure = peer_tls_insecure;
  if (!peer_tls.ca_files.empty() || !peer_tls.cert_file.empty() || !peer_tls.key_file.empty() ||
      !peer_tls.server_name.empty() || peer_tls_insecure) {
    // Checked now: a bad file is a start-up error, not a peer that never connects.
    if (auto check = flowscope::ClientTlsCredentials(peer_tls); !check.ok()) {
      return Fail(std::string(check.status().message()));
    }
    po.tls = peer_tls;
  }

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  // Health follows the peers: SERVING only while at least one is available.
  std::mutex server_mu;
  flowscope::GrpcServer* server_ptr = nullptr;
  int available = 0;
  po.on_change = [&](int n) {
    std::lock_guard<std::mutex> lock(server_mu);
    available = n;
    if (server_ptr != nullptr) server_ptr->SetServing(n > 0);
    FLOWSCOPE_LOG_INFO("{} peer(s) available", n);
  };
  // Connections and streams each hold a descriptor: use every one the system allows.
  FLOWSCOPE_LOG_INFO("open-file limit {}", flowscope::RaiseOpenFileLimit());
  flowscope::relay::PeerPool pool(po);
  pool.Start();
  flowscope::relay::RelayOptions ro;
  ro.name = name;
  ro.sort_buffer_len = sort_len;
  ro.sort_buffer_drain = *drain_d;
  ro.peer_timeout = *peer_timeout_d;
  ro.max_streams = max_streams;
  ro.stream_memory_budget = stream_memory_mib << 20;
  ro.workers = workers;
  ro.min_task_headroom = min_task_headroom;
  flowscope::relay::RelayService service(pool, ro);
  flowscope::ListenOptions listen(listen_socket, listen_address, tls_creds);
  listen.headers = {{flowscope::kRelayVersionHeader, std::string(flowscope::kVersionNumber)}};
  // Its peers, through Hubble's discovery API (`hubble watch peers`, a Hubble relay).
  flowscope::PeerNotifyService peer_notify([&pool] {
    std::vector<flowscope::PeerEntry> out;
    for (const auto& p : pool.Snapshot()) out.push_back({p.name, p.address, p.tls_server_name});
    return out;
  });
  auto server = flowscope::GrpcServer::Start(
      {&service, service.batch_service(), service.history_service(), &peer_notify}, listen);
  if (!server.ok()) {
    pool.Stop();
    return Fail(std::string(server.status().message()));
  }
  {
    std::lock_guard<std::mutex> lock(server_mu);
    server_ptr = server->get();
    server_ptr->SetServing(available > 0);
  }
  FLOWSCOPE_LOG_INFO("serving on {}", (*server)->bound());
  std::unique_ptr<flowscope::HttpServer> http;
  if (!http_address.empty()) {
    auto started = flowscope::relay::StartRelayHttp(
        {.address = http_address, .tls = http_tls ? server_tls : flowscope::TlsServerFiles{}}, pool,
        service);
    if (!started.ok()) {
      peer_notify.Shutdown();
      (*server)->Shutdown(absl::Milliseconds(300));
      pool.Stop();
      return Fail(std::string(started.status().message()));
    }
    http = std::move(started).value();
    FLOWSCOPE_LOG_INFO("http: /metrics, /healthz, /readyz on {}{}", http->tls() ? "https://" : "",
                       http->bound());
  }
  // Until a signal; every 10 s, freed memory goes back to the system (bursts of clients and
  // peers leave it behind in the allocator).
  const timespec ten_seconds{10, 0};
  while (sigtimedwait(&signals, nullptr, &ten_seconds) < 0) flowscope::ReturnFreedMemory();
  {
    std::lock_guard<std::mutex> lock(server_mu);
    server_ptr = nullptr;
  }
  if (http) http->Shutdown();
  peer_notify.Shutdown();  // its streams never end by themselves
  (*server)->Shutdown(absl::Milliseconds(300));
  pool.Stop();
  return 0;
}
