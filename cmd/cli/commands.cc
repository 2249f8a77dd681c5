#include "cmd/cli/commands.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "api/grpc_status.h"
#include "api/grpc_util.h"
#include "api/text.h"
#include "api/time_parse.h"
#include "cmd/cli/json.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "observer/filter.h"
#include "observer/observer.grpc.pb.h"

namespace flowscope::cli {
namespace {

std::string RpcError(const grpc::Status& s) { return DescribeGrpcError(s); }

int Fail(std::ostream& err, const std::string& message) {
  err << "flowscope: " << message << "\n";
  return 1;
}

// The shared part of the `list` commands: check the format, connect, make one unary call.
template <typename Req, typename Resp>
absl::Status ListCall(const ServerOptions& server, const std::string& format,
                      grpc::Status (::observer::Observer::Stub::*method)(grpc::ClientContext*,
                                                                         const Req&, Resp*),
                      Resp* resp) {
  if (format != "table" && format != "wide" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid output format \"", format, "\": expected table, wide or json"));
  }
  auto channel = Dial(server);
  if (!channel.ok()) return channel.status();
  auto stub = ::observer::Observer::NewStub(*channel);
  grpc::ClientContext ctx;
  Authorize(&ctx, server);
  SetDeadline(&ctx, server.request_timeout);
  if (grpc::Status s = ((*stub).*method)(&ctx, Req(), resp); !s.ok()) {
    return absl::UnknownError(RpcError(s));
  }
  return absl::OkStatus();
}

std::string Percent(uint64_t num, uint64_t max, const absl::FormatSpec<double>& fmt) {
  return absl::StrFormat(fmt, 100.0 * static_cast<double>(num) / static_cast<double>(max));
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

absl::StatusOr<std::vector<flow::FlowFilter>> ParseRawFilters(const std::string& text) {
  std::vector<flow::FlowFilter> out;
  // Split concatenated objects at the top-level braces.
  int depth = 0;
  bool in_string = false;
  size_t start = std::string::npos;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    if (c == '{' && depth++ == 0) start = i;
    if (c == '}' && --depth == 0) {
      flow::FlowFilter f;
      const std::string obj = text.substr(start, i - start + 1);
      if (auto s = google::protobuf::util::JsonStringToMessage(obj, &f); !s.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid filter ", obj, ": ", s.message().as_string()));
      }
      out.push_back(std::move(f));
    }
    if (depth < 0) break;
  }
  if (depth != 0 || in_string || out.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid filter \"", text, "\": expected JSON FlowFilter objects"));
  }
  return out;
}

const std::vector<std::string>& DefaultFieldMask() {
  static const auto* paths = new std::vector<std::string>{"time",
                                                          "verdict",
                                                          "ethernet",
                                                          "IP",
                                                          "l4",
                                                          "source.identity",
                                                          "source.namespace",
                                                          "source.pod_name",
                                                          "destination.identity",
                                                          "destination.namespace",
                                                          "destination.pod_name",
                                                          "Type",
                                                          "node_name",
                                                          "l7",
                                                          "event_type",
                                                          "source_service",
                                                          "destination_service",
                                                          "is_reply",
                                                          "Summary",
                                                          "ip_trace_id"};
  return *paths;
}

absl::StatusOr<::observer::GetFlowsRequest> BuildRequest(const ObserveOptions& o,
                                                         const Filters& filters, absl::Time now) {
  if (o.first && (o.last || o.all || o.follow)) {
    return absl::InvalidArgumentError("--first cannot be combined with --last, --all or --follow");
  }
  if (o.last && o.all) return absl::InvalidArgumentError("--last cannot be combined with --all");
  if (o.follow && o.printer.format == Format::kTable) {
    return absl::InvalidArgumentError("--output table cannot be combined with --follow");
  }
  ::observer::GetFlowsRequest req;
  const bool times = !o.since.empty() || !o.until.empty();
  if (o.first) {
    req.set_first(true);
    req.set_number(*o.first);
  } else if (o.all) {
    req.set_number(std::numeric_limits<uint64_t>::max());
  } else if (o.last) {
    req.set_number(*o.last);
  } else if (o.follow || times) {
    req.set_number(0);
  } else {
    req.set_number(20);
  }
  req.set_follow(o.follow);
  auto set_time = [&](const std::string& text, const char* flag,
                      google::protobuf::Timestamp* ts) -> absl::Status {
    auto t = ParseHubbleTime(text, now);
    if (!t.ok()) return absl::InvalidArgumentError(absl::StrCat(flag, ": ", t.status().message()));
    const int64_t ns = absl::ToUnixNanos(*t);
    ts->set_seconds(ns / 1'000'000'000);
    ts->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
    return absl::OkStatus();
  };
  if (!o.since.empty()) {
    if (absl::Status s = set_time(o.since, "--since", req.mutable_since()); !s.ok()) return s;
  }
  if (!o.until.empty() && !o.follow) {
    if (absl::Status s = set_time(o.until, "--until", req.mutable_until()); !s.ok()) return s;
  }
  if (!o.field_mask.empty()) {
    if (o.printer.format != Format::kJson) {
      return absl::InvalidArgumentError(
          "--field-mask can only be used with --output json or jsonpb");
    }
    for (const std::string& p : o.field_mask) req.mutable_field_mask()->add_paths(p);
  } else if (o.use_default_field_masks && o.printer.format != Format::kJson) {
    for (const std::string& p : DefaultFieldMask()) req.mutable_field_mask()->add_paths(p);
    if (o.printer.print_policy_names) {
      for (const char* p :
           {"egress_allowed_by", "ingress_allowed_by", "egress_denied_by", "ingress_denied_by"}) {
        req.mutable_field_mask()->add_paths(p);
      }
    }
  }
  for (const auto& f : filters.whitelist) *req.add_whitelist() = f;
  for (const auto& f : filters.blacklist) *req.add_blacklist() = f;
  for (const std::string& raw : o.allowlist) {
    auto parsed = ParseRawFilters(raw);
    if (!parsed.ok())
      return absl::InvalidArgumentError(absl::StrCat("--allowlist: ", parsed.status().message()));
    for (auto& f : *parsed) *req.add_whitelist() = std::move(f);
  }
  for (const std::string& raw : o.denylist) {
    auto parsed = ParseRawFilters(raw);
    if (!parsed.ok())
      return absl::InvalidArgumentError(absl::StrCat("--denylist: ", parsed.status().message()));
    for (auto& f : *parsed) *req.add_blacklist() = std::move(f);
  }
  return req;
}

namespace {

// Cancels a streaming call once `*interrupted` is set (Ctrl-C), which ends the command cleanly;
// stops watching when it goes out of scope.
class CancelOnInterrupt {
 public:
  CancelOnInterrupt(grpc::ClientContext* ctx, const std::atomic<bool>* interrupted)
      : watcher_([this, ctx, interrupted] {
          while (!done_.load()) {
            if (interrupted != nullptr && interrupted->load()) {
              ctx->TryCancel();
              return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
          }
        }) {}
  ~CancelOnInterrupt() {
    done_ = true;
    watcher_.join();
  }
  CancelOnInterrupt(const CancelOnInterrupt&) = delete;
  CancelOnInterrupt& operator=(const CancelOnInterrupt&) = delete;

 private:
  std::atomic<bool> done_{false};
  std::thread watcher_;
};

}  // namespace

namespace {

// --input-file: the request applied to recorded `-o json` lines.
int ObserveFile(const ObserveOptions& o, const ::observer::GetFlowsRequest& req, std::ostream& out,
                std::ostream& err, std::atomic<bool>* interrupted) {
  auto predicate = observer::FlowPredicate::CompileForFlows(req.whitelist(), req.blacklist());
  if (!predicate.ok()) return Fail(err, std::string(predicate.status().message()));
  std::ifstream file;
  std::istream* in = &std::cin;
  if (o.input_file != "-") {
    std::error_code ec;
    if (std::filesystem::is_directory(o.input_file, ec)) {
      return Fail(err, absl::StrCat("cannot read --input-file ", o.input_file,
                                    ": is a directory, not a file"));
    }
    file.open(o.input_file);
    if (!file) {
      return Fail(
          err, absl::StrCat("cannot read --input-file ", o.input_file, ": ", std::strerror(errno)));
    }
    in = &file;
  }
  PrinterOptions po = o.printer;
  po.flush_each_line = o.follow;
  Printer printer(po, out, err);
  const bool newest = !req.first() && req.number() > 0 && !req.follow();
  const uint64_t limit = req.follow() ? 0 : req.number();
  std::deque<::observer::GetFlowsResponse> window;  // the newest N so far
  uint64_t printed = 0;
  google::protobuf::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = true;
  std::string line;
  uint64_t skipped = 0;
  for (uint64_t n = 1; std::getline(*in, line); ++n) {
    if (interrupted != nullptr && interrupted->load()) break;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    ::observer::GetFlowsResponse resp;
    if (auto s = google::protobuf::util::JsonStringToMessage(line, &resp, parse); !s.ok()) {
      // As Hubble: warn and go on with the next line.
      ++skipped;
      err << "flowscope: warning: --input-file " << o.input_file << " line " << n
          << ": not a GetFlowsResponse in JSON (" << Quote(s.message().ToString())
          << "); skipped\n";
      continue;
    }
    if (resp.has_flow()) {
      const absl::Time t = FromTimestamp(resp.has_time() ? resp.time() : resp.flow().time());
      if (req.has_since() && t < FromTimestamp(req.since())) continue;
      if (req.has_until() && t > FromTimestamp(req.until())) continue;
      if (!predicate->MatchFlow(resp.flow())) continue;
    }
    if (newest) {
      if (!resp.has_flow()) continue;  // only the newest flows are kept
      window.push_back(std::move(resp));
      if (window.size() > limit) window.pop_front();
      continue;
    }
    if (limit != 0 && resp.has_flow() && printed == limit) break;  // --first N
    if (!printer.Write(resp)) return 0;                            // closed pipe: quietly done
    printed += resp.has_flow();
  }
  if (in->bad()) {
    return Fail(err,
                absl::StrCat("reading --input-file ", o.input_file, ": ", std::strerror(errno)));
  }
  for (const auto& r : window) {
    if (!printer.Write(r)) return 0;
  }
  printer.Finish();
  if (skipped > 0) {
    err << "flowscope: warning: " << skipped << " line(s) of --input-file " << o.input_file
        << " skipped\n";
  }
  return 0;
}

}  // namespace

int Observe(const ServerOptions& server, const ObserveOptions& o, const Filters& filters,
            std::ostream& out, std::ostream& err, std::atomic<bool>* interrupted) {
  auto req = BuildRequest(o, filters, absl::Now());
  if (!req.ok()) return Fail(err, std::string(req.status().message()));
  if (o.print_raw_filters) {
    Filters all;
    all.whitelist.assign(req->whitelist().begin(), req->whitelist().end());
    all.blacklist.assign(req->blacklist().begin(), req->blacklist().end());
    out << RawFiltersYaml(all);
    return 0;
  }
  if (!o.input_file.empty()) return ObserveFile(o, *req, out, err, interrupted);
  auto channel = Dial(server);
  if (!channel.ok()) return Fail(err, std::string(channel.status().message()));
  auto stub = ::observer::Observer::NewStub(*channel);
  grpc::ClientContext ctx;
  Authorize(&ctx, server);
  CancelOnInterrupt canceller(&ctx, interrupted);
  PrinterOptions po = o.printer;
  po.flush_each_line = o.follow;  // otherwise buffered, and flushed at the end
  Printer printer(po, out, err);
  auto reader = stub->GetFlows(&ctx, *req);
  ::observer::GetFlowsResponse resp;
  bool pipe_closed = false;
  while (reader->Read(&resp)) {
    if (!printer.Write(resp)) {
      pipe_closed = true;
      ctx.TryCancel();
      break;
    }
  }
  if (pipe_closed) {
    while (reader->Read(&resp)) {
    }
  }
  const grpc::Status status = reader->Finish();
  if (pipe_closed) return 0;
  printer.Finish();
  if (status.ok() || status.error_code() == grpc::StatusCode::CANCELLED) return 0;
  return Fail(err, RpcError(status));
}

int ObserveEvents(const ServerOptions& server, bool agent, const ObserveOptions& o,
                  std::ostream& out, std::ostream& err, std::atomic<bool>* interrupted) {
  auto channel = Dial(server);
  if (!channel.ok()) return Fail(err, std::string(channel.status().message()));
  auto stub = ::observer::Observer::NewStub(*channel);
  grpc::ClientContext ctx;
  Authorize(&ctx, server);
  CancelOnInterrupt canceller(&ctx, interrupted);
  const uint64_t number = o.last.value_or(o.follow ? 0 : 20);
  grpc::Status status;
  std::string line;
  auto print = [&](const google::protobuf::Message& m) {
    line.clear();
    AppendJson(m, &line);
    out << line << "\n" << std::flush;
  };
  if (agent) {
    ::observer::GetAgentEventsRequest req;
    req.set_number(number);
    req.set_follow(o.follow);
    auto reader = stub->GetAgentEvents(&ctx, req);
    ::observer::GetAgentEventsResponse resp;
    while (reader->Read(&resp)) print(resp);
    status = reader->Finish();
  } else {
    ::observer::GetDebugEventsRequest req;
    req.set_number(number);
    req.set_follow(o.follow);
    auto reader = stub->GetDebugEvents(&ctx, req);
    ::observer::GetDebugEventsResponse resp;
    while (reader->Read(&resp)) print(resp);
    status = reader->Finish();
  }
  if (status.ok() || status.error_code() == grpc::StatusCode::CANCELLED) return 0;
  return Fail(err, RpcError(status));
}

int Status(const ServerOptions& server, Format format, std::ostream& out, std::ostream& err) {
  auto channel = Dial(server);
  if (!channel.ok())
    return Fail(err, absl::StrCat("failed getting status: ", channel.status().message()));
  {
    auto health = grpc::health::v1::Health::NewStub(*channel);
    grpc::ClientContext ctx;
    Authorize(&ctx, server);
    SetDeadline(&ctx, server.request_timeout);
    grpc::health::v1::HealthCheckRequest req;
    req.set_service("hubble.server.Observer");
    grpc::health::v1::HealthCheckResponse resp;
    const grpc::Status s = health->Check(&ctx, req, &resp);
    if (!s.ok()) return Fail(err, absl::StrCat("failed getting status: ", RpcError(s)));
    if (resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
      if (format == Format::kCompact) {
        out << "Healthcheck (via " << server.server << "): Unavailable: "
            << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) << "\n";
      }
      return Fail(err, "not healthy");
    }
    if (format == Format::kCompact) out << "Healthcheck (via " << server.server << "): Ok\n";
  }
  auto stub = ::observer::Observer::NewStub(*channel);
  grpc::ClientContext ctx;
  Authorize(&ctx, server);
  SetDeadline(&ctx, server.request_timeout);
  ::observer::ServerStatusResponse st;
  if (grpc::Status s = stub->ServerStatus(&ctx, {}, &st); !s.ok()) {
    return Fail(err, absl::StrCat("failed getting status: ", RpcError(s)));
  }
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
    case Format::kJson: {
      google::protobuf::util::JsonPrintOptions opts;
      opts.preserve_proto_field_names = true;
      std::string json;
      (void)google::protobuf::util::MessageToJsonString(st, &json, opts);
      out << json << "\n";
      break;
    }
  }
  return 0;
}

int ListNodes(const ServerOptions& server, const std::string& format, std::ostream& out,
              std::ostream& err) {
  ::observer::GetNodesResponse resp;
  if (absl::Status s = ListCall(server, format, &::observer::Observer::Stub::GetNodes, &resp);
      !s.ok()) {
    return Fail(err, std::string(s.message()));
  }
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
    return 0;
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
  return 0;
}

int ListNamespaces(const ServerOptions& server, const std::string& format, std::ostream& out,
                   std::ostream& err) {
  ::observer::GetNamespacesResponse resp;
  if (absl::Status s = ListCall(server, format, &::observer::Observer::Stub::GetNamespaces, &resp);
      !s.ok()) {
    return Fail(err, std::string(s.message()));
  }
  if (format == "json") {
    google::protobuf::util::JsonPrintOptions opts;
    opts.preserve_proto_field_names = true;
    std::string j;
    (void)google::protobuf::util::MessageToJsonString(resp, &j, opts);
    out << j << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows;
  rows.push_back(format == "wide" ? std::vector<std::string>{"CLUSTER", "NAMESPACE"}
                                  : std::vector<std::string>{"NAMESPACE"});
  for (const auto& n : resp.namespaces()) {
    rows.push_back(format == "wide" ? std::vector<std::string>{n.cluster(), n.namespace_()}
                                    : std::vector<std::string>{n.namespace_()});
  }
  out << TabWrite(rows);
  return 0;
}

int Version(const ServerOptions* server, std::ostream& out, std::ostream& err) {
  out << kClientVersion << "\n";
  if (server == nullptr) return 0;
  auto channel = Dial(*server);
  if (!channel.ok()) return Fail(err, std::string(channel.status().message()));
  auto stub = ::observer::Observer::NewStub(*channel);
  grpc::ClientContext ctx;
  Authorize(&ctx, *server);
  SetDeadline(&ctx, server->request_timeout);
  ::observer::ServerStatusResponse st;
  if (grpc::Status s = stub->ServerStatus(&ctx, {}, &st); !s.ok()) return Fail(err, RpcError(s));
  out << "server: " << st.version() << "\n";
  return 0;
}

}  // namespace flowscope::cli
