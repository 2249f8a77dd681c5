#include "observer/flow_metrics.h"

#include <netinet/in.h>

#include <algorithm>
#include <array>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "api/text.h"
#include "bpf/flow_event.h"
#include "flow/flow.pb.h"
#include "observer/flow_builder.h"

namespace flowscope::observer {
namespace {

constexpr absl::string_view kOverflow = "overflow";
constexpr char kSep = '\x1f';  // between label values in a series key

// labelsContext's labels, in the order Hubble puts them.
constexpr std::array<absl::string_view, 11> kContextLabels = {"source_ip",
                                                              "source_pod",
                                                              "source_namespace",
                                                              "source_workload",
                                                              "source_app",
                                                              "destination_ip",
                                                              "destination_pod",
                                                              "destination_namespace",
                                                              "destination_workload",
                                                              "destination_app",
                                                              "traffic_direction"};

absl::StatusOr<std::vector<MetricContext>> ParseContextList(absl::string_view option,
                                                            absl::string_view value) {
  static const std::pair<absl::string_view, MetricContext> kNames[] = {
      {"identity", MetricContext::kIdentity},
      {"namespace", MetricContext::kNamespace},
      {"pod", MetricContext::kPod},
      {"pod-short", MetricContext::kPodShort},
      {"pod-name", MetricContext::kPodName},
      {"dns", MetricContext::kDns},
      {"ip", MetricContext::kIp},
      {"reserved-identity", MetricContext::kReservedIdentity},
      {"workload", MetricContext::kWorkload},
      {"workload-name", MetricContext::kWorkloadName},
      {"app", MetricContext::kApp},
  };
  std::vector<MetricContext> out;
  for (absl::string_view v : absl::StrSplit(value, '|')) {
    auto it = std::find_if(std::begin(kNames), std::end(kNames),
                           [&](const auto& n) { return absl::EqualsIgnoreCase(n.first, v); });
    if (it == std::end(kNames)) {
      return absl::InvalidArgumentError(absl::StrCat(
          option, ": unknown context \"", Quote(v),
          "\" (identity, namespace, pod, pod-short, pod-name, dns, ip, reserved-identity, "
          "workload, workload-name, app)"));
    }
    out.push_back(it->second);
  }
  return out;
}

absl::StatusOr<MetricSpec> ParseMetricSpec(absl::string_view item) {
  static const absl::string_view kMetrics[] = {"flow", "drop",           "tcp", "port-distribution",
                                               "icmp", "flows-to-world", "dns"};
  MetricSpec spec;
  const size_t colon = item.find(':');
  spec.name = std::string(item.substr(0, colon));
  if (std::find(std::begin(kMetrics), std::end(kMetrics), spec.name) == std::end(kMetrics)) {
    std::string why = "unknown metric";
    if (spec.name == "http" || spec.name == "httpV2" || spec.name == "kafka" ||
        spec.name == "policy") {
      why = "not available: flowscope has no such events yet";
    }
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics \"", Quote(spec.name), "\": ", why,
                     " (flow, drop, tcp, port-distribution, icmp, flows-to-world, dns)"));
  }
  if (colon == absl::string_view::npos) return spec;
  for (absl::string_view option : absl::StrSplit(item.substr(colon + 1), ';', absl::SkipEmpty())) {
    const size_t eq = option.find('=');
    const std::string key = absl::AsciiStrToLower(option.substr(0, eq));
    const absl::string_view value =
        eq == absl::string_view::npos ? absl::string_view() : option.substr(eq + 1);
    const std::string where = absl::StrCat("--metrics ", spec.name, ": ", Quote(option));
    MetricContextOptions& c = spec.context;
    std::vector<MetricContext>* list = nullptr;
    if (key == "sourcecontext") list = &c.source;
    if (key == "destinationcontext") list = &c.destination;
    if (key == "sourceegresscontext") list = &c.source_egress;
    if (key == "sourceingresscontext") list = &c.source_ingress;
    if (key == "destinationegresscontext") list = &c.destination_egress;
    if (key == "destinationingresscontext") list = &c.destination_ingress;
    if (list != nullptr) {
      auto parsed = ParseContextList(where, value);
      if (!parsed.ok()) return parsed.status();
      *list = *std::move(parsed);
    } else if (key == "labelscontext") {
      std::vector<absl::string_view> wanted = absl::StrSplit(value, ',');
      for (absl::string_view w : wanted) {
        if (std::find(kContextLabels.begin(), kContextLabels.end(), w) == kContextLabels.end()) {
          return absl::InvalidArgumentError(
              absl::StrCat(where, ": invalid labelsContext value \"", Quote(w), "\""));
        }
      }
      c.labels.clear();
      for (absl::string_view l : kContextLabels) {
        if (std::find(wanted.begin(), wanted.end(), l) != wanted.end()) {
          c.labels.emplace_back(l);
        }
      }
    } else if (spec.name == "flows-to-world" &&
               (key == "any-drop" || key == "port" || key == "syn-only") && value.empty()) {
      (key == "any-drop" ? spec.any_drop : key == "port" ? spec.port : spec.syn_only) = true;
    } else if (spec.name == "dns" && (key == "query" || key == "ignoreaaaa") && value.empty()) {
      (key == "query" ? spec.query : spec.ignore_aaaa) = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(where, ": unknown option"));
    }
  }
  // Egress/Ingress variants override sourceContext/destinationContext for their direction,
  // and the label is there if any of them is set.
  MetricContextOptions& c = spec.context;
  if (c.source.empty() && (!c.source_egress.empty() || !c.source_ingress.empty())) {
    c.source = c.source_egress.empty() ? c.source_ingress : c.source_egress;
  }
  if (c.destination.empty() && (!c.destination_egress.empty() || !c.destination_ingress.empty())) {
    c.destination = c.destination_egress.empty() ? c.destination_ingress : c.destination_egress;
  }
  return spec;
}

// The L4 protocol's name, as port-distribution's label.
const char* ProtocolName(const FlowRecord& r) {
  switch (r.protocol) {
    case IPPROTO_TCP:
      return "TCP";
    case IPPROTO_UDP:
      return "UDP";
    case IPPROTO_ICMP:
      return "ICMPv4";
    case IPPROTO_ICMPV6:
      return "ICMPv6";
    case IPPROTO_SCTP:
      return "SCTP";
    default:
      return "Unknown L4";
  }
}

// A flow's protocol as Hubble's metrics name it: an L7 flow by its L7 part.
const char* FlowProtocol(const FlowRecord& r) { return IsDns(r) ? "DNS" : ProtocolName(r); }

bool HasL4(const FlowRecord& r) {
  return r.protocol == IPPROTO_TCP || r.protocol == IPPROTO_UDP || r.protocol == IPPROTO_SCTP ||
         r.protocol == IPPROTO_ICMP || r.protocol == IPPROTO_ICMPV6;
}

// Hubble's names for trace observation points (monitor sub-types).
const char* TracePointName(int32_t sub_type) {
  static const char* kNames[] = {"to-endpoint", "to-proxy",      "to-host",      "to-stack",
                                 "to-overlay",  "from-endpoint", "from-proxy",   "from-host",
                                 "from-stack",  "from-overlay",  "from-network", "to-network",
                                 "from-crypto", "to-crypto"};
  return sub_type >= 0 && sub_type < 14 ? kNames[sub_type] : "";
}

std::string VerdictName(const FlowRecord& r) {
  return flow::Verdict_Name(r.verdict == FS_VERDICT_DROPPED ? flow::DROPPED : flow::FORWARDED);
}

// Hubble's short pod name: the name without its last one or two "-suffix" parts.
std::string ShortPodName(const std::string& pod) {
  auto is_suffix = [](absl::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
      return absl::ascii_isdigit(c) || (c >= 'a' && c <= 'z');
    });
  };
  std::string name = pod;
  for (int i = 0; i < 2; ++i) {
    const size_t dash = name.rfind('-');
    if (dash == std::string::npos || dash == 0 ||
        !is_suffix(absl::string_view(name).substr(dash + 1))) {
      break;
    }
    name.resize(dash);
  }
  return name;
}

std::string AppOf(const Endpoint& e) {
  static const absl::string_view kApps[] = {
      "k8s:app.kubernetes.io/name=", "k8s:k8s-app=", "k8s:app="};
  for (const std::string& l : e.labels) {
    for (absl::string_view prefix : kApps) {
      if (absl::StartsWith(l, prefix) && l.size() > prefix.size()) return l.substr(prefix.size());
    }
  }
  return "";
}

std::string AddressOf(const FlowRecord& r, bool source) {
  AddrKey k;
  k.family = r.family == FS_FAMILY_IPV4 ? 4 : 6;
  std::copy_n(source ? r.saddr : r.daddr, 4, k.words.begin());
  return AddrToString(k);
}

// The rcode label of hubble_dns_responses_total: the descriptions the Summary uses (DnsRcodeText)
// but for 9, which Hubble's metric calls "Not Authorized", and the extended codes it names;
// codes it does not name are empty.
std::string DnsMetricRcode(uint32_t rcode) {
  if (rcode == 9) return "Not Authorized";
  if (rcode <= 11) return DnsRcodeText(rcode);
  static constexpr const char* kExtended[] = {
      "Bad OPT Version", "Key not recognized",       "Signature out of time window",
      "Bad TKEY Mode",   "Duplicate key name",       "Algorithm not supported",
      "Bad Truncation",  "Bad/missing Server Cookie"};
  return rcode >= 16 && rcode - 16 < std::size(kExtended) ? kExtended[rcode - 16] : "";
}

}  // namespace

std::vector<std::string> MetricContextOptions::LabelNames() const {
  std::vector<std::string> out = labels;
  if (!source.empty()) out.push_back("source");
  if (!destination.empty()) out.push_back("destination");
  return out;
}

absl::StatusOr<std::vector<MetricSpec>> ParseMetricSpecs(const std::vector<std::string>& values) {
  std::vector<MetricSpec> out;
  for (const std::string& value : values) {
    for (absl::string_view item :
         absl::StrSplit(value, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
      auto spec = ParseMetricSpec(item);
      if (!spec.ok()) return spec.status();
      if (std::any_of(out.begin(), out.end(),
                      [&](const MetricSpec& s) { return s.name == spec->name; })) {
        return absl::InvalidArgumentError(
            absl::StrCat("--metrics: ", spec->name, " is given more than once"));
      }
      out.push_back(*std::move(spec));
    }
  }
  return out;
}

struct FlowMetrics::Handler {
  MetricSpec spec;
  std::string family;
  std::string help;
  std::vector<std::string> fixed_names;
  bool context_first = false;  // drop and dns put their context labels first, as Hubble does
  enum class Dns { kNone, kQueries, kResponses, kResponseTypes } dns = Dns::kNone;
  std::vector<std::string> label_names;

  struct Series {
    uint64_t count = 0;
    int64_t touched_ns = 0;
    bool has_context = false;
  };
  mutable absl::Mutex mu;
  absl::flat_hash_map<std::string, Series> series ABSL_GUARDED_BY(mu);
  uint64_t overflow ABSL_GUARDED_BY(mu) = 0;
};

FlowMetrics::FlowMetrics(const Ring& ring, const EndpointTable& table, FlowMetricsOptions options)
    : ring_(ring),
      table_(table),
      options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : Clock::Real()) {
  for (const MetricSpec& spec : options_.metrics) {
    const MetricContextOptions& c = spec.context;
    for (const auto* list : {&c.source, &c.destination, &c.source_egress, &c.source_ingress,
                             &c.destination_egress, &c.destination_ingress}) {
      need_addresses_ |= std::find(list->begin(), list->end(), MetricContext::kIp) != list->end() ||
                         std::find(list->begin(), list->end(), MetricContext::kDns) != list->end();
    }
    for (const std::string& l : c.labels) need_addresses_ |= absl::EndsWith(l, "_ip");
    auto h = std::make_unique<Handler>();
    h->spec = spec;
    if (spec.name == "dns") {
      // Three families, as Hubble's: queries, responses and the responses' record types.
      need_dns_ = true;
      for (auto kind :
           {Handler::Dns::kQueries, Handler::Dns::kResponses, Handler::Dns::kResponseTypes}) {
        auto d = std::make_unique<Handler>();
        d->spec = spec;
        d->dns = kind;
        d->context_first = true;
        d->family = kind == Handler::Dns::kQueries     ? "hubble_dns_queries_total"
                    : kind == Handler::Dns::kResponses ? "hubble_dns_responses_total"
                                                       : "hubble_dns_response_types_total";
        d->help = "Number of DNS queries observed";  // Hubble's text for all three
        d->fixed_names = kind == Handler::Dns::kResponseTypes
                             ? std::vector<std::string>{"type", "qtypes"}
                             : std::vector<std::string>{"rcode", "qtypes", "ips_returned"};
        if (spec.query) d->fixed_names.push_back("query");
        d->label_names = spec.context.LabelNames();
        d->label_names.insert(d->label_names.end(), d->fixed_names.begin(), d->fixed_names.end());
        handlers_.push_back(std::move(d));
      }
      continue;
    }
    if (spec.name == "flow") {
      h->family = "hubble_flows_processed_total";
      h->help = "Total number of flows processed";
      h->fixed_names = {"protocol", "type", "subtype", "verdict"};
    } else if (spec.name == "drop") {
      h->family = "hubble_drop_total";
      h->help = "Number of drops";
      h->fixed_names = {"reason", "protocol"};
      h->context_first = true;
    } else if (spec.name == "tcp") {
      h->family = "hubble_tcp_flags_total";
      h->help = "TCP flag occurrences";
      h->fixed_names = {"flag", "family"};
    } else if (spec.name == "port-distribution") {
      h->family = "hubble_port_distribution_total";
      h->help = "Numbers of packets distributed by destination port";
      h->fixed_names = {"protocol", "port"};
    } else if (spec.name == "icmp") {
      h->family = "hubble_icmp_total";
      h->help = "Number of ICMP messages";
      h->fixed_names = {"family", "type"};
    } else {
      h->family = "hubble_flows_to_world_total";
      h->help = "Total number of flows to reserved:world";
      h->fixed_names = {"protocol", "verdict"};
      if (spec.port) h->fixed_names.push_back("port");
    }
    const std::vector<std::string> context = spec.context.LabelNames();
    h->label_names = h->context_first ? context : h->fixed_names;
    const std::vector<std::string>& rest = h->context_first ? h->fixed_names : context;
    h->label_names.insert(h->label_names.end(), rest.begin(), rest.end());
    handlers_.push_back(std::move(h));
  }
}

FlowMetrics::~FlowMetrics() { Stop(); }

void FlowMetrics::Start() {
  if (handlers_.empty() || thread_.joinable()) return;
  // Counts everything the ring holds now and what follows, whenever the thread gets going.
  const uint64_t from = ring_.OldestPosition();
  thread_ = std::thread([this, from] { Run(from); });
}

void FlowMetrics::Stop() {
  stop_.store(true);
  ring_.Interrupt();
  if (thread_.joinable()) thread_.join();
}

// What the metrics look at in a record: records alike in all of it count alike, so a batch
// is first folded into one count per distinct key (traffic repeats itself: the work per
// record is a hash and an add) and label values are worked out once per key.
struct FlowMetrics::Key {
  uint32_t src_endpoint = 0, dst_endpoint = 0;
  std::array<uint32_t, 4> saddr{}, daddr{};  // only when a context needs addresses
  uint64_t dns_id = 0;                       // only when the dns metric reads the messages
  uint16_t dport = 0;
  uint16_t tcp_flags = 0;  // FIN, SYN, ACK, RST
  uint8_t family = 0, protocol = 0, obs_point = 0, verdict = 0, drop_reason = 0, is_reply = 0,
          icmp_type = 0, icmp_code = 0, emit_reason = 0;

  bool operator==(const Key& o) const = default;
  template <typename H>
  friend H AbslHashValue(H h, const Key& k) {
    return H::combine(std::move(h), k.src_endpoint, k.dst_endpoint, k.saddr, k.daddr, k.dns_id,
                      k.dport, k.tcp_flags, k.family, k.protocol, k.obs_point, k.verdict,
                      k.drop_reason, k.is_reply, k.icmp_type, k.icmp_code, k.emit_reason);
  }
  FlowRecord Record() const {
    FlowRecord r;
    r.src_endpoint = src_endpoint;
    r.dst_endpoint = dst_endpoint;
    std::copy(saddr.begin(), saddr.end(), r.saddr);
    std::copy(daddr.begin(), daddr.end(), r.daddr);
    r.flow_bytes = dns_id;
    r.dport = dport;
    r.tcp_flags = tcp_flags;
    r.family = family;
    r.protocol = protocol;
    r.obs_point = obs_point;
    r.verdict = verdict;
    r.drop_reason = drop_reason;
    r.is_reply = is_reply;
    r.icmp_type = icmp_type;
    r.icmp_code = icmp_code;
    r.emit_reason = emit_reason;
    return r;
  }
};

void FlowMetrics::Fold(const FlowRecord& r, absl::flat_hash_map<Key, uint64_t>* batch) const {
  Key k;
  k.src_endpoint = r.src_endpoint;
  k.dst_endpoint = r.dst_endpoint;
  if (need_addresses_) {
    std::copy_n(r.saddr, 4, k.saddr.begin());
    std::copy_n(r.daddr, 4, k.daddr.begin());
  }
  k.dport = r.dport;
  k.tcp_flags = r.tcp_flags & (FS_TCP_FIN | FS_TCP_SYN | FS_TCP_ACK | FS_TCP_RST);
  k.family = r.family;
  k.protocol = r.protocol;
  k.obs_point = r.obs_point;
  k.verdict = r.verdict;
  k.drop_reason = r.drop_reason;
  k.is_reply = r.is_reply;
  k.icmp_type = r.icmp_type;
  k.icmp_code = r.icmp_code;
  // A policy verdict is only told apart from its drop (which every other metric counts), a DNS
  // record from its packet's L3/L4 one.
  k.emit_reason = r.emit_reason == FS_EMIT_POLICY_VERDICT || IsDns(r) ? r.emit_reason : uint8_t{0};
  if (need_dns_) k.dns_id = DnsIdOf(r);
  ++(*batch)[k];
}

void FlowMetrics::Flush(absl::flat_hash_map<Key, uint64_t>* batch) {
  uint64_t n = 0;
  for (const auto& [key, count] : *batch) {
    CountAll(key.Record(), count);
    n += count;
  }
  batch->clear();
  processed_.fetch_add(n, std::memory_order_relaxed);
}

void FlowMetrics::Process(const FlowRecord& r) {
  absl::flat_hash_map<Key, uint64_t> batch;
  Fold(r, &batch);
  count_time_ns_ = r.time_ns;
  Flush(&batch);
}

void FlowMetrics::Run(uint64_t from) {
  constexpr size_t kBatch = 65536;
  ringbuf::RingReader<FlowRecord> reader(ring_, from);
  absl::Time next_expiry = clock_.Now() + absl::Seconds(10);
  PollPause pause;
  absl::flat_hash_map<Key, uint64_t> batch;
  FlowRecord r;
  while (!stop_.load(std::memory_order_acquire)) {
    size_t read = 0;
    for (bool more = true; more && read < kBatch;) {
      switch (reader.Next(&r)) {
        case ringbuf::ReadStatus::kRecord:
          Fold(r, &batch);
          count_time_ns_ = r.time_ns;
          ++read;
          break;
        case ringbuf::ReadStatus::kLost:
          missed_.fetch_add(reader.TakeLost(), std::memory_order_relaxed);
          break;
        case ringbuf::ReadStatus::kEnd:
          more = false;
          break;
      }
    }
    Flush(&batch);
    if (read == kBatch) continue;
    if (clock_.Now() >= next_expiry) {
      Expire();
      next_expiry = clock_.Now() + absl::Seconds(10);
    }
    pause.After(read);
  }
}

const std::string& FlowMetrics::EndpointContext(uint32_t id, MetricContext c) {
  const uint64_t key = (static_cast<uint64_t>(id) << 8) | static_cast<uint64_t>(c);
  if (auto it = endpoint_context_.find(key); it != endpoint_context_.end()) return it->second;
  if (endpoint_context_.size() > 100000) endpoint_context_.clear();  // ids of pods long gone
  const std::shared_ptr<const Endpoint> held = table_.Get(id);
  const Endpoint& e = *held;
  std::string v;
  switch (c) {
    case MetricContext::kIdentity:
      v = absl::StrJoin(e.labels, ",");
      break;
    case MetricContext::kNamespace:
      v = e.namespace_name;
      break;
    case MetricContext::kPod:
      v = e.namespace_name.empty() ? e.pod_name : absl::StrCat(e.namespace_name, "/", e.pod_name);
      break;
    case MetricContext::kPodShort:
      v = ShortPodName(e.pod_name);
      if (!e.namespace_name.empty()) v = absl::StrCat(e.namespace_name, "/", v);
      break;
    case MetricContext::kPodName:
      v = e.pod_name;
      break;
    case MetricContext::kReservedIdentity:
      if (std::find(e.labels.begin(), e.labels.end(), "reserved:kube-apiserver") !=
          e.labels.end()) {
        v = "reserved:kube-apiserver";
      } else {
        for (const std::string& l : e.labels) {
          if (absl::StartsWith(l, "reserved:")) {
            v = l;
            break;
          }
        }
      }
      break;
    case MetricContext::kWorkload:
      if (!e.workload_name.empty()) {
        v = e.namespace_name.empty() ? e.workload_name
                                     : absl::StrCat(e.namespace_name, "/", e.workload_name);
      }
      break;
    case MetricContext::kWorkloadName:
      v = e.workload_name;
      break;
    case MetricContext::kApp:
      v = AppOf(e);
      break;
    case MetricContext::kDns:  // by the flow's addresses, not by endpoint
    case MetricContext::kIp:
      break;
  }
  return endpoint_context_.emplace(key, std::move(v)).first->second;
}

std::string FlowMetrics::DnsNames(const FlowRecord& r, bool source) const {
  if (options_.names == nullptr) return "";
  // Names as they stand when the batch is counted (records come to the metrics just after
  // the drain wrote them).
  FlowRecord at = r;
  at.time_ns = count_time_ns_;
  return absl::StrJoin(
      source ? options_.names->SourceNames(at) : options_.names->DestinationNames(at), ",");
}

void FlowMetrics::ContextValues(const Handler& h, const FlowRecord& r,
                                std::vector<std::string>* out) {
  const MetricContextOptions& c = h.spec.context;
  const flow::TrafficDirection direction = TrafficDirectionOf(r);
  for (const std::string& label : c.labels) {
    const bool source = absl::StartsWith(label, "source_");
    const uint32_t id = source ? r.src_endpoint : r.dst_endpoint;
    if (label == "traffic_direction") {
      out->push_back(direction == flow::TRAFFIC_DIRECTION_UNKNOWN
                         ? "unknown"
                         : absl::AsciiStrToLower(flow::TrafficDirection_Name(direction)));
    } else if (absl::EndsWith(label, "_ip")) {
      out->push_back(AddressOf(r, source));
    } else if (absl::EndsWith(label, "_pod")) {
      out->push_back(EndpointContext(id, MetricContext::kPodName));
    } else if (absl::EndsWith(label, "_namespace")) {
      out->push_back(EndpointContext(id, MetricContext::kNamespace));
    } else if (absl::EndsWith(label, "_workload")) {
      out->push_back(EndpointContext(id, MetricContext::kWorkloadName));
    } else {
      out->push_back(EndpointContext(id, MetricContext::kApp));
    }
  }
  auto pick = [&](const std::vector<MetricContext>& both, const std::vector<MetricContext>& egress,
                  const std::vector<MetricContext>& ingress, bool source) {
    const std::vector<MetricContext>* list = &both;
    if (!ingress.empty() && direction == flow::INGRESS) list = &ingress;
    if (!egress.empty() && direction == flow::EGRESS) list = &egress;
    for (MetricContext id : *list) {
      std::string v;
      if (id == MetricContext::kIp) {
        v = AddressOf(r, source);
      } else if (id == MetricContext::kDns) {
        v = DnsNames(r, source);
      } else {
        v = EndpointContext(source ? r.src_endpoint : r.dst_endpoint, id);
      }
      if (!v.empty()) return v;  // the first non-empty one
    }
    return std::string();
  };
  if (!c.source.empty()) out->push_back(pick(c.source, c.source_egress, c.source_ingress, true));
  if (!c.destination.empty()) {
    out->push_back(pick(c.destination, c.destination_egress, c.destination_ingress, false));
  }
}

void FlowMetrics::Count(uint64_t n, Handler& h, const FlowRecord& r,
                        const std::vector<std::string>& fixed) {
  std::vector<std::string> context;
  ContextValues(h, r, &context);
  std::string key;
  size_t values = 0;
  auto append = [&](absl::string_view v) {
    if (values++ > 0) key.push_back(kSep);
    key.append(v.data(), v.size());
  };
  auto build = [&](bool overflow) {
    key.clear();
    values = 0;
    auto put_context = [&] {
      for (const std::string& v : context) append(overflow ? kOverflow : absl::string_view(v));
    };
    auto put_fixed = [&] {
      for (const std::string& v : fixed) append(v);
    };
    if (h.context_first) {
      put_context();
      put_fixed();
    } else {
      put_fixed();
      put_context();
    }
  };
  build(false);
  const int64_t now = absl::ToUnixNanos(clock_.Now());
  absl::MutexLock lock(&h.mu);
  auto it = h.series.find(key);
  if (it == h.series.end() && h.series.size() >= options_.max_series && !context.empty()) {
    ++h.overflow;
    build(true);
    it = h.series.find(key);
  }
  if (it == h.series.end()) {
    it = h.series.emplace(key, Handler::Series{}).first;
    it->second.has_context = !context.empty();
  }
  it->second.count += n;
  it->second.touched_ns = now;
}

void FlowMetrics::CountAll(const FlowRecord& r, uint64_t n) {
  const bool dropped = r.verdict == FS_VERDICT_DROPPED;
  const bool reply = r.is_reply == FS_REPLY_YES;
  const bool dns = IsDns(r);  // an L7 flow: ports, but no TCP flags or ICMP of its own
  if (r.emit_reason == FS_EMIT_POLICY_VERDICT) {
    // The drop beside it is what the other metrics count.
    for (auto& hp : handlers_) {
      if (hp->spec.name == "flow") {
        Count(n, *hp, r, {ProtocolName(r), "PolicyVerdict", "", VerdictName(r)});
      }
    }
    return;
  }
  flow::DNS message;
  enum { kUnread, kRead, kGone } message_state = kUnread;
  for (auto& hp : handlers_) {
    Handler& h = *hp;
    const std::string& name = h.spec.name;
    if (name == "flow") {
      if (dns) {
        Count(n, h, r, {"DNS", "L7", "DNS", VerdictName(r)});
      } else {
        Count(n, h, r,
              {ProtocolName(r), dropped ? "Drop" : "Trace",
               dropped ? "" : TracePointName(MonitorSubType(r)), VerdictName(r)});
      }
    } else if (name == "drop") {
      if (dropped) {
        Count(
            n, h, r,
            {flow::DropReason_Name(static_cast<flow::DropReason>(r.drop_reason)), ProtocolName(r)});
      }
    } else if (name == "tcp") {
      if (dns || dropped || r.protocol != IPPROTO_TCP || r.tcp_flags == 0) continue;
      const std::string family = r.family == FS_FAMILY_IPV4 ? "IPv4" : "IPv6";
      if (r.tcp_flags & FS_TCP_FIN) Count(n, h, r, {"FIN", family});
      if (r.tcp_flags & FS_TCP_SYN)
        Count(n, h, r, {(r.tcp_flags & FS_TCP_ACK) ? "SYN-ACK" : "SYN", family});
      if (r.tcp_flags & FS_TCP_RST) Count(n, h, r, {"RST", family});
    } else if (name == "port-distribution") {
      // A DNS request counts by its L4 port, as the proxy's L7 flows do in Hubble.
      if (dropped || !HasL4(r) || reply) continue;
      const bool icmp = r.protocol == IPPROTO_ICMP || r.protocol == IPPROTO_ICMPV6;
      Count(n, h, r, {ProtocolName(r), icmp ? "0" : absl::StrCat(r.dport)});
    } else if (name == "icmp") {
      if (r.protocol == IPPROTO_ICMP) {
        Count(n, h, r, {"IPv4", IcmpTypeName(false, r.icmp_type, r.icmp_code)});
      } else if (r.protocol == IPPROTO_ICMPV6) {
        Count(n, h, r, {"IPv6", IcmpTypeName(true, r.icmp_type, r.icmp_code)});
      }
    } else if (name == "dns") {
      if (!dns) continue;
      if (message_state == kUnread) {
        const bool read = options_.dns != nullptr && options_.dns->Decode(DnsIdOf(r), &message);
        message_state = read ? kRead : kGone;
        if (!read) missed_.fetch_add(n, std::memory_order_relaxed);
      }
      if (message_state == kGone) continue;
      CountDns(n, h, r, message);
    } else {  // flows-to-world
      if (r.dst_endpoint != kWorldEndpointId || !HasL4(r)) continue;
      if (dropped && !h.spec.any_drop && r.drop_reason != flow::POLICY_DENIED) continue;
      if (!dropped && reply) continue;
      if (h.spec.syn_only &&
          (dns || r.protocol != IPPROTO_TCP || !(r.tcp_flags & FS_TCP_SYN) || reply)) {
        continue;
      }
      std::vector<std::string> fixed = {FlowProtocol(r), VerdictName(r)};
      if (h.spec.port) {
        const bool ports =
            r.protocol == IPPROTO_TCP || r.protocol == IPPROTO_UDP || r.protocol == IPPROTO_SCTP;
        fixed.push_back(ports ? absl::StrCat(r.dport) : "");
      }
      Count(n, h, r, fixed);
    }
  }
}

void FlowMetrics::CountDns(uint64_t n, Handler& h, const FlowRecord& r, const flow::DNS& m) {
  if (h.spec.ignore_aaaa && m.qtypes_size() == 1 && m.qtypes(0) == "AAAA") return;
  const bool dropped = r.verdict == FS_VERDICT_DROPPED;
  const bool reply = r.is_reply == FS_REPLY_YES;
  const std::string qtypes = absl::StrJoin(m.qtypes(), ",");
  std::vector<std::string> fixed;
  switch (h.dns) {
    case Handler::Dns::kQueries:
      if (!dropped && reply) return;
      fixed = {dropped ? "Policy denied" : "", qtypes, absl::StrCat(m.ips_size())};
      break;
    case Handler::Dns::kResponses:
      if (dropped || !reply) return;
      fixed = {DnsMetricRcode(m.rcode()), qtypes, absl::StrCat(m.ips_size())};
      break;
    case Handler::Dns::kResponseTypes:
      if (dropped || !reply) return;
      for (const std::string& type : m.rrtypes()) {
        fixed = {type, qtypes};
        if (h.spec.query) fixed.push_back(m.query());
        Count(n, h, r, fixed);
      }
      return;
    case Handler::Dns::kNone:
      return;
  }
  if (h.spec.query) fixed.push_back(m.query());
  Count(n, h, r, fixed);
}

void FlowMetrics::Expire() {
  const int64_t cutoff = absl::ToUnixNanos(clock_.Now() - options_.series_ttl);
  for (auto& h : handlers_) {
    absl::MutexLock lock(&h->mu);
    absl::erase_if(h->series, [cutoff](const auto& kv) {
      return kv.second.has_context && kv.second.touched_ns < cutoff;
    });
  }
}

void FlowMetrics::Collect(MetricsWriter& w) const {
  for (const auto& h : handlers_) {
    w.Counter(h->family, h->help);
    std::vector<std::pair<std::string, uint64_t>> rows;
    {
      absl::MutexLock lock(&h->mu);
      rows.reserve(h->series.size());
      for (const auto& [key, s] : h->series) rows.emplace_back(key, s.count);
    }
    std::sort(rows.begin(), rows.end());
    for (const auto& [key, count] : rows) {
      const std::vector<std::string> values = absl::StrSplit(key, kSep);
      w.Sample(h->label_names, values, static_cast<double>(count));
    }
  }
  if (handlers_.empty()) return;
  // Per metric as --metrics names it (dns's three families together).
  std::vector<std::pair<uint64_t, uint64_t>> totals;  // overflow, series
  for (const MetricSpec& spec : options_.metrics) {
    auto& [overflow, series] = totals.emplace_back();
    for (const auto& h : handlers_) {
      if (h->spec.name != spec.name) continue;
      absl::MutexLock lock(&h->mu);
      overflow += h->overflow;
      series += h->series.size();
    }
  }
  w.Counter("flowscope_metrics_overflow_total",
            "Flows counted in a metric's overflow series: its series cap was reached");
  for (size_t i = 0; i < totals.size(); ++i) {
    w.Sample({{"metric", options_.metrics[i].name}}, static_cast<double>(totals[i].first));
  }
  w.Gauge("flowscope_metrics_series", "Series a flow metric holds");
  for (size_t i = 0; i < totals.size(); ++i) {
    w.Sample({{"metric", options_.metrics[i].name}}, static_cast<double>(totals[i].second));
  }
  w.Counter("flowscope_metrics_flows_processed_total", "Flows the metrics have counted");
  w.Sample(static_cast<double>(processed()));
  w.Counter("flowscope_metrics_flows_missed_total",
            "Flows the metrics missed: the ring moved past them before they were counted, or "
            "the DNS message a dns metric reads was no longer kept");
  w.Sample(static_cast<double>(missed()));
}

}  // namespace flowscope::observer
