// B10: the CLI's `-o json` lines/s from a local observer, against reading the same stream
// without formatting (protobuf decode only), in the same run.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "api/grpc_server.h"
#include "api/json.h"
#include "api/metrics.h"
#include "bpf/flow_event.h"
#include "cmd/cli/printer.h"
#include "observer/exporter.h"
#include "observer/flow_metrics.h"
#include "observer/observer_service.h"
#include "tests/bench/figures.h"
#include "tests/bench/observer_fill.h"

namespace flowscope::bench {
namespace {

using Clock = std::chrono::steady_clock;

std::vector<FigureResult> RunB10(const Options& options) {
  observer::EndpointTable table("default");
  AddPods(table);
  auto ring = std::move(observer::Ring::Create((1u << 17) - 1)).value();
  FillRing(*ring, table, ring->Cap());
  observer::FlowBuilder builder(table, "bench", nullptr, 1);
  observer::ObserverService service(*ring, table, builder, {"bench", "bench"});
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("fs-b10-" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(dir);
  auto server = GrpcServer::Start({&service, service.batch_service()}, {dir + "/obs.sock", ""});
  if (!server.ok()) {
    std::cerr << "flowscope-bench: B10: " << server.status() << "\n";
    return {};
  }
  auto stub = ::observer::Observer::NewStub(
      grpc::CreateChannel((*server)->target(), grpc::InsecureChannelCredentials()));
  // Reads the whole ring once; formats each response as the CLI's -o json does when `json`.
  auto pass = [&](bool json) {
    grpc::ClientContext ctx;
    ::observer::GetFlowsRequest req;
    req.set_first(true);
    auto reader = stub->GetFlows(&ctx, req);
    std::ofstream devnull("/dev/null");
    cli::PrinterOptions po;
    po.format = cli::Format::kJson;
    po.flush_each_line = false;  // as `flowscope observe -o json` without --follow
    cli::Printer printer(po, devnull, devnull);
    ::observer::GetFlowsResponse resp;
    uint64_t n = 0;
    const auto start = Clock::now();
    while (reader->Read(&resp)) {
      if (json) printer.Write(resp);
      ++n;
    }
    reader->Finish();
    return static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - start).count();
  };
  // The `flowscope` process itself, the whole ring to /dev/null: what a user's dump costs
  // (it reads flowscope's FlowStream batches from this observer).
  auto process = [&](const std::string& format) {
    const std::string cmd = absl::StrCat(FLOWSCOPE_CLI_BINARY, " --server unix://", dir,
                                         "/obs.sock observe --all -o ", format, " > /dev/null");
    const auto start = Clock::now();
    if (std::system(cmd.c_str()) != 0) std::cerr << "flowscope-bench: B10: " << cmd << " failed\n";
    return static_cast<double>(ring->Cap()) /
           std::chrono::duration<double>(Clock::now() - start).count();
  };
  std::vector<double> ours;
  std::vector<double> base;
  std::vector<double> json_process;
  std::vector<double> compact_process;
  for (int run = 0; run < options.runs; ++run) {
    base.push_back(pass(false));
    ours.push_back(pass(true));
    json_process.push_back(process("json"));
    compact_process.push_back(process("compact"));
  }
  (*server)->Shutdown(absl::Milliseconds(100));
  std::filesystem::remove_all(dir);
  return {MakeFigure("B10", "cli_json_lines_per_s", "lines/s", ours, base,
                     {Target::AtLeastTimesBaseline(0.5)}),
          MakeFigure("B10", "cli_process_json_lines_per_s", "lines/s", json_process, base,
                     {Target::AtLeast(400'000, "lines/s")}),
          MakeFigure("B10", "cli_process_compact_lines_per_s", "lines/s", compact_process, base,
                     {Target::AtLeast(400'000, "lines/s")})};
}

// B13: a /metrics scrape with 10,000 series, and the exporter's JSON lines/s to a file against
// B10's encoder alone (the same ExportEvents encoded and dropped), in the same run.
std::vector<FigureResult> RunB13(const Options& options) {
  observer::EndpointTable table("default");
  AddPods(table);
  auto ring = std::move(observer::Ring::Create((1u << 17) - 1)).value();
  observer::FlowBuilder builder(table, "bench", nullptr, 1);

  // 10,000 series: one per source address.
  observer::FlowMetrics metrics(
      *ring, table,
      {.metrics = observer::ParseMetricSpecs({"flow:sourceContext=ip"}).value(),
       .max_series = 20000});
  observer::FlowRecord r;
  r.family = FS_FAMILY_IPV4;
  r.protocol = IPPROTO_UDP;
  r.dport = 53;
  r.verdict = FS_VERDICT_FORWARDED;
  r.obs_point = FS_OBS_FROM_ENDPOINT;
  for (uint32_t i = 0; i < 10000; ++i) {
    r.saddr[0] = htonl(0x0a000000u + i);
    metrics.Process(r);
  }
  std::vector<double> scrape_ms;
  for (int run = 0; run < options.runs; ++run) {
    const auto start = Clock::now();
    MetricsWriter w(MetricsFormat::kOpenMetrics);
    metrics.Collect(w);
    const std::string body = std::move(w).Finish();
    scrape_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    if (body.size() < 10000 * 40) std::cerr << "flowscope-bench: B13: short scrape\n";
  }

  FillRing(*ring, table, ring->Cap());
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("fs-b13-" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(dir);
  // Every record of the ring as the exporter writes it; to the file when `write`.
  auto pass = [&](bool write) {
    auto file = observer::RotatingFile::Open(dir + "/events.log", {.max_size_bytes = 64u << 20});
    if (!file.ok()) return 0.0;
    ringbuf::RingReader<observer::FlowRecord> reader(*ring, ring->OldestPosition());
    ::observer::ExportEvent e;
    std::string line;
    observer::FlowRecord rec;
    uint64_t n = 0;
    const auto start = Clock::now();
    while (reader.Next(&rec) == ringbuf::ReadStatus::kRecord) {
      e.Clear();
      builder.Build(rec, reader.position() - 1, e.mutable_flow());
      e.set_node_name(e.flow().node_name());
      *e.mutable_time() = e.flow().time();
      line.clear();
      AppendJson(e, &line);
      if (write) (*file)->WriteLine(line, true);
      ++n;
    }
    if (write) (*file)->Flush();
    return static_cast<double>(n) / std::chrono::duration<double>(Clock::now() - start).count();
  };
  std::vector<double> ours, base;
  for (int run = 0; run < options.runs; ++run) {
    base.push_back(pass(false));
    ours.push_back(pass(true));
  }
  std::filesystem::remove_all(dir);
  return {MakeFigure("B13", "metrics_scrape_ms_10k_series", "ms", scrape_ms, std::nullopt,
                     {Target::AtMost(50, "ms")}),
          MakeFigure("B13", "exporter_lines_per_s", "lines/s", ours, base,
                     {Target::AtLeastTimesBaseline(0.7)})};
}

}  // namespace

std::vector<Figure> CliFigures() {
  return {{"B10", "CLI -o json lines/s vs decoding the same stream only", RunB10},
          {"B13", "/metrics scrape of 10,000 series; exporter lines/s to a file vs encoding only",
           RunB13}};
}

}  // namespace flowscope::bench
