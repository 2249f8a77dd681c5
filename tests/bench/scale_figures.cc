// B16: the relay over 1,000 simulated observers (flowscope-simnodes: real observer endpoints
// on unix sockets, synthetic flows): ServerStatus latency, relay RSS per idle peer, time to the
// first flow of `--last 100`, follow p99 latency at 10 k flows/s in all, and the relay's
// threads with 10 follow clients — against the same relay over 10 peers with one client (the
// thread count must not grow with peers × clients). The relay and the simulator run as their
// own processes, so their memory and threads are theirs alone.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "observer/observer.grpc.pb.h"
#include "tests/bench/figures.h"

namespace flowscope::bench {
namespace {

using Clock = std::chrono::steady_clock;

// A child process (stdout and stderr to `log`), killed at the end.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::string& log) {
    pid_ = fork();
    if (pid_ == 0) {
      FILE* out = freopen(log.c_str(), "w", stdout);
      if (out != nullptr) dup2(fileno(stdout), fileno(stderr));
      std::vector<char*> args;
      for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
      args.push_back(nullptr);
      execv(args[0], args.data());
      _exit(127);
    }
  }
  ~Child() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 200 && waitpid(pid_, &status, WNOHANG) == 0; ++i) {
      absl::SleepFor(absl::Milliseconds(25));
    }
    kill(pid_, SIGKILL);
    waitpid(pid_, &status, 0);
  }
  pid_t pid() const { return pid_; }
  // A field of /proc/<pid>/status ("VmRSS" in kB, "Threads").
  double Status(const std::string& field) const {
    std::ifstream in(absl::StrCat("/proc/", pid_, "/status"));
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind(field + ":", 0) != 0) continue;
      std::string v = line.substr(field.size() + 1);
      v.erase(std::remove_if(v.begin(), v.end(), [](char c) { return !isdigit(c); }), v.end());
      double d = 0;
      return absl::SimpleAtod(v, &d) ? d : 0;
    }
    return 0;
  }

 private:
  pid_t pid_ = -1;
};

// Simulated nodes and a relay over them.
struct Cluster {
  std::string dir;
  std::unique_ptr<Child> sim;
  std::unique_ptr<Child> relay;
  std::unique_ptr<::observer::Observer::Stub> stub;
  bool ready = false;

  Cluster(int nodes, double rate, const std::string& tag) {
    dir = (std::filesystem::temp_directory_path() / absl::StrCat("fs-b16-", tag, "-", getpid()))
              .string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
    // Each node beats as an idle observer does by default (25 ms): a follow waits for every
    // node's promise, so its latency is the heartbeat plus the way through.
    sim = std::make_unique<Child>(
        std::vector<std::string>{FLOWSCOPE_SIMNODES_BINARY, "--nodes", std::to_string(nodes),
                                 "--dir", dir, "--rate", std::to_string(rate), "--heartbeat",
                                 "25ms"},
        dir + "/sim.log");
    if (!WaitFor([&] { return std::filesystem::exists(dir + "/peers"); })) return;
    relay = std::make_unique<Child>(
        std::vector<std::string>{FLOWSCOPE_RELAY_BINARY, "--peers-file", dir + "/peers",
                                 "--listen-socket", dir + "/relay.sock", "--listen-address", "",
                                 "--http-address", "", "--log-level", "error"},
        dir + "/relay.log");
    stub = ::observer::Observer::NewStub(
        grpc::CreateChannel("unix://" + dir + "/relay.sock", grpc::InsecureChannelCredentials()));
    ready = WaitFor([&] {
      ::observer::ServerStatusResponse s;
      return Status(&s).ok() && s.num_connected_nodes().value() == static_cast<uint32_t>(nodes);
    });
    if (!ready)
      std::cerr << "flowscope-bench: B16: the relay never saw all " << nodes << " peers\n";
  }
  ~Cluster() {
    stub.reset();
    relay.reset();
    sim.reset();
    std::filesystem::remove_all(dir);
  }

  grpc::Status Status(::observer::ServerStatusResponse* s) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    return stub->ServerStatus(&ctx, {}, s);
  }

  template <typename F>
  static bool WaitFor(F done) {
    const absl::Time deadline = absl::Now() + absl::Seconds(120);
    while (absl::Now() < deadline) {
      if (done()) return true;
      absl::SleepFor(absl::Milliseconds(100));
    }
    return false;
  }
};

double Ms(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Follow streams held open (each read on its own thread, as a client would).
struct Followers {
  struct One {
    grpc::ClientContext ctx;
    std::thread reader;
  };
  std::vector<std::unique_ptr<One>> all;
  Followers(::observer::Observer::Stub& stub, int n) {
    for (int i = 0; i < n; ++i) {
      auto one = std::make_unique<One>();
      grpc::ClientContext* ctx = &one->ctx;
      one->reader = std::thread([&stub, ctx] {
        ::observer::GetFlowsRequest req;
        req.set_follow(true);
        auto r = stub.GetFlows(ctx, req);
        ::observer::GetFlowsResponse resp;
        while (r->Read(&resp)) {
        }
        r->Finish();
      });
      all.push_back(std::move(one));
    }
  }
  ~Followers() {
    for (auto& one : all) one->ctx.TryCancel();
    for (auto& one : all) one->reader.join();
  }
};

std::vector<FigureResult> RunB16(const Options& options) {
  constexpr int kPeers = 1000;
  // The baseline: 10 peers, one follow client.
  double small_rss_kb = 0, small_threads = 0;
  {
    Cluster small(10, 100, "small");
    if (!small.ready) return {};
    absl::SleepFor(absl::Seconds(2));
    small_rss_kb = small.relay->Status("VmRSS");
    Followers one(*small.stub, 1);
    absl::SleepFor(absl::Seconds(2));
    small_threads = small.relay->Status("Threads");
  }
  Cluster big(kPeers, 10'000, "big");
  if (!big.ready) return {};
  absl::SleepFor(absl::Seconds(2));
  const double rss_per_peer_kib = (big.relay->Status("VmRSS") - small_rss_kb) / (kPeers - 10);

  std::vector<double> status_ms, first_ms, p99_ms;
  for (int run = 0; run < options.runs; ++run) {
    ::observer::ServerStatusResponse s;
    auto start = Clock::now();
    if (big.Status(&s).ok()) status_ms.push_back(Ms(start));

    grpc::ClientContext ctx;
    ::observer::GetFlowsRequest req;
    req.set_number(100);
    start = Clock::now();
    auto reader = big.stub->GetFlows(&ctx, req);
    ::observer::GetFlowsResponse resp;
    bool first = true;
    while (reader->Read(&resp)) {
      if (first && resp.has_flow()) {
        first_ms.push_back(Ms(start));
        first = false;
      }
    }
    reader->Finish();

    // Follow latency in the steady state: receipt time minus the flow's time, once the query's
    // start (1,000 calls opened, every peer's first promise awaited) is two seconds behind.
    grpc::ClientContext fctx;
    ::observer::GetFlowsRequest freq;
    freq.set_follow(true);
    auto follow = big.stub->GetFlows(&fctx, freq);
    std::vector<double> lat;
    const absl::Time warm = absl::Now() + absl::Seconds(2);
    const absl::Time end = warm + absl::Seconds(4);
    while (follow->Read(&resp)) {
      const absl::Time now = absl::Now();
      if (now >= end) break;
      if (!resp.has_flow() || now < warm) continue;
      const absl::Time t = absl::FromUnixSeconds(resp.flow().time().seconds()) +
                           absl::Nanoseconds(resp.flow().time().nanos());
      lat.push_back(absl::ToDoubleMilliseconds(now - t));
    }
    fctx.TryCancel();
    while (follow->Read(&resp)) {
    }
    follow->Finish();
    if (!lat.empty()) {
      std::sort(lat.begin(), lat.end());
      p99_ms.push_back(lat[std::min(lat.size() - 1, lat.size() * 99 / 100)]);
    }
  }
  double big_threads = 0;
  double rss_per_query_kib = 0;
  {
    const double idle_kb = big.relay->Status("VmRSS");
    Followers ten(*big.stub, 10);
    absl::SleepFor(absl::Seconds(3));
    big_threads = big.relay->Status("Threads");
    // Each follow query over 1,000 peers: its 1,000 peer calls, merge and write queue.
    rss_per_query_kib = (big.relay->Status("VmRSS") - idle_kb) / 10;
  }
  return {
      MakeFigure("B16", "relay_status_ms_1000_peers", "ms", status_ms, {},
                 {Target::AtMost(1000, "ms")}),
      MakeFigure("B16", "relay_rss_per_idle_peer", "KiB", {rss_per_peer_kib}, {},
                 {Target::AtMost(256, "KiB")}),
      MakeFigure("B16", "relay_last100_first_flow_ms_1000_peers", "ms", first_ms, {},
                 {Target::AtMost(2000, "ms")}),
      MakeFigure("B16", "relay_follow_p99_ms_1000_peers_10k_per_s", "ms", p99_ms, {},
                 {Target::AtMost(200, "ms")}),
      MakeFigure("B16", "relay_rss_per_follow_query_1000_peers", "KiB", {rss_per_query_kib}, {},
                 {}),
      MakeFigure("B16", "relay_threads_1000_peers_x10_clients", "threads", {big_threads},
                 std::vector<double>{small_threads}, {Target::AtMostTimesBaseline(1.5)}),
  };
}

}  // namespace

std::vector<Figure> ScaleFigures() {
  return {{"B16",
           "relay over 1,000 simulated observers: status, RSS per peer, --last 100, follow p99, "
           "threads (vs 10 peers × 1 client)",
           RunB16}};
}

}  // namespace flowscope::bench
