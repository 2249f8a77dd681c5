// flowscope-simnodes: many observer endpoints from one process, so that a relay can be run
// against a thousand nodes on a small machine. Each simulated node is a real observer service
// (its own node name, flow ring, ingest watermark and gRPC server on a unix socket, with
// flowscope's FlowStream and History) — only the kernel is missing: a feeder thread writes
// synthetic flows into the rings at a set total rate, round-robin, and moves every node's
// watermark with the clock as an idle node's drain does.
//
//   flowscope-simnodes --nodes 1000 --dir /tmp/sim --rate 10000
//   flowscope-relay --peers-file /tmp/sim/peers --listen-socket /tmp/sim/relay.sock
//
// It writes the peers file (one unix:// address per line) once every node serves, then prints
// "ready". The k-th flow (from 0) goes to node k mod N with source port 1024 + k, each at its
// own time, so tests know which flows are the newest. SIGUSR1 takes the first --toggle nodes down
// (their servers shut down, as a node that dies), SIGUSR2 brings them back; SIGINT/SIGTERM end it.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "api/grpc_server.h"
#include "api/listener.h"
#include "api/logging.h"
#include "api/memory.h"
#include "api/time_parse.h"
#include "observer/endpoint_table.h"
#include "observer/flow_builder.h"
#include "observer/observer_service.h"
#include "observer/watermark.h"
#include "tests/testing/flow_records.h"

namespace {

namespace obs = flowscope::observer;
using flowscope::GrpcServer;
using flowscope::ListenOptions;

struct SimNode {
  std::string name;
  std::string socket;
  std::string ip;
  obs::IngestWatermark watermark;
  std::unique_ptr<obs::Ring> ring;
  std::unique_ptr<obs::EndpointTable> table;
  std::unique_ptr<obs::FlowBuilder> builder;
  std::unique_ptr<obs::ObserverService> service;
  std::unique_ptr<GrpcServer> server;  // null while down
  std::mutex mu;                       // guards server
};

absl::Status Serve(SimNode& n) {
  std::lock_guard<std::mutex> lock(n.mu);
  if (n.server) return absl::OkStatus();
  auto server =
      GrpcServer::Start({n.service.get(), n.service->batch_service(), n.service->history_service()},
                        ListenOptions(n.socket, ""));
  if (!server.ok()) return server.status();
  n.server = std::move(server).value();
  return absl::OkStatus();
}

void TakeDown(SimNode& n) {
  std::unique_ptr<GrpcServer> server;
  {
    std::lock_guard<std::mutex> lock(n.mu);
    server = std::move(n.server);
  }
  if (server) server->Shutdown(absl::ZeroDuration());
}

}  // namespace

int main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex (gRPC's too) would keep a lock
  // graph for deadlock detection: a cost on every lock and unlock, for a debugging aid.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  flowscope::TuneAllocatorForStreams();
  CLI::App app{"flowscope-simnodes: N simulated observer endpoints with synthetic flows"};
  int nodes = 100;
  std::string dir = "/tmp/flowscope-sim";
  double rate = 1000;
  size_t ring_size = 1023;
  std::string heartbeat = "100ms";
  std::string prefix = "sim-node-";
  int toggle = 0;
  uint64_t total = 0;
  std::string log_level = "warn";
  app.add_option("--nodes", nodes, "simulated nodes")->check(CLI::Range(1, 20000));
  app.add_option("--dir", dir, "where the sockets and the peers file go");
  app.add_option("--rate", rate, "synthetic flows per second, all nodes together (0: none)")
      ->check(CLI::Range(0.0, 1e7));
  app.add_option("--flows", total, "stop feeding after this many flows (0: never)");
  app.add_option("--ring-size", ring_size, "flows each node's ring keeps (2^n - 1)");
  app.add_option("--heartbeat", heartbeat, "FlowStream heartbeat of an idle node");
  app.add_option("--name-prefix", prefix, "node names: prefix + 0001 …");
  app.add_option("--toggle", toggle, "nodes SIGUSR1 takes down and SIGUSR2 brings back")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error or off");
  CLI11_PARSE(app, argc, argv);
  const absl::StatusOr<flowscope::log::Level> level = flowscope::log::ParseLevel(log_level);
  if (!level.ok()) {
    std::fprintf(stderr, "flowscope-simnodes: %s\n", std::string(level.status().message()).c_str());
    return 2;
  }
  flowscope::log::Init("flowscope-simnodes", *level);
  const absl::StatusOr<absl::Duration> beat = flowscope::ParseGoDuration(heartbeat);
  if (!beat.ok() || *beat <= absl::ZeroDuration()) {
    std::fprintf(stderr, "flowscope-simnodes: --heartbeat %s: not a positive duration\n",
                 heartbeat.c_str());
    return 2;
  }
  toggle = std::min(toggle, nodes);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "flowscope-simnodes: %s: %s\n", dir.c_str(), ec.message().c_str());
    return 1;
  }
  sigset_t signals;
  sigemptyset(&signals);
  for (int s : {SIGINT, SIGTERM, SIGUSR1, SIGUSR2}) sigaddset(&signals, s);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  flowscope::RaiseOpenFileLimit();

  // One thread wakes every node's parked streams (a real node has its own): a thousand threads
  // each waking every heartbeat would cost this process more than the relay it tests.
  obs::NotifierDriver driver;
  std::vector<std::unique_ptr<SimNode>> sim;
  sim.reserve(static_cast<size_t>(nodes));
  for (int i = 0; i < nodes; ++i) {
    auto n = std::make_unique<SimNode>();
    n->name = absl::StrFormat("%s%04d", prefix, i + 1);
    n->socket = absl::StrCat(dir, "/", n->name, ".sock");
    n->ip = absl::StrFormat("10.%d.%d.5", 64 + i / 256, i % 256);
    auto ring = obs::Ring::Create(ring_size);
    if (!ring.ok()) {
      std::fprintf(stderr, "flowscope-simnodes: ring: %s\n",
                   std::string(ring.status().message()).c_str());
      return 1;
    }
    n->ring = std::move(ring).value();
    n->table = std::make_unique<obs::EndpointTable>("default");
    obs::EndpointInfo pod;
    pod.ips = {n->ip};
    pod.namespace_name = "default";
    pod.pod_name = "pod-" + n->name;
    n->table->Update({pod});
    n->builder = std::make_unique<obs::FlowBuilder>(*n->table, n->name, nullptr, 1);
    n->watermark.Advance(static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())));
    n->service = std::make_unique<obs::ObserverService>(
        *n->ring, *n->table, *n->builder,
        obs::ObserverOptions{.node_name = n->name,
                             .address = "unix://" + n->socket,
                             .watermark = &n->watermark,
                             .heartbeat = *beat,
                             .notifier_driver = &driver});
    if (absl::Status s = Serve(*n); !s.ok()) {
      std::fprintf(stderr, "flowscope-simnodes: %s: %s\n", n->name.c_str(),
                   std::string(s.message()).c_str());
      return 1;
    }
    sim.push_back(std::move(n));
  }
  {
    const std::string peers = dir + "/peers";
    std::ofstream out(peers + ".tmp");
    for (const auto& n : sim) out << "unix://" << n->socket << "\n";
    out.close();
    std::filesystem::rename(peers + ".tmp", peers, ec);
  }

  // The feeder: `rate` flows a second over the nodes in turn; every node's promise follows the
  // clock (a flow is never older than its node's promise).
  std::atomic<bool> stop{false};
  std::thread feeder([&] {
    const absl::Time start = absl::Now();
    uint64_t sent = 0;
    size_t next = 0;
    uint16_t port = 1024;  // the k-th flow's source port: 1024 + k (mod 64512)
    uint64_t last_t = 0;   // every flow has its own time: the newest N are well defined
    while (!stop.load(std::memory_order_relaxed)) {
      const absl::Time now = absl::Now();
      const uint64_t due =
          rate > 0 ? static_cast<uint64_t>(absl::ToDoubleSeconds(now - start) * rate) : 0;
      const uint64_t now_ns = static_cast<uint64_t>(absl::ToUnixNanos(now));
      std::vector<SimNode*> touched;
      for (; sent < due && (total == 0 || sent < total); ++sent) {
        SimNode& n = *sim[next];
        next = (next + 1) % sim.size();
        obs::EndpointTable::Resolver res(*n.table);
        const uint64_t t = std::max({now_ns, n.watermark.Get(), last_t + 1});
        last_t = t;
        n.ring->Write(flowscope::testing::DnsQueryRecord(t, n.ip.c_str(), "10.96.0.10", port, res));
        port = static_cast<uint16_t>(port == 65535 ? 1024 : port + 1);
        touched.push_back(&n);
      }
      std::sort(touched.begin(), touched.end());
      touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
      for (SimNode* n : touched) n->ring->Publish();
      for (auto& n : sim) n->watermark.Advance(now_ns);
      absl::SleepFor(absl::Milliseconds(2));
    }
  });

  std::printf("ready: %d nodes in %s (peers file %s/peers)\n", nodes, dir.c_str(), dir.c_str());
  std::fflush(stdout);
  int sig = 0;
  while (sigwait(&signals, &sig) == 0) {
    if (sig == SIGUSR1) {
      for (int i = 0; i < toggle; ++i) TakeDown(*sim[static_cast<size_t>(i)]);
      std::printf("down: %d nodes\n", toggle);
    } else if (sig == SIGUSR2) {
      for (int i = 0; i < toggle; ++i) {
        if (absl::Status s = Serve(*sim[static_cast<size_t>(i)]); !s.ok()) {
          std::fprintf(stderr, "flowscope-simnodes: %s: %s\n",
                       sim[static_cast<size_t>(i)]->name.c_str(), std::string(s.message()).c_str());
        }
      }
      std::printf("up: %d nodes\n", toggle);
    } else {
      break;
    }
    std::fflush(stdout);
  }
  stop = true;
  feeder.join();
  for (auto& n : sim) TakeDown(*n);
  return 0;
}
