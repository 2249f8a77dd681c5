#include "api/time_parse.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "absl/strings/str_cat.h"

namespace flowscope {
namespace {

using ::testing::HasSubstr;

absl::Time Utc(int y, int mo, int d, int h = 0, int mi = 0, int s = 0) {
  return absl::FromCivil(absl::CivilSecond(y, mo, d, h, mi, s), absl::UTCTimeZone());
}

TEST(ParseGoDurationTest, AcceptsGoSyntax) {
  struct {
    const char* in;
    absl::Duration want;
  } cases[] = {
      {"0", absl::ZeroDuration()},
      {"3s", absl::Seconds(3)},
      {"4m", absl::Minutes(4)},
      {"1h43m", absl::Hours(1) + absl::Minutes(43)},
      {"1h30m", absl::Minutes(90)},
      {"300ms", absl::Milliseconds(300)},
      {"1.5h", absl::Minutes(90)},
      {".5s", absl::Milliseconds(500)},
      {"1.s", absl::Seconds(1)},
      {"-1.5m", -absl::Seconds(90)},
      {"+2s", absl::Seconds(2)},
      {"10ns", absl::Nanoseconds(10)},
      {"7us", absl::Microseconds(7)},
      {"7\xC2\xB5s", absl::Microseconds(7)},
      {"7\xCE\xBCs", absl::Microseconds(7)},
      {"1h1m1s1ms1us1ns", absl::Hours(1) + absl::Minutes(1) + absl::Seconds(1) +
                              absl::Milliseconds(1) + absl::Microseconds(1) + absl::Nanoseconds(1)},
      {"0.000000001s", absl::Nanoseconds(1)},
      {"2562047h", absl::Hours(2562047)},
  };
  for (const auto& c : cases) {
    auto d = ParseGoDuration(c.in);
    ASSERT_TRUE(d.ok()) << c.in << ": " << d.status();
    EXPECT_EQ(*d, c.want) << c.in;
  }
}

TEST(ParseGoDurationTest, RejectsEverythingElse) {
  for (const char* in : {"", "-", "+", "s", "3", "3 m", " 3m", "3m ", "1h30", "3d", "3M", "1..5s",
                         ".s", "abc", "yesterday", "9999999999999h", "3m-1s", "1e3s"}) {
    auto d = ParseGoDuration(in);
    EXPECT_FALSE(d.ok()) << "\"" << in << "\" parsed as " << *d;
    if (!d.ok()) {
      EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(std::string(d.status().message()), HasSubstr(in));
    }
  }
  EXPECT_THAT(std::string(ParseGoDuration("1h30").status().message()), HasSubstr("missing unit"));
  EXPECT_THAT(std::string(ParseGoDuration("3d").status().message()), HasSubstr("unknown unit"));
}

TEST(ParseHubbleTimeTest, RelativeDurationsAreBeforeNow) {
  const absl::Time now = Utc(2024, 5, 4, 12, 47, 8);
  EXPECT_EQ(*ParseHubbleTime("3m", now), now - absl::Minutes(3));
  EXPECT_EQ(*ParseHubbleTime("1h30m", now), now - absl::Minutes(90));
  EXPECT_EQ(*ParseHubbleTime("0", now), now);
}

TEST(ParseHubbleTimeTest, AcceptsEveryAbsoluteLayout) {
  const absl::Time now = Utc(2030, 1, 1);
  struct {
    const char* in;
    absl::Time want;
  } cases[] = {
      {"2006-01-02", Utc(2006, 1, 2)},
      {"2006-01-02T15Z", Utc(2006, 1, 2, 15)},
      {"2006-01-02T15+07:00", Utc(2006, 1, 2, 8)},
      {"2006-01-02T15:04Z", Utc(2006, 1, 2, 15, 4)},
      {"2006-01-02T15:04-01:30", Utc(2006, 1, 2, 16, 34)},
      {"2006-01-02T15:04:05Z", Utc(2006, 1, 2, 15, 4, 5)},
      {"2006-01-02T15:04:05+07:00", Utc(2006, 1, 2, 8, 4, 5)},
      {"2006-01-02T15:04:05.999Z", Utc(2006, 1, 2, 15, 4, 5) + absl::Milliseconds(999)},
      {"2006-01-02T15:04:05.999999Z", Utc(2006, 1, 2, 15, 4, 5) + absl::Microseconds(999999)},
      {"2006-01-02T15:04:05.999999999-07:00",
       Utc(2006, 1, 2, 22, 4, 5) + absl::Nanoseconds(999999999)},
      {"Mon, 02 Jan 2006 15:04:05 -0700", Utc(2006, 1, 2, 22, 4, 5)},
      {"Mon, 02 Jan 2006 15:04:05 +0000", Utc(2006, 1, 2, 15, 4, 5)},
  };
  for (const auto& c : cases) {
    auto t = ParseHubbleTime(c.in, now);
    ASSERT_TRUE(t.ok()) << c.in << ": " << t.status();
    EXPECT_EQ(*t, c.want) << c.in << " -> " << absl::FormatTime(*t);
  }
}

TEST(ParseHubbleTimeTest, RejectsOtherInputsWithAClearMessage) {
  const absl::Time now = Utc(2030, 1, 1);
  for (const char* in :
       {"", "yesterday", "now", "2006-01-02T15:04:05", "2006-01-02 15:04:05Z", "2006-13-02",
        "2006-02-30", "2006-01-02T25Z", "06-01-02", "Jan  2 15:04:05.000", " 2006-01-02",
        "2006-01-02 ", "2006-01-02T15:04:05z", "Mon, 02 Jan 2006 15:04:05 MST", "1700000000"}) {
    auto t = ParseHubbleTime(in, now);
    EXPECT_FALSE(t.ok()) << "\"" << in << "\" parsed as " << absl::FormatTime(*t);
    if (!t.ok()) {
      EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
      const std::string msg(t.status().message());
      EXPECT_THAT(msg, HasSubstr(absl::StrCat("invalid time \"", in, "\"")));
      EXPECT_THAT(msg, HasSubstr("RFC3339"));
    }
  }
}

TEST(FormatGoDurationTest, MatchesGoDurationString) {
  struct {
    absl::Duration in;
    const char* want;
  } cases[] = {
      {absl::ZeroDuration(), "0s"},
      {absl::Nanoseconds(1), "1ns"},
      {absl::Nanoseconds(1100), "1.1\xC2\xB5s"},
      {absl::Microseconds(2200), "2.2ms"},
      {absl::Milliseconds(3300), "3.3s"},
      {absl::Seconds(60), "1m0s"},
      {absl::Minutes(4) + absl::Seconds(5), "4m5s"},
      {absl::Hours(1), "1h0m0s"},
      {absl::Hours(5) + absl::Minutes(6) + absl::Milliseconds(7001), "5h6m7.001s"},
      {absl::Nanoseconds(301515181665), "5m1.515181665s"},
      {absl::Hours(2562047) + absl::Minutes(47) + absl::Nanoseconds(16854775807),
       "2562047h47m16.854775807s"},
      {-absl::Milliseconds(1), "-1ms"},
      {-absl::Seconds(90), "-1m30s"},
  };
  for (const auto& c : cases) EXPECT_EQ(FormatGoDuration(c.in), c.want);
}

}  // namespace
}  // namespace flowscope
