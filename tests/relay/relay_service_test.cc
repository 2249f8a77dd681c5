// The relay against two in-process observers (and a dead address): merged history in strict
// time order with global last/first N, node states in-stream, follow through the relay,
// aggregated status, nodes and namespaces, and a peer dying mid-follow.
#include "relay/relay_service.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <filesystem>
#include <thread>

#include "absl/strings/str_join.h"
#include "api/grpc_server.h"
#include "bpf/flow_event.h"
#include "observer/observer_service.h"
#include "tests/testing/flow_records.h"

namespace flowscope::relay {
namespace {

using ::testing::ElementsAre;

// One observer: its ring, table, service and server on a unix socket.
struct Node {
  std::unique_ptr<observer::Ring> ring = std::move(observer::Ring::Create(1023)).value();
  std::unique_ptr<observer::EndpointTable> table =
      std::make_unique<observer::EndpointTable>("default");
  std::unique_ptr<observer::FlowBuilder> builder;
  std::unique_ptr<observer::ObserverService> service;
  std::unique_ptr<GrpcServer> server;
  std::string socket;

  Node(const std::string& name, const std::string& dir, const std::string& ns) {
    observer::EndpointInfo pod;
    pod.ips = {name == "node-a" ? "10.0.1.5" : "10.0.2.5"};
    pod.namespace_name = ns;
    pod.pod_name = "pod-" + name;
    table->Update({pod});
    builder = std::make_unique<observer::FlowBuilder>(*table, name, nullptr, 1);
    service = std::make_unique<observer::ObserverService>(*ring, *table, *builder,
                                                          observer::ObserverOptions{name, "x"});
    socket = dir + "/" + name + ".sock";
    server = std::move(GrpcServer::Start({service.get()}, {socket, ""})).value();
  }
  // Writes flows at the given millisecond offsets (port = ms).
  void Write(const std::vector<int>& ms, absl::Time base) {
    observer::EndpointTable::Resolver res(*table);
    for (int m : ms) {
      ring->Write(testing::DnsQueryRecord(
          static_cast<uint64_t>(absl::ToUnixNanos(base + absl::Milliseconds(m))),
          builder->node_name() == "node-a" ? "10.0.1.5" : "10.0.2.5", "10.0.9.9",
          static_cast<uint16_t>(m), res));
    }
    ring->Publish();
  }
};

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / ("fs-relay-" + std::to_string(getpid())))
               .string();
    std::filesystem::create_directories(dir_);
    a_ = std::make_unique<Node>("node-a", dir_, "default");
    b_ = std::make_unique<Node>("node-b", dir_, "kube-system");
    PoolOptions po;
    po.static_peers = {"unix://" + a_->socket, "unix://" + b_->socket,
                       "unix://" + dir_ + "/dead.sock"};
    po.dial_timeout = absl::Milliseconds(500);
    po.refresh = absl::Milliseconds(100);
    pool_ = std::make_unique<PeerPool>(po);
    pool_->Start();
    relay_ = std::make_unique<RelayService>(*pool_, RelayOptions{});
    server_ = std::move(GrpcServer::Start({relay_.get()}, {dir_ + "/relay.sock", ""})).value();
    stub_ = ::observer::Observer::NewStub(
        grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials()));
    base_ = absl::Now() - absl::Minutes(1);
  }
  void TearDown() override {
    server_->Shutdown(absl::Milliseconds(100));
    pool_->Stop();
    a_.reset();
    b_.reset();
    std::filesystem::remove_all(dir_);
  }

  std::vector<::observer::GetFlowsResponse> Get(::observer::GetFlowsRequest req) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = stub_->GetFlows(&ctx, req);
    std::vector<::observer::GetFlowsResponse> out;
    ::observer::GetFlowsResponse r;
    while (reader->Read(&r)) out.push_back(r);
    EXPECT_TRUE(reader->Finish().ok());
    return out;
  }

  static std::vector<std::string> Labels(const std::vector<::observer::GetFlowsResponse>& rs) {
    std::vector<std::string> out;
    for (const auto& r : rs) {
      if (r.has_flow()) {
        out.push_back(r.flow().node_name() + ":" +
                      std::to_string(r.flow().l4().udp().source_port()));
      } else if (r.has_node_status()) {
        out.push_back(::relay::NodeState_Name(r.node_status().state_change()) + " " +
                      absl::StrJoin(r.node_status().node_names(), ","));
      }
    }
    return out;
  }

  std::string dir_;
  std::unique_ptr<Node> a_, b_;
  std::unique_ptr<PeerPool> pool_;
  std::unique_ptr<RelayService> relay_;
  std::unique_ptr<GrpcServer> server_;
  std::unique_ptr<::observer::Observer::Stub> stub_;
  absl::Time base_;
};

TEST_F(RelayTest, HistoryIsMergedInOrderWithGlobalLastAndFirstN) {
  a_->Write({10, 40, 50}, base_);
  b_->Write({20, 30, 60}, base_);
  ::observer::GetFlowsRequest all;
  all.set_number(0);
  EXPECT_THAT(
      Labels(Get(all)),
      ElementsAre("NODE_CONNECTED node-a,node-b", "NODE_UNAVAILABLE unix://" + dir_ + "/dead.sock",
                  "node-a:10", "node-b:20", "node-b:30", "node-a:40", "node-a:50", "node-b:60"));
  ::observer::GetFlowsRequest last;
  last.set_number(3);
  auto got = Labels(Get(last));
  EXPECT_THAT(std::vector<std::string>(got.begin() + 2, got.end()),
              ElementsAre("node-a:40", "node-a:50", "node-b:60"))
      << "the newest 3 of the cluster, not 3 per node";
  ::observer::GetFlowsRequest first;
  first.set_number(2);
  first.set_first(true);
  got = Labels(Get(first));
  EXPECT_THAT(std::vector<std::string>(got.begin() + 2, got.end()),
              ElementsAre("node-a:10", "node-b:20"));
}

TEST_F(RelayTest, FollowMergesNewFlowsAndSurvivesAPeerDying) {
  grpc::ClientContext ctx;
  ::observer::GetFlowsRequest req;
  req.set_follow(true);
  auto reader = stub_->GetFlows(&ctx, req);
  ::observer::GetFlowsResponse r;
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.node_status().state_change(), ::relay::NODE_CONNECTED);
  absl::SleepFor(absl::Milliseconds(300));  // the relay opens its peer streams
  const absl::Time now = absl::Now();
  a_->Write({0}, now);
  b_->Write({1}, now);
  std::vector<std::string> flows;
  bool saw_error = false;
  while (flows.size() < 3 && reader->Read(&r)) {
    if (r.has_flow()) flows.push_back(r.flow().node_name());
    if (r.has_node_status() && r.node_status().state_change() == ::relay::NODE_ERROR)
      saw_error = true;
    if (flows.size() == 2 && !saw_error) {
      b_->server->Shutdown(absl::Milliseconds(10));  // node-b dies mid-stream
      a_->Write({5}, absl::Now());
    }
  }
  EXPECT_THAT(flows, ElementsAre("node-a", "node-b", "node-a")) << "the stream goes on";
  EXPECT_TRUE(saw_error) << "node-b's failure is reported in-stream";
  ctx.TryCancel();
  while (reader->Read(&r)) {
  }
  reader->Finish();
}

TEST_F(RelayTest, StatusNodesAndNamespacesAggregate) {
  a_->Write({1, 2}, base_);
  b_->Write({3}, base_);
  grpc::ClientContext c1;
  ::observer::ServerStatusResponse st;
  ASSERT_TRUE(stub_->ServerStatus(&c1, {}, &st).ok());
  EXPECT_EQ(st.num_flows(), 3u);
  EXPECT_EQ(st.max_flows(), 2046u);
  EXPECT_EQ(st.num_connected_nodes().value(), 2u);
  EXPECT_EQ(st.num_unavailable_nodes().value(), 1u);
  ASSERT_EQ(st.unavailable_nodes_size(), 1);
  EXPECT_EQ(st.version(), kRelayVersion);
  grpc::ClientContext c2;
  ::observer::GetNodesResponse nodes;
  ASSERT_TRUE(stub_->GetNodes(&c2, {}, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 3);
  int connected = 0;
  for (const auto& n : nodes.nodes()) connected += n.state() == ::relay::NODE_CONNECTED;
  EXPECT_EQ(connected, 2);
  grpc::ClientContext c3;
  ::observer::GetNamespacesResponse ns;
  ASSERT_TRUE(stub_->GetNamespaces(&c3, {}, &ns).ok());
  ASSERT_EQ(ns.namespaces_size(), 2);
  EXPECT_EQ(ns.namespaces(0).namespace_(), "default");
  EXPECT_EQ(ns.namespaces(1).namespace_(), "kube-system");
}

}  // namespace
}  // namespace flowscope::relay
