// The README's first command end to end: `scripts/demo up` with this build's binaries (its own
// name prefix and relay port, so a demo someone is running is left alone), then, through the
// relay with the CLI: tiefighter → deathstar:80 FORWARDED with SYN / SYN-ACK / FIN and correct
// is_reply, xwing → deathstar:80 DROPPED by policy (reason 133), DNS to coredns on port 53,
// flows from both nodes, 2/2 nodes connected, `--since 3m --pod default/tiefighter` only about
// tiefighter. Then `scripts/demo down`, and nothing of it is left: namespaces, links, processes,
// sockets, files.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "tests/testing/bpf_env.h"
#include "tests/testing/http_client.h"
#include "tests/testing/netns.h"
#include "tests/testing/shell.h"
#include "tests/testing/wait.h"

namespace flowscope {
namespace {

using nlohmann::json;
using ::testing::HasSubstr;

// True while `pid` runs a program (not gone, not a zombie).
bool Alive(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/cmdline");
  std::string cmdline;
  std::getline(in, cmdline);
  return !cmdline.empty();
}

class DemoE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (auto reason = testing::BpfUnavailableReason()) GTEST_SKIP() << *reason;
    // Its own names and port: a demo someone is running is left alone.
    prefix_ = "fst";
    state_ = "/run/flowscope-demo-" + prefix_;
    port_ = testing::FreeTcpPort();
    Demo("down");  // leftovers of an interrupted earlier run
  }
  void TearDown() override {
    if (port_ != 0) Demo("down");
  }

  std::string Demo(const std::string& action, int* status = nullptr) {
    return testing::RunShell(absl::StrCat("bash ", FLOWSCOPE_SOURCE_DIR, "/scripts/demo ", action,
                                          " --prefix ", prefix_, " --port ", port_, " --build-dir ",
                                          FLOWSCOPE_BUILD_DIR, action == "up" ? " --no-build" : ""),
                             status);
  }

  std::string Cli(const std::string& args) {
    return testing::RunShell(
        absl::StrCat(FLOWSCOPE_BUILD_DIR, "/cmd/flowscope --server 127.0.0.1:", port_, " ", args));
  }

  // The flows of `-o json` output (other lines — node status notices — are skipped).
  std::vector<json> Flows(const std::string& args) {
    std::vector<json> out;
    for (absl::string_view line : absl::StrSplit(Cli(args + " -o json"), '\n')) {
      if (line.empty() || line[0] != '{') continue;
      json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_object() && j.contains("flow")) out.push_back(j["flow"]);
    }
    return out;
  }

  int port_ = 0;
  std::string prefix_;
  std::string state_;
};

std::string Pod(const json& flow, const char* side) {
  return flow.contains(side) ? flow[side].value("pod_name", "") : "";
}

bool Flag(const json& flow, const char* flag) {
  return flow.contains("l4") && flow["l4"].contains("TCP") && flow["l4"]["TCP"].contains("flags") &&
         flow["l4"]["TCP"]["flags"].value(flag, false);
}

TEST_F(DemoE2eTest, UpShowsTheClusterAndDownLeavesNothing) {
  int status = -1;
  // First a failure half-way: someone else's namespace where a pod would go. What was made is
  // removed, and only that.
  const std::string foreign = prefix_ + "-coredns";
  ASSERT_EQ(system(("ip netns add " + foreign).c_str()), 0);
  const std::string failed = Demo("up", &status);
  EXPECT_EQ(status, 1) << failed;
  EXPECT_THAT(failed, HasSubstr("scripts/demo: FAILED while creating the pods"));
  EXPECT_THAT(failed, HasSubstr("scripts/demo: cleaned up"));
  const std::string left = testing::RunShell("ip netns list");
  EXPECT_THAT(left, HasSubstr(foreign)) << "not ours: kept";
  EXPECT_THAT(left, ::testing::Not(HasSubstr(prefix_ + "-node-"))) << "ours: removed";
  EXPECT_FALSE(std::filesystem::exists(state_));
  ASSERT_EQ(system(("ip netns del " + foreign).c_str()), 0);

  const std::string up = Demo("up", &status);
  ASSERT_EQ(status, 0) << up;
  EXPECT_THAT(up, HasSubstr("Connected Nodes: 2/2"));
  EXPECT_THAT(up, HasSubstr("default/tiefighter"));
  EXPECT_THAT(up, HasSubstr("bash scripts/demo down"));
  // node-2's observer restarted with an empty ring; its earlier flows came from its history.
  const size_t restarted = up.find("node-2's observer restarts");
  ASSERT_NE(restarted, std::string::npos) << up;
  const std::string after = up.substr(up.find("--node-name node-2 --last 5", restarted));
  EXPECT_THAT(after, HasSubstr("default/")) << up;
  EXPECT_THAT(up, HasSubstr("History: ")) << "status shows the nodes' histories";

  // Wait until the traffic has produced everything asserted below (a few seconds).
  std::vector<json> tie, dropped, dns, recent, kernel, lookups, named;
  bool syn = false, syn_ack = false, fin = false;
  testing::WaitUntil(
      [&] {
        tie = Flows("observe --since 3m --pod default/tiefighter");
        dropped = Flows(
            "observe --last 50 --pod default/xwing --verdict DROPPED "
            "--drop-reason-desc POLICY_DENIED");
        kernel = Flows(
            "observe --last 20 --drop-reason-desc NO_SOCKET --drop-reason-desc NETFILTER_DROP");
        dns = Flows("observe --last 50 --to-port 53 --protocol UDP");
        lookups = Flows("observe --last 20 --protocol dns --pod default/tiefighter");
        named = Flows("observe --last 20 --to-fqdn '*.default.svc.cluster.local'");
        bool answered = false;
        for (const json& f : lookups) {
          answered |= f.contains("l7") && f["l7"].value("type", "") == "RESPONSE";
        }
        recent = Flows("observe --last 300");
        syn = syn_ack = fin = false;
        for (const json& f : tie) {
          if (!Pod(f, "destination").starts_with("deathstar-") &&
              !Pod(f, "source").starts_with("deathstar-")) {
            continue;
          }
          syn |= Flag(f, "SYN") && !Flag(f, "ACK") && !f.value("is_reply", true);
          syn_ack |= Flag(f, "SYN") && Flag(f, "ACK") && f.value("is_reply", false);
          fin |= Flag(f, "FIN");
        }
        std::set<std::string> nodes;
        for (const json& f : recent) nodes.insert(f.value("node_name", ""));
        std::set<std::string> reasons;
        for (const json& f : kernel) reasons.insert(f.value("Summary", ""));
        return syn && syn_ack && fin && !dropped.empty() && !dns.empty() && nodes.size() == 2 &&
               reasons.size() == 2 && answered && !named.empty();
      },
      absl::Seconds(30));

  // tiefighter lands: SYN, SYN-ACK (a reply), FIN, forwarded, to deathstar port 80.
  EXPECT_TRUE(syn && syn_ack && fin) << "SYN " << syn << " SYN-ACK " << syn_ack << " FIN " << fin;
  ASSERT_FALSE(tie.empty());
  for (const json& f : tie) {
    EXPECT_TRUE(Pod(f, "source") == "tiefighter" || Pod(f, "destination") == "tiefighter")
        << "--pod default/tiefighter returned " << f.dump();
    // (Its UDP probes of port 9 are checked with the kernel's drops below.)
    if (Pod(f, "destination").starts_with("deathstar-") && f["l4"].contains("TCP")) {
      EXPECT_EQ(f.value("verdict", ""), "FORWARDED") << f.dump();
      EXPECT_EQ(f["l4"]["TCP"].value("destination_port", 0), 80) << f.dump();
    }
  }
  // The clients looked deathstar up before connecting: their flows to it carry the name.
  ASSERT_FALSE(named.empty());
  for (const json& f : named) {
    EXPECT_THAT(Pod(f, "destination"), ::testing::StartsWith("deathstar-")) << f.dump();
    EXPECT_EQ(f["destination_names"], json::array({"deathstar.default.svc.cluster.local"}))
        << f.dump();
  }
  // xwing does not: its SYNs to deathstar:80 are dropped by the policy.
  ASSERT_FALSE(dropped.empty());
  for (const json& f : dropped) {
    EXPECT_EQ(Pod(f, "source"), "xwing") << f.dump();
    EXPECT_THAT(Pod(f, "destination"), ::testing::StartsWith("deathstar-")) << f.dump();
    EXPECT_EQ(f["l4"]["TCP"].value("destination_port", 0), 80) << f.dump();
    EXPECT_EQ(f.value("drop_reason", 0), 133) << f.dump();
    EXPECT_EQ(f.value("drop_reason_desc", ""), "POLICY_DENIED") << f.dump();
    // The drop and the policy verdict beside it both name the demo's rule.
    const json& by =
        f.contains("egress_denied_by") ? f["egress_denied_by"] : f["ingress_denied_by"];
    ASSERT_TRUE(by.is_array()) << f.dump();
    EXPECT_EQ(by[0].value("name", ""), "deathstar-no-alliance") << f.dump();
  }
  // The kernel's drops, with its reasons: tiefighter's probe of deathstar-1's closed UDP port 9
  // on node-1, xwing's own nftables on node-2; each reported once, by the node it happened on.
  EXPECT_THAT(up, HasSubstr("DROPPED (NO_SOCKET)"));
  std::set<std::string> reasons;
  for (const json& f : kernel) {
    const std::string reason = f.value("Summary", "");
    reasons.insert(reason);
    EXPECT_EQ(f.value("verdict", ""), "DROPPED") << f.dump();
    EXPECT_EQ(f["l4"]["UDP"].value("destination_port", 0), 9) << f.dump();
    EXPECT_EQ(f["extensions"].value("reason", ""), reason) << f.dump();
    EXPECT_EQ(f["extensions"].value("@type", ""), "type.googleapis.com/flowscope.v1.KernelDrop");
    if (reason == "NO_SOCKET") {
      EXPECT_EQ(Pod(f, "source"), "tiefighter") << f.dump();
      EXPECT_EQ(Pod(f, "destination"), "deathstar-6fb5694d48-5hmds") << f.dump();
      EXPECT_EQ(f.value("node_name", ""), "node-1") << f.dump();
    } else {
      EXPECT_EQ(reason, "NETFILTER_DROP") << f.dump();
      EXPECT_EQ(Pod(f, "source"), "xwing") << f.dump();
      EXPECT_EQ(f.value("node_name", ""), "node-2") << f.dump();
    }
  }
  EXPECT_THAT(reasons, ::testing::ElementsAre("NETFILTER_DROP", "NO_SOCKET"));
  std::set<std::string> seen;  // the same drop never twice (the demo's nodes share a kernel)
  for (const json& f : kernel) {
    const json key = {f["l4"], f["time"]};
    EXPECT_TRUE(seen.insert(key.dump()).second) << "reported twice: " << f.dump();
  }
  // DNS to coredns on port 53.
  ASSERT_FALSE(dns.empty());
  for (const json& f : dns) {
    EXPECT_THAT(Pod(f, "destination"), ::testing::StartsWith("coredns-")) << f.dump();
    EXPECT_EQ(f["destination"].value("namespace", ""), "kube-system") << f.dump();
  }
  // tiefighter's DNS lookups, read from the packets: Hubble's L7 DNS flows, each query and
  // answer once, the answer with coredns's addresses and the time it took.
  EXPECT_THAT(up, HasSubstr("dns-request proxy FORWARDED (DNS Query "
                            "deathstar.default.svc.cluster.local. A)"));
  ASSERT_FALSE(lookups.empty());
  int requests = 0, responses = 0;
  std::set<std::string> seen_lookups;
  for (const json& f : lookups) {
    EXPECT_EQ(f.value("Type", ""), "L7") << f.dump();
    EXPECT_EQ(f["event_type"].value("type", 0), 129) << f.dump();
    EXPECT_EQ(f.value("node_name", ""), "node-1") << f.dump();
    const json& d = f["l7"]["dns"];
    EXPECT_EQ(d.value("query", ""), "deathstar.default.svc.cluster.local.") << f.dump();
    EXPECT_EQ(d["qtypes"], json::array({"A"})) << f.dump();
    EXPECT_EQ(d.value("observation_source", ""), "proxy") << f.dump();
    EXPECT_TRUE(seen_lookups.insert(json({f["l4"], f["l7"]["type"], f["time"]}).dump()).second)
        << "reported twice: " << f.dump();
    if (f["l7"].value("type", "") == "REQUEST") {
      ++requests;
      EXPECT_EQ(Pod(f, "source"), "tiefighter") << f.dump();
      EXPECT_THAT(Pod(f, "destination"), ::testing::StartsWith("coredns-")) << f.dump();
      EXPECT_EQ(f.value("Summary", ""), "DNS Query deathstar.default.svc.cluster.local. A");
    } else {
      ++responses;
      EXPECT_EQ(f["l7"].value("type", ""), "RESPONSE") << f.dump();
      EXPECT_THAT(Pod(f, "source"), ::testing::StartsWith("coredns-")) << f.dump();
      EXPECT_EQ(Pod(f, "destination"), "tiefighter") << f.dump();
      EXPECT_TRUE(f.value("is_reply", false)) << f.dump();
      EXPECT_EQ(d["ips"], json::array({"10.244.1.20", "10.244.2.20"})) << f.dump();
      EXPECT_EQ(d["rrtypes"], json::array({"A", "A"})) << f.dump();
      EXPECT_EQ(d.value("ttl", 0), 30) << f.dump();
      const json& latency = f["l7"]["latency_ns"];  // uint64: a string in protojson
      EXPECT_TRUE(latency.is_string() && std::stoull(latency.get<std::string>()) > 0) << f.dump();
      EXPECT_EQ(f.value("Summary", ""),
                "DNS Answer \"10.244.1.20,10.244.2.20\" TTL: 30 (Proxy "
                "deathstar.default.svc.cluster.local. A)");
    }
  }
  EXPECT_GT(requests, 0);
  EXPECT_GT(responses, 0);
  // Both nodes, and the relay sees both.
  std::set<std::string> nodes;
  for (const json& f : recent) nodes.insert(f.value("node_name", ""));
  EXPECT_THAT(nodes, ::testing::ElementsAre("node-1", "node-2"));
  EXPECT_THAT(Cli("status"), HasSubstr("Connected Nodes: 2/2"));
  // Each node's observer serves Hubble's metrics on its loopback; xwing's drops are counted
  // on its node.
  // (node-2's observer restarted during `up`: its counters start again with the next drops.)
  std::string metrics;
  testing::HttpAnswer answers[2];
  const char* const kNodes[2] = {"-node-1", "-node-2"};
  const std::string tcp = "hubble_flows_processed_total{protocol=\"TCP\"";
  testing::WaitUntil(
      [&] {
        for (int i = 0; i < 2; ++i) {
          testing::InNetns(prefix_ + kNodes[i],
                           [&] { answers[i] = testing::HttpGet(9965, "/metrics"); });
        }
        metrics = answers[0].body + answers[1].body;
        return answers[0].body.find(tcp) != std::string::npos &&
               answers[1].body.find(tcp) != std::string::npos &&
               metrics.find("hubble_drop_total{reason=\"POLICY_DENIED\"") != std::string::npos;
      },
      absl::Seconds(10));
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(answers[i].status, 200) << kNodes[i];
    EXPECT_THAT(answers[i].body, HasSubstr(tcp)) << kNodes[i];
  }
  EXPECT_THAT(metrics, HasSubstr("hubble_drop_total{reason=\"POLICY_DENIED\""));
  const std::string listed = Cli("list nodes");
  EXPECT_THAT(listed, HasSubstr("node-1"));
  EXPECT_THAT(listed, HasSubstr("node-2"));

  // A second `up` changes nothing.
  const std::string again = Demo("up", &status);
  EXPECT_EQ(status, 0) << again;
  EXPECT_THAT(again, HasSubstr("already up"));

  // Down: nothing left.
  std::vector<std::string> pids;
  for (const auto& e : std::filesystem::directory_iterator(state_ + "/pids")) {
    std::ifstream in(e.path());
    std::string pid;
    in >> pid;
    pids.push_back(pid);
  }
  ASSERT_EQ(pids.size(), 10u) << "2 observers, the relay, 5 workloads, 2 probes";
  const std::string down = Demo("down", &status);
  EXPECT_EQ(status, 0) << down;
  for (const std::string& pid : pids) EXPECT_FALSE(Alive(pid)) << "pid " << pid << " still runs";
  EXPECT_THAT(testing::RunShell("ip netns list"), ::testing::Not(HasSubstr(prefix_ + "-")));
  EXPECT_THAT(testing::RunShell("ip -o link show"), ::testing::Not(HasSubstr(prefix_ + "p-")));
  EXPECT_FALSE(std::filesystem::exists(state_)) << "sockets, logs and files are gone";
  EXPECT_THAT(testing::RunShell(absl::StrCat("ss -ltnH 'sport = :", port_, "'")),
              ::testing::IsEmpty())
      << "the relay's port is free again";
}

// Never touches a running demo: the arguments are refused before anything is made.
TEST(DemoArgumentsTest, BadArgumentsAreRefusedWithAClearMessage) {
  int status = 0;
  const std::string out = testing::RunShell(
      absl::StrCat("bash ", FLOWSCOPE_SOURCE_DIR, "/scripts/demo up --prefix NOPE"), &status);
  EXPECT_NE(status, 0);
  EXPECT_THAT(out, HasSubstr("--prefix must be 1-4 lowercase letters"));
  // Not root: it stops at once and says what is needed (the script is read on stdin, as the
  // checkout may not be readable by the unprivileged user).
  if (geteuid() == 0) {  // as another user, only root can become one
    const std::string unprivileged = testing::RunShell(
        absl::StrCat("setpriv --reuid 65534 --regid 65534 --clear-groups bash -s up < ",
                     FLOWSCOPE_SOURCE_DIR, "/scripts/demo"),
        &status);
    EXPECT_EQ(status, 1);
    EXPECT_THAT(unprivileged, HasSubstr("scripts/demo: must run as root"));
  }
  const std::string verb = testing::RunShell(
      absl::StrCat("bash ", FLOWSCOPE_SOURCE_DIR, "/scripts/demo launch"), &status);
  EXPECT_NE(status, 0);
  EXPECT_THAT(verb, HasSubstr("unknown command 'launch'"));
}

}  // namespace
}  // namespace flowscope
