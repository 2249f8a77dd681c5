// PeerPool discovery: static peers, DNS names (one peer per address record), and a peers file
// re-read while the pool runs; peers that leave discovery are closed. Nothing here listens, so
// every peer stays unavailable and keeps its address as its name.
#include "relay/peer_pool.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include "tests/testing/wait.h"

namespace flowscope::relay {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

class PeerPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("fs-peers-" + std::to_string(getpid()));
    std::filesystem::create_directories(dir_);
    file_ = (dir_ / "peers").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void WriteFile(const std::string& text) {
    const std::string tmp = file_ + ".tmp";
    std::ofstream(tmp) << text;
    std::filesystem::rename(tmp, file_);
  }

  static std::vector<std::string> Addresses(const PeerPool& pool) {
    std::vector<std::string> out;
    for (const Peer& p : pool.Snapshot()) out.push_back(p.address);
    return out;
  }

  std::filesystem::path dir_;
  std::string file_;
};

TEST_F(PeerPoolTest, StaticAndFilePeersAreMergedSortedAndDeduplicated) {
  WriteFile("# observers\n  unix:///run/b.sock  \n\n127.0.0.1:4244\n#127.0.0.9:1\n");
  PoolOptions o;
  o.static_peers = {"127.0.0.1:4244", "unix:///run/a.sock"};
  o.peers_file = file_;
  PeerPool pool(o);
  EXPECT_THAT(pool.Discover(),
              ElementsAre("127.0.0.1:4244", "unix:///run/a.sock", "unix:///run/b.sock"));
}

TEST_F(PeerPoolTest, AnUnreadablePeersFileKeepsItsLastPeers) {
  WriteFile("unix:///run/a.sock\n");
  PoolOptions o;
  o.static_peers = {"unix:///run/s.sock"};
  o.peers_file = file_;
  PeerPool pool(o);
  EXPECT_THAT(pool.Discover(), ElementsAre("unix:///run/a.sock", "unix:///run/s.sock"));
  std::filesystem::remove(file_);  // mid-replacement, or deleted by mistake
  EXPECT_THAT(pool.Discover(), ElementsAre("unix:///run/a.sock", "unix:///run/s.sock"));
  WriteFile("# emptied on purpose\n");  // readable and empty: its peers go
  EXPECT_THAT(pool.Discover(), ElementsAre("unix:///run/s.sock"));
}

TEST_F(PeerPoolTest, DnsNamesGiveOnePeerPerAddressRecord) {
  // Only names /etc/hosts answers: the test must not send queries to a DNS server.
  std::ifstream hosts("/etc/hosts");
  std::string hosts_text((std::istreambuf_iterator<char>(hosts)), std::istreambuf_iterator<char>());
  if (hosts_text.find("localhost") == std::string::npos) {
    GTEST_SKIP() << "/etc/hosts has no localhost entry; resolving it would ask a DNS server";
  }
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  ASSERT_EQ(getaddrinfo("localhost", "4244", &hints, &res), 0);
  std::set<std::string> want;
  for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
    want.insert(a->ai_family == AF_INET ? "v4" : "v6");
  }
  freeaddrinfo(res);
  PoolOptions o;
  o.dns_peers = {"localhost:4244"};
  PeerPool pool(o);
  const std::vector<std::string> got = pool.Discover();
  if (want.contains("v4")) {
    EXPECT_THAT(got, Contains("127.0.0.1:4244"));
  }
  if (want.contains("v6")) {
    EXPECT_THAT(got, Contains("[::1]:4244"));
  }
}

TEST_F(PeerPoolTest, FileChangesAddAndClosePeersWhileRunning) {
  WriteFile("unix:///run/a.sock\nunix:///run/b.sock\n");
  PoolOptions o;
  o.peers_file = file_;
  o.refresh = absl::Milliseconds(50);
  o.dial_timeout = absl::Milliseconds(100);
  PeerPool pool(o);
  pool.Start();
  EXPECT_THAT(Addresses(pool), ElementsAre("unix:///run/a.sock", "unix:///run/b.sock"));
  for (const Peer& p : pool.Snapshot()) {
    EXPECT_FALSE(p.available) << p.address;
    EXPECT_EQ(p.name, p.address) << "no node told its name yet";
  }

  WriteFile("unix:///run/b.sock\nunix:///run/c.sock\n");
  testing::WaitUntil([&] {
    return Addresses(pool) == std::vector<std::string>{"unix:///run/b.sock", "unix:///run/c.sock"};
  });
  EXPECT_THAT(Addresses(pool), ElementsAre("unix:///run/b.sock", "unix:///run/c.sock"));

  WriteFile("# nobody\n");
  testing::WaitUntil([&] { return Addresses(pool).empty(); });
  EXPECT_THAT(Addresses(pool), IsEmpty());
  pool.Stop();
}

}  // namespace
}  // namespace flowscope::relay
