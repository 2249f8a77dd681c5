#include "observer/policy.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

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
  EXPECT_TRUE(ParsePolicy("")->empty());
  EXPECT_TRUE(ParsePolicy(R"({"deny": []})")->empty());
}

TEST(PolicyTest, BadRulesFailTheWholePolicyNamingTheRule) {
  struct {
    const char* text;
    const char* want;
  } bad[] = {
      {"deny: [{to: 10.0.0.0/99}]", "deny rule 1: invalid destination"},
      {"deny: [{to: 10.0.0.1}, {protocol: gre}]", "deny rule 2: invalid protocol"},
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

}  // namespace
}  // namespace flowscope::observer
