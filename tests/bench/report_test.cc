#include "tests/bench/report.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace flowscope::bench {
namespace {

TEST(ReportTest, MedianOfOddEvenAndEmpty) {
  EXPECT_EQ(Median({5, 1, 3}), 3);
  EXPECT_EQ(Median({4, 1, 3, 2}), 2.5);
  EXPECT_EQ(Median({}), 0);
}

TEST(ReportTest, RatioTargetsAndJsonLine) {
  FigureResult r =
      MakeFigure("B2", "ring_write_ns_0_readers", "ns/record", {6.0, 6.2, 5.9},
                 std::vector<double>{3.9, 4.0, 3.8}, {Target::AtMostTimesBaseline(2.0)});
  EXPECT_DOUBLE_EQ(r.ours, 6.0);
  EXPECT_DOUBLE_EQ(*r.baseline, 3.9);
  EXPECT_TRUE(r.Met());
  const auto j = nlohmann::json::parse(FormatJsonLine(r));
  EXPECT_EQ(j["id"], "B2");
  EXPECT_EQ(j["figure"], "ring_write_ns_0_readers");
  EXPECT_EQ(j["unit"], "ns/record");
  EXPECT_DOUBLE_EQ(j["ours"].get<double>(), 6.0);
  EXPECT_DOUBLE_EQ(j["ratio"].get<double>(), 6.0 / 3.9);
  EXPECT_EQ(j["target"], "<= 2x baseline");
  EXPECT_EQ(j["met"], true);
  EXPECT_EQ(j["runs"], 3);

  r.ours = 9.0;
  EXPECT_FALSE(r.Met()) << "9 > 2 x 3.9";
}

TEST(ReportTest, FigureWithoutBaselineHasNullRatioAndAbsoluteTarget) {
  FigureResult r = MakeFigure("B4", "since_seek_1m_ring", "us", {3, 4, 5}, std::nullopt,
                              {Target::AtMost(10, "us")});
  const auto j = nlohmann::json::parse(FormatJsonLine(r));
  EXPECT_TRUE(j["baseline"].is_null());
  EXPECT_TRUE(j["ratio"].is_null());
  EXPECT_EQ(j["target"], "<= 10 us");
  EXPECT_TRUE(r.Met());
  FigureResult both =
      MakeFigure("B1", "ingest", "events/s", {9e5}, std::vector<double>{1e6},
                 {Target::AtLeastTimesBaseline(0.5), Target::AtLeast(1e6, "events/s")});
  EXPECT_FALSE(both.Met()) << "ratio met but the absolute floor is not";
  EXPECT_EQ(both.TargetText(), ">= 0.5x baseline, >= 1M events/s");
}

TEST(ReportTest, NumbersAreShortAndReadable) {
  EXPECT_EQ(FormatNumber(1024), "1024");
  EXPECT_EQ(FormatNumber(17.77), "17.8");
  EXPECT_EQ(FormatNumber(0.994), "0.994");
  EXPECT_EQ(FormatNumber(229000), "229k");
  EXPECT_EQ(FormatNumber(2.3e6), "2.3M");
  EXPECT_EQ(FormatNumber(4.7e10), "47G");
}

TEST(ReportTest, TableAlignsColumnsAndMarksMisses) {
  FigureResult a = MakeFigure("B4", "seek", "us", {3}, std::nullopt, {Target::AtMost(10, "us")});
  FigureResult b = MakeFigure("B6", "getflows_flows_per_s", "flows/s", {150000}, std::nullopt,
                              {Target::AtLeast(200000, "flows/s")});
  const std::string table = FormatTable({a, b});
  EXPECT_EQ(table.substr(0, table.find('\n')).find("id   figure"), 0u) << table;
  EXPECT_NE(table.find("B6   getflows_flows_per_s   flows/s   150k"), std::string::npos) << table;
  EXPECT_NE(table.find("NO"), std::string::npos);
  EXPECT_NE(table.find("yes"), std::string::npos);
}

}  // namespace
}  // namespace flowscope::bench
