#include "cmd/cli/commands.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/wire_format_lite.h>
#include <grpcpp/grpcpp.h>
#include <yaml-cpp/yaml.h>

#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <limits>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

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
#include "api/json.h"
#include "api/text.h"
#include "api/time_parse.h"
#include "flowscope/v1/flowscope.grpc.pb.h"
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

// The nodes' flow histories (flowscope.v1.History); nullopt from a server without it (Hubble).
std::optional<::flowscope::v1::HistoryStatusResponse> GetHistory(const ServerOptions& server) {
  auto channel = Dial(server);
  if (!channel.ok()) return std::nullopt;
  auto stub = ::flowscope::v1::History::NewStub(*channel);
  grpc::ClientContext ctx;
  Authorize(&ctx, server);
  SetDeadline(&ctx, server.request_timeout);
  ::flowscope::v1::HistoryStatusResponse resp;
  if (!stub->GetHistoryStatus(&ctx, {}, &resp).ok()) return std::nullopt;
  return resp;
}

}  // namespace

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

// Each event of an encoded flowscope.v1.FlowBatch (field 1, GetFlowsResponse bytes), in order,
// until `fn` returns false. Returns false if the batch is malformed.
template <typename Fn>
bool ForEachBatchEvent(absl::string_view batch, Fn fn) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(batch.data()),
                                            static_cast<int>(batch.size()));
  while (const uint32_t tag = in.ReadTag()) {
    using google::protobuf::internal::WireFormatLite;
    if (tag != WireFormatLite::MakeTag(1, WireFormatLite::WIRETYPE_LENGTH_DELIMITED)) {
      if (!WireFormatLite::SkipField(&in, tag)) return false;
      continue;
    }
    uint32_t len = 0;
    if (!in.ReadVarint32(&len) || len > batch.size()) return false;
    const int start = in.CurrentPosition();
    if (!in.Skip(static_cast<int>(len))) return false;
    if (!fn(batch.substr(static_cast<size_t>(start), len))) return true;
  }
  return in.CurrentPosition() == static_cast<int>(batch.size());
}

// A stream read on a thread of its own, a few messages ahead of the printing: gRPC's sync API
// reads the socket only inside Read(), so a large dump printed between reads held the server
// back (both processes took turns instead of running side by side). Without a thread (none to
// be had), it reads in the caller's.
template <typename M>
class ReadAhead {
 public:
  explicit ReadAhead(grpc::ClientReaderInterface<M>* reader) : reader_(reader) {
    try {
      thread_ = std::thread([this] { Run(); });
    } catch (const std::system_error&) {
      inline_ = true;
    }
  }
  ~ReadAhead() { Join(); }

  // The next message; false at the end of the stream.
  bool Next(M* out) {
    if (inline_) return reader_->Read(out);
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return !queue_.empty() || ended_; });
    if (queue_.empty()) return false;
    *out = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    return true;
  }

  // After Next() returned false: the reading thread is done.
  void Join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  static constexpr size_t kDepth = 8;

  void Run() {
    M m;
    while (reader_->Read(&m)) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return queue_.size() < kDepth; });
      queue_.push_back(std::move(m));
      cv_.notify_all();
    }
    std::lock_guard<std::mutex> lock(mu_);
    ended_ = true;
    cv_.notify_all();
  }

  grpc::ClientReaderInterface<M>* const reader_;
  bool inline_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<M> queue_;
  bool ended_ = false;
  std::thread thread_;
};

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
  if (!o.input_file.empty()) {
    // A file is read whole unless a count is asked for: the last-20 default is a server's.
    if (!o.last && !o.first && !o.all) req->set_number(0);
    return ObserveFile(o, *req, out, err, interrupted);
  }
  auto channel = Dial(server);
  if (!channel.ok()) return Fail(err, std::string(channel.status().message()));
  PrinterOptions po = o.printer;
  po.flush_each_line = o.follow;  // otherwise buffered, and flushed at the end
  Printer printer(po, out, err);
  bool pipe_closed = false;
  // One call: every response printed as it comes (`each` hands them over), until the end, the
  // interrupt or a closed pipe. Returns the call's status and whether anything came.
  const auto run = [&](auto type, auto open, auto each) {
    grpc::ClientContext ctx;
    Authorize(&ctx, server);
    CancelOnInterrupt canceller(&ctx, interrupted);
    auto reader = open(&ctx);
    typename decltype(type)::type msg;
    bool any = false;
    ReadAhead<typename decltype(type)::type> ahead(reader.get());
    while (ahead.Next(&msg)) {
      if (!any) WarnIfServerIsNewer(ctx, err);
      any = true;
      if (pipe_closed) continue;  // read to the end of what was cancelled
      if (!each(msg, [&](const ::observer::GetFlowsResponse& r) { return printer.Write(r); })) {
        pipe_closed = true;
        ctx.TryCancel();
      }
    }
    ahead.Join();
    grpc::Status status = reader->Finish();
    if (!any && !pipe_closed && status.error_code() != grpc::StatusCode::UNIMPLEMENTED) {
      WarnIfServerIsNewer(ctx, err);
    }
    return std::make_pair(status, any);
  };
  // flowscope's batched stream (many flows per message: a large dump is not held to gRPC's
  // per-message cost), and Hubble's GetFlows from a server that does not have it.
  // The batches are read as bytes, their events left encoded (a FlowBatch's field 1): -o json is
  // written from them, and nothing is copied per event.
  static const grpc::internal::RpcMethod kGetFlowBatches(
      "/flowscope.v1.FlowStream/GetFlowBatches", grpc::internal::RpcMethod::SERVER_STREAMING);
  std::string flat;
  auto [status, any] = run(
      std::type_identity<grpc::ByteBuffer>{},
      [&](grpc::ClientContext* ctx) {
        return std::unique_ptr<grpc::ClientReader<grpc::ByteBuffer>>(
            grpc::internal::ClientReaderFactory<grpc::ByteBuffer>::Create(
                channel->get(), kGetFlowBatches, ctx, *req));
      },
      [&](const grpc::ByteBuffer& b, auto) {
        std::vector<grpc::Slice> slices;
        flat.clear();
        if (b.Dump(&slices).ok()) {
          for (const grpc::Slice& slice : slices) {
            flat.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
          }
        }
        bool open = true;
        const bool whole = ForEachBatchEvent(
            flat, [&](absl::string_view event) { return open = printer.WriteEncoded(event); });
        if (!whole) err << "skipping the rest of a batch that does not decode\n";
        return open;
      });
  if (!any && status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
    auto stub = ::observer::Observer::NewStub(*channel);
    status = run(
                 std::type_identity<::observer::GetFlowsResponse>{},
                 [&](grpc::ClientContext* ctx) { return stub->GetFlows(ctx, *req); },
                 [](const ::observer::GetFlowsResponse& r, auto write) { return write(r); })
                 .first;
  }
  if (pipe_closed) return 0;
  printer.Finish();
  if (status.ok() || status.error_code() == grpc::StatusCode::CANCELLED) return 0;
  return Fail(err, RpcError(status));
}

int ObserveEvents(const ServerOptions& server, bool agent, const ObserveOptions& o,
                  std::ostream& out, std::ostream& err, std::atomic<bool>* interrupted) {
  auto req = BuildEventsRequest(o, absl::Now());
  if (!req.ok()) return Fail(err, std::string(req.status().message()));
  auto channel = Dial(server);
  if (!channel.ok()) return Fail(err, std::string(channel.status().message()));
  auto stub = ::observer::Observer::NewStub(*channel);
  grpc::ClientContext ctx;
  Authorize(&ctx, server);
  CancelOnInterrupt canceller(&ctx, interrupted);
  Printer printer(o.printer, out, err);
  bool pipe_closed = false;
  // Either kind of stream: the request's window, then every response printed.
  const auto stream = [&](auto request, auto resp, auto open, auto write) {
    request.set_number(req->number());
    request.set_follow(req->follow());
    if (req->has_since()) *request.mutable_since() = req->since();
    if (req->has_until()) *request.mutable_until() = req->until();
    auto reader = open(request);
    while (reader->Read(&resp)) {
      if (!pipe_closed && !write(resp)) {
        pipe_closed = true;
        ctx.TryCancel();
      }
    }
    return reader->Finish();
  };
  const grpc::Status status =
      agent ? stream(
                  ::observer::GetAgentEventsRequest(), ::observer::GetAgentEventsResponse(),
                  [&](const auto& r) { return stub->GetAgentEvents(&ctx, r); },
                  [&](const auto& r) { return printer.WriteAgentEvent(r); })
            : stream(
                  ::observer::GetDebugEventsRequest(), ::observer::GetDebugEventsResponse(),
                  [&](const auto& r) { return stub->GetDebugEvents(&ctx, r); },
                  [&](const auto& r) { return printer.WriteDebugEvent(r); });
  if (pipe_closed) return 0;
  WarnIfServerIsNewer(ctx, err);
  printer.Finish();
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
    // The target as dialled: without the tls:// scheme, as Hubble shows it.
    absl::string_view via = server.server;
    absl::ConsumePrefix(&via, "tls://");
    if (resp.status() != grpc::health::v1::HealthCheckResponse::SERVING) {
      if (format == Format::kCompact) {
        out << "Healthcheck (via " << via << "): Unavailable: "
            << grpc::health::v1::HealthCheckResponse::ServingStatus_Name(resp.status()) << "\n";
      }
      return Fail(err, "not healthy");
    }
    if (format == Format::kCompact) out << "Healthcheck (via " << via << "): Ok\n";
  }
  auto stub = ::observer::Observer::NewStub(*channel);
  grpc::ClientContext ctx;
  Authorize(&ctx, server);
  SetDeadline(&ctx, server.request_timeout);
  ::observer::ServerStatusResponse st;
  if (grpc::Status s = stub->ServerStatus(&ctx, {}, &st); !s.ok()) {
    return Fail(err, absl::StrCat("failed getting status: ", RpcError(s)));
  }
  WarnIfServerIsNewer(ctx, err);
  PrintStatus(st, format, out);
  if (format == Format::kCompact) {
    if (auto history = GetHistory(server)) PrintHistory(*history, absl::Now(), out);
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
  const auto history = format == "json" ? std::nullopt : GetHistory(server);
  PrintNodes(resp, history ? &*history : nullptr, format, out);
  return 0;
}

int ListNamespaces(const ServerOptions& server, const std::string& format, std::ostream& out,
                   std::ostream& err) {
  ::observer::GetNamespacesResponse resp;
  if (absl::Status s = ListCall(server, format, &::observer::Observer::Stub::GetNamespaces, &resp);
      !s.ok()) {
    return Fail(err, std::string(s.message()));
  }
  PrintNamespaces(resp, format, out);
  return 0;
}

int Version(const ServerOptions* server, std::ostream& out, std::ostream& err) {
  out << BuildInfo("flowscope") << "\n";
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
