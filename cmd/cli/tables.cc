#include "cmd/cli/tables.h"

#include <algorithm>
#include <optional>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "api/json.h"
#include "api/time_parse.h"

namespace flowscope::cli {
namespace {

std::string Percent(uint64_t num, uint64_t max, const absl::FormatSpec<double>& fmt) {
  return absl::StrFormat(fmt, 100.0 * static_cast<double>(num) / static_cast<double>(max));
}

// `m` in proto3 JSON as protojson writes it (proto field names, declaration order), on one line.
std::string JsonLine(const google::protobuf::Message& m) {
  std::string json;
  AppendJson(m, &json);
  return json + "\n";
}

// Compact JSON indented as Go's json.MarshalIndent(v, "", "  ") lays it out: one member or
// element per line, "key": value, empty objects and arrays as {} and [].
std::string IndentJson(absl::string_view compact) {
  std::string out;
  int depth = 0;
  bool in_string = false;
  const auto newline = [&] {
    out.push_back('\n');
    out.append(static_cast<size_t>(2 * depth), ' ');
  };
  for (size_t i = 0; i < compact.size(); ++i) {
    const char c = compact[i];
    if (in_string) {
      out.push_back(c);
      if (c == '\\' && i + 1 < compact.size()) {
        out.push_back(compact[++i]);
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        out.push_back(c);
        break;
      case '{':
      case '[':
        out.push_back(c);
        if (i + 1 < compact.size() && (compact[i + 1] == '}' || compact[i + 1] == ']')) {
          out.push_back(compact[++i]);
          break;
        }
        ++depth;
        newline();
        break;
      case '}':
      case ']':
        --depth;
        newline();
        out.push_back(c);
        break;
      case ',':
        out.push_back(c);
        newline();
        break;
      case ':':
        out.append(": ");
        break;
      default:
        out.push_back(c);
    }
  }
  return out;
}

// A list as Hubble's `list ... -o json` prints it: an indented array, `null` when empty.
template <typename M>
std::string JsonArray(const std::vector<M>& items) {
  if (items.empty()) return "null\n";
  std::string compact = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) compact.push_back(',');
    AppendJson(items[i], &compact);
  }
  compact.push_back(']');
  return IndentJson(compact) + "\n";
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
    if (compact && uptime_s > 0) {
      return absl::StrFormat("%.2f", static_cast<double>(st.seen_flows()) / uptime_s);
    }
    return "N/A";
  };
  // Plain numbers, as Hubble prints node counts.
  const std::string connected =
      st.has_num_connected_nodes() ? absl::StrCat(st.num_connected_nodes().value()) : "N/A";
  const std::string unavailable =
      st.has_num_unavailable_nodes() ? absl::StrCat(st.num_unavailable_nodes().value()) : "N/A";
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
        // Without names, only the count (as Hubble).
        if (!names.empty() && st.num_unavailable_nodes().value() > names.size()) {
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

namespace {

std::string Bytes(uint64_t b) {
  if (b < 1024) return absl::StrCat(b, " B");
  const char* units[] = {"KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b) / 1024;
  size_t u = 0;
  while (v >= 1024 && u + 1 < 4) {
    v /= 1024;
    ++u;
  }
  return absl::StrFormat("%.1f %s", v, units[u]);
}

// How far back a history reaches, rounded to the second.
std::string Reach(const ::flowscope::v1::NodeHistory& h, absl::Time now) {
  if (!h.has_oldest()) return "";
  const absl::Time oldest = absl::FromUnixSeconds(h.oldest().seconds());
  return FormatGoDuration(
      absl::Seconds(absl::ToInt64Seconds(std::max(now - oldest, absl::ZeroDuration()))));
}

}  // namespace

std::string HistoryCell(const ::flowscope::v1::NodeHistory* h, absl::Time now) {
  if (h == nullptr) return "N/A";
  if (!h->enabled()) return "off";
  std::string cell = absl::StrCat(GroupDigits(h->flows()), " flows");
  if (const std::string reach = Reach(*h, now); !reach.empty()) absl::StrAppend(&cell, ", ", reach);
  absl::StrAppend(&cell, " (", Bytes(h->bytes()), ")");
  if (!h->error().empty()) absl::StrAppend(&cell, ", paused");
  return cell;
}

void PrintHistory(const ::flowscope::v1::HistoryStatusResponse& history, absl::Time now,
                  std::ostream& out) {
  uint64_t flows = 0, bytes = 0;
  int enabled = 0;
  std::optional<int64_t> oldest;
  for (const auto& n : history.nodes()) {
    if (!n.enabled()) continue;
    ++enabled;
    flows += n.flows();
    bytes += n.bytes();
    if (n.has_oldest() && (!oldest || n.oldest().seconds() < *oldest)) {
      oldest = n.oldest().seconds();
    }
  }
  if (enabled == 0) return;
  out << "History: " << GroupDigits(flows) << " flows on " << enabled
      << (enabled == 1 ? " node" : " nodes");
  if (oldest) {
    out << ", since "
        << absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixSeconds(*oldest),
                            absl::UTCTimeZone())
        << " ("
        << FormatGoDuration(absl::Seconds(absl::ToInt64Seconds(
               std::max(now - absl::FromUnixSeconds(*oldest), absl::ZeroDuration()))))
        << ")";
  }
  out << ", " << Bytes(bytes) << " on disk\n";
  for (const auto& n : history.nodes()) {
    if (!n.error().empty())
      out << "  - " << n.node_name() << ": writes paused: " << n.error() << "\n";
    if (n.lost() > 0) {
      out << "  - " << n.node_name() << ": " << GroupDigits(n.lost())
          << " flows could not be stored\n";
    }
    if (!n.recovery().empty()) out << "  - " << n.node_name() << ": " << n.recovery() << "\n";
  }
}

void PrintNodes(const ::observer::GetNodesResponse& resp,
                const ::flowscope::v1::HistoryStatusResponse* history, const std::string& format,
                std::ostream& out) {
  std::vector<::observer::Node> nodes(resp.nodes().begin(), resp.nodes().end());
  std::sort(nodes.begin(), nodes.end(),
            [](const auto& a, const auto& b) { return a.name() < b.name(); });
  if (format == "json") {
    out << JsonArray(nodes);
    return;
  }
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> header = {"NAME", "STATUS", "AGE", "FLOWS/S", "CURRENT/MAX-FLOWS"};
  if (history != nullptr) header.push_back("HISTORY");
  if (format == "wide") header.insert(header.end(), {"VERSION", "ADDRESS", "TLS"});
  const absl::Time now = absl::Now();
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
    // Uptime rounded to seconds first (as Hubble): both columns are N/A below half a second.
    const int64_t secs = static_cast<int64_t>((n.uptime_ns() + 500'000'000) / 1'000'000'000);
    const std::string age = secs == 0 ? "N/A" : FormatGoDuration(absl::Seconds(secs));
    const std::string rate = secs == 0
                                 ? "N/A"
                                 : absl::StrFormat("%.2f", static_cast<double>(n.seen_flows()) /
                                                               static_cast<double>(secs));
    const std::string flows =
        n.max_flows() == 0 ? "N/A"
                           : absl::StrCat(n.num_flows(), "/", n.max_flows(), " (",
                                          Percent(n.num_flows(), n.max_flows(), "%6.2f"), "%)");
    std::vector<std::string> row = {n.name(), state, age, rate, flows};
    if (history != nullptr) {
      const ::flowscope::v1::NodeHistory* h = nullptr;
      for (const auto& x : history->nodes()) {
        if (x.node_name() == n.name()) h = &x;
      }
      row.push_back(HistoryCell(h, now));
    }
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
    out << JsonArray(
        std::vector<::observer::Namespace>(resp.namespaces().begin(), resp.namespaces().end()));
    return;
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back(format == "wide" ? std::vector<std::string>{"NAMESPACE", "CLUSTER"}
                                  : std::vector<std::string>{"NAMESPACE"});
  for (const auto& n : resp.namespaces()) {
    std::vector<std::string> row = {n.namespace_()};
    if (format == "wide" && !n.cluster().empty()) row.push_back(n.cluster());
    rows.push_back(std::move(row));
  }
  out << TabWrite(rows);
}

}  // namespace flowscope::cli
