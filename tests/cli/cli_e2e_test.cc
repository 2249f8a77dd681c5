// The `flowscope` binary against a real flowscope-observer process watching two pods with real
// traffic: observe --since --pod, -o json piped to a parser (and to `head`), status, list
// nodes, and a follow that ends cleanly on SIGINT.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "tests/testing/bpf_env.h"
#include "tests/testing/netns.h"
#include "tests/testing/netns_test_base.h"
#include "tests/testing/observer_process.h"
#include "tests/testing/shell.h"
#include "tests/testing/traffic.h"
#include "tests/testing/wait.h"

namespace flowscope::cli {
namespace {

using ::testing::HasSubstr;
using testing::TestNetwork;

class CliE2eTest : public testing::NetnsTestBase {
 protected:
  void SetUp() override {
    NetnsTestBase::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::ofstream(dir_ / "endpoints.yaml") << absl::StrCat(
        "- {ip: ", TestNetwork::kIpA,
        ", namespace: default, pod: tiefighter, labels: {org: empire}}\n",
        "- {ip: ", TestNetwork::kIpB, ", namespace: default, pod: deathstar-6fb5694d48-5hmds}\n");
    // A named rule, for the policy-verdict events and names it causes.
    std::ofstream(dir_ / "policy.yaml")
        << "deny:\n  - {fromPod: default/tiefighter, toPod: default/deathstar, protocol: tcp,\n"
           "     port: 9, name: no-discard, namespace: default}\n";
    auto p = testing::ObserverProcess::Start(
        FLOWSCOPE_OBSERVER_BINARY, net_->node(), dir_,
        {"--node-name", "node-1", "--interfaces", net_->prefix() + "*", "--endpoints",
         (dir_ / "endpoints.yaml").string(), "--ring-capacity", "4095", "--ring-buffer-bytes",
         "1048576", "--policy", (dir_ / "policy.yaml").string()});
    ASSERT_TRUE(p.ok()) << p.status();
    observer_ = std::move(p).value();
  }

  void TearDown() override {
    observer_.reset();
    NetnsTestBase::TearDown();
  }

  // Runs the CLI with `args`; returns stdout+stderr (and the exit status in *status).
  std::string Cli(const std::string& args, int* status = nullptr) {
    return testing::RunShell(
        absl::StrCat(FLOWSCOPE_CLI_BINARY, " --server ", observer_->target(), " ", args), status);
  }

  // Waits until `observe` shows the TCP exchange (the drain publishes in batches).
  std::string WaitForFlows(const std::string& args, const std::string& needle) {
    std::string out;
    testing::WaitUntil([&] { return (out = Cli(args)).find(needle) != std::string::npos; });
    return out;
  }

  std::unique_ptr<testing::ObserverProcess> observer_;
};

TEST_F(CliE2eTest, ObserveSincePodShowsTheFlowsInHubblesCompactFormat) {
  const uint16_t port = testing::TcpExchange(*net_, 8080);
  testing::UdpExchange(*net_, 53);
  const std::string out =
      WaitForFlows("observe --since 3m --pod default/tiefighter", "TCP Flags: SYN, ACK");
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 4u) << out;
  const std::string client = absl::StrCat("default/tiefighter:", port);
  bool syn = false, synack = false, udp = false;
  for (const std::string& l : lines) {
    // "Mon DD hh:mm:ss.mmm: src (id) arrow dst (id) point VERDICT (summary)"
    EXPECT_EQ(l[3], ' ') << l;
    EXPECT_EQ(l.substr(15, 1), ".") << l;
    EXPECT_EQ(l.substr(19, 2), ": ") << l;
    EXPECT_THAT(l, HasSubstr("default/tiefighter")) << "every flow has tiefighter on one side";
    if (l.find(client + " (ID:") != std::string::npos &&
        l.find("-> default/deathstar-6fb5694d48-5hmds:8080 (ID:") != std::string::npos &&
        l.find("FORWARDED (TCP Flags: SYN)") != std::string::npos) {
      syn = true;
    }
    if (l.find(client + " (ID:") != std::string::npos &&
        l.find("<- default/deathstar-6fb5694d48-5hmds:8080") != std::string::npos &&
        l.find("(TCP Flags: SYN, ACK)") != std::string::npos) {
      synack = true;
    }
    if (l.find(":53 (ID:") != std::string::npos && l.find("(UDP)") != std::string::npos) udp = true;
  }
  EXPECT_TRUE(syn) << out;
  EXPECT_TRUE(synack) << "replies keep the client on the left: " << out;
  EXPECT_TRUE(udp) << out;
}

// Which rule denied a flow: `--type policy-verdict` finds the verdicts beside the drops, and
// `--print-policy-names` names the rule, as Hubble's CLI does for Cilium's policies.
TEST_F(CliE2eTest, PolicyVerdictsNameTheRuleThatDenied) {
  EXPECT_FALSE(testing::TryConnect(*net_, 9, absl::Milliseconds(300)));
  const std::string out =
      WaitForFlows("observe --since 3m --type policy-verdict --print-policy-names", "DENIED BY");
  std::vector<std::string> lines = absl::StrSplit(out, '\n', absl::SkipEmpty());
  ASSERT_GE(lines.size(), 1u) << out;
  for (const std::string& l : lines) {
    // "<>": a dropped SYN has no known reply direction (is_reply unset), as in Hubble.
    EXPECT_THAT(l, HasSubstr("<> default/deathstar-6fb5694d48-5hmds:9 (ID:")) << l;
    EXPECT_THAT(
        l, ::testing::ContainsRegex("policy-verdict:L3-L4 (EGRESS|INGRESS) DENIED BY no-discard "
                                    "\\(FlowscopePolicy\\) \\(TCP Flags: SYN\\)"))
        << l;
  }
  // The drops themselves stay type drop; without the flag no names are printed.
  const std::string drops = Cli("observe --since 3m --type drop --to-port 9");
  EXPECT_THAT(drops, HasSubstr("Policy denied DROPPED (TCP Flags: SYN)")) << drops;
  EXPECT_THAT(Cli("observe --since 3m --type policy-verdict"),
              ::testing::Not(HasSubstr("BY no-discard")));
  const std::string json = Cli("observe --since 3m --type policy-verdict -o json --last 1");
  auto j = nlohmann::json::parse(json, nullptr, false);
  ASSERT_TRUE(j.is_object()) << json;
  const auto& f = j["flow"];
  EXPECT_EQ(f["event_type"]["type"], 5);
  EXPECT_EQ(f["policy_match_type"], 2);
  const std::string side =
      f["traffic_direction"] == "EGRESS" ? "egress_denied_by" : "ingress_denied_by";
  EXPECT_EQ(f[side][0]["name"], "no-discard") << json;
  EXPECT_EQ(f[side][0]["namespace"], "default") << json;
}

TEST_F(CliE2eTest, JsonLinesParseAndAClosedPipeEndsQuietly) {
  testing::TcpExchange(*net_, 8080);
  const std::string out = WaitForFlows("observe -o json --last 100", "\"SYN\":true");
  int n = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    auto j = nlohmann::json::parse(line);
    ASSERT_TRUE(j.contains("flow")) << line;
    EXPECT_EQ(j["node_name"], "node-1");
    EXPECT_TRUE(j["flow"]["time"].get<std::string>().back() == 'Z');
    ++n;
  }
  EXPECT_GE(n, 4);
  // `| head -n 1`: the CLI sees the closed pipe and exits 0.
  const std::string cmd =
      absl::StrCat("bash -c '", FLOWSCOPE_CLI_BINARY, " --server ", observer_->target(),
                   " observe -o json --last 100 | head -n 1 >/dev/null; "
                   "exit ${PIPESTATUS[0]}'");
  EXPECT_EQ(std::system(cmd.c_str()), 0);
}

TEST_F(CliE2eTest, StatusAndListNodes) {
  testing::TcpExchange(*net_, 8080);
  WaitForFlows("observe --last 1", "TCP Flags");  // the drain has published it
  int status = -1;
  const std::string st = Cli("status", &status);
  EXPECT_EQ(status, 0) << st;
  EXPECT_THAT(st, HasSubstr(absl::StrCat("Healthcheck (via ", observer_->target(), "): Ok\n")));
  EXPECT_THAT(st, HasSubstr("/4,095 ("));
  EXPECT_THAT(st, HasSubstr("Flows/s: "));
  EXPECT_THAT(st, ::testing::Not(HasSubstr("Connected Nodes"))) << "a node server leaves it unset";
  const std::string nodes = Cli("list nodes", &status);
  EXPECT_EQ(status, 0) << nodes;
  EXPECT_THAT(nodes, HasSubstr("NAME     STATUS      AGE"));
  EXPECT_THAT(nodes, HasSubstr("node-1   Connected"));
  const std::string json = Cli("status -o json", &status);
  EXPECT_EQ(nlohmann::json::parse(json)["max_flows"], "4095");
}

TEST_F(CliE2eTest, FollowEndsCleanlyOnSigint) {
  auto follow = testing::NetnsProcess::Start(
      "", {FLOWSCOPE_CLI_BINARY, "--server", observer_->target(), "observe", "--follow"},
      (dir_ / "follow.out").string());
  ASSERT_TRUE(follow.ok());
  auto output = [&] {
    std::ifstream in(dir_ / "follow.out");
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  };
  // Traffic until the follow shows it (it follows from when it connected, which takes a
  // while under the sanitizers): a condition, not a guess at how long that is.
  auto shown = [&] { return output().find("TCP Flags: SYN") != std::string::npos; };
  testing::WaitUntil(
      [&] {
        testing::TcpExchange(*net_, 8080);
        return testing::WaitUntil(shown, absl::Seconds(1));
      },
      absl::Seconds(20));
  auto st = (*follow)->Signal(SIGINT, absl::Seconds(5));
  ASSERT_TRUE(st.ok());
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0);
  EXPECT_THAT(output(), HasSubstr("TCP Flags: SYN")) << "flows arrived while following";
}

TEST_F(CliE2eTest, AServerSideInvalidArgumentIsOneClearLine) {
  int status = 0;
  const std::string out = Cli(R"(observe --allowlist '{"source_ip":["300.1.1.1"]}')", &status);
  EXPECT_NE(status, 0);
  EXPECT_EQ(out,
            "flowscope: rpc error: code = InvalidArgument desc = invalid source_ip filter "
            "\"300.1.1.1\": not an IP address or CIDR prefix\n");
}

// --allowlist, --denylist and --field-mask add up when repeated, as Hubble's.
TEST(CliFlagsTest, RawFilterListsAndFieldMasksAccumulate) {
  int status = -1;
  const std::string raw = testing::RunShell(
      absl::StrCat(FLOWSCOPE_CLI_BINARY, R"( observe --print-raw-filters)",
                   R"( --allowlist '{"source_pod":["a/b"]}' --allowlist '{"source_pod":["c/d"]}')",
                   R"( --denylist '{"verdict":["DROPPED"]}' --denylist '{"source_pod":["e/f"]}')"),
      &status);
  EXPECT_EQ(status, 0) << raw;
  EXPECT_EQ(raw,
            "allowlist:\n"
            "    - '{\"source_pod\":[\"a/b\"]}'\n"
            "    - '{\"source_pod\":[\"c/d\"]}'\n"
            "denylist:\n"
            "    - '{\"verdict\":[2]}'\n"
            "    - '{\"source_pod\":[\"e/f\"]}'\n");
  const std::string masked = testing::RunShell(
      absl::StrCat(FLOWSCOPE_CLI_BINARY, " observe -o json --input-file - --field-mask time ",
                   "--field-mask verdict,uuid < /dev/null"),
      &status);
  EXPECT_EQ(status, 0) << masked;
}

// Every flag but the filters also comes from FLOWSCOPE_<FLAG>; the command line wins.
TEST(CliFlagsTest, FlagsComeFromTheEnvironmentToo) {
  const std::string file = ::testing::TempDir() + "/env-flows.json";
  {
    std::ofstream out(file);
    out << R"({"flow":{"time":"2024-05-04T12:47:08.811Z","verdict":"FORWARDED"},)"
        << R"("time":"2024-05-04T12:47:08.811Z"})"
        << "\n"
        << R"({"flow":{"time":"2024-05-04T12:47:09.811Z","verdict":"DROPPED"},)"
        << R"("time":"2024-05-04T12:47:09.811Z"})"
        << "\n";
  }
  int status = -1;
  const std::string json = testing::RunShell(
      absl::StrCat("FLOWSCOPE_OUTPUT=json FLOWSCOPE_LAST=1 FLOWSCOPE_INPUT_FILE=", file, " ",
                   FLOWSCOPE_CLI_BINARY, " observe"),
      &status);
  EXPECT_EQ(status, 0) << json;
  EXPECT_EQ(json, R"({"flow":{"time":"2024-05-04T12:47:09.811Z","verdict":"DROPPED"},)"
                  R"("time":"2024-05-04T12:47:09.811Z"})"
                  "\n");
  const std::string dict = testing::RunShell(
      absl::StrCat("FLOWSCOPE_OUTPUT=json FLOWSCOPE_LAST=1 ", FLOWSCOPE_CLI_BINARY,
                   " observe -o dict --time-format RFC3339 --input-file ", file),
      &status);
  EXPECT_EQ(status, 0) << dict;
  EXPECT_THAT(dict, HasSubstr("  TIMESTAMP: 2024-05-04T12:47:09Z\n"))
      << "-o wins over the variable";
  std::filesystem::remove(file);
}

TEST(CliErrorsTest, BadInputIsOneLineOnStderrAndANonZeroExit) {
  struct {
    const char* args;
    const char* want;
  } cases[] = {
      {"observe --since yesterday", "invalid time \"yesterday\""},
      {"observe --verdict NOPE", "invalid value \"NOPE\" for --verdict"},
      {"observe --port 99999", "invalid value \"99999\" for --port"},
      {"observe --first 3 --follow", "--first cannot be combined"},
      {"observe --ip 1.1.1.1 -n default", "filters --ip and --namespace cannot be combined"},
      {"observe --server unix:///nonexistent/sock --timeout 200ms", "failed to connect"},
      // The cause, at once (a dial that waited out an hour would hang the test instead).
      {"observe --server unix:///nonexistent/sock --timeout 1h",
       "dial unix /nonexistent/sock: connect: no such file or directory"},
      {"status --server 127.0.0.1:1 --timeout 1h",
       "dial tcp 127.0.0.1:1: connect: connection refused"},
      {"observe --last -1", "invalid argument \"-1\" for \"--last\" flag"},
      {"observe --last 18446744073709551616", "for \"--last\" flag: expected a number"},
      {"observe --first +3", "invalid argument \"+3\" for \"--first\" flag"},
      {"observe --input-file /", "cannot read --input-file /: is a directory"},
      {"observe -o yaml", "invalid output format \"yaml\""},
      {"observe --not", "--not must be followed"},
  };
  for (const auto& c : cases) {
    const std::string cmd = absl::StrCat(FLOWSCOPE_CLI_BINARY, " ", c.args, " 2>&1 >/dev/null");
    FILE* p = popen(cmd.c_str(), "r");
    std::string err;
    char buf[1024];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) err.append(buf, n);
    const int st = pclose(p);
    EXPECT_NE(st, 0) << c.args;
    EXPECT_THAT(err, HasSubstr(c.want)) << c.args;
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "one line: " << err;
  }
}

}  // namespace
}  // namespace flowscope::cli
