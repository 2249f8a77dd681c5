#include "relay/peer_stream.h"

#include <atomic>
#include <utility>

#include "api/grpc_util.h"

namespace flowscope::relay {
namespace {

using Batch = ::flowscope::v1::RawFlowBatch;

constexpr char kGetFlows[] = "/observer.Observer/GetFlows";
constexpr char kGetFlowBatches[] = "/flowscope.v1.FlowStream/GetFlowBatches";

PeerMessage Take(Batch& b) {
  PeerMessage m;
  m.events.reserve(static_cast<size_t>(b.events_size()));
  for (Response& r : *b.mutable_events()) {
    m.bytes += ResponseBytes(r);
    m.events.push_back(std::move(r));
  }
  if (b.has_watermark()) m.watermark = FromTimestamp(b.watermark());
  b.Clear();
  return m;
}

PeerMessage Take(Response& r) {
  PeerMessage m;
  m.bytes = ResponseBytes(r);
  m.events.push_back(std::move(r));
  r.Clear();
  return m;
}

// `Message`: what the method's answers are read as (raw views: the flows stay encoded).
template <typename Message>
class Reader final : public PeerStream, public grpc::ClientReadReactor<Message> {
 public:
  Reader(std::shared_ptr<PeerSink> sink, uint64_t id, const Peer& peer,
         const ::observer::GetFlowsRequest& request)
      : sink_(std::move(sink)), id_(id), channel_(peer.channel), request_(request) {}

  void Begin(std::shared_ptr<Reader> self, const char* method) {
    self_ = std::move(self);
    static const grpc::internal::RpcMethod kBatchesMethod(
        kGetFlowBatches, grpc::internal::RpcMethod::SERVER_STREAMING);
    static const grpc::internal::RpcMethod kFlowsMethod(
        kGetFlows, grpc::internal::RpcMethod::SERVER_STREAMING);
    const grpc::internal::RpcMethod& rpc = method == kGetFlows ? kFlowsMethod : kBatchesMethod;
    grpc::internal::ClientCallbackReaderFactory<Message>::Create(channel_.get(), rpc, &ctx_,
                                                                 &request_, this);
    // Held while a read may be started from outside a reaction (Resume): released when reads
    // end, so OnDone cannot come while the call is paused.
    this->AddHold();
    this->StartRead(&message_);
    this->StartCall();
  }

  void Resume() override {
    if (paused_.exchange(false, std::memory_order_acq_rel)) this->StartRead(&message_);
  }

  void Cancel() override {
    ctx_.TryCancel();
    Resume();  // a paused call reads on, fails at once and so gets to its end
  }

 private:
  void OnReadDone(bool ok) override {
    if (!ok) {
      this->RemoveHold();
      return;
    }
    any_ = true;
    PeerMessage m = Take(message_);
    paused_.store(true, std::memory_order_release);
    if (sink_->OnPeerMessage(id_, std::move(m))) Resume();
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<Reader> self = std::move(self_);  // this goes with the last reference
    std::shared_ptr<PeerSink> sink = std::move(sink_);
    sink->OnPeerEnded(id_, status, any_);
  }

  std::shared_ptr<PeerSink> sink_;
  const uint64_t id_;
  std::shared_ptr<grpc::Channel> channel_;
  const ::observer::GetFlowsRequest request_;
  grpc::ClientContext ctx_;
  Message message_;
  std::atomic<bool> paused_{false};
  bool any_ = false;
  std::shared_ptr<Reader> self_;
};

template <typename Message>
std::shared_ptr<PeerStream> StartReader(std::shared_ptr<PeerSink> sink, uint64_t id,
                                        const Peer& peer,
                                        const ::observer::GetFlowsRequest& request,
                                        const char* method) {
  auto reader = std::make_shared<Reader<Message>>(std::move(sink), id, peer, request);
  reader->Begin(reader, method);
  return reader;
}

}  // namespace

std::shared_ptr<PeerStream> PeerStream::Start(std::shared_ptr<PeerSink> sink, uint64_t id,
                                              const Peer& peer,
                                              const ::observer::GetFlowsRequest& request,
                                              Method method) {
  if (method == kBatches)
    return StartReader<Batch>(std::move(sink), id, peer, request, kGetFlowBatches);
  return StartReader<Response>(std::move(sink), id, peer, request, kGetFlows);
}

}  // namespace flowscope::relay
