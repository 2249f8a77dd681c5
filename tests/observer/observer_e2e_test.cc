// flowscope-observer as a process in a "node" namespace with two "pods", real traffic, and a
// gRPC client: GetFlows with source_pod finds the right flows with the right names, verdicts,
// TCP flags and is_reply; the policy file's pod rule really drops; SIGTERM stops the daemon
// within a second, removing its socket and its tc filters.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "api/flows_request.h"
#include "flowscope/v1/flowscope.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "observer/observer.grpc.pb.h"
#include "tests/testing/bpf_env.h"
#include "tests/testing/dns_wire.h"
#include "tests/testing/http_client.h"
#include "tests/testing/kube_apiserver.h"
#include "tests/testing/kube_fixtures.h"
#include "tests/testing/netns.h"
#include "tests/testing/netns_test_base.h"
#include "tests/testing/observer_process.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/traffic.h"
#include "tests/testing/wait.h"

namespace flowscope::observer {
namespace {

using testing::NetnsProcess;
using testing::ShIn;
using testing::TestNetwork;

class ObserverE2eTest : public testing::NetnsTestBase {
 protected:
  void SetUp() override {
    NetnsTestBase::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    socket_ = (dir_ / "observer.sock").string();
    std::ofstream(dir_ / "endpoints.yaml") << absl::StrCat(
        "- ip: ", TestNetwork::kIpA, "\n  namespace: default\n  pod: tiefighter\n",
        "  labels: {org: empire, class: tiefighter}\n  workload: {name: tiefighter, kind: "
        "Deployment}\n",
        "- ip: ", TestNetwork::kIpB, "\n  namespace: default\n  pod: deathstar-6fb5694d48-5hmds\n",
        "  labels: {org: empire, class: deathstar}\n");
    std::ofstream(dir_ / "policy.yaml")
        << "deny:\n  - fromPod: default/tiefighter\n    toPod: default/deathstar\n"
           "    protocol: tcp\n    port: 8081\n    name: deathstar-no-tiefighter\n"
           "    namespace: default\n";
  }

  void TearDown() override {
    if (HasFailure() || getenv("FLOWSCOPE_TEST_SHOW_LOG")) std::cerr << Log();
    observer_.reset();
    daemon_.reset();
    NetnsTestBase::TearDown();
  }

  // With the endpoints file unless `more` names another source (--kubeconfig).
  void StartDaemon(std::vector<std::string> more = {}) {
    const bool kube = std::find(more.begin(), more.end(), "--kubeconfig") != more.end();
    std::vector<std::string> args = {"--node-name",
                                     "node-1",
                                     "--interfaces",
                                     net_->prefix() + "*",
                                     kube ? "--cluster-name" : "--endpoints",
                                     kube ? "default" : (dir_ / "endpoints.yaml").string(),
                                     "--policy",
                                     (dir_ / "policy.yaml").string(),
                                     "--ring-capacity",
                                     "4095",
                                     "--ring-buffer-bytes",
                                     "1048576"};
    args.insert(args.end(), more.begin(), more.end());
    auto p = testing::ObserverProcess::Start(FLOWSCOPE_OBSERVER_BINARY, net_->node(), dir_, args);
    ASSERT_TRUE(p.ok()) << p.status();
    observer_ = std::move(p).value();
    channel_ = grpc::CreateChannel(observer_->target(), grpc::InsecureChannelCredentials());
    stub_ = ::observer::Observer::NewStub(channel_);
  }

  std::string Log() const {
    std::ifstream in(dir_ / "observer.log");
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  testing::NetnsProcess& daemon() { return observer_->process(); }

  std::vector<flow::Flow> Flows(const std::string& source_pod) {
    ::observer::GetFlowsRequest req;
    req.set_number(1000);
    req.add_whitelist()->add_source_pod(source_pod);
    RequestFlowExtensions(&req);  // kernel drops say so
    return Query(req);
  }

  std::vector<flow::Flow> Query(const ::observer::GetFlowsRequest& req) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = stub_->GetFlows(&ctx, req);
    std::vector<flow::Flow> out;
    ::observer::GetFlowsResponse resp;
    while (reader->Read(&resp)) {
      if (resp.has_flow()) out.push_back(resp.flow());
    }
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  std::string socket_;
  std::unique_ptr<testing::ObserverProcess> observer_;
  std::unique_ptr<NetnsProcess> daemon_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<::observer::Observer::Stub> stub_;
};

TEST_F(ObserverE2eTest, RealFlowsWithNamesVerdictsFlagsAndDirections) {
  StartDaemon();
  const uint16_t port = testing::TcpExchange(*net_, 8080);
  EXPECT_FALSE(testing::TryConnect(*net_, 8081, absl::Milliseconds(1200)))
      << "the policy file denies tiefighter -> deathstar:8081";

  // The drain publishes within ~100 ms; wait for the last expected flow.
  std::vector<flow::Flow> flows;
  auto has_drop = [&] {
    return std::any_of(flows.begin(), flows.end(),
                       [](const flow::Flow& f) {
                         return f.verdict() == flow::DROPPED && f.event_type().type() == 1;
                       }) &&
           std::any_of(flows.begin(), flows.end(),
                       [](const flow::Flow& f) { return f.event_type().type() == 5; });
  };
  testing::WaitUntil([&] {
    flows = Flows("default/tiefighter");
    return flows.size() >= 4 && has_drop();
  });

  // tiefighter's own packets, seen as they leave it (from-endpoint) and as they reach the
  // deathstar (to-endpoint).
  std::vector<std::string> syn_points;
  bool saw_fin = false;
  for (const flow::Flow& f : flows) {
    if (f.extensions().Is<flowscope::v1::KernelDrop>()) continue;  // the kernel's own
    EXPECT_EQ(f.source().pod_name(), "tiefighter");
    EXPECT_EQ(f.source().namespace_(), "default");
    EXPECT_THAT(f.source().labels(), ::testing::Contains("k8s:org=empire"));
    EXPECT_EQ(f.node_name(), "node-1");
    if (f.l4().tcp().destination_port() == 8080 && f.l4().tcp().source_port() == port) {
      EXPECT_EQ(f.destination().pod_name(), "deathstar-6fb5694d48-5hmds");
      EXPECT_EQ(f.verdict(), flow::FORWARDED) << f.ShortDebugString();
      ASSERT_TRUE(f.has_is_reply());
      EXPECT_FALSE(f.is_reply().value());
      if (f.l4().tcp().flags().syn()) {
        EXPECT_EQ(f.summary(), "TCP Flags: SYN");
        syn_points.push_back(flow::TraceObservationPoint_Name(f.trace_observation_point()));
      }
      saw_fin = saw_fin || f.l4().tcp().flags().fin();
    }
  }
  EXPECT_THAT(syn_points, ::testing::UnorderedElementsAre("FROM_ENDPOINT", "TO_ENDPOINT"));
  EXPECT_TRUE(saw_fin);

  // Each drop, and beside it the policy verdict (as Cilium reports a denial), naming the rule
  // on the side of the flow's direction.
  int drops = 0, verdicts = 0;
  for (const flow::Flow& f : flows) {
    if (f.verdict() != flow::DROPPED || f.extensions().Is<flowscope::v1::KernelDrop>()) continue;
    const bool verdict = f.event_type().type() == 5;
    ++(verdict ? verdicts : drops);
    EXPECT_EQ(f.l4().tcp().destination_port(), 8081u);
    EXPECT_EQ(f.drop_reason_desc(), flow::POLICY_DENIED);
    EXPECT_EQ(f.event_type().sub_type(), verdict ? 0 : 133);
    EXPECT_EQ(f.policy_match_type(), verdict ? 2u : 0u) << "L3-L4 on the verdict";
    EXPECT_FALSE(f.has_is_reply()) << "direction unknown for a dropped SYN";
    EXPECT_EQ(f.destination().pod_name(), "deathstar-6fb5694d48-5hmds");
    ASSERT_NE(f.traffic_direction(), flow::TRAFFIC_DIRECTION_UNKNOWN);
    const auto& by =
        f.traffic_direction() == flow::EGRESS ? f.egress_denied_by() : f.ingress_denied_by();
    const auto& other =
        f.traffic_direction() == flow::EGRESS ? f.ingress_denied_by() : f.egress_denied_by();
    ASSERT_EQ(by.size(), 1);
    EXPECT_EQ(by[0].name(), "deathstar-no-tiefighter");
    EXPECT_EQ(by[0].namespace_(), "default");
    EXPECT_EQ(by[0].kind(), "FlowscopePolicy");
    EXPECT_TRUE(other.empty());
  }
  EXPECT_GE(drops, 1);
  EXPECT_GE(verdicts, 1);
  EXPECT_LE(std::abs(drops - verdicts), 1) << "one verdict per drop (the newest may be unread)";

  // The deathstar's replies are found by a destination filter, marked as replies.
  grpc::ClientContext ctx;
  ::observer::GetFlowsRequest req;
  req.set_number(100);
  req.add_whitelist()->add_source_pod("default/deathstar");
  req.mutable_whitelist(0)->add_reply(true);
  auto reader = stub_->GetFlows(&ctx, req);
  ::observer::GetFlowsResponse resp;
  int replies = 0;
  while (reader->Read(&resp)) {
    ++replies;
    EXPECT_TRUE(resp.flow().is_reply().value());
    EXPECT_EQ(resp.flow().destination().pod_name(), "tiefighter");
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_GE(replies, 2) << "SYN-ACK at both observation points";
}

TEST_F(ObserverE2eTest, SigtermStopsWithinASecondAndLeavesNothingBehind) {
  StartDaemon();
  ASSERT_TRUE(std::filesystem::exists(socket_));
  auto filters = ShIn(net_->node(), "tc filter show dev " + net_->veth_a() + " ingress");
  ASSERT_TRUE(filters.ok());
  EXPECT_THAT(*filters, ::testing::HasSubstr("flowscope_ingre"));

  const absl::Time start = absl::Now();
  auto status = daemon().Signal(SIGTERM, absl::Seconds(5));
  ASSERT_TRUE(status.ok()) << status.status() << "\n" << Log();
  EXPECT_LT(absl::Now() - start, absl::Seconds(2)) << "stops promptly";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << Log();
  EXPECT_FALSE(std::filesystem::exists(socket_)) << "socket removed";
  auto after = ShIn(net_->node(), "tc filter show dev " + net_->veth_a() + " ingress");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, "") << "tc filters removed";
}

TEST_F(ObserverE2eTest, RefusesBadConfigurationWithAClearMessage) {
  std::ofstream(dir_ / "bad-policy.yaml") << "deny:\n  - to: 10.0.0.0/99\n";
  auto p = NetnsProcess::Start(
      net_->node(),
      {FLOWSCOPE_OBSERVER_BINARY, "--policy", (dir_ / "bad-policy.yaml").string(),
       "--listen-socket", socket_, "--state-dir", dir_.string()},
      (dir_ / "observer.log").string());
  ASSERT_TRUE(p.ok());
  auto status = (*p)->Signal(0, absl::Seconds(10));  // just wait for it to exit
  ASSERT_TRUE(status.ok()) << "it must exit by itself";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 1);
  EXPECT_THAT(Log(), ::testing::HasSubstr("prefix length must be 0..32"));
  EXPECT_FALSE(std::filesystem::exists(socket_));

  // TLS settings that cannot work are refused before anything is attached; so are config keys
  // the daemon does not know.
  std::ofstream(dir_ / "bad.conf") << "cluster-name = \"x\"\nbogus-key = 1\n";
  for (const auto& [args, message] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--tls-cert-file", "/nonexistent/server.crt", "--tls-key-file", "/nonexistent/k"},
            "give --listen-address too"},
           {{"--endpoints", (dir_ / "endpoints.yaml").string(), "--kubeconfig", "/x"},
            "--endpoints and --kubernetes/--kubeconfig are two sources"},
           {{"--kubeconfig", "/nonexistent/kubeconfig"}, "kubeconfig /nonexistent/kubeconfig: "},
           {{"--kubernetes"}, "not running in a Kubernetes pod"},
           {{"--config", (dir_ / "bad.conf").string()}, "bogus-key"},
           {{"--kernel-drops-ignore", "QUEUE_PURGE,NO_SUCH_REASON"},
            "invalid --kernel-drops-ignore \"NO_SUCH_REASON\""},
           {{"--listen-address", "127.0.0.1:0", "--tls-cert-file", "/nonexistent/server.crt",
             "--tls-key-file", "/nonexistent/server.key"},
            "cannot read TLS certificate /nonexistent/server.crt"}}) {
    std::vector<std::string> argv = {FLOWSCOPE_OBSERVER_BINARY, "--listen-socket", socket_,
                                     "--state-dir", dir_.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto bad = NetnsProcess::Start(net_->node(), argv, (dir_ / "observer.log").string());
    ASSERT_TRUE(bad.ok());
    auto exited = (*bad)->Signal(0, absl::Seconds(10));
    ASSERT_TRUE(exited.ok()) << "it must exit by itself";
    // 1, or CLI11's own code for a command line or config file it cannot parse.
    EXPECT_TRUE(WIFEXITED(*exited) && WEXITSTATUS(*exited) != 0) << message;
    EXPECT_THAT(Log(), ::testing::HasSubstr(message));
  }
}

}  // namespace
}  // namespace flowscope::observer

namespace flowscope::observer {
namespace {

// Counts how often `needle` occurs in the daemon's log.
size_t Occurrences(const std::string& log, const std::string& needle) {
  size_t n = 0;
  for (size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1)) ++n;
  return n;
}

// GET on the observer's HTTP server, from inside its node's namespace.
testing::HttpAnswer Get(const TestNetwork& net, const std::string& address, const std::string& path,
                        const std::string& accept = "") {
  testing::HttpAnswer out;
  testing::InNetns(net.node(),
                   [&] { out = testing::HttpGet(testing::PortOf(address), path, accept); });
  return out;
}

// The value of the sample that starts with `series` (its whole name and labels), or -1.
double Sample(const std::string& metrics, const std::string& series) {
  const size_t at = metrics.find("\n" + series + " ");
  if (at == std::string::npos) return -1;
  const size_t start = at + series.size() + 2;
  return std::stod(metrics.substr(start, metrics.find('\n', start) - start));
}

TEST_F(ObserverE2eTest, NamesComeFromTheKubernetesApiServerAndFollowItsChanges) {
  // The stand-in API server (proven against kubectl and python3-kubernetes) listens inside the
  // node's namespace, over TLS with a bearer token, as a cluster's would.
  testing::TestPki pki{.dir = dir_.string()};
  ASSERT_TRUE(pki.Make());
  std::unique_ptr<testing::KubeApiServer> api;
  testing::InNetns(net_->node(), [&] {
    auto s = testing::KubeApiServer::Start({.cert_file = pki.Path("server.crt"),
                                            .key_file = pki.Path("server.key"),
                                            .token = "t0ken"});
    ASSERT_TRUE(s.ok()) << s.status();
    api = std::move(s).value();
  });
  ASSERT_TRUE(api);
  api->Apply("namespaces", testing::KubeNamespace("default", {{"team", "empire"}}));
  api->Apply("nodes", testing::KubeNode("node-1", "192.168.50.1",
                                        {{"kubernetes.io/hostname", "node-1"},
                                         {"topology.kubernetes.io/zone", "zone-a"}}));
  api->Apply("pods", testing::KubeDeploymentPod("default", "tiefighter", "tiefighter-7c9b6-x2x",
                                                TestNetwork::kIpA));
  api->Apply("pods", testing::KubePod("default", "deathstar-0", TestNetwork::kIpB));
  std::ofstream(dir_ / "kubeconfig")
      << testing::KubeconfigFor(api->url(), pki.Path("ca.crt"), "t0ken");
  StartDaemon({"--kubeconfig", (dir_ / "kubeconfig").string()});
  const std::string http = observer_->HttpAddress();
  ASSERT_FALSE(http.empty()) << Log();
  // Ready once the lists are in.
  ASSERT_TRUE(testing::WaitUntil([&] { return Get(*net_, http, "/readyz").status == 200; }))
      << Get(*net_, http, "/readyz").body << Log();

  testing::TcpExchange(*net_, 8080);
  std::vector<flow::Flow> flows;
  ASSERT_TRUE(testing::WaitUntil([&] {
    flows = Flows("default/tiefighter-7c9b6-x2x");
    return !flows.empty();
  })) << Log();
  const flow::Flow& f = flows.front();
  EXPECT_EQ(f.source().namespace_(), "default");
  EXPECT_EQ(f.source().workloads(0).name(), "tiefighter");
  EXPECT_EQ(f.source().workloads(0).kind(), "Deployment");
  EXPECT_THAT(f.source().labels(),
              ::testing::Contains("k8s:io.cilium.k8s.namespace.labels.team=empire"));
  EXPECT_EQ(f.destination().pod_name(), "deathstar-0");

  // The deathstar pod is replaced; the next flows name the new one, the old flows keep theirs.
  api->Delete("pods", "default", "deathstar-0");
  api->Apply("pods", testing::KubePod("default", "deathstar-1", TestNetwork::kIpB));
  ASSERT_TRUE(testing::WaitUntil([&] {
    testing::TcpExchange(*net_, 8080);
    for (const flow::Flow& g : Flows("default/tiefighter-7c9b6-x2x")) {
      if (g.destination().pod_name() == "deathstar-1") return true;
    }
    return false;
  })) << Log();
  flows = Flows("default/tiefighter-7c9b6-x2x");
  EXPECT_EQ(flows.front().destination().pod_name(), "deathstar-0");

  // A Service in front of deathstar, translated on the node as kube-proxy does: flows to its
  // cluster IP name it as destination_service, and the replies from it as source_service.
  api->Apply("services", testing::KubeService("default", "deathstar", "10.96.0.10", 80));
  ASSERT_TRUE(ShIn(net_->node(),
                   absl::StrCat("nft add table ip fsnat && nft add chain ip fsnat pre '{ type nat "
                                "hook prerouting priority -100; }' && nft add rule ip fsnat pre ip "
                                "daddr 10.96.0.10 tcp dport 80 dnat to ",
                                TestNetwork::kIpB, ":8080"))
                  .ok());
  ::observer::GetFlowsRequest by_service;
  by_service.set_number(100);
  by_service.add_whitelist()->add_destination_service("default/deathstar");
  by_service.add_whitelist()->add_source_service("deathstar");  // the default namespace
  std::vector<flow::Flow> to_service;
  ASSERT_TRUE(testing::WaitUntil([&] {
    testing::TcpExchange(*net_, 8080, "10.96.0.10", 80);
    to_service = Query(by_service);
    return std::any_of(to_service.begin(), to_service.end(),
                       [](const flow::Flow& g) { return g.has_source_service(); });
  })) << Log();
  for (const flow::Flow& g : to_service) {
    const bool request = g.has_destination_service();
    const flow::Service& svc = request ? g.destination_service() : g.source_service();
    EXPECT_EQ(svc.namespace_(), "default");
    EXPECT_EQ(svc.name(), "deathstar");
    EXPECT_EQ(request ? g.ip().destination() : g.ip().source(), "10.96.0.10");
    EXPECT_EQ(request ? g.l4().tcp().destination_port() : g.l4().tcp().source_port(), 80u);
  }

  // The node's labels select its flows.
  ::observer::GetFlowsRequest zone;
  zone.set_number(5);
  zone.add_whitelist()->add_node_labels("topology.kubernetes.io/zone=zone-a");
  EXPECT_EQ(Query(zone).size(), 5u);
  zone.mutable_whitelist(0)->set_node_labels(0, "topology.kubernetes.io/zone=zone-b");
  EXPECT_TRUE(Query(zone).empty());

  const std::string metrics = Get(*net_, http, "/metrics").body;
  EXPECT_EQ(Sample(metrics, "flowscope_kubernetes_synced"), 1) << metrics;
  EXPECT_EQ(Sample(metrics, "flowscope_kubernetes_lists_total"), 4);
  EXPECT_TRUE(daemon().Running());
  observer_.reset();
  api.reset();
}

TEST_F(ObserverE2eTest, MetricsHealthAndReadinessOverHttpCountRealTraffic) {
  StartDaemon({"--metrics",
               "flow:sourceContext=pod;destinationContext=pod drop:sourceContext=namespace tcp "
               "port-distribution"});
  const std::string http = observer_->HttpAddress();
  ASSERT_FALSE(http.empty()) << Log();
  EXPECT_EQ(Get(*net_, http, "/healthz").status, 200);
  EXPECT_TRUE(testing::WaitUntil([&] { return Get(*net_, http, "/readyz").status == 200; }))
      << Get(*net_, http, "/readyz").body;

  testing::TcpExchange(*net_, 8080);
  EXPECT_FALSE(testing::TryConnect(*net_, 8081, absl::Milliseconds(1200))) << "denied";
  // The counts reach the same totals GetFlows shows for the same flows.
  std::string metrics;
  const std::string drops =
      "hubble_drop_total{source=\"default\",reason=\"POLICY_DENIED\",protocol=\"TCP\"}";
  ASSERT_TRUE(testing::WaitUntil([&] {
    metrics = Get(*net_, http, "/metrics").body;
    return Sample(metrics, drops) > 0;
  })) << metrics;
  const std::vector<flow::Flow> flows = Flows("default/tiefighter");
  double forwarded = 0, dropped = 0, drop_events = 0;
  for (const flow::Flow& f : flows) {
    (f.verdict() == flow::DROPPED ? dropped : forwarded) += 1;
    // The policy's drops, not the policy verdicts beside them nor the kernel's own drops.
    if (f.event_type().type() == 1 && f.drop_reason_desc() == flow::POLICY_DENIED) {
      drop_events += 1;
    }
  }
  // Every flow from tiefighter, forwarded or dropped, across observation points and protocols.
  double counted_forwarded = 0, counted_dropped = 0;
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (!absl::StartsWith(line, "hubble_flows_processed_total{") ||
        !absl::StrContains(line, "source=\"default/tiefighter\"")) {
      continue;
    }
    const double v = std::stod(std::string(line.substr(line.rfind(' ') + 1)));
    (absl::StrContains(line, "verdict=\"DROPPED\"") ? counted_dropped : counted_forwarded) += v;
  }
  EXPECT_EQ(counted_dropped, dropped) << metrics;
  EXPECT_EQ(counted_forwarded, forwarded) << metrics;
  EXPECT_EQ(Sample(metrics, drops), drop_events);
  EXPECT_GT(drop_events, 0);
  double counted_verdicts = 0;
  for (absl::string_view line : absl::StrSplit(metrics, '\n')) {
    if (absl::StartsWith(line, "hubble_flows_processed_total{") &&
        absl::StrContains(line, "source=\"default/tiefighter\"") &&
        absl::StrContains(line, "type=\"PolicyVerdict\",subtype=\"\",verdict=\"DROPPED\"")) {
      counted_verdicts += std::stod(std::string(line.substr(line.rfind(' ') + 1)));
    }
  }
  EXPECT_EQ(counted_verdicts, dropped - drop_events) << metrics;
  EXPECT_GT(Sample(metrics, "hubble_tcp_flags_total{flag=\"SYN\",family=\"IPv4\"}"), 0);
  EXPECT_GT(Sample(metrics, "hubble_port_distribution_total{protocol=\"TCP\",port=\"8080\"}"), 0);
  EXPECT_EQ(Sample(metrics, "flowscope_policy_rules"), 1);
  EXPECT_EQ(Sample(metrics, "flowscope_ready"), 1);
  EXPECT_EQ(Sample(metrics, "flowscope_ring_capacity"), 4095);
  // The history writer stores what the ring took (within a pass of ~50 ms).
  EXPECT_TRUE(testing::WaitUntil([&] {
    metrics = Get(*net_, http, "/metrics").body;
    return Sample(metrics, "flowscope_history_flows_written_total") ==
           Sample(metrics, "flowscope_ring_flows_written_total");
  })) << metrics;
  EXPECT_GT(Sample(metrics, "flowscope_history_bytes"), 0);
  EXPECT_EQ(Sample(metrics, "flowscope_history_writes_paused"), 0);
  EXPECT_EQ(Sample(metrics, "flowscope_history_flows_lost_total"), 0);
  // The flows just made are in the datapath's flow table; the policy's rule in the deny rules.
  EXPECT_GE(Sample(metrics, "flowscope_bpf_map_entries{map_name=\"flows\"}"), 2) << metrics;
  EXPECT_GT(Sample(metrics, "flowscope_bpf_map_pressure{map_name=\"flows\"}"), 0);
  EXPECT_LT(Sample(metrics, "flowscope_bpf_map_pressure{map_name=\"flows\"}"), 1);
  EXPECT_EQ(Sample(metrics, "flowscope_bpf_map_entries{map_name=\"deny_rules\"}"), 1);
  EXPECT_EQ(Sample(metrics, "hubble_lost_events_total{source=\"perf_event_ring_buffer\"}"), 0);

  // What Prometheus asks for, it gets: OpenMetrics.
  const testing::HttpAnswer om =
      Get(*net_, http, "/metrics", "application/openmetrics-text;version=1.0.0,text/plain;q=0.5");
  EXPECT_THAT(om.header,
              ::testing::HasSubstr("Content-Type: application/openmetrics-text; version=1.0.0"));
  EXPECT_THAT(om.body, ::testing::HasSubstr("# TYPE hubble_drop counter\n"));
  EXPECT_THAT(om.body, ::testing::EndsWith("# EOF\n"));
  EXPECT_EQ(Get(*net_, http, "/nope").status, 404);
  EXPECT_TRUE(daemon().Running());
}

// Passive DNS over real packets between two pods: a lookup answered with two addresses, one
// answered NXDOMAIN, and an answer too malformed to read (skipped, counted), as Hubble's L7 DNS
// flows — each message once, on the client's side, the answer with its latency — counted by
// Hubble's dns metrics.
TEST_F(ObserverE2eTest, DnsLookupsBetweenPodsAreHubblesL7DnsFlows) {
  StartDaemon({"--metrics", "flow dns:destinationContext=pod-name"});
  const std::string http = observer_->HttpAddress();
  auto bytes = [](const testing::DnsWire& w) { return std::string(w.b.begin(), w.b.end()); };
  testing::DnsWire q1, a1, q2, a2, q3, a3;
  q1.Header(0x0100, 1, 0, 0x1111).Name("deathstar.default.svc.cluster.local").Question(1);
  a1.Header(0x8180, 1, 2, 0x1111).Name("deathstar.default.svc.cluster.local").Question(1);
  a1.Answer(1, 30, {10, 96, 0, 20}).Answer(1, 20, {10, 96, 0, 21});
  q2.Header(0x0100, 1, 0, 0x2222).Name("unknown-galaxy.default.svc.cluster.local").Question(28);
  a2.Header(0x8183, 1, 0, 0x2222).Name("unknown-galaxy.default.svc.cluster.local").Question(28);
  q3.Header(0x0100, 1, 0, 0x3333).Name("loop.example").Question(1);
  a3.Header(0x8180, 1, 0, 0x3333).Pointer(12).Question(1);  // a name pointing at itself
  const uint16_t p1 = testing::UdpExchange(*net_, 53, bytes(q1), bytes(a1));
  const uint16_t p2 = testing::UdpExchange(*net_, 53, bytes(q2), bytes(a2));
  const uint16_t p3 = testing::UdpExchange(*net_, 53, bytes(q3), bytes(a3));

  ::observer::GetFlowsRequest req;
  req.set_number(100);
  req.add_whitelist()->add_protocol("dns");
  std::vector<flow::Flow> flows;
  ASSERT_TRUE(testing::WaitUntil([&] {
    flows = Query(req);
    return flows.size() >= 5;
  })) << flows.size();
  std::map<std::pair<uint32_t, bool>, flow::Flow> by;  // (client port, response)
  for (const flow::Flow& f : flows) {
    const bool response = f.l7().type() == flow::RESPONSE;
    const uint32_t client = response ? f.l4().udp().destination_port() : f.l4().udp().source_port();
    EXPECT_TRUE(by.emplace(std::pair{client, response}, f).second)
        << "reported twice: " << f.ShortDebugString();
    EXPECT_EQ(f.type(), flow::L7);
    EXPECT_EQ(f.event_type().type(), 129);
    EXPECT_EQ(f.verdict(), flow::FORWARDED);
    EXPECT_EQ(f.traffic_direction(), flow::EGRESS);
    EXPECT_EQ(f.node_name(), "node-1");
    EXPECT_EQ(f.l7().dns().observation_source(), "proxy");
    EXPECT_EQ((response ? f.destination() : f.source()).pod_name(), "tiefighter");
    EXPECT_EQ((response ? f.source() : f.destination()).pod_name(), "deathstar-6fb5694d48-5hmds");
  }
  ASSERT_EQ(flows.size(), 5u) << "three queries, two readable answers";
  auto at = [&](uint16_t client, bool response) -> const flow::Flow& {
    return by[std::pair<uint32_t, bool>(client, response)];
  };
  const flow::Flow& r1 = at(p1, true);
  EXPECT_EQ(at(p1, false).summary(), "DNS Query deathstar.default.svc.cluster.local. A");
  EXPECT_EQ(r1.l7().dns().query(), "deathstar.default.svc.cluster.local.");
  EXPECT_THAT(r1.l7().dns().ips(), ::testing::ElementsAre("10.96.0.20", "10.96.0.21"));
  EXPECT_THAT(r1.l7().dns().rrtypes(), ::testing::ElementsAre("A", "A"));
  EXPECT_EQ(r1.l7().dns().ttl(), 20u) << "the smallest";
  EXPECT_EQ(r1.l7().dns().rcode(), 0u);
  EXPECT_GT(r1.l7().latency_ns(), 0u);
  EXPECT_LT(r1.l7().latency_ns(), 5'000'000'000u);
  EXPECT_TRUE(r1.is_reply().value());
  const flow::Flow& r2 = at(p2, true);
  EXPECT_EQ(r2.l7().dns().rcode(), 3u);
  EXPECT_THAT(r2.l7().dns().qtypes(), ::testing::ElementsAre("AAAA"));
  EXPECT_EQ(r2.summary(),
            "DNS Answer RCode: Non-Existent Domain TTL: 4294967295 (Proxy "
            "unknown-galaxy.default.svc.cluster.local. AAAA)");
  EXPECT_EQ(by.count(std::pair<uint32_t, bool>(p3, true)), 0u) << "the malformed answer";
  EXPECT_EQ(at(p3, false).l7().dns().query(), "loop.example.");
  std::string metrics;
  ASSERT_TRUE(testing::WaitUntil([&] {
    metrics = Get(*net_, http, "/metrics").body;
    return Sample(metrics,
                  "hubble_flows_processed_total{protocol=\"DNS\",type=\"L7\","
                  "subtype=\"DNS\",verdict=\"FORWARDED\"}") == 5;
  })) << metrics;
  EXPECT_EQ(Sample(metrics, "flowscope_dns_malformed_total"), 1) << metrics;
  EXPECT_EQ(Sample(metrics, "flowscope_dns_messages_total"), 6) << metrics;
  const std::string server = "destination=\"deathstar-6fb5694d48-5hmds\"";
  const std::string client = "destination=\"tiefighter\"";
  EXPECT_EQ(Sample(metrics, "hubble_dns_queries_total{" + server +
                                ",rcode=\"\",qtypes=\"A\",ips_returned=\"0\"}"),
            2)
      << metrics;
  EXPECT_EQ(Sample(metrics, "hubble_dns_queries_total{" + server +
                                ",rcode=\"\",qtypes=\"AAAA\",ips_returned=\"0\"}"),
            1);
  EXPECT_EQ(Sample(metrics, "hubble_dns_responses_total{" + client +
                                ",rcode=\"No Error\",qtypes=\"A\",ips_returned=\"2\"}"),
            1);
  EXPECT_EQ(
      Sample(metrics, "hubble_dns_responses_total{" + client +
                          ",rcode=\"Non-Existent Domain\",qtypes=\"AAAA\",ips_returned=\"0\"}"),
      1);
  EXPECT_EQ(
      Sample(metrics, "hubble_dns_response_types_total{" + client + ",type=\"A\",qtypes=\"A\"}"),
      2);

  // An answer's addresses name its client's flows to them (Hubble's destination_names, and
  // source_names on the replies): a lookup answered with pod b's address, then a connection.
  testing::DnsWire q4, a4;
  q4.Header(0x0100, 1, 0, 0x4444).Name("deathstar.default.svc.cluster.local").Question(1);
  a4.Header(0x8180, 1, 1, 0x4444).Name("deathstar.default.svc.cluster.local").Question(1);
  a4.Answer(1, 30, {10, 200, 2, 2});
  ASSERT_EQ(std::string(TestNetwork::kIpB), "10.200.2.2");
  testing::UdpExchange(*net_, 53, bytes(q4), bytes(a4));
  const uint16_t tcp_client = testing::TcpExchange(*net_, 8080);
  ::observer::GetFlowsRequest named;
  named.set_number(100);
  flow::FlowFilter* to = named.add_whitelist();
  to->add_destination_fqdn("*.svc.cluster.local");
  to->add_protocol("tcp");
  flow::FlowFilter* from = named.add_whitelist();
  from->add_source_fqdn("deathstar.default.svc.cluster.local.");
  from->add_protocol("tcp");
  ASSERT_TRUE(testing::WaitUntil([&] {
    flows = Query(named);
    return std::any_of(flows.begin(), flows.end(), [&](const flow::Flow& f) {
      return f.l4().tcp().flags().fin() && f.l4().tcp().destination_port() == tcp_client;
    });
  })) << flows.size();
  for (const flow::Flow& f : flows) {
    const bool reply = f.l4().tcp().source_port() == 8080;
    EXPECT_EQ(f.l4().tcp().destination_port(), reply ? tcp_client : 8080) << f.ShortDebugString();
    EXPECT_THAT(reply ? f.source_names() : f.destination_names(),
                ::testing::ElementsAre("deathstar.default.svc.cluster.local"));
    EXPECT_THAT(reply ? f.destination_names() : f.source_names(), ::testing::IsEmpty());
  }
  // The flows before the lookup keep having no names.
  ::observer::GetFlowsRequest earlier;
  earlier.set_number(1000);
  earlier.add_whitelist()->add_destination_fqdn("*");
  for (const flow::Flow& f : Query(earlier)) {
    EXPECT_GE(f.time().seconds(), flows.front().time().seconds() - 5) << f.ShortDebugString();
  }
}

TEST_F(ObserverE2eTest, ExportsTheFlowsItsAllowListLetsThroughToAFile) {
  const std::string file = (dir_ / "export" / "events.log").string();
  StartDaemon({"--export-file-path", file, "--export-allowlist", R"({"verdict":["DROPPED"]})",
               "--export-fieldmask", "time,source.pod_name,destination.pod_name,verdict,l4"});
  testing::TcpExchange(*net_, 8080);  // forwarded: not exported
  EXPECT_FALSE(testing::TryConnect(*net_, 8081, absl::Milliseconds(1200))) << "denied";
  std::string text;
  ASSERT_TRUE(testing::WaitUntil([&] {
    std::ifstream in(file);
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return text.find("DROPPED") != std::string::npos;
  })) << Log();
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    EXPECT_TRUE(absl::StartsWith(line, "{\"flow\":{\"time\":")) << line;
    EXPECT_THAT(std::string(line), ::testing::HasSubstr("\"verdict\":\"DROPPED\"")) << line;
    EXPECT_THAT(std::string(line), ::testing::HasSubstr("\"pod_name\":\"tiefighter\"")) << line;
    EXPECT_THAT(std::string(line), ::testing::Not(::testing::HasSubstr("\"labels\""))) << line;
    EXPECT_THAT(std::string(line), ::testing::HasSubstr("\"node_name\":\"node-1\"")) << line;
  }
  const std::string metrics = Get(*net_, observer_->HttpAddress(), "/metrics").body;
  EXPECT_GT(Sample(metrics, "flowscope_exporter_flows_total{name=\"static\"}"), 0) << metrics;
  EXPECT_EQ(Sample(metrics, "flowscope_exporter_write_errors_total{name=\"static\"}"), 0);
}

TEST_F(ObserverE2eTest, BadMetricsAndHttpFlagsAreStartUpErrors) {
  for (const auto& [flags, says] : std::vector<std::pair<std::vector<std::string>, std::string>>{
           {{"--metrics", "flow:sourceContext=nope"}, "unknown context \"nope\""},
           {{"--metrics", "httpV2"}, "not available"},
           {{"--http-address", "127.0.0.1:99999"}, "http address"},
           {{"--http-tls"}, "--http-tls"},
           {{"--export-file-path", "/tmp/x.log", "--export-allowlist", "{\"verdict\":"},
            "--export-allowlist: filter list: filter 1 is not closed"},
           {{"--export-file-path", "/tmp", "--export-fieldmask", "verdict"}, "is a directory"},
       }) {
    std::vector<std::string> argv = {FLOWSCOPE_OBSERVER_BINARY,
                                     "--listen-socket",
                                     socket_,
                                     "--state-dir",
                                     dir_.string(),
                                     "--interfaces",
                                     net_->prefix() + "*"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    auto p = NetnsProcess::Start(net_->node(), argv, (dir_ / "bad.log").string());
    ASSERT_TRUE(p.ok());
    auto exit = (*p)->Signal(0, absl::Seconds(20));
    ASSERT_TRUE(exit.ok()) << flags[0] << " did not end";
    EXPECT_NE(*exit, 0);
    std::ifstream in(dir_ / "bad.log");
    const std::string log((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_THAT(log, ::testing::HasSubstr(says)) << flags[0];
  }
}

TEST_F(ObserverE2eTest, APolicyThatCannotBeReadKeepsTheLastGoodOneInForce) {
  StartDaemon();
  ASSERT_FALSE(testing::TryConnect(*net_, 8081, absl::Milliseconds(1200))) << "denied at start";
  const std::filesystem::path policy = dir_ / "policy.yaml";
  const std::string refused = "the last good policy (1 rules) stays in force";
  auto wait_refusals = [&](size_t n) {
    return testing::WaitUntil([&] { return Occurrences(Log(), refused) >= n; });
  };
  // Each way of breaking the file while the observer runs: the deny rule stays in the datapath.
  struct Breakage {
    const char* name;
    std::function<void()> apply;
    const char* cause;
  };
  const std::vector<Breakage> breakages = {
      {"deleted", [&] { std::filesystem::remove(policy); }, "No such file or directory"},
      {"emptied", [&] { std::ofstream(policy) << ""; }, "write `deny: []`"},
      {"a directory",
       [&] {
         std::filesystem::remove(policy);
         std::filesystem::create_directory(policy);
       },
       "is a directory"},
      {"a symlink loop",
       [&] {
         std::filesystem::remove_all(policy);
         std::filesystem::create_symlink(dir_ / "loop-b", dir_ / "loop-a");
         std::filesystem::create_symlink(dir_ / "loop-a", dir_ / "loop-b");
         std::filesystem::create_symlink(dir_ / "loop-a", policy);
       },
       "Too many levels of symbolic links"},
  };
  size_t n = 0;
  for (const Breakage& b : breakages) {
    SCOPED_TRACE(b.name);
    b.apply();
    ASSERT_TRUE(wait_refusals(++n)) << Log();
    EXPECT_THAT(Log(), ::testing::HasSubstr(b.cause));
    EXPECT_FALSE(testing::TryConnect(*net_, 8081, absl::Milliseconds(1200)))
        << "a policy file that is " << b.name << " must not open the datapath";
    EXPECT_TRUE(daemon().Running());
  }
  // Only a valid file with no rules removes them.
  std::filesystem::remove(policy);
  std::ofstream(policy) << "deny: []\n";
  testing::WaitUntil([&] { return Occurrences(Log(), "policy: 0 rules") > 0; });
  EXPECT_TRUE(testing::TryConnect(*net_, 8081, absl::Seconds(2))) << Log();
}

TEST_F(ObserverE2eTest, FlagsComeFromAConfigFileToo) {
  std::ofstream(dir_ / "observer.toml") << "node-name = \"from-config\"\n"
                                        << "ring-capacity = 1023\n"
                                        << "interfaces = \"" << net_->prefix() << "*\"\n"
                                        << "listen-socket = \"" << socket_ << "\"\n"
                                        << "state-dir = \"" << dir_.string() << "\"\n";
  auto p = NetnsProcess::Start(
      net_->node(), {FLOWSCOPE_OBSERVER_BINARY, "--config", (dir_ / "observer.toml").string()},
      (dir_ / "observer.log").string());
  ASSERT_TRUE(p.ok());
  daemon_ = std::move(p).value();
  ::observer::GetNodesResponse nodes;
  testing::WaitUntil(
      [&] {
        if (!daemon_->Running() || !std::filesystem::exists(socket_)) return !daemon_->Running();
        auto stub = ::observer::Observer::NewStub(
            grpc::CreateChannel("unix://" + socket_, grpc::InsecureChannelCredentials()));
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(500));
        return stub->GetNodes(&ctx, {}, &nodes).ok();
      },
      absl::Seconds(20));
  ASSERT_TRUE(daemon_->Running()) << Log();
  ASSERT_EQ(nodes.nodes_size(), 1) << Log();
  EXPECT_EQ(nodes.nodes(0).name(), "from-config");
  EXPECT_EQ(nodes.nodes(0).max_flows(), 1023u);
}

}  // namespace
}  // namespace flowscope::observer
