// The relay against in-process observers (and a dead address): merged history in strict time
// order with global last/first N, node states in-stream, follow through the relay strictly
// ordered by watermarks (and through a sort buffer for a peer that only speaks Hubble's API),
// a silent peer dropped from the watermark and back, peers joining a running follow, lost
// events passed through, the relay as a peer of another relay, aggregated status, nodes and
// namespaces, and a peer dying mid-follow.
#include "relay/relay_service.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <google/protobuf/util/time_util.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/strings/str_join.h"
#include "api/grpc_server.h"
#include "api/grpc_util.h"
#include "bpf/flow_event.h"
#include "flowscope/v1/flowscope.grpc.pb.h"
#include "observer/observer_service.h"
#include "relay/merge.h"
#include "tests/testing/flow_records.h"
#include "tests/testing/wait.h"

namespace flowscope::relay {
namespace {

using ::testing::ElementsAre;

// One observer: its ring, table, service and server on a unix socket; with flowscope's
// FlowStream, or (hubble_only) with nothing but Hubble's API.
struct Node {
  observer::IngestWatermark watermark;
  std::unique_ptr<observer::Ring> ring = std::move(observer::Ring::Create(1023)).value();
  std::unique_ptr<observer::EndpointTable> table =
      std::make_unique<observer::EndpointTable>("default");
  std::unique_ptr<observer::FlowBuilder> builder;
  std::unique_ptr<observer::ObserverService> service;
  std::unique_ptr<GrpcServer> server;
  std::string socket;

  std::string ip;

  Node(const std::string& name, const std::string& dir, const std::string& ns,
       bool hubble_only = false)
      : ip(name == "node-a" ? "10.0.1.5" : "10.0.2.5") {
    observer::EndpointInfo pod;
    pod.ips = {ip};
    pod.namespace_name = ns;
    pod.pod_name = "pod-" + name;
    table->Update({pod});
    builder = std::make_unique<observer::FlowBuilder>(*table, name, nullptr, 1);
    service = std::make_unique<observer::ObserverService>(
        *ring, *table, *builder,
        observer::ObserverOptions{.node_name = name, .address = "x", .watermark = &watermark});
    socket = dir + "/" + name + ".sock";
    std::vector<grpc::Service*> services = {service.get()};
    if (!hubble_only) {
      services.push_back(service->batch_service());
      services.push_back(service->history_service());
    }
    server = std::move(GrpcServer::Start(services, {socket, ""})).value();
  }
  // Writes flows at the given millisecond offsets (port = ms) and, as the drain does, promises
  // that nothing older follows.
  void Write(const std::vector<int>& ms, absl::Time base) {
    observer::EndpointTable::Resolver res(*table);
    for (int m : ms) {
      const uint64_t t = static_cast<uint64_t>(absl::ToUnixNanos(base + absl::Milliseconds(m)));
      ring->Write(testing::DnsQueryRecord(std::max(t, watermark.Get()), ip.c_str(), "10.0.9.9",
                                          static_cast<uint16_t>(m), res));
    }
    ring->Publish();
    if (!ms.empty()) Promise(base + absl::Milliseconds(ms.back()));
  }
  void Promise(absl::Time t) { watermark.Advance(static_cast<uint64_t>(absl::ToUnixNanos(t))); }
  // Moves the promise with the wall clock, as the drain of an idle node does.
  void StartClock() {
    clock = std::thread([this] {
      while (!clock_stop.load()) {
        Promise(absl::Now() - absl::Milliseconds(1));
        absl::SleepFor(absl::Milliseconds(5));
      }
    });
  }
  ~Node() {
    clock_stop = true;
    if (clock.joinable()) clock.join();
  }

  std::atomic<bool> clock_stop{false};
  std::thread clock;
};

// Waits until each node serves a follow stream that has caught up with its ring: the relay's
// peer streams are open, and every flow written from now on reaches them.
void WaitForPeerStreams(std::initializer_list<const Node*> nodes) {
  for (const Node* n : nodes) {
    testing::WaitUntil([n] { return n->service->parked_streams() > 0; });
  }
}

class RelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / ("fs-relay-" + std::to_string(getpid())))
               .string();
    std::filesystem::create_directories(dir_);
    a_ = std::make_unique<Node>("node-a", dir_, "default");
    b_ = std::make_unique<Node>("node-b", dir_, "kube-system", /*hubble_only=*/true);
    PoolOptions po;
    po.static_peers = {"unix://" + a_->socket, "unix://" + b_->socket,
                       "unix://" + dir_ + "/dead.sock"};
    po.dial_timeout = absl::Milliseconds(500);
    po.refresh = absl::Milliseconds(100);
    pool_ = std::make_unique<PeerPool>(po);
    pool_->Start();
    relay_ = std::make_unique<RelayService>(*pool_, RelayOptions{});
    server_ = std::move(GrpcServer::Start(
                            {relay_.get(), relay_->batch_service(), relay_->history_service()},
                            {dir_ + "/relay.sock", ""}))
                  .value();
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
  ::observer::GetFlowsRequest since;
  since.set_number(2);
  *since.mutable_since() = google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(base_ + absl::Milliseconds(15)));
  got = Labels(Get(since));
  EXPECT_THAT(std::vector<std::string>(got.begin() + 2, got.end()),
              ElementsAre("node-b:20", "node-b:30"))
      << "with since, the first 2 of the cluster after it";
}

TEST_F(RelayTest, FollowMergesNewFlowsAndSurvivesAPeerDying) {
  grpc::ClientContext ctx;
  ::observer::GetFlowsRequest req;
  req.set_follow(true);
  a_->StartClock();
  auto reader = stub_->GetFlows(&ctx, req);
  ::observer::GetFlowsResponse r;
  ASSERT_TRUE(reader->Read(&r));
  EXPECT_EQ(r.node_status().state_change(), ::relay::NODE_CONNECTED);
  WaitForPeerStreams({a_.get(), b_.get()});
  const absl::Time now = absl::Now();
  a_->Write({0}, now);
  b_->Write({1}, now);  // node-b speaks only Hubble's API: a sort buffer drained after 1 s
  std::vector<std::string> flows;
  bool saw_error = false;
  while (flows.size() < 3 && reader->Read(&r)) {
    if (r.has_flow()) flows.push_back(r.flow().node_name());
    if (r.has_node_status() && r.node_status().state_change() == ::relay::NODE_ERROR) {
      EXPECT_THAT(r.node_status().node_names(), ElementsAre("node-b"));
      saw_error = true;
    }
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

// The history status of every connected node that has flowscope's History service: a Hubble
// peer (without it) and a dead one are left out, and the call still succeeds.
TEST_F(RelayTest, HistoryStatusComesFromTheNodesThatHaveAHistoryService) {
  ASSERT_TRUE(testing::WaitUntil([&] {
    grpc::ClientContext c;
    ::observer::ServerStatusResponse st;
    return stub_->ServerStatus(&c, {}, &st).ok() && st.num_connected_nodes().value() == 2;
  }));
  auto history = ::flowscope::v1::History::NewStub(
      grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext c;
  ::flowscope::v1::HistoryStatusResponse r;
  ASSERT_TRUE(history->GetHistoryStatus(&c, {}, &r).ok());
  ASSERT_EQ(r.nodes_size(), 1) << r.DebugString();
  EXPECT_EQ(r.nodes(0).node_name(), "node-a");
  EXPECT_FALSE(r.nodes(0).enabled()) << "node-a keeps no history";
}

// A relay over flowscope peers: its pool, service and server.
struct Relay {
  std::unique_ptr<PeerPool> pool;
  std::unique_ptr<RelayService> service;
  std::unique_ptr<GrpcServer> server;
  std::shared_ptr<grpc::Channel> channel;

  Relay(std::vector<std::string> peers, const std::string& socket, RelayOptions options) {
    PoolOptions po;
    po.static_peers = std::move(peers);
    po.dial_timeout = absl::Milliseconds(500);
    po.refresh = absl::Milliseconds(100);
    pool = std::make_unique<PeerPool>(po);
    pool->Start();
    service = std::make_unique<RelayService>(*pool, options);
    server = std::move(GrpcServer::Start({service.get(), service->batch_service()}, {socket, ""}))
                 .value();
    channel = grpc::CreateChannel(server->target(), grpc::InsecureChannelCredentials());
  }
  ~Relay() {
    server->Shutdown(absl::Milliseconds(100));
    pool->Stop();
  }
};

// Reads a follow stream on its own thread until told to stop.
class Follower {
 public:
  explicit Follower(::observer::Observer::Stub* stub) {
    ::observer::GetFlowsRequest req;
    req.set_follow(true);
    reader_ = stub->GetFlows(&ctx_, req);
    thread_ = std::thread([this] {
      ::observer::GetFlowsResponse r;
      while (reader_->Read(&r)) {
        std::lock_guard<std::mutex> lock(mu_);
        got_.push_back(r);
      }
    });
  }
  ~Follower() {
    ctx_.TryCancel();
    thread_.join();
    reader_->Finish();
  }
  // Waits (up to 20 s) until `done` holds for what has been received; returns a copy.
  std::vector<::observer::GetFlowsResponse> WaitFor(
      const std::function<bool(const std::vector<::observer::GetFlowsResponse>&)>& done) {
    testing::WaitUntil(
        [&] {
          std::lock_guard<std::mutex> lock(mu_);
          return done(got_);
        },
        absl::Seconds(20));
    std::lock_guard<std::mutex> lock(mu_);
    return got_;
  }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<::observer::GetFlowsResponse>> reader_;
  std::thread thread_;
  std::mutex mu_;
  std::vector<::observer::GetFlowsResponse> got_;
};

size_t CountFlows(const std::vector<::observer::GetFlowsResponse>& rs) {
  return static_cast<size_t>(
      std::count_if(rs.begin(), rs.end(), [](const auto& r) { return r.has_flow(); }));
}

bool HasStatus(const std::vector<::observer::GetFlowsResponse>& rs, ::relay::NodeState state,
               const std::string& node) {
  for (const auto& r : rs) {
    if (!r.has_node_status() || r.node_status().state_change() != state) continue;
    for (const auto& n : r.node_status().node_names()) {
      if (n == node) return true;
    }
  }
  return false;
}

// A peer that answers any GetFlows with the responses it is given, then goes silent without
// ending the call (a node that hangs half-way through its answer).
class StallingObserver final : public ::observer::Observer::CallbackService {
 public:
  explicit StallingObserver(std::vector<::observer::GetFlowsResponse> answer)
      : answer_(std::move(answer)) {}
  grpc::ServerWriteReactor<::observer::GetFlowsResponse>* GetFlows(
      grpc::CallbackServerContext*, const ::observer::GetFlowsRequest*) override {
    class Reactor final : public grpc::ServerWriteReactor<::observer::GetFlowsResponse> {
     public:
      explicit Reactor(const std::vector<::observer::GetFlowsResponse>* answer) : answer_(answer) {
        Next();
      }
      void OnWriteDone(bool ok) override {
        if (ok) Next();
      }
      void OnCancel() override { Finish(grpc::Status::CANCELLED); }
      void OnDone() override { delete this; }

     private:
      void Next() {
        if (i_ < answer_->size()) StartWrite(&(*answer_)[i_++]);
      }
      const std::vector<::observer::GetFlowsResponse>* answer_;
      size_t i_ = 0;
    };
    return new Reactor(&answer_);
  }

 private:
  const std::vector<::observer::GetFlowsResponse> answer_;
};

// Two flowscope nodes (batches and watermarks) behind a relay.
class WatermarkRelayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = (std::filesystem::temp_directory_path() / ("fs-wmrelay-" + std::to_string(getpid())))
               .string();
    std::filesystem::create_directories(dir_);
    a_ = std::make_unique<Node>("node-a", dir_, "default");
    c_ = std::make_unique<Node>("node-c", dir_, "kube-system");
    options_.peer_timeout = absl::Milliseconds(500);
    options_.peer_update_interval = absl::Milliseconds(100);
  }
  void TearDown() override {
    relay_.reset();
    a_.reset();
    c_.reset();
    std::filesystem::remove_all(dir_);
  }
  void StartRelay(std::vector<std::string> peers) {
    relay_ = std::make_unique<Relay>(std::move(peers), dir_ + "/relay.sock", options_);
    stub_ = ::observer::Observer::NewStub(relay_->channel);
  }

  std::string dir_;
  std::unique_ptr<Node> a_, c_;
  RelayOptions options_;
  std::unique_ptr<Relay> relay_;
  std::unique_ptr<::observer::Observer::Stub> stub_;
};

// What a node that hangs after two flows ("node-s", at base + 20 ms and + 30 ms, source ports
// 20 and 30) sends first.
std::vector<::observer::GetFlowsResponse> TwoFlowsBeforeHanging(absl::Time base) {
  std::vector<::observer::GetFlowsResponse> answer;
  for (int ms : {20, 30}) {
    ::observer::GetFlowsResponse r;
    r.set_node_name("node-s");
    *r.mutable_time() = ToTimestamp(base + absl::Milliseconds(ms));
    *r.mutable_flow()->mutable_time() = r.time();
    r.mutable_flow()->set_node_name("node-s");
    r.mutable_flow()->mutable_l4()->mutable_udp()->set_source_port(static_cast<uint32_t>(ms));
    answer.push_back(r);
  }
  return answer;
}

TEST_F(WatermarkRelayTest, AllStreamsThroughTheMergeAndKeepsWhatAHangingNodeSent) {
  // --all (number 2^64-1) is merged as it streams in, as number 0 is; so a node that hangs
  // half-way keeps the flows it did send (a buffered "newest N" answer would drop them all).
  const absl::Time base = absl::Now() - absl::Seconds(10);
  const std::vector<::observer::GetFlowsResponse> answer = TwoFlowsBeforeHanging(base);
  StallingObserver stalling(answer);
  const std::string stall_socket = dir_ + "/stall.sock";
  auto stall_server = GrpcServer::Start({&stalling}, {stall_socket, ""});
  ASSERT_TRUE(stall_server.ok()) << stall_server.status();
  a_->Write({10, 40}, base);
  StartRelay({"unix://" + a_->socket, "unix://" + stall_socket});
  ::observer::GetFlowsRequest all;
  all.set_number(std::numeric_limits<uint64_t>::max());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = stub_->GetFlows(&ctx, all);
  std::vector<std::string> flows;
  bool error_for_stalled = false;
  ::observer::GetFlowsResponse r;
  while (reader->Read(&r)) {
    if (r.has_flow()) {
      flows.push_back(r.flow().node_name() + ":" +
                      std::to_string(r.flow().l4().udp().source_port()));
    }
    if (r.has_node_status() && r.node_status().state_change() == ::relay::NODE_ERROR) {
      error_for_stalled = true;
    }
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_TRUE(error_for_stalled) << "the hanging node is reported";
  EXPECT_THAT(flows, ElementsAre("node-a:10", "node-s:20", "node-s:30", "node-a:40"));
  (*stall_server)->Shutdown(absl::Milliseconds(100));
}

TEST_F(WatermarkRelayTest, AHungNodeIsLeftOutOnceTheRelaysClockPassesThePeerTimeout) {
  // The relay on a clock the test moves: an hour's timeout passes at once.
  ManualClock clock(absl::Now());
  options_.clock = &clock;
  options_.peer_timeout = absl::Hours(1);
  StallingObserver stalling(TwoFlowsBeforeHanging(absl::Now() - absl::Seconds(10)));
  const std::string stall_socket = dir_ + "/stall.sock";
  auto stall_server = GrpcServer::Start({&stalling}, {stall_socket, ""});
  ASSERT_TRUE(stall_server.ok()) << stall_server.status();
  StartRelay({"unix://" + stall_socket});
  ::observer::GetFlowsRequest all;
  all.set_number(std::numeric_limits<uint64_t>::max());
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  auto reader = stub_->GetFlows(&ctx, all);
  ::observer::GetFlowsResponse r;
  int flows = 0;
  while (flows < 2 && reader->Read(&r)) flows += r.has_flow();
  ASSERT_EQ(flows, 2) << "what the node sent before it hung";
  // The relay heard from it at the clock's time; an hour later (on its clock) it gives up.
  clock.Advance(absl::Hours(1) + absl::Seconds(1));
  std::string error;
  while (reader->Read(&r)) {
    if (r.has_node_status() && r.node_status().state_change() == ::relay::NODE_ERROR) {
      error = r.node_status().message();
    }
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_THAT(error, ::testing::HasSubstr("no answer for 1h0m0s"));
  (*stall_server)->Shutdown(absl::Milliseconds(100));
}

TEST_F(WatermarkRelayTest, StreamsBeyondTheCapAreResourceExhausted) {
  options_.max_streams = 1;
  a_->StartClock();
  c_->StartClock();
  StartRelay({"unix://" + a_->socket, "unix://" + c_->socket});
  // The last 5 flows, read to the end: how the call ended (and *messages, how many came).
  auto last5 = [&](int* messages) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    ::observer::GetFlowsRequest req;
    req.set_number(5);
    auto reader = stub_->GetFlows(&ctx, req);
    ::observer::GetFlowsResponse r;
    *messages = 0;
    while (reader->Read(&r)) ++*messages;
    return reader->Finish();
  };
  int messages = 0;
  {
    Follower follower(stub_.get());
    follower.WaitFor([](const auto& rs) { return !rs.empty(); });
    const grpc::Status status = last5(&messages);
    EXPECT_EQ(messages, 0) << "refused before anything is sent";
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(),
                ::testing::HasSubstr("too many concurrent flow streams (1)"));
  }
  // The follower is gone: its slot is free again.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (relay_->service->open_streams() > 0 && absl::Now() < deadline) {
    std::this_thread::yield();
  }
  EXPECT_TRUE(last5(&messages).ok());
}

TEST_F(WatermarkRelayTest, FollowIsStrictlyOrderedAndComplete) {
  a_->StartClock();
  c_->StartClock();
  StartRelay({"unix://" + a_->socket, "unix://" + c_->socket});
  Follower follower(stub_.get());
  follower.WaitFor([](const auto& rs) { return !rs.empty(); });  // NODE_CONNECTED: streaming
  WaitForPeerStreams({a_.get(), c_.get()});
  // Both nodes write at once, as fast as they can: each node's records are in time order,
  // their interleaving is arbitrary. (Less than a ring's worth: nothing is lapped.)
  constexpr int kPerNode = 1000;
  auto write = [](Node* n) {
    for (int i = 0; i < kPerNode; i += 10) {
      std::vector<int> ms(10, 0);
      n->Write(ms, absl::Now());
    }
  };
  std::thread wa(write, a_.get());
  std::thread wc(write, c_.get());
  wa.join();
  wc.join();
  const auto got = follower.WaitFor([](const auto& rs) { return CountFlows(rs) >= 2 * kPerNode; });
  ASSERT_EQ(CountFlows(got), 2u * kPerNode) << "every flow of both nodes, none twice";
  absl::Time last = absl::InfinitePast();
  int from_a = 0;
  for (const auto& r : got) {
    if (!r.has_flow()) continue;
    const absl::Time t = ResponseTime(ToRaw(r));
    ASSERT_GE(t, last) << "out of order after " << from_a << " flows from node-a";
    last = t;
    from_a += r.flow().node_name() == "node-a";
  }
  EXPECT_EQ(from_a, kPerNode);
}

TEST_F(WatermarkRelayTest, ASilentNodeIsLeftOutAfterTheTimeoutAndRejoins) {
  a_->StartClock();  // node-c's promise never moves: its drain is stuck, or it is hung
  StartRelay({"unix://" + a_->socket, "unix://" + c_->socket});
  Follower follower(stub_.get());
  follower.WaitFor([](const auto& rs) { return !rs.empty(); });
  WaitForPeerStreams({a_.get(), c_.get()});
  a_->Write({0}, absl::Now());
  auto got = follower.WaitFor([](const auto& rs) { return CountFlows(rs) >= 1; });
  ASSERT_EQ(CountFlows(got), 1u) << "node-a's flow goes out once node-c is no longer waited for";
  ASSERT_TRUE(HasStatus(got, ::relay::NODE_ERROR, "node-c"));
  for (const auto& r : got) {
    if (r.has_node_status() && r.node_status().state_change() == ::relay::NODE_ERROR) {
      EXPECT_THAT(r.node_status().message(), ::testing::HasSubstr("no data for 500ms"));
    }
  }
  // It comes back: announced, and its flows are merged again.
  c_->StartClock();
  c_->Write({7}, absl::Now());
  got = follower.WaitFor([](const auto& rs) {
    return HasStatus(rs, ::relay::NODE_CONNECTED, "node-c") && CountFlows(rs) >= 2;
  });
  EXPECT_TRUE(HasStatus(got, ::relay::NODE_CONNECTED, "node-c"));
  ASSERT_EQ(CountFlows(got), 2u);
  EXPECT_EQ(got.back().flow().node_name(), "node-c");
}

TEST_F(WatermarkRelayTest, NodesThatComeUpDuringAFollowAreAddedToIt) {
  a_->StartClock();
  const std::string later = "unix://" + dir_ + "/node-late.sock";
  StartRelay({"unix://" + a_->socket, later});
  Follower follower(stub_.get());
  auto got = follower.WaitFor(
      [&](const auto& rs) { return HasStatus(rs, ::relay::NODE_UNAVAILABLE, later); });
  ASSERT_TRUE(HasStatus(got, ::relay::NODE_UNAVAILABLE, later)) << "not up yet";
  Node late("node-late", dir_, "default");
  late.StartClock();
  got = follower.WaitFor(
      [](const auto& rs) { return HasStatus(rs, ::relay::NODE_CONNECTED, "node-late"); });
  ASSERT_TRUE(HasStatus(got, ::relay::NODE_CONNECTED, "node-late"));
  late.Write({3}, absl::Now());
  got = follower.WaitFor([](const auto& rs) { return CountFlows(rs) >= 1; });
  ASSERT_EQ(CountFlows(got), 1u);
  EXPECT_EQ(got.back().flow().node_name(), "node-late");
}

TEST_F(WatermarkRelayTest, LostEventsPassThroughWithTheirNode) {
  a_->StartClock();
  c_->StartClock();
  StartRelay({"unix://" + a_->socket, "unix://" + c_->socket});
  Follower follower(stub_.get());
  follower.WaitFor([](const auto& rs) { return !rs.empty(); });
  WaitForPeerStreams({a_.get(), c_.get()});
  c_->service->lost_log().Add(flow::PERF_EVENT_RING_BUFFER, 7, absl::Now());
  const auto got = follower.WaitFor([](const auto& rs) {
    return std::any_of(rs.begin(), rs.end(), [](const auto& r) { return r.has_lost_events(); });
  });
  auto it = std::find_if(got.begin(), got.end(), [](const auto& r) { return r.has_lost_events(); });
  ASSERT_NE(it, got.end());
  EXPECT_EQ(it->node_name(), "node-c");
  EXPECT_EQ(it->lost_events().source(), flow::PERF_EVENT_RING_BUFFER);
  EXPECT_EQ(it->lost_events().num_events_lost(), 7u);
}

TEST_F(WatermarkRelayTest, ASlowFollowClientLosesFlowsAndIsToldExactlyHowMany) {
  a_->StartClock();
  c_->StartClock();
  options_.max_queued = 16;
  StartRelay({"unix://" + a_->socket, "unix://" + c_->socket});
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  ::observer::GetFlowsRequest req;
  req.set_follow(true);
  auto reader = stub_->GetFlows(&ctx, req);
  ::observer::GetFlowsResponse r;
  ASSERT_TRUE(reader->Read(&r));  // the stream is open
  WaitForPeerStreams({a_.get(), c_.get()});
  // The client reads nothing while both nodes write: the relay must not wait for it (nor make
  // the nodes wait), so what does not fit is dropped — and counted.
  constexpr int kPerNode = 900;
  for (int burst = 0; burst < 9; ++burst) {
    a_->Write(std::vector<int>(kPerNode / 9, 0), absl::Now());
    c_->Write(std::vector<int>(kPerNode / 9, 0), absl::Now());
    absl::SleepFor(absl::Milliseconds(20));  // bursts, as a node's drain writes them
  }
  // The relay drops what its client has no room for while the client still reads nothing.
  ASSERT_TRUE(testing::WaitUntil([&] { return relay_->service->dropped_for_slow_clients() > 0; }));
  EXPECT_GE(relay_->service->queued_messages(), 0);
  uint64_t flows = 0, lost = 0;
  while (flows + lost < 2 * kPerNode && reader->Read(&r)) {
    if (r.has_flow()) ++flows;
    if (r.has_lost_events()) {
      EXPECT_EQ(r.node_name(), "relay");
      EXPECT_EQ(r.lost_events().source(), flow::HUBBLE_RING_BUFFER);
      lost += r.lost_events().num_events_lost();
    }
  }
  EXPECT_EQ(flows + lost, 2u * kPerNode) << flows << " flows, " << lost << " lost";
  EXPECT_GT(lost, 0u) << "the client was far behind";
  EXPECT_GT(flows, 0u);
  ctx.TryCancel();
  while (reader->Read(&r)) {
  }
  reader->Finish();
  EXPECT_TRUE(testing::WaitUntil([&] { return relay_->service->queued_messages() == 0; }))
      << relay_->service->queued_messages() << " still counted after the stream ended";
  EXPECT_TRUE(testing::WaitUntil([&] {
    return relay_->service->max_merge_lag() == absl::ZeroDuration();
  })) << "an ended stream reports no lag";
}

TEST_F(WatermarkRelayTest, ARelayCanBeThePeerOfAnotherRelay) {
  StartRelay({"unix://" + a_->socket, "unix://" + c_->socket});
  RelayOptions top_options = options_;
  top_options.name = "top";
  Relay top({relay_->server->target()}, dir_ + "/top.sock", top_options);
  auto top_stub = ::observer::Observer::NewStub(top.channel);
  const absl::Time base = absl::Now() - absl::Minutes(1);
  a_->Write({10, 30}, base);
  c_->Write({20}, base);
  grpc::ClientContext ctx;
  ::observer::GetFlowsRequest history;
  history.set_number(2);
  auto reader = top_stub->GetFlows(&ctx, history);
  std::vector<std::string> flows;
  ::observer::GetFlowsResponse r;
  while (reader->Read(&r)) {
    if (r.has_flow()) flows.push_back(r.flow().node_name());
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_THAT(flows, ElementsAre("node-c", "node-a")) << "the newest 2 of the whole cluster";

  a_->StartClock();
  c_->StartClock();
  Follower follower(top_stub.get());
  follower.WaitFor([](const auto& rs) { return !rs.empty(); });
  WaitForPeerStreams({a_.get(), c_.get()});
  c_->Write({0}, absl::Now());
  a_->Write({1}, absl::Now());
  const auto got = follower.WaitFor([](const auto& rs) { return CountFlows(rs) >= 2; });
  ASSERT_EQ(CountFlows(got), 2u);
  std::vector<std::string> order;
  for (const auto& g : got) {
    if (g.has_flow()) order.push_back(g.flow().node_name());
  }
  EXPECT_THAT(order, ElementsAre("node-c", "node-a")) << "in time order through both relays";
}

}  // namespace
}  // namespace flowscope::relay
