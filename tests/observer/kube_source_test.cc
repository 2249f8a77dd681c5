// The Kubernetes endpoint source against the test API server (tests/testing/kube_apiserver.h,
// proven against kubectl and python3-kubernetes): 10,000 pods listed in pages, changes followed,
// bookmarks, 410 → relist without stale entries, a cut connection resumed, a rotated token file,
// a server that is down at start, malformed objects and events, an address reused by another pod;
// and the client's configuration (kubeconfig, in-cluster) and the objects' parsing.
#include "observer/kube_source.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "bpf/flow_event.h"
#include "tests/testing/kube_apiserver.h"
#include "tests/testing/kube_fixtures.h"
#include "tests/testing/shell.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/wait.h"

namespace flowscope::observer {
namespace {

using nlohmann::json;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

class KubeSourceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        (std::filesystem::temp_directory_path() / ("fs-ksrc-" + std::to_string(getpid()))).string();
    std::filesystem::create_directories(dir_);
    pki_.dir = dir_;
    ASSERT_TRUE(pki_.Make());
    std::ofstream(dir_ + "/token") << "t0ken\n";
  }
  void TearDown() override {
    if (source_) source_->Stop();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartServer(int port = 0) {
    auto s = testing::KubeApiServer::Start({.port = port,
                                            .cert_file = pki_.Path("server.crt"),
                                            .key_file = pki_.Path("server.key"),
                                            .token = "t0ken"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::move(s).value();
  }

  void StartSource(int port, KubeSourceOptions options = {}) {
    KubeConfig config{.server = absl::StrCat("https://127.0.0.1:", port),
                      .ca_file = pki_.Path("ca.crt"),
                      .token_file = dir_ + "/token"};
    auto client = KubeClient::Create(config);
    ASSERT_TRUE(client.ok()) << client.status();
    options.node_name = "node-1";
    options.min_backoff = absl::Milliseconds(20);
    options.max_backoff = absl::Milliseconds(300);
    options.publish_delay = absl::Milliseconds(5);
    source_ = std::make_unique<KubernetesEndpointSource>(*std::move(client), table_, options);
    ASSERT_TRUE(source_->Start().ok());
  }

  std::shared_ptr<const Endpoint> EndpointOf(const std::string& ip) const {
    uint32_t addr[4] = {};
    inet_pton(AF_INET, ip.c_str(), addr);
    EndpointTable::Resolver r(table_);
    return table_.Get(r.Lookup(FS_FAMILY_IPV4, addr));
  }
  // "namespace/pod" for a pod's address, "remote-node:<node>" for another node, "world".
  std::string NameOf(const std::string& ip) const {
    auto e = EndpointOf(ip);
    if (e->identity == kIdentityRemoteNode) return "remote-node:" + e->node_name;
    if (e->pod_name.empty()) return "world";
    return absl::StrCat(e->namespace_name, "/", e->pod_name);
  }
  bool Named(const std::string& ip, const std::string& name) const {
    return testing::WaitUntil([&] { return NameOf(ip) == name; });
  }

  std::string dir_;
  testing::TestPki pki_;
  std::unique_ptr<testing::KubeApiServer> server_;
  EndpointTable table_{"default"};
  std::unique_ptr<KubernetesEndpointSource> source_;
};

std::string PodIp(int i) { return absl::StrCat("10.1.", i / 250, ".", i % 250 + 1); }

TEST_F(KubeSourceTest, ListsTenThousandPodsInPagesThenFollowsChanges) {
  StartServer();
  std::vector<json> pods;
  for (int i = 0; i < 10000; ++i) {
    pods.push_back(testing::KubeDeploymentPod("default", absl::StrCat("web-", i % 40),
                                              absl::StrCat("web-", i), PodIp(i)));
  }
  server_->ApplyAll("pods", pods);
  server_->Apply("namespaces", testing::KubeNamespace("default", {{"team", "empire"}}));
  server_->Apply("nodes", testing::KubeNode("node-1", "192.168.50.1"));
  server_->Apply("nodes", testing::KubeNode("node-2", "192.168.50.2"));
  server_->Apply("services", testing::KubeService("default", "web", "10.96.0.10", 80));
  StartSource(server_->port(), {.page_size = 500});
  // Generous: under the sanitizers, JSON for 10,000 pods takes a while on both sides.
  ASSERT_TRUE(testing::WaitUntil([&] { return source_->NotSynced().empty(); }, absl::Seconds(180)))
      << source_->NotSynced() << " " << source_->stats().last_error;
  const auto st = source_->stats();
  EXPECT_EQ(st.lists, 4u);
  EXPECT_GE(st.pages, 20u + 3u);  // 10,000 pods in pages of 500, one page for each other list
  EXPECT_EQ(st.malformed, 0u);
  // Every pod, with its workload, node, namespace labels and Cilium's extra labels.
  for (int i = 0; i < 10000; i += 997) {
    EXPECT_EQ(NameOf(PodIp(i)), absl::StrCat("default/web-", i));
  }
  auto web7 = EndpointOf(PodIp(7));
  EXPECT_EQ(web7->workload_name, "web-7");
  EXPECT_EQ(web7->workload_kind, "Deployment");
  EXPECT_EQ(web7->node_name, "node-1");
  EXPECT_THAT(web7->labels, ::testing::IsSupersetOf(
                                {"k8s:app=web-7", "k8s:io.cilium.k8s.namespace.labels.team=empire",
                                 "k8s:io.cilium.k8s.policy.serviceaccount=default",
                                 "k8s:io.cilium.k8s.policy.cluster=default",
                                 "k8s:io.kubernetes.pod.namespace=default"}));
  // The other node is the remote-node identity; this node's address is not.
  EXPECT_EQ(NameOf("192.168.50.2"), "remote-node:node-2");
  EXPECT_EQ(NameOf("192.168.50.1"), "world");
  ASSERT_EQ(source_->Services().size(), 1u);
  EXPECT_EQ(source_->Services()[0].cluster_ips, std::vector<std::string>{"10.96.0.10"});
  // The service's frontend (cluster IP and port) resolves to it; another port does not.
  {
    uint32_t addr[4] = {};
    inet_pton(AF_INET, "10.96.0.10", addr);
    EndpointTable::Resolver r(table_);
    ASSERT_TRUE(r.HasServices());
    auto svc = table_.GetService(r.LookupService(FS_FAMILY_IPV4, addr, 80));
    ASSERT_NE(svc, nullptr);
    EXPECT_EQ(svc->namespace_name + "/" + svc->name, "default/web");
    EXPECT_EQ(r.LookupService(FS_FAMILY_IPV4, addr, 81), 0u);
  }

  // Added, relabelled, deleted.
  server_->Apply("pods", testing::KubePod("default", "tiefighter", "10.2.0.1"));
  EXPECT_TRUE(Named("10.2.0.1", "default/tiefighter"));
  const uint32_t identity = EndpointOf("10.2.0.1")->identity;
  server_->Apply("pods", testing::KubePod("default", "tiefighter", "10.2.0.1", "node-1",
                                          {{"app", "tiefighter"}, {"class", "fighter"}}));
  EXPECT_TRUE(testing::WaitUntil([&] {
    const auto& l = EndpointOf("10.2.0.1")->labels;
    return std::find(l.begin(), l.end(), "k8s:class=fighter") != l.end();
  }));
  EXPECT_NE(EndpointOf("10.2.0.1")->identity, identity);
  server_->Delete("pods", "default", "web-3");
  EXPECT_TRUE(Named(PodIp(3), "world"));
  // Namespace labels follow too.
  server_->Apply("namespaces", testing::KubeNamespace("default", {{"team", "rebels"}}));
  EXPECT_TRUE(testing::WaitUntil([&] {
    const auto& l = EndpointOf(PodIp(8))->labels;
    return std::find(l.begin(), l.end(), "k8s:io.cilium.k8s.namespace.labels.team=rebels") !=
           l.end();
  }));
  EXPECT_EQ(source_->stats().relists, 0u);
}

TEST_F(KubeSourceTest, BookmarksLetAWatchResumeAfterCompaction) {
  StartServer();
  server_->Apply("pods", testing::KubePod("default", "xwing", "10.2.0.5"));
  StartSource(server_->port());
  ASSERT_TRUE(Named("10.2.0.5", "default/xwing"));
  ASSERT_TRUE(testing::WaitUntil([&] { return server_->counters().active_watches == 4; }));
  // Other resources move on; the pods watch hears of it through a bookmark only.
  for (int i = 0; i < 5; ++i) {
    server_->Apply("services", testing::KubeService("default", absl::StrCat("s", i),
                                                    absl::StrCat("10.96.0.", i + 1), 80));
  }
  server_->SendBookmarks();
  ASSERT_TRUE(testing::WaitUntil([&] { return source_->stats().bookmarks >= 4; }));
  const uint64_t lists = source_->stats().lists;
  server_->Compact();
  server_->CutWatches();
  server_->Apply("pods", testing::KubePod("default", "ywing", "10.2.0.6"));
  EXPECT_TRUE(Named("10.2.0.6", "default/ywing"));
  // Resumed from the bookmark's version: no 410, no new list.
  EXPECT_EQ(source_->stats().relists, 0u);
  EXPECT_EQ(source_->stats().lists, lists);
}

TEST_F(KubeSourceTest, A410RelistsAndLeavesNothingStale) {
  StartServer();
  server_->Apply("pods", testing::KubePod("default", "xwing", "10.2.0.5"));
  server_->Apply("pods", testing::KubePod("default", "ywing", "10.2.0.6"));
  StartSource(server_->port());
  ASSERT_TRUE(Named("10.2.0.6", "default/ywing"));
  ASSERT_TRUE(testing::WaitUntil([&] { return server_->counters().active_watches == 4; }));
  // While the source is disconnected, ywing goes, a pod comes, and the history is compacted:
  // the watch cannot resume, so the source must list again.
  server_->HoldWatches(true);
  server_->CutWatches();
  server_->Delete("pods", "default", "ywing");
  server_->Apply("pods", testing::KubePod("default", "awing", "10.2.0.7"));
  server_->Compact();
  server_->HoldWatches(false);
  EXPECT_TRUE(Named("10.2.0.7", "default/awing"));
  EXPECT_TRUE(Named("10.2.0.6", "world"));  // nothing stale
  EXPECT_EQ(NameOf("10.2.0.5"), "default/xwing");
  EXPECT_GE(source_->stats().relists, 1u);
}

TEST_F(KubeSourceTest, ACutConnectionResumesWithoutAList) {
  StartServer();
  server_->Apply("pods", testing::KubePod("default", "xwing", "10.2.0.5"));
  StartSource(server_->port());
  ASSERT_TRUE(Named("10.2.0.5", "default/xwing"));
  ASSERT_TRUE(testing::WaitUntil([&] { return server_->counters().active_watches == 4; }));
  const uint64_t lists = source_->stats().lists;
  for (int round = 0; round < 3; ++round) {
    server_->CutWatches();
    server_->Apply("pods", testing::KubePod("default", absl::StrCat("pod-", round),
                                            absl::StrCat("10.2.1.", round + 1)));
    EXPECT_TRUE(Named(absl::StrCat("10.2.1.", round + 1), absl::StrCat("default/pod-", round)));
  }
  EXPECT_EQ(source_->stats().lists, lists);
  EXPECT_EQ(source_->stats().relists, 0u);
  EXPECT_GE(source_->stats().errors, 1u);  // the broken watches, counted
}

TEST_F(KubeSourceTest, ARotatedTokenFileIsReadOnTheNextRequest) {
  StartServer();
  server_->Apply("pods", testing::KubePod("default", "xwing", "10.2.0.5"));
  StartSource(server_->port());
  ASSERT_TRUE(Named("10.2.0.5", "default/xwing"));
  // The server now wants a new token; the kubelet writes it into the file a little later.
  server_->SetToken("rotated");
  server_->CutWatches();
  ASSERT_TRUE(testing::WaitUntil([&] { return server_->counters().unauthorized > 0; }));
  // Refused, and said so (the cut watches' own errors may come first).
  EXPECT_TRUE(testing::WaitUntil([&] {
    return absl::StrContains(source_->stats().last_error, "401: Unauthorized");
  })) << source_->stats().last_error;
  std::ofstream(dir_ + "/token.new") << "rotated\n";
  std::filesystem::rename(dir_ + "/token.new", dir_ + "/token");  // as the kubelet swaps it
  server_->Apply("pods", testing::KubePod("default", "ywing", "10.2.0.6"));
  EXPECT_TRUE(Named("10.2.0.6", "default/ywing"));
}

TEST_F(KubeSourceTest, AServerDownAtStartIsWaitedForAndNamesThenAppear) {
  const int port = testing::FreeTcpPort();
  StartSource(port);
  ASSERT_TRUE(testing::WaitUntil([&] { return source_->stats().errors >= 2; }));
  EXPECT_THAT(source_->NotSynced(), HasSubstr("has not listed"));
  EXPECT_THAT(source_->stats().last_error, HasSubstr("connecting to the Kubernetes API server"));
  EXPECT_EQ(NameOf("10.2.0.5"), "world");
  StartServer(port);
  server_->Apply("pods", testing::KubePod("default", "xwing", "10.2.0.5"));
  EXPECT_TRUE(Named("10.2.0.5", "default/xwing"));
  EXPECT_TRUE(testing::WaitUntil([&] { return source_->NotSynced().empty(); }));
}

TEST_F(KubeSourceTest, MalformedObjectsAndEventsAreSkippedAndCounted) {
  StartServer();
  server_->Apply("pods", testing::KubePod("default", "xwing", "10.2.0.5"));
  server_->PutRawObject("pods", "default/broken", R"({"metadata": {"name": 7}})");
  json bad_labels = testing::KubePod("default", "badlabels", "10.2.0.9");
  bad_labels["metadata"]["labels"] = {{"app", 5}};
  server_->Apply("pods", bad_labels);
  StartSource(server_->port());
  ASSERT_TRUE(Named("10.2.0.5", "default/xwing"));
  EXPECT_EQ(NameOf("10.2.0.9"), "world");
  EXPECT_EQ(source_->stats().malformed, 2u);
  ASSERT_TRUE(testing::WaitUntil([&] { return server_->counters().active_watches == 4; }));
  server_->SendRawEvent("pods", "this is not JSON");
  server_->SendRawEvent("pods", R"({"type": "ADDED", "object": []})");
  server_->SendRawEvent("pods", R"({"type": "EXPLODED", "object": {}})");
  json bad_ip = testing::KubePod("default", "badip", "10.2.0.300");
  server_->Apply("pods", bad_ip);
  server_->Apply("pods", testing::KubePod("default", "ywing", "10.2.0.6"));
  EXPECT_TRUE(Named("10.2.0.6", "default/ywing"));  // and the stream goes on
  EXPECT_TRUE(testing::WaitUntil([&] { return source_->stats().malformed >= 6u; }))
      << source_->stats().malformed;
  EXPECT_EQ(source_->stats().relists, 0u);
}

TEST_F(KubeSourceTest, AnAddressReusedByAnotherPodNamesTheLivePod) {
  StartServer();
  json old_pod = testing::KubePod("default", "old", "10.2.0.5");
  old_pod["metadata"]["creationTimestamp"] = "2026-01-01T00:00:00Z";
  server_->Apply("pods", old_pod);
  StartSource(server_->port());
  ASSERT_TRUE(Named("10.2.0.5", "default/old"));
  // The old pod is being deleted; a new one already has its address.
  old_pod["metadata"]["deletionTimestamp"] = "2026-01-02T00:00:00Z";
  server_->Apply("pods", old_pod);
  json new_pod = testing::KubePod("default", "new", "10.2.0.5");
  new_pod["metadata"]["creationTimestamp"] = "2025-12-31T00:00:00Z";  // clocks differ; still wins
  server_->Apply("pods", new_pod);
  EXPECT_TRUE(Named("10.2.0.5", "default/new"));
  // A finished pod holds no address, however new.
  json done = testing::KubePod("default", "job-1", "10.2.0.5");
  done["metadata"]["creationTimestamp"] = "2026-06-01T00:00:00Z";
  done["status"]["phase"] = "Succeeded";
  server_->Apply("pods", done);
  server_->Delete("pods", "default", "old");
  server_->Apply("pods", testing::KubePod("default", "marker", "10.2.0.8"));
  ASSERT_TRUE(Named("10.2.0.8", "default/marker"));
  EXPECT_EQ(NameOf("10.2.0.5"), "default/new");
  // Host-network pods hold none either.
  json host = testing::KubePod("kube-system", "kube-proxy", "10.2.0.9");
  host["spec"]["hostNetwork"] = true;
  server_->Apply("pods", host);
  server_->Apply("pods", testing::KubePod("default", "marker2", "10.2.0.10"));
  ASSERT_TRUE(Named("10.2.0.10", "default/marker2"));
  EXPECT_EQ(NameOf("10.2.0.9"), "world");
}

// --- configuration and objects ------------------------------------------------------------------

TEST(KubeConfigTest, KubeconfigFilesAndTheirErrors) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("fs-kcfg-" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/config") << R"(apiVersion: v1
kind: Config
current-context: b
clusters:
- name: one
  cluster: {server: "https://10.0.0.1:6443", certificate-authority: certs/ca.crt}
- name: two
  cluster: {server: "https://api.example:443", certificate-authority-data: )"
                                 << absl::Base64Escape("PEM") << R"(, tls-server-name: kube}
users:
- name: u1
  user: {tokenFile: tok}
- name: u2
  user: {client-certificate: /abs/c.crt, client-key: k.key}
- name: u3
  user: {exec: {command: aws}}
contexts:
- {name: a, context: {cluster: one, user: u1}}
- {name: b, context: {cluster: two, user: u2}}
- {name: c, context: {cluster: two, user: u3}}
- {name: d, context: {cluster: nope, user: u1}}
)";
  auto b = LoadKubeconfig(dir + "/config");
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->server, "https://api.example:443");
  EXPECT_EQ(b->ca_pem, "PEM");
  EXPECT_EQ(b->tls_server_name, "kube");
  EXPECT_EQ(b->client_cert_file, "/abs/c.crt");
  EXPECT_EQ(b->client_key_file, dir + "/k.key");
  auto a = LoadKubeconfig(dir + "/config", "a");
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->ca_file, dir + "/certs/ca.crt");
  EXPECT_EQ(a->token_file, dir + "/tok");
  EXPECT_THAT(std::string(LoadKubeconfig(dir + "/config", "c").status().message()),
              HasSubstr("exec or auth-provider plugin"));
  EXPECT_THAT(std::string(LoadKubeconfig(dir + "/config", "d").status().message()),
              HasSubstr("no clusters entry named \"nope\""));
  EXPECT_THAT(std::string(LoadKubeconfig(dir + "/config", "zz").status().message()),
              HasSubstr("no contexts entry named \"zz\""));
  EXPECT_THAT(std::string(LoadKubeconfig(dir + "/missing").status().message()),
              HasSubstr("kubeconfig " + dir + "/missing"));
  std::ofstream(dir + "/bad") << "clusters: [\n";
  EXPECT_THAT(std::string(LoadKubeconfig(dir + "/bad").status().message()),
              HasSubstr("kubeconfig " + dir + "/bad"));
  // The client refuses what it cannot use, naming it.
  EXPECT_THAT(std::string(KubeClient::Create({.server = "ftp://x"}).status().message()),
              HasSubstr("not an https:// URL"));
  EXPECT_THAT(std::string(KubeClient::Create({.server = "https://x:99999"}).status().message()),
              HasSubstr("bad host or port"));
  EXPECT_THAT(
      std::string(
          KubeClient::Create({.server = "https://x", .ca_file = dir + "/nope"}).status().message()),
      HasSubstr("CA file " + dir + "/nope"));
  std::filesystem::remove_all(dir);
}

TEST(KubeConfigTest, InClusterConfigReadsTheServiceAccount) {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("fs-kic-" + std::to_string(getpid()))).string();
  std::filesystem::create_directories(dir);
  unsetenv("KUBERNETES_SERVICE_HOST");
  EXPECT_THAT(std::string(InClusterConfig(dir).status().message()), HasSubstr("--kubeconfig"));
  setenv("KUBERNETES_SERVICE_HOST", "fd00::1", 1);
  setenv("KUBERNETES_SERVICE_PORT", "443", 1);
  EXPECT_THAT(std::string(InClusterConfig(dir).status().message()),
              HasSubstr("service account token"));
  std::ofstream(dir + "/token") << "x";
  std::ofstream(dir + "/ca.crt") << "x";
  auto c = InClusterConfig(dir);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "https://[fd00::1]:443");
  EXPECT_EQ(c->token_file, dir + "/token");
  unsetenv("KUBERNETES_SERVICE_HOST");
  unsetenv("KUBERNETES_SERVICE_PORT");
  std::filesystem::remove_all(dir);
}

TEST(KubeObjectsTest, WorkloadsAsCiliumNamesThem) {
  EXPECT_EQ(DeriveWorkload("ReplicaSet", "web-5d8f7c9b6", "5d8f7c9b6"),
            std::make_pair(std::string("web"), std::string("Deployment")));
  EXPECT_EQ(DeriveWorkload("ReplicaSet", "web-abc", "5d8f7c9b6"),
            std::make_pair(std::string("web-abc"), std::string("ReplicaSet")));
  EXPECT_EQ(DeriveWorkload("Job", "backup-28000000", ""),
            std::make_pair(std::string("backup"), std::string("CronJob")));
  EXPECT_EQ(DeriveWorkload("Job", "migrate", ""),
            std::make_pair(std::string("migrate"), std::string("Job")));
  EXPECT_EQ(DeriveWorkload("DaemonSet", "flowscope", ""),
            std::make_pair(std::string("flowscope"), std::string("DaemonSet")));
  EXPECT_EQ(DeriveWorkload("", "", ""), std::make_pair(std::string(), std::string()));
}

TEST(KubeObjectsTest, ParsesWhatFlowsNeedAndNamesWhatIsWrong) {
  json pod = testing::KubeDeploymentPod("default", "web", "web-1", "10.0.0.1");
  pod["status"]["podIPs"] = {{{"ip", "10.0.0.1"}}, {{"ip", "fd00::1"}}};
  auto p = ParsePod(pod);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_THAT(p->ips, ElementsAre("10.0.0.1", "fd00::1"));
  EXPECT_EQ(p->workload_name, "web");
  EXPECT_THAT(p->labels, ElementsAre("app=web", "pod-template-hash=5d8f7c9b6"));
  pod["metadata"]["ownerReferences"][0]["controller"] = false;  // not a controller: no workload
  EXPECT_EQ(ParsePod(pod)->workload_name, "");

  pod["metadata"]["creationTimestamp"] = "2026-03-01T10:00:00Z";
  EXPECT_EQ(ParsePod(pod)->created, 1772359200);
  pod["metadata"]["creationTimestamp"] = "yesterday";
  EXPECT_THAT(std::string(ParsePod(pod).status().message()),
              HasSubstr("metadata.creationTimestamp is not an RFC 3339 time"));
  pod["metadata"]["creationTimestamp"] = "2026-03-01T10:00:00Z";
  pod["spec"]["hostNetwork"] = "yes";
  EXPECT_THAT(std::string(ParsePod(pod).status().message()),
              HasSubstr("pod default/web-1: spec.hostNetwork is not a boolean"));
  EXPECT_THAT(std::string(ParsePod(json::array()).status().message()), HasSubstr("not a JSON"));
  EXPECT_THAT(std::string(ParsePod({{"metadata", {{"namespace", "x"}}}}).status().message()),
              HasSubstr("metadata.name is missing"));

  json node = testing::KubeNode("n1", "192.168.1.1");
  node["status"]["addresses"].push_back({{"type", "ExternalIP"}, {"address", "203.0.113.1"}});
  EXPECT_THAT(ParseNode(node)->ips, ElementsAre("192.168.1.1", "203.0.113.1"));
  node["status"]["addresses"] = {{{"type", 1}}};
  EXPECT_FALSE(ParseNode(node).ok());

  json svc = testing::KubeService("default", "web", "10.96.0.1", 443);
  EXPECT_EQ(ParseService(svc)->ports.at(0).port, 443);
  svc["spec"]["clusterIPs"] = {"None"};
  svc["spec"]["clusterIP"] = "None";
  EXPECT_TRUE(ParseService(svc)->cluster_ips.empty());  // headless
  svc["spec"]["ports"] = {{{"port", 70000}}};
  EXPECT_THAT(std::string(ParseService(svc).status().message()), HasSubstr("spec.ports"));
  EXPECT_THAT(ParseNamespace(testing::KubeNamespace("prod", {{"env", "prod"}}))->labels,
              ElementsAre("env=prod"));
}

}  // namespace
}  // namespace flowscope::observer
