// Kernel drops (the skb:kfree_skb program of bpf/flow.bpf.c) with real traffic between network
// namespaces: a packet to a closed UDP port (NO_SOCKET) and one an nftables rule drops
// (NETFILTER_DROP) are reported with their endpoints and reasons; drops between addresses
// nobody watches are not; repeated drops of one flow are reported once per interval and the
// rest counted.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "bpf/datapath.h"
#include "bpf/drop_reasons.h"
#include "tests/testing/flow_events.h"
#include "tests/testing/netns_test_base.h"
#include "tests/testing/wait.h"

namespace flowscope::bpf {
namespace {

using testing::InNetns;
using testing::TestNetwork;

watch_key Watch(const char* ip) {
  watch_key k{};
  k.family = FS_FAMILY_IPV4;
  inet_pton(AF_INET, ip, &k.addr[0]);
  return k;
}

std::string Ip4(const __u32 a[4]) {
  char buf[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, a, buf, sizeof buf);
  return buf;
}

// Sends `count` UDP datagrams from inside `netns` to ip:port.
void SendUdp(const std::string& netns, const char* ip, uint16_t port, int count) {
  InNetns(netns, [&] {
    const int fd = socket(AF_INET, SOCK_DGRAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    inet_pton(AF_INET, ip, &to.sin_addr);
    for (int i = 0; i < count; ++i) {
      ASSERT_EQ(sendto(fd, "drop me", 7, 0, reinterpret_cast<sockaddr*>(&to), sizeof to), 7);
    }
    close(fd);
  });
}

class KernelDropTest : public testing::NetnsTestBase {
 protected:
  void SetUp() override {
    NetnsTestBase::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    DatapathOptions o;
    o.ring_buffer_bytes = 1 << 20;
    o.flow_table_entries = 1024;
    auto dp = Datapath::Load(o);
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(dp).value();
    if (!dp_->kernel_drops_unavailable().empty()) {
      GTEST_SKIP() << "this kernel cannot report drops: " << dp_->kernel_drops_unavailable();
    }
    auto c = testing::FlowEventCollector::Create(*dp_);
    ASSERT_TRUE(c.ok()) << c.status();
    events_ = std::move(c).value();
  }

  // The kernel drops of UDP collected until one to `marker_port` arrives (or 10 s pass); the
  // ring buffer keeps the order in which they were reported.
  std::vector<flow_event> UdpDropsUntil(uint16_t marker_port) {
    std::vector<flow_event> out;
    testing::WaitUntil([&] {
      bool seen = false;
      for (const flow_event& e : events_->Drain()) {
        if (e.emit_reason == FS_EMIT_KERNEL_DROP && e.protocol == IPPROTO_UDP) {
          out.push_back(e);
          seen = seen || e.dport == marker_port;
        }
      }
      return seen;
    });
    return out;
  }

  static std::vector<uint16_t> Ports(const std::vector<flow_event>& events) {
    std::vector<uint16_t> out;
    for (const flow_event& e : events) out.push_back(e.dport);
    return out;
  }

  std::string ReasonName(const flow_event& e) const {
    const std::vector<uint8_t>& ids = dp_->kernel_reason_ids();
    return std::string(KernelDropReasonName(e.kernel_reason < ids.size() ? ids[e.kernel_reason]
                                                                         : kKernelReasonUnknown));
  }

  std::unique_ptr<Datapath> dp_;
  std::unique_ptr<testing::FlowEventCollector> events_;
};

TEST_F(KernelDropTest, ClosedUdpPortIsANoSocketDropOfTheWatchedEndpoint) {
  ASSERT_TRUE(dp_->SetWatchedAddresses({Watch(TestNetwork::kIpB)}).ok());
  SendUdp(net_->pod_a(), TestNetwork::kIpB, 9, 1);
  const std::vector<flow_event> drops = UdpDropsUntil(9);
  ASSERT_EQ(drops.size(), 1u);
  const flow_event& e = drops[0];
  EXPECT_EQ(ReasonName(e), "NO_SOCKET");
  EXPECT_EQ(e.verdict, FS_VERDICT_DROPPED);
  EXPECT_EQ(e.drop_reason, 0);  // user space maps the kernel's reason
  EXPECT_EQ(e.family, FS_FAMILY_IPV4);
  EXPECT_EQ(Ip4(e.saddr), TestNetwork::kIpA);
  EXPECT_EQ(Ip4(e.daddr), TestNetwork::kIpB);
  EXPECT_EQ(e.dport, 9);
  EXPECT_NE(e.sport, 0);
  EXPECT_EQ(e.is_reply, FS_REPLY_UNKNOWN);
  EXPECT_EQ(e.obs_point, FS_OBS_UNKNOWN);
  EXPECT_GT(e.pkt_len, 0u);
  auto st = dp_->ReadStats();
  ASSERT_TRUE(st.ok());
  EXPECT_GE(st->kernel_drops, 1u);
}

TEST_F(KernelDropTest, NftablesDropIsANetfilterDrop) {
  ASSERT_TRUE(testing::ShIn(net_->pod_b(),
                            "nft add table inet fstest && "
                            "nft add chain inet fstest input '{ type filter hook input priority 0; "
                            "}' && nft add rule inet fstest input udp dport 7777 drop")
                  .ok());
  ASSERT_TRUE(dp_->SetWatchedAddresses({Watch(TestNetwork::kIpA)}).ok());
  SendUdp(net_->pod_a(), TestNetwork::kIpB, 7777, 1);
  const std::vector<flow_event> drops = UdpDropsUntil(7777);
  ASSERT_EQ(drops.size(), 1u);
  EXPECT_EQ(ReasonName(drops[0]), "NETFILTER_DROP");
  EXPECT_EQ(Ip4(drops[0].saddr), TestNetwork::kIpA);
  EXPECT_EQ(Ip4(drops[0].daddr), TestNetwork::kIpB);
}

TEST_F(KernelDropTest, DropsBetweenUnwatchedAddressesAreNotReported) {
  // Nothing watched: the program returns at once.
  SendUdp(net_->pod_a(), TestNetwork::kIpB, 9, 1);
  // Pod b watched, but this drop is the node's packet to pod a.
  ASSERT_TRUE(dp_->SetWatchedAddresses({Watch(TestNetwork::kIpB)}).ok());
  SendUdp(net_->node(), TestNetwork::kIpA, 10, 3);
  // Unwatched again.
  ASSERT_TRUE(dp_->SetWatchedAddresses({}).ok());
  SendUdp(net_->pod_a(), TestNetwork::kIpB, 11, 1);
  // A watched drop last: every drop before it would have been reported before it.
  ASSERT_TRUE(dp_->SetWatchedAddresses({Watch(TestNetwork::kIpB)}).ok());
  SendUdp(net_->pod_a(), TestNetwork::kIpB, 12, 1);
  EXPECT_THAT(Ports(UdpDropsUntil(12)), ::testing::ElementsAre(12));
}

TEST_F(KernelDropTest, RepeatedDropsOfAFlowAreReportedOncePerIntervalAndCounted) {
  ASSERT_TRUE(dp_->SetWatchedAddresses({Watch(TestNetwork::kIpB)}).ok());
  auto before = dp_->ReadStats();
  ASSERT_TRUE(before.ok());
  SendUdp(net_->pod_a(), TestNetwork::kIpB, 9, 10);  // one socket: one flow
  SendUdp(net_->pod_a(), TestNetwork::kIpB, 12, 1);  // another flow, reported after them
  EXPECT_THAT(Ports(UdpDropsUntil(12)), ::testing::ElementsAre(9, 12));
  auto after = dp_->ReadStats();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->kernel_drops - before->kernel_drops, 11u);
  EXPECT_EQ(after->kernel_drops_suppressed - before->kernel_drops_suppressed, 9u);
}

}  // namespace
}  // namespace flowscope::bpf
