// What `flowscope observe` sends: number/first/follow/since/until rules, raw filters, and where
// the server address comes from.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <limits>

#include "api/flows_request.h"
#include "cmd/cli/commands.h"
#include "cmd/cli/config.h"

namespace flowscope::cli {
namespace {

using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1'800'000'000);

::observer::GetFlowsRequest Req(ObserveOptions o) {
  auto r = BuildRequest(o, {}, kNow);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : ::observer::GetFlowsRequest();
}

TEST(RequestTest, NumberDefaultsAndSelectors) {
  EXPECT_EQ(Req({}).number(), 20u) << "--last 20 when nothing else selects";
  ObserveOptions follow;
  follow.follow = true;
  EXPECT_EQ(Req(follow).number(), 0u);
  EXPECT_TRUE(Req(follow).follow());
  ObserveOptions follow_last = follow;
  follow_last.last = 5;
  EXPECT_EQ(Req(follow_last).number(), 5u);
  ObserveOptions all;
  all.all = true;
  EXPECT_EQ(Req(all).number(), std::numeric_limits<uint64_t>::max());
  ObserveOptions first;
  first.first = 3;
  EXPECT_TRUE(Req(first).first());
  EXPECT_EQ(Req(first).number(), 3u);
  ObserveOptions since;
  since.since = "3m";
  EXPECT_EQ(Req(since).number(), 0u);
  EXPECT_EQ(Req(since).since().seconds(), 1'800'000'000 - 180);
  ObserveOptions since_last = since;
  since_last.last = 10;
  EXPECT_EQ(Req(since_last).number(), 10u);
  ObserveOptions follow_until = follow;
  follow_until.until = "1m";
  EXPECT_FALSE(Req(follow_until).has_until()) << "--until is dropped with --follow";
  ObserveOptions until;
  until.until = "2024-05-04T12:00:00Z";
  EXPECT_EQ(Req(until).until().seconds(), 1714824000);
}

TEST(RequestTest, ConflictsAndRawFilters) {
  ObserveOptions a;
  a.first = 1;
  a.all = true;
  EXPECT_THAT(std::string(BuildRequest(a, {}, kNow).status().message()),
              HasSubstr("--first cannot be combined"));
  ObserveOptions b;
  b.last = 1;
  b.all = true;
  EXPECT_THAT(std::string(BuildRequest(b, {}, kNow).status().message()),
              HasSubstr("--last cannot be combined with --all"));
  ObserveOptions t;
  t.follow = true;
  t.printer.format = Format::kTable;
  EXPECT_THAT(std::string(BuildRequest(t, {}, kNow).status().message()),
              HasSubstr("table cannot be combined with --follow"));
  ObserveOptions raw;
  raw.allowlist = {R"({"source_pod":["a"]} {"verdict":["DROPPED"]})"};
  raw.denylist = {R"({"destination_port":["53"]})"};
  auto r = Req(raw);
  ASSERT_EQ(r.whitelist_size(), 2);
  EXPECT_EQ(r.whitelist(1).verdict(0), flow::DROPPED);
  ASSERT_EQ(r.blacklist_size(), 1);
  ObserveOptions bad;
  bad.allowlist = {R"({"source_pod": 5)"};
  EXPECT_THAT(std::string(BuildRequest(bad, {}, kNow).status().message()),
              HasSubstr("--allowlist"));
  EXPECT_FALSE(ParseRawFilters(R"({"no_such_field":["x"]})").ok());
}

TEST(RequestTest, FieldMasks) {
  auto compact = Req({});
  // Hubble's default mask, plus what a policy-verdict line prints and flowscope's extensions (a
  // kernel drop's type), which the request asks for.
  ASSERT_EQ(compact.field_mask().paths_size(), static_cast<int>(DefaultFieldMask().size()) + 3);
  EXPECT_EQ(compact.field_mask().paths(0), "time");
  EXPECT_THAT(compact.field_mask().paths(),
              ::testing::IsSupersetOf({"traffic_direction", "policy_match_type", "extensions"}));
  EXPECT_TRUE(WantsFlowExtensions(compact));
  ObserveOptions json;
  json.printer.format = Format::kJson;
  EXPECT_FALSE(Req(json).has_field_mask()) << "json gets whole flows by default";
  json.field_mask = {"time", "source.pod_name"};
  EXPECT_EQ(Req(json).field_mask().paths_size(), 2);
  ObserveOptions bad;
  bad.field_mask = {"time"};
  EXPECT_THAT(std::string(BuildRequest(bad, {}, kNow).status().message()),
              HasSubstr("--field-mask can only be used with --output json"));
  ObserveOptions no_default;
  no_default.use_default_field_masks = false;
  EXPECT_FALSE(Req(no_default).has_field_mask());
}

TEST(ServerTest, ServerAndTimeouts) {
  auto c = ResolveServer("", "", "");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "localhost:4245");
  EXPECT_EQ(c->dial_timeout, absl::Seconds(5));
  EXPECT_EQ(c->request_timeout, absl::Seconds(12));
  c = ResolveServer("unix:///x.sock", "2s", "1m");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->server, "unix:///x.sock");
  EXPECT_EQ(c->dial_timeout, absl::Seconds(2));
  EXPECT_EQ(c->request_timeout, absl::Minutes(1));
  EXPECT_THAT(std::string(ResolveServer("", "soon", "").status().message()),
              HasSubstr("invalid --timeout \"soon\""));
  EXPECT_THAT(std::string(ResolveServer("", "", "-1s").status().message()),
              HasSubstr("invalid --request-timeout \"-1s\""));
}

TEST(GroupDigitsTest, Thousands) {
  EXPECT_EQ(GroupDigits(2031), "2,031");
  EXPECT_EQ(GroupDigits(4095), "4,095");
  EXPECT_EQ(GroupDigits(999), "999");
  EXPECT_EQ(GroupDigits(1234567), "1,234,567");
}

// `observe agent-events|debug-events`: 20 by default, --all is everything, a time window
// leaves the number to --last (0: the whole window); no table while following.
TEST(RequestTest, EventsRequestsAsHubbleBuildsThem) {
  ObserveOptions o;
  EXPECT_EQ(BuildEventsRequest(o, kNow)->number(), 20u);
  o.all = true;
  EXPECT_EQ(BuildEventsRequest(o, kNow)->number(), std::numeric_limits<uint64_t>::max());
  o.all = false;
  o.last = 5;
  EXPECT_EQ(BuildEventsRequest(o, kNow)->number(), 5u);
  o.last.reset();
  o.since = "1m";
  auto r = BuildEventsRequest(o, kNow);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->number(), 0u);
  EXPECT_EQ(r->since().seconds(), absl::ToUnixSeconds(kNow - absl::Minutes(1)));
  o.follow = true;
  o.until = "now";
  EXPECT_FALSE(BuildEventsRequest(o, kNow)->has_until()) << "--until only without --follow";
  o.printer.format = Format::kTable;
  EXPECT_THAT(std::string(BuildEventsRequest(o, kNow).status().message()),
              HasSubstr("table output format is not compatible with follow mode"));
  o = {};
  o.since = "yesterday-ish";
  EXPECT_THAT(std::string(BuildEventsRequest(o, kNow).status().message()), HasSubstr("--since"));
}

}  // namespace
// Config file values as Go's YAML encoder writes them: plain unless they would read back as
// something else.
TEST(YamlScalarTest, QuotesWhatWouldReadBackAsSomethingElse) {
  EXPECT_EQ(YamlScalar(""), "\"\"");
  EXPECT_EQ(YamlScalar("localhost:4245"), "localhost:4245");
  EXPECT_EQ(YamlScalar("unix:///run/x.sock"), "unix:///run/x.sock");
  EXPECT_EQ(YamlScalar("-1h"), "-1h");
  EXPECT_EQ(YamlScalar("true"), "'true'");
  EXPECT_EQ(YamlScalar("4245"), "'4245'");
  EXPECT_EQ(YamlScalar("- x"), "'- x'");
  EXPECT_EQ(YamlScalar(R"({"verdict":[2]})"), R"('{"verdict":[2]}')");
  EXPECT_EQ(YamlScalar("it's"), "it's");
  EXPECT_EQ(YamlScalar("'quoted'"), "'''quoted'''");
  EXPECT_EQ(YamlScalar("a: b"), "'a: b'");
  EXPECT_EQ(YamlScalar("tab\there"), "\"tab\\there\"");
  EXPECT_EQ(YamlScalar("a\"\x01"), "\"a\\\"\\x01\"");
}

}  // namespace flowscope::cli
