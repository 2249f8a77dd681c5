// peer.Peer/Notify over real gRPC on a unix socket: a stream starts with PEER_ADDED for every
// node, then carries each change (added, updated, deleted); a second stream gets the current
// set; Shutdown ends open streams; the client keeps the announced set, adds Hubble's default
// port, and reconnects to a restarted server; the relay's pool takes the announced nodes as
// peers (--peer-service).
#include "api/peer_service.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "api/grpc_server.h"
#include "relay/peer_pool.h"
#include "tests/testing/wait.h"

namespace flowscope {
namespace {

using ::testing::ElementsAre;
using ::testing::Field;

class PeerServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) / absl::StrCat("peers-", getpid());
    std::filesystem::create_directories(dir_);
    socket_ = (dir_ / "peers.sock").string();
    Set({{"node-1", "10.0.0.1:4244", ""}, {"node-2", "10.0.0.2", "node-2.hubble-grpc.test"}});
  }
  void TearDown() override {
    service_.reset();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void Set(std::vector<PeerEntry> entries) {
    std::lock_guard<std::mutex> lock(mu_);
    entries_ = std::move(entries);
  }
  void Serve() {
    service_ = std::make_unique<PeerNotifyService>(
        [this] {
          std::lock_guard<std::mutex> lock(mu_);
          return entries_;
        },
        absl::Hours(1));  // the test polls
    auto server = GrpcServer::Start({service_.get()}, ListenOptions(socket_));
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(server).value();
  }
  void StopServing() {
    service_->Shutdown();
    server_->Shutdown(absl::Milliseconds(100));
    server_.reset();
    service_.reset();
  }
  std::shared_ptr<grpc::Channel> Channel() {
    return grpc::CreateChannel("unix://" + socket_, grpc::InsecureChannelCredentials());
  }
  static std::string Text(const peer::ChangeNotification& n) {
    return absl::StrCat(peer::ChangeNotificationType_Name(n.type()), " ", n.name(), " ",
                        n.address(), n.has_tls() ? " tls:" + n.tls().server_name() : "");
  }

  std::filesystem::path dir_;
  std::string socket_;
  std::mutex mu_;
  std::vector<PeerEntry> entries_;
  std::unique_ptr<PeerNotifyService> service_;
  std::unique_ptr<GrpcServer> server_;
};

TEST_F(PeerServiceTest, AStreamStartsWithEveryNodeThenCarriesEachChange) {
  Serve();
  auto stub = peer::Peer::NewStub(Channel());
  grpc::ClientContext ctx;
  auto reader = stub->Notify(&ctx, peer::NotifyRequest());
  peer::ChangeNotification n;
  std::vector<std::string> got;
  for (int i = 0; i < 2 && reader->Read(&n); ++i) got.push_back(Text(n));
  EXPECT_THAT(got, ElementsAre("PEER_ADDED node-1 10.0.0.1:4244",
                               "PEER_ADDED node-2 10.0.0.2 tls:node-2.hubble-grpc.test"));

  // node-1 moves, node-2 goes, node-3 comes; an entry without a name is not a node.
  Set({{"node-1", "10.0.0.11:4244", ""}, {"node-3", "10.0.0.3:4244", ""}, {"", "10.9.9.9", ""}});
  service_->Poll();
  got.clear();
  for (int i = 0; i < 3 && reader->Read(&n); ++i) got.push_back(Text(n));
  EXPECT_THAT(got,
              ElementsAre("PEER_DELETED node-2 10.0.0.2 tls:node-2.hubble-grpc.test",
                          "PEER_UPDATED node-1 10.0.0.11:4244", "PEER_ADDED node-3 10.0.0.3:4244"));
  service_->Poll();  // nothing changed: nothing sent

  // A second stream gets the set as it is now.
  grpc::ClientContext ctx2;
  auto reader2 = stub->Notify(&ctx2, peer::NotifyRequest());
  got.clear();
  for (int i = 0; i < 2 && reader2->Read(&n); ++i) got.push_back(Text(n));
  EXPECT_THAT(got,
              ElementsAre("PEER_ADDED node-1 10.0.0.11:4244", "PEER_ADDED node-3 10.0.0.3:4244"));
  EXPECT_EQ(service_->streams(), 2u);

  // A client that goes away is forgotten; Shutdown ends the others with OK.
  ctx2.TryCancel();
  while (reader2->Read(&n)) {
  }
  EXPECT_EQ(reader2->Finish().error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_TRUE(testing::WaitUntil([&] { return service_->streams() == 1; }));
  service_->Shutdown();
  EXPECT_FALSE(reader->Read(&n)) << "nothing after the last change: " << Text(n);
  EXPECT_TRUE(reader->Finish().ok());
  EXPECT_EQ(service_->streams(), 0u);
}

TEST_F(PeerServiceTest, TheClientKeepsTheAnnouncedSetAndReconnects) {
  Serve();
  PeerNotifyClient client(Channel(), "unix://" + socket_);
  client.Start();
  // The peers once they are `names` (changes arrive one notification at a time).
  const auto wait_for = [&](std::vector<std::string> names) {
    std::vector<PeerEntry> peers;
    testing::WaitUntil([&] {
      peers = client.Peers();
      std::vector<std::string> now;
      for (const PeerEntry& p : peers) now.push_back(p.name);
      return now == names;
    });
    return peers;
  };
  EXPECT_THAT(wait_for({"node-1", "node-2"}),
              ElementsAre(Field(&PeerEntry::address, "10.0.0.1:4244"),
                          Field(&PeerEntry::address, "10.0.0.2:4244")))
      << "an address without a port gets Hubble's 4244";
  EXPECT_EQ(client.Peers()[1].tls_server_name, "node-2.hubble-grpc.test");
  EXPECT_TRUE(client.connected());
  Set({{"node-3", "unix:///run/node-3.sock", ""}});
  service_->Poll();
  EXPECT_THAT(wait_for({"node-3"}), ElementsAre(Field(&PeerEntry::name, "node-3")));

  // The server goes away: the set stays; it comes back with other nodes: they replace it.
  StopServing();
  EXPECT_TRUE(testing::WaitUntil([&] { return !client.connected(); }));
  EXPECT_THAT(client.Peers(), ElementsAre(Field(&PeerEntry::name, "node-3")));
  Set({{"node-4", "fd00::4", ""}, {"node-5", "10.0.0.5:4244", ""}});
  Serve();
  EXPECT_THAT(wait_for({"node-4", "node-5"}),
              ElementsAre(Field(&PeerEntry::address, "[fd00::4]:4244"),
                          Field(&PeerEntry::address, "10.0.0.5:4244")));
  client.Stop();  // returns although the stream is open
}

TEST_F(PeerServiceTest, TheRelaysPoolTakesTheAnnouncedNodesAsPeers) {
  Serve();
  relay::PoolOptions o;
  o.peer_service = "unix://" + socket_;
  o.static_peers = {"unix:///run/static.sock"};
  o.dial_timeout = absl::Milliseconds(50);
  relay::PeerPool pool(o);
  pool.Start();
  std::vector<std::string> now;
  testing::WaitUntil([&] { return (now = pool.Discover()).size() == 3; });
  EXPECT_THAT(now, ElementsAre("10.0.0.1:4244", "10.0.0.2:4244", "unix:///run/static.sock"));
  Set({{"node-1", "10.0.0.1:4244", ""}});
  service_->Poll();
  testing::WaitUntil([&] { return (now = pool.Discover()).size() == 2; });
  EXPECT_THAT(now, ElementsAre("10.0.0.1:4244", "unix:///run/static.sock"));
  pool.Stop();
}

TEST(PeerAddressTest, HubblesDefaultPort) {
  EXPECT_EQ(WithDefaultPeerPort("10.0.0.2"), "10.0.0.2:4244");
  EXPECT_EQ(WithDefaultPeerPort("10.0.0.2:4245"), "10.0.0.2:4245");
  EXPECT_EQ(WithDefaultPeerPort("fd00::2"), "[fd00::2]:4244");
  EXPECT_EQ(WithDefaultPeerPort("[fd00::2]"), "[fd00::2]:4244");
  EXPECT_EQ(WithDefaultPeerPort("[fd00::2]:80"), "[fd00::2]:80");
  EXPECT_EQ(WithDefaultPeerPort("node-2.example"), "node-2.example:4244");
  EXPECT_EQ(WithDefaultPeerPort("unix:///run/x.sock"), "unix:///run/x.sock");
  EXPECT_EQ(WithDefaultPeerPort(""), "");
}

}  // namespace
}  // namespace flowscope
