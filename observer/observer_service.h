// ObserverService: Hubble's observer.Observer gRPC service over the node's FlowRing, with the
// callback API. Every GetFlows stream is one reactor with one write in flight; it reads the
// ring without blocking (FlowQuery), and a stream that has caught up in follow mode is parked
// until the drain thread publishes more (one notifier thread resumes parked streams). A slow
// or stalled client therefore never slows the drain thread or other clients: the writer laps
// it and it is told how much it lost. A cancelled stream frees its reader at once.
//
// Thread-safety: all methods are called by gRPC; Notify() by the drain thread after Publish().
#ifndef FLOWSCOPE_OBSERVER_OBSERVER_SERVICE_H_
#define FLOWSCOPE_OBSERVER_OBSERVER_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "observer/endpoint_table.h"
#include "observer/flow_builder.h"
#include "observer/flow_query.h"
#include "observer/lost_events.h"
#include "observer/observer.grpc.pb.h"

namespace flowscope::observer {

inline constexpr absl::string_view kVersion = "flowscope v0.1.0";

class FlowStreamReactor;

// Parks follow streams that caught up and resumes them when the ring gets new records (and
// once a second, so pending lost-event notices go out).
class StreamNotifier {
 public:
  explicit StreamNotifier(const Ring& ring);
  ~StreamNotifier();
  void Park(FlowStreamReactor* r);
  // Returns false if `r` was not parked (it is being resumed, or never was).
  bool Unpark(FlowStreamReactor* r);
  void Stop();

 private:
  void Run();

  const Ring& ring_;
  std::mutex mu_;
  std::set<FlowStreamReactor*> parked_;
  bool stop_ = false;
  std::thread thread_;
};

struct ObserverOptions {
  std::string node_name;
  std::string address;  // what GetNodes reports (the listener)
  absl::Duration lost_report_interval = absl::Seconds(1);
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

  // Losses outside the ring (the daemon reports the datapath's); follow streams report them.
  LostEventLog& lost_log() { return lost_log_; }

 private:
  friend class FlowStreamReactor;

  const Ring& ring_;
  const EndpointTable& table_;
  const FlowBuilder& builder_;
  const ObserverOptions options_;
  const absl::Time start_ = absl::Now();
  LostEventLog lost_log_;
  StreamNotifier notifier_;
  std::atomic<int> active_streams_{0};
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_OBSERVER_SERVICE_H_
