#include "observer/parser.h"

#include <netinet/in.h>
#include <time.h>

#include <cstddef>
#include <cstring>
#include <optional>

#include "absl/container/flat_hash_map.h"
#include "bpf/drop_reasons.h"
#include "bpf/flow_event.h"
#include "observer/dns_message.h"

namespace flowscope::observer {
namespace {

constexpr uint64_t kRefreshEveryNs = 1'000'000'000;
constexpr size_t kMaxPendingQueries = 16384;
constexpr uint64_t kQueryTimeoutNs = 30'000'000'000;  // an answer later than this has no latency

int64_t ClockNs(clockid_t id) {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

EventParser::EventParser(const EndpointTable& table) : resolver_(table) { RefreshClock(); }

void EventParser::RefreshClock() {
  if (fixed_offset_) return;
  // The tightest of a few back-to-back readings.
  int64_t best_gap = INT64_MAX;
  for (int i = 0; i < 3; ++i) {
    const int64_t m1 = ClockNs(CLOCK_MONOTONIC);
    const int64_t r = ClockNs(CLOCK_REALTIME);
    const int64_t m2 = ClockNs(CLOCK_MONOTONIC);
    if (m2 - m1 < best_gap) {
      best_gap = m2 - m1;
      offset_ns_ = r - (m1 + (m2 - m1) / 2);
    }
  }
}

void EventParser::SetFixedClockOffset(int64_t offset_ns) {
  offset_ns_ = offset_ns;
  fixed_offset_ = true;
}

void EventParser::MaybeRefreshClock(uint64_t ktime_ns) {
  if (ktime_ns < next_refresh_ktime_) return;
  RefreshClock();
  next_refresh_ktime_ = ktime_ns + kRefreshEveryNs;
}

uint64_t EventParser::AdvanceFloor(uint64_t ktime_ns) {
  MaybeRefreshClock(ktime_ns);
  const int64_t t = static_cast<int64_t>(ktime_ns) + offset_ns_;
  if (t > 0 && static_cast<uint64_t>(t) > last_time_ns_) last_time_ns_ = static_cast<uint64_t>(t);
  return last_time_ns_;
}

bool EventParser::TakeDns(FlowRecord* out) {
  if (!has_dns_) return false;
  *out = dns_record_;
  has_dns_ = false;
  return true;
}

bool EventParser::Parse(absl::Span<const uint8_t> raw, FlowRecord* out) {
  has_dns_ = false;
  if (raw.size() < sizeof(flow_event)) {
    ++stats_.malformed;
    return false;
  }
  flow_event e;
  std::memcpy(&e, raw.data(), sizeof e);
  // A kernel drop has no datapath reason of its own (the kernel's is named here).
  const bool kernel_drop = e.emit_reason == FS_EMIT_KERNEL_DROP;
  const bool dns = e.emit_reason == FS_EMIT_DNS;
  // A DNS event may carry its packet's L3/L4 event too (flow_reason).
  const uint8_t flow_reason =
      dns && raw.size() >= sizeof(dns_event) ? raw[offsetof(dns_event, flow_reason)] : 0;
  if (dns && (raw.size() < sizeof(dns_event) || e.verdict != FS_VERDICT_FORWARDED ||
              (e.protocol != IPPROTO_UDP && e.protocol != IPPROTO_TCP) ||
              flow_reason > FS_EMIT_PERIODIC)) {
    ++stats_.malformed;
    return false;
  }
  if (dns && dns_ == nullptr) {
    ++stats_.dns_skipped;
    if (flow_reason == 0) return false;
  }
  const bool valid =
      (e.family == FS_FAMILY_IPV4 || e.family == FS_FAMILY_IPV6) &&
      (e.verdict == FS_VERDICT_FORWARDED || e.verdict == FS_VERDICT_DROPPED) &&
      e.obs_point <= FS_OBS_TO_NETWORK && e.is_reply <= FS_REPLY_UNKNOWN && e.ktime_ns != 0 &&
      (kernel_drop ? e.verdict == FS_VERDICT_DROPPED && e.drop_reason == 0 && e.policy == 0
                   : (e.verdict == FS_VERDICT_DROPPED) == (e.drop_reason != 0)) &&
      (e.emit_reason != FS_EMIT_POLICY_VERDICT || e.verdict == FS_VERDICT_DROPPED);
  if (!valid) {
    ++stats_.malformed;
    return false;
  }
  if (e.ktime_ns > ktime_passed_) {
    // A stamp later than the kernel clock has reached is corrupt: taken in, it would also
    // drag every later record's time up to it (the ring stays sorted by clamping).
    ktime_passed_ = static_cast<uint64_t>(ClockNs(CLOCK_MONOTONIC));
    if (e.ktime_ns > ktime_passed_) {
      ++stats_.malformed;
      return false;
    }
  }
  // The message first: alone, a malformed one makes no record (and moves no time floor).
  std::optional<DnsFacts> l7;
  if (dns && dns_ != nullptr) l7 = ParseDns(raw, e);
  if (dns && !l7 && flow_reason == 0) return false;
  MaybeRefreshClock(e.ktime_ns);
  uint64_t t = static_cast<uint64_t>(static_cast<int64_t>(e.ktime_ns) + offset_ns_);
  if (t < last_time_ns_) {
    // Events from different CPUs can arrive slightly out of order, and the clock offset moves
    // when UTC is stepped: the ring must stay sorted for binary-searched --since.
    t = last_time_ns_;
    ++stats_.clamped;
  }
  last_time_ns_ = t;

  out->time_ns = t;
  out->flow_packets = e.flow_packets;
  out->flow_bytes = e.flow_bytes;
  std::memcpy(out->saddr, e.saddr, sizeof out->saddr);
  std::memcpy(out->daddr, e.daddr, sizeof out->daddr);
  out->src_endpoint = resolver_.Lookup(e.family, e.saddr);
  out->dst_endpoint = resolver_.Lookup(e.family, e.daddr);
  out->src_service = out->dst_service = 0;
  if ((e.protocol == IPPROTO_TCP || e.protocol == IPPROTO_UDP || e.protocol == IPPROTO_SCTP) &&
      resolver_.HasServices()) {
    out->src_service = resolver_.LookupService(e.family, e.saddr, e.sport);
    out->dst_service = resolver_.LookupService(e.family, e.daddr, e.dport);
  }
  out->ifindex = e.ifindex;
  out->pkt_len = e.pkt_len;
  out->sport = e.sport;
  out->dport = e.dport;
  out->tcp_flags = e.tcp_flags;
  out->family = e.family;
  out->protocol = e.protocol;
  out->obs_point = e.obs_point;
  out->verdict = e.verdict;
  out->drop_reason = e.drop_reason;
  out->policy = e.verdict == FS_VERDICT_DROPPED ? e.policy : 0;
  if (kernel_drop) {
    const uint8_t id = e.kernel_reason < kernel_reason_ids_.size()
                           ? kernel_reason_ids_[e.kernel_reason]
                           : bpf::kKernelReasonUnknown;
    out->policy = id;
    out->drop_reason = static_cast<uint8_t>(bpf::HubbleDropReasonOf(id));
  }
  out->is_reply = e.is_reply;
  out->icmp_type = e.icmp_type;
  out->icmp_code = e.icmp_code;
  out->emit_reason = e.emit_reason;
  ++stats_.parsed;
  if (dns && l7) {
    // The L7 record: the packet's addresses and endpoints, the message's direction, its id in
    // the DNS table and its latency, no TCP flags.
    FlowRecord& record = flow_reason == 0 ? *out : dns_record_;
    record = *out;
    record.is_reply = l7->is_reply;
    record.flow_bytes = l7->id;
    record.flow_packets = l7->latency_ns;
    record.tcp_flags = 0;
    has_dns_ = flow_reason != 0;
    if (names_ != nullptr && !l7->ips.empty()) {
      names_->Add(NameCache::ClientOf(record, /*source=*/false), l7->name, l7->ips, l7->ttl,
                  record.time_ns);
    }
  }
  if (flow_reason != 0) out->emit_reason = flow_reason;  // the packet's own L3/L4 event
  return true;
}

std::optional<EventParser::DnsFacts> EventParser::ParseDns(absl::Span<const uint8_t> raw,
                                                           const flow_event& e) {
  uint16_t copied, msg_len;
  std::memcpy(&copied, raw.data() + offsetof(dns_event, copied), sizeof copied);
  std::memcpy(&msg_len, raw.data() + offsetof(dns_event, msg_len), sizeof msg_len);
  const size_t n = std::min<size_t>(copied, FS_DNS_MAX_PAYLOAD);
  absl::StatusOr<DnsMessage> m =
      ParseDnsMessage(raw.subspan(offsetof(dns_event, data), n), n >= msg_len);
  if (!m.ok()) {
    ++stats_.dns_malformed;
    return std::nullopt;
  }
  // The client is the query's sender and the answer's receiver.
  PendingKey key{};
  std::memcpy(key.client, m->response ? e.daddr : e.saddr, sizeof key.client);
  std::memcpy(key.server, m->response ? e.saddr : e.daddr, sizeof key.server);
  key.client_port = m->response ? e.dport : e.sport;
  key.id = m->id;
  key.family = e.family;
  key.protocol = e.protocol;
  uint64_t latency = 0;
  if (!m->response) {
    if (pending_.size() >= kMaxPendingQueries) {
      absl::erase_if(pending_,
                     [&](const auto& kv) { return e.ktime_ns - kv.second > kQueryTimeoutNs; });
      if (pending_.size() >= kMaxPendingQueries) pending_.clear();
    }
    pending_[key] = e.ktime_ns;
  } else if (auto it = pending_.find(key); it != pending_.end()) {
    if (e.ktime_ns >= it->second && e.ktime_ns - it->second <= kQueryTimeoutNs) {
      latency = e.ktime_ns - it->second;
    }
    pending_.erase(it);
  }
  ++stats_.dns;
  DnsFacts facts;
  facts.id = dns_->Add(EncodeDns(*m));
  facts.latency_ns = latency;
  facts.is_reply = m->response ? FS_REPLY_YES : FS_REPLY_NO;
  if (m->response && m->rcode == 0 && names_ != nullptr) {
    facts.name = std::move(m->query);
    facts.ips = std::move(m->ips);
    facts.ttl = m->ttl;
  }
  return facts;
}

}  // namespace flowscope::observer
