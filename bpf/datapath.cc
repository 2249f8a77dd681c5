#include "bpf/datapath.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdarg>
#include <cstring>
#include <iterator>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bpf/drop_reasons.h"
#include "bpf/ip_prefix.h"
#include "bpf/ip_protocol.h"
// bpftool embeds the BPF object as one long string literal, which clang's -Wpedantic names.
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Woverlength-strings"
#endif
#include "flowscope_bpf.skel.h"
#if defined(__clang__)
#pragma clang diagnostic pop
#endif

namespace flowscope::bpf {
namespace {

// libbpf reports verifier logs through its print callback; Load() collects them here.
std::mutex log_mu;
std::string* log_sink = nullptr;  // guarded by log_mu

int CollectLibbpfLog(enum libbpf_print_level level, const char* format, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  char buf[4096];
  const int n = vsnprintf(buf, sizeof buf, format, args);
  std::lock_guard<std::mutex> lock(log_mu);
  if (log_sink != nullptr && n > 0) log_sink->append(buf, std::min<size_t>(n, sizeof buf - 1));
  return n;
}

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

// Parses "", "any", an address or a CIDR into network-order net and mask words.
absl::Status ParsePrefix(absl::string_view text, absl::string_view what, __u32 net[4],
                         __u32 mask[4], uint8_t* family) {
  std::memset(net, 0, 16);
  std::memset(mask, 0, 16);
  *family = 0;
  if (text.empty() || text == "any") return absl::OkStatus();
  auto p = ParseIpPrefix(text);
  if (!p.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid ", what, " \"", text.substr(0, 100), "\": ", p.status().message()));
  }
  std::memcpy(net, p->net, 16);
  std::memcpy(mask, p->mask, 16);
  *family = p->family;
  return absl::OkStatus();
}

// The running kernel's enum skb_drop_reason from its BTF: flowscope's id per value, and the values
// the program leaves out. Fails with the reason kernel drops cannot be reported.
struct KernelReasons {
  std::vector<uint8_t> ids;
  Datapath::KernelReasonFilter filter;
};

absl::StatusOr<KernelReasons> ReadKernelReasons(const std::vector<uint8_t>& ignored_ids) {
  btf* vmlinux = btf__load_vmlinux_btf();
  if (vmlinux == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("the kernel has no BTF (/sys/kernel/btf/vmlinux: ", std::strerror(errno),
                     "); kernel drops need CONFIG_DEBUG_INFO_BTF"));
  }
  KernelReasons out;
  const __s32 id = btf__find_by_name_kind(vmlinux, "skb_drop_reason", BTF_KIND_ENUM);
  const btf_type* t = id > 0 ? btf__type_by_id(vmlinux, static_cast<__u32>(id)) : nullptr;
  if (t == nullptr) {
    btf__free(vmlinux);
    return absl::UnavailableError(
        "the kernel has no enum skb_drop_reason: kernel drops need Linux 5.17 or later");
  }
  const struct btf_enum* e = btf_enum(t);
  for (uint16_t i = 0; i < btf_vlen(t); ++i) {
    const absl::string_view name = btf__name_by_offset(vmlinux, e[i].name_off);
    const uint32_t value = static_cast<uint32_t>(e[i].val);
    if (name == "SKB_NOT_DROPPED_YET") out.filter.not_dropped_yet = value;
    if (name == "SKB_CONSUMED") out.filter.consumed = value;
    if (value > 0xfffe) continue;  // subsystem masks and the like
    if (value >= out.ids.size()) out.ids.resize(value + 1, kKernelReasonUnknown);
    const uint8_t id = KernelDropReasonIdOfEnumerator(name);
    out.ids[value] = id;
    if (value < 256 && std::find(ignored_ids.begin(), ignored_ids.end(), id) != ignored_ids.end()) {
      out.filter.ignored[value / 64] |= uint64_t{1} << (value % 64);
    }
  }
  btf__free(vmlinux);
  return out;
}

}  // namespace

absl::StatusOr<Aggregation> ParseAggregation(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "none") return Aggregation::kNone;
  if (lower == "medium") return Aggregation::kMedium;
  if (lower == "maximum") return Aggregation::kMaximum;
  return absl::InvalidArgumentError(
      absl::StrCat("invalid aggregation \"", name, "\": expected none, medium or maximum"));
}

absl::StatusOr<DenyRule> DenyRule::Parse(absl::string_view src, absl::string_view dst,
                                         absl::string_view protocol, int port) {
  DenyRule rule;
  deny_rule& r = rule.raw;
  uint8_t src_family;
  uint8_t dst_family;
  if (absl::Status s = ParsePrefix(src, "source", r.src_net, r.src_mask, &src_family); !s.ok()) {
    return s;
  }
  if (absl::Status s = ParsePrefix(dst, "destination", r.dst_net, r.dst_mask, &dst_family);
      !s.ok()) {
    return s;
  }
  if (src_family != 0 && dst_family != 0 && src_family != dst_family) {
    return absl::InvalidArgumentError(absl::StrCat("deny rule mixes an IPv4 and an IPv6 prefix: \"",
                                                   src, "\" and \"", dst, "\""));
  }
  r.family = src_family != 0 ? src_family : dst_family;  // 0 (both wildcards): either family

  if (protocol.empty() || absl::AsciiStrToLower(protocol) == "any") {
    r.protocol = 0;
  } else {
    auto numbers = IpProtocolNumbers(protocol);
    if (!numbers.ok() || numbers->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid protocol \"", protocol.substr(0, 100),
                       "\": expected any, tcp, udp, sctp, icmp, icmpv4, icmpv6, vrrp or igmp"));
    }
    // "icmp" is both ICMPs: the one of the rule's family (v4 when it has none).
    r.protocol =
        numbers->size() == 1 || r.family != FS_FAMILY_IPV6 ? numbers->front() : numbers->back();
  }
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("invalid port ", port, ": expected 0..65535"));
  }
  if (port != 0 && r.protocol != IPPROTO_TCP && r.protocol != IPPROTO_UDP &&
      r.protocol != IPPROTO_SCTP) {
    return absl::InvalidArgumentError(
        absl::StrCat("port ", port, " needs protocol tcp, udp or sctp"));
  }
  r.dport = static_cast<__u16>(port);
  return rule;
}

absl::StatusOr<std::unique_ptr<Datapath>> Datapath::Load(const DatapathOptions& options) {
  if (!IsPowerOfTwo(options.ring_buffer_bytes) ||
      options.ring_buffer_bytes < static_cast<uint32_t>(getpagesize())) {
    return absl::InvalidArgumentError(
        absl::StrCat("ring buffer size ", options.ring_buffer_bytes,
                     " is invalid: it must be a power of two of at least ", getpagesize()));
  }
  if (options.flow_table_entries == 0) {
    return absl::InvalidArgumentError("the flow table needs at least one entry");
  }
  if (options.report_interval <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError("the report interval must be positive");
  }
  // Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK.
  rlimit unlimited{RLIM_INFINITY, RLIM_INFINITY};
  setrlimit(RLIMIT_MEMLOCK, &unlimited);

  std::unique_ptr<Datapath> dp(new Datapath(options));
  std::string log;
  if (options.kernel_drops) {
    std::vector<uint8_t> ignored;
    for (const std::string& n : options.ignored_kernel_reasons) {
      const std::optional<uint8_t> id = KernelDropReasonId(n);
      if (!id.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat("unknown kernel drop reason \"",
                                                       n.substr(0, 100),
                                                       "\" to ignore: expected a name such "
                                                       "as QUEUE_PURGE or NETFILTER_DROP"));
      }
      ignored.push_back(*id);
    }
    auto reasons = ReadKernelReasons(ignored);
    if (!reasons.ok()) {
      dp->kernel_drops_unavailable_ = std::string(reasons.status().message());
    } else {
      dp->kernel_reason_ids_ = std::move(reasons->ids);
      absl::Status s = dp->LoadSkeleton(reasons->filter, &log);
      if (s.ok()) return dp;
      if (s.code() == absl::StatusCode::kPermissionDenied) return s;
      // The tc programs do not need the tracepoint: load them alone and say why.
      // The verifier's log can be long: its first lines say enough.
      dp->kernel_drops_unavailable_ = absl::StrCat("the kernel refused the skb:kfree_skb program: ",
                                                   s.message().substr(0, 600));
      dp->kernel_reason_ids_.clear();
      if (dp->skel_ != nullptr) {
        flowscope_bpf__destroy(dp->skel_);
        dp->skel_ = nullptr;
      }
      log.clear();
    }
  } else {
    dp->kernel_drops_unavailable_ = "kernel drops are turned off";
  }
  if (absl::Status s = dp->LoadSkeleton(std::nullopt, &log); !s.ok()) return s;
  return dp;
}

absl::Status Datapath::LoadSkeleton(std::optional<KernelReasonFilter> kernel_drops,
                                    std::string* log) {
  skel_ = flowscope_bpf__open();
  if (skel_ == nullptr) return absl::ErrnoToStatus(errno, "opening the BPF datapath");
  flowscope_bpf* s = skel_;
  s->rodata->aggregation = static_cast<__u8>(options_.aggregation);
  s->rodata->report_interval_ns =
      static_cast<__u64>(absl::ToInt64Nanoseconds(options_.report_interval));
  s->rodata->wakeup_bytes = options_.wakeup_bytes;
  s->rodata->dns_messages = options_.dns ? 1 : 0;
  bpf_map__set_max_entries(s->maps.events, options_.ring_buffer_bytes);
  bpf_map__set_max_entries(s->maps.flows, options_.flow_table_entries);
  bpf_program__set_autoload(s->progs.flowscope_kfree_skb, kernel_drops.has_value());
  if (kernel_drops) {
    s->rodata->reason_not_dropped_yet = kernel_drops->not_dropped_yet;
    s->rodata->reason_consumed = kernel_drops->consumed;
    for (size_t i = 0; i < 4; ++i) s->rodata->ignored_reasons[i] = kernel_drops->ignored[i];
  }

  int err;
  {
    std::lock_guard<std::mutex> lock(log_mu);
    log_sink = log;
  }
  libbpf_print_fn_t previous = libbpf_set_print(CollectLibbpfLog);
  err = flowscope_bpf__load(s);
  libbpf_set_print(previous);
  {
    std::lock_guard<std::mutex> lock(log_mu);
    log_sink = nullptr;
  }
  if (err != 0) {
    const int e = -err;
    if (e == EPERM || e == EACCES) {
      return absl::PermissionDeniedError(
          absl::StrCat("loading the BPF datapath was refused (", std::strerror(e),
                       "): run as root, or with CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON"));
    }
    return absl::InternalError(absl::StrCat("the kernel rejected the BPF datapath (",
                                            std::strerror(e), ")",
                                            log->empty() ? "" : "; verifier log:\n", *log));
  }
  if (kernel_drops) {
    bpf_link* link = bpf_program__attach(s->progs.flowscope_kfree_skb);
    if (link == nullptr) {
      kernel_drops_unavailable_ =
          absl::StrCat("attaching to skb:kfree_skb failed: ", std::strerror(errno));
      kernel_reason_ids_.clear();
    } else {
      s->links.flowscope_kfree_skb = link;
    }
  }
  return absl::OkStatus();
}

Datapath::~Datapath() {
  if (skel_ != nullptr) flowscope_bpf__destroy(skel_);
}

int Datapath::ingress_prog_fd() const { return bpf_program__fd(skel_->progs.flowscope_ingress); }
int Datapath::egress_prog_fd() const { return bpf_program__fd(skel_->progs.flowscope_egress); }
int Datapath::events_fd() const { return bpf_map__fd(skel_->maps.events); }
int Datapath::lost_events_fd() const { return bpf_map__fd(skel_->maps.lost_events); }
int Datapath::flows_fd() const { return bpf_map__fd(skel_->maps.flows); }

absl::Status Datapath::SetInterfacePoints(uint32_t ifindex, fs_obs_point ingress,
                                          fs_obs_point egress) {
  if_config cfg{};
  cfg.ingress_point = static_cast<__u8>(ingress);
  cfg.egress_point = static_cast<__u8>(egress);
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.if_config), &ifindex, &cfg, BPF_ANY) != 0) {
    return absl::ErrnoToStatus(errno,
                               absl::StrCat("setting observation points of ifindex ", ifindex));
  }
  return absl::OkStatus();
}

absl::Status Datapath::ClearInterfacePoints(uint32_t ifindex) {
  if (bpf_map_delete_elem(bpf_map__fd(skel_->maps.if_config), &ifindex) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, absl::StrCat("clearing ifindex ", ifindex));
  }
  return absl::OkStatus();
}

absl::Status Datapath::SetDenyRules(const std::vector<DenyRule>& rules) {
  if (rules.size() > FS_MAX_DENY_RULES) {
    return absl::InvalidArgumentError(
        absl::StrCat("too many deny rules: ", rules.size(), " (at most ", FS_MAX_DENY_RULES, ")"));
  }
  // Shrink the count first so the program never reads a half-written rule, then write the rules,
  // then publish the new count.
  skel_->bss->deny_rule_count = 0;
  const int fd = bpf_map__fd(skel_->maps.deny_rules);
  for (uint32_t i = 0; i < rules.size(); ++i) {
    if (bpf_map_update_elem(fd, &i, &rules[i].raw, BPF_ANY) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("writing deny rule ", i));
    }
  }
  __atomic_store_n(&skel_->bss->deny_rule_count, static_cast<__u32>(rules.size()),
                   __ATOMIC_RELEASE);
  return absl::OkStatus();
}

int Datapath::kfree_skb_prog_fd() const {
  return kernel_drops_unavailable_.empty() ? bpf_program__fd(skel_->progs.flowscope_kfree_skb) : -1;
}

absl::Status Datapath::SetWatchedAddresses(const std::vector<watch_key>& addresses) {
  const int fd = bpf_map__fd(skel_->maps.watched_addrs);
  auto less = [](const watch_key& a, const watch_key& b) {
    return std::memcmp(&a, &b, sizeof a) < 0;
  };
  std::vector<watch_key> want(addresses);
  for (watch_key& k : want) std::memset(k.pad, 0, sizeof k.pad);
  std::sort(want.begin(), want.end(), less);
  want.erase(std::unique(want.begin(), want.end(),
                         [](const watch_key& a, const watch_key& b) {
                           return std::memcmp(&a, &b, sizeof a) == 0;
                         }),
             want.end());
  size_t left_out = 0;
  if (want.size() > FS_MAX_WATCHED_ADDRS) {
    left_out = want.size() - FS_MAX_WATCHED_ADDRS;
    want.resize(FS_MAX_WATCHED_ADDRS);
  }
  // Removed first, so the map never needs room for both sets.
  std::vector<watch_key> gone;
  std::set_difference(watched_.begin(), watched_.end(), want.begin(), want.end(),
                      std::back_inserter(gone), less);
  for (const watch_key& k : gone) bpf_map_delete_elem(fd, &k);
  const __u8 one = 1;
  std::vector<watch_key> kept;
  absl::Status status;
  for (const watch_key& k : want) {
    if (std::binary_search(watched_.begin(), watched_.end(), k, less) ||
        bpf_map_update_elem(fd, &k, &one, BPF_ANY) == 0) {
      kept.push_back(k);
    } else if (status.ok()) {
      status = absl::ErrnoToStatus(errno, "watching an address for kernel drops");
    }
  }
  watched_ = std::move(kept);
  __atomic_store_n(&skel_->bss->watched_count, static_cast<__u32>(watched_.size()),
                   __ATOMIC_RELEASE);
  if (!status.ok()) return status;
  if (left_out != 0) {
    return absl::ResourceExhaustedError(absl::StrCat("kernel drops are reported for at most ",
                                                     FS_MAX_WATCHED_ADDRS, " addresses: ", left_out,
                                                     " left out"));
  }
  return absl::OkStatus();
}

absl::StatusOr<DatapathStats> Datapath::ReadStats() const {
  const int cpus = libbpf_num_possible_cpus();
  if (cpus <= 0) return absl::ErrnoToStatus(-cpus, "libbpf_num_possible_cpus");
  std::vector<uint64_t> values(static_cast<size_t>(cpus));
  std::array<uint64_t, FS_STAT_MAX> sums{};
  const int fd = bpf_map__fd(skel_->maps.datapath_stats);
  for (uint32_t k = 0; k < FS_STAT_MAX; ++k) {
    if (bpf_map_lookup_elem(fd, &k, values.data()) != 0) {
      return absl::ErrnoToStatus(errno, "reading datapath counters");
    }
    for (uint64_t v : values) sums[k] += v;
  }
  DatapathStats st;
  st.packets = sums[FS_STAT_PACKETS];
  st.events = sums[FS_STAT_EVENTS];
  st.malformed = sums[FS_STAT_MALFORMED];
  st.not_ip = sums[FS_STAT_NOT_IP];
  st.policy_drops = sums[FS_STAT_POLICY_DROPS];
  st.kernel_drops = sums[FS_STAT_KERNEL_DROPS];
  st.kernel_drops_suppressed = sums[FS_STAT_KERNEL_DROPS_SUPPRESSED];
  st.dns_messages = sums[FS_STAT_DNS];
  return st;
}

namespace {

// Entries in a hash map, read with batched lookups where the kernel has them, else key by key.
absl::StatusOr<uint64_t> CountEntries(int fd, size_t key_size, size_t value_size) {
  constexpr uint32_t kBatch = 4096;
  std::vector<uint8_t> keys(kBatch * key_size);
  std::vector<uint8_t> values(kBatch * value_size);
  // The batch position is the kernel's bucket index; a key-sized buffer is always large enough.
  std::vector<uint8_t> in(std::max<size_t>(key_size, 8));
  std::vector<uint8_t> out(in.size());
  uint64_t total = 0;
  bool first = true;
  for (;;) {
    uint32_t count = kBatch;
    const int rc = bpf_map_lookup_batch(fd, first ? nullptr : in.data(), out.data(), keys.data(),
                                        values.data(), &count, nullptr);
    const int err = rc == 0 ? 0 : errno;
    if (rc != 0 && err != ENOENT) {
      if (first && (err == EINVAL || err == ENOTSUP || err == EOPNOTSUPP)) break;  // no batches
      return absl::ErrnoToStatus(err, "counting map entries");
    }
    total += count;
    if (err == ENOENT) return total;
    first = false;
    std::swap(in, out);
  }
  // Key by key (kernels before 5.6).
  total = 0;
  std::vector<uint8_t> key(key_size), next(key_size);
  bool have = false;
  while (bpf_map_get_next_key(fd, have ? key.data() : nullptr, next.data()) == 0) {
    ++total;
    std::swap(key, next);
    have = true;
  }
  return total;
}

}  // namespace

absl::StatusOr<std::vector<MapUsage>> Datapath::ReadMapUsage() const {
  std::vector<MapUsage> out;
  const bpf_map* flows = skel_->maps.flows;
  auto n = CountEntries(bpf_map__fd(flows), bpf_map__key_size(flows), bpf_map__value_size(flows));
  if (!n.ok()) return n.status();
  out.push_back({"flows", *n, bpf_map__max_entries(flows)});
  const bpf_map* ifs = skel_->maps.if_config;
  n = CountEntries(bpf_map__fd(ifs), bpf_map__key_size(ifs), bpf_map__value_size(ifs));
  if (!n.ok()) return n.status();
  out.push_back({"if_config", *n, bpf_map__max_entries(ifs)});
  out.push_back({"deny_rules", __atomic_load_n(&skel_->bss->deny_rule_count, __ATOMIC_ACQUIRE),
                 FS_MAX_DENY_RULES});
  out.push_back({"watched_addrs", watched_.size(), FS_MAX_WATCHED_ADDRS});
  return out;
}

}  // namespace flowscope::bpf
