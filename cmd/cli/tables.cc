#include "cmd/cli/tables.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "api/time_parse.h"

namespace flowscope::cli {
namespace {

std::string Percent(uint64_t num, uint64_t max, const absl::FormatSpec<double>& fmt) {
  return absl::StrFormat(fmt, 100.0 * static_cast<double>(num) / static_cast<double>(max));
}

// `m` in proto3 JSON with its field names as the proto spells them, on one line.
std::string JsonLine(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(m, &json, opts);
  return json + "\n";
}

}  // namespace

std::string GroupDigits(uint64_t v) {
  const std::string digits = absl::StrCat(v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

void PrintStatus(const ::observer::ServerStatusResponse& st, Format format, std::ostream& out) {
  const double uptime_s = static_cast<double>(st.uptime_ns()) / 1e9;
  auto rate = [&](bool compact) -> std::string {
    if (st.flows_rate() > 0) return absl::StrFormat("%.2f", st.flows_rate());
    if (compact && uptime_s > 0 && st.seen_flows() > 0) {
      return absl::StrFormat("%.2f", static_cast<double>(st.seen_flows()) / uptime_s);
    }
    return "N/A";
  };
  const std::string connected =
      st.has_num_connected_nodes() ? GroupDigits(st.num_connected_nodes().value()) : "N/A";
  const std::string unavailable =
      st.has_num_unavailable_nodes() ? GroupDigits(st.num_unavailable_nodes().value()) : "N/A";
  const std::string uptime =
      FormatGoDuration(absl::Nanoseconds(static_cast<int64_t>(st.uptime_ns())));
  switch (format) {
    case Format::kCompact: {
      out << "Current/Max Flows: " << GroupDigits(st.num_flows()) << "/"
          << GroupDigits(st.max_flows());
      if (st.max_flows() > 0)
        out << " (" << Percent(st.num_flows(), st.max_flows(), "%.2f") << "%)";
      out << "\nFlows/s: " << rate(true) << "\n";
      if (st.has_num_connected_nodes()) {
        out << "Connected Nodes: " << st.num_connected_nodes().value();
        if (st.has_num_unavailable_nodes()) {
          out << "/" << st.num_connected_nodes().value() + st.num_unavailable_nodes().value();
        }
        out << "\n";
      }
      if (st.has_num_unavailable_nodes() && st.num_unavailable_nodes().value() > 0) {
        out << "Unavailable Nodes: " << st.num_unavailable_nodes().value() << "\n";
        std::vector<std::string> names(st.unavailable_nodes().begin(),
                                       st.unavailable_nodes().end());
        std::sort(names.begin(), names.end());
        for (const std::string& n : names) out << "  - " << n << "\n";
        if (st.num_unavailable_nodes().value() > names.size()) {
          out << "  - and " << st.num_unavailable_nodes().value() - names.size() << " more...\n";
        }
      }
      break;
    }
    case Format::kDict:
      out << "          NUM FLOWS: " << GroupDigits(st.num_flows()) << "\n"
          << "          MAX FLOWS: " << GroupDigits(st.max_flows()) << "\n"
          << "         SEEN FLOWS: " << GroupDigits(st.seen_flows()) << "\n"
          << "   FLOWS PER SECOND: " << rate(false) << "\n"
          << "             UPTIME: " << uptime << "\n"
          << "NUM CONNECTED NODES: " << connected << "\n"
          << " NUM UNAVAIL. NODES: " << unavailable << "\n"
          << "            VERSION: " << st.version() << "\n";
      break;
    case Format::kTable:
      out << TabWrite(
          {{"NUM FLOWS", "MAX FLOWS", "SEEN FLOWS", "FLOWS PER SECOND", "UPTIME",
            "NUM CONNECTED NODES", "NUM UNAVAILABLE NODES", "VERSION"},
           {GroupDigits(st.num_flows()), GroupDigits(st.max_flows()), GroupDigits(st.seen_flows()),
            rate(false), uptime, connected, unavailable, st.version()}});
      break;
    case Format::kJson:
      out << JsonLine(st);
      break;
  }
}

void PrintNodes(const ::observer::GetNodesResponse& resp, const std::string& format,
                std::ostream& out) {
  std::vector<::observer::Node> nodes(resp.nodes().begin(), resp.nodes().end());
  std::sort(nodes.begin(), nodes.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  if (format == "json") {
    google::protobuf::util::JsonPrintOptions opts;
    opts.preserve_proto_field_names = true;
    opts.add_whitespace = true;
    std::vector<std::string> items;
    for (const auto& n : nodes) {
      std::string j;
      (void)google::protobuf::util::MessageToJsonString(n, &j, opts);
      // Indent each object one level inside the array.
      std::string indented =
          "  " + absl::StrReplaceAll(absl::StripTrailingAsciiWhitespace(j), {{"\n", "\n  "}});
      items.push_back(indented);
    }
    out << "[\n" << absl::StrJoin(items, ",\n") << (items.empty() ? "" : "\n") << "]\n";
    return;
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"NAME", "STATUS", "AGE", "FLOWS/S", "CURRENT/MAX-FLOWS"};
  if (format == "wide") header.insert(header.end(), {"VERSION", "ADDRESS", "TLS"});
  rows.push_back(header);
  for (const auto& n : nodes) {
    std::string state;
    switch (n.state()) {
      case relay::NODE_CONNECTED:
        state = "Connected";
        break;
      case relay::NODE_UNAVAILABLE:
        state = "Unavailable";
        break;
      case relay::NODE_GONE:
        state = "Gone";
        break;
      case relay::NODE_ERROR:
        state = "Error";
        break;
      default:
        state = "Unknown";
        break;
    }
    const int64_t secs = static_cast<int64_t>((n.uptime_ns() + 500'000'000) / 1'000'000'000);
    const std::string age = n.uptime_ns() == 0 ? "N/A" : FormatGoDuration(absl::Seconds(secs));
    const double up = static_cast<double>(n.uptime_ns()) / 1e9;
    const std::string rate =
        up > 0 ? absl::StrFormat("%.2f", static_cast<double>(n.seen_flows()) / up) : "N/A";
    const std::string flows =
        n.max_flows() == 0 ? "N/A"
                           : absl::StrCat(n.num_flows(), "/", n.max_flows(), " (",
                                          Percent(n.num_flows(), n.max_flows(), "%6.2f"), "%)");
    std::vector<std::string> row = {n.name(), state, age, rate, flows};
    if (format == "wide") {
      row.push_back(n.version().empty() ? "N/A" : n.version());
      row.push_back(n.address());
      row.push_back(!n.has_tls() ? "N/A" : n.tls().enabled() ? "Enabled" : "Disabled");
    }
    rows.push_back(std::move(row));
  }
  out << TabWrite(rows);
}

void PrintNamespaces(const ::observer::GetNamespacesResponse& resp, const std::string& format,
                     std::ostream& out) {
  if (format == "json") {
    out << JsonLine(resp);
    return;
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back(format == "wide" ? std::vector<std::string>{"CLUSTER", "NAMESPACE"}
                                  : std::vector<std::string>{"NAMESPACE"});
  for (const auto& n : resp.namespaces()) {
    rows.push_back(format == "wide" ? std::vector<std::string>{n.cluster(), n.namespace_()}
                                    : std::vector<std::string>{n.namespace_()});
  }
  out << TabWrite(rows);
}

}  // namespace flowscope::cli
