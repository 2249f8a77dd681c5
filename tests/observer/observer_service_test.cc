// The Observer service through a real gRPC client on a unix socket: GetFlows (last N, filters,
// follow, cancellation), ServerStatus, GetNodes, GetNamespaces, health, the errors for bad
// requests, and flowscope's batched, watermarked FlowStream.
#include "observer/observer_service.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "api/flows_request.h"
#include "api/grpc_server.h"
#include "api/grpc_util.h"
#include "bpf/drop_reasons.h"
#include "bpf/flow_event.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/testing/flow_records.h"
#include "tests/testing/wait.h"

namespace flowscope::observer {
namespace {

using ::testing::HasSubstr;

class ObserverServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ring_ = std::move(Ring::Create(1023)).value();
    table_ = std::make_unique<EndpointTable>("default");
    EndpointInfo tie;
    tie.ips = {"10.0.1.5"};
    tie.namespace_name = "default";
    tie.pod_name = "tiefighter";
    EndpointInfo dns;
    dns.ips = {"10.0.3.2"};
    dns.namespace_name = "kube-system";
    dns.pod_name = "coredns-1";
    table_->Update({tie, dns});
    builder_ = std::make_unique<FlowBuilder>(*table_, "node-1", nullptr, 99);
    dir_ = std::filesystem::temp_directory_path() / ("fs-svc-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    socket_ = (dir_ / "observer.sock").string();
    service_ = std::make_unique<ObserverService>(*ring_, *table_, *builder_,
                                                 ObserverOptions{.node_name = "node-1",
                                                                 .address = "unix://" + socket_,
                                                                 .watermark = &watermark_,
                                                                 .max_batch_events = 256,
                                                                 .clock = clock_});
    auto server = GrpcServer::Start({service_.get(), service_->batch_service()}, {socket_, ""});
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
    channel_ = grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials());
    stub_ = ::observer::Observer::NewStub(channel_);
    batch_stub_ = ::flowscope::v1::FlowStream::NewStub(channel_);
  }

  void TearDown() override {
    if (server_) server_->Shutdown(absl::Milliseconds(100));
    service_.reset();
    std::filesystem::remove_all(dir_);
  }

  // Writes n records from tiefighter to coredns:53 (sport = sequence) starting now-ish.
  void Write(uint64_t n) {
    EndpointTable::Resolver res(*table_);
    const uint64_t base = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
    for (uint64_t i = 0; i < n; ++i) {
      ring_->Write(testing::DnsQueryRecord(base + i, "10.0.1.5", "10.0.3.2",
                                           static_cast<uint16_t>(seq_++), res));
    }
    ring_->Publish();
  }

  // Waits until `n` follow streams have caught up with the ring (so they have positioned
  // themselves and see everything written from now on).
  bool WaitParked(size_t n) {
    return testing::WaitUntil([&] { return service_->parked_streams() >= n; });
  }

  std::vector<::observer::GetFlowsResponse> GetFlows(const ::observer::GetFlowsRequest& req,
                                                     grpc::Status* status) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = stub_->GetFlows(&ctx, req);
    std::vector<::observer::GetFlowsResponse> out;
    ::observer::GetFlowsResponse resp;
    while (reader->Read(&resp)) out.push_back(resp);
    *status = reader->Finish();
    return out;
  }

  std::unique_ptr<Ring> ring_;
  std::unique_ptr<EndpointTable> table_;
  std::unique_ptr<FlowBuilder> builder_;
  std::unique_ptr<ObserverService> service_;
  std::unique_ptr<GrpcServer> server_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<::observer::Observer::Stub> stub_;
  std::unique_ptr<::flowscope::v1::FlowStream::Stub> batch_stub_;
  IngestWatermark watermark_;
  const Clock* clock_ = nullptr;  // the service's; the real one unless a test sets it
  std::filesystem::path dir_;
  std::string socket_;
  uint64_t seq_ = 0;
};

TEST_F(ObserverServiceTest, SocketIsGroupReadableAndHealthServes) {
  struct stat st {};
  ASSERT_EQ(stat(socket_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  auto health = grpc::health::v1::Health::NewStub(channel_);
  for (const char* name : {"", "hubble.server.Observer"}) {
    grpc::ClientContext ctx;
    grpc::health::v1::HealthCheckRequest req;
    req.set_service(name);
    grpc::health::v1::HealthCheckResponse resp;
    ASSERT_TRUE(health->Check(&ctx, req, &resp).ok()) << name;
    EXPECT_EQ(resp.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  }
}

TEST_F(ObserverServiceTest, LastNWithFiltersAndEmptyRing) {
  grpc::Status status;
  ::observer::GetFlowsRequest req;
  req.set_number(20);
  EXPECT_TRUE(GetFlows(req, &status).empty());
  EXPECT_TRUE(status.ok()) << "an empty ring ends the stream with OK";
  Write(50);
  auto got = GetFlows(req, &status);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(got.size(), 20u);
  EXPECT_EQ(got.front().flow().l4().udp().source_port(), 30u);
  EXPECT_EQ(got.back().flow().l4().udp().source_port(), 49u);
  EXPECT_EQ(got.back().node_name(), "node-1");
  EXPECT_EQ(got.back().flow().source().pod_name(), "tiefighter");
  EXPECT_EQ(got.back().time().seconds(), got.back().flow().time().seconds());
  for (size_t i = 1; i < got.size(); ++i) {
    EXPECT_LE(
        absl::FromUnixSeconds(got[i - 1].time().seconds()) +
            absl::Nanoseconds(got[i - 1].time().nanos()),
        absl::FromUnixSeconds(got[i].time().seconds()) + absl::Nanoseconds(got[i].time().nanos()));
  }
  req.add_whitelist()->add_destination_pod("kube-system/coredns");
  EXPECT_EQ(GetFlows(req, &status).size(), 20u);
  req.mutable_whitelist(0)->set_destination_pod(0, "default/");
  EXPECT_TRUE(GetFlows(req, &status).empty());
}

TEST_F(ObserverServiceTest, BadRequestsAreInvalidArgumentBeforeAnyMessage) {
  Write(5);
  grpc::Status status;
  ::observer::GetFlowsRequest both;
  both.set_first(true);
  both.set_follow(true);
  EXPECT_TRUE(GetFlows(both, &status).empty());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "first cannot be specified with follow");
  ::observer::GetFlowsRequest bad;
  bad.add_whitelist()->add_source_ip("300.1.1.1");
  EXPECT_TRUE(GetFlows(bad, &status).empty());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("source_ip"));
  // Timestamps Hubble refuses (timestamppb's CheckValid), and ones far out that are valid.
  struct {
    int64_t seconds;
    int32_t nanos;
    const char* want;
  } times[] = {
      {253402300800, 0, "after 9999-12-31"},
      {-62135596801, 0, "before 0001-01-01"},
      {1, -1, "out-of-range nanos"},
      {1, 1'000'000'000, "out-of-range nanos"},
  };
  for (const char* field : {"since", "until"}) {
    for (const auto& t : times) {
      ::observer::GetFlowsRequest r;
      auto* ts = std::string(field) == "since" ? r.mutable_since() : r.mutable_until();
      ts->set_seconds(t.seconds);
      ts->set_nanos(t.nanos);
      EXPECT_TRUE(GetFlows(r, &status).empty());
      EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << field << t.seconds;
      EXPECT_THAT(status.error_message(), HasSubstr(absl::StrCat("invalid ", field)));
      EXPECT_THAT(status.error_message(), HasSubstr(t.want));
    }
  }
  // Year 2600 is past what 64 bits of nanoseconds hold: since then is nothing, until then is
  // everything (no overflow).
  ::observer::GetFlowsRequest far;
  far.mutable_since()->set_seconds(19'880'000'000);
  EXPECT_TRUE(GetFlows(far, &status).empty());
  EXPECT_TRUE(status.ok()) << status.error_message();
  far.clear_since();
  far.mutable_until()->set_seconds(19'880'000'000);
  EXPECT_EQ(GetFlows(far, &status).size(), 5u);
  EXPECT_TRUE(status.ok()) << status.error_message();
  far.mutable_since()->set_seconds(-5);
  EXPECT_EQ(GetFlows(far, &status).size(), 5u) << "before 1970 is valid: everything since then";
  // The server is unharmed.
  ::observer::GetFlowsRequest ok;
  ok.set_number(5);
  EXPECT_EQ(GetFlows(ok, &status).size(), 5u);

  grpc::ClientContext ctx;
  auto agent = stub_->GetAgentEvents(&ctx, ::observer::GetAgentEventsRequest());
  ::observer::GetAgentEventsResponse ignored;
  EXPECT_FALSE(agent->Read(&ignored));
  EXPECT_EQ(agent->Finish().error_code(), grpc::StatusCode::UNIMPLEMENTED);
}

TEST_F(ObserverServiceTest, FollowStreamsNewFlowsAndCancelFreesTheStream) {
  Write(3);
  grpc::ClientContext ctx;
  ::observer::GetFlowsRequest req;
  req.set_follow(true);
  auto reader = stub_->GetFlows(&ctx, req);
  // Each write goes to a stream that has caught up and parked: each one resumes it.
  std::thread writer([&] {
    for (int i = 0; i < 5; ++i) {
      if (!WaitParked(1)) return;
      Write(1);
    }
  });
  ::observer::GetFlowsResponse resp;
  std::vector<uint32_t> ports;
  while (ports.size() < 5 && reader->Read(&resp))
    ports.push_back(resp.flow().l4().udp().source_port());
  writer.join();
  EXPECT_THAT(ports, ::testing::ElementsAre(3, 4, 5, 6, 7)) << "follow without number: new flows";
  EXPECT_EQ(service_->active_streams(), 1);
  ctx.TryCancel();
  while (reader->Read(&resp)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(testing::WaitUntil([&] { return service_->active_streams() == 0; }))
      << "the cancelled stream released its reader";
}

TEST_F(ObserverServiceTest, StatusNodesAndNamespaces) {
  Write(100);
  grpc::ClientContext c1;
  ::observer::ServerStatusResponse status;
  ASSERT_TRUE(stub_->ServerStatus(&c1, {}, &status).ok());
  EXPECT_EQ(status.num_flows(), 100u);
  EXPECT_EQ(status.max_flows(), 1023u);
  EXPECT_EQ(status.seen_flows(), 100u);
  EXPECT_GT(status.uptime_ns(), 0u);
  EXPECT_EQ(status.version(), "flowscope v0.1.0");
  EXPECT_GT(status.flows_rate(), 0.0);
  EXPECT_FALSE(status.has_num_connected_nodes()) << "node servers leave it unset";

  grpc::ClientContext c2;
  ::observer::GetNodesResponse nodes;
  ASSERT_TRUE(stub_->GetNodes(&c2, {}, &nodes).ok());
  ASSERT_EQ(nodes.nodes_size(), 1);
  EXPECT_EQ(nodes.nodes(0).name(), "node-1");
  EXPECT_EQ(nodes.nodes(0).state(), relay::NODE_CONNECTED);
  EXPECT_EQ(nodes.nodes(0).num_flows(), 100u);

  grpc::ClientContext c3;
  ::observer::GetNamespacesResponse ns;
  ASSERT_TRUE(stub_->GetNamespaces(&c3, {}, &ns).ok());
  ASSERT_EQ(ns.namespaces_size(), 2);
  EXPECT_EQ(ns.namespaces(0).namespace_(), "default");
  EXPECT_EQ(ns.namespaces(1).namespace_(), "kube-system");
  EXPECT_EQ(ns.namespaces(1).cluster(), "default");
}

TEST_F(ObserverServiceTest, FollowOnAnEmptyRing) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  ::observer::GetFlowsRequest req;
  req.set_follow(true);
  auto reader = stub_->GetFlows(&ctx, req);
  // Follow starts from the newest record: write only once the stream has looked (and parked).
  ASSERT_TRUE(WaitParked(1));
  Write(1);
  ::observer::GetFlowsResponse resp;
  ASSERT_TRUE(reader->Read(&resp));
  EXPECT_TRUE(resp.has_flow());
  ctx.TryCancel();
  while (reader->Read(&resp)) {
  }
  reader->Finish();
}

TEST_F(ObserverServiceTest, FollowWithAnUntilInThePastEnds) {
  Write(3);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ::observer::GetFlowsRequest req;
  req.set_follow(true);
  *req.mutable_until() = ToTimestamp(absl::Now() - absl::Minutes(1));
  auto reader = stub_->GetFlows(&ctx, req);
  ::observer::GetFlowsResponse resp;
  int flows = 0;
  while (reader->Read(&resp)) flows += resp.has_flow();
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << "ends by itself, not at the deadline: " << status.error_message();
  EXPECT_EQ(flows, 0);
}

// The service on a clock the test moves.
class ObserverServiceClockTest : public ObserverServiceTest {
 protected:
  ObserverServiceClockTest() { clock_ = &manual_; }
  ManualClock manual_{absl::Now()};
};

TEST_F(ObserverServiceClockTest, AFollowWithAnUntilEndsOnceTheClockHasPassedIt) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  ::observer::GetFlowsRequest req;
  req.set_follow(true);
  *req.mutable_until() = ToTimestamp(manual_.Now() + absl::Hours(1));
  auto reader = stub_->GetFlows(&ctx, req);
  ASSERT_TRUE(WaitParked(1));
  Write(3);
  ::observer::GetFlowsResponse resp;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(reader->Read(&resp));
    EXPECT_TRUE(resp.has_flow());
  }
  ASSERT_TRUE(WaitParked(1)) << "nothing more until the hour has passed";
  EXPECT_EQ(service_->active_streams(), 1);
  // An hour and the late records' second later the stream ends by itself.
  manual_.Advance(absl::Hours(1) + FlowQuery::kLateRecords + absl::Seconds(1));
  EXPECT_FALSE(reader->Read(&resp));
  const grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(ObserverServiceClockTest, StatusIsOnTheServicesClock) {
  manual_.Advance(absl::Minutes(90));
  grpc::ClientContext ctx;
  ::observer::ServerStatusResponse status;
  ASSERT_TRUE(stub_->ServerStatus(&ctx, {}, &status).ok());
  EXPECT_EQ(status.uptime_ns(), static_cast<uint64_t>(absl::ToInt64Nanoseconds(absl::Minutes(90))));
}

TEST_F(ObserverServiceTest, StreamsBeyondTheCapAreResourceExhaustedUntilOneCloses) {
  server_->Shutdown(absl::Milliseconds(100));
  service_ = std::make_unique<ObserverService>(
      *ring_, *table_, *builder_,
      ObserverOptions{
          .node_name = "node-1", .address = "", .watermark = &watermark_, .max_streams = 2});
  auto server = GrpcServer::Start({service_.get(), service_->batch_service()}, {socket_, ""});
  ASSERT_TRUE(server.ok()) << server.status();
  server_ = std::move(server).value();
  stub_ = ::observer::Observer::NewStub(
      grpc::CreateChannel(server_->target(), grpc::InsecureChannelCredentials()));
  ::observer::GetFlowsRequest follow;
  follow.set_follow(true);
  grpc::ClientContext c1, c2;
  auto r1 = stub_->GetFlows(&c1, follow);
  auto r2 = stub_->GetFlows(&c2, follow);
  ASSERT_TRUE(WaitParked(2));
  grpc::Status status;
  ::observer::GetFlowsRequest last;
  last.set_number(5);
  EXPECT_TRUE(GetFlows(last, &status).empty());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(status.error_message(), HasSubstr("too many concurrent flow streams (2)"));
  c1.TryCancel();
  ::observer::GetFlowsResponse resp;
  while (r1->Read(&resp)) {
  }
  r1->Finish();
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (service_->active_streams() > 1 && absl::Now() < deadline) std::this_thread::yield();
  Write(5);
  EXPECT_EQ(GetFlows(last, &status).size(), 5u) << "a slot is free again";
  EXPECT_TRUE(status.ok()) << status.error_message();
  c2.TryCancel();
  while (r2->Read(&resp)) {
  }
  r2->Finish();
}

TEST_F(ObserverServiceTest, SlowClientIsLappedAndToldHowMuchItLost) {
  // A follow stream that does not read while far more than the ring holds is written.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(15));
  ::observer::GetFlowsRequest req;
  req.set_follow(true);
  auto reader = stub_->GetFlows(&ctx, req);
  ASSERT_TRUE(WaitParked(1));
  for (int i = 0; i < 20; ++i) Write(1000);  // 20 ring-fulls; the writer never waits
  uint64_t flows = 0;
  uint64_t lost = 0;
  ::observer::GetFlowsResponse resp;
  const absl::Time deadline = absl::Now() + absl::Seconds(20);
  while (flows + lost < 20000 && absl::Now() < deadline && reader->Read(&resp)) {
    if (resp.has_flow()) ++flows;
    if (resp.has_lost_events()) {
      EXPECT_EQ(resp.lost_events().source(), flow::HUBBLE_RING_BUFFER);
      lost += resp.lost_events().num_events_lost();
    }
  }
  EXPECT_EQ(flows + lost, 20000u) << "flows " << flows << " lost " << lost;
  EXPECT_GT(lost, 0u);
  ctx.TryCancel();
  while (reader->Read(&resp)) {
  }
  reader->Finish();
}

int64_t Nanos(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1'000'000'000 + t.nanos();
}

TEST_F(ObserverServiceTest, BatchesCarryHistoryInOrderAndEnd) {
  Write(1000);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ::observer::GetFlowsRequest req;
  req.set_number(800);
  auto reader = batch_stub_->GetFlowBatches(&ctx, req);
  ::flowscope::v1::FlowBatch batch;
  std::vector<uint32_t> ports;
  int batches = 0;
  int64_t promised = 0;
  while (reader->Read(&batch)) {
    ++batches;
    EXPECT_LE(batch.events_size(), 256);
    for (const auto& e : batch.events()) {
      ASSERT_TRUE(e.has_flow());
      EXPECT_GE(Nanos(e.time()), promised) << "older than a watermark already sent";
      ports.push_back(e.flow().l4().udp().source_port());
    }
    EXPECT_GE(Nanos(batch.watermark()), promised) << "watermarks never go back";
    promised = Nanos(batch.watermark());
  }
  EXPECT_TRUE(reader->Finish().ok());
  ASSERT_EQ(ports.size(), 800u) << "the same flows GetFlows gives, the newest 800";
  for (size_t i = 0; i < ports.size(); ++i) ASSERT_EQ(ports[i], 200 + i);
  EXPECT_EQ(batches, 4) << "many flows per message, at most max_batch_events (256 here)";

  grpc::ClientContext bad;
  ::observer::GetFlowsRequest invalid;
  invalid.add_whitelist()->add_source_ip("not-an-ip");
  auto failing = batch_stub_->GetFlowBatches(&bad, invalid);
  EXPECT_FALSE(failing->Read(&batch));
  const grpc::Status status = failing->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("not-an-ip"));
}

// A kernel drop carries flowscope's KernelDrop in Flow.extensions only for a client that asked
// (flowscope.v1.GetFlowsOptions), on both APIs: a Hubble client's JSON printer cannot resolve it.
TEST_F(ObserverServiceTest, FlowExtensionsOnlyForClientsThatAsk) {
  FlowRecord r;
  r.time_ns = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  r.family = FS_FAMILY_IPV4;
  r.protocol = IPPROTO_UDP;
  r.dport = 9;
  r.verdict = FS_VERDICT_DROPPED;
  r.emit_reason = FS_EMIT_KERNEL_DROP;
  r.is_reply = FS_REPLY_UNKNOWN;
  r.policy = *bpf::KernelDropReasonId("NO_SOCKET");
  r.src_endpoint = r.dst_endpoint = kWorldEndpointId;
  ring_->Write(r);
  ring_->Publish();

  ::observer::GetFlowsRequest plain;
  plain.set_number(1);
  ::observer::GetFlowsRequest asking = plain;
  RequestFlowExtensions(&asking);
  grpc::Status status;
  auto got = GetFlows(plain, &status);
  ASSERT_EQ(got.size(), 1u) << status.error_message();
  EXPECT_FALSE(got[0].flow().has_extensions());
  EXPECT_EQ(got[0].flow().summary(), "NO_SOCKET");
  got = GetFlows(asking, &status);
  ASSERT_EQ(got.size(), 1u) << status.error_message();
  ::flowscope::v1::KernelDrop drop;
  ASSERT_TRUE(got[0].flow().extensions().UnpackTo(&drop));
  EXPECT_EQ(drop.reason(), "NO_SOCKET");

  for (const bool ask : {false, true}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = batch_stub_->GetFlowBatches(&ctx, ask ? asking : plain);
    ::flowscope::v1::FlowBatch batch;
    int flows = 0;
    while (reader->Read(&batch)) {
      for (const auto& e : batch.events()) {
        ++flows;
        EXPECT_EQ(e.flow().has_extensions(), ask);
      }
    }
    EXPECT_TRUE(reader->Finish().ok());
    EXPECT_EQ(flows, 1);
  }

  // Another vendor's request extension is ignored, as Hubble ignores it; flowscope's own must
  // decode.
  ::observer::GetFlowsRequest other = plain;
  other.mutable_extensions()->set_type_url("type.googleapis.com/example.Other");
  other.mutable_extensions()->set_value("\xff");
  EXPECT_EQ(GetFlows(other, &status).size(), 1u);
  EXPECT_TRUE(status.ok());
  ::observer::GetFlowsRequest broken = asking;
  broken.mutable_extensions()->set_value("\xff");
  EXPECT_TRUE(GetFlows(broken, &status).empty());
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("GetFlowsOptions"));
}

// A batch closes at max_batch_bytes as well as at max_batch_events (large flows stay well
// under what a gRPC client accepts in one message).
TEST_F(ObserverServiceTest, BatchesCloseAtTheirByteLimit) {
  Write(1000);
  ObserverService small(*ring_, *table_, *builder_,
                        ObserverOptions{.node_name = "node-1",
                                        .address = "unix://" + (dir_ / "small.sock").string(),
                                        .watermark = &watermark_,
                                        .max_batch_events = 256,
                                        .max_batch_bytes = 8192,
                                        .clock = clock_});
  auto server =
      GrpcServer::Start({&small, small.batch_service()}, {(dir_ / "small.sock").string(), ""});
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = ::flowscope::v1::FlowStream::NewStub(
      grpc::CreateChannel((*server)->target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ::observer::GetFlowsRequest req;
  req.set_first(true);
  auto reader = stub->GetFlowBatches(&ctx, req);
  ::flowscope::v1::FlowBatch batch;
  size_t flows = 0, batches = 0, largest_event = 0;
  while (reader->Read(&batch)) {
    ++batches;
    for (const auto& e : batch.events()) largest_event = std::max(largest_event, e.ByteSizeLong());
    EXPECT_LE(batch.ByteSizeLong(), 8192 + largest_event + 64) << "closed once past the limit";
    EXPECT_LE(batch.events_size(), 256);
    flows += static_cast<size_t>(batch.events_size());
  }
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(flows, 1000u);
  EXPECT_GE(batches, 1000 * largest_event / (8192 + largest_event)) << "cut by bytes, not count";
  EXPECT_GT(batches, 4u);
  (*server)->Shutdown(absl::Milliseconds(100));
}

TEST_F(ObserverServiceTest, IdleFollowBatchesCarryTheDrainWatermark) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  ::observer::GetFlowsRequest req;
  req.set_follow(true);
  auto reader = batch_stub_->GetFlowBatches(&ctx, req);
  // The drain promises a time while the ring stays empty: it reaches the client in empty
  // batches (heartbeats), without any flow being written.
  const int64_t promise = absl::ToUnixNanos(absl::Now());
  watermark_.Advance(static_cast<uint64_t>(promise));
  ::flowscope::v1::FlowBatch batch;
  int empty = 0;
  while (reader->Read(&batch)) {
    ASSERT_EQ(batch.events_size(), 0);
    ++empty;
    if (Nanos(batch.watermark()) == promise) break;
  }
  EXPECT_EQ(Nanos(batch.watermark()), promise);
  // And they keep coming while nothing happens.
  ASSERT_TRUE(reader->Read(&batch));
  EXPECT_EQ(batch.events_size(), 0);
  EXPECT_EQ(Nanos(batch.watermark()), promise);
  ctx.TryCancel();
  while (reader->Read(&batch)) {
  }
  reader->Finish();
}

TEST_F(ObserverServiceTest, FollowBatchesKeepTheirPromiseUnderConcurrentWrites) {
  // A writer that behaves as the drain thread does: record times never below the last one or
  // its last promise (events a little late are raised), promise advanced after each publish.
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  ::observer::GetFlowsRequest req;
  req.set_follow(true);
  auto reader = batch_stub_->GetFlowBatches(&ctx, req);
  ::flowscope::v1::FlowBatch batch;
  ASSERT_TRUE(reader->Read(&batch)) << "a follow stream says where it stands at once";
  EXPECT_EQ(batch.events_size(), 0);
  constexpr int kRecords = 20000;
  std::thread writer([&] {
    EndpointTable::Resolver res(*table_);
    uint64_t floor = 0;
    for (int i = 0; i < kRecords;) {
      const uint64_t started = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
      for (int k = 0; k < 37 && i < kRecords; ++k, ++i) {
        // Stamped up to 2 ms before the pass started, as late kernel events are.
        const uint64_t stamped = started - static_cast<uint64_t>((i * 7919) % 2'000'000);
        floor = std::max(floor, stamped);  // the parser keeps the ring in time order
        ring_->Write(
            testing::DnsQueryRecord(floor, "10.0.1.5", "10.0.3.2", static_cast<uint16_t>(i), res));
      }
      ring_->Publish();
      floor = std::max(floor, started - 1'000'000);
      watermark_.Advance(floor);
      if (i % 370 == 0) absl::SleepFor(absl::Microseconds(200));
    }
  });
  int64_t promised = 0;
  int got = 0;
  uint64_t lost = 0;
  while (got + static_cast<int>(lost) < kRecords && reader->Read(&batch)) {
    for (const auto& e : batch.events()) {
      EXPECT_GE(Nanos(e.time()), promised) << "event " << got << " is older than a promise";
      if (e.has_flow()) ++got;
      if (e.has_lost_events()) lost += e.lost_events().num_events_lost();
    }
    ASSERT_GE(Nanos(batch.watermark()), promised);
    promised = Nanos(batch.watermark());
  }
  writer.join();
  EXPECT_EQ(got + static_cast<int>(lost), kRecords) << got << " flows, " << lost << " lost";
  ctx.TryCancel();
  while (reader->Read(&batch)) {
  }
  reader->Finish();
}

TEST(GrpcServerTest, StaleSocketIsReplacedLiveOneIsNot) {
  const auto dir = std::filesystem::temp_directory_path() / ("fs-sock-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "obs.sock").string();
  auto ring = std::move(Ring::Create(7)).value();
  EndpointTable table("default");
  FlowBuilder builder(table, "n", nullptr, 1);
  ObserverService svc(*ring, table, builder, ObserverOptions{"n", path});
  {
    auto first = GrpcServer::Start({&svc}, {path, ""});
    ASSERT_TRUE(first.ok()) << first.status();
    auto second = GrpcServer::Start({&svc}, {path, ""});
    ASSERT_FALSE(second.ok());
    EXPECT_THAT(std::string(second.status().message()), HasSubstr("another server is listening"));
    // Simulate a crash: the socket file stays behind, nobody listens.
    (*first)->Shutdown(absl::Milliseconds(10));
  }
  std::ofstream(dir / "not-a-socket") << "x";
  EXPECT_EQ(PrepareUnixSocket((dir / "not-a-socket").string()).code(),
            absl::StatusCode::kFailedPrecondition);
  // A leftover socket file with no listener.
  {
    const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    close(fd);  // bound, never listened: connect() is refused
  }
  auto again = GrpcServer::Start({&svc}, {path, ""});
  EXPECT_TRUE(again.ok()) << again.status();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace flowscope::observer

namespace flowscope::observer {
namespace {

TEST(ObserverStatusTest, FlowsRateOverTheLastMinuteOrTheTimeTheRingCovers) {
  auto ring = std::move(Ring::Create(1023)).value();
  EndpointTable table("default");
  FlowBuilder builder(table, "n", nullptr, 1);
  ObserverService svc(*ring, table, builder, ObserverOptions{"n", "x"});
  const absl::Time now = absl::FromUnixSeconds(1'800'000'000);
  ::observer::ServerStatusResponse st;
  svc.Status(now, &st);
  EXPECT_EQ(st.flows_rate(), 0.0) << "an empty ring";
  auto write_at = [&](absl::Time t) {
    FlowRecord r;
    r.time_ns = static_cast<uint64_t>(absl::ToUnixNanos(t));
    ring->Write(r);
  };
  // 30 flows over the last 30 s only: 30 / 30 s.
  for (int i = 30; i >= 1; --i) write_at(now - absl::Seconds(i));
  ring->Publish();
  svc.Status(now, &st);
  EXPECT_NEAR(st.flows_rate(), 1.0, 1e-9);
  // Now 600 flows spread over the last 600 s: 60 of them in the last minute.
  auto ring2 = std::move(Ring::Create(1023)).value();
  ObserverService svc2(*ring2, table, builder, ObserverOptions{"n", "x"});
  for (int i = 600; i >= 1; --i) {
    FlowRecord r;
    r.time_ns = static_cast<uint64_t>(absl::ToUnixNanos(now - absl::Seconds(i)));
    ring2->Write(r);
  }
  ring2->Publish();
  svc2.Status(now, &st);
  EXPECT_NEAR(st.flows_rate(), 1.0, 1e-9);
  EXPECT_EQ(st.num_flows(), 600u);
}

TEST(GrpcServerTest, ServesOnATcpPortToo) {
  auto ring = std::move(Ring::Create(7)).value();
  EndpointTable table("default");
  FlowBuilder builder(table, "n", nullptr, 1);
  ObserverService svc(*ring, table, builder, ObserverOptions{"n", "x"});
  auto server = GrpcServer::Start({&svc}, {"", "127.0.0.1:0"});
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_GT((*server)->tcp_port(), 0);
  auto stub = ::observer::Observer::NewStub(
      grpc::CreateChannel((*server)->target(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ::observer::ServerStatusResponse st;
  ASSERT_TRUE(stub->ServerStatus(&ctx, {}, &st).ok());
  EXPECT_EQ(st.max_flows(), 7u);
}

}  // namespace
}  // namespace flowscope::observer
