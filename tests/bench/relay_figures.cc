// B7: merged flows/s through the relay from 4 observers (1 M flows in all) to a discarding client
// (and through a second relay whose peer is the first, over FlowStream batches),
// against reading the same 4 observers directly one after the other, in the same run.
// B8: follow latency through the relay at 10 k flows/s (ring write to client receipt), against
// the same stream from observers that only speak Hubble's API (Hubble relay's sort buffer).
//
// The observers run in this process on unix sockets, each with its own ring; for B8 a writer
// per node does what the drain thread does: writes records stamped now, publishes, and moves
// the node's watermark.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <thread>

#include "api/grpc_server.h"
#include "flowscope/v1/flowscope.pb.h"
#include "observer/observer_service.h"
#include "observer/watermark.h"
#include "relay/peer_pool.h"
#include "relay/raw_event.h"
#include "relay/relay_service.h"
#include "tests/bench/figures.h"
#include "tests/bench/observer_fill.h"

namespace flowscope::bench {
namespace {

using Clock = std::chrono::steady_clock;

// One observer node: ring, metadata, service, server.
struct BenchNode {
  observer::EndpointTable table{"default"};
  std::unique_ptr<observer::Ring> ring;
  std::unique_ptr<observer::FlowBuilder> builder;
  observer::IngestWatermark watermark;
  std::unique_ptr<observer::ObserverService> service;
  std::unique_ptr<GrpcServer> server;

  BenchNode(const std::string& name, const std::string& socket, uint64_t capacity,
            bool hubble_only) {
    AddPods(table);
    ring = std::move(observer::Ring::Create(capacity)).value();
    builder = std::make_unique<observer::FlowBuilder>(table, name, nullptr, 1);
    service = std::make_unique<observer::ObserverService>(
        *ring, table, *builder,
        observer::ObserverOptions{.node_name = name, .address = name, .watermark = &watermark});
    std::vector<grpc::Service*> services = {service.get()};
    if (!hubble_only) services.push_back(service->batch_service());
    server = std::move(GrpcServer::Start(services, {socket, ""})).value();
  }
  ~BenchNode() { server->Shutdown(absl::Milliseconds(100)); }
};

// A directory for sockets, removed at the end.
struct TempDir {
  std::string path;
  explicit TempDir(const std::string& tag)
      : path((std::filesystem::temp_directory_path() /
              ("fs-bench-" + tag + "-" + std::to_string(getpid())))
                 .string()) {
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// A relay over `nodes`, ready once every peer is connected.
struct BenchRelay {
  std::unique_ptr<relay::PeerPool> pool;
  std::unique_ptr<relay::RelayService> service;
  std::unique_ptr<GrpcServer> server;
  std::unique_ptr<::observer::Observer::Stub> stub;

  BenchRelay(const std::vector<std::string>& peers, const std::string& socket) {
    relay::PoolOptions po;
    po.static_peers = peers;
    po.refresh = absl::Milliseconds(100);
    pool = std::make_unique<relay::PeerPool>(po);
    pool->Start();
    service = std::make_unique<relay::RelayService>(*pool, relay::RelayOptions{});
    server = std::move(GrpcServer::Start({service.get(), service->batch_service()}, {socket, ""}))
                 .value();
    stub = ::observer::Observer::NewStub(
        grpc::CreateChannel(server->target(), grpc::InsecureChannelCredentials()));
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (absl::Now() < deadline) {
      const auto snapshot = pool->Snapshot();
      if (std::all_of(snapshot.begin(), snapshot.end(), [](const auto& p) { return p.available; }))
        break;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  ~BenchRelay() {
    server->Shutdown(absl::Milliseconds(100));
    pool->Stop();
  }
};

// Flows read from a GetFlows stream of every stored flow, oldest first.
uint64_t ReadAll(::observer::Observer::Stub& stub) {
  grpc::ClientContext ctx;
  ::observer::GetFlowsRequest req;
  req.set_first(true);
  auto reader = stub.GetFlows(&ctx, req);
  ::observer::GetFlowsResponse resp;
  uint64_t n = 0;
  while (reader->Read(&resp)) n += resp.has_flow();
  reader->Finish();
  return n;
}

// Flows read from flowscope's FlowStream (batches) of every stored flow, oldest first: the
// batches are walked encoded, as the CLI and a parent relay take them (relay/raw_event.h).
uint64_t ReadAllBatches(const std::string& target) {
  static const grpc::internal::RpcMethod kMethod("/flowscope.v1.FlowStream/GetFlowBatches",
                                                 grpc::internal::RpcMethod::SERVER_STREAMING);
  auto channel = grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
  grpc::ClientContext ctx;
  ::observer::GetFlowsRequest req;
  req.set_first(true);
  std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>> reader(
      grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(channel.get(), kMethod, &ctx,
                                                                    req));
  grpc::ByteBuffer bb;
  uint64_t n = 0;
  std::vector<relay::RawEvent> events;
  std::optional<absl::Time> watermark;
  while (reader->Read(&bb)) {
    events.clear();
    if (!relay::ParseRawBatch(std::make_shared<const std::string>(relay::FlattenByteBuffer(bb)),
                              &events, &watermark)) {
      std::cerr << "flowscope-bench: FlowStream from " << target << ": a batch does not decode\n";
      ctx.TryCancel();
      break;
    }
    for (const relay::RawEvent& e : events) n += e.is_flow();
  }
  const grpc::Status status = reader->Finish();
  if (!status.ok()) {
    std::cerr << "flowscope-bench: FlowStream from " << target << ": " << status.error_message()
              << "\n";
  }
  return n;
}

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::vector<FigureResult> RunB7(const Options& options) {
  constexpr int kNodes = 4;
  constexpr uint64_t kPerNode = 250'000;
  TempDir dir("b7");
  std::vector<std::unique_ptr<BenchNode>> nodes;
  std::vector<std::string> peers;
  for (int i = 0; i < kNodes; ++i) {
    const std::string socket = dir.path + "/node-" + std::to_string(i) + ".sock";
    nodes.push_back(
        std::make_unique<BenchNode>("node-" + std::to_string(i), socket, (1u << 18) - 1, false));
    FillRing(*nodes.back()->ring, nodes.back()->table, kPerNode);
    peers.push_back("unix://" + socket);
  }
  BenchRelay relay(peers, dir.path + "/relay.sock");
  // A relay whose peer is that relay: flowscope's FlowStream (batches) between the two.
  BenchRelay top({"unix://" + dir.path + "/relay.sock"}, dir.path + "/top.sock");
  std::vector<double> ours;
  std::vector<double> direct;
  std::vector<double> relay_to_relay;
  for (int run = 0; run < options.runs; ++run) {
    auto start = Clock::now();
    uint64_t n = 0;
    for (const auto& node : nodes) {
      auto stub = ::observer::Observer::NewStub(
          grpc::CreateChannel(node->server->target(), grpc::InsecureChannelCredentials()));
      n += ReadAll(*stub);
    }
    direct.push_back(static_cast<double>(n) / Seconds(start));
    start = Clock::now();
    n = ReadAll(*relay.stub);
    if (n != kNodes * kPerNode) {
      std::cerr << "flowscope-bench: B7: the relay returned " << n << " flows, not "
                << kNodes * kPerNode << "\n";
    }
    ours.push_back(static_cast<double>(n) / Seconds(start));
    start = Clock::now();
    n = ReadAllBatches(top.server->target());
    if (n != kNodes * kPerNode) {
      std::cerr << "flowscope-bench: B7: the top relay returned " << n << " flows, not "
                << kNodes * kPerNode << "\n";
    }
    relay_to_relay.push_back(static_cast<double>(n) / Seconds(start));
  }
  return {MakeFigure("B7", "relay_merged_flows_per_s_4_nodes", "flows/s", ours, direct,
                     {Target::AtLeastTimesBaseline(0.7)}),
          MakeFigure("B7", "relay_to_relay_flowstream_flows_per_s_4_nodes", "flows/s",
                     relay_to_relay, direct, {Target::AtLeast(1'000'000, "flows/s")})};
}

// p50 and p99 (ms) of a follow stream through a relay over 2 nodes written at `rate` flows/s
// in all, for `duration`.
std::pair<double, double> FollowLatency(bool hubble_only, double rate, absl::Duration duration) {
  TempDir dir(hubble_only ? "b8h" : "b8");
  std::vector<std::unique_ptr<BenchNode>> nodes;
  std::vector<std::string> peers;
  for (int i = 0; i < 2; ++i) {
    const std::string socket = dir.path + "/node-" + std::to_string(i) + ".sock";
    nodes.push_back(std::make_unique<BenchNode>("node-" + std::to_string(i), socket, (1u << 16) - 1,
                                                hubble_only));
    peers.push_back("unix://" + socket);
  }
  std::atomic<bool> stop{false};
  // The drain of each node: records stamped now, published, then the promise moves.
  auto drain = [&](BenchNode* node, uint64_t seed) {
    observer::EndpointTable::Resolver res(node->table);
    const absl::Time start = absl::Now();
    uint64_t written = 0;
    while (!stop.load()) {
      const absl::Time now = absl::Now();
      const auto due = static_cast<uint64_t>(absl::ToDoubleSeconds(now - start) * rate / 2);
      const auto ns = static_cast<uint64_t>(absl::ToUnixNanos(now));
      for (; written < due; ++written) node->ring->Write(BenchRecord(res, seed + written, ns));
      node->ring->Publish();
      node->watermark.Advance(ns - 1'000'000);
      absl::SleepFor(absl::Microseconds(500));
    }
  };
  std::vector<std::thread> drains;
  for (size_t i = 0; i < nodes.size(); ++i) {
    drains.emplace_back(drain, nodes[i].get(), i * 1'000'000'000ULL);
  }
  std::vector<double> latencies_ms;
  {
    BenchRelay relay(peers, dir.path + "/relay.sock");
    grpc::ClientContext ctx;
    ::observer::GetFlowsRequest req;
    req.set_follow(true);
    auto reader = relay.stub->GetFlows(&ctx, req);
    ::observer::GetFlowsResponse resp;
    const absl::Time warm = absl::Now() + absl::Seconds(1);  // streams open, buffers settle
    const absl::Time end = warm + duration;
    while (reader->Read(&resp)) {
      const absl::Time now = absl::Now();
      if (now >= end) break;
      if (!resp.has_flow() || now < warm) continue;
      const absl::Time t = absl::FromUnixSeconds(resp.flow().time().seconds()) +
                           absl::Nanoseconds(resp.flow().time().nanos());
      latencies_ms.push_back(absl::ToDoubleMilliseconds(now - t));
    }
    ctx.TryCancel();
    while (reader->Read(&resp)) {
    }
    reader->Finish();
  }
  stop = true;
  for (auto& t : drains) t.join();
  if (latencies_ms.empty()) return {0, 0};
  std::sort(latencies_ms.begin(), latencies_ms.end());
  auto at = [&](double q) {
    return latencies_ms[std::min(
        latencies_ms.size() - 1,
        static_cast<size_t>(q * static_cast<double>(latencies_ms.size())))];
  };
  return {at(0.50), at(0.99)};
}

std::vector<FigureResult> RunB8(const Options& options) {
  std::vector<double> p50, p99, base50, base99;
  for (int run = 0; run < options.runs; ++run) {
    const auto [a50, a99] = FollowLatency(false, 10'000, absl::Seconds(3));
    p50.push_back(a50);
    p99.push_back(a99);
    const auto [b50, b99] = FollowLatency(true, 10'000, absl::Seconds(3));
    base50.push_back(b50);
    base99.push_back(b99);
  }
  return {MakeFigure("B8", "follow_latency_p50_10k_per_s", "ms", p50, base50, {}),
          MakeFigure("B8", "follow_latency_p99_10k_per_s", "ms", p99, base99,
                     {Target::AtMost(100, "ms")})};
}

}  // namespace

std::vector<Figure> RelayFigures() {
  return {
      {"B7",
       "relay: merged flows/s from 4 observers (1 M flows), and a relay of that relay through "
       "FlowStream, vs reading them directly",
       RunB7},
      {"B8", "follow latency through the relay at 10 k flows/s vs Hubble-API peers (sort buffer)",
       RunB8},
  };
}

}  // namespace flowscope::bench
