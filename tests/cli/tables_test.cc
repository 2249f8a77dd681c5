// Golden tests of `status` and `list nodes|namespaces` against Hubble's layouts (reference §6.4,
// §6.5 and Hubble's printer where the reference is silent).
#include "cmd/cli/tables.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>

#include <sstream>

namespace flowscope::cli {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

template <typename M>
M Parse(const std::string& text) {
  M m;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &m)) << text;
  return m;
}

std::string Status(const std::string& text, Format format) {
  std::ostringstream out;
  PrintStatus(Parse<::observer::ServerStatusResponse>(text), format, out);
  return out.str();
}

TEST(TablesTest, StatusCountsNodesInPlainNumbersAndRatesLikeHubble) {
  const std::string st = R"pb(
    num_flows: 4095
    max_flows: 4095
    seen_flows: 0
    uptime_ns: 2000000000
    num_connected_nodes { value: 1234 }
    num_unavailable_nodes { value: 3 }
    version: "1.0")pb";
  EXPECT_THAT(Status(st, Format::kDict), HasSubstr("NUM CONNECTED NODES: 1234\n"));
  EXPECT_THAT(Status(st, Format::kDict), HasSubstr(" NUM UNAVAIL. NODES: 3\n"));
  EXPECT_THAT(Status(st, Format::kDict), HasSubstr("          NUM FLOWS: 4,095\n"));
  EXPECT_THAT(Status(st, Format::kTable),
              HasSubstr("   1234                  3                       1.0\n"));
  // Compact: a rate from what was seen over the uptime even when nothing was; the count alone
  // when the server names no unavailable node.
  EXPECT_EQ(Status(st, Format::kCompact),
            "Current/Max Flows: 4,095/4,095 (100.00%)\n"
            "Flows/s: 0.00\n"
            "Connected Nodes: 1234/1237\n"
            "Unavailable Nodes: 3\n");
  EXPECT_THAT(Status(st + R"pb(unavailable_nodes: "b" unavailable_nodes: "a")pb", Format::kCompact),
              HasSubstr("Unavailable Nodes: 3\n  - a\n  - b\n  - and 1 more...\n"));
  // JSON: one line, fields in declaration order as protojson writes them.
  EXPECT_EQ(Status(R"pb(num_flows: 1 max_flows: 2 version: "v")pb", Format::kJson),
            R"({"num_flows":"1","max_flows":"2","version":"v"})"
            "\n");
}

std::string Nodes(const std::string& text, const std::string& format) {
  std::ostringstream out;
  PrintNodes(Parse<::observer::GetNodesResponse>(text), nullptr, format, out);
  return out.str();
}

TEST(TablesTest, ListNodesRoundsUptimeFirstAndPrintsJsonAsAnIndentedArray) {
  const std::string nodes = R"pb(
    nodes { name: "node-b" state: NODE_CONNECTED uptime_ns: 400000000 seen_flows: 10 }
    nodes {
      name: "node-a"
      version: "v1"
      address: "10.0.0.1:4244"
      state: NODE_CONNECTED
      tls {}
      uptime_ns: 1600000000
      num_flows: 5
      max_flows: 10
      seen_flows: 5
    })pb";
  EXPECT_EQ(Nodes(nodes, "table"),
            "NAME     STATUS      AGE   FLOWS/S   CURRENT/MAX-FLOWS\n"
            "node-a   Connected   2s    2.50      5/10 ( 50.00%)\n"
            "node-b   Connected   N/A   N/A       N/A\n");
  EXPECT_THAT(Nodes(nodes, "wide"), HasSubstr("   v1        10.0.0.1:4244   Disabled\n"));
  EXPECT_EQ(Nodes(nodes, "json"),
            "[\n"
            "  {\n"
            "    \"name\": \"node-a\",\n"
            "    \"version\": \"v1\",\n"
            "    \"address\": \"10.0.0.1:4244\",\n"
            "    \"state\": \"NODE_CONNECTED\",\n"
            "    \"tls\": {},\n"
            "    \"uptime_ns\": \"1600000000\",\n"
            "    \"num_flows\": \"5\",\n"
            "    \"max_flows\": \"10\",\n"
            "    \"seen_flows\": \"5\"\n"
            "  },\n"
            "  {\n"
            "    \"name\": \"node-b\",\n"
            "    \"state\": \"NODE_CONNECTED\",\n"
            "    \"uptime_ns\": \"400000000\",\n"
            "    \"seen_flows\": \"10\"\n"
            "  }\n"
            "]\n");
  EXPECT_EQ(Nodes("", "json"), "null\n") << "as Go prints an empty list";
}

TEST(TablesTest, ListNamespacesWideAndJson) {
  const auto ns = Parse<::observer::GetNamespacesResponse>(R"pb(
    namespaces { cluster: "prod" namespace: "default" }
    namespaces { namespace: "kube-system" })pb");
  std::ostringstream wide, table, json;
  PrintNamespaces(ns, "wide", wide);
  PrintNamespaces(ns, "table", table);
  PrintNamespaces(ns, "json", json);
  EXPECT_EQ(wide.str(),
            "NAMESPACE   CLUSTER\n"
            "default     prod\n"
            "kube-system\n")
      << "as Go's tabwriter: a row's last cell does not widen its column";
  EXPECT_EQ(table.str(), "NAMESPACE\ndefault\nkube-system\n");
  EXPECT_EQ(json.str(),
            "[\n  {\n    \"cluster\": \"prod\",\n    \"namespace\": \"default\"\n  },\n"
            "  {\n    \"namespace\": \"kube-system\"\n  }\n]\n");
  EXPECT_THAT(json.str(), Not(HasSubstr("namespaces")));
}

}  // namespace
}  // namespace flowscope::cli
