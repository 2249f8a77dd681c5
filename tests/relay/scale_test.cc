// The relay at scale, against flowscope-simnodes (tests/sim): a thousand real observer
// endpoints from one process. Status, the node list, the global newest N and a strictly
// ordered follow over 1,000 peers; a tenth of them going down and coming back mid-follow; 100
// concurrent clients; the relay shutting down under all that (clean under ASan: the sanitizer
// pass runs this with sanitized binaries, whose errors make the relay exit non-zero).
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "observer/observer.grpc.pb.h"
#include "tests/testing/netns.h"
#include "tests/testing/shell.h"
#include "tests/testing/wait.h"

namespace flowscope {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Sanitized processes take several times the memory and CPU.
constexpr int kManyNodes = 250;
constexpr int kFollowRate = 1000;
constexpr int kManyClients = 30;  // each over as many peers: 900 peer calls at once
#else
constexpr int kManyNodes = 1000;
constexpr int kFollowRate = 5000;
constexpr int kManyClients = 100;  // 10,000 peer calls at once
#endif

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class ScaleTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("fs-scale-", getpid(), "-",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override {
    relay_.reset();
    sim_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::string Path(const std::string& name) const { return (dir_ / name).string(); }

  // `nodes` simulated observers; extra flags for flowscope-simnodes.
  void StartSim(int nodes, std::vector<std::string> extra) {
    nodes_ = nodes;
    std::vector<std::string> argv = {FLOWSCOPE_SIMNODES_BINARY, "--nodes", std::to_string(nodes),
                                     "--dir", dir_.string()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    auto p = testing::NetnsProcess::Start("", argv, Path("sim.log"));
    ASSERT_TRUE(p.ok()) << p.status();
    sim_ = std::move(p).value();
    ASSERT_TRUE(testing::WaitUntil(
        [&] { return absl::StrContains(ReadFile(Path("sim.log")), "ready"); }, absl::Seconds(120)))
        << ReadFile(Path("sim.log"));
  }

  void StartRelay(const std::string& peer_timeout = "2s") {
    auto p = testing::NetnsProcess::Start(
        "",
        {FLOWSCOPE_RELAY_BINARY, "--peers-file", Path("peers"), "--listen-socket",
         Path("relay.sock"), "--listen-address", "", "--http-address", "", "--node-name", "relay",
         "--peer-timeout", peer_timeout, "--log-level", "warn"},
        Path("relay.log"));
    ASSERT_TRUE(p.ok()) << p.status();
    relay_ = std::move(p).value();
    const std::string want = absl::StrCat("Connected Nodes: ", nodes_, "/", nodes_);
    std::string out;
    ASSERT_TRUE(testing::WaitUntil([&] { return absl::StrContains(out = Cli("status"), want); },
                                   absl::Seconds(120)))
        << out << ReadFile(Path("relay.log"));
  }

  std::string Cli(const std::string& args, int* status = nullptr) {
    return testing::RunShell(absl::StrCat(FLOWSCOPE_CLI_BINARY, " --server unix://",
                                          Path("relay.sock"), " --timeout 10s ", args),
                             status);
  }

  std::unique_ptr<::observer::Observer::Stub> Stub() {
    return ::observer::Observer::NewStub(
        grpc::CreateChannel("unix://" + Path("relay.sock"), grpc::InsecureChannelCredentials()));
  }

  std::filesystem::path dir_;
  int nodes_ = 0;
  std::unique_ptr<testing::NetnsProcess> sim_;
  std::unique_ptr<testing::NetnsProcess> relay_;
};

// Source port of a flow printed by -o json (the simulator numbers its flows by it).
int SourcePort(const nlohmann::json& flow) { return flow["l4"]["UDP"].value("source_port", -1); }

TEST_F(ScaleTest, StatusNodesAndTheGlobalNewestNOverAThousandPeers) {
  constexpr int kFlows = 5000;
  StartSim(kManyNodes, {"--rate", "20000", "--flows", std::to_string(kFlows)});
  StartRelay();
  const std::string status = Cli("status");
  EXPECT_THAT(status, HasSubstr(absl::StrCat("Connected Nodes: ", nodes_, "/", nodes_)));
  const std::string nodes = Cli("list nodes");
  int connected = 0;
  for (absl::string_view line : absl::StrSplit(nodes, '\n')) {
    connected += absl::StrContains(line, " Connected ");
  }
  EXPECT_EQ(connected, nodes_) << nodes;
  // Every flow written: the newest 100 are the last 100 the simulator wrote, whichever nodes
  // they went to.
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return absl::StrContains(Cli("status"), "Current/Max Flows: 5,000/"); },
      absl::Seconds(30)));
  const std::string out = Cli("observe --last 100 -o json");
  std::vector<int> ports;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << line;
    if (j.contains("flow")) ports.push_back(SourcePort(j["flow"]));
  }
  ASSERT_EQ(ports.size(), 100u) << out;
  for (int i = 0; i < 100; ++i) {
    EXPECT_EQ(ports[static_cast<size_t>(i)], 1024 + kFlows - 100 + i)
        << "the cluster's newest 100, oldest first";
  }
}

TEST_F(ScaleTest, AFollowOverAThousandPeersStaysOrderedWhileATenthGoDownAndComeBack) {
  const int toggled = kManyNodes / 10;
  StartSim(kManyNodes,
           {"--rate", std::to_string(kFollowRate), "--toggle", std::to_string(toggled)});
  StartRelay();
  // Flows (stdout) and node notices (stderr) apart: the notices are read often.
  const std::string log = Path("follow.json");
  const std::string notices = Path("notices.log");
  auto follow = testing::NetnsProcess::Start(
      "",
      {"/bin/sh", "-c",
       absl::StrCat("exec ", FLOWSCOPE_CLI_BINARY, " --server unix://", Path("relay.sock"),
                    " observe --follow -o json --debug 2>", notices)},
      log);
  ASSERT_TRUE(follow.ok()) << follow.status();
  auto bytes = [&] {
    std::error_code ec;
    const uintmax_t n = std::filesystem::file_size(log, ec);
    return ec ? uintmax_t{0} : n;
  };
  ASSERT_TRUE(testing::WaitUntil([&] { return bytes() > 200'000; }, absl::Seconds(30)))
      << ReadFile(notices);

  // Which of the toggled nodes the notices of some kinds named.
  auto named = [&](std::vector<absl::string_view> kinds) {
    std::set<std::string> out;
    for (absl::string_view line : absl::StrSplit(ReadFile(notices), '\n')) {
      if (std::none_of(kinds.begin(), kinds.end(),
                       [&](absl::string_view k) { return absl::StrContains(line, k); })) {
        continue;
      }
      const size_t at = line.rfind(": ");  // "…: node, node"
      if (at == absl::string_view::npos) continue;
      for (absl::string_view n : absl::StrSplit(line.substr(at + 2), ", ")) {
        int number = 0;
        if (absl::ConsumePrefix(&n, "sim-node-") && absl::SimpleAtoi(n, &number) &&
            number <= toggled) {
          out.insert(std::string(n));
        }
      }
    }
    return out;
  };
  // A node the stream was reading reports an error when it goes; one the relay already saw as
  // down (a busy machine's health checks) was said to be unavailable.
  const std::vector<absl::string_view> kDown = {"Error", "unavailable"};
  ASSERT_EQ(kill(sim_->pid(), SIGUSR1), 0);
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return named(kDown).size() == static_cast<size_t>(toggled); }, absl::Seconds(60)))
      << "every node that went down is reported: " << named(kDown).size();
  const size_t connected_before = named({"Receiving flows from"}).size();
  ASSERT_EQ(kill(sim_->pid(), SIGUSR2), 0);
  EXPECT_TRUE(testing::WaitUntil(
      [&] { return named({"Receiving flows from"}).size() == static_cast<size_t>(toggled); },
      absl::Seconds(60)))
      << "every node that came back is announced: " << named({"Receiving flows from"}).size()
      << " (before: " << connected_before << ")";
  EXPECT_TRUE(follow.value()->Running()) << "the stream goes on";
  const uintmax_t before_end = bytes();
  ASSERT_TRUE(testing::WaitUntil([&] { return bytes() > before_end + 200'000; }, absl::Seconds(30)))
      << "flows go on after the nodes are back";
  const absl::StatusOr<int> exit = follow.value()->Signal(SIGINT, absl::Seconds(10));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(*exit, 0);

  // Strictly ordered throughout.
  absl::Time previous = absl::InfinitePast();
  size_t flows = 0;
  for (absl::string_view line : absl::StrSplit(ReadFile(log), '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "{")) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded()) continue;  // the last line, cut by Ctrl-C
    if (!j.contains("flow")) continue;
    absl::Time t;
    std::string err;
    ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, j["time"].get<std::string>(), &t, &err));
    ASSERT_GE(t, previous) << "out of order: " << line;
    previous = t;
    ++flows;
  }
  EXPECT_GT(flows, 1000u);
}

TEST_F(ScaleTest, AHundredConcurrentClientsOverAHundredPeersAndAShutdownUnderLoad) {
  StartSim(kManyClients, {"--rate", "2000"});
  // 10,000 peer calls at once on two cores: the peers are slow to answer, not silent.
  StartRelay("30s");
  // 100 history clients at once (each the cluster's newest 20), while 20 follow streams run.
  std::vector<std::thread> followers;
  std::vector<std::unique_ptr<grpc::ClientContext>> follow_contexts;
  std::atomic<int> follow_messages{0};
  std::atomic<int> follows_ended{0};
  for (int i = 0; i < 20; ++i) {
    follow_contexts.push_back(std::make_unique<grpc::ClientContext>());
    grpc::ClientContext* ctx = follow_contexts.back().get();
    followers.emplace_back([&, ctx] {
      auto stub = Stub();
      ::observer::GetFlowsRequest req;
      req.set_follow(true);
      auto reader = stub->GetFlows(ctx, req);
      ::observer::GetFlowsResponse r;
      while (reader->Read(&r)) follow_messages.fetch_add(1);
      reader->Finish();
      follows_ended.fetch_add(1);
    });
  }
  std::atomic<int> complete{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kManyClients; ++i) {
    clients.emplace_back([&] {
      auto stub = Stub();
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
      ::observer::GetFlowsRequest req;
      req.set_number(20);
      auto reader = stub->GetFlows(&ctx, req);
      ::observer::GetFlowsResponse r;
      int flows = 0;
      while (reader->Read(&r)) flows += r.has_flow();
      const grpc::Status s = reader->Finish();
      EXPECT_TRUE(s.ok()) << s.error_message();
      EXPECT_EQ(flows, 20);
      if (s.ok() && flows == 20) complete.fetch_add(1);
    });
  }
  for (auto& t : clients) t.join();
  EXPECT_EQ(complete.load(), kManyClients);
  EXPECT_TRUE(testing::WaitUntil([&] { return follow_messages.load() > 2000; }, absl::Seconds(30)));
  EXPECT_EQ(follows_ended.load(), 0);

  // Shut down with 20 follows open: the relay ends them and exits cleanly, promptly.
  const absl::StatusOr<int> exit = relay_->Signal(SIGTERM, absl::Seconds(20));
  ASSERT_TRUE(exit.ok()) << exit.status() << ReadFile(Path("relay.log"));
  EXPECT_TRUE(WIFEXITED(*exit) && WEXITSTATUS(*exit) == 0) << "exit status " << *exit << "\n"
                                                           << ReadFile(Path("relay.log"));
  for (auto& t : followers) t.join();
  EXPECT_EQ(follows_ended.load(), 20);
}

// A relay whose peers are relays (flowscope's FlowStream through each): 2 × 2 nodes under a top
// relay. Node names come through; status and the node list count the nodes, not the relays.
TEST_F(ScaleTest, ARelayOfRelaysServesTheirNodesInOrder) {
  std::vector<std::unique_ptr<testing::NetnsProcess>> keep;
  std::vector<std::string> mids;
  for (const std::string group : {"a", "b"}) {
    const std::string sub = Path(group);
    std::filesystem::create_directories(sub);
    auto sim =
        testing::NetnsProcess::Start("",
                                     {FLOWSCOPE_SIMNODES_BINARY, "--nodes", "2", "--dir", sub,
                                      "--rate", "400", "--name-prefix", "node-" + group + "-"},
                                     sub + "/sim.log");
    ASSERT_TRUE(sim.ok()) << sim.status();
    keep.push_back(std::move(sim).value());
    ASSERT_TRUE(testing::WaitUntil(
        [&] { return absl::StrContains(ReadFile(sub + "/sim.log"), "ready"); }, absl::Seconds(60)));
    auto mid = testing::NetnsProcess::Start(
        "",
        {FLOWSCOPE_RELAY_BINARY, "--peers-file", sub + "/peers", "--listen-socket",
         sub + "/relay.sock", "--listen-address", "", "--http-address", "", "--node-name",
         "relay-" + group, "--log-level", "warn"},
        sub + "/relay.log");
    ASSERT_TRUE(mid.ok()) << mid.status();
    keep.push_back(std::move(mid).value());
    mids.push_back("unix://" + sub + "/relay.sock");
  }
  {
    std::ofstream peers(Path("peers"));
    for (const std::string& m : mids) peers << m << "\n";
  }
  nodes_ = 4;
  StartRelay();  // waits for "Connected Nodes: 4/4"
  const std::string nodes = Cli("list nodes");
  for (const char* n : {"node-a-0001", "node-a-0002", "node-b-0001", "node-b-0002"}) {
    EXPECT_THAT(nodes, ::testing::ContainsRegex(absl::StrCat(n, " +Connected"))) << nodes;
  }
  EXPECT_THAT(nodes, ::testing::Not(HasSubstr("relay-a"))) << "the nodes, not the relays";

  auto ordered_nodes = [](const std::string& out, size_t* flows) {
    std::set<std::string> names;
    absl::Time previous = absl::InfinitePast();
    *flows = 0;
    for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
      if (!absl::StartsWith(line, "{")) continue;
      const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
      if (j.is_discarded() || !j.contains("flow")) continue;
      absl::Time t;
      std::string err;
      EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, j["time"].get<std::string>(), &t, &err));
      EXPECT_GE(t, previous) << line;
      previous = t;
      names.insert(j["flow"]["node_name"].get<std::string>());
      ++*flows;
    }
    return names;
  };
  size_t flows = 0;
  const std::set<std::string> all = {"node-a-0001", "node-a-0002", "node-b-0001", "node-b-0002"};
  // Enough flows in the four rings for the newest 200 to be a choice.
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        const std::string status = Cli("status");
        const size_t at = status.find("Current/Max Flows: ");
        int64_t current = 0;
        return at != std::string::npos &&
               absl::SimpleAtoi(
                   absl::StrReplaceAll(status.substr(at + 19, status.find('/', at + 19) - at - 19),
                                       {{",", ""}}),
                   &current) &&
               current >= 1000;
      },
      absl::Seconds(30)));
  const std::string last = Cli("observe --last 200 -o json");
  EXPECT_EQ(ordered_nodes(last, &flows), all) << last;
  EXPECT_EQ(flows, 200u) << "the newest 200 of all four nodes, in order:\n" << last;
  // The oldest, streamed from the first flow through both relays: the relays below announce
  // their nodes as the query starts — later than every flow stored — and that must not pass
  // for a place in the order (the flows behind it were all taken for late once).
  const std::string first = Cli("observe --first 500 -o json");
  EXPECT_EQ(ordered_nodes(first, &flows), all) << first;
  EXPECT_EQ(flows, 500u) << "the oldest 500 of all four nodes, in order:\n" << first;
  EXPECT_THAT(first, Not(HasSubstr("lost_events"))) << first;
  // Followed until more than 100 flows from all four nodes have come, then Ctrl-C.
  const std::string log = Path("follow.json");
  auto follow = testing::NetnsProcess::Start(
      "",
      {FLOWSCOPE_CLI_BINARY, "--server", "unix://" + Path("relay.sock"), "observe", "--follow",
       "-o", "json"},
      log);
  ASSERT_TRUE(follow.ok()) << follow.status();
  EXPECT_TRUE(testing::WaitUntil(
      [&] {
        size_t n = 0;
        return ordered_nodes(ReadFile(log), &n) == all && n > 100;
      },
      absl::Seconds(30)));
  const absl::StatusOr<int> exit = follow.value()->Signal(SIGINT, absl::Seconds(10));
  ASSERT_TRUE(exit.ok()) << exit.status();
  const std::string followed = ReadFile(log);
  EXPECT_EQ(ordered_nodes(followed, &flows), all) << followed.substr(0, 2000);
  EXPECT_GT(flows, 100u);
}

// The relay's resident memory, KiB.
int64_t RssKib(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v = line;
    if (!absl::ConsumePrefix(&v, "VmRSS:")) continue;
    v = absl::StripAsciiWhitespace(v);
    absl::ConsumeSuffix(&v, " kB");
    int64_t kib = 0;
    return absl::SimpleAtoi(v, &kib) ? kib : -1;
  }
  return -1;
}

// `--all` streams from the first flow with bounded memory: clients that open it and stop
// reading hold the relay's memory to the queues' caps, not to every node's whole answer (which
// the relay used to collect first: 20 such clients took 1.4 GB).
TEST_F(ScaleTest, UnreadAllStreamsHoldBoundedMemory) {
  constexpr int kNodes = 10;
  constexpr int kFlows = 2'000'000;
  constexpr int kClients = 20;
  StartSim(kNodes,
           {"--rate", "400000", "--flows", std::to_string(kFlows), "--ring-size", "262143"});
  StartRelay("30s");
  ASSERT_TRUE(testing::WaitUntil(
      [&] { return absl::StrContains(Cli("status"), "Current/Max Flows: 2,000,000/"); },
      absl::Seconds(90)));
  const int64_t before = RssKib(relay_->pid());
  ASSERT_GT(before, 0);
  std::vector<std::unique_ptr<grpc::ClientContext>> contexts;
  std::vector<std::unique_ptr<grpc::ClientReader<::observer::GetFlowsResponse>>> readers;
  auto stub = Stub();
  for (int i = 0; i < kClients; ++i) {
    contexts.push_back(std::make_unique<grpc::ClientContext>());
    ::observer::GetFlowsRequest req;
    req.set_number(std::numeric_limits<uint64_t>::max());  // --all
    readers.push_back(stub->GetFlows(contexts.back().get(), req));
    ::observer::GetFlowsResponse first;
    ASSERT_TRUE(readers.back()->Read(&first));  // it streams: the first flows come at once
  }
  // What the relay holds once every stream has filled its queues, read no further.
  int64_t held = 0;
  for (int i = 0; i < 10; ++i) {
    absl::SleepFor(absl::Milliseconds(500));
    held = std::max(held, RssKib(relay_->pid()) - before);
  }
  // A whole answer is 2,000,000 flows (over 500 MB encoded); each stream may hold its write
  // queue (8 MiB), per peer a batch (1 MiB) and the next one's part of the merge's queue and of
  // gRPC's window, and what the allocator keeps around those blocks.
#if defined(__SANITIZE_ADDRESS__)
  constexpr int64_t kBoundKib = 160 * 1024;  // redzones and the quarantine of freed memory
#else
  constexpr int64_t kBoundKib = 80 * 1024;
#endif
  EXPECT_LT(held / kClients, kBoundKib) << "KiB per unread --all stream";
  std::cout << "relay RSS held per unread --all stream: " << held / kClients << " KiB\n";
  for (auto& c : contexts) c->TryCancel();
  for (auto& r : readers) r->Finish();
  // And it serves on.
  const std::string out = Cli("observe --last 5 -o compact");
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 5) << out;
}

// A pids cgroup around the relay (cgroup v1's pids controller, as on this machine), removed
// afterwards: its tasks go back to the root first.
class PidsCgroup {
 public:
  static constexpr char kRoot[] = "/sys/fs/cgroup/pids";
  PidsCgroup() : dir_(absl::StrCat(kRoot, "/fs-test-", getpid())) {
    std::error_code ec;
    ok_ = std::filesystem::create_directory(dir_, ec) && !ec;
  }
  ~PidsCgroup() {
    if (!ok_) return;
    for (absl::string_view pid : absl::StrSplit(ReadFile(dir_ + "/cgroup.procs"), '\n')) {
      if (!pid.empty()) Write(absl::StrCat(kRoot, "/cgroup.procs"), std::string(pid));
    }
    rmdir(dir_.c_str());
  }
  bool ok() const { return ok_; }
  bool Add(pid_t pid) { return Write(dir_ + "/cgroup.procs", std::to_string(pid)); }
  bool SetMax(const std::string& max) { return Write(dir_ + "/pids.max", max); }
  int64_t Current() const {
    int64_t n = -1;
    return absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFile(dir_ + "/pids.current")), &n) ? n
                                                                                              : -1;
  }

 private:
  static bool Write(const std::string& path, const std::string& value) {
    std::ofstream out(path);
    out << value << std::flush;
    return static_cast<bool>(out);
  }
  std::string dir_;
  bool ok_ = false;
};

// Near its task limit the relay refuses new calls with RESOURCE_EXHAUSTED — never a crash, and
// never the starved gRPC executors that lose work when a thread cannot start (a relay that
// answered nothing any more, even after the limit went) — and serves again once there is room.
TEST_F(ScaleTest, NearAPidsLimitNewCallsAreRefusedAndTheRelayServesAgainAfter) {
  PidsCgroup cgroup;
  if (!cgroup.ok()) GTEST_SKIP() << "no writable pids cgroup at " << PidsCgroup::kRoot;
  StartSim(10, {"--rate", "1000"});
  StartRelay();
  ASSERT_TRUE(cgroup.Add(relay_->pid()));
  const int64_t tasks = cgroup.Current();
  ASSERT_GT(tasks, 0);
  ASSERT_TRUE(cgroup.SetMax(std::to_string(tasks + 4)));  // under the relay's 16 kept free

  std::vector<std::thread> clients;
  std::vector<std::string> outs(10);
  for (size_t i = 0; i < outs.size(); ++i) {
    // (Bounded: a relay whose executors starved would keep them waiting.)
    clients.emplace_back([&, i] {
      outs[i] =
          testing::RunShell(absl::StrCat("timeout 20 ", FLOWSCOPE_CLI_BINARY, " --server unix://",
                                         Path("relay.sock"), " observe --follow -o compact"));
    });
  }
  for (auto& c : clients) c.join();
  for (const std::string& out : outs) {
    EXPECT_THAT(out, HasSubstr("ResourceExhausted"));
    EXPECT_THAT(out, HasSubstr("near its task limit"));
  }
  int rc = 0;
  EXPECT_THAT(Cli("status", &rc), HasSubstr("near its task limit"));
  EXPECT_NE(rc, 0);
  ASSERT_EQ(kill(relay_->pid(), 0), 0) << "the relay died:\n" << ReadFile(Path("relay.log"));

  // Room again: every node, and flows.
  ASSERT_TRUE(cgroup.SetMax("max"));
  const std::string want = absl::StrCat("Connected Nodes: ", nodes_, "/", nodes_);
  std::string status;
  ASSERT_TRUE(testing::WaitUntil([&] { return absl::StrContains(status = Cli("status"), want); },
                                 absl::Seconds(30)))
      << status << ReadFile(Path("relay.log"));
  std::vector<std::thread> followers;
  std::vector<std::string> flows(10);
  for (size_t i = 0; i < flows.size(); ++i) {
    followers.emplace_back([&, i] { flows[i] = Cli("observe --last 20 -o compact"); });
  }
  for (auto& f : followers) f.join();
  for (const std::string& out : flows) {
    EXPECT_GE(std::count(out.begin(), out.end(), '\n'), 20) << out;
    EXPECT_THAT(out, Not(HasSubstr("rpc error"))) << out;
  }
  EXPECT_THAT(Cli("status"), HasSubstr(want));
}

}  // namespace
}  // namespace flowscope
