// ObserverService: Hubble's observer.Observer gRPC service over the node's FlowRing, with the
// callback API, and flowscope's FlowStream extension (batch_service(): many flows per message
// plus the node's watermark, for relays). Every GetFlows stream is one reactor with one write in
// flight; it reads the ring without blocking (FlowQuery), and a stream that has caught up in
// follow mode is parked until the drain thread publishes more (stream_pump.h). A slow or
// stalled client therefore never slows the drain thread or other clients: the writer laps it
// and it is told how much it lost. A cancelled stream frees its reader at once.
//
// Thread-safety: all methods are called by gRPC.
#ifndef FLOWSCOPE_OBSERVER_OBSERVER_SERVICE_H_
#define FLOWSCOPE_OBSERVER_OBSERVER_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/time/time.h"
#include "api/clock.h"
#include "api/field_mask.h"
#include "api/version.h"
#include "flowscope/v1/flowscope.grpc.pb.h"
#include "observer/endpoint_table.h"
#include "observer/flow_builder.h"
#include "observer/flow_query.h"
#include "observer/lost_events.h"
#include "observer/observer.grpc.pb.h"
#include "observer/stream_pump.h"
#include "observer/watermark.h"

namespace flowscope::observer {

struct ObserverOptions {
  std::string node_name;
  std::string address;  // what GetNodes reports (the listener)
  absl::Duration lost_report_interval = absl::Seconds(1);
  // The drain thread's promise (see watermark.h). Without one, a batch stream's watermark is
  // the time of the newest record it has read.
  const IngestWatermark* watermark = nullptr;
  // Flow batch streams: an empty batch carrying the watermark at least this often when idle,
  // and at most this many events per batch, closed once it holds this many bytes (well under
  // gRPC's 4 MiB default for what a client receives, whatever the flows' labels).
  absl::Duration heartbeat = absl::Milliseconds(25);
  int max_batch_events = 4096;
  size_t max_batch_bytes = size_t{1} << 20;
  bool tls = false;  // the TCP listener uses TLS (GetNodes says so)
  // Flow streams (GetFlows and batch streams) open at once; more get RESOURCE_EXHAUSTED.
  int max_streams = 1024;
  const Clock* clock = nullptr;  // the real one when unset
  // Runs the streams' wake-ups (new flows, heartbeats) on its thread instead of one of the
  // service's own: for many services in one process (flowscope-simnodes). Outlives the service.
  NotifierDriver* notifier_driver = nullptr;
  // The on-disk history and its writer (history.h): queries reach past the ring. Null: off.
  const HistoryStore* history = nullptr;
  const HistoryWriter* history_writer = nullptr;
};

class ObserverService;

// flowscope.v1.History: this node's flow history.
class HistoryStatusService final : public ::flowscope::v1::History::CallbackService {
 public:
  explicit HistoryStatusService(ObserverService* observer) : observer_(observer) {}
  grpc::ServerUnaryReactor* GetHistoryStatus(grpc::CallbackServerContext* ctx,
                                             const ::flowscope::v1::HistoryStatusRequest* req,
                                             ::flowscope::v1::HistoryStatusResponse* resp) override;

 private:
  ObserverService* observer_;
};

// flowscope.v1.FlowStream over the same ring: what relays read.
// Raw: batches are written as encoded bytes, full flows encoded straight from their records.
class FlowBatchService final
    : public ::flowscope::v1::FlowStream::WithRawCallbackMethod_GetFlowBatches<
          ::flowscope::v1::FlowStream::CallbackService> {
 public:
  explicit FlowBatchService(ObserverService* observer) : observer_(observer) {}
  grpc::ServerWriteReactor<grpc::ByteBuffer>* GetFlowBatches(
      grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) override;

 private:
  ObserverService* observer_;
};

class ObserverService final : public ::observer::Observer::CallbackService {
 public:
  ObserverService(const Ring& ring, const EndpointTable& table, const FlowBuilder& builder,
                  ObserverOptions options);
  ~ObserverService() override;

  grpc::ServerWriteReactor<::observer::GetFlowsResponse>* GetFlows(
      grpc::CallbackServerContext* ctx, const ::observer::GetFlowsRequest* req) override;
  grpc::ServerWriteReactor<::observer::GetAgentEventsResponse>* GetAgentEvents(
      grpc::CallbackServerContext* ctx, const ::observer::GetAgentEventsRequest* req) override;
  grpc::ServerWriteReactor<::observer::GetDebugEventsResponse>* GetDebugEvents(
      grpc::CallbackServerContext* ctx, const ::observer::GetDebugEventsRequest* req) override;
  grpc::ServerUnaryReactor* GetNodes(grpc::CallbackServerContext* ctx,
                                     const ::observer::GetNodesRequest* req,
                                     ::observer::GetNodesResponse* resp) override;
  grpc::ServerUnaryReactor* GetNamespaces(grpc::CallbackServerContext* ctx,
                                          const ::observer::GetNamespacesRequest* req,
                                          ::observer::GetNamespacesResponse* resp) override;
  grpc::ServerUnaryReactor* ServerStatus(grpc::CallbackServerContext* ctx,
                                         const ::observer::ServerStatusRequest* req,
                                         ::observer::ServerStatusResponse* resp) override;

  // Fills a ServerStatusResponse (also used by GetNodes and tests).
  void Status(absl::Time now, ::observer::ServerStatusResponse* out) const;

  // Stops resuming streams (before the server shuts down).
  void Shutdown();

  int active_streams() const { return active_streams_.load(); }
  // Follow streams that have caught up and wait for the ring.
  size_t parked_streams() const { return notifier_.parked(); }

  // Losses outside the ring (the daemon reports the datapath's); follow streams report them.
  LostEventLog& lost_log() { return lost_log_; }

  // flowscope.v1.FlowStream, to register next to this service.
  grpc::Service* batch_service() { return &batch_service_; }
  grpc::Service* history_service() { return &history_service_; }
  // This node's history for flowscope.v1.History (enabled=false without one).
  void FillHistory(::flowscope::v1::NodeHistory* out) const;

 private:
  template <typename Out>
  friend class RingStreamReactor;
  friend class FlowStreamReactor;
  friend class BatchStreamReactor;
  friend class FlowBatchService;

  // Validates a request and opens its query (and the field mask it asks for).
  absl::StatusOr<FlowQuery> OpenQuery(const ::observer::GetFlowsRequest& req,
                                      CompiledFieldMask* mask);
  // A stream slot (ResourceExhausted beyond max_streams) and the query; the stream's reactor
  // gives the slot back when it goes.
  absl::Status ReserveStream();
  absl::StatusOr<FlowQuery> OpenStream(const ::observer::GetFlowsRequest& req,
                                       CompiledFieldMask* mask);

  const Ring& ring_;
  const EndpointTable& table_;
  const FlowBuilder& builder_;
  const ObserverOptions options_;
  const Clock& clock_;
  const absl::Time start_;
  LostEventLog lost_log_;
  StreamNotifier notifier_;
  FlowBatchService batch_service_{this};
  HistoryStatusService history_service_{this};
  std::atomic<int> active_streams_{0};
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_OBSERVER_SERVICE_H_
