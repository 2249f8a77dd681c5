#include "observer/policy.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <set>

#include "absl/strings/str_cat.h"

namespace flowscope::observer {
namespace {

using ::testing::HasSubstr;

TEST(PolicyTest, ParsesAddressAndPodRules) {
  auto rules = ParsePolicy(R"(
deny:
  - from: 10.0.1.6
    to: 10.0.2.0/24
    protocol: tcp
    port: 80
  - fromPod: xwing
    toPod: default/deathstar
    protocol: tcp
    port: 80
  - to: fd00::/8
)");
  ASSERT_TRUE(rules.ok()) << rules.status();
  ASSERT_EQ(rules->size(), 3u);
  EXPECT_EQ((*rules)[0].from, "10.0.1.6");
  EXPECT_EQ((*rules)[1].from_pod, "default/xwing") << "a bare pod name is in default";
  EXPECT_EQ((*rules)[1].port, 80);
  EXPECT_TRUE(ParsePolicy(R"({"deny": []})")->empty()) << "only a valid file removes rules";
  EXPECT_TRUE(ParsePolicy("deny:\n")->empty());
}

TEST(PolicyTest, AnEmptyDocumentIsNotAnEmptyPolicy) {
  for (const char* text : {"", "\n\n", "# nothing\n", "~"}) {
    auto r = ParsePolicy(text);
    ASSERT_FALSE(r.ok()) << "\"" << text << "\" would open the datapath";
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("write `deny: []`"));
  }
}

TEST(PolicyTest, MalformedDocumentsAreErrorsNamingTheLineNeverExceptions) {
  struct {
    const char* text;
    const char* want;
  } bad[] = {
      {"deny:\n  - {[a]: b}\n", "deny rule 1 (line 2): a key must be a name"},
      {"deny:\n  - ? {a: 1}\n    : x\n", "a key must be a name"},
      {"deny:\n  - to: [10.0.0.1]\n", "(line 2): to must be a value"},
      {"deny: [{port: +80, protocol: tcp}]", "port \"+80\" is not a number"},
      {"deny: [{port: \" 80\", protocol: tcp}]", "is not a number"},
      {"deny: [{port: 70000, protocol: tcp}]", "is not a number 0-65535"},
      {"[1, 2]", "line 1: the policy must be a map"},
      {"deny: {a: b}", "a `deny:` list"},
      {"deny:\n  - from: 10.0.0.1\n  - 7\n", "deny rule 2 (line 3): not a map"},
      {"deny: [\n  {to: 10.0.0.1},\n  {to: \"x\"\n", "line "},
  };
  for (const auto& b : bad) {
    absl::StatusOr<std::vector<PolicyRule>> r;
    ASSERT_NO_THROW(r = ParsePolicy(b.text)) << b.text;
    ASSERT_FALSE(r.ok()) << b.text;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(b.want)) << b.text;
  }
  const std::string huge = "deny: [{colour: " + std::string(9000, 'x') + "}]";
  auto r = ParsePolicy(huge);
  ASSERT_FALSE(r.ok());
  EXPECT_LT(r.status().message().size(), 300u) << "a bad value is quoted at a bounded length";
}

TEST(PolicyTest, BadRulesFailTheWholePolicyNamingTheRule) {
  struct {
    const char* text;
    const char* want;
  } bad[] = {
      {"deny: [{to: 10.0.0.0/99}]", "deny rule 1 (line 1): invalid destination"},
      {"deny: [{to: 10.0.0.1}, {protocol: gre}]", "deny rule 2 (line 1): invalid protocol"},
      {"deny: [{port: eighty, protocol: tcp}]", "port \"eighty\" is not a number"},
      {"deny: [{port: 80}]", "needs protocol tcp, udp or sctp"},
      {"deny: [{from: 10.0.0.1, fromPod: x}]", "not both"},
      {"deny: [{colour: red}]", "unknown key \"colour\""},
      {"allow: []", "a map with a `deny:` list"},
      {"deny: [", "not valid JSON or YAML"},
  };
  for (const auto& b : bad) {
    auto r = ParsePolicy(b.text);
    ASSERT_FALSE(r.ok()) << b.text;
    EXPECT_THAT(std::string(r.status().message()), HasSubstr(b.want)) << b.text;
  }
}

TEST(PolicyTest, PodRulesResolveToCurrentAddresses) {
  EndpointTable table("default");
  EndpointInfo xwing;
  xwing.ips = {"10.0.1.6", "fd00::6"};
  xwing.namespace_name = "default";
  xwing.pod_name = "xwing";
  EndpointInfo ds1;
  ds1.ips = {"10.0.2.7"};
  ds1.namespace_name = "default";
  ds1.pod_name = "deathstar-1";
  EndpointInfo ds2;
  ds2.ips = {"10.0.2.8", "fd00::8"};
  ds2.namespace_name = "default";
  ds2.pod_name = "deathstar-2";
  table.Update({xwing, ds1, ds2});
  auto rules = ParsePolicy(
      "deny: [{fromPod: default/xwing, toPod: default/deathstar, protocol: tcp, port: 80}]");
  ASSERT_TRUE(rules.ok());
  auto resolved = ResolvePolicy(*rules, table);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  // v4 x v4: xwing -> 2 deathstars; v6 x v6: xwing -> deathstar-2. Mixed pairs are skipped.
  EXPECT_EQ(resolved->size(), 3u);
  for (const auto& r : *resolved) {
    EXPECT_EQ(r.raw.dport, 80);
    EXPECT_EQ(r.raw.protocol, IPPROTO_TCP);
  }
  // Pods not known (yet): no datapath rule.
  table.Update({});
  EXPECT_TRUE(ResolvePolicy(*rules, table)->empty());
}

TEST(PolicyTest, NamedRulesCarryTheirNameIdIntoTheDatapathRules) {
  EndpointTable table;
  auto rules = ParsePolicy(R"(
deny:
  - {to: 10.0.2.0/24, port: 80, protocol: tcp, name: no-web, namespace: default}
  - {to: 10.0.3.0/24, protocol: udp, name: no-udp, kind: CiliumNetworkPolicy}
  - {to: 10.0.4.4}
  - {protocol: icmp, name: no-ping}
  - {port: 22, protocol: tcp, name: no-web, namespace: default}
)");
  ASSERT_TRUE(rules.ok()) << rules.status();
  EXPECT_EQ((*rules)[0].kind, "FlowscopePolicy") << "the default kind of a named rule";
  EXPECT_EQ((*rules)[2].kind, "") << "an unnamed rule has no kind";
  // Cilium's match types: L3-L4, L3-Proto, L3-Only, Proto-Only, L4-Only.
  std::vector<int32_t> types;
  for (const PolicyRule& r : *rules) types.push_back(PolicyMatchType(r));
  EXPECT_THAT(types, ::testing::ElementsAre(2, 5, 1, 6, 3));
  EXPECT_EQ(PolicyMatchType(PolicyRule{}), 4) << "a rule on everything: all";

  auto resolved = ResolvePolicy(*rules, table);
  ASSERT_TRUE(resolved.ok()) << resolved.status();
  ASSERT_EQ(resolved->size(), 5u);
  EXPECT_EQ((*resolved)[2].raw.policy, 0) << "unnamed";
  std::set<uint8_t> ids;
  for (int i : {0, 1, 3, 4}) ids.insert((*resolved)[i].raw.policy);
  EXPECT_EQ(ids.size(), 4u) << "same name, other match type: its own id";
  auto p = table.GetPolicy((*resolved)[1].raw.policy);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(p->name, "no-udp");
  EXPECT_EQ(p->kind, "CiliumNetworkPolicy");
  EXPECT_EQ(p->match_type, 5);
  // Resolving again (pods changed, file reloaded) keeps the ids.
  auto again = ResolvePolicy(*rules, table);
  ASSERT_TRUE(again.ok());
  for (size_t i = 0; i < again->size(); ++i) {
    EXPECT_EQ((*again)[i].raw.policy, (*resolved)[i].raw.policy);
  }
  EXPECT_EQ(table.Policies().size(), 4u);

  // Restored names (an earlier run's) keep their ids; new names take free ones.
  EndpointTable restarted;
  restarted.RestorePolicies(table.Policies());
  EXPECT_EQ(restarted.GetPolicy((*resolved)[1].raw.policy)->name, "no-udp");
  EXPECT_EQ(restarted.InternPolicy(*p), p->id);
  const uint8_t fresh = restarted.InternPolicy(PolicyName{0, "new", "", "FlowscopePolicy", 1});
  EXPECT_NE(fresh, 0);
  EXPECT_EQ(ids.count(fresh), 0u);
  // 255 names at most; then unnamed (0), never a wrong name.
  for (int i = 0; i < 300; ++i) {
    restarted.InternPolicy(PolicyName{0, absl::StrCat("rule-", i), "", "FlowscopePolicy", 1});
  }
  EXPECT_EQ(restarted.InternPolicy(PolicyName{0, "one-too-many", "", "FlowscopePolicy", 1}), 0);
  EXPECT_EQ(restarted.Policies().size(), 255u);

  EXPECT_THAT(std::string(ParsePolicy("deny: [{to: 10.0.0.1, kind: X}]").status().message()),
              ::testing::HasSubstr("give it a name too"));
}

}  // namespace
}  // namespace flowscope::observer
