// Kernel-drop figures: B17's cost of the skb:kfree_skb program per dropped packet, read from
// the kernel's own BPF run-time statistics (BPF_ENABLE_STATS) while BPF_PROG_TEST_RUN frees
// packets through kfree_skb: for a drop of a watched endpoint (reported), of an address nobody
// watches (parsed and looked up), and while nothing is watched (an early return); the baseline
// is the tc program's cost per packet over the same packets, measured the same way.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bpf/datapath.h"
#include "tests/bench/figures.h"
#include "tests/testing/bpf_env.h"
#include "tests/testing/packet.h"

namespace flowscope::bench {
namespace {

struct ProgStats {
  uint64_t run_ns = 0;
  uint64_t runs = 0;
};

absl::StatusOr<ProgStats> Stats(int prog_fd) {
  bpf_prog_info info{};
  uint32_t len = sizeof info;
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) {
    return absl::ErrnoToStatus(errno, "reading a BPF program's statistics");
  }
  return ProgStats{info.run_time_ns, info.run_cnt};
}

struct KfreeCosts {
  double reported_ns = 0;   // a watched endpoint's drop, reported
  double unwatched_ns = 0;  // an address nobody watches
  double idle_ns = 0;       // nothing watched at all
  double tc_ns = 0;         // the tc program on the same packets (the baseline)
};

// ns per run of `prog` while `packets` go through the tc program one BPF_PROG_TEST_RUN each
// (each freed with kfree_skb at the end of its run).
absl::StatusOr<double> CostPerRun(const bpf::Datapath& dp, int prog,
                                  const std::vector<std::vector<uint8_t>>& packets) {
  auto before = Stats(prog);
  if (!before.ok()) return before.status();
  for (const auto& p : packets) {
    auto r = testing::TestRun(dp.ingress_prog_fd(), p);
    if (!r.ok()) return r.status();
  }
  auto after = Stats(prog);
  if (!after.ok()) return after.status();
  const uint64_t runs = after->runs - before->runs;
  if (runs == 0) return absl::InternalError("the program did not run");
  return static_cast<double>(after->run_ns - before->run_ns) / static_cast<double>(runs);
}

absl::StatusOr<KfreeCosts> KfreeOnce() {
  constexpr int kPackets = 50'000;
  bpf::DatapathOptions o;
  o.aggregation = bpf::Aggregation::kNone;  // every drop reported: the most work per drop
  o.ring_buffer_bytes = 1u << 23;           // fills, then reservations fail (counted, cheap)
  auto dp = bpf::Datapath::Load(o);
  if (!dp.ok()) return dp.status();
  if (!(*dp)->kernel_drops_unavailable().empty()) {
    return absl::UnavailableError((*dp)->kernel_drops_unavailable());
  }
  const int stats_fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (stats_fd < 0) return absl::ErrnoToStatus(errno, "bpf_enable_stats");
  std::vector<std::vector<uint8_t>> packets;
  for (int i = 0; i < kPackets; ++i) {
    testing::PacketSpec s;
    s.src = "10.0.1.5";
    s.dst = "10.0.2.7";
    s.protocol = IPPROTO_UDP;
    s.sport = static_cast<uint16_t>(1024 + i % 60000);
    s.dport = 54;  // not DNS: the tc program's plain per-packet work is the baseline
    packets.push_back(testing::BuildPacket(s));
  }
  auto watch = [](const char* ip) {
    watch_key k{};
    k.family = FS_FAMILY_IPV4;
    inet_pton(AF_INET, ip, &k.addr[0]);
    return k;
  };
  KfreeCosts out;
  const int kfree = (*dp)->kfree_skb_prog_fd();
  absl::Status status;
  auto measure = [&](int prog, double* into) {
    auto ns = CostPerRun(**dp, prog, packets);
    if (!ns.ok() && status.ok()) status = ns.status();
    if (ns.ok()) *into = *ns;
  };
  measure(kfree, &out.idle_ns);
  (void)(*dp)->SetWatchedAddresses({watch("10.9.9.9")});
  measure(kfree, &out.unwatched_ns);
  (void)(*dp)->SetWatchedAddresses({watch("10.0.1.5")});
  measure(kfree, &out.reported_ns);
  measure((*dp)->ingress_prog_fd(), &out.tc_ns);
  close(stats_fd);
  if (!status.ok()) return status;
  return out;
}

std::vector<FigureResult> RunB17Kfree(const Options& options) {
  if (auto reason = testing::BpfUnavailableReason()) {
    std::cerr << "B17: skipped: " << *reason << "\n";
    return {};
  }
  std::vector<double> reported, unwatched, idle, tc;
  for (int i = 0; i < options.runs; ++i) {
    auto c = KfreeOnce();
    if (!c.ok()) {
      std::cerr << "B17: " << c.status() << "\n";
      return {};
    }
    reported.push_back(c->reported_ns);
    unwatched.push_back(c->unwatched_ns);
    idle.push_back(c->idle_ns);
    tc.push_back(c->tc_ns);
  }
  return {MakeFigure("B17", "kfree_skb_ns_per_reported_drop", "ns", reported, tc,
                     {Target::AtMostTimesBaseline(2.0)}),
          MakeFigure("B17", "kfree_skb_ns_per_unwatched_drop", "ns", unwatched, tc,
                     {Target::AtMostTimesBaseline(1.0)}),
          MakeFigure("B17", "kfree_skb_ns_per_drop_nothing_watched", "ns", idle, std::nullopt,
                     {Target::AtMost(100, "ns")})};
}

}  // namespace

std::vector<Figure> KernelFigures() {
  return {{"B17",
           "skb:kfree_skb program ns per dropped packet (reported, unwatched, nothing watched) "
           "vs the tc program per packet",
           RunB17Kfree}};
}

}  // namespace flowscope::bench
