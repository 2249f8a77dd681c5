// FlowStream: one client's flow query through the relay — observer.Observer/GetFlows (one
// event per message) or flowscope.v1.FlowStream/GetFlowBatches (batches with the merged
// watermark, so that a relay can be another relay's peer). It owns no thread: its peers are
// read through gRPC client reactors (relay/peer_stream.h), its client is written through a
// bounded queue (relay/client_writer.h), and the merging runs in steps on the service's few
// workers, one step at a time per stream, whenever a peer message, a finished write or the
// service's tick calls for one.
//
//  * History, newest N across the cluster: kept as the answers stream in (N responses), sent
//    when every node has answered.
//  * History otherwise (all of it, the oldest N, since/until): a streaming k-way merge; a slow
//    client stops the merge, which stops reading its peers (gRPC flow control holds them back),
//    so memory stays bounded however much history there is.
//  * Follow: merged by the peers' watermarks; a peer silent for the peer timeout is reported
//    and stops holding the others back; flows it sends later than what already went out are
//    counted and reported as lost (never sent out of order).
//
// Lifetime: shared — by gRPC (until OnDone), its peer calls, the workers' queued steps. The
// service counts live streams and waits for them at shutdown.
#ifndef FLOWSCOPE_RELAY_FLOW_STREAM_H_
#define FLOWSCOPE_RELAY_FLOW_STREAM_H_

#include <grpcpp/grpcpp.h>

#include "observer/observer.pb.h"

namespace flowscope::relay {

class RelayService;

// The reactor of a new client stream (its slot among the service's streams already taken).
grpc::ServerWriteReactor<grpc::ByteBuffer>* StartFlowStream(RelayService* service,
                                                            ::observer::GetFlowsRequest request,
                                                            bool batched);

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_FLOW_STREAM_H_
