// RelayService: observer.Observer for a whole cluster. GetFlows is forwarded to every available
// peer and the answers are merged in time order: historical queries exactly (a k-way merge,
// with `number` meaning the newest — or with `first` the oldest — N across the cluster), follow
// queries through a sort buffer. Node states go in-stream as Hubble's relay sends them
// (NODE_CONNECTED and NODE_UNAVAILABLE first, NODE_ERROR when a peer's stream fails), and a
// failing peer never ends the client's stream. ServerStatus, GetNodes and GetNamespaces
// aggregate over the peers. Methods are called by gRPC.
#ifndef FLOWSCOPE_RELAY_RELAY_SERVICE_H_
#define FLOWSCOPE_RELAY_RELAY_SERVICE_H_

#include <atomic>
#include <string>

#include "absl/time/time.h"
#include "observer/observer.grpc.pb.h"
#include "relay/peer_pool.h"

namespace flowscope::relay {

inline constexpr const char* kRelayVersion = "flowscope-relay v0.1.0";

struct RelayOptions {
  std::string name = "relay";  // node_name of the relay's own messages
  absl::Duration request_timeout = absl::Seconds(5);
  size_t sort_buffer_len = 100;
  absl::Duration sort_buffer_drain = absl::Seconds(1);
  absl::Duration peer_update_interval = absl::Seconds(2);  // follow: pick up new peers
  // History: a peer that sends nothing for this long is cancelled and reported as NODE_ERROR,
  // so a hung node never stalls the cluster's answer for longer.
  absl::Duration peer_timeout = absl::Seconds(2);
};

class RelayService final : public ::observer::Observer::CallbackService {
 public:
  RelayService(PeerPool& pool, RelayOptions options);

  grpc::ServerWriteReactor<::observer::GetFlowsResponse>* GetFlows(
      grpc::CallbackServerContext* ctx, const ::observer::GetFlowsRequest* req) override;
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

  PeerPool& pool() { return pool_; }
  const RelayOptions& options() const { return options_; }
  std::atomic<int>& active_streams() { return active_streams_; }

 private:
  PeerPool& pool_;
  const RelayOptions options_;
  const absl::Time start_ = absl::Now();
  std::atomic<int> active_streams_{0};
};

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_RELAY_SERVICE_H_
