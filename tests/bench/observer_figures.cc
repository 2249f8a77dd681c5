// Observer figures: B1 (ingest through parse + enrich + ring write vs a bare counting
// consumer, both draining the real datapath run at full speed), B3 (filtered scan of a full
// 1 M ring vs reading it), B5 (memory per stored flow), B6 (GetFlows flows/s to a client that
// discards them).
#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "api/grpc_server.h"
#include "bpf/datapath.h"
#include "observer/filter.h"
#include "observer/flow_metrics.h"
#include "observer/flow_query.h"
#include "observer/observer_service.h"
#include "observer/parser.h"
#include "ringbuf/event_consumer.h"
#include "tests/bench/figures.h"
#include "tests/bench/observer_fill.h"
#include "tests/testing/bpf_env.h"
#include "tests/testing/dns_wire.h"
#include "tests/testing/packet.h"

namespace flowscope::bench {
namespace {

using observer::EndpointInfo;
using observer::EndpointTable;
using observer::FlowRecord;
using observer::Ring;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kMaxRingCapacityForBench = (1u << 20) - 1;  // 1,048,575 records

double Seconds(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// --- B1 ----------------------------------------------------------------------------------------

struct DrainRun {
  double events_per_s = 0;  // ring-buffer events drained
  double flows_per_s = 0;   // flows written to the ring (a DNS packet's event makes two)
  uint64_t lost = 0;
  uint64_t metrics_counted = 0;  // with metrics on: flows the metrics reader counted
  uint64_t metrics_missed = 0;   // and the ones the ring moved past first
};

// Every flow metric family, each with context labels (the most work per flow).
std::vector<observer::MetricSpec> AllMetricFamilies() {
  return std::move(observer::ParseMetricSpecs(
                       {"flow:sourceContext=pod;destinationContext=pod "
                        "drop:sourceContext=namespace;destinationContext=namespace "
                        "tcp:sourceContext=workload-name;destinationContext=workload-name "
                        "port-distribution:destinationContext=app|pod "
                        "icmp:sourceContext=namespace flows-to-world:port"}))
      .value();
}

// The packets a drain run sends, and what each makes: one L3/L4 event, or (DNS) that and a DNS
// event carrying the message, which the parser reads into the DNS table.
struct Stream {
  std::vector<uint8_t> packet;
  bool egress = false;  // through the egress (to-endpoint) program
  bool dns = false;
};

Stream PlainStream() {
  testing::PacketSpec spec;
  spec.src = "10.1.0.1";
  spec.dst = "10.1.0.2";
  return {testing::BuildPacket(spec)};
}

// coredns's answer to a pod, arriving at the pod: a name, two addresses (the demo's lookup).
Stream DnsAnswerStream() {
  testing::DnsWire answer;
  answer.Header(0x8180, 1, 2).Name("deathstar.default.svc.cluster.local").Question(1);
  answer.Answer(1, 30, {10, 244, 1, 20}).Answer(1, 30, {10, 244, 2, 20});
  testing::PacketSpec spec;
  spec.src = "10.1.0.2";
  spec.dst = "10.1.0.1";
  spec.sport = 53;
  spec.dport = 40000;
  spec.payload_bytes = answer.b;
  return {testing::BuildPacket(spec), /*egress=*/true, /*dns=*/true};
}

// Runs the real datapath (aggregation none) on packets making `kFlows` flows on one thread
// while this thread drains; `ingest` selects the full observer path instead of counting.
absl::StatusOr<DrainRun> DrainOnce(bool ingest, bool metrics = false,
                                   const Stream& stream = PlainStream()) {
  constexpr uint32_t kFlows = 1'000'000;
  bpf::DatapathOptions o;
  o.aggregation = bpf::Aggregation::kNone;
  o.ring_buffer_bytes = 1u << 29;  // 512 MiB: holds every event (DNS ones too), nothing is lost
  o.wakeup_bytes = 1u << 20;       // the consumer busy-polls
  o.flow_table_entries = 1024;
  auto dp = bpf::Datapath::Load(o);
  if (!dp.ok()) return dp.status();

  EndpointTable table("default");
  AddPods(table);
  auto ring = std::move(Ring::Create(kMaxRingCapacityForBench)).value();
  observer::EventParser parser(table);
  observer::DnsTable dns(kMaxRingCapacityForBench + 1);
  parser.SetDnsTable(&dns);
  observer::NameCache names;  // as the daemon: answers name their addresses
  parser.SetNameCache(&names);
  uint64_t count = 0;
  uint64_t flows = 0;
  uint64_t lost = 0;
  ringbuf::EventCallback cb;
  if (ingest) {
    cb = [&](absl::Span<const uint8_t> ev) {
      FlowRecord r;
      if (parser.Parse(ev, &r)) {
        ring->Write(r);
        ++flows;
      }
      if (parser.TakeDns(&r)) {
        ring->Write(r);
        ++flows;
      }
      ++count;
    };
  } else {
    cb = [&](absl::Span<const uint8_t>) { ++count; };
  }
  auto consumer = ringbuf::RingBufferConsumer::Create((*dp)->events_fd(), (*dp)->lost_events_fd(),
                                                      sizeof(flow_event), cb);
  if (!consumer.ok()) return consumer.status();
  std::unique_ptr<observer::FlowMetrics> flow_metrics;
  if (metrics) {
    flow_metrics = std::make_unique<observer::FlowMetrics>(
        *ring, table, observer::FlowMetricsOptions{.metrics = AllMetricFamilies()});
    flow_metrics->Start();
  }
  // Sends `n` packets on a thread of its own while this one drains them all; returns (when the
  // producer finished, when the last event was drained), in seconds.
  auto run = [&](uint32_t n) {
    std::atomic<bool> produced{false};
    double produced_s = 0;
    const uint64_t until = count + n;
    const auto start = Clock::now();
    std::thread producer([&] {
      auto r = testing::TestRun(stream.egress ? (*dp)->egress_prog_fd() : (*dp)->ingress_prog_fd(),
                                stream.packet, n);
      if (!r.ok()) std::cerr << "flowscope-bench: B1 producer: " << r.status() << "\n";
      produced_s = Seconds(start);
      produced = true;
    });
    while (true) {
      const bool finished = produced.load();
      const absl::StatusOr<int> got = (*consumer)->Consume();
      if (ingest) ring->Publish();
      if (finished && count >= until) break;
      if (finished && got.ok() && *got == 0) {
        lost += (*consumer)->TakeLost().value_or(0);  // what never came
        if (lost > 0 || Seconds(start) > 60) break;
      }
    }
    const double seconds = Seconds(start);
    producer.join();
    return std::pair{produced_s, seconds};
  };
  // First, untimed, one lap of the BPF ring buffer: its pages are then mapped in this process,
  // as in an observer whose ring buffer goes round and round (a first lap's page faults would
  // weigh on large events most).
  const size_t record = (stream.dns ? sizeof(dns_event) : sizeof(flow_event)) + 8;
  run(static_cast<uint32_t>(o.ring_buffer_bytes / record + 1));
  count = flows = 0;
  const uint64_t dns_before = parser.stats().dns;
  lost += (*consumer)->TakeLost().value_or(0);
  if (lost > 0) return absl::InternalError(absl::StrCat(lost, " events lost in the warm-up"));

  // One ring-buffer event per packet: a DNS answer's carries its L3/L4 flow and its message.
  const uint32_t packets = stream.dns ? kFlows / 2 : kFlows;
  const auto [produced_s, seconds] = run(packets);
  if (getenv("FLOWSCOPE_BENCH_DEBUG")) {
    std::cerr << "drain: " << count << " events, producer done at " << produced_s
              << " s, drained at " << seconds << " s\n";
  }
  DrainRun out;
  out.events_per_s = static_cast<double>(count) / seconds;
  out.flows_per_s = static_cast<double>(ingest ? flows : count) / seconds;
  if (stream.dns && parser.stats().dns - dns_before != packets) {
    return absl::InternalError(absl::StrCat("B17: ", parser.stats().dns - dns_before,
                                            " DNS records of ", packets, " answers (",
                                            parser.stats().dns_malformed, " malformed)"));
  }
  out.lost = lost + (*consumer)->TakeLost().value_or(0);
  if (flow_metrics) {
    flow_metrics->Stop();
    out.metrics_counted = flow_metrics->processed();
    out.metrics_missed = flow_metrics->missed();
  }
  return out;
}

std::vector<FigureResult> RunB1(const Options& options) {
  if (auto reason = testing::BpfUnavailableReason()) {
    std::cerr << "flowscope-bench: B1 skipped: " << *reason << "\n";
    return {};
  }
  std::vector<double> ours;
  std::vector<double> bare;
  uint64_t lost = 0;
  for (int run = 0; run < options.runs; ++run) {
    auto b = DrainOnce(false);
    auto o = DrainOnce(true);
    if (!b.ok() || !o.ok()) {
      std::cerr << "flowscope-bench: B1: " << (b.ok() ? o.status() : b.status()) << "\n";
      return {};
    }
    bare.push_back(b->events_per_s);
    ours.push_back(o->events_per_s);
    lost += o->lost + b->lost;
  }
  std::cerr << "flowscope-bench: B1: events lost in all runs: " << lost << "\n";
  return {MakeFigure("B1", "ingest_events_per_s", "events/s", ours, bare,
                     {Target::AtLeastTimesBaseline(0.5), Target::AtLeast(1e6, "events/s")})};
}

// --- B17 (DNS) ---------------------------------------------------------------------------------

// Ingest of a DNS-heavy stream — every packet a DNS answer whose message the parser reads
// (names, compression, two addresses) into the DNS table and the name cache: two events per
// packet, its L3/L4 flow and its L7 DNS flow — vs the L3/L4-only stream of B1, both through the
// full observer path.
// Events are the flows written to the ring (Hubble's events), per second.
std::vector<FigureResult> RunB17Dns(const Options& options) {
  if (auto reason = testing::BpfUnavailableReason()) {
    std::cerr << "flowscope-bench: B17 skipped: " << *reason << "\n";
    return {};
  }
  std::vector<double> dns, plain;
  for (int run = 0; run < options.runs; ++run) {
    auto p = DrainOnce(true);
    auto d = DrainOnce(true, false, DnsAnswerStream());
    if (!p.ok() || !d.ok()) {
      std::cerr << "flowscope-bench: B17: " << (p.ok() ? d.status() : p.status()) << "\n";
      return {};
    }
    plain.push_back(p->flows_per_s);
    dns.push_back(d->flows_per_s);
  }
  return {MakeFigure("B17", "dns_ingest_events_per_s", "events/s", dns, plain,
                     {Target::AtLeastTimesBaseline(0.5)})};
}

// --- B12 ---------------------------------------------------------------------------------------

std::vector<FigureResult> RunB12(const Options& options) {
  if (auto reason = testing::BpfUnavailableReason()) {
    std::cerr << "flowscope-bench: B12 skipped: " << *reason << "\n";
    return {};
  }
  std::vector<double> with, without;
  uint64_t counted = 0, missed = 0;
  for (int run = 0; run < options.runs; ++run) {
    auto off = DrainOnce(true, false);
    auto on = DrainOnce(true, true);
    if (!off.ok() || !on.ok()) {
      std::cerr << "flowscope-bench: B12: " << (off.ok() ? on.status() : off.status()) << "\n";
      return {};
    }
    without.push_back(off->events_per_s);
    with.push_back(on->events_per_s);
    counted += on->metrics_counted;
    missed += on->metrics_missed;
  }
  std::cerr << "flowscope-bench: B12: the metrics counted " << counted << " flows and missed "
            << missed << " (the ring moved past them) in all runs\n";
  return {MakeFigure("B12", "ingest_events_per_s_metrics_on", "events/s", with, without,
                     {Target::AtLeastTimesBaseline(0.8)})};
}

// --- B3 ----------------------------------------------------------------------------------------

std::vector<FigureResult> RunB3(const Options& options) {
  EndpointTable table("default");
  AddPods(table);
  auto ring = std::move(Ring::Create(kMaxRingCapacityForBench)).value();
  FillRing(*ring, table, ring->Cap());
  observer::FlowBuilder builder(table, "bench", nullptr, 1);
  std::vector<double> ours;
  std::vector<double> base;
  for (int run = 0; run < options.runs; ++run) {
    // Baseline: read every record once.
    {
      ringbuf::RingReader<FlowRecord> reader(*ring, ring->OldestPosition());
      FlowRecord r;
      uint64_t sum = 0;
      uint64_t n = 0;
      const auto start = Clock::now();
      while (reader.Next(&r) == ringbuf::ReadStatus::kRecord) {
        sum += r.time_ns;
        ++n;
      }
      base.push_back(static_cast<double>(n) / Seconds(start));
      if (sum == 42) std::cerr << "";
    }
    // Ours: --pod ns3/pod-13 (a source and a destination filter), oldest first, all matches.
    google::protobuf::RepeatedPtrField<flow::FlowFilter> w, b;
    w.Add()->add_source_pod("ns3/pod-13");
    w.Add()->add_destination_pod("ns3/pod-13");
    auto pred = observer::FlowPredicate::Compile(w, b, table, builder);
    auto q = observer::FlowQuery::Create(*ring, {.first = true}, *std::move(pred));
    observer::FlowQuery::Item item;
    uint64_t matched = 0;
    const auto start = Clock::now();
    while (q->Next(absl::Now(), &item) == observer::FlowQuery::Step::kFlow) ++matched;
    ours.push_back(static_cast<double>(ring->Len()) / Seconds(start));
    if (run == 0) std::cerr << "flowscope-bench: B3: " << matched << " matching flows\n";
  }
  return {MakeFigure("B3", "filtered_scan_records_per_s", "records/s", ours, base,
                     {Target::AtLeastTimesBaseline(0.4), Target::AtLeast(20e6, "records/s")})};
}

// --- B5 ----------------------------------------------------------------------------------------

uint64_t RssBytes() {
  std::ifstream in("/proc/self/statm");
  uint64_t size = 0;
  uint64_t resident = 0;
  in >> size >> resident;
  return resident * static_cast<uint64_t>(getpagesize());
}

std::vector<FigureResult> RunB5(const Options& options) {
  std::vector<double> per_flow;
  for (int run = 0; run < options.runs; ++run) {
    EndpointTable table("default");
    AddPods(table);
    const uint64_t before = RssBytes();
    auto ring = std::move(Ring::Create(kMaxRingCapacityForBench)).value();
    FillRing(*ring, table, ring->Cap());
    const uint64_t after = RssBytes();
    per_flow.push_back(static_cast<double>(after - before) / static_cast<double>(ring->Len()));
  }
  return {MakeFigure("B5", "bytes_per_stored_flow", "bytes", per_flow,
                     std::vector<double>(per_flow.size(), 1024.0), {Target::AtMost(160, "bytes")})};
}

// --- B6 ----------------------------------------------------------------------------------------

std::vector<FigureResult> RunB6(const Options& options) {
  EndpointTable table("default");
  AddPods(table);
  auto ring = std::move(Ring::Create((1u << 18) - 1)).value();
  FillRing(*ring, table, ring->Cap());
  observer::FlowBuilder builder(table, "bench", nullptr, 1);
  observer::ObserverService service(*ring, table, builder, {"bench", "bench"});
  // The same flows with names: each client looked up every address it talks to (two names
  // each), so every flow carries destination_names (B6 named vs plain, same run).
  observer::NameCache names(observer::NameCache::Options{.max_entries = 1u << 20});
  ringbuf::RingReader<observer::FlowRecord> all(*ring, ring->OldestPosition());
  for (observer::FlowRecord r; all.Next(&r) == ringbuf::ReadStatus::kRecord;) {
    char addr[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, r.daddr, addr, sizeof addr);
    names.Add(observer::NameCache::ClientOf(r, /*source=*/true), "svc.example.", {addr}, 30,
              r.time_ns - 1);
    names.Add(observer::NameCache::ClientOf(r, /*source=*/true), "api.example.", {addr}, 30,
              r.time_ns - 1);
  }
  observer::FlowBuilder named_builder(table, "bench", nullptr, 1);
  named_builder.AttachNames(&names);
  observer::ObserverService named(*ring, table, named_builder, {"bench", "bench"});
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("fs-bench-" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(dir);
  auto server = GrpcServer::Start({&service}, {dir + "/obs.sock", ""});
  auto named_server = GrpcServer::Start({&named}, {dir + "/named.sock", ""});
  if (!server.ok() || !named_server.ok()) {
    std::cerr << "flowscope-bench: B6: " << server.status() << " " << named_server.status() << "\n";
    return {};
  }
  auto rate = [&](GrpcServer& s, bool* named_seen) {
    auto stub = ::observer::Observer::NewStub(
        grpc::CreateChannel(s.target(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ::observer::GetFlowsRequest req;
    req.set_first(true);  // every flow in the ring, oldest first
    auto reader = stub->GetFlows(&ctx, req);
    ::observer::GetFlowsResponse resp;
    uint64_t n = 0;
    const auto start = Clock::now();
    while (reader->Read(&resp)) {
      ++n;
      *named_seen |= resp.flow().destination_names_size() == 2;
    }
    const double r = static_cast<double>(n) / Seconds(start);
    reader->Finish();
    return r;
  };
  std::vector<double> rates, named_rates;
  bool plain_named = false, named_named = false;
  for (int run = 0; run < options.runs; ++run) {
    rates.push_back(rate(**server, &plain_named));
    named_rates.push_back(rate(**named_server, &named_named));
  }
  (*server)->Shutdown(absl::Milliseconds(100));
  (*named_server)->Shutdown(absl::Milliseconds(100));
  std::filesystem::remove_all(dir);
  if (plain_named || !named_named) {
    std::cerr << "flowscope-bench: B6: the named stream's flows do not carry their names\n";
    return {};
  }
  return {MakeFigure("B6", "getflows_flows_per_s", "flows/s", rates, std::nullopt,
                     {Target::AtLeast(200e3, "flows/s")}),
          MakeFigure("B6", "getflows_named_flows_per_s", "flows/s", named_rates, rates,
                     {Target::AtLeastTimesBaseline(0.7)})};
}

}  // namespace

std::vector<Figure> ObserverFigures() {
  return {
      {"B1", "observer ingest (parse + enrich + ring write) vs a bare counting consumer", RunB1},
      {"B3", "--pod filtered scan of a full 1 M ring vs reading it", RunB3},
      {"B12", "ingest with every flow metric family on vs off (same producer)", RunB12},
      {"B17", "ingest with DNS parsing on a DNS-heavy stream vs L3/L4 only", RunB17Dns},
      {"B5", "memory per stored flow (RSS growth, 1 M capacity)", RunB5},
      {"B6", "GetFlows to a discarding client, one flow per message", RunB6},
  };
}

}  // namespace flowscope::bench
