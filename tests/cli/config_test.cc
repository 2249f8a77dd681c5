// The `flowscope` binary's settings as a user meets them: the config file taking every flag
// (filters too, and `--print-raw-filters` output read back), the precedence flag > FLOWSCOPE_*
// > config file > default, `config view|get|set|reset`, clear errors for a bad file, and the
// completion scripts driven through bash's completion machinery.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "tests/testing/shell.h"

namespace flowscope::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    home_ = std::filesystem::path(::testing::TempDir()) /
            absl::StrCat("flowscope-config-", getpid(), "-",
                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(home_);
    std::filesystem::create_directories(home_);
    flows_ = (home_ / "flows.json").string();
    std::ofstream(flows_) << R"({"flow":{"time":"2024-05-04T12:47:08.811Z","verdict":"FORWARDED",)"
                          << R"("source":{"namespace":"default","pod_name":"tiefighter"},)"
                          << R"("destination":{"namespace":"default","pod_name":"deathstar"}},)"
                          << R"("time":"2024-05-04T12:47:08.811Z"})"
                          << "\n"
                          << R"({"flow":{"time":"2024-05-04T12:47:09.811Z","verdict":"DROPPED",)"
                          << R"("source":{"namespace":"default","pod_name":"xwing"},)"
                          << R"("destination":{"namespace":"default","pod_name":"deathstar"}},)"
                          << R"("time":"2024-05-04T12:47:09.811Z"})"
                          << "\n";
  }
  void TearDown() override { std::filesystem::remove_all(home_); }

  // The CLI with HOME (and so the default config file) in the test's directory; the variables
  // in `env` ("A=b C=d") set for it alone.
  std::string Cli(const std::string& args, int* status = nullptr, const std::string& env = "") {
    return testing::RunShell(absl::StrCat("env -u XDG_CONFIG_HOME HOME=", home_.string(), " ", env,
                                          " ", FLOWSCOPE_CLI_BINARY, " ", args),
                             status);
  }
  std::string ConfigFile() const { return (home_ / ".config/flowscope/config.yaml").string(); }
  std::string Read(const std::string& path) const {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  std::filesystem::path home_;
  std::string flows_;
};

TEST_F(ConfigTest, SetGetViewAndResetWriteTheDefaultConfigFile) {
  int status = -1;
  EXPECT_EQ(Cli("config set server unix:///run/flowscope/relay.sock", &status), "");
  EXPECT_EQ(status, 0);
  EXPECT_EQ(Cli("config set tls-ca-cert-files [/etc/a.crt,/etc/b.crt]", &status), "");
  EXPECT_EQ(Cli("config set timeout 3s", &status), "");
  EXPECT_EQ(Cli("config set since 5m", &status), "");
  EXPECT_EQ(Cli("config set pod default/tiefighter", &status), "");
  EXPECT_EQ(Cli("config set print-node-name 1", &status), "");
  EXPECT_EQ(status, 0);
  EXPECT_EQ(Read(ConfigFile()),
            "server: unix:///run/flowscope/relay.sock\n"
            "tls-ca-cert-files:\n"
            "    - /etc/a.crt\n"
            "    - /etc/b.crt\n"
            "timeout: 3s\n"
            "since: 5m\n"
            "pod:\n"
            "    - default/tiefighter\n"
            "print-node-name: true\n");
  EXPECT_EQ(Cli("config get server"), "unix:///run/flowscope/relay.sock\n");
  EXPECT_EQ(Cli("config get tls-ca-cert-files"), "- /etc/a.crt\n- /etc/b.crt\n");
  EXPECT_EQ(Cli("config get kube-namespace"), "kube-system\n") << "a default";
  EXPECT_EQ(Cli("config get port-forward-port"), "4245\n");
  EXPECT_EQ(Cli("config get tls"), "false\n");
  EXPECT_EQ(Cli("config get since"), "5m\n");
  EXPECT_EQ(Cli("config get timeout", nullptr, "FLOWSCOPE_TIMEOUT=9s"), "9s\n")
      << "the environment wins over the file";
  EXPECT_EQ(Cli("--timeout 1s config get timeout", nullptr, "FLOWSCOPE_TIMEOUT=9s"), "1s\n")
      << "a flag wins over both";
  // view: the global settings and the file's other keys, sorted.
  EXPECT_EQ(Cli("config view"),
            "basic-auth-password: \"\"\n"
            "basic-auth-username: \"\"\n"
            "config: " +
                ConfigFile() +
                "\n"
                "debug: false\n"
                "kube-context: \"\"\n"
                "kube-namespace: kube-system\n"
                "kubeconfig: \"\"\n"
                "pod:\n"
                "    - default/tiefighter\n"
                "port-forward: false\n"
                "port-forward-port: 4245\n"
                "print-node-name: true\n"
                "request-timeout: 12s\n"
                "server: unix:///run/flowscope/relay.sock\n"
                "since: 5m\n"
                "timeout: 3s\n"
                "tls: false\n"
                "tls-allow-insecure: false\n"
                "tls-ca-cert-files:\n"
                "    - /etc/a.crt\n"
                "    - /etc/b.crt\n"
                "tls-client-cert-file: \"\"\n"
                "tls-client-key-file: \"\"\n"
                "tls-server-name: \"\"\n");
  EXPECT_EQ(Cli("config get"), Cli("config view"));

  // Refused values name the key and leave the file alone.
  const std::string before = Read(ConfigFile());
  for (auto [args, want] : {
           std::pair{"config set since yesterday", "cannot assign value=yesterday for key=since"},
           std::pair{"config set timeout soon", "invalid duration \"soon\""},
           std::pair{"config set tls maybe", "key=tls: expected true or false"},
           std::pair{"config set verdict NOPE", "invalid value \"NOPE\" for --verdict"},
           std::pair{"config set output yaml", "invalid output format \"yaml\""},
           std::pair{"config set nosuch 1", "unknown key: nosuch"},
           std::pair{"config set not true", "unknown key: not"},
           std::pair{"config get nosuch", "unknown key: nosuch"},
           std::pair{"config set a b c", "argument was not expected: c"},
       }) {
    int st = -1;
    const std::string out = Cli(args, &st);
    EXPECT_NE(st, 0) << args;
    EXPECT_THAT(out, HasSubstr(want)) << args;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << args << ": " << out;
  }
  EXPECT_EQ(Read(ConfigFile()), before);

  // set KEY without a value and reset KEY give the default back; reset alone clears all.
  EXPECT_EQ(Cli("config set timeout", &status), "");
  EXPECT_EQ(Cli("config get timeout"), "5s\n");
  EXPECT_EQ(Cli("config reset server", &status), "");
  EXPECT_EQ(Cli("config get server"), "localhost:4245\n");
  EXPECT_THAT(Read(ConfigFile()), HasSubstr("since: 5m\n"));
  EXPECT_EQ(Cli("config reset", &status), "");
  EXPECT_EQ(status, 0);
  EXPECT_EQ(Read(ConfigFile()), "{}\n");
  EXPECT_EQ(Cli("config get since"), "\"\"\n");
}

TEST_F(ConfigTest, EveryFlagComesFromTheFileAndTheCommandLineAndEnvironmentWin) {
  std::filesystem::create_directories(home_ / ".config/flowscope");
  std::ofstream(ConfigFile()) << "output: json\n"
                              << "last: 1\n"
                              << "input-file: " << flows_ << "\n";
  int status = -1;
  const std::string dropped = R"({"flow":{"time":"2024-05-04T12:47:09.811Z","verdict":"DROPPED",)"
                              R"("source":{"namespace":"default","pod_name":"xwing"},)"
                              R"("destination":{"namespace":"default","pod_name":"deathstar"}},)"
                              R"("time":"2024-05-04T12:47:09.811Z"})"
                              "\n";
  EXPECT_EQ(Cli("observe", &status), dropped);
  EXPECT_EQ(status, 0);
  EXPECT_EQ(Cli("observe", &status, "FLOWSCOPE_LAST=2"),
            std::string(R"({"flow":{"time":"2024-05-04T12:47:08.811Z","verdict":"FORWARDED",)"
                        R"("source":{"namespace":"default","pod_name":"tiefighter"},)"
                        R"("destination":{"namespace":"default","pod_name":"deathstar"}},)"
                        R"("time":"2024-05-04T12:47:08.811Z"})"
                        "\n") +
                dropped);
  const std::string compact = Cli("observe -o compact", &status, "FLOWSCOPE_OUTPUT=dict");
  EXPECT_THAT(compact, HasSubstr("DROPPED"));
  EXPECT_THAT(compact, Not(HasSubstr("VERDICT:"))) << "the flag wins over the environment";

  // Filter flags from the file (and from FLOWSCOPE_<FILTER>), before the command line's.
  std::ofstream(ConfigFile(), std::ios::app) << "verdict: FORWARDED\n";
  EXPECT_THAT(Cli("observe", &status), HasSubstr("tiefighter"));
  EXPECT_THAT(Cli("observe --verdict DROPPED", &status), HasSubstr("xwing"))
      << "the command line's --verdict replaces the file's";
  EXPECT_THAT(Cli("observe", &status, "FLOWSCOPE_VERDICT=DROPPED"), HasSubstr("xwing"));
  EXPECT_THAT(Cli("observe", &status, "FLOWSCOPE_LAST=2 FLOWSCOPE_ALL_NAMESPACES=false"),
              HasSubstr("tiefighter"));
  EXPECT_EQ(Cli("observe --pod default/xwing", &status), "")
      << "the file's verdict and the command line's pod together match nothing";
}

TEST_F(ConfigTest, PrintRawFiltersOutputIsAConfigFile) {
  int status = -1;
  const std::string raw = home_.string() + "/raw.yaml";
  EXPECT_EQ(Cli(absl::StrCat("observe --print-raw-filters --to-pod default/deathstar --not ",
                             "--verdict DROPPED > ", raw),
                &status),
            "");
  EXPECT_EQ(status, 0);
  EXPECT_EQ(Read(raw),
            "allowlist:\n"
            "    - '{\"destination_pod\":[\"default/deathstar\"]}'\n"
            "denylist:\n"
            "    - '{\"verdict\":[2]}'\n");
  EXPECT_EQ(Cli(absl::StrCat("observe --print-raw-filters --config ", raw), &status), Read(raw));
  const std::string out =
      Cli(absl::StrCat("observe --config ", raw, " -o compact --input-file ", flows_), &status);
  EXPECT_EQ(status, 0) << out;
  EXPECT_THAT(out, HasSubstr("FORWARDED"));
  EXPECT_THAT(out, Not(HasSubstr("DROPPED"))) << "the file's denylist applies";
}

TEST_F(ConfigTest, ABadConfigFileIsOneClearLineAndConfigCanStillRepairIt) {
  std::filesystem::create_directories(home_ / ".config/flowscope");
  struct {
    const char* content;
    const char* want;
  } cases[] = {
      {"bogus: 1\n", "unknown key \"bogus\""},
      {"not: true\n", "unknown key \"not\""},
      {"server: [a, b]\n", "server: takes one value, not a list"},
      {"server: {nested: map}\n", "server: expected a value or a list of values, found a map"},
      {"since: yesterday\n", "since: --since: invalid time \"yesterday\""},
      {"timeout: -1s\n", "timeout: --timeout: invalid duration \"-1s\""},
      {"all-namespaces: maybe\n", "all-namespaces: expected true or false"},
      {"[not yaml\n", "line 2"},
      {"- a list\n", "expected a map of flag names to values"},
      {"server: a\nserver: b\n", "server: given twice"},
      {"verdict: NOPE\n", "invalid value \"NOPE\" for --verdict"},
  };
  for (const auto& c : cases) {
    std::ofstream(ConfigFile(), std::ios::trunc) << c.content;
    int status = -1;
    const std::string out = Cli(absl::StrCat("observe --input-file ", flows_), &status);
    EXPECT_NE(status, 0) << c.content;
    EXPECT_THAT(out, HasSubstr(c.want)) << c.content;
    EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << c.content << out;
  }
  int status = -1;
  EXPECT_THAT(Cli("--config /nonexistent/flowscope.yaml status", &status),
              HasSubstr("config file /nonexistent/flowscope.yaml"));
  EXPECT_NE(status, 0);
  // A broken file can still be reset.
  std::ofstream(ConfigFile(), std::ios::trunc) << "[not yaml\n";
  EXPECT_EQ(Cli("config reset", &status), "");
  EXPECT_EQ(status, 0);
  EXPECT_THAT(Cli(absl::StrCat("observe --input-file ", flows_), &status), HasSubstr("DROPPED"));
  EXPECT_EQ(status, 0);
}

// The reference's examples (§3.4), each from the flags to the filters the CLI sends (printed
// with --print-raw-filters) to the flows they select (the same filters on recorded flows).
TEST_F(ConfigTest, HubbleExamplesFromFlagsToFiltersToFlows) {
  const std::string file = (home_ / "cluster.json").string();
  {
    std::ofstream out(file);
    const auto flow = [&](const char* uuid, const char* src, const char* dst, const char* verdict,
                          bool reply) {
      const auto ep = [](const char* pod) {
        const std::string s(pod);
        const size_t slash = s.find('/');
        return absl::StrCat(R"({"namespace":")", s.substr(0, slash), R"(","pod_name":")",
                            s.substr(slash + 1), R"("})");
      };
      out << R"({"flow":{"time":"2024-05-04T12:47:08.811Z","uuid":")" << uuid << R"(","verdict":")"
          << verdict << R"(","source":)" << ep(src) << R"(,"destination":)" << ep(dst)
          << R"(,"is_reply":)" << (reply ? "true" : "false")
          << R"(},"time":"2024-05-04T12:47:08.811Z"})"
          << "\n";
    };
    flow("f1", "default/xwing", "default/deathstar-1", "DROPPED", false);
    flow("f2", "default/tiefighter", "default/deathstar-1", "FORWARDED", false);
    flow("f3", "default/deathstar-1", "default/xwing", "FORWARDED", true);
    flow("f4", "kube-system/coredns-1", "default/tiefighter", "FORWARDED", true);
    flow("f5", "default/tiefighter", "kube-system/coredns-1", "FORWARDED", false);
  }
  struct {
    const char* flags;
    const char* filters;  // --print-raw-filters
    const char* flows;    // uuids selected
  } cases[] = {
      {"--pod default/xwing",
       "allowlist:\n"
       "    - '{\"source_pod\":[\"default/xwing\"]}'\n"
       "    - '{\"destination_pod\":[\"default/xwing\"]}'\n",
       "f1 f3"},
      {"--pod deathstar --verdict DROPPED",
       "allowlist:\n"
       "    - '{\"source_pod\":[\"deathstar\"],\"verdict\":[2]}'\n"
       "    - '{\"destination_pod\":[\"deathstar\"],\"verdict\":[2]}'\n",
       "f1"},
      {"-n kube-system",
       "allowlist:\n"
       "    - '{\"source_pod\":[\"kube-system/\"]}'\n"
       "    - '{\"destination_pod\":[\"kube-system/\"]}'\n",
       "f4 f5"},
      {"--not -n kube-system",
       "denylist:\n"
       "    - '{\"source_pod\":[\"kube-system/\"]}'\n"
       "    - '{\"destination_pod\":[\"kube-system/\"]}'\n",
       "f1 f2 f3"},
      {"--from-pod xwing --from-pod tiefighter",  // a repeated flag ORs
       "allowlist:\n"
       "    - '{\"source_pod\":[\"xwing\",\"tiefighter\"]}'\n",
       "f1 f2 f5"},
      {R"(--allowlist '{"destination_pod":["kube-system/"]}' --to-pod default/deathstar)",
       "allowlist:\n"
       "    - '{\"destination_pod\":[\"default/deathstar\"]}'\n"
       "    - '{\"destination_pod\":[\"kube-system/\"]}'\n",
       "f1 f2 f5"},
  };
  for (const auto& c : cases) {
    int status = -1;
    EXPECT_EQ(Cli(absl::StrCat("observe --print-raw-filters ", c.flags), &status), c.filters)
        << c.flags;
    const std::string out =
        Cli(absl::StrCat("observe -o json --input-file ", file, " ", c.flags), &status);
    EXPECT_EQ(status, 0) << c.flags << ": " << out;
    std::vector<std::string> uuids;
    for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
      const size_t at = line.find(R"("uuid":")");
      if (at != absl::string_view::npos) {
        uuids.emplace_back(line.substr(at + 8, line.find('"', at + 8) - at - 8));
      }
    }
    EXPECT_EQ(absl::StrJoin(uuids, " "), c.flows) << c.flags << ": " << out;
  }
}

// Completion through bash itself: COMP_WORDS in, COMPREPLY out.
TEST_F(ConfigTest, BashCompletionCompletesCommandsFlagsAndValues) {
  const std::string script = home_.string() + "/flowscope.bash";
  int status = -1;
  EXPECT_EQ(Cli("completion bash > " + script, &status), "");
  ASSERT_EQ(status, 0);
  const auto complete = [&](const std::string& words) {
    const std::string cmd = absl::StrCat(
        "bash -c 'source ", script, "; COMP_WORDS=(", words,
        "); COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 )); _flowscope; echo \"${COMPREPLY[*]}\"'");
    return testing::RunShell(cmd);
  };
  EXPECT_EQ(complete("flowscope \"\""), "observe status list version config completion\n");
  EXPECT_EQ(complete("flowscope obs"), "observe\n");
  EXPECT_EQ(complete("flowscope observe --verd"), "--verdict\n");
  EXPECT_EQ(complete("flowscope observe --verdict \"\""),
            "FORWARDED DROPPED ERROR AUDIT REDIRECTED TRACED TRANSLATED\n");
  EXPECT_EQ(complete("flowscope observe -o j"), "json jsonpb\n");
  EXPECT_EQ(complete("flowscope list nodes -o \"\""), "table wide json\n");
  EXPECT_EQ(complete("flowscope --server x observe --pod a/b --ty"), "--type\n")
      << "a flag's value is not taken for a command";
  EXPECT_EQ(complete("flowscope observe --type pol"), "policy-verdict\n");
  EXPECT_EQ(complete("flowscope observe \"\""), "flows agent-events debug-events\n");
  EXPECT_EQ(complete("flowscope config get tls-c"),
            "tls-ca-cert-files tls-client-cert-file tls-client-key-file\n");
  EXPECT_EQ(complete("flowscope completion \"\""), "bash zsh fish\n");
  EXPECT_THAT(complete("flowscope status --"), HasSubstr("--output"));
  EXPECT_THAT(complete("flowscope status --"), HasSubstr("--server")) << "global flags too";

  const std::string zsh = Cli("completion zsh", &status);
  EXPECT_EQ(status, 0);
  EXPECT_THAT(zsh, HasSubstr("bashcompinit"));
  EXPECT_THAT(zsh, HasSubstr("complete -o default -F _flowscope flowscope"));
  const std::string fish = Cli("completion fish", &status);
  EXPECT_EQ(status, 0);
  EXPECT_THAT(fish, HasSubstr("complete -c flowscope -n '__flowscope_at '\\'' observe'\\''' "
                              "-l verdict -x -a 'FORWARDED DROPPED ERROR AUDIT REDIRECTED "
                              "TRACED TRANSLATED'"));
  EXPECT_THAT(Cli("completion tcsh", &status), HasSubstr("tcsh"));
  EXPECT_NE(status, 0);
}

}  // namespace
}  // namespace flowscope::cli
