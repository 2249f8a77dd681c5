// flowscope-relay as a process in front of two flowscope-observer processes (two "nodes"
// watching the two pods' interfaces), queried with the flowscope CLI: status says 2/2, list
// nodes shows both, observe shows flows from both nodes in time order, and after one observer
// is killed the relay reports it unavailable and keeps serving the other. With names from a
// (stand-in) Kubernetes API server instead of a file, pod, service and node-label filters select
// the same flows through the relay.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "peer/peer.grpc.pb.h"
#include "tests/testing/dns_wire.h"
#include "tests/testing/http_client.h"
#include "tests/testing/kube_apiserver.h"
#include "tests/testing/kube_fixtures.h"
#include "tests/testing/netns.h"
#include "tests/testing/netns_test_base.h"
#include "tests/testing/observer_process.h"
#include "tests/testing/shell.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/traffic.h"
#include "tests/testing/wait.h"

namespace flowscope::relay {
namespace {

using ::testing::HasSubstr;
using testing::TestNetwork;

class RelayE2eTest : public testing::NetnsTestBase {
 protected:
  void SetUp() override {
    NetnsTestBase::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    std::ofstream(dir_ / "endpoints.yaml")
        << absl::StrCat("- {ip: ", TestNetwork::kIpA, ", namespace: default, pod: tiefighter}\n",
                        "- {ip: ", TestNetwork::kIpB, ", namespace: default, pod: deathstar-1}\n");
    std::ofstream(dir_ / "policy.yaml") << "deny:\n  - fromPod: default/tiefighter\n"
                                           "    toPod: default/deathstar\n"
                                           "    protocol: tcp\n    port: 7070\n";
    observers_.resize(2);
    if (kubernetes_) {
      StartApiServer();
      if (HasFatalFailure()) return;
    }
    if (!relay_first_) {
      for (int i = 0; i < 2; ++i) {
        StartObserver(i);
        if (HasFatalFailure()) return;
      }
    }
    relay_socket_ = (dir_ / "relay.sock").string();
    auto relay = testing::NetnsProcess::Start(
        "",
        {FLOWSCOPE_RELAY_BINARY, "--peers", ObserverTarget(0) + "," + ObserverTarget(1),
         "--listen-address", "", "--listen-socket", relay_socket_, "--node-name", "relay",
         "--peer-timeout", "1s", "--http-address", "127.0.0.1:0"},
        (dir_ / "relay.log").string());
    ASSERT_TRUE(relay.ok());
    relay_ = std::move(relay).value();
    // Serving once its socket is there (the CLI reports a missing socket at once).
    testing::WaitUntil([&] { return std::filesystem::exists(relay_socket_) || !relay_->Running(); },
                       absl::Seconds(20));
    if (!relay_first_) WaitForStatus("Connected Nodes: 2/2");
  }

  std::filesystem::path ObserverDir(int i) const { return dir_ / ("n" + std::to_string(i + 1)); }
  std::string ObserverTarget(int i) const {
    return "unix://" + (ObserverDir(i) / "observer.sock").string();
  }

  // The stand-in API server (proven against kubectl and python3-kubernetes) in the nodes'
  // namespace, over TLS with a bearer token, holding the cluster: two nodes in two zones, the
  // tiefighter Deployment's pod on node-1 and deathstar-0 on node-2.
  void StartApiServer() {
    testing::TestPki pki{.dir = dir_.string()};
    ASSERT_TRUE(pki.Make());
    testing::InNetns(net_->node(), [&] {
      auto s = testing::KubeApiServer::Start({.cert_file = pki.Path("server.crt"),
                                              .key_file = pki.Path("server.key"),
                                              .token = "t0ken"});
      ASSERT_TRUE(s.ok()) << s.status();
      api_ = std::move(s).value();
    });
    ASSERT_TRUE(api_);
    std::ofstream(dir_ / "kubeconfig")
        << testing::KubeconfigFor(api_->url(), pki.Path("ca.crt"), "t0ken");
    api_->Apply("namespaces", testing::KubeNamespace("default", {{"team", "empire"}}));
    for (int i = 1; i <= 2; ++i) api_->Apply("nodes", Node(i, i == 1 ? "zone-a" : "zone-b"));
    api_->Apply("pods", testing::KubeDeploymentPod("default", "tiefighter", "tiefighter-7c9b6-x2x",
                                                   TestNetwork::kIpA));
    api_->Apply("pods", testing::KubePod("default", "deathstar-0", TestNetwork::kIpB, "node-2"));
  }
  static nlohmann::json Node(int i, const std::string& zone) {
    const std::string name = "node-" + std::to_string(i);
    return testing::KubeNode(
        name, "192.168.50." + std::to_string(i),
        {{"kubernetes.io/hostname", name}, {"topology.kubernetes.io/zone", zone}});
  }

  // Starts (or restarts) observer i, "node-<i+1>", on the veth of pod A or pod B.
  void StartObserver(int i) {
    observers_[i].reset();
    std::filesystem::create_directories(ObserverDir(i));
    const std::vector<std::string> names =
        kubernetes_ ? std::vector<std::string>{"--kubeconfig", (dir_ / "kubeconfig").string()}
                    : std::vector<std::string>{"--endpoints", (dir_ / "endpoints.yaml").string()};
    std::vector<std::string> args = {"--node-name",
                                     "node-" + std::to_string(i + 1),
                                     "--interfaces",
                                     i == 0 ? net_->veth_a() : net_->veth_b(),
                                     "--policy",
                                     (dir_ / "policy.yaml").string(),
                                     "--metrics",
                                     "flow drop:sourceContext=namespace tcp port-distribution dns",
                                     "--ring-capacity",
                                     "4095",
                                     "--ring-buffer-bytes",
                                     "1048576"};
    args.insert(args.end(), names.begin(), names.end());
    if (i == 0 && !kubernetes_) {
      // node-1 knows node-2 (a static cluster source), for peer.Peer/Notify.
      args.insert(args.end(), {"--cluster-nodes", "node-2=" + ObserverTarget(1)});
    }
    auto p = testing::ObserverProcess::Start(FLOWSCOPE_OBSERVER_BINARY, net_->node(),
                                             ObserverDir(i), args);
    ASSERT_TRUE(p.ok()) << p.status();
    ASSERT_EQ(p.value()->target(), ObserverTarget(i));
    observers_[i] = std::move(p).value();
  }

  // Polls `flowscope status` through the relay until its output contains `want`.
  std::string WaitForStatus(const std::string& want) {
    std::string out;
    const bool said = testing::WaitUntil(
        [&] {
          EXPECT_TRUE(relay_->Running());
          return (out = Cli("status")).find(want) != std::string::npos;
        },
        absl::Seconds(20));
    if (said) return out;
    ADD_FAILURE() << "status never said \"" << want << "\":\n" << out;
    return out;
  }

  void TearDown() override {
    relay_.reset();
    observers_.clear();
    api_.reset();
    NetnsTestBase::TearDown();
  }

  std::string Cli(const std::string& args, int* status = nullptr) {
    return testing::RunShell(absl::StrCat(FLOWSCOPE_CLI_BINARY, " --server unix://", relay_socket_,
                                          " --timeout 2s ", args),
                             status);
  }

  // The flows `flowscope observe <args> -o json` prints through the relay.
  std::vector<nlohmann::json> CliFlows(const std::string& args) {
    std::vector<nlohmann::json> flows;
    const std::string out = Cli(args + " -o json");
    for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
      nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (j.is_discarded()) {
        ADD_FAILURE() << "not JSON: " << line;
        continue;
      }
      if (j.contains("flow")) flows.push_back(std::move(j["flow"]));
    }
    return flows;
  }

  // What `target`'s peer.Peer/Notify says first: "TYPE name address" for `n` notifications.
  static std::vector<std::string> Announced(const std::string& target, int n) {
    auto stub =
        peer::Peer::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = stub->Notify(&ctx, peer::NotifyRequest());
    std::vector<std::string> out;
    peer::ChangeNotification c;
    while (static_cast<int>(out.size()) < n && reader->Read(&c)) {
      out.push_back(absl::StrCat(peer::ChangeNotificationType_Name(c.type()), " ", c.name(), " ",
                                 c.address()));
    }
    ctx.TryCancel();
    return out;
  }

  bool relay_first_ = false;  // start the relay before any observer exists
  bool kubernetes_ = false;   // names from the API server, not the endpoints file
  std::unique_ptr<testing::KubeApiServer> api_;
  std::vector<std::unique_ptr<testing::ObserverProcess>> observers_;
  std::unique_ptr<testing::NetnsProcess> relay_;
  std::string relay_socket_;
};

TEST_F(RelayE2eTest, TheCliSeesTheClusterThroughTheRelay) {
  const std::string status = Cli("status");
  EXPECT_THAT(status, HasSubstr("Connected Nodes: 2/2")) << status;
  const std::string nodes = Cli("list nodes");
  EXPECT_THAT(nodes, HasSubstr("node-1   Connected")) << nodes;
  EXPECT_THAT(nodes, HasSubstr("node-2   Connected")) << nodes;

  const uint16_t port = testing::TcpExchange(*net_, 8080);
  std::string out;
  testing::WaitUntil([&] {
    out = Cli("observe --since 3m --pod default/tiefighter --print-node-name -o json");
    return out.find("node-1") != std::string::npos && out.find("node-2") != std::string::npos;
  });
  std::string last_time;
  int flows = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("flow")) continue;
    ++flows;
    const std::string t = j["flow"]["time"];
    EXPECT_LE(last_time, t) << "strictly ordered by time";  // RFC3339 UTC sorts as text
    last_time = t;
  }
  EXPECT_GE(flows, 4) << out;
  EXPECT_THAT(out, HasSubstr(absl::StrCat("\"source_port\":", port)));

  // One node hangs (SIGSTOP): history answers without it after --peer-timeout, and says so.
  {
    const pid_t hung = observers_[1]->process().pid();
    ASSERT_EQ(kill(hung, SIGSTOP), 0);
    struct Resume {
      pid_t pid;
      ~Resume() { kill(pid, SIGCONT); }
    } resume{hung};
    int rc = 0;
    const std::string partial = Cli("observe --last 5 --pod default/tiefighter", &rc);
    EXPECT_EQ(rc, 0) << partial;
    EXPECT_THAT(partial, HasSubstr("default/tiefighter"));
    EXPECT_THAT(partial,
                HasSubstr("no answer for 1s; its flows are left out\" on 1 nodes: node-2"));
  }

  // One node dies: the relay says so and keeps answering with the other.
  ASSERT_TRUE(observers_[1]->process().Signal(SIGKILL, absl::Seconds(5)).ok());
  const std::string after = WaitForStatus("Connected Nodes: 1/2");
  EXPECT_THAT(after, HasSubstr("Unavailable Nodes: 1"));
  int st = 0;
  const std::string still = Cli("observe --last 5 --pod default/tiefighter", &st);
  EXPECT_EQ(st, 0) << still;
  EXPECT_THAT(still, HasSubstr("default/tiefighter"));
  const std::string listed = Cli("list nodes");
  EXPECT_THAT(listed, HasSubstr("node-2   Unavailable")) << listed;

  // It comes back on the same address: the relay reconnects without being told.
  StartObserver(1);
  WaitForStatus("Connected Nodes: 2/2");
}

TEST_F(RelayE2eTest, ReadinessAndMetricsOverHttp) {
  std::string log;
  auto relay_log = [&] {
    std::ifstream in(dir_ / "relay.log");
    return log =
               std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  const std::string marker = "/readyz on 127.0.0.1:";
  ASSERT_TRUE(testing::WaitUntil([&] { return relay_log().find(marker) != std::string::npos; }))
      << log;
  const uint16_t port = testing::PortOf(log.substr(0, log.find('\n', log.find(marker))));
  ASSERT_NE(port, 0) << log;
  EXPECT_EQ(testing::HttpGet(port, "/healthz").status, 200);
  EXPECT_EQ(testing::HttpGet(port, "/readyz").status, 200) << "both observers are connected";
  const testing::HttpAnswer m = testing::HttpGet(port, "/metrics");
  EXPECT_THAT(m.body, HasSubstr("flowscope_relay_peers{state=\"connected\"} 2\n"));
  EXPECT_THAT(m.body, HasSubstr("flowscope_relay_peer_up{peer=\"" + ObserverTarget(0) +
                                "\",name=\"node-1\"} 1\n"));
  EXPECT_THAT(m.body, HasSubstr("flowscope_ready 1\n"));
  EXPECT_THAT(m.body, HasSubstr("flowscope_relay_queued_messages 0\n"));
  EXPECT_THAT(m.body, HasSubstr("flowscope_relay_follow_merge_lag_seconds 0\n")) << "no follow";
  // Both observers gone: not ready, and the metrics say why.
  for (auto& o : observers_) o.reset();
  EXPECT_TRUE(testing::WaitUntil([&] { return testing::HttpGet(port, "/readyz").status == 503; }));
  EXPECT_THAT(testing::HttpGet(port, "/readyz").body, HasSubstr("no peer connected"));
  EXPECT_THAT(testing::HttpGet(port, "/metrics").body,
              HasSubstr("flowscope_relay_peers{state=\"unavailable\"} 2\n"));
}

// "%xx" for everything but unreserved characters.
std::string UrlEncode(absl::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

TEST_F(RelayE2eTest, ARealPrometheusScrapesObserversAndRelayAndEveryDashboardQueryHasData) {
  const std::string prometheus_binary =
      std::string(absl::StripTrailingAsciiWhitespace(testing::RunShell("command -v prometheus")));
  if (prometheus_binary.empty() || prometheus_binary[0] != '/') {
    GTEST_SKIP() << "Debian's prometheus package is not installed (scripts/setup installs it)";
  }
  // A relay of its own in the nodes' namespace, so that one Prometheus there reaches every
  // HTTP server on loopback.
  auto relay = testing::NetnsProcess::Start(
      net_->node(),
      {FLOWSCOPE_RELAY_BINARY, "--peers", ObserverTarget(0) + "," + ObserverTarget(1),
       "--listen-address", "", "--listen-socket", (dir_ / "relay2.sock").string(), "--http-address",
       "127.0.0.1:0"},
      (dir_ / "relay2.log").string());
  ASSERT_TRUE(relay.ok());
  std::string relay_log;
  ASSERT_TRUE(testing::WaitUntil([&] {
    std::ifstream in(dir_ / "relay2.log");
    relay_log.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return relay_log.find("/readyz on") != std::string::npos;
  })) << relay_log;
  const size_t at = relay_log.find("/readyz on ") + 11;
  const std::string relay_http = relay_log.substr(at, relay_log.find('\n', at) - at);
  const std::string config = absl::StrCat(
      "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
      "scrape_configs:\n"
      "  - job_name: flowscope-observer\n    static_configs:\n      - targets: ['",
      observers_[0]->HttpAddress(), "', '", observers_[1]->HttpAddress(),
      "']\n"
      "  - job_name: flowscope-relay\n    static_configs:\n      - targets: ['",
      relay_http, "']\n");
  std::ofstream(dir_ / "prometheus.yml") << config;
  // The nodes' namespace is the test's own: Prometheus's usual port is free there.
  auto prometheus = testing::NetnsProcess::Start(
      net_->node(),
      {prometheus_binary, "--config.file=" + (dir_ / "prometheus.yml").string(),
       "--storage.tsdb.path=" + (dir_ / "tsdb").string(), "--web.listen-address=127.0.0.1:9090",
       "--log.level=warn"},
      (dir_ / "prometheus.log").string());
  ASSERT_TRUE(prometheus.ok());
  auto query = [&](const std::string& promql) {
    testing::HttpAnswer a;
    testing::InNetns(net_->node(), [&] {
      a = testing::HttpGet(9090, "/api/v1/query?query=" + UrlEncode(promql));
    });
    const auto j = nlohmann::json::parse(a.body.empty() ? "{}" : a.body, nullptr, false);
    if (j.is_discarded() || j.value("status", "") != "success") return nlohmann::json::array();
    return j["data"]["result"];
  };
  auto value = [&](const std::string& promql) {
    const auto r = query(promql);
    return r.empty() ? -1.0 : std::stod(r[0]["value"][1].get<std::string>());
  };
  ASSERT_TRUE(testing::WaitUntil([&] { return value("sum(up)") == 3; }, absl::Seconds(30)))
      << "every target scraped: " << query("up").dump() << "\n"
      << testing::RunShell("cat " + (dir_ / "prometheus.log").string());

  // Traffic: connections that pass, one the policy denies, and a DNS lookup.
  for (int i = 0; i < 3; ++i) testing::TcpExchange(*net_, 8080);
  testing::DnsWire lookup, answer;
  lookup.Header(0x0100, 1, 0).Name("deathstar.default.svc.cluster.local").Question(1);
  answer.Header(0x8180, 1, 1).Name("deathstar.default.svc.cluster.local").Question(1);
  answer.Answer(1, 30, {10, 96, 0, 20});
  testing::UdpExchange(*net_, 53, std::string(lookup.b.begin(), lookup.b.end()),
                       std::string(answer.b.begin(), answer.b.end()));
  EXPECT_FALSE(testing::TryConnect(*net_, 7070, absl::Milliseconds(1200)));
  // Once Prometheus holds what the observers count now, it matches GetFlows through the relay.
  std::map<std::string, double> from_flows;
  double drop_events = 0;  // the policy drops, not the policy verdicts beside them
  std::map<std::string, double> drop_reasons;
  std::string out;
  ASSERT_TRUE(testing::WaitUntil(
      [&] {
        out = Cli("observe --all -o json");
        from_flows.clear();
        drop_events = 0;
        drop_reasons.clear();
        for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
          const auto f = nlohmann::json::parse(line, nullptr, false);
          if (!f.is_discarded() && f.contains("flow")) {
            from_flows[f["flow"].value("verdict", "")] += 1;
            if (f["flow"]["event_type"].value("type", 0) != 1) continue;
            const std::string reason = f["flow"].value("drop_reason_desc", "");
            drop_reasons[reason] += 1;
            if (reason == "POLICY_DENIED") drop_events += 1;
          }
        }
        return from_flows["DROPPED"] > 0 &&
               value("sum(hubble_flows_processed_total{verdict=\"FORWARDED\"})") ==
                   from_flows["FORWARDED"] &&
               value("sum(hubble_flows_processed_total{verdict=\"DROPPED\"})") ==
                   from_flows["DROPPED"];
      },
      absl::Seconds(30)))
      << "GetFlows: " << from_flows["FORWARDED"] << " forwarded, " << from_flows["DROPPED"]
      << " dropped; Prometheus: "
      << query("sum by (verdict) (hubble_flows_processed_total)").dump();
  EXPECT_EQ(value("sum(hubble_drop_total{reason=\"POLICY_DENIED\",source=\"default\"})"),
            drop_events)
      << query("hubble_drop_total").dump() << "\n"
      << nlohmann::json(drop_reasons).dump();
  EXPECT_EQ(value("sum(flowscope_relay_peers{state=\"connected\"})"), 2);

  // Every query of the dashboard returns data (rates need a few scrapes).
  std::ifstream in(FLOWSCOPE_DASHBOARD);
  const auto dashboard = nlohmann::json::parse(in, nullptr, false);
  ASSERT_FALSE(dashboard.is_discarded());
  ASSERT_FALSE(dashboard["panels"].empty());
  for (const auto& panel : dashboard["panels"]) {
    for (const auto& target : panel["targets"]) {
      const std::string expr = target["expr"];
      EXPECT_TRUE(testing::WaitUntil([&] { return !query(expr).empty(); }, absl::Seconds(20)))
          << panel["title"] << ": " << expr;
    }
  }
  EXPECT_TRUE((*prometheus)->Signal(SIGTERM, absl::Seconds(10)).ok());
  EXPECT_TRUE((*relay)->Signal(SIGTERM, absl::Seconds(10)).ok());
}

TEST_F(RelayE2eTest, AFollowQueryKeepsFlowingWhileANodeHangs) {
  const std::string log = (dir_ / "follow.log").string();
  auto follow = testing::NetnsProcess::Start(
      "",
      {FLOWSCOPE_CLI_BINARY, "--server", "unix://" + relay_socket_, "observe", "--follow", "--pod",
       "default/tiefighter", "-o", "json"},
      log);
  ASSERT_TRUE(follow.ok()) << follow.status();
  auto log_text = [&] {
    std::ifstream in(log);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  };
  auto wait_for = [&](const std::string& want, absl::Duration limit = absl::Seconds(15)) {
    testing::WaitUntil([&] { return log_text().find(want) != std::string::npos; }, limit);
    return log_text();
  };
  // The stream reaches both nodes once a connection made now comes through (flows from before
  // the relay opened its streams are not part of a follow query, so retry until one does).
  const std::string from_node2 = "\"node_name\":\"node-2\"";
  bool open = false;
  for (int attempt = 0; attempt < 10 && !open; ++attempt) {
    const std::string want = absl::StrCat(
        "\"source_port\":", testing::TcpExchange(*net_, static_cast<uint16_t>(8081 + attempt)));
    const std::string out = wait_for(want, absl::Seconds(2));
    open = out.find(want) != std::string::npos && out.find(from_node2) != std::string::npos;
  }
  ASSERT_TRUE(open) << log_text();

  const pid_t hung = observers_[1]->process().pid();
  ASSERT_EQ(kill(hung, SIGSTOP), 0);
  struct Resume {
    pid_t pid;
    ~Resume() { kill(pid, SIGCONT); }
  } resume{hung};
  // Within --peer-timeout the relay stops waiting for it, and says so.
  const std::string stalled =
      "Error \"no data for 1s; the stream goes on without it until it answers\" on 1 nodes: node-2";
  std::string out = wait_for(stalled);
  EXPECT_THAT(out, HasSubstr(stalled)) << "the relay says which node it stopped waiting for";
  // Then node-1's flows go on while node-2 stays hung.
  const uint16_t port = testing::TcpExchange(*net_, 8100);
  const std::string want = absl::StrCat("\"source_port\":", port);
  out = wait_for(want);
  EXPECT_THAT(out, HasSubstr(want)) << "node-1's flows must not wait for the hung node-2";
  EXPECT_TRUE((*follow)->Running()) << out;
  // Status and the node list answer without it (within the peer timeout), counting it
  // unavailable: its channel is up, but it does not answer.
  const std::string status = Cli("status");
  EXPECT_THAT(status, HasSubstr("Connected Nodes: 1/2")) << status;
  EXPECT_THAT(status, HasSubstr("Unavailable Nodes: 1")) << status;
  const std::string nodes = Cli("list nodes");
  EXPECT_THAT(nodes, ::testing::ContainsRegex("node-2 +Unavailable")) << nodes;
  EXPECT_THAT(nodes, ::testing::ContainsRegex("node-1 +Connected")) << nodes;

  // node-2 wakes up: its flows are part of the stream again.
  kill(hung, SIGCONT);
  // A connection made now, seen by node-2 (node-1 sees it too, and sooner).
  auto seen_by_node2 = [&](const std::string& port) {
    for (absl::string_view line : absl::StrSplit(log_text(), '\n')) {
      if (absl::StrContains(line, port) && absl::StrContains(line, from_node2)) return true;
    }
    return false;
  };
  bool back = false;
  for (int attempt = 0; attempt < 10 && !back; ++attempt) {
    const std::string again = absl::StrCat(
        "\"source_port\":", testing::TcpExchange(*net_, static_cast<uint16_t>(8110 + attempt)));
    back = testing::WaitUntil([&] { return seen_by_node2(again); }, absl::Seconds(3));
  }
  out = log_text();
  EXPECT_TRUE(back) << "node-2 rejoins the stream after it answers again:\n" << out;
  // What node-2 saw while it was stopped came after the stream had gone past it: never out of
  // order — the stream stays strictly ordered, and says how many of node-2's flows it lost.
  absl::Time previous = absl::InfinitePast();
  int flows = 0;
  uint64_t lost_from_node2 = 0;
  for (absl::string_view line : absl::StrSplit(out, '\n', absl::SkipEmpty())) {
    if (!absl::StartsWith(line, "{")) continue;  // node states, on stderr
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    ASSERT_FALSE(j.is_discarded()) << line;
    if (j.contains("lost_events") && j.value("node_name", "") == "node-2") {
      const nlohmann::json& n = j["lost_events"]["num_events_lost"];  // uint64: a JSON string
      lost_from_node2 += n.is_string() ? std::stoull(n.get<std::string>()) : n.get<uint64_t>();
    }
    if (!j.contains("flow")) continue;
    absl::Time t;
    std::string err;
    ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, j["time"].get<std::string>(), &t, &err))
        << err << ": " << line;
    EXPECT_GE(t, previous) << "out of order: " << line;
    previous = std::max(previous, t);
    ++flows;
  }
  EXPECT_GT(flows, 0);
  EXPECT_GT(lost_from_node2, 0u) << "node-2's flows from while it was stopped are late:\n" << out;
  const absl::StatusOr<int> exit = (*follow)->Signal(SIGINT, absl::Seconds(5));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(*exit, 0) << "Ctrl-C ends a follow query cleanly:\n" << log_text();
}

// Each observer keeps its flows on disk: after node-2's observer is killed (kill -9) and started
// again with an empty ring, its earlier flows still come back through the relay, in order.
TEST_F(RelayE2eTest, FlowsFromBeforeAnObserverRestartComeBackFromItsHistory) {
  const uint16_t port = testing::TcpExchange(*net_, 8080);
  const std::string earlier = absl::StrCat("\"source_port\":", port);
  auto node2_flows_with_port = [&] {
    int n = 0;
    for (const nlohmann::json& f : CliFlows("observe --since 3m --pod default/tiefighter")) {
      if (f.value("node_name", "") == "node-2" && f.dump().find(earlier) != std::string::npos) ++n;
    }
    return n;
  };
  int before = 0;
  ASSERT_TRUE(testing::WaitUntil([&] { return (before = node2_flows_with_port()) > 0; }));
  // Stored: the history says so before the kill.
  std::string nodes;
  ASSERT_TRUE(testing::WaitUntil([&] {
    nodes = Cli("list nodes");
    for (absl::string_view line : absl::StrSplit(nodes, '\n')) {
      // "node-2   Connected ...   <stored> flows, <reach> (<bytes>)"
      const size_t at = line.find(" flows");
      if (!absl::StartsWith(line, "node-2") || at == absl::string_view::npos) continue;
      const absl::string_view count = line.substr(line.rfind(' ', at - 1) + 1, at);
      return count.substr(0, count.find(' ')) != "0";
    }
    return false;
  })) << nodes;
  EXPECT_THAT(nodes, HasSubstr("HISTORY")) << nodes;

  ASSERT_TRUE(observers_[1]->process().Signal(SIGKILL, absl::Seconds(5)).ok());
  StartObserver(1);
  WaitForStatus("Connected Nodes: 2/2");
  // A new process with an empty ring: these come from its history.
  EXPECT_EQ(node2_flows_with_port(), before);
  std::string last_time;
  for (const nlohmann::json& f : CliFlows("observe --since 3m")) {
    const std::string t = f.value("time", "");
    EXPECT_LE(last_time, t) << "in time order across history and ring, node by node merged";
    last_time = t;
  }
  const std::string status = Cli("status");
  EXPECT_THAT(status, HasSubstr("flows on 2 nodes")) << status;
}

// Hubble's discovery API both ways: an observer announces itself and the nodes it knows of, a
// relay its peers; a relay given only --peer-service finds every node through it.
TEST_F(RelayE2eTest, PeersAreAnnouncedAndDiscoveredThroughPeerNotify) {
  EXPECT_THAT(Announced(ObserverTarget(0), 2),
              ::testing::ElementsAre("PEER_ADDED node-1 " + ObserverTarget(0),
                                     "PEER_ADDED node-2 " + ObserverTarget(1)));
  EXPECT_THAT(Announced(ObserverTarget(1), 1),
              ::testing::ElementsAre("PEER_ADDED node-2 " + ObserverTarget(1)));
  EXPECT_THAT(Announced("unix://" + relay_socket_, 2),
              ::testing::UnorderedElementsAre("PEER_ADDED node-1 " + ObserverTarget(0),
                                              "PEER_ADDED node-2 " + ObserverTarget(1)));

  const std::string socket = (dir_ / "relay2.sock").string();
  auto relay2 = testing::NetnsProcess::Start(
      "",
      {FLOWSCOPE_RELAY_BINARY, "--peer-service", ObserverTarget(0), "--listen-address", "",
       "--listen-socket", socket, "--node-name", "relay-2", "--http-address", ""},
      (dir_ / "relay2.log").string());
  ASSERT_TRUE(relay2.ok());
  std::string status;
  EXPECT_TRUE(testing::WaitUntil([&] {
    status = testing::RunShell(
        absl::StrCat(FLOWSCOPE_CLI_BINARY, " --server unix://", socket, " --timeout 2s status"));
    return status.find("Connected Nodes: 2/2") != std::string::npos;
  })) << status;
  EXPECT_THAT(Announced("unix://" + socket, 2),
              ::testing::UnorderedElementsAre("PEER_ADDED node-1 " + ObserverTarget(0),
                                              "PEER_ADDED node-2 " + ObserverTarget(1)));
  // A relay whose --peer-service stream is open stops cleanly.
  (*relay2).reset();
}

class RelayKubernetesE2eTest : public RelayE2eTest {
 protected:
  RelayKubernetesE2eTest() { kubernetes_ = true; }
};

// Both observers take their names from the API server; the CLI's Kubernetes filters select the
// same flows through the relay as on each node, and follow the cluster's changes.
// With the Kubernetes source, an observer announces the cluster's Nodes (their InternalIP;
// Hubble's relay adds its default port) and itself.
TEST_F(RelayKubernetesE2eTest, ObserversAnnounceTheClustersNodes) {
  std::vector<std::string> got;
  EXPECT_TRUE(testing::WaitUntil([&] {
    got = Announced(ObserverTarget(0), 2);
    return got.size() == 2 && got[1] == "PEER_ADDED node-2 192.168.50.2";
  })) << ::testing::PrintToString(got);
  EXPECT_THAT(got, ::testing::ElementsAre("PEER_ADDED node-1 192.168.50.1",
                                          "PEER_ADDED node-2 192.168.50.2"))
      << "the cluster source's address wins over the node's own socket";
}

TEST_F(RelayKubernetesE2eTest, PodServiceAndNodeLabelFiltersSelectFlowsThroughTheRelay) {
  const std::string pod = "default/tiefighter-7c9b6-x2x";
  auto nodes_of = [](const std::vector<nlohmann::json>& flows) {
    std::set<std::string> nodes;
    for (const nlohmann::json& f : flows) nodes.insert(f.value("node_name", ""));
    return nodes;
  };
  // The observers serve flows from the start, with names once their lists are in.
  std::vector<nlohmann::json> flows;
  ASSERT_TRUE(testing::WaitUntil([&] {
    testing::TcpExchange(*net_, 8080);
    flows = CliFlows("observe --since 3m --pod " + pod);
    return nodes_of(flows) == std::set<std::string>{"node-1", "node-2"};
  })) << Cli("observe --since 3m");
  for (const nlohmann::json& f : flows) {
    const bool from = f["source"].value("pod_name", "") == "tiefighter-7c9b6-x2x";
    const nlohmann::json& tie = f[from ? "source" : "destination"];
    const nlohmann::json& other = f[from ? "destination" : "source"];
    EXPECT_EQ(tie.value("namespace", ""), "default") << f;
    EXPECT_EQ(tie["workloads"][0].value("name", ""), "tiefighter") << f;
    EXPECT_EQ(tie["workloads"][0].value("kind", ""), "Deployment") << f;
    EXPECT_THAT(tie["labels"].get<std::vector<std::string>>(),
                ::testing::Contains("k8s:io.cilium.k8s.namespace.labels.team=empire"));
    EXPECT_EQ(other.value("pod_name", ""), "deathstar-0") << f;
  }

  // A Service in front of deathstar, translated on the nodes as kube-proxy does: the request
  // seen on node-1 names it as destination_service, the reply as source_service.
  api_->Apply("services", testing::KubeService("default", "deathstar", "10.96.0.10", 80));
  ASSERT_TRUE(testing::ShIn(net_->node(),
                            absl::StrCat("nft add table ip fsnat && nft add chain ip fsnat pre '{ "
                                         "type nat hook prerouting priority -100; }' && nft add "
                                         "rule ip fsnat pre ip daddr 10.96.0.10 tcp dport 80 "
                                         "dnat to ",
                                         TestNetwork::kIpB, ":8080"))
                  .ok());
  auto sides = [](const std::vector<nlohmann::json>& flows) {
    std::set<std::string> s;
    for (const nlohmann::json& f : flows) {
      if (f.contains("destination_service")) s.insert("to");
      if (f.contains("source_service")) s.insert("from");
    }
    return s;
  };
  ASSERT_TRUE(testing::WaitUntil([&] {
    testing::TcpExchange(*net_, 8080, "10.96.0.10", 80);
    flows = CliFlows("observe --since 3m --service default/deathstar");
    return sides(flows) == std::set<std::string>{"to", "from"};
  })) << Cli("observe --since 3m --ip 10.96.0.10");
  for (const nlohmann::json& f : flows) {
    const bool to = f.contains("destination_service");
    const nlohmann::json& svc = f[to ? "destination_service" : "source_service"];
    EXPECT_EQ(svc.value("name", ""), "deathstar") << f;
    EXPECT_EQ(svc.value("namespace", ""), "default") << f;
    EXPECT_EQ(f["IP"].value(to ? "destination" : "source", ""), "10.96.0.10") << f;
    EXPECT_EQ(f.value("node_name", ""), "node-1") << "the translation is seen on pod A's side";
  }
  const std::vector<nlohmann::json> requests =
      CliFlows("observe --since 3m --to-service default/deathstar");
  EXPECT_FALSE(requests.empty());
  EXPECT_EQ(sides(requests), std::set<std::string>{"to"});

  // Node labels select whole nodes' flows; when node-2 moves zone, the filters follow.
  flows = CliFlows("observe --since 3m --node-label topology.kubernetes.io/zone=zone-b");
  EXPECT_FALSE(flows.empty());
  EXPECT_EQ(nodes_of(flows), std::set<std::string>{"node-2"});
  EXPECT_EQ(nodes_of(CliFlows("observe --since 3m --node-label "
                              "'topology.kubernetes.io/zone in (zone-a,zone-b)'")),
            (std::set<std::string>{"node-1", "node-2"}));
  api_->Apply("nodes", Node(2, "zone-c"));
  ASSERT_TRUE(testing::WaitUntil([&] {
    return nodes_of(CliFlows("observe --since 3m --node-label topology.kubernetes.io/zone=zone-c"))
               .count("node-2") == 1;
  }));
  EXPECT_TRUE(
      CliFlows("observe --since 3m --node-label topology.kubernetes.io/zone=zone-b").empty());
  for (const auto& o : observers_) EXPECT_TRUE(o->process().Running());
}

class RelayFirstE2eTest : public RelayE2eTest {
 protected:
  RelayFirstE2eTest() { relay_first_ = true; }
};

TEST_F(RelayFirstE2eTest, ServesObserversThatComeUpAfterIt) {
  // Nothing to talk to yet: the relay runs, answers, and says so.
  int st = 0;
  const std::string none = Cli("status", &st);
  EXPECT_TRUE(relay_->Running()) << none;
  EXPECT_THAT(none, ::testing::AnyOf(HasSubstr("Connected Nodes: 0/2"), HasSubstr("Unavailable")))
      << none;
  for (int i = 0; i < 2; ++i) {
    StartObserver(i);
    ASSERT_FALSE(HasFatalFailure());
  }
  WaitForStatus("Connected Nodes: 2/2");
  testing::TcpExchange(*net_, 8080);
  std::string out;
  testing::WaitUntil([&] {
    out = Cli("observe --since 3m --print-node-name");
    return out.find("node-1") != std::string::npos && out.find("node-2") != std::string::npos;
  });
  EXPECT_THAT(out, HasSubstr("node-1"));
  EXPECT_THAT(out, HasSubstr("node-2"));
}

}  // namespace
}  // namespace flowscope::relay
