// The observe/status/list commands against an in-process observer service (no BPF needed).
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_split.h"
#include "api/grpc_server.h"
#include "api/version.h"
#include "bpf/flow_event.h"
#include "cmd/cli/commands.h"
#include "observer/observer_service.h"
#include "tests/testing/flow_records.h"
#include "tests/testing/wait.h"

namespace flowscope::cli {
namespace {

using ::testing::HasSubstr;

class ObserveTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ring_ = std::move(observer::Ring::Create(127)).value();
    table_ = std::make_unique<observer::EndpointTable>("default");
    observer::EndpointInfo tie;
    tie.ips = {"10.0.1.5"};
    tie.namespace_name = "default";
    tie.pod_name = "tiefighter";
    table_->Update({tie});
    builder_ = std::make_unique<observer::FlowBuilder>(*table_, "node-1", nullptr, 3);
    service_ = std::make_unique<observer::ObserverService>(
        *ring_, *table_, *builder_, observer::ObserverOptions{"node-1", "x"});
    dir_ = std::filesystem::temp_directory_path() / ("fs-obs-cli-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    auto server = GrpcServer::Start({service_.get()}, {(dir_ / "s.sock").string(), ""});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    opts_.server = server_->target();
    observer::EndpointTable::Resolver res(*table_);
    for (int i = 0; i < 30; ++i) {
      observer::FlowRecord r = testing::DnsQueryRecord(
          1'714'826'828'811'000'000ULL + static_cast<uint64_t>(i) * 1'000'000, "10.0.1.5",
          "10.0.9.9", static_cast<uint16_t>(40000 + i), res);
      r.is_reply = FS_REPLY_NO;
      ring_->Write(r);
    }
    ring_->Publish();
  }
  void TearDown() override {
    server_->Shutdown(absl::Milliseconds(50));
    std::filesystem::remove_all(dir_);
  }

  std::unique_ptr<observer::Ring> ring_;
  std::unique_ptr<observer::EndpointTable> table_;
  std::unique_ptr<observer::FlowBuilder> builder_;
  std::unique_ptr<observer::ObserverService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::filesystem::path dir_;
  ServerOptions opts_;
};

TEST_F(ObserveTest, DefaultIsTheLast20InCompactForm) {
  std::ostringstream out, err;
  EXPECT_EQ(Observe(opts_, {}, {}, out, err, nullptr), 0) << err.str();
  std::vector<std::string> lines = absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 20u);
  EXPECT_EQ(lines[0], "May  4 12:47:08.821: default/tiefighter:40010 (ID:" +
                          std::to_string(table_->Get(3)->identity) +
                          ") -> 10.0.9.9:53 (world) from-endpoint FORWARDED (UDP)");
  EXPECT_EQ(err.str(), "");
}

TEST_F(ObserveTest, FieldMasksTrimFlowsAndBadPathsAreRejected) {
  ObserveOptions o;
  o.printer.format = Format::kJson;
  o.last = 1;
  o.field_mask = {"time", "source.pod_name"};
  std::ostringstream out, err;
  ASSERT_EQ(Observe(opts_, o, {}, out, err, nullptr), 0) << err.str();
  EXPECT_EQ(out.str(),
            R"({"flow":{"time":"2024-05-04T12:47:08.840Z","source":{"pod_name":"tiefighter"}},)"
            R"("node_name":"node-1","time":"2024-05-04T12:47:08.840Z"})"
            "\n");
  o.field_mask = {"no_such_field"};
  std::ostringstream out2, err2;
  EXPECT_EQ(Observe(opts_, o, {}, out2, err2, nullptr), 1);
  EXPECT_THAT(err2.str(), HasSubstr("code = InvalidArgument desc = invalid fieldmask"));
  EXPECT_EQ(out2.str(), "");
}

TEST_F(ObserveTest, InterruptEndsAFollowQueryCleanly) {
  ObserveOptions o;
  o.follow = true;
  o.last = 3;
  std::atomic<bool> interrupted{false};
  std::ostringstream out, err;
  int rc = -1;
  std::thread cli([&] { rc = Observe(opts_, o, {}, out, err, &interrupted); });
  // The query has sent the last 3 and waits for more.
  ASSERT_TRUE(testing::WaitUntil([&] { return service_->parked_streams() == 1; }));
  interrupted = true;  // what Ctrl-C sets
  cli.join();
  EXPECT_EQ(rc, 0) << err.str();
  EXPECT_EQ(err.str(), "");
  std::vector<std::string> lines = absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << out.str();
  EXPECT_THAT(lines[2], HasSubstr("default/tiefighter:40029"));
}

TEST_F(ObserveTest, AgentAndDebugEventsAreUnimplementedWithAMessage) {
  std::ostringstream out, err;
  EXPECT_EQ(ObserveEvents(opts_, true, {}, out, err, nullptr), 1);
  EXPECT_THAT(err.str(), HasSubstr("Unimplemented desc = flowscope does not produce agent events"));
}

// A server that names a newer version in its headers (as Hubble's do) draws Hubble's warning;
// this version's own does not.
TEST_F(ObserveTest, ANewerServerVersionIsWarnedAbout) {
  std::ostringstream out, err;
  ASSERT_EQ(Status(opts_, Format::kCompact, out, err), 0) << err.str();
  EXPECT_EQ(err.str(), "");
  server_->Shutdown(absl::Milliseconds(50));
  ListenOptions listen((dir_ / "s.sock").string(), "");
  listen.headers = {{kRelayVersionHeader, "v99.1.0"}};
  auto server = GrpcServer::Start({service_.get()}, listen);
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(server).value();
  std::ostringstream out2, err2;
  ASSERT_EQ(Status(opts_, Format::kCompact, out2, err2), 0) << err2.str();
  EXPECT_THAT(err2.str(), HasSubstr("flowscope: warning: this CLI (v"));
  EXPECT_THAT(err2.str(), HasSubstr("is older than the relay (v99.1.0)"));
  std::ostringstream out3, err3;
  ObserveOptions o;
  o.last = 1;
  ASSERT_EQ(Observe(opts_, o, {}, out3, err3, nullptr), 0) << err3.str();
  EXPECT_THAT(err3.str(), HasSubstr("is older than the relay (v99.1.0)"));
}

TEST_F(ObserveTest, StatusAndNodes) {
  std::ostringstream out, err;
  EXPECT_EQ(Status(opts_, Format::kCompact, out, err), 0) << err.str();
  EXPECT_THAT(out.str(), HasSubstr("Healthcheck (via unix://"));
  EXPECT_THAT(out.str(), HasSubstr("Current/Max Flows: 30/127 (23.62%)\n"));
  std::ostringstream nodes, e2;
  EXPECT_EQ(ListNodes(opts_, "wide", nodes, e2), 0);
  EXPECT_THAT(nodes.str(), HasSubstr("NAME     STATUS      AGE"));
  EXPECT_THAT(nodes.str(), HasSubstr("30/127 ( 23.62%)"));
  EXPECT_THAT(nodes.str(), HasSubstr("Disabled"));
}

// Varied flows — TCP with flags and replies, a policy drop, UDP, ICMP, two pods and the world
// — recorded with `-o json`, then read back with --input-file: every filter must select exactly
// what the server selects for the same flows.
TEST_F(ObserveTest, InputFileAppliesTheSameFiltersAsTheServer) {
  observer::EndpointInfo xwing;
  xwing.ips = {"10.0.2.7"};
  xwing.namespace_name = "default";
  xwing.pod_name = "xwing";
  xwing.labels = {"org=alliance"};
  observer::EndpointInfo tie;
  tie.ips = {"10.0.1.5"};
  tie.namespace_name = "default";
  tie.pod_name = "tiefighter";
  tie.labels = {"org=empire"};
  table_->Update({tie, xwing});
  observer::EndpointTable::Resolver res(*table_);
  uint64_t t = 1'714'826'900'000'000'000ULL;
  auto add = [&](const char* src, const char* dst, uint8_t proto, uint16_t sport, uint16_t dport,
                 uint16_t flags, bool reply, bool drop) {
    observer::FlowRecord r = testing::DnsQueryRecord(t += 1'000'000, src, dst, sport, res);
    r.protocol = proto;
    r.dport = dport;
    r.tcp_flags = flags;
    r.is_reply = reply ? FS_REPLY_YES : FS_REPLY_NO;
    if (drop) {
      r.verdict = FS_VERDICT_DROPPED;
      r.drop_reason = 133;
    }
    if (proto == IPPROTO_ICMP) r.sport = r.dport = 0, r.icmp_type = 8;
    ring_->Write(r);
  };
  add("10.0.1.5", "10.0.3.9", IPPROTO_TCP, 33000, 80, FS_TCP_SYN, false, false);
  add("10.0.3.9", "10.0.1.5", IPPROTO_TCP, 80, 33000, FS_TCP_SYN | FS_TCP_ACK, true, false);
  add("10.0.1.5", "10.0.3.9", IPPROTO_TCP, 33000, 80, FS_TCP_FIN | FS_TCP_ACK, false, false);
  add("10.0.2.7", "10.0.3.9", IPPROTO_TCP, 41000, 80, FS_TCP_SYN, false, true);
  add("10.0.2.7", "10.0.9.9", IPPROTO_UDP, 5353, 53, 0, false, false);
  add("10.0.1.5", "10.0.2.7", IPPROTO_ICMP, 0, 0, 0, false, false);
  ring_->Publish();

  ObserveOptions all;
  all.all = true;
  all.printer.format = Format::kJson;
  std::ostringstream recorded, err;
  ASSERT_EQ(Observe(opts_, all, {}, recorded, err, nullptr), 0) << err.str();
  const std::string file = (dir_ / "flows.json").string();
  std::ofstream(file) << recorded.str();

  uint32_t xwing_addr[4] = {};
  inet_pton(AF_INET, "10.0.2.7", xwing_addr);
  const uint32_t xwing_identity = table_->Get(res.Lookup(FS_FAMILY_IPV4, xwing_addr))->identity;
  const std::vector<std::vector<std::pair<std::string, std::string>>> cases = {
      {},
      {{"pod", "default/xwing"}},
      {{"from-pod", "default/tiefighter"}, {"to-port", "80"}},
      {{"verdict", "DROPPED"}},
      {{"drop-reason-desc", "POLICY_DENIED"}},
      {{"protocol", "udp"}},
      {{"protocol", "icmp"}},
      {{"tcp-flags", "SYN"}},
      {{"label", "org=empire"}},
      {{"not", ""}, {"label", "org=empire"}},
      {{"from-ip", "10.0.2.0/24"}},
      {{"ip", "10.0.3.9"}, {"port", "33000"}},
      {{"type", "trace"}},
      {{"traffic-direction", "egress"}},
      {{"node-name", "node-*"}},
      {{"node-name", "other"}},
      {{"identity", std::to_string(xwing_identity)}},
  };
  for (const auto& flags : cases) {
    FilterBuilder b;
    std::string label;
    for (const auto& [flag, value] : flags) {
      ASSERT_TRUE(b.Add(flag, value).ok()) << flag << " " << value;
      label += " --" + flag + " " + value;
    }
    auto filters = b.Build();
    ASSERT_TRUE(filters.ok()) << label;
    for (const char* selection : {"all", "last2", "first2"}) {
      ObserveOptions o;
      o.printer.format = Format::kCompact;
      if (std::string(selection) == "all") o.all = true;
      if (std::string(selection) == "last2") o.last = 2;
      if (std::string(selection) == "first2") o.first = 2;
      std::ostringstream from_server, from_file, e1, e2;
      ASSERT_EQ(Observe(opts_, o, *filters, from_server, e1, nullptr), 0) << label << e1.str();
      o.input_file = file;
      ASSERT_EQ(Observe(opts_, o, *filters, from_file, e2, nullptr), 0) << label << e2.str();
      EXPECT_EQ(from_file.str(), from_server.str()) << label << " (" << selection << ")";
    }
  }
  // A bad line in the middle is a warning naming file and line, and skipped (as Hubble): the
  // lines around it are still read.
  std::string good_last;
  {
    std::ifstream in(file);
    for (std::string l; std::getline(in, l);) good_last = l;
  }
  std::ofstream(file, std::ios::app) << "{not json\n" << good_last << "\n";
  ObserveOptions o;  // no count: a file is read whole (the last-20 default is a server's)
  o.input_file = file;
  std::ostringstream out, bad;
  EXPECT_EQ(Observe(opts_, o, {}, out, bad, nullptr), 0) << bad.str();
  EXPECT_THAT(bad.str(),
              HasSubstr(absl::StrCat("warning: --input-file ", file, " line 37: not a ")));
  EXPECT_THAT(bad.str(), HasSubstr("1 line(s) of --input-file"));
  const std::string printed = out.str();
  EXPECT_EQ(std::count(printed.begin(), printed.end(), '\n'), 37) << "36 + the one after";
  // A directory is an error, not an empty success.
  o.input_file = dir_.string();
  std::ostringstream out3, bad3;
  EXPECT_EQ(Observe(opts_, o, {}, out3, bad3, nullptr), 1);
  EXPECT_THAT(bad3.str(), HasSubstr("is a directory"));
  o.input_file = (dir_ / "missing.json").string();
  std::ostringstream out2, bad2;
  EXPECT_EQ(Observe(opts_, o, {}, out2, bad2, nullptr), 1);
  EXPECT_THAT(bad2.str(), HasSubstr("cannot read --input-file"));
}

}  // namespace
}  // namespace flowscope::cli
