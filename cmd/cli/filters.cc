#include "cmd/cli/filters.h"

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/json.h"
#include "api/text.h"
#include "bpf/drop_reasons.h"
#include "bpf/ip_protocol.h"

namespace flowscope::cli {
namespace {

// Flags that fill the source side of the left filter and the destination side of the right.
const std::set<std::string> kTwoSided = {"pod",  "ip",       "fqdn",     "label",  "service",
                                         "port", "identity", "workload", "cluster"};

const std::vector<std::set<std::string>> kConflictGroups = {
    {"from-fqdn", "from-ip", "ip", "fqdn", "from-namespace", "namespace", "from-all-namespaces",
     "all-namespaces"},
    {"to-fqdn", "to-ip", "ip", "fqdn", "to-namespace", "namespace", "to-all-namespaces",
     "all-namespaces"},
    {"from-fqdn", "from-ip", "ip", "fqdn", "from-pod", "pod"},
    {"to-fqdn", "to-ip", "ip", "fqdn", "to-pod", "pod"},
    {"to-pod", "namespace", "all-namespaces"},
    {"from-pod", "namespace", "all-namespaces"},
    {"to-service", "namespace", "all-namespaces"},
    {"from-service", "namespace", "all-namespaces"},
    {"label", "from-label"},
    {"label", "to-label"},
    {"service", "from-service"},
    {"service", "to-service"},
    {"port", "from-port"},
    {"port", "to-port"},
    {"identity", "from-identity"},
    {"identity", "to-identity"},
    {"workload", "from-workload"},
    {"workload", "to-workload"},
    {"encrypted", "unencrypted"},
};

const std::vector<std::string>& SingleSided() {
  static const auto* v = new std::vector<std::string>{
      "verdict",           "type",       "protocol",    "tcp-flags",
      "node-name",         "node-label", "uuid",        "drop-reason-desc",
      "traffic-direction", "interface",  "http-status", "http-method",
      "http-path",         "http-url",   "http-header", "trace-id",
      "ip-trace-id",       "ipv4",       "ipv6",        "ip-version",
      "snat-ip",           "encrypted",  "unencrypted", "cel-expression"};
  return *v;
}

absl::Status Bad(absl::string_view flag, absl::string_view value, absl::string_view why) {
  return absl::InvalidArgumentError(
      absl::StrCat("invalid value \"", Quote(value), "\" for --", flag, ": ", why));
}

// Cilium's reserved identities by name, as Hubble's CLI knows them ("unknown" is not one it
// accepts); names are case-sensitive there too.
const std::map<std::string, uint32_t>& ReservedIdentities() {
  static const auto* m = new std::map<std::string, uint32_t>{
      {"host", 1},       {"world", 2},       {"unmanaged", 3},          {"health", 4},
      {"init", 5},       {"remote-node", 6}, {"kube-apiserver", 7},     {"ingress", 8},
      {"world-ipv4", 9}, {"world-ipv6", 10}, {"overlay-to-encrypt", 11}};
  return *m;
}

const std::map<std::string, int>& EventTypes() {
  static const auto* m = new std::map<std::string, int>{
      {"drop", 1},           {"debug", 2},      {"capture", 3}, {"trace", 4},
      {"policy-verdict", 5}, {"trace-sock", 7}, {"l7", 129},    {"agent", 130}};
  return *m;
}

absl::StatusOr<uint32_t> ParseIdentity(absl::string_view flag, absl::string_view v) {
  const auto& reserved = ReservedIdentities();
  if (auto it = reserved.find(std::string(v)); it != reserved.end()) return it->second;
  uint32_t id;
  if (absl::SimpleAtoi(v, &id) && absl::ascii_isdigit(static_cast<unsigned char>(v.front()))) {
    return id;
  }
  return Bad(flag, v,
             "expected a numeric identity or a reserved name (host, world, unmanaged, health, "
             "init, remote-node, kube-apiserver, ingress, world-ipv4, world-ipv6, "
             "overlay-to-encrypt)");
}

absl::StatusOr<flow::EventTypeFilter> ParseType(absl::string_view v) {
  const auto& kTypes = EventTypes();
  // Sub-type names by number: trace observation points, and agent notifications.
  static const std::vector<std::string> kTrace = {
      "to-endpoint",   "to-proxy",   "to-host",     "to-stack",   "to-overlay",
      "from-endpoint", "from-proxy", "from-host",   "from-stack", "from-overlay",
      "from-network",  "to-network", "from-crypto", "to-crypto"};
  static const std::vector<std::string> kAgent = {"unspecified",
                                                  "message",
                                                  "agent-started",
                                                  "endpoint-regenerate-success",
                                                  "endpoint-regenerate-failure",
                                                  "policy-updated",
                                                  "policy-deleted",
                                                  "endpoint-created",
                                                  "endpoint-deleted",
                                                  "ipcache-upserted",
                                                  "ipcache-deleted"};
  std::vector<std::string> parts = absl::StrSplit(v, absl::MaxSplits(':', 1));
  flow::EventTypeFilter f;
  const std::string& name = parts[0];  // case-sensitive, as Hubble's
  int type;
  if (auto it = kTypes.find(name); it != kTypes.end()) {
    type = it->second;
  } else if (!absl::SimpleAtoi(name, &type)) {
    return Bad("type", v,
               "unknown event type; expected drop, trace, policy-verdict, capture, "
               "trace-sock, l7, agent, debug or a number");
  }
  f.set_type(type);
  if (parts.size() == 2) {
    int sub;
    const std::vector<std::string>* names = type == 4 ? &kTrace : type == 130 ? &kAgent : nullptr;
    auto it = names != nullptr ? std::find(names->begin(), names->end(), parts[1]) : kTrace.end();
    if (names != nullptr && it != names->end()) {
      sub = static_cast<int>(it - names->begin());
    } else if (!absl::SimpleAtoi(parts[1], &sub) || sub < 0) {
      return Bad("type", v, "unknown sub-type");
    }
    f.set_match_sub_type(true);
    f.set_sub_type(sub);
  }
  return f;
}

absl::StatusOr<flow::TCPFlags> ParseTcpFlags(absl::string_view v) {
  flow::TCPFlags f;
  for (absl::string_view p : absl::StrSplit(v, ',')) {
    const std::string n = absl::AsciiStrToLower(absl::StripAsciiWhitespace(p));
    if (n == "syn")
      f.set_syn(true);
    else if (n == "ack")
      f.set_ack(true);
    else if (n == "fin")
      f.set_fin(true);
    else if (n == "rst")
      f.set_rst(true);
    else if (n == "psh")
      f.set_psh(true);
    else if (n == "urg")
      f.set_urg(true);
    else if (n == "ece")
      f.set_ece(true);
    else if (n == "cwr")
      f.set_cwr(true);
    else if (n == "ns")
      f.set_ns(true);
    else
      return Bad("tcp-flags", v, absl::StrCat("unknown flag \"", n, "\""));
  }
  return f;
}

// Adds a side-specific value (`kind` is the flag without from-/to-) to `f`.
absl::Status AddSide(flow::FlowFilter& f, bool source, const std::string& flag,
                     const std::string& kind, absl::string_view value) {
  const std::string v(value);
  if (kind == "pod") {
    (source ? f.mutable_source_pod() : f.mutable_destination_pod())->Add(std::string(v));
  } else if (kind == "ip") {
    (source ? f.mutable_source_ip() : f.mutable_destination_ip())->Add(std::string(v));
  } else if (kind == "fqdn") {
    (source ? f.mutable_source_fqdn() : f.mutable_destination_fqdn())->Add(std::string(v));
  } else if (kind == "label") {
    (source ? f.mutable_source_label() : f.mutable_destination_label())->Add(std::string(v));
  } else if (kind == "service") {
    (source ? f.mutable_source_service() : f.mutable_destination_service())->Add(std::string(v));
  } else if (kind == "cluster") {
    (source ? f.mutable_source_cluster_name() : f.mutable_destination_cluster_name())
        ->Add(std::string(v));
  } else if (kind == "port") {
    uint16_t port;
    if (!ParseDecimal(v, 0, 65535, &port)) return Bad(flag, v, "expected a port number 0..65535");
    (source ? f.mutable_source_port() : f.mutable_destination_port())->Add(absl::StrCat(port));
  } else if (kind == "identity") {
    auto id = ParseIdentity(flag, v);
    if (!id.ok()) return id.status();
    (source ? f.mutable_source_identity() : f.mutable_destination_identity())->Add(*id);
  } else if (kind == "workload") {
    flow::Workload* w =
        (source ? f.mutable_source_workload() : f.mutable_destination_workload())->Add();
    const size_t slash = v.find('/');
    if (slash == std::string::npos) {
      w->set_name(v);
    } else {
      w->set_kind(v.substr(0, slash));
      w->set_name(v.substr(slash + 1));
    }
  }
  return absl::OkStatus();
}

absl::Status AddSingle(flow::FlowFilter& f, const std::string& flag, absl::string_view value) {
  const std::string v(value);
  if (flag == "verdict") {
    flow::Verdict verdict;
    if (!flow::Verdict_Parse(v, &verdict) || verdict == flow::VERDICT_UNKNOWN) {
      return Bad(flag, v,
                 "expected FORWARDED, DROPPED, ERROR, AUDIT, REDIRECTED, TRACED or TRANSLATED");
    }
    f.add_verdict(verdict);
  } else if (flag == "drop-reason-desc") {
    // Hubble's reasons, and (flowscope) the kernel's: "NETFILTER_DROP", "NO_SOCKET".
    flow::DropReason reason;
    if (flow::DropReason_Parse(v, &reason)) {
      f.add_drop_reason_desc(reason);
    } else if (bpf::KernelDropReasonId(v).has_value() && v == absl::AsciiStrToUpper(v)) {
      f.mutable_drop_reason_desc()->Add(bpf::kKernelDropReasonFilterBase +
                                        *bpf::KernelDropReasonId(v));
    } else {
      return Bad(flag, v,
                 "unknown drop reason (Hubble's, e.g. POLICY_DENIED, or the kernel's, e.g. "
                 "NETFILTER_DROP)");
    }
  } else if (flag == "type") {
    auto t = ParseType(v);
    if (!t.ok()) return t.status();
    *f.add_event_type() = *t;
  } else if (flag == "protocol") {
    if (!bpf::IpProtocolNumbers(v).ok()) {
      return Bad(flag, v, absl::StrCat("expected ", bpf::KnownIpProtocolNames()));
    }
    f.add_protocol(v);
  } else if (flag == "tcp-flags") {
    auto t = ParseTcpFlags(v);
    if (!t.ok()) return t.status();
    *f.add_tcp_flags() = *t;
  } else if (flag == "node-name") {
    f.add_node_name(v);
  } else if (flag == "node-label") {
    f.add_node_labels(v);
  } else if (flag == "uuid") {
    f.add_uuid(v);
  } else if (flag == "traffic-direction") {
    const std::string d = absl::AsciiStrToLower(v);
    if (d == "ingress")
      f.add_traffic_direction(flow::INGRESS);
    else if (d == "egress")
      f.add_traffic_direction(flow::EGRESS);
    else
      return Bad(flag, v, "expected ingress or egress");
  } else if (flag == "interface") {
    f.add_interface()->set_name(v);
  } else if (flag == "http-status") {
    f.add_http_status_code(v);
  } else if (flag == "http-method") {
    f.add_http_method(v);
  } else if (flag == "http-path") {
    f.add_http_path(v);
  } else if (flag == "http-url") {
    f.add_http_url(v);
  } else if (flag == "http-header") {
    const size_t colon = v.find(':');
    if (colon == std::string::npos) return Bad(flag, v, "expected key:value");
    flow::HTTPHeader* h = f.add_http_header();
    h->set_key(v.substr(0, colon));
    h->set_value(v.substr(colon + 1));
  } else if (flag == "trace-id") {
    f.add_trace_id(v);
  } else if (flag == "ip-trace-id") {
    uint64_t id;
    if (!absl::SimpleAtoi(v, &id) || id == 0) return Bad(flag, v, "must be greater than 0");
    f.add_ip_trace_id(id);
  } else if (flag == "ipv4") {
    f.add_ip_version(flow::IPv4);
  } else if (flag == "ipv6") {
    f.add_ip_version(flow::IPv6);
  } else if (flag == "ip-version") {
    const std::string iv = absl::AsciiStrToLower(v);
    if (iv == "none")
      f.add_ip_version(flow::IP_NOT_USED);
    else if (iv == "v4" || iv == "4" || iv == "ipv4" || iv == "ip4")
      f.add_ip_version(flow::IPv4);
    else if (iv == "v6" || iv == "6" || iv == "ipv6" || iv == "ip6")
      f.add_ip_version(flow::IPv6);
    else
      return Bad(flag, v, "expected none, 4, v4, ipv4, ip4, 6, v6, ipv6 or ip6");
  } else if (flag == "snat-ip") {
    f.add_source_ip_xlated(v);
  } else if (flag == "encrypted") {
    f.add_encrypted(true);
  } else if (flag == "unencrypted") {
    f.add_encrypted(false);
  } else if (flag == "cel-expression") {
    f.mutable_experimental()->add_cel_expression(v);
  }
  return absl::OkStatus();
}

bool Same(const flow::FlowFilter& a, const flow::FlowFilter& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

// Prefixes a side's pods (and services) with its namespaces; with neither, pods become "ns/".
void ApplyNamespaces(const std::vector<std::string>& namespaces,
                     google::protobuf::RepeatedPtrField<std::string>* pods,
                     google::protobuf::RepeatedPtrField<std::string>* services) {
  if (namespaces.empty()) return;
  auto prefix = [&](google::protobuf::RepeatedPtrField<std::string>* names) {
    std::vector<std::string> out;
    for (const std::string& ns : namespaces) {
      for (const std::string& n : *names) {
        out.push_back(n.find('/') == std::string::npos ? absl::StrCat(ns, "/", n) : n);
      }
    }
    names->Clear();
    for (std::string& o : out) names->Add(std::move(o));
  };
  if (pods->empty() && services->empty()) {
    for (const std::string& ns : namespaces) pods->Add(absl::StrCat(ns, "/"));
    return;
  }
  if (!pods->empty()) prefix(pods);
  if (!services->empty()) prefix(services);
}

}  // namespace

const std::vector<std::string>& FilterFlagNames() {
  static const auto* names = [] {
    auto* v = new std::vector<std::string>{"not",
                                           "namespace",
                                           "from-namespace",
                                           "to-namespace",
                                           "all-namespaces",
                                           "from-all-namespaces",
                                           "to-all-namespaces"};
    for (const std::string& k : kTwoSided) {
      v->push_back(k);
      v->push_back("from-" + k);
      v->push_back("to-" + k);
    }
    for (const std::string& s : SingleSided()) v->push_back(s);
    return v;
  }();
  return *names;
}

std::vector<std::string> FilterFlagValues(absl::string_view flag) {
  std::vector<std::string> v;
  if (flag == "verdict") {
    for (int i = flow::Verdict_MIN + 1; i <= flow::Verdict_MAX; ++i) {
      if (flow::Verdict_IsValid(i)) v.push_back(flow::Verdict_Name(i));
    }
  } else if (flag == "type") {
    for (const auto& [name, number] : EventTypes()) v.push_back(name);
  } else if (absl::EndsWith(flag, "identity")) {
    for (const auto& [name, number] : ReservedIdentities()) v.push_back(name);
  } else if (flag == "protocol") {
    v = {"tcp", "udp", "icmp", "icmpv4", "icmpv6", "sctp"};
  } else if (flag == "tcp-flags") {
    v = {"SYN", "ACK", "FIN", "RST", "PSH", "URG", "ECE", "CWR", "NS"};
  } else if (flag == "traffic-direction") {
    v = {"ingress", "egress"};
  } else if (flag == "ip-version") {
    v = {"ipv4", "ipv6"};
  }
  return v;
}

absl::Status FilterBuilder::Add(absl::string_view flag, absl::string_view value) {
  if (flag == "not") {
    if (not_pending_) return absl::InvalidArgumentError("--not cannot be repeated: --not --not");
    not_pending_ = true;
    return absl::OkStatus();
  }
  Tracker& t = not_pending_ ? deny_ : allow_;
  not_pending_ = false;
  if (absl::Status s = Apply(t, flag, value); !s.ok()) return s;
  if (absl::Status s = CheckNamespaces(t, t.left); !s.ok()) return s;
  return CheckNamespaces(t, t.right);
}

namespace {

// "ns" of "ns/name"; "" without a namespace.
absl::string_view NamespaceOf(absl::string_view name) {
  const size_t slash = name.find('/');
  return slash == absl::string_view::npos ? "" : name.substr(0, slash);
}

// A namespace flag against names that carry another namespace.
absl::Status Conflicts(const std::vector<std::string>& namespaces,
                       const google::protobuf::RepeatedPtrField<std::string>& names) {
  for (const std::string& ns : namespaces) {
    for (const std::string& name : names) {
      const absl::string_view of = NamespaceOf(name);
      if (!of.empty() && of != ns) {
        return absl::InvalidArgumentError(absl::StrCat(
            "namespace conflict: \"", Quote(ns), "\" does not contain \"", Quote(name), "\""));
      }
    }
  }
  return absl::OkStatus();
}

// A side's services in another namespace than its (namespaced) pods.
absl::Status Inconsistent(const google::protobuf::RepeatedPtrField<std::string>& pods,
                          const google::protobuf::RepeatedPtrField<std::string>& services) {
  for (const std::string& pod : pods) {
    const absl::string_view pod_ns = NamespaceOf(pod);
    if (pod_ns.empty()) continue;
    for (const std::string& svc : services) {
      if (NamespaceOf(svc) != pod_ns) {
        return absl::InvalidArgumentError(absl::StrCat(
            "namespace of service \"", Quote(svc), "\" conflict with pod \"", Quote(pod_ns), "\""));
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status FilterBuilder::CheckNamespaces(const Tracker& t, const flow::FlowFilter& f) {
  for (const absl::Status& s : {
           Conflicts(t.ns, f.source_pod()),
           Conflicts(t.ns, f.source_service()),
           Conflicts(t.ns, f.destination_pod()),
           Conflicts(t.ns, f.destination_service()),
           Conflicts(t.src_ns, f.source_pod()),
           Conflicts(t.src_ns, f.source_service()),
           Conflicts(t.dst_ns, f.destination_pod()),
           Conflicts(t.dst_ns, f.destination_service()),
           Inconsistent(f.source_pod(), f.source_service()),
           Inconsistent(f.destination_pod(), f.destination_service()),
       }) {
    if (!s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status FilterBuilder::Apply(Tracker& t, absl::string_view flag_view,
                                  absl::string_view value) {
  const std::string flag(flag_view);
  for (const auto& group : kConflictGroups) {
    if (!group.count(flag)) continue;
    for (const std::string& other : t.used) {
      if (other != flag && group.count(other)) {
        return absl::InvalidArgumentError(
            absl::StrCat("filters --", other, " and --", flag, " cannot be combined"));
      }
    }
  }
  t.used.insert(flag);
  t.any = true;

  if (flag == "namespace" || flag == "all-namespaces") {
    const std::string ns = flag == "namespace" ? std::string(value) : "";
    t.ns.push_back(ns);
    t.namespaces[0][0].push_back(ns);  // left filter, source side
    t.namespaces[1][1].push_back(ns);  // right filter, destination side
    return absl::OkStatus();
  }
  if (flag == "from-namespace" || flag == "to-namespace" || flag == "from-all-namespaces" ||
      flag == "to-all-namespaces") {
    const int side = absl::StartsWith(flag, "from-") ? 0 : 1;
    const std::string ns = absl::StrContains(flag, "all-namespaces") ? "" : std::string(value);
    (side == 0 ? t.src_ns : t.dst_ns).push_back(ns);
    t.namespaces[0][side].push_back(ns);  // the same side of both filters
    t.namespaces[1][side].push_back(ns);
    return absl::OkStatus();
  }
  if (kTwoSided.count(flag)) {
    if (absl::Status s = AddSide(t.left, true, flag, flag, value); !s.ok()) return s;
    return AddSide(t.right, false, flag, flag, value);
  }
  for (const char* side : {"from-", "to-"}) {
    if (absl::StartsWith(flag, side) && kTwoSided.count(flag.substr(strlen(side)))) {
      const bool source = side[0] == 'f';
      const std::string kind = flag.substr(strlen(side));
      if (absl::Status s = AddSide(t.left, source, flag, kind, value); !s.ok()) return s;
      return AddSide(t.right, source, flag, kind, value);
    }
  }
  if (std::find(SingleSided().begin(), SingleSided().end(), flag) != SingleSided().end()) {
    if (absl::Status s = AddSingle(t.left, flag, value); !s.ok()) return s;
    return AddSingle(t.right, flag, value);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown filter flag --", flag));
}

absl::Status FilterBuilder::Finish(Tracker& t, std::vector<flow::FlowFilter>* out) {
  if (!t.any) return absl::OkStatus();
  for (int i = 0; i < 2; ++i) {
    flow::FlowFilter& f = i == 0 ? t.left : t.right;
    ApplyNamespaces(t.namespaces[i][0], f.mutable_source_pod(), f.mutable_source_service());
    ApplyNamespaces(t.namespaces[i][1], f.mutable_destination_pod(),
                    f.mutable_destination_service());
  }
  out->push_back(t.left);
  if (!Same(t.left, t.right)) out->push_back(t.right);
  return absl::OkStatus();
}

absl::StatusOr<Filters> FilterBuilder::Build() {
  if (not_pending_) return absl::InvalidArgumentError("--not must be followed by a filter flag");
  Filters out;
  if (absl::Status s = Finish(allow_, &out.whitelist); !s.ok()) return s;
  if (absl::Status s = Finish(deny_, &out.blacklist); !s.ok()) return s;
  return out;
}

std::string RawFiltersYaml(const Filters& f) {
  // As Hubble's: Go's encoding/json of each filter (declaration order, enums as numbers) in a
  // YAML map that leaves out an empty list.
  auto list = [&](const char* name, const std::vector<flow::FlowFilter>& filters) {
    std::string s;
    if (filters.empty()) return s;
    absl::StrAppend(&s, name, ":\n");
    for (const auto& filter : filters) {
      std::string json;
      AppendJsonEnumNumbers(filter, &json);
      absl::StrAppend(&s, "    - '", absl::StrReplaceAll(json, {{"'", "''"}}), "'\n");
    }
    return s;
  };
  const std::string yaml = list("allowlist", f.whitelist) + list("denylist", f.blacklist);
  return yaml.empty() ? "{}\n" : yaml;
}

}  // namespace flowscope::cli
