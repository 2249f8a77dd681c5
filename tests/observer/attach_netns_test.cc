// The datapath attached by AttachManager to the node side of two "pods" (network namespaces the
// test creates), with real traffic between them: TCP, UDP and ICMP flows with the right
// 5-tuples, directions, is_reply and TCP flag sequence; a deny rule that really blocks a TCP
// connection; malformed frames; new interfaces picked up; nothing left behind after Stop() or
// after a crash.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gmock/gmock.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/match.h"
#include "bpf/datapath.h"
#include "observer/attach_manager.h"
#include "ringbuf/event_consumer.h"
#include "tests/testing/bpf_env.h"
#include "tests/testing/flow_events.h"
#include "tests/testing/netns.h"
#include "tests/testing/netns_test_base.h"
#include "tests/testing/traffic.h"

namespace flowscope::observer {
namespace {

using testing::InNetns;
using testing::NetnsThread;
using testing::ShIn;
using testing::TcpExchange;
using testing::TestNetwork;
using testing::UdpExchange;

using testing::Ipv4;

class AttachNetnsTest : public testing::NetnsTestBase {
 protected:
  void SetUp() override {
    NetnsTestBase::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    bpf::DatapathOptions o;
    o.ring_buffer_bytes = 1 << 20;
    o.flow_table_entries = 4096;
    auto dp = bpf::Datapath::Load(o);
    ASSERT_TRUE(dp.ok()) << dp.status();
    dp_ = std::move(dp).value();
    auto c = testing::FlowEventCollector::Create(*dp_);
    ASSERT_TRUE(c.ok()) << c.status();
    events_ = std::move(c).value();
  }

  void TearDown() override {
    if (mgr_) mgr_->Stop();
    mgr_.reset();
    NetnsTestBase::TearDown();
  }

  std::string StateFile() const { return (dir_ / "tc.state").string(); }

  // Starts an AttachManager inside the node namespace, matching the test's interfaces.
  void StartManager() {
    auto rules = ParseInterfaceRules(net_->prefix() + "*", "");
    ASSERT_TRUE(rules.ok()) << rules.status();
    mgr_ = std::make_unique<AttachManager>(*dp_, AttachOptions{*rules, StateFile()});
    absl::Status started;
    InNetns(net_->node(), [&] { started = mgr_->Start(); });
    ASSERT_TRUE(started.ok()) << started;
  }

  uint32_t NodeIfindex(const std::string& name) {
    uint32_t idx = 0;
    InNetns(net_->node(), [&] { idx = if_nametoindex(name.c_str()); });
    return idx;
  }

  std::vector<flow_event> Drain() { return events_->Drain(); }

  std::unique_ptr<bpf::Datapath> dp_;
  std::unique_ptr<testing::FlowEventCollector> events_;
  std::unique_ptr<AttachManager> mgr_;
};

// Events of one L4 flow (either direction) seen at `ifindex` with observation point `point`.
std::vector<flow_event> Select(const std::vector<flow_event>& all, uint8_t protocol,
                               uint16_t port_a, uint16_t port_b, uint32_t ifindex, uint8_t point) {
  std::vector<flow_event> out;
  for (const auto& e : all) {
    if (e.protocol != protocol || e.ifindex != ifindex || e.obs_point != point) continue;
    const bool fwd = e.sport == port_a && e.dport == port_b;
    const bool rev = e.sport == port_b && e.dport == port_a;
    if (fwd || rev) out.push_back(e);
  }
  return out;
}

TEST_F(AttachNetnsTest, RealTcpUdpIcmpTrafficIsReported) {
  StartManager();
  const uint32_t if_a = NodeIfindex(net_->veth_a());
  const uint32_t if_b = NodeIfindex(net_->veth_b());
  ASSERT_NE(if_a, 0u);
  ASSERT_NE(if_b, 0u);
  ASSERT_EQ(mgr_->Attached().size(), 2u);

  const uint16_t tcp_port = TcpExchange(*net_, 8080);
  const uint16_t udp_port = UdpExchange(*net_, 5353);
  ASSERT_TRUE(ShIn(net_->pod_a(), std::string("ping -c 1 -W 5 ") + TestNetwork::kIpB).ok());
  const auto all = Drain();

  // TCP at pod a's interface: the client's packets come in (from-endpoint), the server's go out
  // (to-endpoint). Under medium aggregation: SYN and FIN one way, SYN-ACK and FIN the other.
  const auto a_in = Select(all, IPPROTO_TCP, tcp_port, 8080, if_a, FS_OBS_FROM_ENDPOINT);
  ASSERT_GE(a_in.size(), 2u);
  EXPECT_EQ(a_in[0].tcp_flags, FS_TCP_SYN);
  EXPECT_EQ(a_in[0].is_reply, FS_REPLY_NO);
  EXPECT_EQ(a_in[0].sport, tcp_port);
  EXPECT_EQ(a_in[0].dport, 8080);
  EXPECT_EQ(a_in[0].saddr[0], Ipv4(TestNetwork::kIpA));
  EXPECT_EQ(a_in[0].daddr[0], Ipv4(TestNetwork::kIpB));
  EXPECT_EQ(a_in[0].verdict, FS_VERDICT_FORWARDED);
  EXPECT_TRUE(a_in.back().tcp_flags & FS_TCP_FIN);
  EXPECT_EQ(a_in.back().is_reply, FS_REPLY_NO);
  EXPECT_GE(a_in.back().flow_packets, 4u) << "SYN, SYN-ACK, ACK, data... before the FIN";

  const auto a_out = Select(all, IPPROTO_TCP, tcp_port, 8080, if_a, FS_OBS_TO_ENDPOINT);
  ASSERT_GE(a_out.size(), 2u);
  EXPECT_EQ(a_out[0].tcp_flags, FS_TCP_SYN | FS_TCP_ACK);
  EXPECT_EQ(a_out[0].is_reply, FS_REPLY_YES);
  EXPECT_EQ(a_out[0].sport, 8080);
  EXPECT_TRUE(a_out.back().tcp_flags & FS_TCP_FIN);
  EXPECT_EQ(a_out.back().is_reply, FS_REPLY_YES);

  // At pod b's interface the SYN goes out towards the server.
  const auto b_out = Select(all, IPPROTO_TCP, tcp_port, 8080, if_b, FS_OBS_TO_ENDPOINT);
  ASSERT_FALSE(b_out.empty());
  EXPECT_EQ(b_out[0].tcp_flags, FS_TCP_SYN);
  EXPECT_EQ(b_out[0].is_reply, FS_REPLY_NO);
  const auto b_in = Select(all, IPPROTO_TCP, tcp_port, 8080, if_b, FS_OBS_FROM_ENDPOINT);
  ASSERT_FALSE(b_in.empty());
  EXPECT_EQ(b_in[0].tcp_flags, FS_TCP_SYN | FS_TCP_ACK);
  EXPECT_EQ(b_in[0].is_reply, FS_REPLY_YES);

  // UDP request and response.
  const auto u_in = Select(all, IPPROTO_UDP, udp_port, 5353, if_a, FS_OBS_FROM_ENDPOINT);
  const auto u_out = Select(all, IPPROTO_UDP, udp_port, 5353, if_a, FS_OBS_TO_ENDPOINT);
  ASSERT_EQ(u_in.size(), 1u);
  ASSERT_EQ(u_out.size(), 1u);
  EXPECT_EQ(u_in[0].dport, 5353);
  EXPECT_EQ(u_in[0].is_reply, FS_REPLY_NO);
  EXPECT_EQ(u_out[0].sport, 5353);
  EXPECT_EQ(u_out[0].is_reply, FS_REPLY_YES);

  // ICMP echo.
  const auto i_in = Select(all, IPPROTO_ICMP, 0, 0, if_a, FS_OBS_FROM_ENDPOINT);
  const auto i_out = Select(all, IPPROTO_ICMP, 0, 0, if_a, FS_OBS_TO_ENDPOINT);
  ASSERT_EQ(i_in.size(), 1u);
  ASSERT_EQ(i_out.size(), 1u);
  EXPECT_EQ(i_in[0].icmp_type, 8);
  EXPECT_EQ(i_in[0].is_reply, FS_REPLY_NO);
  EXPECT_EQ(i_out[0].icmp_type, 0);
  EXPECT_EQ(i_out[0].is_reply, FS_REPLY_YES);
  EXPECT_EQ(*events_->consumer().TakeLost(), 0u);
}

TEST_F(AttachNetnsTest, DenyRuleReallyBlocksATcpConnection) {
  StartManager();
  auto rule = bpf::DenyRule::Parse(TestNetwork::kIpA, TestNetwork::kIpB, "tcp", 8081);
  ASSERT_TRUE(rule.ok());
  ASSERT_TRUE(dp_->SetDenyRules({*rule}).ok());
  const uint32_t if_a = NodeIfindex(net_->veth_a());

  const bool connected = testing::TryConnect(*net_, 8081, absl::Milliseconds(1500));
  EXPECT_FALSE(connected) << "the deny rule must block the handshake";

  int drops = 0;
  for (const auto& e : Drain()) {
    if (e.protocol != IPPROTO_TCP || e.dport != 8081) continue;
    EXPECT_EQ(e.verdict, FS_VERDICT_DROPPED);
    EXPECT_EQ(e.drop_reason, FS_DROP_POLICY_DENIED);
    EXPECT_EQ(e.obs_point, FS_OBS_FROM_ENDPOINT);
    EXPECT_EQ(e.ifindex, if_a);
    EXPECT_EQ(e.tcp_flags, FS_TCP_SYN);
    EXPECT_EQ(e.is_reply, FS_REPLY_UNKNOWN);
    ++drops;
  }
  EXPECT_GE(drops, 2) << "the SYN and its retransmission";
  // Other ports still work.
  TcpExchange(*net_, 8080);
}

TEST_F(AttachNetnsTest, MalformedFramesOnTheWireAreCountedNotReported) {
  StartManager();
  InNetns(net_->pod_a(), [&] {
    const int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
    ASSERT_GE(s, 0) << strerror(errno);
    sockaddr_ll to{};
    to.sll_family = AF_PACKET;
    to.sll_ifindex = static_cast<int>(if_nametoindex("eth0"));
    to.sll_halen = 6;
    std::vector<std::vector<uint8_t>> frames;
    std::vector<uint8_t> cut(14 + 10, 0);  // IPv4 header cut at 10 bytes
    cut[12] = 0x08;
    cut[14] = 0x45;
    frames.push_back(cut);
    std::vector<uint8_t> bad_version(14 + 40, 0);
    bad_version[12] = 0x08;
    bad_version[14] = 0x75;
    frames.push_back(bad_version);
    for (auto& f : frames) {
      std::memset(f.data(), 0xff, 6);  // broadcast
      EXPECT_EQ(sendto(s, f.data(), f.size(), 0, reinterpret_cast<sockaddr*>(&to), sizeof to),
                static_cast<ssize_t>(f.size()))
          << strerror(errno);
    }
    close(s);
  });
  ASSERT_TRUE(ShIn(net_->pod_a(), std::string("ping -c 1 -W 5 ") + TestNetwork::kIpB).ok())
      << "traffic still flows";
  auto stats = dp_->ReadStats();
  ASSERT_TRUE(stats.ok());
  EXPECT_GE(stats->malformed, 2u);
  // Only the ping is reported (and IPv6 neighbour discovery the kernel sends on its own).
  for (const auto& e : Drain()) {
    if (e.family == FS_FAMILY_IPV6) continue;
    EXPECT_EQ(e.protocol, IPPROTO_ICMP);
    EXPECT_EQ(e.saddr[0] == Ipv4(TestNetwork::kIpA) ? e.daddr[0] : e.saddr[0],
              Ipv4(TestNetwork::kIpB));
  }
}

TEST_F(AttachNetnsTest, FollowsNewInterfacesAndLeavesNothingBehind) {
  // A clsact qdisc that someone else created must survive our Stop().
  ASSERT_TRUE(ShIn(net_->node(), "tc qdisc add dev " + net_->veth_b() + " clsact").ok());
  StartManager();
  EXPECT_TRUE(mgr_->WaitFor(net_->veth_a(), true, absl::Now() + absl::Seconds(5)));
  ASSERT_TRUE(net_->AddNodeVeth("c").ok());
  EXPECT_TRUE(mgr_->WaitFor(net_->prefix() + "c", true, absl::Now() + absl::Seconds(5)))
      << "a veth created after start is attached";
  ASSERT_TRUE(ShIn(net_->node(), "ip link del " + net_->prefix() + "c").ok());
  EXPECT_TRUE(mgr_->WaitFor(net_->prefix() + "c", false, absl::Now() + absl::Seconds(5)))
      << "a removed interface is forgotten";
  auto shown = ShIn(net_->node(), "tc filter show dev " + net_->veth_a() + " ingress");
  ASSERT_TRUE(shown.ok());
  EXPECT_THAT(*shown, ::testing::HasSubstr("flowscope_ingre"));
  EXPECT_TRUE(std::filesystem::exists(StateFile()));

  mgr_->Stop();
  for (const std::string& dev : {net_->veth_a(), net_->veth_b()}) {
    for (const char* dir : {"ingress", "egress"}) {
      auto f = ShIn(net_->node(), "tc filter show dev " + dev + " " + dir);
      ASSERT_TRUE(f.ok()) << f.status();
      EXPECT_EQ(*f, "") << dev << " " << dir;
    }
  }
  auto qa = ShIn(net_->node(), "tc qdisc show dev " + net_->veth_a());
  auto qb = ShIn(net_->node(), "tc qdisc show dev " + net_->veth_b());
  ASSERT_TRUE(qa.ok() && qb.ok());
  EXPECT_THAT(*qa, ::testing::Not(::testing::HasSubstr("clsact"))) << "ours is removed";
  EXPECT_THAT(*qb, ::testing::HasSubstr("clsact")) << "theirs is kept";
  EXPECT_FALSE(std::filesystem::exists(StateFile()));
}

TEST_F(AttachNetnsTest, LeftoversOfACrashedRunAreRemovedOnStart) {
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The "crashing" observer: attach, report ready, wait to be killed.
    if (!testing::EnterNetns(net_->node()).ok()) _exit(1);
    auto rules = ParseInterfaceRules(net_->prefix() + "*", "");
    auto dp = bpf::Datapath::Load(dp_->options());
    if (!rules.ok() || !dp.ok()) _exit(2);
    AttachManager mgr(**dp, AttachOptions{*rules, StateFile()});
    if (!mgr.Start().ok()) _exit(3);
    [[maybe_unused]] ssize_t n = write(ready[1], "1", 1);
    pause();
    _exit(0);
  }
  close(ready[1]);
  char c = 0;
  ASSERT_EQ(read(ready[0], &c, 1), 1) << "the child could not attach";
  close(ready[0]);
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);

  const std::string show = "tc filter show dev " + net_->veth_a() + " ingress";
  auto before = ShIn(net_->node(), show);
  ASSERT_TRUE(before.ok());
  ASSERT_THAT(*before, ::testing::HasSubstr("flowscope_ingre")) << "the crash left a filter";
  const std::string old_id = before->substr(before->find(" id "), 10);

  StartManager();
  auto during = ShIn(net_->node(), show);
  ASSERT_TRUE(during.ok());
  size_t filters = 0;
  for (size_t at = 0; (at = during->find("handle 0xf10c", at)) != std::string::npos; ++at) {
    ++filters;
  }
  EXPECT_EQ(filters, 1u) << *during;
  EXPECT_THAT(*during, ::testing::Not(::testing::HasSubstr(old_id)))
      << "the crashed run's program is gone";

  mgr_->Stop();
  auto after = ShIn(net_->node(), show);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(*after, "");
  auto q = ShIn(net_->node(), "tc qdisc show dev " + net_->veth_a());
  EXPECT_THAT(*q, ::testing::Not(::testing::HasSubstr("clsact")));
}

TEST_F(AttachNetnsTest, AMissingExplicitInterfaceIsReported) {
  auto rules = ParseInterfaceRules(net_->prefix() + "*", "nosuchif0");
  ASSERT_TRUE(rules.ok());
  mgr_ = std::make_unique<AttachManager>(*dp_, AttachOptions{*rules, StateFile()});
  absl::Status started;
  InNetns(net_->node(), [&] { started = mgr_->Start(); });
  ASSERT_TRUE(started.ok()) << started;
  const auto errors = mgr_->Errors();
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_THAT(errors[0], ::testing::HasSubstr("interface nosuchif0 does not exist"));
  EXPECT_EQ(mgr_->Attached().size(), 2u) << "the patterns still match";
}

TEST(DatapathPrivilegeTest, UnprivilegedLoadSaysWhatIsNeeded) {
  if (auto reason = testing::BpfUnavailableReason()) GTEST_SKIP() << *reason;
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // Drop to nobody, then try.
    if (setgroups(0, nullptr) != 0 || setresgid(65534, 65534, 65534) != 0 ||
        setresuid(65534, 65534, 65534) != 0) {
      _exit(1);
    }
    auto dp = bpf::Datapath::Load({});
    const std::string msg = dp.ok() ? "loaded" : std::string(dp.status().message());
    [[maybe_unused]] ssize_t n = write(out[1], msg.data(), msg.size());
    _exit(0);
  }
  close(out[1]);
  std::string msg;
  char buf[512];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) msg.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  if (msg == "loaded") GTEST_SKIP() << "this kernel lets unprivileged users load tc programs";
  EXPECT_THAT(msg, ::testing::HasSubstr("run as root, or with CAP_BPF, CAP_NET_ADMIN"));
}

TEST(InterfaceRulesTest, ParsesPatternsAndRejectsBadOnes) {
  auto r = ParseInterfaceRules("lxc*, veth*", "eth0");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 3u);
  EXPECT_EQ((*r)[0].pattern, "eth0");
  EXPECT_EQ((*r)[0].ingress, FS_OBS_FROM_NETWORK);
  EXPECT_EQ((*r)[0].egress, FS_OBS_TO_NETWORK);
  EXPECT_EQ((*r)[2].pattern, "veth*");
  EXPECT_EQ((*r)[2].ingress, FS_OBS_FROM_ENDPOINT);
  EXPECT_FALSE(ParseInterfaceRules("lxc*,,veth*", "").ok());
  auto long_name = ParseInterfaceRules("averyveryverylongname0", "");
  ASSERT_FALSE(long_name.ok());
  EXPECT_THAT(std::string(long_name.status().message()), ::testing::HasSubstr("at most 15"));
}

}  // namespace
}  // namespace flowscope::observer
