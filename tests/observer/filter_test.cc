// FlowFilter semantics over records: every L3/L4 field, whitelist/blacklist combination, and
// the InvalidArgument errors for bad filters.
#include "observer/filter.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "absl/strings/str_cat.h"
#include "bpf/drop_reasons.h"
#include "bpf/flow_event.h"

namespace flowscope::observer {
namespace {

using ::testing::HasSubstr;

class FilterTest : public ::testing::Test {
 protected:
  FilterTest() : table_("default"), builder_(table_, "node-1", &names_, 7) {
    table_.Update({Pod("default", "tiefighter", "10.0.1.5", {"org=empire", "class=tiefighter"},
                       "tiefighter", "Deployment"),
                   Pod("default", "xwing", "10.0.1.6", {"org=alliance", "class=xwing"}, "", ""),
                   Pod("default", "deathstar-6fb5694d48-5hmds", "10.0.2.7",
                       {"org=empire", "class=deathstar"}, "deathstar", "Deployment"),
                   Pod("kube-system", "coredns-74ff55c5b-66f4n", "10.0.3.2", {"k8s-app=kube-dns"},
                       "coredns", "Deployment")});
    names_.Set(12, "lxc12");
  }

  static EndpointInfo Pod(std::string ns, std::string pod, std::string ip,
                          std::vector<std::string> labels, std::string wl, std::string kind) {
    EndpointInfo i;
    i.namespace_name = std::move(ns);
    i.pod_name = std::move(pod);
    i.ips = {std::move(ip)};
    i.labels = std::move(labels);
    i.workload_name = std::move(wl);
    i.workload_kind = std::move(kind);
    return i;
  }

  FlowRecord Tcp(const char* src, uint16_t sport, const char* dst, uint16_t dport, uint16_t flags,
                 uint8_t reply = FS_REPLY_NO) {
    FlowRecord r;
    r.family = FS_FAMILY_IPV4;
    inet_pton(AF_INET, src, r.saddr);
    inet_pton(AF_INET, dst, r.daddr);
    r.protocol = IPPROTO_TCP;
    r.sport = sport;
    r.dport = dport;
    r.tcp_flags = flags;
    r.verdict = FS_VERDICT_FORWARDED;
    r.obs_point = FS_OBS_FROM_ENDPOINT;
    r.is_reply = reply;
    r.ifindex = 12;
    EndpointTable::Resolver res(table_);
    r.src_endpoint = res.Lookup(r.family, r.saddr);
    r.dst_endpoint = res.Lookup(r.family, r.daddr);
    return r;
  }

  // Whether `record` passes whitelist = [filters...] (text-format FlowFilters).
  bool Passes(const FlowRecord& record, std::vector<std::string> allow,
              std::vector<std::string> deny = {}) {
    auto pred = Compile(allow, deny);
    EXPECT_TRUE(pred.ok()) << pred.status();
    return pred.ok() && pred->Match(record, 0);
  }

  absl::StatusOr<FlowPredicate> Compile(const std::vector<std::string>& allow,
                                        const std::vector<std::string>& deny = {}) {
    google::protobuf::RepeatedPtrField<flow::FlowFilter> w, b;
    for (const auto& t : allow) {
      EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(t, w.Add())) << t;
    }
    for (const auto& t : deny) {
      EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(t, b.Add())) << t;
    }
    return FlowPredicate::Compile(w, b, table_, builder_);
  }

  std::string CompileError(const std::string& filter) {
    auto p = Compile({filter});
    EXPECT_FALSE(p.ok()) << filter;
    if (p.ok()) return "";
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(p.status().message());
  }

  EndpointTable table_;
  InterfaceNames names_;
  FlowBuilder builder_;
};

TEST_F(FilterTest, EmptyListsMatchEverything) {
  const FlowRecord r = Tcp("10.0.1.5", 40000, "10.0.2.7", 80, FS_TCP_SYN);
  EXPECT_TRUE(Passes(r, {}));
  auto p = Compile({});
  EXPECT_TRUE(p->MatchesAll());
  EXPECT_TRUE(Passes(r, {""})) << "an empty filter matches";
}

TEST_F(FilterTest, PodRules) {
  const FlowRecord r = Tcp("10.0.1.5", 40000, "10.0.3.2", 53, 0);
  EXPECT_TRUE(Passes(r, {R"(source_pod: "tiefighter")"})) << "bare name: default namespace";
  EXPECT_TRUE(Passes(r, {R"(source_pod: "default/tie")"})) << "prefix";
  EXPECT_FALSE(Passes(r, {R"(source_pod: "kube-system/tiefighter")"}));
  EXPECT_TRUE(Passes(r, {R"(destination_pod: "kube-system/coredns-")"}));
  EXPECT_TRUE(Passes(r, {R"(destination_pod: "kube-system/")"}));
  EXPECT_FALSE(Passes(r, {R"(destination_pod: "coredns")"})) << "coredns is not in default";
  EXPECT_TRUE(Passes(r, {R"(destination_pod: "/coredns")"})) << "any namespace";
  EXPECT_TRUE(Passes(r, {R"(source_pod: "/")"}));
  const FlowRecord world = Tcp("8.8.8.8", 53, "10.0.1.5", 40000, 0);
  EXPECT_FALSE(Passes(world, {R"(source_pod: "/")"})) << "no namespace and no pod: never";
  // --pod sends a source and a destination filter: either side matches.
  EXPECT_TRUE(Passes(
      world, {R"(source_pod: "default/tiefighter")", R"(destination_pod: "default/tiefighter")"}));
  EXPECT_THAT(CompileError(R"(source_pod: "")"), HasSubstr("name must not be empty"));
}

TEST_F(FilterTest, IpsAndCidrs) {
  const FlowRecord r = Tcp("10.0.1.5", 40000, "10.0.2.7", 80, 0);
  EXPECT_TRUE(Passes(r, {R"(source_ip: "10.0.1.5")"}));
  EXPECT_TRUE(Passes(r, {R"(source_ip: "10.0.0.0/16")"}));
  EXPECT_FALSE(Passes(r, {R"(source_ip: "10.0.2.0/24")"}));
  EXPECT_TRUE(Passes(r, {R"(destination_ip: ["1.1.1.1", "10.0.2.7"])"})) << "values OR'ed";
  EXPECT_FALSE(Passes(r, {R"(destination_ip: "fd00::/8")"}));
  EXPECT_THAT(CompileError(R"(source_ip: "10.0.0.0/40")"), HasSubstr("prefix length"));
  EXPECT_THAT(CompileError(R"(destination_ip: "example.com")"),
              HasSubstr("invalid destination_ip filter \"example.com\""));
}

TEST_F(FilterTest, LabelSelectors) {
  const FlowRecord r = Tcp("10.0.1.5", 40000, "10.0.2.7", 80, 0);
  EXPECT_TRUE(Passes(r, {R"(source_label: "org=empire")"}));
  EXPECT_TRUE(Passes(r, {R"(source_label: "k8s:org=empire")"}));
  EXPECT_FALSE(Passes(r, {R"(source_label: "reserved:org=empire")"}));
  EXPECT_TRUE(Passes(r, {R"(source_label: "org==empire,class!=xwing")"}));
  EXPECT_TRUE(Passes(r, {R"pb(source_label: "class in (tiefighter, xwing)")pb"}));
  EXPECT_FALSE(Passes(r, {R"pb(source_label: "class notin (tiefighter)")pb"}));
  EXPECT_TRUE(Passes(r, {R"(source_label: "org")"}));
  EXPECT_FALSE(Passes(r, {R"(source_label: "!org")"}));
  EXPECT_TRUE(Passes(r, {R"(source_label: "!missing")"}));
  EXPECT_TRUE(Passes(r, {R"(destination_label: "class=deathstar")"}));
  const FlowRecord world = Tcp("8.8.8.8", 53, "10.0.1.5", 40000, 0);
  EXPECT_TRUE(Passes(world, {R"(source_label: "reserved:world")"}));
  EXPECT_THAT(CompileError(R"(source_label: "class in (a")"), HasSubstr("source_label"));
  EXPECT_THAT(CompileError(R"(source_label: "a=b=c")"), HasSubstr("invalid label value"));
  EXPECT_THAT(CompileError(R"(source_label: "org,,x")"), HasSubstr("empty requirement"));
}

TEST_F(FilterTest, VerdictEventTypeProtocolPortsFlags) {
  FlowRecord drop = Tcp("10.0.1.6", 40001, "10.0.2.7", 80, FS_TCP_SYN, FS_REPLY_UNKNOWN);
  drop.verdict = FS_VERDICT_DROPPED;
  drop.drop_reason = FS_DROP_POLICY_DENIED;
  const FlowRecord fwd = Tcp("10.0.1.5", 40000, "10.0.2.7", 80, FS_TCP_SYN | FS_TCP_ACK);
  EXPECT_TRUE(Passes(drop, {"verdict: DROPPED"}));
  EXPECT_FALSE(Passes(fwd, {"verdict: DROPPED"}));
  EXPECT_TRUE(Passes(drop, {"event_type { type: 1 }"}));
  EXPECT_TRUE(Passes(drop, {"event_type { type: 1 match_sub_type: true sub_type: 133 }"}));
  EXPECT_FALSE(Passes(drop, {"event_type { type: 1 match_sub_type: true sub_type: 181 }"}));
  EXPECT_TRUE(Passes(fwd, {"event_type { type: 4 match_sub_type: true sub_type: 5 }"}))
      << "trace from-endpoint";
  EXPECT_TRUE(Passes(fwd, {"event_type { type: 0 }"})) << "type 0 is any";
  EXPECT_TRUE(Passes(drop, {"drop_reason_desc: POLICY_DENIED"}));
  EXPECT_FALSE(Passes(fwd, {"drop_reason_desc: POLICY_DENIED"}));
  EXPECT_FALSE(Passes(fwd, {"drop_reason_desc: DROP_REASON_UNKNOWN"})) << "only drops have one";
  EXPECT_TRUE(Passes(fwd, {R"(protocol: "TCP")"}));
  EXPECT_FALSE(Passes(fwd, {R"(protocol: "udp")"}));
  EXPECT_FALSE(Passes(fwd, {R"(protocol: "http")"})) << "L7 only";
  EXPECT_THAT(CompileError(R"(protocol: "gre")"), HasSubstr("unknown protocol"));
  EXPECT_TRUE(Passes(fwd, {R"(destination_port: "80")"}));
  EXPECT_TRUE(Passes(fwd, {R"(source_port: "40000")"}));
  EXPECT_FALSE(Passes(fwd, {R"(destination_port: "443")"}));
  EXPECT_THAT(CompileError(R"(destination_port: "99999")"), HasSubstr("0..65535"));
  EXPECT_THAT(CompileError(R"(source_port: "http")"), HasSubstr("source_port"));
  EXPECT_TRUE(Passes(fwd, {"tcp_flags { SYN: true }"}));
  EXPECT_TRUE(Passes(fwd, {"tcp_flags { SYN: true ACK: true }"}));
  EXPECT_FALSE(Passes(drop, {"tcp_flags { SYN: true ACK: true }"}));
  EXPECT_TRUE(Passes(drop, {"tcp_flags { FIN: true } tcp_flags { SYN: true }"}));
  EXPECT_TRUE(Passes(fwd, {"ip_version: IPv4"}));
  EXPECT_FALSE(Passes(fwd, {"ip_version: IPv6"}));
}

// flowscope's kernel drops by the kernel's reason: drop_reason_desc values from
// kKernelDropReasonFilterBase on, alternatives to Hubble's codes in the same filter; on records
// and on decoded flows that carry the KernelDrop extension. A reason this build does not know
// matches nothing.
TEST_F(FilterTest, KernelDropReasons) {
  FlowRecord nf = Tcp("10.0.1.6", 40001, "10.0.2.7", 80, FS_TCP_SYN, FS_REPLY_UNKNOWN);
  nf.verdict = FS_VERDICT_DROPPED;
  nf.emit_reason = FS_EMIT_KERNEL_DROP;
  nf.policy = *bpf::KernelDropReasonId("NETFILTER_DROP");
  FlowRecord policy = nf;
  policy.emit_reason = FS_EMIT_DROP;
  policy.drop_reason = FS_DROP_POLICY_DENIED;
  policy.policy = nf.policy;  // a deny rule's name id of the same number
  auto reason = [](absl::string_view name) {
    return absl::StrCat("drop_reason_desc: ",
                        bpf::kKernelDropReasonFilterBase + *bpf::KernelDropReasonId(name));
  };
  EXPECT_TRUE(Passes(nf, {reason("NETFILTER_DROP")}));
  EXPECT_FALSE(Passes(nf, {reason("NO_SOCKET")}));
  EXPECT_FALSE(Passes(policy, {reason("NETFILTER_DROP")}));
  EXPECT_TRUE(Passes(policy, {reason("NETFILTER_DROP") + " drop_reason_desc: POLICY_DENIED"}));
  EXPECT_TRUE(Passes(nf, {reason("NETFILTER_DROP") + " drop_reason_desc: POLICY_DENIED"}));
  EXPECT_TRUE(Passes(nf, {"drop_reason_desc: DROP_REASON_UNKNOWN"})) << "as its flow says";
  EXPECT_FALSE(Passes(nf, {"drop_reason_desc: 1254"})) << "a reason this build does not know";
  EXPECT_TRUE(Passes(nf, {"verdict: DROPPED"}, {reason("NO_SOCKET")}));
  EXPECT_FALSE(Passes(nf, {"verdict: DROPPED"}, {reason("NETFILTER_DROP")}));

  flow::Flow f;
  builder_.Build(nf, 0, &f, 0, /*extensions=*/true);
  google::protobuf::RepeatedPtrField<flow::FlowFilter> w;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(reason("NETFILTER_DROP"), w.Add()));
  auto pred = FlowPredicate::CompileForFlows(w, {});
  ASSERT_TRUE(pred.ok());
  EXPECT_TRUE(pred->MatchFlow(f));
  builder_.Build(nf, 0, &f);  // as a Hubble client gets it: nothing says it is the kernel's
  EXPECT_FALSE(pred->MatchFlow(f));
}

// DNS flows: `protocol: dns` (alone or beside L4 protocols; an L7 DNS flow is UDP as well),
// `dns_query` (an RE2 expression found anywhere in the name), event type l7 (129); on records and
// on decoded flows.
TEST_F(FilterTest, DnsFlowsByProtocolQueryAndEventType) {
  DnsTable dns(8);
  builder_.AttachDns(&dns);
  DnsMessage m;
  m.query = "deathstar.default.svc.cluster.local.";
  m.qtypes = {1};
  FlowRecord q = Tcp("10.0.1.5", 53875, "10.0.3.2", 53, 0);
  q.protocol = IPPROTO_UDP;
  q.emit_reason = FS_EMIT_DNS;
  q.flow_bytes = dns.Add(EncodeDns(m));
  FlowRecord l4 = q;
  l4.emit_reason = FS_EMIT_NEW_FLOW;
  l4.flow_bytes = 1;
  EXPECT_TRUE(Passes(q, {R"(protocol: "dns")"}));
  EXPECT_TRUE(Passes(q, {R"(protocol: "DNS")"}));
  EXPECT_FALSE(Passes(l4, {R"(protocol: "dns")"})) << "the packet's L3/L4 flow is not DNS";
  EXPECT_TRUE(Passes(q, {R"(protocol: "udp")"}));
  EXPECT_TRUE(Passes(l4, {R"(protocol: "dns" protocol: "udp")"}));
  EXPECT_FALSE(Passes(q, {R"(protocol: "http")"}));
  EXPECT_TRUE(Passes(q, {R"(dns_query: "deathstar")"})) << "found anywhere in the name";
  EXPECT_TRUE(Passes(q, {R"(dns_query: "^deathstar\\..*\\.local\\.$")"}));
  EXPECT_FALSE(Passes(q, {R"(dns_query: "^xwing")"}));
  EXPECT_FALSE(Passes(l4, {R"(dns_query: ".*")"})) << "only DNS flows have a query";
  EXPECT_TRUE(Passes(q, {"event_type { type: 129 }"}));
  EXPECT_FALSE(Passes(l4, {"event_type { type: 129 }"}));
  EXPECT_TRUE(Passes(q, {R"(verdict: FORWARDED protocol: "dns" source_pod: "tiefighter")"}));

  flow::Flow f;
  builder_.Build(q, 0, &f);
  google::protobuf::RepeatedPtrField<flow::FlowFilter> w;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(
      R"(protocol: "dns" dns_query: "svc\\.cluster")", w.Add()));
  auto pred = FlowPredicate::CompileForFlows(w, {});
  ASSERT_TRUE(pred.ok()) << pred.status();
  EXPECT_TRUE(pred->MatchFlow(f));
  builder_.Build(l4, 0, &f);
  EXPECT_FALSE(pred->MatchFlow(f));
}

// source_fqdn / destination_fqdn: Hubble's patterns ('*' any run of name characters, the whole
// name, lowercased, one trailing dot ignored) over the names the flow's client looked up; a flow
// without names matches none. On records and on decoded flows.
TEST_F(FilterTest, FqdnPatternsMatchTheNamesClientsLookedUp) {
  NameCache names;
  builder_.AttachNames(&names);
  FlowRecord out = Tcp("10.0.1.5", 40000, "93.184.216.34", 443, FS_TCP_SYN);
  out.time_ns = 2'000'000'000;
  FlowRecord back = Tcp("93.184.216.34", 443, "10.0.1.5", 40000, FS_TCP_ACK, FS_REPLY_YES);
  back.time_ns = 2'000'000'000;
  FlowRecord xwing = Tcp("10.0.1.6", 40000, "93.184.216.34", 443, FS_TCP_SYN);
  xwing.time_ns = 2'000'000'000;
  EXPECT_FALSE(Passes(out, {R"(destination_fqdn: "*")"})) << "no names yet";
  // tiefighter's resolver answered before the flows.
  FlowRecord answer = Tcp("10.0.3.2", 53, "10.0.1.5", 53875, 0, FS_REPLY_YES);
  names.Add(NameCache::ClientOf(answer, /*source=*/false), "api.example.com.", {"93.184.216.34"},
            30, 1'000'000'000);

  EXPECT_TRUE(Passes(out, {R"(destination_fqdn: "api.example.com")"}));
  EXPECT_TRUE(Passes(out, {R"(destination_fqdn: "API.Example.com.")"}));
  EXPECT_TRUE(Passes(out, {R"(destination_fqdn: "*.example.com")"}));
  EXPECT_TRUE(Passes(out, {R"(destination_fqdn: "*")"}));
  EXPECT_FALSE(Passes(out, {R"(destination_fqdn: "example.com")"})) << "the whole name";
  EXPECT_FALSE(Passes(out, {R"(destination_fqdn: "api.example")"}));
  EXPECT_FALSE(Passes(out, {R"(source_fqdn: "*")"})) << "tiefighter itself has no name";
  EXPECT_TRUE(Passes(back, {R"(source_fqdn: "api.*")"})) << "the reply, from the named side";
  EXPECT_FALSE(Passes(xwing, {R"(destination_fqdn: "*")"})) << "xwing looked nothing up";
  EXPECT_TRUE(Passes(out, {R"(destination_fqdn: "nope.org" destination_fqdn: "*.com")"}));
  EXPECT_FALSE(
      Passes(out, {R"(destination_fqdn: "*.com")"}, {R"(destination_fqdn: "api.example.com")"}));
  EXPECT_THAT(CompileError(R"(destination_fqdn: "api.example.com/x")"),
              HasSubstr("destination_fqdn"));
  EXPECT_THAT(CompileError(R"(destination_fqdn: ".")"), HasSubstr("must not be empty"));

  flow::Flow f;
  builder_.Build(out, 0, &f);
  ASSERT_THAT(f.destination_names(), ::testing::ElementsAre("api.example.com"));
  google::protobuf::RepeatedPtrField<flow::FlowFilter> w;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(R"(destination_fqdn: "*.example.com")",
                                                            w.Add()));
  auto pred = FlowPredicate::CompileForFlows(w, {});
  ASSERT_TRUE(pred.ok()) << pred.status();
  EXPECT_TRUE(pred->MatchFlow(f));
  flow::Flow unnamed;
  builder_.Build(xwing, 0, &unnamed);
  EXPECT_FALSE(pred->MatchFlow(unnamed));
}

TEST_F(FilterTest, ReplyDirectionAndInterfaces) {
  const FlowRecord req = Tcp("10.0.1.5", 40000, "10.0.2.7", 80, FS_TCP_SYN, FS_REPLY_NO);
  const FlowRecord rep =
      Tcp("10.0.2.7", 80, "10.0.1.5", 40000, FS_TCP_SYN | FS_TCP_ACK, FS_REPLY_YES);
  FlowRecord unknown = Tcp("10.0.1.5", 40000, "10.0.2.7", 80, FS_TCP_ACK, FS_REPLY_UNKNOWN);
  EXPECT_TRUE(Passes(req, {"reply: false"}));
  EXPECT_FALSE(Passes(req, {"reply: true"}));
  EXPECT_TRUE(Passes(rep, {"reply: true"}));
  EXPECT_FALSE(Passes(unknown, {"reply: false"})) << "unknown direction matches nothing";
  unknown.verdict = FS_VERDICT_DROPPED;
  unknown.drop_reason = FS_DROP_POLICY_DENIED;
  EXPECT_TRUE(Passes(unknown, {"reply: false"})) << "except drops, where it counts as false";
  EXPECT_TRUE(Passes(req, {"traffic_direction: EGRESS"}));
  EXPECT_TRUE(Passes(rep, {"traffic_direction: INGRESS"}));
  EXPECT_TRUE(Passes(req, {R"(interface { name: "lxc12" })"}));
  EXPECT_TRUE(Passes(req, {"interface { index: 12 }"}));
  EXPECT_FALSE(Passes(req, {R"(interface { name: "eth0" })"}));
}

TEST_F(FilterTest, IdentitiesWorkloadsClustersNodes) {
  const FlowRecord r = Tcp("10.0.1.5", 40000, "10.0.2.7", 80, 0);
  const uint32_t tie = table_.Get(r.src_endpoint)->identity;
  EXPECT_TRUE(Passes(r, {absl::StrCat("source_identity: ", tie)}));
  EXPECT_FALSE(Passes(r, {absl::StrCat("destination_identity: ", tie)}));
  EXPECT_TRUE(Passes(r, {R"(source_workload { name: "tiefighter" })"}));
  EXPECT_TRUE(Passes(r, {R"(source_workload { kind: "Deployment" })"}));
  EXPECT_FALSE(Passes(r, {R"(source_workload { name: "tiefighter" kind: "StatefulSet" })"}));
  EXPECT_TRUE(Passes(r, {"source_workload {}"})) << "an empty workload: any workload";
  const FlowRecord from_xwing = Tcp("10.0.1.6", 40000, "10.0.2.7", 80, 0);
  EXPECT_FALSE(Passes(from_xwing, {"source_workload {}"})) << "xwing has none";
  EXPECT_TRUE(Passes(from_xwing, {"destination_workload {}"}));
  EXPECT_TRUE(Passes(r, {R"(source_cluster_name: "default")"}));
  EXPECT_FALSE(Passes(r, {R"(destination_cluster_name: "other")"}));
  EXPECT_THAT(CompileError(R"(source_cluster_name: "")"), HasSubstr("must not be empty"));
  EXPECT_TRUE(Passes(r, {R"(node_name: "node-1")"}));
  EXPECT_TRUE(Passes(r, {R"(node_name: "node-*")"}));
  EXPECT_TRUE(Passes(r, {R"(node_name: "default/node-1")"}));
  EXPECT_FALSE(Passes(r, {R"(node_name: "other/node-1")"}));
  EXPECT_FALSE(Passes(r, {R"(node_name: "k8s*")"}));
  // Hubble's patterns: "cluster/" is every node of a cluster, "/node" the node in any cluster,
  // patterns are lowercased, '*' spans dots but not the '/'.
  EXPECT_TRUE(Passes(r, {R"(node_name: "default/")"}));
  EXPECT_FALSE(Passes(r, {R"(node_name: "other/")"}));
  EXPECT_TRUE(Passes(r, {R"(node_name: "/node-1")"}));
  EXPECT_TRUE(Passes(r, {R"(node_name: "NODE-1")"}));
  EXPECT_TRUE(Passes(r, {R"(node_name: "default/node-1.")"})) << "one trailing dot";
  EXPECT_TRUE(Passes(r, {R"(node_name: "*")"}));
  EXPECT_TRUE(Passes(r, {R"(node_name: "d*/*1")"}));
  EXPECT_TRUE(Passes(r, {R"(node_name: "*/node-1")"}));
  EXPECT_TRUE(Passes(r, {R"(node_name: "other/x" node_name: "node-1")"})) << "any pattern";
  EXPECT_THAT(CompileError(R"(node_name: "a/b/c")"), HasSubstr("more than one '/'"));
  EXPECT_THAT(CompileError(R"(node_name: "node?")"), HasSubstr("'?' is not allowed"));
  EXPECT_THAT(CompileError(R"(node_name: "node..")"), HasSubstr("more than one trailing dot"));
  EXPECT_THAT(CompileError(R"(node_name: "")"), HasSubstr("empty pattern"));
  // A decoded flow: a name without a cluster is in "default"; an empty name matches nothing.
  google::protobuf::RepeatedPtrField<flow::FlowFilter> w;
  ASSERT_TRUE(
      google::protobuf::TextFormat::ParseFromString(R"(node_name: "default/k8s-*")", w.Add()));
  auto flows = FlowPredicate::CompileForFlows(w, {});
  ASSERT_TRUE(flows.ok()) << flows.status();
  flow::Flow f;
  f.set_node_name("k8s-worker");
  f.mutable_source()->set_cluster_name("prod");
  EXPECT_TRUE(flows->MatchFlow(f));
  f.set_node_name("prod/k8s-worker");
  EXPECT_FALSE(flows->MatchFlow(f));
  f.set_node_name("");
  EXPECT_FALSE(flows->MatchFlow(f));
  EXPECT_TRUE(Passes(r, {R"(uuid: ")" + builder_.Uuid(0) + R"(")"}));
  EXPECT_FALSE(Passes(r, {R"(uuid: "00000000-0000-4000-8000-000000000000")"}));
}

TEST_F(FilterTest, ServicesByTheirFrontendsOnRecordsAndDecodedFlows) {
  table_.UpdateServices(
      {{.namespace_name = "default", .name = "deathstar", .ips = {"10.96.0.10"}, .ports = {80}},
       {.namespace_name = "kube-system",
        .name = "kube-dns",
        .ips = {"10.96.0.53"},
        .ports = {53}}});
  FlowRecord to = Tcp("10.0.1.5", 40000, "10.96.0.10", 80, 0);
  FlowRecord back = Tcp("10.96.0.10", 80, "10.0.1.5", 40000, 0, FS_REPLY_YES);
  FlowRecord other_port = Tcp("10.0.1.5", 40000, "10.96.0.10", 81, 0);
  EndpointTable::Resolver res(table_);
  for (FlowRecord* r : {&to, &back, &other_port}) {
    r->src_service = res.LookupService(r->family, r->saddr, r->sport);
    r->dst_service = res.LookupService(r->family, r->daddr, r->dport);
  }
  EXPECT_NE(to.dst_service, 0u);
  EXPECT_EQ(other_port.dst_service, 0u);
  EXPECT_TRUE(Passes(to, {R"(destination_service: "default/deathstar")"}));
  EXPECT_TRUE(Passes(to, {R"(destination_service: "death")"}));       // a prefix, default namespace
  EXPECT_TRUE(Passes(to, {R"(destination_service: "/deathstar")"}));  // any namespace
  EXPECT_FALSE(Passes(to, {R"(destination_service: "kube-system/deathstar")"}));
  EXPECT_FALSE(Passes(to, {R"(source_service: "default/deathstar")"}));
  EXPECT_TRUE(Passes(back, {R"(source_service: "default/deathstar")"}));
  EXPECT_FALSE(Passes(other_port, {R"(destination_service: "default/deathstar")"}));
  // The built flow carries the service, and the same filter matches the decoded flow.
  flow::Flow f;
  builder_.Build(to, 0, &f);
  EXPECT_EQ(f.destination_service().name(), "deathstar");
  EXPECT_EQ(f.destination_service().namespace_(), "default");
  EXPECT_FALSE(f.has_source_service());
  auto pred = Compile({R"(destination_service: "default/deathstar")"});
  ASSERT_TRUE(pred.ok());
  EXPECT_TRUE(pred->MatchFlow(f));
  builder_.Build(other_port, 1, &f);  // reusing the message clears the service
  EXPECT_FALSE(f.has_destination_service());
  EXPECT_FALSE(pred->MatchFlow(f));
}

TEST_F(FilterTest, NodeLabelsAreThisNodesLabels) {
  const FlowRecord r = Tcp("10.0.1.5", 40000, "10.0.2.7", 80, 0);
  EXPECT_FALSE(Passes(r, {R"(node_labels: "topology.kubernetes.io/zone=a")"}));  // none yet
  EXPECT_TRUE(Passes(r, {R"(node_labels: "!topology.kubernetes.io/zone")"}));
  table_.SetNodeLabels({"kubernetes.io/hostname=node-1", "topology.kubernetes.io/zone=a"});
  EXPECT_TRUE(Passes(r, {R"(node_labels: "topology.kubernetes.io/zone=a")"}));
  EXPECT_TRUE(Passes(r, {R"x(node_labels: "topology.kubernetes.io/zone in (a, b)")x"}));
  EXPECT_FALSE(Passes(r, {R"(node_labels: "topology.kubernetes.io/zone=b")"}));
  EXPECT_FALSE(Passes(r, {R"(node_labels: "topology.kubernetes.io/zone=a,disk=ssd")"}));
  EXPECT_THAT(CompileError(R"x(node_labels: "zone in (a")x"), HasSubstr("node_labels"));
}

// A criterion on data flowscope does not record is refused, naming the field: answering as if
// nothing matched would look like an answer.
TEST_F(FilterTest, FieldsFlowscopeCannotEvaluateAreRefusedNamingTheField) {
  const FlowRecord r = Tcp("10.0.1.5", 40000, "10.0.2.7", 80, 0);
  for (const auto& [filter, field] : std::vector<std::pair<std::string, std::string>>{
           {R"(source_ip_xlated: "10.0.0.1")", "source_ip_xlated"},
           {R"(http_status_code: "4+")", "http_status_code"},
           {R"(http_method: "GET")", "http_method"},
           {R"(http_path: "/v1/.*")", "http_path"},
           {R"(http_url: "http://x/.*")", "http_url"},
           {R"(http_header { key: "x-a" value: "b" })", "http_header"},
           {R"(trace_id: "4bf92f3577b34da6")", "trace_id"},
           {"ip_trace_id: 7", "ip_trace_id"},
       }) {
    EXPECT_THAT(CompileError(filter), HasSubstr("unsupported " + field + " filter")) << filter;
    google::protobuf::RepeatedPtrField<flow::FlowFilter> w;
    ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(filter, w.Add()));
    EXPECT_FALSE(FlowPredicate::CompileForFlows(w, {}).ok()) << "decoded flows too: " << filter;
  }
  EXPECT_TRUE(Passes(r, {"encrypted: false"}));
  EXPECT_FALSE(Passes(r, {"encrypted: true"}));
  EXPECT_THAT(CompileError(R"(http_status_code: "4xx")"), HasSubstr("http_status_code"));
  EXPECT_THAT(CompileError(R"(http_path: "(unclosed")"), HasSubstr("http_path"));
  EXPECT_THAT(CompileError(R"(dns_query: "[")"), HasSubstr("dns_query"));
  EXPECT_THAT(CompileError(R"(source_fqdn: "bad name!")"), HasSubstr("source_fqdn"));
  EXPECT_THAT(CompileError(R"(destination_service: "")"), HasSubstr("must not be empty"));
  EXPECT_THAT(CompileError(R"(http_method: "GET" event_type { type: 4 })"),
              HasSubstr("event type l7 (129)"));
  EXPECT_THAT(CompileError(R"(experimental { cel_expression: "true" })"),
              HasSubstr("CEL expressions are not supported"));
}

TEST_F(FilterTest, StrictParsingOfNumbersPrefixesAndSelectors) {
  struct {
    std::string filter;
    const char* want;
  } bad[] = {
      {R"(source_port: "+80")", "expected a port number"},
      {R"(source_port: " 80")", "expected a port number"},
      {R"(destination_port: "65536")", "expected a port number"},
      {R"(source_ip: "10.0.0.0/+8")", "prefix length must be 0..32"},
      {R"(source_ip: "10.0.0.0/08")", "prefix length must be 0..32"},
      {R"(source_ip: "10.0.0.0/")", "prefix length must be 0..32"},
      {R"(source_ip: "fd00::/129")", "prefix length must be 0..128"},
      {R"(source_label: "!app=x")", "takes a label key alone"},
      {R"pb(source_label: "a in ()")pb", "must not be empty"},
      {R"pb(source_label: "a notin ( )")pb", "must not be empty"},
      {"source_label: \"" + std::string(10000, 'k') + "\"", "invalid label key"},
      {"source_label: \"a=" + std::string(64, 'v') + "\"", "invalid label value"},
      {"source_label: \"" + std::string(254, 'p') + "/name\"", "invalid label key"},
  };
  for (const auto& b : bad) {
    SCOPED_TRACE(b.filter.substr(0, 80));
    const std::string error = CompileError(b.filter);
    EXPECT_THAT(error, HasSubstr(b.want));
    EXPECT_LT(error.size(), 400u) << "the bad value is quoted at a bounded length";
  }
  const FlowRecord r = Tcp("10.0.1.5", 40000, "10.0.2.7", 80, 0);
  EXPECT_TRUE(Passes(r, {R"(source_ip: "10.0.0.0/0")"}));
  EXPECT_TRUE(Passes(r, {R"(destination_port: "80")"}));
  // At the limits: valid (and absent from this flow's labels).
  EXPECT_FALSE(Passes(r, {"source_label: \"" + std::string(63, 'k') + "\""}));
  EXPECT_FALSE(Passes(r, {"source_label: \"example.com/" + std::string(63, 'k') + "\""}));
}

TEST_F(FilterTest, WhitelistMinusBlacklist) {
  const FlowRecord tie = Tcp("10.0.1.5", 40000, "10.0.2.7", 80, 0);
  const FlowRecord dns = Tcp("10.0.1.5", 40000, "10.0.3.2", 53, 0);
  const std::vector<std::string> not_kube_system = {R"(source_pod: "kube-system/")",
                                                    R"(destination_pod: "kube-system/")"};
  EXPECT_TRUE(Passes(tie, {}, not_kube_system));
  EXPECT_FALSE(Passes(dns, {}, not_kube_system));
  // Within a filter fields AND; across filters OR.
  EXPECT_FALSE(Passes(dns, {R"(source_pod: "tiefighter" destination_port: "80")"}));
  EXPECT_TRUE(Passes(
      dns, {R"(source_pod: "tiefighter" destination_port: "80")", R"(destination_port: "53")"}));
}

}  // namespace
}  // namespace flowscope::observer
