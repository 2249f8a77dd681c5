// B10: the CLI's `-o json` lines/s from a local observer, against reading the same stream
// without formatting (protobuf decode only), in the same run.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "api/grpc_server.h"
#include "cmd/cli/printer.h"
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
  auto server = GrpcServer::Start({&service}, {dir + "/obs.sock", ""});
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
  std::vector<double> ours;
  std::vector<double> base;
  for (int run = 0; run < options.runs; ++run) {
    base.push_back(pass(false));
    ours.push_back(pass(true));
  }
  (*server)->Shutdown(absl::Milliseconds(100));
  std::filesystem::remove_all(dir);
  return {MakeFigure("B10", "cli_json_lines_per_s", "lines/s", ours, base,
                     {Target::AtLeastTimesBaseline(0.5)})};
}

}  // namespace

std::vector<Figure> CliFigures() {
  return {{"B10", "CLI -o json lines/s vs decoding the same stream only", RunB10}};
}

}  // namespace flowscope::bench
