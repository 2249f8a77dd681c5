// RelayService: observer.Observer for a whole cluster. GetFlows is forwarded to every available
// peer and the answers are merged in time order: historical queries exactly (a k-way merge,
// with `number` meaning the newest — or with `first` the oldest — N across the cluster), follow
// queries strictly ordered by the peers' watermarks (flowscope peers, read in batches through
// flowscope.v1.FlowStream) or through a sort buffer (peers that only speak Hubble's API). Node
// states go in-stream as Hubble's relay sends them (NODE_CONNECTED and NODE_UNAVAILABLE first,
// NODE_ERROR when a peer's stream fails), and a failing peer never ends the client's stream.
// ServerStatus, GetNodes and GetNamespaces aggregate over the peers. Methods are called by gRPC.
//
// No thread per stream or peer: client streams (relay/flow_stream.h) read their peers through
// gRPC client reactors and merge on a few shared workers; unary answers fan out through
// relay/fan_out.h. The service owns its streams' lifetimes: Shutdown() (and the destructor)
// ends every stream and waits until the last one, and the last of its peer calls, are gone.
// Calls it cannot take — too many streams, the memory budget for client streams in use, no
// worker — are refused with RESOURCE_EXHAUSTED, never a crash.
#ifndef FLOWSCOPE_RELAY_RELAY_SERVICE_H_
#define FLOWSCOPE_RELAY_RELAY_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "api/clock.h"
#include "api/version.h"
#include "flowscope/v1/flowscope.grpc.pb.h"
#include "observer/observer.grpc.pb.h"
#include "relay/client_writer.h"
#include "relay/peer_pool.h"
#include "relay/workers.h"

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
  // Messages (and bytes) a client stream may have waiting to be written: history waits for the
  // client beyond it; follow drops what does not fit and sends a lost-event notice.
  size_t max_queued = 8192;
  size_t max_queued_bytes = 8 << 20;
  // Client flow streams served at once; more get RESOURCE_EXHAUSTED.
  int max_streams = 1024;
  // What all client streams together may hold (peer messages waiting for the merge, the
  // merges, the write queues): beyond it peers are read only as the merges need them, and new
  // streams get RESOURCE_EXHAUSTED.
  size_t stream_memory_budget = size_t{512} << 20;
  // Threads that merge the client streams (whatever their number and their peers').
  int workers = 2;
  // New calls get RESOURCE_EXHAUSTED while fewer tasks than this are left under the process's
  // pids cgroup limit: gRPC starts threads as load grows, and one it cannot start loses work.
  int min_task_headroom = 16;
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
  // What the service asks of an open client stream.
  class StreamHandle {
   public:
    virtual ~StreamHandle() = default;
    virtual void Wake() = 0;         // take a step (time has passed)
    virtual void CancelPeers() = 0;  // end its peer calls
  };

  RelayService(PeerPool& pool, RelayOptions options);
  // Shutdown().
  ~RelayService() override;
  // Ends every client stream (UNAVAILABLE, if its client is still there) and waits until the
  // streams and their peer calls are gone; then the workers stop. Best after the gRPC server
  // has shut down; idempotent.
  void Shutdown();

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
  int open_streams() const { return active_streams_.load(std::memory_order_relaxed); }
  // Follow responses dropped because a client did not read them in time (reported to it).
  uint64_t dropped_for_slow_clients() const {
    return counters_.dropped.load(std::memory_order_relaxed);
  }
  // Messages waiting to be written to clients, across streams.
  int64_t queued_messages() const {
    return counters_.queued_messages.load(std::memory_order_relaxed);
  }
  // Bytes the client streams hold (peer messages, merges, write queues).
  int64_t buffered_bytes() const {
    return counters_.buffered_bytes.load(std::memory_order_relaxed);
  }
  // Threads of the service's own (the workers and their tick): fixed.
  size_t worker_threads() const { return workers_.threads(); }
  // Follow streams: how far behind the clock the merge's promise is (the stream's own latency),
  // reported by each stream as it goes; the largest among open streams.
  void ReportMergeLag(const void* stream, absl::Duration lag);
  void ForgetMergeLag(const void* stream);
  absl::Duration max_merge_lag() const;

  // For the streams (relay/flow_stream.cc).
  WriterCounters& counters() { return counters_; }
  Workers& workers() { return workers_; }
  bool stopping() const { return stopping_.load(std::memory_order_acquire); }
  void Register(const std::shared_ptr<StreamHandle>& stream);
  void StreamGone(const StreamHandle* stream);  // from a stream's destructor

 private:
  friend class RelayBatchService;
  friend class RelayHistoryService;
  // The one deadline of a status, nodes or namespaces fan-out (relay/fan_out.h: no thread).
  absl::Duration unary_timeout() const;
  // Why a new call is refused for lack of resources (threads under the pids limit), if it is.
  std::optional<grpc::Status> Refusal() const;
  grpc::ServerWriteReactor<grpc::ByteBuffer>* OpenStream(const grpc::ByteBuffer* request,
                                                         bool batched);
  void WakeStreams();

  PeerPool& pool_;
  const RelayOptions options_;
  const Clock& clock_;
  RelayBatchService batch_service_;
  RelayHistoryService history_service_{this};
  std::atomic<int> active_streams_{0};  // from open until the stream object is gone
  WriterCounters counters_;
  mutable std::mutex lag_mu_;
  std::map<const void*, absl::Duration> merge_lag_;
  std::atomic<bool> stopping_{false};
  std::mutex streams_mu_;
  std::condition_variable streams_cv_;
  std::map<const StreamHandle*, std::weak_ptr<StreamHandle>> streams_;
  Workers workers_;  // last: stopped first, while everything its steps use is there
};

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_RELAY_SERVICE_H_
