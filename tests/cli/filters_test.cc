// Flag-to-filter expansion: the examples of the reference §3.4, --not, repetition, conflicts
// and value errors.
#include "cmd/cli/filters.h"

#include <gmock/gmock.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"
#include "bpf/drop_reasons.h"

namespace flowscope::cli {
namespace {

using ::testing::HasSubstr;

std::string Json(const std::vector<flow::FlowFilter>& filters) {
  std::string out = "[";
  google::protobuf::util::JsonPrintOptions o;
  o.preserve_proto_field_names = true;
  for (size_t i = 0; i < filters.size(); ++i) {
    std::string j;
    EXPECT_TRUE(google::protobuf::util::MessageToJsonString(filters[i], &j, o).ok());
    out += (i ? "," : "") + j;
  }
  return out + "]";
}

Filters Build(const std::vector<std::pair<std::string, std::string>>& flags) {
  FilterBuilder b;
  for (const auto& [f, v] : flags) EXPECT_TRUE(b.Add(f, v).ok()) << f << " " << v;
  auto r = b.Build();
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : Filters{};
}

std::string Error(const std::vector<std::pair<std::string, std::string>>& flags) {
  FilterBuilder b;
  for (const auto& [f, v] : flags) {
    if (absl::Status s = b.Add(f, v); !s.ok()) return std::string(s.message());
  }
  auto r = b.Build();
  return r.ok() ? "" : std::string(r.status().message());
}

TEST(FiltersTest, ReferenceExamples) {
  EXPECT_EQ(Json(Build({{"pod", "default/xwing"}}).whitelist),
            R"([{"source_pod":["default/xwing"]},{"destination_pod":["default/xwing"]}])");
  EXPECT_EQ(Json(Build({{"pod", "deathstar"}, {"verdict", "DROPPED"}}).whitelist),
            R"([{"source_pod":["deathstar"],"verdict":["DROPPED"]},)"
            R"({"destination_pod":["deathstar"],"verdict":["DROPPED"]}])");
  EXPECT_EQ(Json(Build({{"namespace", "kube-system"}}).whitelist),
            R"([{"source_pod":["kube-system/"]},{"destination_pod":["kube-system/"]}])");
  const Filters n = Build({{"not", ""}, {"namespace", "kube-system"}});
  EXPECT_TRUE(n.whitelist.empty());
  EXPECT_EQ(Json(n.blacklist),
            R"([{"source_pod":["kube-system/"]},{"destination_pod":["kube-system/"]}])");
}

TEST(FiltersTest, FromToSingleSidedRepeatedAndNamespaces) {
  EXPECT_EQ(Json(Build({{"from-pod", "default/tiefighter"}}).whitelist),
            R"([{"source_pod":["default/tiefighter"]}])")
      << "identical left and right are sent once";
  EXPECT_EQ(Json(Build({{"verdict", "DROPPED"}, {"verdict", "FORWARDED"}}).whitelist),
            R"([{"verdict":["DROPPED","FORWARDED"]}])");
  EXPECT_EQ(Json(Build({{"ip", "10.0.0.1"}}).whitelist),
            R"([{"source_ip":["10.0.0.1"]},{"destination_ip":["10.0.0.1"]}])");
  EXPECT_EQ(Json(Build({{"pod", "deathstar"}, {"namespace", "empire"}}).whitelist),
            R"([{"source_pod":["empire/deathstar"]},{"destination_pod":["empire/deathstar"]}])");
  EXPECT_EQ(Json(Build({{"all-namespaces", ""}}).whitelist),
            R"([{"source_pod":["/"]},{"destination_pod":["/"]}])");
  EXPECT_EQ(Json(Build({{"from-namespace", "kube-system"}}).whitelist),
            R"([{"source_pod":["kube-system/"]}])");
  EXPECT_EQ(Json(Build({{"to-port", "53"}, {"protocol", "udp"}}).whitelist),
            R"([{"protocol":["udp"],"destination_port":["53"]}])");
  EXPECT_EQ(Json(Build({{"type", "trace:to-endpoint"}}).whitelist),
            R"([{"event_type":[{"type":4,"match_sub_type":true}]}])")
      << "to-endpoint is sub_type 0";
  EXPECT_EQ(Json(Build({{"type", "drop"}}).whitelist), R"([{"event_type":[{"type":1}]}])");
  EXPECT_EQ(Json(Build({{"tcp-flags", "syn,ack"}}).whitelist),
            R"([{"tcp_flags":[{"SYN":true,"ACK":true}]}])");
  EXPECT_EQ(Json(Build({{"identity", "world"}}).whitelist),
            R"([{"source_identity":[2]},{"destination_identity":[2]}])");
  EXPECT_EQ(Json(Build({{"ipv4", ""}, {"traffic-direction", "ingress"}}).whitelist),
            R"([{"ip_version":["IPv4"],"traffic_direction":["INGRESS"]}])");
  // Allow and deny are separate: the next flag after --not only.
  const Filters mixed = Build({{"pod", "xwing"}, {"not", ""}, {"verdict", "FORWARDED"}});
  EXPECT_EQ(mixed.whitelist.size(), 2u);
  EXPECT_EQ(Json(mixed.blacklist), R"([{"verdict":["FORWARDED"]}])");
}

TEST(FiltersTest, ConflictGroups) {
  struct {
    std::vector<std::pair<std::string, std::string>> flags;
    const char* want;
  } cases[] = {
      {{{"ip", "1.1.1.1"}, {"namespace", "x"}}, "filters --ip and --namespace cannot be combined"},
      {{{"pod", "a"}, {"fqdn", "b"}}, "filters --pod and --fqdn cannot be combined"},
      {{{"from-pod", "a"}, {"namespace", "x"}}, "cannot be combined"},
      {{{"label", "a=b"}, {"from-label", "c=d"}}, "cannot be combined"},
      {{{"port", "80"}, {"to-port", "81"}}, "cannot be combined"},
      {{{"encrypted", ""}, {"unencrypted", ""}}, "cannot be combined"},
      {{{"namespace", "a"}, {"all-namespaces", ""}}, "cannot be combined"},
  };
  for (const auto& c : cases) EXPECT_THAT(Error(c.flags), HasSubstr(c.want));
  // Conflicts are per side: an allowed --ip and a denied -n are fine.
  EXPECT_EQ(Error({{"ip", "1.1.1.1"}, {"not", ""}, {"namespace", "x"}}), "");
  EXPECT_EQ(Error({{"verdict", "DROPPED"}, {"type", "drop"}}), "") << "single-member groups";
}

TEST(FiltersTest, BadValuesAndNot) {
  EXPECT_THAT(Error({{"verdict", "NOPE"}}), HasSubstr("invalid value \"NOPE\" for --verdict"));
  EXPECT_THAT(Error({{"port", "99999"}}), HasSubstr("invalid value \"99999\" for --port"));
  EXPECT_THAT(Error({{"to-port", "http"}}), HasSubstr("--to-port"));
  EXPECT_THAT(Error({{"protocol", "gre"}}), HasSubstr("--protocol"));
  EXPECT_THAT(Error({{"type", "bogus"}}), HasSubstr("unknown event type"));
  EXPECT_THAT(Error({{"tcp-flags", "syn,xyz"}}), HasSubstr("unknown flag \"xyz\""));
  EXPECT_THAT(Error({{"traffic-direction", "up"}}), HasSubstr("ingress or egress"));
  EXPECT_THAT(Error({{"identity", "nobody"}}), HasSubstr("--identity"));
  EXPECT_THAT(Error({{"ip-trace-id", "0"}}), HasSubstr("greater than 0"));
  EXPECT_THAT(Error({{"not", ""}, {"not", ""}}), HasSubstr("--not"));
  EXPECT_THAT(Error({{"pod", "a"}, {"not", ""}}), HasSubstr("--not must be followed"));
}

// --drop-reason-desc takes Hubble's reasons and (flowscope) the kernel's, above Hubble's codes.
TEST(FiltersTest, DropReasonsHubblesAndTheKernels) {
  EXPECT_EQ(
      Json(Build({{"drop-reason-desc", "POLICY_DENIED"}, {"drop-reason-desc", "NETFILTER_DROP"}})
               .whitelist),
      absl::StrCat(R"([{"drop_reason_desc":["POLICY_DENIED",)",
                   bpf::kKernelDropReasonFilterBase + *bpf::KernelDropReasonId("NETFILTER_DROP"),
                   "]}]"));
  EXPECT_THAT(Error({{"drop-reason-desc", "NOT_A_REASON"}}),
              HasSubstr("unknown drop reason (Hubble's, e.g. POLICY_DENIED, or the kernel's"));
  EXPECT_THAT(Error({{"drop-reason-desc", "netfilter_drop"}}), HasSubstr("unknown drop reason"))
      << "names are upper case, as Hubble's";
}

// Hubble's namespace checks: a namespace flag against names in another namespace, and a side's
// services in another namespace than its pods.
TEST(FiltersTest, NamespaceConflictsAsHubble) {
  EXPECT_EQ(Error({{"from-namespace", "x"}, {"from-pod", "y/p"}}),
            "namespace conflict: \"x\" does not contain \"y/p\"");
  EXPECT_EQ(Error({{"from-pod", "y/p"}, {"from-namespace", "x"}}),
            "namespace conflict: \"x\" does not contain \"y/p\"")
      << "in either order";
  EXPECT_EQ(Error({{"to-namespace", "x"}, {"to-service", "y/s"}}),
            "namespace conflict: \"x\" does not contain \"y/s\"");
  EXPECT_EQ(Error({{"from-all-namespaces", ""}, {"from-pod", "y/p"}}),
            "namespace conflict: \"\" does not contain \"y/p\"");
  EXPECT_EQ(Error({{"from-pod", "a/p"}, {"from-service", "b/s"}}),
            "namespace of service \"b/s\" conflict with pod \"a\"");
  EXPECT_EQ(Error({{"from-namespace", "x"}, {"from-pod", "x/p"}}), "") << "the same namespace";
  EXPECT_EQ(Error({{"from-namespace", "x"}, {"to-pod", "y/p"}}), "") << "the other side";
  EXPECT_EQ(Error({{"from-namespace", "x"}, {"from-pod", "p"}}), "") << "no namespace given";
}

// --identity by Cilium's reserved names (case-sensitive, "unknown" refused), -t with trace and
// agent sub-type names, --ip-version in all of Hubble's spellings.
TEST(FiltersTest, IdentityTypeAndIpVersionNames) {
  EXPECT_EQ(Json(Build({{"from-identity", "overlay-to-encrypt"}}).whitelist),
            R"([{"source_identity":[11]}])");
  EXPECT_EQ(Json(Build({{"from-identity", "kube-apiserver"}}).whitelist),
            R"([{"source_identity":[7]}])");
  EXPECT_EQ(Json(Build({{"from-identity", "16777217"}}).whitelist),
            R"([{"source_identity":[16777217]}])");
  EXPECT_THAT(Error({{"identity", "unknown"}}), HasSubstr("invalid value \"unknown\""));
  EXPECT_THAT(Error({{"identity", "World"}}), HasSubstr("invalid value \"World\""));
  EXPECT_THAT(Error({{"identity", "+5"}}), HasSubstr("invalid value \"+5\""));
  EXPECT_EQ(Json(Build({{"type", "agent:policy-updated"}}).whitelist),
            R"([{"event_type":[{"type":130,"match_sub_type":true,"sub_type":5}]}])");
  EXPECT_EQ(Json(Build({{"type", "agent:ipcache-deleted"}}).whitelist),
            R"([{"event_type":[{"type":130,"match_sub_type":true,"sub_type":10}]}])");
  EXPECT_EQ(Json(Build({{"type", "trace:to-crypto"}}).whitelist),
            R"([{"event_type":[{"type":4,"match_sub_type":true,"sub_type":13}]}])");
  EXPECT_EQ(Json(Build({{"type", "drop:133"}}).whitelist),
            R"([{"event_type":[{"type":1,"match_sub_type":true,"sub_type":133}]}])");
  EXPECT_THAT(Error({{"type", "agent:to-endpoint"}}), HasSubstr("unknown sub-type"));
  EXPECT_THAT(Error({{"type", "DROP"}}), HasSubstr("unknown event type"));
  for (const char* v4 : {"4", "v4", "ipv4", "ip4", "IPv4"}) {
    EXPECT_EQ(Json(Build({{"ip-version", v4}}).whitelist), R"([{"ip_version":["IPv4"]}])") << v4;
  }
  for (const char* v6 : {"6", "v6", "ipv6", "ip6"}) {
    EXPECT_EQ(Json(Build({{"ip-version", v6}}).whitelist), R"([{"ip_version":["IPv6"]}])") << v6;
  }
  EXPECT_THAT(Error({{"ip-version", "ipv5"}}), HasSubstr("--ip-version"));
}

TEST(FiltersTest, RawFiltersYaml) {
  EXPECT_EQ(RawFiltersYaml(Build({{"pod", "default/xwing"}})),
            "allowlist:\n"
            "    - '{\"source_pod\":[\"default/xwing\"]}'\n"
            "    - '{\"destination_pod\":[\"default/xwing\"]}'\n");
  // Hubble's encoding/json: enums by number, an empty list left out.
  EXPECT_EQ(RawFiltersYaml(Build({{"not", ""}, {"verdict", "DROPPED"}})),
            "denylist:\n"
            "    - '{\"verdict\":[2]}'\n");
  EXPECT_EQ(RawFiltersYaml(Build({})), "{}\n");
}

}  // namespace
}  // namespace flowscope::cli
