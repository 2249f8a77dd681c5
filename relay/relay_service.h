// RelayService: observer.Observer for a whole cluster. GetFlows is forwarded to every available
// peer and the answers are merged in time order: historical queries exactly (a k-way merge,
// with `number` meaning the newest — or with `first` the oldest — N across the cluster), follow
// queries strictly ordered by the peers' watermarks (flowscope peers, read in batches through
// flowscope.v1.FlowStream) or through a sort buffer (peers that only speak Hubble's API). Node
// states go in-stream as Hubble's relay sends them (NODE_CONNECTED and NODE_UNAVAILABLE first,
// NODE_ERROR when a peer's stream fails), and a failing peer never ends the client's stream.
// ServerStatus, GetNodes and GetNamespaces aggregate over the peers. Methods are called by gRPC.
#ifndef FLOWSCOPE_RELAY_RELAY_SERVICE_H_
#define FLOWSCOPE_RELAY_RELAY_SERVICE_H_

#include <atomic>
#include <functional>
#include <string>

#include "absl/time/time.h"
#include "api/clock.h"
#include "api/owned_threads.h"
#include "api/version.h"
#include "flowscope/v1/flowscope.grpc.pb.h"
#include "observer/observer.grpc.pb.h"
#include "relay/peer_pool.h"

namespace flowscope::relay {

struct RelayOptions {
  std::string name = "relay";  // node_name of the relay's own messages
  absl::Duration request_timeout = absl::Seconds(5);
  size_t sort_buffer_len = 100;
  absl::Duration sort_buffer_drain = absl::Seconds(1);
  absl::Duration peer_update_interval = absl::Seconds(2);  // follow: pick up new peers
  // A peer that sends nothing for this long is reported as NODE_ERROR and no longer waited
  // for — history: cancelled and left out; follow: dropped from the watermark until it answers
  // again — so a hung node never stalls the cluster's stream for longer.
  absl::Duration peer_timeout = absl::Seconds(2);
  // Messages a client stream may have waiting to be written: history waits for the client
  // beyond it; follow drops what does not fit and sends a lost-event notice.
  size_t max_queued = 8192;
  // Client flow streams served at once; more get RESOURCE_EXHAUSTED.
  int max_streams = 1024;
  const Clock* clock = nullptr;  // the real one when unset
};

class RelayService;

// flowscope.v1.FlowStream through the relay: the merged stream in batches with the merged
// watermark, so that a relay can be the peer of another relay.
class RelayBatchService final
    : public ::flowscope::v1::FlowStream::WithRawCallbackMethod_GetFlowBatches<
          ::flowscope::v1::FlowStream::CallbackService> {
 public:
  explicit RelayBatchService(RelayService* relay) : relay_(relay) {}
  // Raw: events pass through the relay encoded.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* GetFlowBatches(
      grpc::CallbackServerContext* ctx, const grpc::ByteBuffer* request) override;

 private:
  RelayService* relay_;
};

// flowscope.v1.History through the relay: every connected node's history.
class RelayHistoryService final : public ::flowscope::v1::History::CallbackService {
 public:
  explicit RelayHistoryService(RelayService* relay) : relay_(relay) {}
  grpc::ServerUnaryReactor* GetHistoryStatus(grpc::CallbackServerContext* ctx,
                                             const ::flowscope::v1::HistoryStatusRequest* req,
                                             ::flowscope::v1::HistoryStatusResponse* resp) override;

 private:
  RelayService* relay_;
};

class RelayService final : public ::observer::Observer::WithRawCallbackMethod_GetFlows<
                               ::observer::Observer::CallbackService> {
 public:
  RelayService(PeerPool& pool, RelayOptions options);
  // Joins the streams' producer threads: after the server has shut down (which ends them).
  ~RelayService() override;

  // Raw: the request is decoded here, the events pass through the relay encoded.
  grpc::ServerWriteReactor<grpc::ByteBuffer>* GetFlows(grpc::CallbackServerContext* ctx,
                                                       const grpc::ByteBuffer* request) override;
  grpc::ServerWriteReactor<::observer::GetAgentEventsResponse>* GetAgentEvents(
      grpc::CallbackServerContext* ctx, const ::observer::GetAgentEventsRequest* req) override;
  grpc::ServerWriteReactor<::observer::GetDebugEventsResponse>* GetDebugEvents(
      grpc::CallbackServerContext* ctx, const ::observer::GetDebugEventsRequest* req) override;
  grpc::ServerUnaryReactor* ServerStatus(grpc::CallbackServerContext* ctx,
                                         const ::observer::ServerStatusRequest* req,
                                         ::observer::ServerStatusResponse* resp) override;
  grpc::ServerUnaryReactor* GetNodes(grpc::CallbackServerContext* ctx,
                                     const ::observer::GetNodesRequest* req,
                                     ::observer::GetNodesResponse* resp) override;
  grpc::ServerUnaryReactor* GetNamespaces(grpc::CallbackServerContext* ctx,
                                          const ::observer::GetNamespacesRequest* req,
                                          ::observer::GetNamespacesResponse* resp) override;

  // flowscope.v1.FlowStream, to register next to this service.
  grpc::Service* batch_service() { return &batch_service_; }
  // flowscope.v1.History, to register next to this service.
  grpc::Service* history_service() { return &history_service_; }

  PeerPool& pool() { return pool_; }
  const RelayOptions& options() const { return options_; }
  const Clock& clock() const { return clock_; }
  std::atomic<int>& active_streams() { return active_streams_; }
  int open_streams() const { return active_streams_.load(std::memory_order_relaxed); }
  // Follow responses dropped because a client did not read them in time (reported to it).
  uint64_t dropped_for_slow_clients() const { return dropped_.load(std::memory_order_relaxed); }
  void CountDropped(uint64_t n) { dropped_.fetch_add(n, std::memory_order_relaxed); }
  // Messages waiting to be written to clients, across streams.
  int64_t queued_messages() const { return queued_.load(std::memory_order_relaxed); }
  void CountQueued(int64_t delta) { queued_.fetch_add(delta, std::memory_order_relaxed); }
  // Follow streams: how far behind the clock the merge's promise is (the stream's own latency),
  // reported by each stream as it goes; the largest among open streams.
  void ReportMergeLag(const void* stream, absl::Duration lag);
  void ForgetMergeLag(const void* stream);
  absl::Duration max_merge_lag() const;
  OwnedThreads& threads() { return threads_; }

 private:
  friend class RelayBatchService;
  friend class RelayHistoryService;
  // The one deadline of a status, nodes or namespaces fan-out (relay/fan_out.h: no thread).
  absl::Duration unary_timeout() const;
  template <bool kBatched>
  grpc::ServerWriteReactor<grpc::ByteBuffer>* OpenStream(const grpc::ByteBuffer* request);

  PeerPool& pool_;
  const RelayOptions options_;
  const Clock& clock_;
  RelayBatchService batch_service_;
  RelayHistoryService history_service_{this};
  std::atomic<int> active_streams_{0};
  std::atomic<uint64_t> dropped_{0};
  std::atomic<int64_t> queued_{0};
  mutable std::mutex lag_mu_;
  std::map<const void*, absl::Duration> merge_lag_;
  OwnedThreads threads_;  // last: joined first, while everything its threads use is there
};

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_RELAY_SERVICE_H_
