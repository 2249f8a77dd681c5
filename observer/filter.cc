#include "observer/filter.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <re2/re2.h>

#include <algorithm>
#include <array>
#include <bitset>
#include <cstring>
#include <optional>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/text.h"
#include "bpf/drop_reasons.h"
#include "bpf/flow_event.h"
#include "bpf/ip_prefix.h"
#include "bpf/ip_protocol.h"
#include "flowscope/v1/flowscope.pb.h"

namespace flowscope::observer {
namespace {

// A kernel reason in a drop_reason_desc filter that this build does not know (no record has it).
constexpr int kNoKernelReason = -2;

absl::Status Invalid(absl::string_view field, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid ", field, " filter \"", Quote(value), "\": ", why));
}

// A valid criterion on data flowscope cannot evaluate: the request is refused rather than
// answered as if nothing matched.
absl::Status Unsupported(absl::string_view field, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat("unsupported ", field, " filter \"", Quote(value),
                                                 "\": ", why, "; remove the filter"));
}

// --- addresses ---------------------------------------------------------------------------------

using Cidr = bpf::IpPrefix;

absl::StatusOr<Cidr> ParseCidr(absl::string_view field, const std::string& value) {
  auto p = bpf::ParseIpPrefix(value);
  if (!p.ok()) return Invalid(field, value, p.status().message());
  return *p;
}

// --- pods and services: "[namespace/]name-prefix" ------------------------------------------------

struct NameRule {
  bool any_namespace = false;
  std::string namespace_name;
  std::string prefix;

  bool Match(const std::string& ns, const std::string& name) const {
    if (ns.empty() && name.empty()) return false;
    if (!any_namespace && ns != namespace_name) return false;
    return absl::StartsWith(name, prefix);
  }
};

absl::StatusOr<NameRule> ParseNameRule(absl::string_view field, const std::string& value) {
  if (value.empty()) return Invalid(field, value, "name must not be empty");
  NameRule rule;
  const size_t slash = value.find('/');
  if (slash == std::string::npos) {
    rule.namespace_name = "default";
    rule.prefix = value;
  } else {
    rule.namespace_name = value.substr(0, slash);
    rule.any_namespace = rule.namespace_name.empty();
    rule.prefix = value.substr(slash + 1);
  }
  return rule;
}

}  // namespace

// --- one FlowFilter ----------------------------------------------------------------------------

class CompiledFilter {
 public:
  struct Side {
    std::vector<Cidr> ips;
    std::vector<NameRule> pods;
    std::vector<std::vector<LabelRequirement>> labels;
    std::vector<uint32_t> identities;
    std::vector<flow::Workload> workloads;
    std::vector<std::string> clusters;
    std::vector<uint16_t> ports;
    std::vector<NameRule> services;
    std::vector<std::shared_ptr<const RE2>> fqdns;  // anchored, over the side's DNS names

    bool FqdnMatches(const std::vector<std::string>& names) const {
      return std::any_of(names.begin(), names.end(), [&](const std::string& n) {
        return std::any_of(fqdns.begin(), fqdns.end(),
                           [&](const auto& re) { return RE2::FullMatch(n, *re); });
      });
    }
    bool ServiceMatches(const std::string& ns, const std::string& name) const {
      return std::any_of(services.begin(), services.end(),
                         [&](const NameRule& rule) { return rule.Match(ns, name); });
    }

    bool HasEndpointCriteria() const {
      return !pods.empty() || !labels.empty() || !identities.empty() || !workloads.empty() ||
             !clusters.empty();
    }
    bool EndpointMatches(const Endpoint& e) const {
      if (!pods.empty() && std::none_of(pods.begin(), pods.end(), [&](const NameRule& p) {
            return p.Match(e.namespace_name, e.pod_name);
          })) {
        return false;
      }
      if (!labels.empty() && std::none_of(labels.begin(), labels.end(), [&](const auto& sel) {
            return SelectorMatches(sel, e.labels);
          })) {
        return false;
      }
      if (!identities.empty() &&
          std::find(identities.begin(), identities.end(), e.identity) == identities.end()) {
        return false;
      }
      if (!workloads.empty() &&
          (e.workload_name.empty() ||  // an endpoint without a workload matches none
           std::none_of(workloads.begin(), workloads.end(), [&](const flow::Workload& w) {
             return (w.name().empty() || w.name() == e.workload_name) &&
                    (w.kind().empty() || w.kind() == e.workload_kind);
           }))) {
        return false;
      }
      if (!clusters.empty() &&
          std::find(clusters.begin(), clusters.end(), e.cluster_name) == clusters.end()) {
        return false;
      }
      return true;
    }
  };

  // With a table and builder: for this node's records. Without: for decoded flows (MatchFlow).
  static absl::StatusOr<std::unique_ptr<CompiledFilter>> Compile(const flow::FlowFilter& f,
                                                                 const EndpointTable* table,
                                                                 const FlowBuilder* builder);

  // A node name without a cluster is in `cluster`; an empty one matches no node_name pattern.
  bool NodeMatches(const std::string& node, const std::string& cluster) const {
    if (!node_labels_ok_) return false;
    if (node_pattern_ == nullptr) return true;
    if (node.empty()) return false;
    const std::string full =
        node.find('/') == std::string::npos ? absl::StrCat(cluster, "/", node) : node;
    return RE2::FullMatch(full, *node_pattern_);
  }

  // The same criteria over a decoded flow (one read from a file, or from any Hubble server).
  bool MatchFlow(const flow::Flow& f) const;

  // The record's facts as the criteria ask for them (MatchFacts), each computed only when a
  // criterion needs it. A decoded flow has its own (see MatchFlow).
  struct RecordFacts {
    const CompiledFilter& c;
    const FlowRecord& r;
    uint64_t position;

    bool dropped() const { return r.verdict == FS_VERDICT_DROPPED; }
    int verdict() const { return dropped() ? flow::DROPPED : flow::FORWARDED; }
    flow::IPVersion ip_version() const {
      return r.family == FS_FAMILY_IPV4 ? flow::IPv4 : flow::IPv6;
    }
    uint8_t family() const { return r.family; }
    const uint32_t* addr(bool source) const { return source ? r.saddr : r.daddr; }
    uint8_t protocol() const { return r.protocol; }
    uint16_t port(bool source) const { return source ? r.sport : r.dport; }
    uint16_t tcp_flags() const { return r.tcp_flags; }
    int32_t event_type() const { return MonitorType(r); }
    int32_t event_sub_type() const { return MonitorSubType(r); }
    std::optional<bool> reply() const {
      if (r.is_reply == FS_REPLY_UNKNOWN) return std::nullopt;
      return r.is_reply == FS_REPLY_YES;
    }
    flow::TrafficDirection direction() const { return TrafficDirectionOf(r); }
    int drop_reason() const { return dropped() ? r.drop_reason : 0; }
    int kernel_reason() const { return IsKernelDrop(r) ? r.policy : -1; }
    bool dns() const { return IsDns(r); }
    // "" for a flow that is not DNS, or whose message is no longer kept.
    std::string dns_query() const {
      flow::DNS m;
      if (!IsDns(r) || c.builder_ == nullptr || c.builder_->dns() == nullptr ||
          !c.builder_->dns()->Decode(DnsIdOf(r), &m)) {
        return "";
      }
      return m.query();
    }
    uint32_t ifindex() const { return r.ifindex; }
    std::string interface_name() const { return c.builder_->InterfaceName(r.ifindex); }
    std::string uuid() const { return c.builder_->Uuid(position); }
    std::vector<std::string> names(bool source) const {
      const NameCache* cache = c.builder_ == nullptr ? nullptr : c.builder_->names();
      if (cache == nullptr) return {};
      return source ? cache->SourceNames(r) : cache->DestinationNames(r);
    }
    // Evaluated once per endpoint id while it stays in its cache slot (ids grow with pod
    // churn; the cache does not).
    bool endpoint_matches(const Side& side, bool source) const {
      const uint32_t id = source ? r.src_endpoint : r.dst_endpoint;
      EndpointCache& cache = source ? c.src_cache_ : c.dst_cache_;
      EndpointCache::Slot& slot = cache.slots[id % cache.slots.size()];
      if (slot.id != id) slot = {id, side.EndpointMatches(*c.table_->Get(id))};
      return slot.hit;
    }
    bool service_matches(const Side& side, bool source) const {
      std::shared_ptr<const Service> svc =
          c.table_->GetService(source ? r.src_service : r.dst_service);
      return svc != nullptr && side.ServiceMatches(svc->namespace_name, svc->name);
    }
  };

  bool Match(const FlowRecord& r, uint64_t position) const {
    return node_matches_ && MatchFacts(RecordFacts{*this, r, position});
  }

  // True when only endpoint criteria (pod, label, identity, workload, cluster) can reject a
  // record: then the filter matches it exactly when both sides accept their endpoint ids.
  bool EndpointOnly() const {
    const auto plain = [](const Side& s) {
      return s.ips.empty() && s.ports.empty() && s.services.empty() && s.fqdns.empty();
    };
    return !never_ && plain(src_) && plain(dst_) && verdicts_.none() && ip_versions_.empty() &&
           protocols_.empty() && !dns_protocol_ && dns_queries_.empty() && event_types_.empty() &&
           tcp_flags_.empty() && reply_.empty() && directions_.empty() && drop_reasons_.empty() &&
           kernel_reasons_.empty() && interfaces_.empty() && encrypted_.empty() && uuids_.empty();
  }
  bool SideAccepts(uint32_t endpoint, bool source) const {
    const Side& side = source ? src_ : dst_;
    return node_matches_ &&
           (!side.HasEndpointCriteria() || side.EndpointMatches(*table_->Get(endpoint)));
  }

 private:
  // Every criterion but the node's, over the facts of a record or of a decoded flow.
  template <typename Facts>
  bool MatchFacts(const Facts& x) const {
    if (never_) return false;
    if (verdicts_.any() && (x.verdict() < 0 || x.verdict() >= 8 ||
                            !verdicts_.test(static_cast<size_t>(x.verdict())))) {
      return false;
    }
    if (!ip_versions_.empty() &&
        std::find(ip_versions_.begin(), ip_versions_.end(), x.ip_version()) == ip_versions_.end()) {
      return false;
    }
    // L4 protocols and "dns" (an L7 DNS flow, whose L4 is UDP or TCP as well) are alternatives.
    if ((!protocols_.empty() || dns_protocol_) &&
        std::find(protocols_.begin(), protocols_.end(), x.protocol()) == protocols_.end() &&
        !(dns_protocol_ && x.dns())) {
      return false;
    }
    if (!dns_queries_.empty()) {
      if (!x.dns()) return false;
      const std::string query = x.dns_query();
      if (std::none_of(dns_queries_.begin(), dns_queries_.end(),
                       [&](const std::shared_ptr<const RE2>& re) {
                         return RE2::PartialMatch(query, *re);
                       })) {
        return false;
      }
    }
    if (!SideMatches(src_, x, true) || !SideMatches(dst_, x, false)) return false;
    if (!event_types_.empty() &&
        std::none_of(event_types_.begin(), event_types_.end(), [&](const flow::EventTypeFilter& e) {
          return (e.type() == 0 || e.type() == x.event_type()) &&
                 (!e.match_sub_type() || e.sub_type() == x.event_sub_type());
        })) {
      return false;
    }
    if (!tcp_flags_.empty()) {
      if (x.protocol() != IPPROTO_TCP) return false;
      if (std::none_of(tcp_flags_.begin(), tcp_flags_.end(),
                       [&](uint16_t m) { return (x.tcp_flags() & m) == m; })) {
        return false;
      }
    }
    if (!reply_.empty()) {
      // A drop with no known direction counts as not a reply; other unknowns match nothing.
      const std::optional<bool> reply = x.reply();
      if (!reply && x.verdict() != flow::DROPPED) return false;
      if (std::find(reply_.begin(), reply_.end(), reply.value_or(false)) == reply_.end()) {
        return false;
      }
    }
    if (!directions_.empty() &&
        std::find(directions_.begin(), directions_.end(), x.direction()) == directions_.end()) {
      return false;
    }
    // Only drops have a drop reason to match (a forwarded flow's 0 is not DROP_REASON_UNKNOWN);
    // Hubble's codes and the kernel's reasons in one filter are alternatives.
    if (!drop_reasons_.empty() || !kernel_reasons_.empty()) {
      const bool hubble = x.verdict() == flow::DROPPED &&
                          std::find(drop_reasons_.begin(), drop_reasons_.end(), x.drop_reason()) !=
                              drop_reasons_.end();
      const bool kernel =
          !kernel_reasons_.empty() && std::find(kernel_reasons_.begin(), kernel_reasons_.end(),
                                                x.kernel_reason()) != kernel_reasons_.end();
      if (!hubble && !kernel) return false;
    }
    if (!interfaces_.empty()) {
      const std::string name = x.interface_name();
      if (std::none_of(interfaces_.begin(), interfaces_.end(),
                       [&](const flow::NetworkInterface& i) {
                         return (i.index() == 0 || i.index() == x.ifindex()) &&
                                (i.name().empty() || i.name() == name);
                       })) {
        return false;
      }
    }
    if (!encrypted_.empty() &&
        std::find(encrypted_.begin(), encrypted_.end(), false) == encrypted_.end()) {
      return false;  // nothing flowscope sees is encrypted (yet)
    }
    if (!uuids_.empty() && std::find(uuids_.begin(), uuids_.end(), x.uuid()) == uuids_.end()) {
      return false;
    }
    return true;
  }

  template <typename Facts>
  bool SideMatches(const Side& side, const Facts& x, bool source) const {
    const uint32_t* addr = x.addr(source);
    if (!side.ips.empty() && std::none_of(side.ips.begin(), side.ips.end(), [&](const Cidr& c) {
          return addr != nullptr && c.Contains(x.family(), addr);
        })) {
      return false;
    }
    if (!side.ports.empty()) {
      if (x.protocol() != IPPROTO_TCP && x.protocol() != IPPROTO_UDP &&
          x.protocol() != IPPROTO_SCTP) {
        return false;
      }
      const uint16_t port = x.port(source);
      if (std::find(side.ports.begin(), side.ports.end(), port) == side.ports.end()) return false;
    }
    if (!side.services.empty() && !x.service_matches(side, source)) return false;
    if (!side.fqdns.empty() && !side.FqdnMatches(x.names(source))) return false;
    return !side.HasEndpointCriteria() || x.endpoint_matches(side, source);
  }

  const EndpointTable* table_ = nullptr;
  const FlowBuilder* builder_ = nullptr;
  bool never_ = false;
  bool node_matches_ = true;    // for records: this node against the patterns and labels
  bool node_labels_ok_ = true;  // node_labels selectors against this node's labels
  std::shared_ptr<const RE2> node_pattern_;  // node_name patterns, as one expression
  Side src_;
  Side dst_;
  std::bitset<8> verdicts_;
  std::vector<flow::IPVersion> ip_versions_;
  std::vector<uint8_t> protocols_;
  bool dns_protocol_ = false;  // "dns": L7 DNS flows
  std::vector<std::shared_ptr<const RE2>> dns_queries_;
  std::vector<flow::EventTypeFilter> event_types_;
  std::vector<uint16_t> tcp_flags_;
  std::vector<bool> reply_;
  std::vector<flow::TrafficDirection> directions_;
  std::vector<int> drop_reasons_;
  std::vector<int> kernel_reasons_;  // flowscope's ids; kNoKernelReason for ones it does not know
  std::vector<flow::NetworkInterface> interfaces_;
  std::vector<bool> encrypted_;
  std::vector<std::string> uuids_;
  // Whether an endpoint matched, by id, direct-mapped.
  struct EndpointCache {
    struct Slot {
      uint32_t id = ~uint32_t{0};  // no entry has this id
      bool hit = false;
    };
    std::array<Slot, 1024> slots{};
  };
  mutable EndpointCache src_cache_;
  mutable EndpointCache dst_cache_;
};

namespace {

absl::Status ValidateRegex(absl::string_view field, const std::string& value) {
  RE2 re(value, RE2::Quiet);
  if (!re.ok()) return Invalid(field, value, re.error());
  return absl::OkStatus();
}

// Hubble's FQDN patterns: lowercased, without surrounding spaces and one trailing dot, of
// letters, digits, '-', '_', '.' and '*' (any run of those but '*'); the whole name must match.
absl::StatusOr<std::shared_ptr<const RE2>> FqdnPattern(absl::string_view field,
                                                       const std::string& value) {
  const std::string lower = absl::AsciiStrToLower(value);
  absl::string_view v = absl::StripAsciiWhitespace(lower);
  absl::ConsumeSuffix(&v, ".");
  if (v.empty()) return Invalid(field, value, "must not be empty");
  std::string re;
  for (char c : v) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') {
      re.push_back(c);
    } else if (c == '.') {
      re += "[.]";
    } else if (c == '*') {
      re += "[-a-zA-Z0-9_.]*";
    } else {
      return Invalid(
          field, value,
          absl::StrCat("character '", std::string(1, c), "' is not allowed in an FQDN pattern"));
    }
  }
  return std::make_shared<const RE2>(re);
}

// Hubble's node name patterns: "[cluster/]node", each part lowercased, without surrounding
// spaces and one trailing dot, of letters, digits, '-', '_', '.' and '*' (any run of letters,
// digits, '-' and '.'); an empty or missing part is any name. One expression for all of them.
constexpr char kAnyDnsName[] = "(?:[-0-9_a-z]+(?:\\.[-0-9_a-z]+)*)";

absl::Status AppendNamePattern(absl::string_view part, const std::string& pattern,
                               std::string* re) {
  std::string p = absl::AsciiStrToLower(absl::StripAsciiWhitespace(part));
  if (absl::EndsWith(p, ".")) p.pop_back();
  if (p.empty()) return Invalid("node_name", pattern, "empty pattern");
  if (absl::EndsWith(p, ".")) return Invalid("node_name", pattern, "more than one trailing dot");
  for (char ch : p) {
    if (ch == '.') {
      re->append("\\.");
    } else if (ch == '*') {
      re->append("[-.0-9a-z]*");
    } else if (absl::ascii_isdigit(static_cast<unsigned char>(ch)) || (ch >= 'a' && ch <= 'z') ||
               ch == '-' || ch == '_') {
      re->push_back(ch);
    } else {
      return Invalid("node_name", pattern,
                     absl::StrCat("character '", std::string(1, ch), "' is not allowed"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const RE2>> NodeNamePattern(
    const google::protobuf::RepeatedPtrField<std::string>& patterns) {
  std::string re = "(?:";
  for (int i = 0; i < patterns.size(); ++i) {
    const std::string& pattern = patterns[i];
    if (pattern.empty()) return Invalid("node_name", pattern, "empty pattern");
    const std::vector<absl::string_view> parts = absl::StrSplit(pattern, '/');
    if (parts.size() > 2) return Invalid("node_name", pattern, "more than one '/'");
    if (i > 0) re.push_back('|');
    const absl::string_view cluster = parts.size() == 2 ? parts[0] : "";
    const absl::string_view node = parts.back();
    const auto append = [&](absl::string_view part) {
      if (!part.empty()) return AppendNamePattern(part, pattern, &re);
      re.append(kAnyDnsName);
      return absl::OkStatus();
    };
    if (absl::Status s = append(cluster); !s.ok()) return s;
    re.push_back('/');
    if (absl::Status s = append(node); !s.ok()) return s;
  }
  re.push_back(')');
  auto compiled = std::make_shared<const RE2>(re);
  if (!compiled->ok()) return Invalid("node_name", patterns[0], compiled->error());
  return compiled;
}

absl::StatusOr<std::vector<uint8_t>> Protocols(const std::string& value) {
  auto numbers = bpf::IpProtocolNumbers(value);
  if (!numbers.ok()) return Invalid("protocol", value, numbers.status().message());
  return *numbers;
}

absl::Status CompileSide(const flow::FlowFilter& f, bool source, CompiledFilter::Side* side) {
  const char* prefix = source ? "source_" : "destination_";
  auto field = [&](const char* name) { return absl::StrCat(prefix, name); };
  const auto& ips = source ? f.source_ip() : f.destination_ip();
  for (const std::string& v : ips) {
    auto c = ParseCidr(field("ip"), v);
    if (!c.ok()) return c.status();
    side->ips.push_back(*c);
  }
  for (const std::string& v : source ? f.source_pod() : f.destination_pod()) {
    auto r = ParseNameRule(field("pod"), v);
    if (!r.ok()) return r.status();
    side->pods.push_back(*r);
  }
  for (const std::string& v : source ? f.source_label() : f.destination_label()) {
    auto sel = ParseLabelSelector(v);
    if (!sel.ok()) return Invalid(field("label"), v, sel.status().message());
    side->labels.push_back(*std::move(sel));
  }
  for (uint32_t id : source ? f.source_identity() : f.destination_identity()) {
    side->identities.push_back(id);
  }
  for (const flow::Workload& w : source ? f.source_workload() : f.destination_workload()) {
    side->workloads.push_back(w);
  }
  for (const std::string& v : source ? f.source_cluster_name() : f.destination_cluster_name()) {
    if (v.empty()) return Invalid(field("cluster_name"), v, "cluster name must not be empty");
    side->clusters.push_back(v);
  }
  for (const std::string& v : source ? f.source_port() : f.destination_port()) {
    uint16_t port;
    if (!ParseDecimal(v, 0, 65535, &port)) {
      return Invalid(field("port"), v, "expected a port number 0..65535");
    }
    side->ports.push_back(port);
  }
  for (const std::string& v : source ? f.source_service() : f.destination_service()) {
    auto r = ParseNameRule(field("service"), v);
    if (!r.ok()) return r.status();
    side->services.push_back(*std::move(r));
  }
  for (const std::string& v : source ? f.source_fqdn() : f.destination_fqdn()) {
    auto re = FqdnPattern(field("fqdn"), v);
    if (!re.ok()) return re.status();
    side->fqdns.push_back(*std::move(re));
  }
  // Criteria on data flowscope does not record yet: refused, never answered as matching nothing.
  if (source) {
    for (const std::string& v : f.source_ip_xlated()) {
      if (auto c = ParseCidr("source_ip_xlated", v); !c.ok()) return c.status();
      return Unsupported("source_ip_xlated", v, "flowscope records no translated addresses yet");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<CompiledFilter>> CompiledFilter::Compile(
    const flow::FlowFilter& f, const EndpointTable* table, const FlowBuilder* builder) {
  auto c = std::make_unique<CompiledFilter>();
  c->table_ = table;
  c->builder_ = builder;
  if (absl::Status s = CompileSide(f, true, &c->src_); !s.ok()) return s;
  if (absl::Status s = CompileSide(f, false, &c->dst_); !s.ok()) return s;

  for (int v : f.verdict()) {
    if (v < 0 || v >= 8) return Invalid("verdict", absl::StrCat(v), "unknown verdict");
    c->verdicts_.set(static_cast<size_t>(v));
  }
  for (const auto& e : f.event_type()) c->event_types_.push_back(e);
  for (const std::string& p : f.protocol()) {
    auto protos = Protocols(p);
    if (!protos.ok()) return protos.status();
    c->protocols_.insert(c->protocols_.end(), protos->begin(), protos->end());
    if (absl::AsciiStrToLower(p) == "dns") c->dns_protocol_ = true;
  }
  // Only L7 protocols flowscope does not produce (http, kafka) asked for: nothing matches.
  if (f.protocol_size() > 0 && c->protocols_.empty() && !c->dns_protocol_) c->never_ = true;
  for (const flow::TCPFlags& t : f.tcp_flags()) {
    uint16_t m = 0;
    if (t.fin()) m |= FS_TCP_FIN;
    if (t.syn()) m |= FS_TCP_SYN;
    if (t.rst()) m |= FS_TCP_RST;
    if (t.psh()) m |= FS_TCP_PSH;
    if (t.ack()) m |= FS_TCP_ACK;
    if (t.urg()) m |= FS_TCP_URG;
    if (t.ece()) m |= FS_TCP_ECE;
    if (t.cwr()) m |= FS_TCP_CWR;
    if (t.ns()) m |= FS_TCP_NS;
    c->tcp_flags_.push_back(m);
  }
  for (bool r : f.reply()) c->reply_.push_back(r);
  for (int d : f.traffic_direction()) {
    c->directions_.push_back(static_cast<flow::TrafficDirection>(d));
  }
  for (int d : f.drop_reason_desc()) {
    // flowscope's kernel reasons sit above Hubble's codes (bpf/drop_reasons.h).
    if (d >= bpf::kKernelDropReasonFilterBase) {
      const int id = d - bpf::kKernelDropReasonFilterBase;
      const bool known = id < bpf::kKernelReasonUnknown &&
                         bpf::KernelDropReasonName(static_cast<uint8_t>(id)) != "UNKNOWN";
      c->kernel_reasons_.push_back(known ? id : kNoKernelReason);
    } else {
      c->drop_reasons_.push_back(d);
    }
  }
  for (int v : f.ip_version()) c->ip_versions_.push_back(static_cast<flow::IPVersion>(v));
  for (const auto& i : f.interface()) c->interfaces_.push_back(i);
  for (bool e : f.encrypted()) c->encrypted_.push_back(e);
  for (const std::string& u : f.uuid()) c->uuids_.push_back(absl::AsciiStrToLower(u));

  // Node names: "[cluster/]node" patterns; a flow's node is "<cluster>/<node>".
  if (f.node_name_size() > 0) {
    auto re = NodeNamePattern(f.node_name());
    if (!re.ok()) return re.status();
    c->node_pattern_ = *std::move(re);
  }
  // Node labels: this node's (from the Kubernetes source; none otherwise). A decoded flow does
  // not carry its node's labels: against the empty set.
  const std::vector<std::string> node_labels = table != nullptr && f.node_labels_size() > 0
                                                   ? table->NodeLabels()
                                                   : std::vector<std::string>{};
  for (const std::string& sel : f.node_labels()) {
    auto parsed = ParseLabelSelector(sel);
    if (!parsed.ok()) return Invalid("node_labels", sel, parsed.status().message());
    if (!SelectorMatches(*parsed, node_labels)) c->node_labels_ok_ = false;
  }
  if (builder != nullptr) {
    c->node_matches_ = c->NodeMatches(builder->node_name(), table->cluster_name());
  }

  // L7 and tracing fields: validated; no L3/L4 flow has them.
  const bool http = f.http_status_code_size() > 0 || f.http_method_size() > 0 ||
                    f.http_path_size() > 0 || f.http_url_size() > 0 || f.http_header_size() > 0;
  if (http && f.event_type_size() > 0 &&
      std::none_of(f.event_type().begin(), f.event_type().end(),
                   [](const flow::EventTypeFilter& e) { return e.type() == 129; })) {
    return absl::InvalidArgumentError(
        "invalid filter: HTTP fields need event type l7 (129) when event_type is set");
  }
  for (const std::string& code : f.http_status_code()) {
    absl::string_view digits = code;
    const bool prefix = absl::ConsumeSuffix(&digits, "+");
    int n;
    if (digits.empty() || digits.size() > 3 || !absl::SimpleAtoi(digits, &n) ||
        (!prefix && digits.size() != 3)) {
      return Invalid("http_status_code", code, "expected a code like 404, or a prefix like 4+");
    }
  }
  for (const std::string& v : f.http_path()) {
    if (absl::Status s = ValidateRegex("http_path", v); !s.ok()) return s;
  }
  for (const std::string& v : f.http_url()) {
    if (absl::Status s = ValidateRegex("http_url", v); !s.ok()) return s;
  }
  for (const std::string& v : f.dns_query()) {
    if (absl::Status s = ValidateRegex("dns_query", v); !s.ok()) return s;
    c->dns_queries_.push_back(std::make_shared<const RE2>(v));
  }
  if (http) {
    const auto [name, value] =
        f.http_status_code_size() > 0 ? std::pair{"http_status_code", f.http_status_code(0)}
        : f.http_method_size() > 0    ? std::pair{"http_method", f.http_method(0)}
        : f.http_path_size() > 0      ? std::pair{"http_path", f.http_path(0)}
        : f.http_url_size() > 0       ? std::pair{"http_url", f.http_url(0)}
                                      : std::pair{"http_header", f.http_header(0).key()};
    return Unsupported(name, value, "flowscope records no HTTP (L7) data yet");
  }
  if (f.trace_id_size() > 0) {
    return Unsupported("trace_id", f.trace_id(0), "flowscope records no trace contexts");
  }
  if (f.ip_trace_id_size() > 0) {
    return Unsupported("ip_trace_id", absl::StrCat(f.ip_trace_id(0)),
                       "flowscope records no IP trace ids");
  }
  if (f.has_experimental() && f.experimental().cel_expression_size() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid experimental.cel_expression filter \"", Quote(f.experimental().cel_expression(0)),
        "\": CEL expressions are not supported by flowscope"));
  }
  return c;
}

FlowPredicate::FlowPredicate(FlowPredicate&&) noexcept = default;
FlowPredicate& FlowPredicate::operator=(FlowPredicate&&) noexcept = default;
FlowPredicate::~FlowPredicate() = default;

absl::StatusOr<FlowPredicate> FlowPredicate::Compile(
    const google::protobuf::RepeatedPtrField<flow::FlowFilter>& whitelist,
    const google::protobuf::RepeatedPtrField<flow::FlowFilter>& blacklist,
    const EndpointTable& table, const FlowBuilder& builder) {
  return CompileWith(whitelist, blacklist, &table, &builder);
}

absl::StatusOr<FlowPredicate> FlowPredicate::CompileForFlows(
    const google::protobuf::RepeatedPtrField<flow::FlowFilter>& whitelist,
    const google::protobuf::RepeatedPtrField<flow::FlowFilter>& blacklist) {
  return CompileWith(whitelist, blacklist, nullptr, nullptr);
}

absl::StatusOr<FlowPredicate> FlowPredicate::CompileWith(
    const google::protobuf::RepeatedPtrField<flow::FlowFilter>& whitelist,
    const google::protobuf::RepeatedPtrField<flow::FlowFilter>& blacklist,
    const EndpointTable* table, const FlowBuilder* builder) {
  FlowPredicate p;
  for (const auto& f : whitelist) {
    auto c = CompiledFilter::Compile(f, table, builder);
    if (!c.ok()) return c.status();
    p.whitelist_.push_back(*std::move(c));
  }
  for (const auto& f : blacklist) {
    auto c = CompiledFilter::Compile(f, table, builder);
    if (!c.ok()) return c.status();
    p.blacklist_.push_back(*std::move(c));
  }
  const auto endpoint_only = [](const auto& c) { return c->EndpointOnly(); };
  p.by_endpoint_ = table != nullptr && !p.MatchesAll() && p.whitelist_.size() <= kListBits &&
                   p.blacklist_.size() <= kListBits &&
                   std::all_of(p.whitelist_.begin(), p.whitelist_.end(), endpoint_only) &&
                   std::all_of(p.blacklist_.begin(), p.blacklist_.end(), endpoint_only);
  return p;
}

uint32_t FlowPredicate::Decided(uint32_t endpoint, bool source) const {
  uint32_t bits = kDecided;
  for (size_t i = 0; i < whitelist_.size(); ++i) {
    if (whitelist_[i]->SideAccepts(endpoint, source)) bits |= uint32_t{1} << i;
  }
  for (size_t i = 0; i < blacklist_.size(); ++i) {
    if (blacklist_[i]->SideAccepts(endpoint, source)) bits |= uint32_t{1} << (kListBits + i);
  }
  return bits;
}

bool FlowPredicate::MatchSlowly(const FlowRecord& r, uint64_t position) const {
  if (by_endpoint_ && r.src_endpoint < kMaxDecided && r.dst_endpoint < kMaxDecided) {
    for (auto [id, table, source] : {std::tuple{r.src_endpoint, &src_decided_, true},
                                     std::tuple{r.dst_endpoint, &dst_decided_, false}}) {
      if (id >= table->size()) table->resize(std::min<size_t>(kMaxDecided, 2 * (id + 1)), 0);
      if ((*table)[id] == 0) (*table)[id] = Decided(id, source);
    }
    return Decide(src_decided_[r.src_endpoint] & dst_decided_[r.dst_endpoint]);
  }
  if (!whitelist_.empty() && std::none_of(whitelist_.begin(), whitelist_.end(),
                                          [&](const auto& f) { return f->Match(r, position); })) {
    return false;
  }
  return std::none_of(blacklist_.begin(), blacklist_.end(),
                      [&](const auto& f) { return f->Match(r, position); });
}

bool FlowPredicate::MatchFlow(const flow::Flow& f) const {
  if (!whitelist_.empty() && std::none_of(whitelist_.begin(), whitelist_.end(),
                                          [&](const auto& c) { return c->MatchFlow(f); })) {
    return false;
  }
  return std::none_of(blacklist_.begin(), blacklist_.end(),
                      [&](const auto& c) { return c->MatchFlow(f); });
}

// --- decoded flows -----------------------------------------------------------------------------

namespace {

// A decoded flow's fields in the shapes the record criteria use.
struct FlowView {
  uint8_t family = 0;
  uint32_t saddr[4] = {};
  uint32_t daddr[4] = {};
  uint8_t protocol = 0;
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint16_t tcp_flags = 0;
};

FlowView ViewOf(const flow::Flow& f) {
  FlowView v;
  const int af = f.ip().ipversion() == flow::IPv6 ? AF_INET6 : AF_INET;
  v.family = af == AF_INET6 ? FS_FAMILY_IPV6 : FS_FAMILY_IPV4;
  if (inet_pton(af, f.ip().source().c_str(), v.saddr) != 1 ||
      inet_pton(af, f.ip().destination().c_str(), v.daddr) != 1) {
    v.family = 0;  // no IP layer: matches no IP criterion
  }
  const flow::Layer4& l4 = f.l4();
  if (l4.has_tcp()) {
    v.protocol = IPPROTO_TCP;
    v.sport = static_cast<uint16_t>(l4.tcp().source_port());
    v.dport = static_cast<uint16_t>(l4.tcp().destination_port());
    const flow::TCPFlags& t = l4.tcp().flags();
    v.tcp_flags = static_cast<uint16_t>(
        (t.fin() ? FS_TCP_FIN : 0) | (t.syn() ? FS_TCP_SYN : 0) | (t.rst() ? FS_TCP_RST : 0) |
        (t.psh() ? FS_TCP_PSH : 0) | (t.ack() ? FS_TCP_ACK : 0) | (t.urg() ? FS_TCP_URG : 0) |
        (t.ece() ? FS_TCP_ECE : 0) | (t.cwr() ? FS_TCP_CWR : 0) | (t.ns() ? FS_TCP_NS : 0));
  } else if (l4.has_udp()) {
    v.protocol = IPPROTO_UDP;
    v.sport = static_cast<uint16_t>(l4.udp().source_port());
    v.dport = static_cast<uint16_t>(l4.udp().destination_port());
  } else if (l4.has_sctp()) {
    v.protocol = IPPROTO_SCTP;
    v.sport = static_cast<uint16_t>(l4.sctp().source_port());
    v.dport = static_cast<uint16_t>(l4.sctp().destination_port());
  } else if (l4.has_icmpv4()) {
    v.protocol = IPPROTO_ICMP;
  } else if (l4.has_icmpv6()) {
    v.protocol = IPPROTO_ICMPV6;
  }
  return v;
}

Endpoint EndpointOf(const flow::Endpoint& e, const flow::Workload* workload) {
  Endpoint out;
  out.identity = e.identity();
  out.namespace_name = e.namespace_();
  out.pod_name = e.pod_name();
  out.labels = std::vector<std::string>(e.labels().begin(), e.labels().end());
  out.cluster_name = e.cluster_name();
  if (workload != nullptr) {
    out.workload_name = workload->name();
    out.workload_kind = workload->kind();
  }
  return out;
}

// An endpoint criterion holds for any of the endpoint's workloads (or for none, if it has none).
bool EndpointOfFlowMatches(const CompiledFilter::Side& side, const flow::Endpoint& e) {
  if (e.workloads_size() == 0) return side.EndpointMatches(EndpointOf(e, nullptr));
  return std::any_of(e.workloads().begin(), e.workloads().end(), [&](const flow::Workload& w) {
    return side.EndpointMatches(EndpointOf(e, &w));
  });
}

}  // namespace

bool CompiledFilter::MatchFlow(const flow::Flow& f) const {
  // As Hubble: a flow's node name without a cluster is in the default cluster.
  if (!NodeMatches(f.node_name(), "default")) return false;
  struct FlowFacts {
    const flow::Flow& f;
    FlowView v;

    int verdict() const { return f.verdict(); }
    flow::IPVersion ip_version() const { return f.ip().ipversion(); }
    uint8_t family() const { return v.family; }
    const uint32_t* addr(bool source) const { return source ? v.saddr : v.daddr; }
    uint8_t protocol() const { return v.protocol; }
    uint16_t port(bool source) const { return source ? v.sport : v.dport; }
    uint16_t tcp_flags() const { return v.tcp_flags; }
    int32_t event_type() const { return f.event_type().type(); }
    int32_t event_sub_type() const { return f.event_type().sub_type(); }
    std::optional<bool> reply() const {
      if (!f.has_is_reply()) return std::nullopt;
      return f.is_reply().value();
    }
    flow::TrafficDirection direction() const { return f.traffic_direction(); }
    int drop_reason() const { return f.drop_reason_desc(); }
    bool dns() const { return f.has_l7() && f.l7().has_dns(); }
    std::string dns_query() const { return f.l7().dns().query(); }
    int kernel_reason() const {
      flowscope::v1::KernelDrop drop;
      if (f.verdict() != flow::DROPPED || !f.extensions().UnpackTo(&drop)) return -1;
      const std::optional<uint8_t> id = bpf::KernelDropReasonId(drop.reason());
      return id ? *id : bpf::kKernelReasonUnknown;
    }
    uint32_t ifindex() const { return f.interface().index(); }
    std::string interface_name() const { return f.interface().name(); }
    std::string uuid() const { return absl::AsciiStrToLower(f.uuid()); }
    std::vector<std::string> names(bool source) const {
      const auto& n = source ? f.source_names() : f.destination_names();
      return {n.begin(), n.end()};
    }
    bool endpoint_matches(const Side& side, bool source) const {
      return EndpointOfFlowMatches(side, source ? f.source() : f.destination());
    }
    bool service_matches(const Side& side, bool source) const {
      const flow::Service& s = source ? f.source_service() : f.destination_service();
      return side.ServiceMatches(s.namespace_(), s.name());
    }
  };
  return MatchFacts(FlowFacts{f, ViewOf(f)});
}

}  // namespace flowscope::observer
