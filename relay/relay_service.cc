#include "relay/relay_service.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "api/flows_request.h"
#include "api/grpc_status.h"
#include "api/grpc_util.h"
#include "api/logging.h"
#include "api/task_limit.h"
#include "relay/flow_stream.h"

namespace flowscope::relay {

void RelayService::ReportMergeLag(const void* stream, absl::Duration lag) {
  std::lock_guard<std::mutex> lock(lag_mu_);
  merge_lag_[stream] = lag;
}

void RelayService::ForgetMergeLag(const void* stream) {
  std::lock_guard<std::mutex> lock(lag_mu_);
  merge_lag_.erase(stream);
}

absl::Duration RelayService::max_merge_lag() const {
  std::lock_guard<std::mutex> lock(lag_mu_);
  absl::Duration out = absl::ZeroDuration();
  for (const auto& [stream, lag] : merge_lag_) out = std::max(out, lag);
  return out;
}

namespace {
// How often open streams take a step though nothing arrived: heartbeats, timeouts, new peers.
constexpr absl::Duration kTick = absl::Milliseconds(10);
}  // namespace

RelayService::RelayService(PeerPool& pool, RelayOptions options)
    : pool_(pool),
      options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : Clock::Real()),
      batch_service_(this),
      workers_(std::max(1, options_.workers), kTick, [this] { WakeStreams(); }) {
  if (!workers_.running()) {
    FLOWSCOPE_LOG_ERROR("relay workers: {}; flow streams will be refused", workers_.error());
  }
}

RelayService::~RelayService() { Shutdown(); }

void RelayService::Shutdown() {
  stopping_.store(true, std::memory_order_release);
  std::vector<std::shared_ptr<StreamHandle>> open;
  {
    std::lock_guard<std::mutex> lock(streams_mu_);
    for (auto& [key, weak] : streams_) {
      if (auto s = weak.lock()) open.push_back(std::move(s));
    }
  }
  for (auto& s : open) {
    s->CancelPeers();
    s->Wake();  // ends it: the client hears UNAVAILABLE
  }
  open.clear();
  {
    std::unique_lock<std::mutex> lock(streams_mu_);
    streams_cv_.wait(lock, [this] { return active_streams_.load() == 0; });
  }
  workers_.Stop();
}

void RelayService::Register(const std::shared_ptr<StreamHandle>& stream) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  streams_[stream.get()] = stream;
}

void RelayService::StreamGone(const StreamHandle* stream) {
  std::lock_guard<std::mutex> lock(streams_mu_);
  streams_.erase(stream);
  active_streams_.fetch_sub(1);
  streams_cv_.notify_all();
}

void RelayService::WakeStreams() {
  std::vector<std::shared_ptr<StreamHandle>> open;
  {
    std::lock_guard<std::mutex> lock(streams_mu_);
    open.reserve(streams_.size());
    for (auto& [key, weak] : streams_) {
      if (auto s = weak.lock()) open.push_back(std::move(s));
    }
  }
  for (auto& s : open) s->Wake();
  // `open` may hold the last reference of a stream: it goes here, outside the lock.
}

std::optional<grpc::Status> RelayService::Refusal() const {
  if (options_.min_task_headroom <= 0) return std::nullopt;
  const std::optional<TaskUse> use = TightestTaskLimit();
  if (!use || use->headroom() >= options_.min_task_headroom) return std::nullopt;
  FLOWSCOPE_LOG_WARN("refusing a call: {} of {} tasks in use under {} (keeping {} free)",
                     use->current, use->max, use->cgroup, options_.min_task_headroom);
  return grpc::Status(
      grpc::StatusCode::RESOURCE_EXHAUSTED,
      absl::StrCat("the relay is near its task limit (", use->current, " of ", use->max,
                   " tasks in use under ", use->cgroup, "); try again later"));
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* RelayService::OpenStream(
    const grpc::ByteBuffer* request, bool batched) {
  ::observer::GetFlowsRequest req;
  grpc::ByteBuffer copy(*request);
  if (!grpc::SerializationTraits<::observer::GetFlowsRequest>::Deserialize(&copy, &req).ok()) {
    return new FinishNow<grpc::ByteBuffer>(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(kUndecodableRequest)));
  }
  if (absl::Status s = CheckFlowsRequest(req); !s.ok()) {
    return new FinishNow<grpc::ByteBuffer>(ToGrpcStatus(s));
  }
  const auto refuse = [](std::string why) {
    return new FinishNow<grpc::ByteBuffer>(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, std::move(why)));
  };
  if (stopping()) {
    return new FinishNow<grpc::ByteBuffer>(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "the relay is shutting down"));
  }
  if (!workers_.running()) {
    return refuse(absl::StrCat("the relay could not start its workers (", workers_.error(),
                               "); try again later"));
  }
  if (std::optional<grpc::Status> refused = Refusal()) {
    return new FinishNow<grpc::ByteBuffer>(*std::move(refused));
  }
  if (buffered_bytes() > static_cast<int64_t>(options_.stream_memory_budget)) {
    return refuse(absl::StrCat("the relay's memory budget for client streams (",
                               options_.stream_memory_budget >> 20,
                               " MiB) is in use; try again later"));
  }
  if (active_streams_.fetch_add(1) >= options_.max_streams) {
    StreamGone(nullptr);
    return refuse(absl::StrCat("too many concurrent flow streams (", options_.max_streams,
                               "); try again later"));
  }
  return StartFlowStream(this, std::move(req), batched);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* RelayService::GetFlows(
    grpc::CallbackServerContext*, const grpc::ByteBuffer* request) {
  return OpenStream(request, false);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* RelayBatchService::GetFlowBatches(
    grpc::CallbackServerContext*, const grpc::ByteBuffer* request) {
  return relay_->OpenStream(request, true);
}

grpc::ServerWriteReactor<::observer::GetAgentEventsResponse>* RelayService::GetAgentEvents(
    grpc::CallbackServerContext*, const ::observer::GetAgentEventsRequest*) {
  return new FinishNow<::observer::GetAgentEventsResponse>(
      grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet implemented"));
}

grpc::ServerWriteReactor<::observer::GetDebugEventsResponse>* RelayService::GetDebugEvents(
    grpc::CallbackServerContext*, const ::observer::GetDebugEventsRequest*) {
  return new FinishNow<::observer::GetDebugEventsResponse>(
      grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "not yet implemented"));
}

}  // namespace flowscope::relay
