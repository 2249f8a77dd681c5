#include "observer/observer_service.h"

#include <google/protobuf/util/field_mask_util.h>

#include <algorithm>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "api/byte_buffer.h"
#include "api/flows_request.h"
#include "api/grpc_status.h"
#include "api/grpc_util.h"
#include "api/logging.h"
#include "api/status_macros.h"
#include "observer/flow_trim.h"

namespace flowscope::observer {
// --- streams over the ring ----------------------------------------------------------------------

// What RingStreamReactor shares between the Hubble stream (one flow per message) and the batch
// stream: the query and gRPC as the pump's transport (stream_pump.h: one write in flight,
// parking when caught up, cancellation and lifetime).
template <typename Out>
class RingStreamReactor : public grpc::ServerWriteReactor<Out>, public StreamPump {
 protected:
  // Takes over the stream slot ReserveStream() took.
  RingStreamReactor(ObserverService* service, FlowQuery query)
      : StreamPump(service->notifier_), service_(service), query_(std::move(query)) {
    query_.SetCancelFlag(&cancelled_flag());
  }
  ~RingStreamReactor() override { service_->active_streams_.fetch_sub(1); }

  uint64_t ReadPosition() const override { return query_.position(); }

  // One write in flight; no buffer hint: a buffered write would only complete when a later
  // unbuffered one flushes it, and the next write waits for this one.
  void StartWriting() override { this->StartWrite(msg_); }
  // What the next write sends, when it is not built by NewMessage().
  void SetMessage(Out* m) { msg_ = m; }
  void FinishStream(const absl::Status& status) override { this->Finish(ToGrpcStatus(status)); }

  // Each message is built in an arena that starts in a block inside the reactor and is reset
  // for the next one (the previous write has completed by then): no malloc per flow.
  Out* NewMessage() {
    arena_.Reset();
    msg_ = google::protobuf::Arena::CreateMessage<Out>(&arena_);
    return msg_;
  }

  void FillLost(const FlowQuery::Item& item, ::observer::GetFlowsResponse* resp) const {
    flow::LostEvent* lost = resp->mutable_lost_events();
    lost->set_source(item.lost.source);
    lost->set_num_events_lost(item.lost.count);
    lost->mutable_cpu()->set_value(0);
    *lost->mutable_first() = ToTimestamp(item.lost.first);
    *lost->mutable_last() = ToTimestamp(item.lost.last);
    resp->set_node_name(service_->options_.node_name);
    *resp->mutable_time() = ToTimestamp(item.lost.last);
  }

  ObserverService* service_;
  FlowQuery query_;
  FlowQuery::Item item_;

 private:
  void OnWriteDone(bool ok) override { WriteDone(ok); }
  void OnCancel() override { Cancel(); }
  void OnDone() override { Done(); }

  alignas(8) char arena_block_[16384];
  google::protobuf::Arena arena_{arena_block_, sizeof arena_block_};
  Out* msg_ = nullptr;
};

// observer.Observer/GetFlows: one flow (or lost-event notice) per message.
class FlowStreamReactor final : public RingStreamReactor<::observer::GetFlowsResponse> {
 public:
  FlowStreamReactor(ObserverService* service, FlowQuery query, const CompiledFieldMask& mask,
                    bool extensions)
      : RingStreamReactor(service, std::move(query)), mask_(mask), extensions_(extensions) {
    Pump();
  }

  bool wants_heartbeat() const override { return false; }

 private:
  Produced Produce() override {
    switch (query_.Next(service_->clock_.Now(), &item_)) {
      case FlowQuery::Step::kEnd:
        return Produced::kEnd;
      case FlowQuery::Step::kWait:
        return Produced::kWait;
      case FlowQuery::Step::kFlow: {
        ::observer::GetFlowsResponse* resp = NewMessage();
        service_->builder_.BuildResponse(item_.record, item_.position, resp, item_.run,
                                         extensions_);
        mask_.Trim(resp->mutable_flow());
        return Produced::kMessage;
      }
      case FlowQuery::Step::kLost:
        FillLost(item_, NewMessage());
        return Produced::kMessage;
    }
    return Produced::kEnd;
  }

  const FlowTrimmer mask_;  // flow fields the client wants
  const bool extensions_;   // flowscope's Flow.extensions
};

// flowscope.v1.FlowStream/GetFlowBatches: up to max_batch_events per message, each batch
// stamped with the watermark; an empty batch when idle for a heartbeat. Written encoded: a full
// flow goes straight from its record to the wire (FlowBuilder::EncodeResponse); one the client
// trims, and lost-event notices, are built and serialized.
class BatchStreamReactor final : public RingStreamReactor<grpc::ByteBuffer> {
 public:
  BatchStreamReactor(ObserverService* service, FlowQuery query, const CompiledFieldMask& mask,
                     bool extensions)
      : RingStreamReactor(service, std::move(query)), mask_(mask), extensions_(extensions) {
    service_->notifier_.AddHeartbeatStream();
    SetMessage(&buffer_);
    Pump();
  }
  ~BatchStreamReactor() override { service_->notifier_.RemoveHeartbeatStream(); }

  bool wants_heartbeat() const override { return true; }

 private:
  Produced Produce() override {
    const absl::Time now = service_->clock_.Now();
    int events = 0;
    batch_.clear();
    scratch_.Reset();
    endpoints_.Refresh(service_->table_);
    while (true) {
      if (ended_) return Produced::kEnd;
      // Loaded before the ring is looked at: records published after it are not older.
      const uint64_t promised =
          service_->options_.watermark ? service_->options_.watermark->Get() : 0;
      const FlowQuery::Step step = query_.Next(now, &item_);
      if (step == FlowQuery::Step::kEnd || step == FlowQuery::Step::kWait) {
        if (step == FlowQuery::Step::kEnd) ended_ = true;
        // Caught up: nothing older than the drain's promise can follow.
        if (step == FlowQuery::Step::kWait) watermark_ = std::max(watermark_, promised);
        // Half the interval: the notifier's beats are not exact.
        const bool heartbeat_due = now - last_sent_ >= service_->options_.heartbeat / 2;
        if (events == 0 && (ended_ || !heartbeat_due)) {
          return ended_ ? Produced::kEnd : Produced::kWait;
        }
        return Send(now);
      }
      event_.clear();
      if (step == FlowQuery::Step::kFlow) {
        // The ring is in time order: nothing after this record is older.
        watermark_ = std::max(watermark_, item_.record.time_ns);
        if (!mask_.active()) {  // encoded in place, as FlowBatch.events
          const size_t at = OpenLengthDelimited(1, &batch_);
          service_->builder_.EncodeResponse(item_.record, item_.position, &batch_, item_.run,
                                            &endpoints_, extensions_);
          CloseLengthDelimited(at, &batch_);
          if (++events >= service_->options_.max_batch_events || BatchFull()) return Send(now);
          continue;
        }
        auto* resp =
            google::protobuf::Arena::CreateMessage<::observer::GetFlowsResponse>(&scratch_);
        service_->builder_.BuildResponse(item_.record, item_.position, resp, item_.run,
                                         extensions_);
        mask_.Trim(resp->mutable_flow());
        resp->AppendToString(&event_);
      } else {
        auto* resp =
            google::protobuf::Arena::CreateMessage<::observer::GetFlowsResponse>(&scratch_);
        FillLost(item_, resp);
        // Keep the stream's times non-decreasing: the notice goes where it is noticed.
        if (absl::ToUnixNanos(item_.lost.last) < static_cast<int64_t>(watermark_)) {
          *resp->mutable_time() =
              ToTimestamp(absl::FromUnixNanos(static_cast<int64_t>(watermark_)));
        }
        resp->AppendToString(&event_);
      }
      AppendField(1, event_);  // FlowBatch.events
      if (++events >= service_->options_.max_batch_events || BatchFull()) return Send(now);
    }
  }

  bool BatchFull() const { return batch_.size() >= service_->options_.max_batch_bytes; }

  Produced Send(absl::Time now) {
    ::google::protobuf::Timestamp watermark =
        ToTimestamp(absl::FromUnixNanos(static_cast<int64_t>(watermark_)));
    event_.clear();
    watermark.AppendToString(&event_);
    AppendField(2, event_);  // FlowBatch.watermark
    buffer_ = TakeByteBuffer(&batch_);
    last_sent_ = now;
    return Produced::kMessage;
  }

  // A length-delimited field of the batch.
  void AppendField(uint32_t field, const std::string& bytes) {
    uint64_t v = (uint64_t{field} << 3) | 2;
    for (int i = 0; i < 2; ++i, v = bytes.size()) {
      while (v >= 0x80) {
        batch_.push_back(static_cast<char>(v | 0x80));
        v >>= 7;
      }
      batch_.push_back(static_cast<char>(v));
    }
    batch_.append(bytes);
  }

  const FlowTrimmer mask_;
  const bool extensions_;
  uint64_t watermark_ = 0;  // UTC ns promised so far
  absl::Time last_sent_ = absl::InfinitePast();
  bool ended_ = false;
  std::string batch_;  // the batch being built (with room for as much as the last one)
  std::string event_;
  observer::FlowBuilder::EndpointCache endpoints_;  // this stream's encoded endpoints
  google::protobuf::Arena scratch_;                 // trimmed flows and notices, reset per batch
  grpc::ByteBuffer buffer_;                         // what is being written
};

// --- service -----------------------------------------------------------------------------------

ObserverService::ObserverService(const Ring& ring, const EndpointTable& table,
                                 const FlowBuilder& builder, ObserverOptions options)
    : ring_(ring),
      table_(table),
      builder_(builder),
      options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : Clock::Real()),
      start_(clock_.Now()),
      notifier_(ring, options_.heartbeat, clock_, options_.notifier_driver) {}

ObserverService::~ObserverService() { Shutdown(); }

void ObserverService::Shutdown() { notifier_.Stop(); }

absl::StatusOr<FlowQuery> ObserverService::OpenQuery(const ::observer::GetFlowsRequest& req,
                                                     CompiledFieldMask* mask) {
  FLOWSCOPE_RETURN_IF_ERROR(CheckFlowsRequest(req));
  QueryOptions q;
  q.number = req.number();
  q.first = req.first();
  q.follow = req.follow();
  if (req.has_since()) q.since_ns = TimestampNanos(req.since());
  if (req.has_until()) q.until_ns = TimestampNanos(req.until());
  q.lost_report_interval = options_.lost_report_interval;
  q.lost_log = &lost_log_;
  q.history = options_.history;
  q.history_writer = options_.history_writer;
  if (req.has_field_mask() && req.field_mask().paths_size() > 0) {
    if (!google::protobuf::util::FieldMaskUtil::IsValidFieldMask<flow::Flow>(req.field_mask())) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid fieldmask: ", absl::StrJoin(req.field_mask().paths(), ","),
                       " (paths must name flow.Flow fields)"));
    }
    auto compiled = CompiledFieldMask::Compile(req.field_mask(), flow::Flow::descriptor());
    if (!compiled.ok()) return compiled.status();
    *mask = *std::move(compiled);
  }
  auto predicate = FlowPredicate::Compile(req.whitelist(), req.blacklist(), table_, builder_);
  if (!predicate.ok()) return predicate.status();
  return FlowQuery::Create(ring_, q, *std::move(predicate));
}

absl::Status ObserverService::ReserveStream() {
  if (active_streams_.fetch_add(1) >= options_.max_streams) {
    active_streams_.fetch_sub(1);
    return absl::ResourceExhaustedError(absl::StrCat("too many concurrent flow streams (",
                                                     options_.max_streams, "); try again later"));
  }
  return absl::OkStatus();
}

absl::StatusOr<FlowQuery> ObserverService::OpenStream(const ::observer::GetFlowsRequest& req,
                                                      CompiledFieldMask* mask) {
  FLOWSCOPE_RETURN_IF_ERROR(ReserveStream());
  auto query = OpenQuery(req, mask);
  if (!query.ok()) active_streams_.fetch_sub(1);
  return query;
}

grpc::ServerWriteReactor<::observer::GetFlowsResponse>* ObserverService::GetFlows(
    grpc::CallbackServerContext*, const ::observer::GetFlowsRequest* req) {
  CompiledFieldMask mask;
  auto query = OpenStream(*req, &mask);
  if (!query.ok()) {
    return new FinishNow<::observer::GetFlowsResponse>(ToGrpcStatus(query.status()));
  }
  return new FlowStreamReactor(this, *std::move(query), std::move(mask), WantsFlowExtensions(*req));
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* FlowBatchService::GetFlowBatches(
    grpc::CallbackServerContext*, const grpc::ByteBuffer* request) {
  ::observer::GetFlowsRequest req;
  grpc::ByteBuffer copy(*request);
  if (!grpc::SerializationTraits<::observer::GetFlowsRequest>::Deserialize(&copy, &req).ok()) {
    return new FinishNow<grpc::ByteBuffer>(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(kUndecodableRequest)));
  }
  CompiledFieldMask mask;
  auto query = observer_->OpenStream(req, &mask);
  if (!query.ok()) {
    return new FinishNow<grpc::ByteBuffer>(ToGrpcStatus(query.status()));
  }
  return new BatchStreamReactor(observer_, *std::move(query), std::move(mask),
                                WantsFlowExtensions(req));
}

grpc::ServerWriteReactor<::observer::GetAgentEventsResponse>* ObserverService::GetAgentEvents(
    grpc::CallbackServerContext* ctx, const ::observer::GetAgentEventsRequest* req) {
  return new FinishNow<::observer::GetAgentEventsResponse>(
      grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "flowscope does not produce agent events"));
}

grpc::ServerWriteReactor<::observer::GetDebugEventsResponse>* ObserverService::GetDebugEvents(
    grpc::CallbackServerContext* ctx, const ::observer::GetDebugEventsRequest* req) {
  return new FinishNow<::observer::GetDebugEventsResponse>(grpc::Status(
      grpc::StatusCode::UNIMPLEMENTED, "flowscope does not produce datapath debug events"));
}

void ObserverService::Status(absl::Time now, ::observer::ServerStatusResponse* out) const {
  out->set_num_flows(ring_.Len());
  out->set_max_flows(ring_.Cap());
  out->set_seen_flows(ring_.Written());
  out->set_uptime_ns(static_cast<uint64_t>(absl::ToInt64Nanoseconds(now - start_)));
  out->set_version(std::string(kObserverVersion));
  // Flows in the last minute per second; over the time the ring covers if that is shorter.
  const uint64_t now_ns = static_cast<uint64_t>(absl::ToUnixNanos(now));
  const uint64_t minute_ago = now_ns - 60'000'000'000ULL;
  const uint64_t end = ring_.EndPosition();
  const uint64_t from = ring_.SeekTime(minute_ago);
  const uint64_t count = end > from ? end - from : 0;
  double seconds = 60.0;
  if (auto oldest = ring_.OldestTime();
      oldest && *oldest > minute_ago && from <= ring_.OldestPosition()) {
    seconds = static_cast<double>(now_ns - std::min(now_ns, *oldest)) / 1e9;
  }
  out->set_flows_rate(count == 0 || seconds <= 0 ? 0.0 : static_cast<double>(count) / seconds);
}

grpc::ServerUnaryReactor* ObserverService::ServerStatus(grpc::CallbackServerContext* ctx,
                                                        const ::observer::ServerStatusRequest*,
                                                        ::observer::ServerStatusResponse* resp) {
  Status(clock_.Now(), resp);
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

void ObserverService::FillHistory(::flowscope::v1::NodeHistory* out) const {
  out->set_node_name(options_.node_name);
  if (options_.history == nullptr) return;
  out->set_enabled(true);
  const HistoryStore::Stats s = options_.history->stats();
  out->set_flows(s.flows);
  out->set_bytes(s.bytes);
  if (s.oldest_ns) {
    *out->mutable_oldest() = ToTimestamp(absl::FromUnixNanos(static_cast<int64_t>(*s.oldest_ns)));
  }
  out->set_recovery(options_.history->recovery());
  if (options_.history_writer != nullptr) {
    const HistoryWriter::Stats w = options_.history_writer->stats();
    out->set_written(w.written);
    out->set_lost(w.lost);
    out->set_error(w.error);
  }
}

grpc::ServerUnaryReactor* HistoryStatusService::GetHistoryStatus(
    grpc::CallbackServerContext* ctx, const ::flowscope::v1::HistoryStatusRequest*,
    ::flowscope::v1::HistoryStatusResponse* resp) {
  observer_->FillHistory(resp->add_nodes());
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ObserverService::GetNodes(grpc::CallbackServerContext* ctx,
                                                    const ::observer::GetNodesRequest*,
                                                    ::observer::GetNodesResponse* resp) {
  ::observer::ServerStatusResponse status;
  Status(clock_.Now(), &status);
  ::observer::Node* node = resp->add_nodes();
  node->set_name(options_.node_name);
  node->set_version(status.version());
  node->set_address(options_.address);
  node->set_state(relay::NODE_CONNECTED);
  node->mutable_tls()->set_enabled(options_.tls);
  node->set_uptime_ns(status.uptime_ns());
  node->set_num_flows(status.num_flows());
  node->set_max_flows(status.max_flows());
  node->set_seen_flows(status.seen_flows());
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ObserverService::GetNamespaces(grpc::CallbackServerContext* ctx,
                                                         const ::observer::GetNamespacesRequest*,
                                                         ::observer::GetNamespacesResponse* resp) {
  // Namespaces of the endpoints in the flows of the last hour that the ring still holds.
  const uint64_t hour_ago = static_cast<uint64_t>(absl::ToUnixNanos(clock_.Now() - absl::Hours(1)));
  ringbuf::RingReader<FlowRecord> reader(ring_, ring_.SeekTime(hour_ago));
  absl::flat_hash_set<uint32_t> ids;
  FlowRecord r;
  for (ringbuf::ReadStatus s; (s = reader.Next(&r)) != ringbuf::ReadStatus::kEnd;) {
    if (s != ringbuf::ReadStatus::kRecord) continue;
    ids.insert(r.src_endpoint);
    ids.insert(r.dst_endpoint);
  }
  std::set<std::pair<std::string, std::string>> namespaces;
  for (uint32_t id : ids) {
    const std::shared_ptr<const Endpoint> held = table_.Get(id);
    const Endpoint& e = *held;
    if (!e.namespace_name.empty()) namespaces.emplace(e.cluster_name, e.namespace_name);
  }
  for (const auto& [cluster, ns] : namespaces) {
    ::observer::Namespace* n = resp->add_namespaces();
    n->set_cluster(cluster);
    n->set_namespace_(ns);
  }
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace flowscope::observer
