// PeerStream: one peer's answer to one client's query through the relay, read with gRPC's
// callback API (a ClientReadReactor — no thread): flowscope.v1.FlowStream/GetFlowBatches from a
// flowscope peer, observer.Observer/GetFlows from one that only speaks Hubble's API. Each message
// goes to the stream's PeerSink, which decides whether the next read starts at once or waits
// until it asks for it (Resume()) — flow control back to the peer instead of a queue without
// bound.
//
//   auto call = PeerStream::Start(sink, id, peer, request, PeerStream::kBatches);
//   ...                     // sink->OnPeerMessage(id, ...) returned false: paused
//   call->Resume();         // read on
//   call->Cancel();         // ends it: OnPeerEnded follows
//
// Lifetime: the call keeps itself (and its sink) alive until gRPC is done with it, and holds
// a reactor hold while paused, so Resume() and Cancel() are always safe on a call one has a
// reference to — also after it ended (they do nothing then).
#ifndef FLOWSCOPE_RELAY_PEER_STREAM_H_
#define FLOWSCOPE_RELAY_PEER_STREAM_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "absl/time/time.h"
#include "observer/observer.pb.h"
#include "relay/merge.h"
#include "relay/peer_pool.h"

namespace flowscope::relay {

// What one message from a peer carries.
struct PeerMessage {
  std::vector<Response> events;
  std::optional<absl::Time> watermark;  // batches only
  size_t bytes = 0;                     // roughly, in memory
};

class PeerSink {
 public:
  virtual ~PeerSink() = default;
  // A message from call `id`. True: read the next one now; false: wait for Resume().
  virtual bool OnPeerMessage(uint64_t id, PeerMessage message) = 0;
  // The call is over (`any`: whether a message came before). Nothing follows for `id`.
  virtual void OnPeerEnded(uint64_t id, const grpc::Status& status, bool any) = 0;
};

class PeerStream {
 public:
  enum Method { kBatches, kHubbleFlows };
  virtual ~PeerStream() = default;

  // Starts the call; any thread.
  static std::shared_ptr<PeerStream> Start(std::shared_ptr<PeerSink> sink, uint64_t id,
                                           const Peer& peer,
                                           const ::observer::GetFlowsRequest& request,
                                           Method method);

  // Reads on after the sink returned false; nothing otherwise.
  virtual void Resume() = 0;
  // Ends the call (the sink hears OnPeerEnded with CANCELLED).
  virtual void Cancel() = 0;
};

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_PEER_STREAM_H_
