#include "cmd/cli/printer.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "api/grpc_util.h"
#include "api/json.h"
#include "api/json_wire.h"
#include "flowscope/v1/flowscope.pb.h"

namespace flowscope::cli {
namespace {

const std::map<int, const char*>& DropTexts() {
  static const auto* texts = new std::map<int, const char*>{
      {0, "Success"},
      {2, "Invalid packet"},
      {0, "Success"},
      {2, "Invalid packet"},
      {130, "Invalid source mac"},
      {131, "Invalid destination mac"},
      {132, "Invalid source ip"},
      {133, "Policy denied"},
      {134, "Invalid packet"},
      {135, "CT: Truncated or invalid header"},
      {136, "Fragmentation needed"},
      {137, "CT: Unknown L4 protocol"},
      {138, "CT: Can't create entry from packet"},
      {139, "Unsupported L3 protocol"},
      {140, "Missed tail call"},
      {141, "Error writing to packet"},
      {142, "Unknown L4 protocol"},
      {143, "Unknown ICMPv4 code"},
      {144, "Unknown ICMPv4 type"},
      {145, "Unknown ICMPv6 code"},
      {146, "Unknown ICMPv6 type"},
      {147, "Error retrieving tunnel key"},
      {148, "Error retrieving tunnel options"},
      {149, "Invalid Geneve option"},
      {150, "Unknown L3 target address"},
      {151, "Stale or unroutable IP"},
      {152, "No matching local container found"},
      {153, "Error while correcting L3 checksum"},
      {154, "Error while correcting L4 checksum"},
      {155, "CT: Map insertion failed"},
      {156, "Invalid IPv6 extension header"},
      {157, "IP fragmentation not supported"},
      {158, "Service backend not found"},
      {160, "No tunnel/encapsulation endpoint (datapath BUG!)"},
      {161, "NAT 46/64 not enabled"},
      {162, "Reached EDT rate-limiting drop horizon"},
      {163, "Unknown connection tracking state"},
      {164, "Local host is unreachable"},
      {165, "No configuration available to perform policy decision"},
      {166, "Unsupported L2 protocol"},
      {167, "No mapping for NAT masquerade"},
      {168, "Unsupported protocol for NAT masquerade"},
      {169, "FIB lookup failed"},
      {170, "Encapsulation traffic is prohibited"},
      {171, "Invalid identity"},
      {172, "Unknown sender"},
      {173, "NAT not needed"},
      {174, "Is a ClusterIP"},
      {175, "First logical datagram fragment not found"},
      {176, "Forbidden ICMPv6 message"},
      {177, "Denied by LB src range check"},
      {178, "Socket lookup failed"},
      {179, "Socket assign failed"},
      {180, "Proxy redirection not supported for protocol"},
      {181, "Policy denied by denylist"},
      {182, "VLAN traffic disallowed by VLAN filter"},
      {183, "Incorrect VNI from VTEP"},
      {184, "Failed to update or lookup TC buffer"},
      {185, "No SID was found for the IP address"},
      {186, "SRv6 state was removed during tail call"},
      {187, "L3 translation from IPv4 to IPv6 failed (NAT46)"},
      {188, "L3 translation from IPv6 to IPv4 failed (NAT64)"},
      {189, "Authentication required"},
      {190, "No conntrack map found"},
      {191, "No nat map found"},
      {192, "Invalid ClusterID"},
      {193, "Unsupported packet protocol for DSR encapsulation"},
      {194, "No egress gateway found"},
      {195, "Traffic is unencrypted"},
      {196, "TTL exceeded"},
      {197, "No node ID found"},
      {198, "Rate limited"},
      {199, "IGMP handled"},
      {200, "IGMP subscribed"},
      {201, "Multicast handled"},
      {202, "Host datapath not ready"},
      {203, "Endpoint policy program not available"},
      {204, "No Egress IP configured"},
      {205, "Punt to proxy"},
  };
  return *texts;
}

// Monitor trace observation points (the reference §2.6).
constexpr const char* kTracePoints[] = {
    "to-endpoint",   "to-proxy",   "to-host",     "to-stack",   "to-overlay",
    "from-endpoint", "from-proxy", "from-host",   "from-stack", "from-overlay",
    "from-network",  "to-network", "from-crypto", "to-crypto"};

constexpr const char* kReservedIdentities[] = {
    "unknown",     "host",           "world",   "unmanaged",  "health",    "init",
    "remote-node", "kube-apiserver", "ingress", "world-ipv4", "world-ipv6"};

std::string Identity(uint32_t id) {
  if (id < std::size(kReservedIdentities)) return absl::StrCat("(", kReservedIdentities[id], ")");
  return absl::StrCat("(ID:", id, ")");
}

// Printed strings never carry raw control sequences (colours are the printer's own).
std::string Sanitize(absl::string_view s) {
  return absl::StrReplaceAll(s, {{"\x1b", "^["}, {"\r", "\\r"}});
}

std::string PortOf(const flow::Flow& f, bool source) {
  const auto& l4 = f.l4();
  uint32_t port = 0;
  if (l4.has_tcp()) port = source ? l4.tcp().source_port() : l4.tcp().destination_port();
  if (l4.has_udp()) port = source ? l4.udp().source_port() : l4.udp().destination_port();
  if (l4.has_sctp()) port = source ? l4.sctp().source_port() : l4.sctp().destination_port();
  return port == 0 ? "" : absl::StrCat(port);
}

std::string Verdict(const flow::Flow& f) {
  if (f.event_type().type() == 5) {
    switch (f.verdict()) {
      case flow::FORWARDED:
      case flow::REDIRECTED:
        return "ALLOWED";
      case flow::DROPPED:
      case flow::ERROR:
        return "DENIED";
      case flow::AUDIT:
        return "AUDITED";
      default:
        break;
    }
  }
  return flow::Verdict_Name(f.verdict());
}

std::string Summary(const flow::Flow& f) {
  std::string s;
  if (f.has_ip_trace_id() && f.ip_trace_id().trace_id() != 0) {
    absl::StrAppend(&s, "IP Trace ID: ", f.ip_trace_id().trace_id(), "; ");
  }
  absl::StrAppend(&s, Sanitize(f.summary()));
  if (f.auth_type() != flow::DISABLED) {
    absl::StrAppend(&s, "; Auth: ", flow::AuthType_Name(f.auth_type()));
  }
  return s;
}

std::string JoinNodes(const google::protobuf::RepeatedPtrField<std::string>& names) {
  std::string out;
  int shown = 0;
  for (const std::string& n : names) {
    if (!out.empty() && out.size() + n.size() > 50) break;
    absl::StrAppend(&out, out.empty() ? "" : ", ", n);
    ++shown;
  }
  if (shown < names.size()) absl::StrAppend(&out, " (and ", names.size() - shown, " more)");
  return out;
}

constexpr const char* kCyan = "\x1b[36m";
constexpr const char* kYellow = "\x1b[33m";
constexpr const char* kMagenta = "\x1b[35m";
constexpr const char* kGreen = "\x1b[32m";
constexpr const char* kRed = "\x1b[31m";

}  // namespace

absl::StatusOr<Format> ParseFormat(absl::string_view name) {
  const std::string n = absl::AsciiStrToLower(name);
  if (n == "compact") return Format::kCompact;
  if (n == "dict") return Format::kDict;
  if (n == "table" || n == "tab") return Format::kTable;
  if (n == "json" || n == "jsonpb") return Format::kJson;
  return absl::InvalidArgumentError(absl::StrCat(
      "invalid output format \"", name, "\": expected compact, dict, json, jsonpb or table"));
}

namespace {

// A layout as the whole seconds (absl::FormatTime's format), a fraction and a suffix, so the
// seconds are formatted once for all the flows of one second.
struct TimeLayout {
  const char* seconds = "%b %e %H:%M:%S";  // StampMilli, also for unknown names
  int fraction = 3;                        // digits, truncated; -1: up to 9, trailing zeros cut
  const char* suffix = "";
};

TimeLayout ResolveTimeLayout(absl::string_view layout) {
  const std::string name = absl::AsciiStrToLower(layout);
  if (name == "yearmonthday") return {"%Y-%m-%d", 0, ""};
  if (name == "yearmonthdayhour") return {"%Y-%m-%dT%HZ", 0, ""};
  if (name == "yearmonthdayhourminute") return {"%Y-%m-%dT%H:%MZ", 0, ""};
  if (name == "rfc3339") return {"%Y-%m-%dT%H:%M:%S", 0, "Z"};
  if (name == "rfc3339milli") return {"%Y-%m-%dT%H:%M:%S", 3, "Z"};
  if (name == "rfc3339micro") return {"%Y-%m-%dT%H:%M:%S", 6, "Z"};
  if (name == "rfc3339nano") return {"%Y-%m-%dT%H:%M:%S", -1, "Z"};
  if (name == "rfc1123z") return {"%a, %d %b %Y %H:%M:%S +0000", 0, ""};
  return {};
}

}  // namespace

std::string FormatTime(const google::protobuf::Timestamp* ts, absl::string_view layout) {
  if (ts == nullptr || ts->nanos() < 0 || ts->nanos() >= 1'000'000'000) return "N/A";
  struct Cache {
    std::string layout;
    TimeLayout resolved;
    bool valid = false;
    int64_t seconds = 0;
    std::string text;  // the whole seconds in `resolved.seconds`
  };
  thread_local Cache cache;
  if (!cache.valid || cache.layout != layout) {
    cache.layout = std::string(layout);
    cache.resolved = ResolveTimeLayout(layout);
    cache.valid = false;
  }
  if (!cache.valid || cache.seconds != ts->seconds()) {
    cache.text = absl::FormatTime(cache.resolved.seconds, absl::FromUnixSeconds(ts->seconds()),
                                  absl::UTCTimeZone());
    cache.seconds = ts->seconds();
    cache.valid = true;
  }
  std::string out = cache.text;
  const int digits = cache.resolved.fraction;
  if (digits != 0 && !(digits < 0 && ts->nanos() == 0)) {
    char frac[10];
    int32_t n = ts->nanos();
    for (int k = 8; k >= 0; --k) {
      frac[k] = static_cast<char>('0' + n % 10);
      n /= 10;
    }
    int len = digits;
    if (digits < 0) {
      len = 9;
      while (frac[len - 1] == '0') --len;
    }
    out.push_back('.');
    out.append(frac, static_cast<size_t>(len));
  }
  out.append(cache.resolved.suffix);
  return out;
}

std::string FlowType(const flow::Flow& f) {
  // flowscope's kernel drops (only a flowscope client gets the extension that says so).
  if (f.extensions().Is<flowscope::v1::KernelDrop>()) return "kernel-drop";
  if (f.has_l7()) {
    const char* proto = f.l7().has_dns()     ? "dns"
                        : f.l7().has_http()  ? "http"
                        : f.l7().has_kafka() ? "kafka"
                                             : "l7";
    std::string t =
        absl::StrCat(proto, "-", absl::AsciiStrToLower(flow::L7FlowType_Name(f.l7().type())));
    if (f.l7().has_dns() && !f.l7().dns().observation_source().empty()) {
      absl::StrAppend(&t, " ", f.l7().dns().observation_source());
    }
    return t;
  }
  const int32_t sub = f.event_type().sub_type();
  switch (f.event_type().type()) {
    case 4:
      if (sub >= 0 && sub < static_cast<int32_t>(std::size(kTracePoints))) return kTracePoints[sub];
      return absl::StrCat(sub);
    case 1: {
      auto it = DropTexts().find(sub);
      return it != DropTexts().end() ? it->second : absl::StrCat(sub, ", 0");
    }
    case 5: {
      static constexpr const char* kMatch[] = {"none", "L3-Only",  "L3-L4",     "L4-Only",
                                               "all",  "L3-Proto", "Proto-Only"};
      const uint32_t m = f.policy_match_type();
      return absl::StrCat("policy-verdict:", m < std::size(kMatch) ? kMatch[m] : "unknown", " ",
                          flow::TrafficDirection_Name(f.traffic_direction()));
    }
    case 3:
      return flow::DebugCapturePoint_Name(f.debug_capture_point());
    case 7: {
      switch (f.sock_xlate_point()) {
        case flow::SOCK_XLATE_POINT_PRE_DIRECTION_FWD:
          return "pre-xlate-fwd";
        case flow::SOCK_XLATE_POINT_POST_DIRECTION_FWD:
          return "post-xlate-fwd";
        case flow::SOCK_XLATE_POINT_PRE_DIRECTION_REV:
          return "pre-xlate-rev";
        case flow::SOCK_XLATE_POINT_POST_DIRECTION_REV:
          return "post-xlate-rev";
        default:
          return flow::SocketTranslationPoint_Name(f.sock_xlate_point());
      }
    }
    default:
      return "UNKNOWN";
  }
}

std::string TabWrite(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& row : rows) {
    for (size_t i = 0; i + 1 < row.size(); ++i) {
      if (width.size() <= i) width.resize(i + 1, 0);
      width[i] = std::max(width[i], row[i].size());
    }
  }
  std::string out;
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size(); ++i) {
      out += row[i];
      if (i + 1 < row.size()) out.append(std::max<size_t>(width[i] + 3, 2) - row[i].size(), ' ');
    }
    out += "\n";
  }
  return out;
}

Printer::Printer(PrinterOptions options, std::ostream& out, std::ostream& err)
    : options_(std::move(options)), out_(out), err_(err) {
  // The table is never coloured; neither is JSON.
  if (options_.format == Format::kTable || options_.format == Format::kJson) options_.color = false;
}

std::string Printer::Host(const flow::Flow& f, bool source) const {
  std::string host;
  if (!f.has_ip()) {
    host = source ? f.ethernet().source() : f.ethernet().destination();
  } else {
    const flow::Endpoint& ep = source ? f.source() : f.destination();
    const flow::Service& svc = source ? f.source_service() : f.destination_service();
    const auto& names = source ? f.source_names() : f.destination_names();
    const std::string& ip = source ? f.ip().source() : f.ip().destination();
    if (options_.ip_translation && !ep.pod_name().empty()) {
      host = absl::StrCat(ep.namespace_(), "/", ep.pod_name());
    } else if (options_.ip_translation && !svc.name().empty()) {
      host = absl::StrCat(svc.namespace_().empty() ? ep.namespace_() : svc.namespace_(), "/",
                          svc.name());
    } else if (options_.ip_translation && !names.empty()) {
      host = absl::StrJoin(names, ",");
    } else {
      host = ip;
    }
    const std::string port = PortOf(f, source);
    if (!port.empty()) {
      if (host == ip && ip.find(':') != std::string::npos) host = absl::StrCat("[", host, "]");
      return absl::StrCat(Paint(kCyan, Sanitize(host)), ":", Paint(kYellow, port));
    }
  }
  return Paint(kCyan, Sanitize(host));
}

std::string Printer::Paint(const char* color, absl::string_view text) const {
  if (!options_.color || text.empty()) return std::string(text);
  return absl::StrCat(color, text, "\x1b[0m");
}

std::string Printer::PaintedVerdict(const flow::Flow& f) const {
  std::string v = Verdict(f);
  // As Hubble: the policies of a policy-verdict event, for the flow's own direction, named
  // "name (kind)" when both are known.
  if (options_.print_policy_names && f.event_type().type() == 5 &&
      (f.traffic_direction() == flow::EGRESS || f.traffic_direction() == flow::INGRESS)) {
    const bool egress = f.traffic_direction() == flow::EGRESS;
    const google::protobuf::RepeatedPtrField<flow::Policy>* list = nullptr;
    switch (f.verdict()) {
      case flow::FORWARDED:
      case flow::REDIRECTED:
        list = egress ? &f.egress_allowed_by() : &f.ingress_allowed_by();
        break;
      case flow::DROPPED:
      case flow::ERROR:
        list = egress ? &f.egress_denied_by() : &f.ingress_denied_by();
        break;
      default:
        break;
    }
    std::vector<std::string> names;
    if (list != nullptr) {
      for (const flow::Policy& p : *list) {
        if (p.name().empty() || p.kind().empty()) continue;
        names.push_back(absl::StrCat(Sanitize(p.name()), " (", Sanitize(p.kind()), ")"));
      }
    }
    if (!names.empty()) absl::StrAppend(&v, " BY ", absl::StrJoin(names, ", "));
  }
  switch (f.verdict()) {
    case flow::FORWARDED:
    case flow::REDIRECTED:
      return Paint(kGreen, v);
    case flow::DROPPED:
    case flow::ERROR:
      return Paint(kRed, v);
    case flow::AUDIT:
    case flow::TRACED:
    case flow::TRANSLATED:
      return Paint(kYellow, v);
    default:
      return v;
  }
}

void Printer::WriteFlowCompact(const ::observer::GetFlowsResponse& resp) {
  const flow::Flow& f = resp.flow();
  std::string src =
      absl::StrCat(Host(f, true), " ", Paint(kMagenta, Identity(f.source().identity())));
  std::string dst =
      absl::StrCat(Host(f, false), " ", Paint(kMagenta, Identity(f.destination().identity())));
  std::string arrow = "<>";
  if (f.has_is_reply()) {
    arrow = f.is_reply().value() ? "<-" : "->";
    if (f.is_reply().value()) std::swap(src, dst);
  }
  line_ = FormatTime(f.has_time() ? &f.time() : nullptr, options_.time_format);
  if (options_.print_node_name) absl::StrAppend(&line_, " [", Sanitize(f.node_name()), "]");
  absl::StrAppend(&line_, ": ", src, " ", arrow, " ", dst, " ", FlowType(f), " ");
  absl::StrAppend(&line_, PaintedVerdict(f), " (", Summary(f), ")\n");
  out_ << line_;  // one write into the stream per line
}

void Printer::WriteFlowDict(const ::observer::GetFlowsResponse& resp) {
  const flow::Flow& f = resp.flow();
  DictSeparator("\n");
  // The flow's own source and destination (only the compact layout turns replies around).
  const std::string src = Host(f, true);
  const std::string dst = Host(f, false);
  out_ << "  TIMESTAMP: " << FormatTime(f.has_time() ? &f.time() : nullptr, options_.time_format)
       << "\n";
  if (options_.print_node_name) out_ << "       NODE: " << Sanitize(f.node_name()) << "\n";
  out_ << "     SOURCE: " << src << "\n"
       << "DESTINATION: " << dst << "\n"
       << "       TYPE: " << FlowType(f) << "\n"
       << "    VERDICT: " << PaintedVerdict(f) << "\n"
       << "    SUMMARY: " << Summary(f) << "\n";
}

void Printer::WriteLost(const ::observer::GetFlowsResponse& resp) {
  const flow::LostEvent& l = resp.lost_events();
  const std::string source = flow::LostEventSource_Name(l.source());
  const int32_t cpu = l.has_cpu() ? l.cpu().value() : 0;
  const std::string ts = FormatTime(resp.has_time() ? &resp.time() : nullptr, options_.time_format);
  switch (options_.format) {
    case Format::kCompact: {
      out_ << ts << " EVENTS LOST: " << source << " CPU(" << cpu << ") " << l.num_events_lost();
      if (l.has_first() && l.has_last()) {
        out_ << " (first: " << FormatTime(&l.first(), options_.time_format)
             << ", last: " << FormatTime(&l.last(), options_.time_format) << ")";
      }
      out_ << "\n";
      break;
    }
    case Format::kDict:
      DictSeparator("\n");
      out_ << "  TIMESTAMP: " << ts << "\n"
           << "     SOURCE: " << source << "\n"
           << "       TYPE: EVENTS LOST\n"
           << "    VERDICT: -\n"
           << "    SUMMARY: CPU(" << cpu << ") - " << l.num_events_lost() << "\n";
      break;
    case Format::kTable: {
      std::vector<std::string> row = {ts};
      if (options_.print_node_name) row.push_back(resp.node_name());
      row.insert(row.end(), {source, "", "EVENTS LOST", "",
                             absl::StrCat("CPU(", cpu, ") - ", l.num_events_lost())});
      table_.push_back(std::move(row));
      break;
    }
    case Format::kJson:
      break;
  }
}

void Printer::WriteNodeStatus(const ::observer::GetFlowsResponse& resp) {
  if (options_.silent_errors) return;
  const relay::NodeStatusEvent& n = resp.node_status();
  const std::string names = JoinNodes(n.node_names());
  std::string msg;
  switch (n.state_change()) {
    case relay::NODE_CONNECTED:
      if (!options_.debug) return;
      msg = absl::StrCat("Receiving flows from ", n.node_names_size(), " nodes: ", names);
      break;
    case relay::NODE_UNAVAILABLE:
      msg = absl::StrCat(n.node_names_size(), " nodes are unavailable: ", names);
      break;
    case relay::NODE_GONE:
      if (!options_.debug) return;
      msg = absl::StrCat(n.node_names_size(), " nodes removed from cluster: ", names);
      break;
    case relay::NODE_ERROR:
      msg = absl::StrCat("Error \"", Sanitize(n.message()), "\" on ", n.node_names_size(),
                         " nodes: ", names);
      break;
    default:
      return;
  }
  err_ << FormatTime(resp.has_time() ? &resp.time() : nullptr, options_.time_format) << " ["
       << Sanitize(resp.node_name()) << "]: " << msg << "\n";
}

bool Printer::WriteJson(const google::protobuf::Message& m) {
  line_.clear();
  AppendJson(m, &line_);
  line_.push_back('\n');
  out_ << line_;  // one object per line
  if (options_.flush_each_line) out_.flush();
  return static_cast<bool>(out_);
}

void Printer::DictSeparator(const char* after) {
  if (!first_dict_) out_ << "------------" << after;
  first_dict_ = false;
}

namespace {

std::string EnumName(const google::protobuf::EnumDescriptor* d, int value) {
  const google::protobuf::EnumValueDescriptor* v = d->FindValueByNumber(value);
  return v != nullptr ? v->name() : absl::StrCat(value);
}

// "ip:port", with brackets around an IPv6 address (Go's net.JoinHostPort).
std::string HostPort(const flow::ServiceUpsertNotificationAddr& a) {
  if (a.ip().find(':') != std::string::npos) return absl::StrCat("[", a.ip(), "]:", a.port());
  return absl::StrCat(a.ip(), ":", a.port());
}

// The DETAILS of an agent event, field by field as Hubble words them.
std::string AgentEventDetails(const flow::AgentEvent& e, absl::string_view layout) {
  switch (e.type()) {
    case flow::AGENT_EVENT_UNKNOWN:
      if (e.has_unknown()) {
        return absl::StrCat("type: ", e.unknown().type(),
                            ", notification: ", e.unknown().notification());
      }
      break;
    case flow::AGENT_STARTED:
      if (e.has_agent_start()) {
        return absl::StrCat(
            "start time: ",
            FormatTime(e.agent_start().has_time() ? &e.agent_start().time() : nullptr, layout));
      }
      break;
    case flow::POLICY_UPDATED:
    case flow::POLICY_DELETED:
      if (e.has_policy_update()) {
        const flow::PolicyUpdateNotification& p = e.policy_update();
        return absl::StrCat("labels: [", absl::StrJoin(p.labels(), ","),
                            "], revision: ", p.revision(), ", count: ", p.rule_count());
      }
      break;
    case flow::ENDPOINT_REGENERATE_SUCCESS:
    case flow::ENDPOINT_REGENERATE_FAILURE:
      if (e.has_endpoint_regenerate()) {
        const flow::EndpointRegenNotification& r = e.endpoint_regenerate();
        std::string s =
            absl::StrCat("id: ", r.id(), ", labels: [", absl::StrJoin(r.labels(), ","), "]");
        if (!r.error().empty()) absl::StrAppend(&s, ", error: ", r.error());
        return s;
      }
      break;
    case flow::ENDPOINT_CREATED:
    case flow::ENDPOINT_DELETED:
      if (e.has_endpoint_update()) {
        const flow::EndpointUpdateNotification& u = e.endpoint_update();
        std::string s = absl::StrCat("id: ", u.id());
        if (!u.namespace_().empty()) absl::StrAppend(&s, ", namespace: ", u.namespace_());
        if (!u.pod_name().empty()) absl::StrAppend(&s, ", pod name: ", u.pod_name());
        return s;
      }
      break;
    case flow::IPCACHE_UPSERTED:
    case flow::IPCACHE_DELETED:
      if (e.has_ipcache_update()) {
        const flow::IPCacheNotification& i = e.ipcache_update();
        std::string s = absl::StrCat("cidr: ", i.cidr(), ", identity: ", i.identity());
        if (i.has_old_identity()) absl::StrAppend(&s, ", old identity: ", i.old_identity().value());
        if (!i.host_ip().empty()) absl::StrAppend(&s, ", host ip: ", i.host_ip());
        if (!i.old_host_ip().empty()) absl::StrAppend(&s, ", old host ip: ", i.old_host_ip());
        absl::StrAppend(&s, ", encrypt key: ", i.encrypt_key());
        return s;
      }
      break;
    case flow::SERVICE_UPSERTED:
      if (e.has_service_upsert()) {
        const flow::ServiceUpsertNotification& u = e.service_upsert();
        std::string s = absl::StrCat("id: ", u.id());
        if (u.has_frontend_address()) {
          absl::StrAppend(&s, ", frontend: ", HostPort(u.frontend_address()));
        }
        if (u.backend_addresses_size() > 0) {
          std::vector<std::string> backends;
          for (const auto& b : u.backend_addresses()) backends.push_back(HostPort(b));
          absl::StrAppend(&s, ", backends: [", absl::StrJoin(backends, ","), "]");
        }
        if (!u.type().empty()) absl::StrAppend(&s, ", type: ", u.type());
        if (!u.traffic_policy().empty())
          absl::StrAppend(&s, ", traffic policy: ", u.traffic_policy());
        if (!u.namespace_().empty()) absl::StrAppend(&s, ", namespace: ", u.namespace_());
        if (!u.name().empty()) absl::StrAppend(&s, ", name: ", u.name());
        return s;
      }
      break;
    case flow::SERVICE_DELETED:
      if (e.has_service_delete()) return absl::StrCat("id: ", e.service_delete().id());
      break;
    default:
      break;
  }
  return "UNKNOWN";
}

std::string HexMark(const flow::DebugEvent& e) {
  return e.has_hash() ? absl::StrCat("0x", absl::Hex(e.hash().value())) : "N/A";
}

std::string Cpu(const flow::DebugEvent& e) {
  return e.has_cpu() ? absl::StrFormat("%02d", e.cpu().value()) : "N/A";
}

// "default/xwing (ID: 1234)", "reserved:host (ID: 1)" or "ID: 7".
std::string EndpointShort(const flow::DebugEvent& e) {
  if (!e.has_source()) return "N/A";
  const flow::Endpoint& ep = e.source();
  std::string s = absl::StrCat("ID: ", ep.id());
  if (!ep.namespace_().empty() && !ep.pod_name().empty()) {
    return absl::StrCat(ep.namespace_(), "/", ep.pod_name(), " (", s, ")");
  }
  if (ep.labels_size() == 1 && absl::StartsWith(ep.labels(0), "reserved:")) {
    return absl::StrCat(ep.labels(0), " (", s, ")");
  }
  return s;
}

}  // namespace

bool Printer::WriteEvent(const google::protobuf::Timestamp* time, const std::string& node,
                         const EventLayout& e) {
  const std::string ts = FormatTime(time, options_.time_format);
  const std::string node_name = Sanitize(node);
  switch (options_.format) {
    case Format::kCompact:
      out_ << ts;
      if (options_.print_node_name) out_ << " [" << node_name << "]";
      out_ << ": " << e.compact << "\n";
      break;
    case Format::kDict:
      DictSeparator("");  // Hubble ends an event's separator with no newline
      out_ << "  TIMESTAMP: " << ts << "\n";
      if (options_.print_node_name) out_ << "       NODE: " << node_name << "\n";
      for (const auto& [label, value] : e.dict) out_ << label << ": " << value << "\n";
      break;
    case Format::kTable: {
      if (table_header_.empty()) {
        table_header_ = {"TIMESTAMP"};
        if (options_.print_node_name) table_header_.push_back("NODE");
        table_header_.insert(table_header_.end(), e.header.begin(), e.header.end());
      }
      std::vector<std::string> row = {ts};
      if (options_.print_node_name) row.push_back(node_name);
      row.insert(row.end(), e.row.begin(), e.row.end());
      table_.push_back(std::move(row));
      break;
    }
    case Format::kJson:
      break;
  }
  if (options_.format != Format::kTable && options_.flush_each_line) out_.flush();
  return static_cast<bool>(out_);
}

bool Printer::WriteAgentEvent(const ::observer::GetAgentEventsResponse& resp) {
  if (options_.format == Format::kJson) return WriteJson(resp);
  const flow::AgentEvent& e = resp.agent_event();
  const std::string type = EnumName(flow::AgentEventType_descriptor(), e.type());
  const std::string details = Sanitize(AgentEventDetails(e, options_.time_format));
  return WriteEvent(resp.has_time() ? &resp.time() : nullptr, resp.node_name(),
                    {.compact = absl::StrCat(type, " (", details, ")"),
                     .dict = {{"       TYPE", type}, {"    DETAILS", details}},
                     .header = {"TYPE", "DETAILS"},
                     .row = {type, details}});
}

bool Printer::WriteDebugEvent(const ::observer::GetDebugEventsResponse& resp) {
  if (options_.format == Format::kJson) return WriteJson(resp);
  const flow::DebugEvent& e = resp.debug_event();
  const std::string type = EnumName(flow::DebugEventType_descriptor(), e.type());
  const std::string from = Sanitize(EndpointShort(e));
  const std::string message = Sanitize(e.message());
  // Hubble's table carries an empty column after FROM.
  return WriteEvent(resp.has_time() ? &resp.time() : nullptr, resp.node_name(),
                    {.compact = absl::StrCat(from, " ", type, " MARK: ", HexMark(e),
                                             " CPU: ", Cpu(e), " (", message, ")"),
                     .dict = {{"       TYPE", type},
                              {"       FROM", from},
                              {"       MARK", HexMark(e)},
                              {"        CPU", Cpu(e)},
                              {"    MESSAGE", message}},
                     .header = {"FROM", "", "TYPE", "CPU/MARK", "MESSAGE"},
                     .row = {from, "", type, absl::StrCat(Cpu(e), " ", HexMark(e)), message}});
}

bool Printer::Write(const ::observer::GetFlowsResponse& resp) {
  if (options_.format == Format::kJson) {
    if (resp.has_node_status()) {
      WriteNodeStatus(resp);
      return true;
    }
    if (resp.response_types_case() == ::observer::GetFlowsResponse::RESPONSE_TYPES_NOT_SET) {
      return true;
    }
    return WriteJson(resp);
  }
  switch (resp.response_types_case()) {
    case ::observer::GetFlowsResponse::kFlow:
      if (options_.format == Format::kCompact) WriteFlowCompact(resp);
      if (options_.format == Format::kDict) WriteFlowDict(resp);
      if (options_.format == Format::kTable) {
        const flow::Flow& f = resp.flow();
        std::vector<std::string> row = {
            FormatTime(f.has_time() ? &f.time() : nullptr, options_.time_format)};
        if (options_.print_node_name) row.push_back(Sanitize(f.node_name()));
        row.insert(row.end(),
                   {Host(f, true), Host(f, false), FlowType(f), PaintedVerdict(f), Summary(f)});
        table_.push_back(std::move(row));
      }
      break;
    case ::observer::GetFlowsResponse::kLostEvents:
      WriteLost(resp);
      break;
    case ::observer::GetFlowsResponse::kNodeStatus:
      WriteNodeStatus(resp);
      break;
    default:
      break;
  }
  if (options_.format != Format::kTable && options_.flush_each_line) out_.flush();
  return static_cast<bool>(out_);
}

namespace {

// Which of GetFlowsResponse's response types encoded bytes hold (its field number: 1 flow,
// 2 node_status, 3 lost_events; 0 none), from the top-level tags alone; -1 if malformed.
int EncodedResponseType(absl::string_view wire) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(wire.data()),
                                            static_cast<int>(wire.size()));
  int type = 0;
  while (const uint32_t tag = in.ReadTag()) {
    const int number = static_cast<int>(tag >> 3);
    if (number >= 1 && number <= 3) type = number;  // the last one set wins, as in a oneof
    if (!google::protobuf::internal::WireFormatLite::SkipField(&in, tag)) return -1;
  }
  return in.CurrentPosition() == static_cast<int>(wire.size()) ? type : -1;
}

}  // namespace

bool Printer::WriteEncoded(absl::string_view wire) {
  if (options_.format == Format::kJson) {
    const int type = EncodedResponseType(wire);
    if (type == 0) return true;  // nothing Hubble would print
    if (type == 1 || type == 3) {
      line_.clear();
      if (AppendJsonFromWire(::observer::GetFlowsResponse::descriptor(), wire, &line_)) {
        line_.push_back('\n');
        out_ << line_;
        if (options_.flush_each_line) out_.flush();
        return static_cast<bool>(out_);
      }
    }
  }
  if (++arena_uses_ == 32) {  // (SpaceUsed() walks the blocks: too slow to ask each time)
    arena_.Reset();
    arena_uses_ = 0;
  }
  auto* decoded = google::protobuf::Arena::CreateMessage<::observer::GetFlowsResponse>(&arena_);
  if (!decoded->ParseFromArray(wire.data(), static_cast<int>(wire.size()))) {
    err_ << "skipping a response that does not decode (" << wire.size() << " bytes)\n";
    return true;
  }
  return Write(*decoded);
}

bool Printer::Finish() {
  if (options_.format == Format::kTable) {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> header = table_header_;
    if (header.empty()) {
      header = {"TIMESTAMP"};
      if (options_.print_node_name) header.push_back("NODE");
      header.insert(header.end(), {"SOURCE", "DESTINATION", "TYPE", "VERDICT", "SUMMARY"});
    }
    rows.push_back(std::move(header));
    rows.insert(rows.end(), table_.begin(), table_.end());
    out_ << TabWrite(rows);
    table_.clear();
  }
  out_.flush();
  return static_cast<bool>(out_);
}

}  // namespace flowscope::cli
