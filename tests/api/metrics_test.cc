#include "api/metrics.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace flowscope {
namespace {

TEST(MetricsTest, TextFormatWithHelpTypeAndEscapedLabels) {
  MetricsWriter w(MetricsFormat::kText);
  w.Counter("hubble_drop_total", "Number of drops\nand a \\ backslash");
  w.Sample({{"reason", "POLICY_DENIED"}, {"protocol", "TCP"}}, 3);
  w.Sample({{"reason", "a \"quoted\"\\value\nwith a newline"}, {"protocol", ""}}, 1);
  w.Gauge("flowscope_ring_capacity", "Flows the ring holds");
  w.Sample(4095);
  EXPECT_EQ(std::move(w).Finish(),
            "# HELP hubble_drop_total Number of drops\\nand a \\\\ backslash\n"
            "# TYPE hubble_drop_total counter\n"
            "hubble_drop_total{reason=\"POLICY_DENIED\",protocol=\"TCP\"} 3\n"
            "hubble_drop_total{reason=\"a \\\"quoted\\\"\\\\value\\nwith a newline\","
            "protocol=\"\"} 1\n"
            "# HELP flowscope_ring_capacity Flows the ring holds\n"
            "# TYPE flowscope_ring_capacity gauge\n"
            "flowscope_ring_capacity 4095\n");
}

TEST(MetricsTest, OpenMetricsNamesCounterFamiliesWithoutTotalAndEnds) {
  MetricsWriter w(MetricsFormat::kOpenMetrics);
  w.Counter("hubble_flows_processed_total", "Total number of flows processed");
  const std::vector<std::string> names = {"type", "verdict"};
  const std::vector<std::string> values = {"Trace", "FORWARDED"};
  w.Sample(names, values, 12);
  EXPECT_EQ(std::move(w).Finish(),
            "# HELP hubble_flows_processed Total number of flows processed\n"
            "# TYPE hubble_flows_processed counter\n"
            "hubble_flows_processed_total{type=\"Trace\",verdict=\"FORWARDED\"} 12\n"
            "# EOF\n");
}

TEST(MetricsTest, NegotiatesWhatPrometheusAsksFor) {
  // Prometheus 2.42's scrape Accept header.
  EXPECT_EQ(NegotiateMetricsFormat("application/openmetrics-text;version=1.0.0,application/"
                                   "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0."
                                   "4;q=0.5,*/*;q=0.1"),
            MetricsFormat::kOpenMetrics);
  EXPECT_EQ(NegotiateMetricsFormat(""), MetricsFormat::kText);
  EXPECT_EQ(NegotiateMetricsFormat("*/*"), MetricsFormat::kText);
  EXPECT_EQ(NegotiateMetricsFormat("text/plain;version=0.0.4"), MetricsFormat::kText);
  EXPECT_EQ(NegotiateMetricsFormat("application/openmetrics-text;q=0"), MetricsFormat::kText);
  EXPECT_EQ(NegotiateMetricsFormat("Application/OpenMetrics-Text ; q=0.3"),
            MetricsFormat::kOpenMetrics);
  EXPECT_THAT(std::string(MetricsContentType(MetricsFormat::kOpenMetrics)),
              ::testing::StartsWith("application/openmetrics-text; version=1.0.0"));
  EXPECT_THAT(std::string(MetricsContentType(MetricsFormat::kText)),
              ::testing::StartsWith("text/plain; version=0.0.4"));
}

TEST(MetricsTest, ValuesAreIntegersOrShortestRoundTrips) {
  EXPECT_EQ(FormatMetricValue(0), "0");
  EXPECT_EQ(FormatMetricValue(18446744073709551615.0 / 4096), "4503599627370496");
  EXPECT_EQ(FormatMetricValue(1e20), "1e+20");
  EXPECT_EQ(FormatMetricValue(0.25), "0.25");
  EXPECT_EQ(FormatMetricValue(1.0 / 3), "0.3333333333333333");
  EXPECT_EQ(FormatMetricValue(-2.5), "-2.5");
  EXPECT_EQ(FormatMetricValue(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(FormatMetricValue(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(FormatMetricValue(std::nan("")), "NaN");
}

TEST(MetricsTest, CollectorsRenderInTheOrderAdded) {
  MetricsCollectors c;
  int scrapes = 0;
  c.Add([&](MetricsWriter& w) {
    w.Gauge("a", "first");
    w.Sample(++scrapes);
  });
  c.Add([](MetricsWriter& w) {
    w.Gauge("b", "second");
    w.Sample(2);
  });
  EXPECT_EQ(c.Render(MetricsFormat::kText),
            "# HELP a first\n# TYPE a gauge\na 1\n# HELP b second\n# TYPE b gauge\nb 2\n");
  EXPECT_THAT(c.Render(MetricsFormat::kOpenMetrics), ::testing::EndsWith("b 2\n# EOF\n"));
}

}  // namespace
}  // namespace flowscope
