#include "relay/peer_stream.h"

#include <atomic>
#include <utility>

#include "api/grpc_util.h"

namespace flowscope::relay {
namespace {

constexpr char kGetFlows[] = "/observer.Observer/GetFlows";
constexpr char kGetFlowBatches[] = "/flowscope.v1.FlowStream/GetFlowBatches";

// A message's events (and a batch's watermark), left encoded; none when it is malformed.
std::optional<PeerMessage> Take(const grpc::ByteBuffer& bb, bool batch) {
  auto bytes = std::make_shared<const std::string>(FlattenByteBuffer(bb));
  PeerMessage m;
  if (batch) {
    if (!ParseRawBatch(bytes, &m.events, &m.watermark)) return std::nullopt;
  } else {
    std::optional<Response> e = RawEvent::Parse(bytes, *bytes);
    if (!e) return std::nullopt;
    m.events.push_back(*std::move(e));
  }
  for (const Response& r : m.events) m.bytes += ResponseBytes(r);
  return m;
}

// Answers are read as bytes: their events stay encoded (raw_event.h).
using Message = grpc::ByteBuffer;

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
    batches_ = method != kGetFlows;
    const grpc::internal::RpcMethod& rpc = batches_ ? kBatchesMethod : kFlowsMethod;
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
    std::optional<PeerMessage> m = Take(message_, batches_);
    message_.Clear();
    if (!m) {
      // Not what the method answers: the call ends here, with that as its error.
      malformed_ = true;
      ctx_.TryCancel();
      this->RemoveHold();
      return;
    }
    paused_.store(true, std::memory_order_release);
    if (sink_->OnPeerMessage(id_, *std::move(m))) Resume();
  }

  void OnDone(const grpc::Status& status) override {
    std::shared_ptr<Reader> self = std::move(self_);  // this goes with the last reference
    std::shared_ptr<PeerSink> sink = std::move(sink_);
    sink->OnPeerEnded(id_,
                      malformed_ ? grpc::Status(grpc::StatusCode::INTERNAL,
                                                "the peer sent a message that does not decode")
                                 : status,
                      any_);
  }

  std::shared_ptr<PeerSink> sink_;
  const uint64_t id_;
  std::shared_ptr<grpc::Channel> channel_;
  const ::observer::GetFlowsRequest request_;
  grpc::ClientContext ctx_;
  Message message_;
  std::atomic<bool> paused_{false};
  bool batches_ = true;
  bool any_ = false;
  bool malformed_ = false;
  std::shared_ptr<Reader> self_;
};

std::shared_ptr<PeerStream> StartReader(std::shared_ptr<PeerSink> sink, uint64_t id,
                                        const Peer& peer,
                                        const ::observer::GetFlowsRequest& request,
                                        const char* method) {
  auto reader = std::make_shared<Reader>(std::move(sink), id, peer, request);
  reader->Begin(reader, method);
  return reader;
}

}  // namespace

std::shared_ptr<PeerStream> PeerStream::Start(std::shared_ptr<PeerSink> sink, uint64_t id,
                                              const Peer& peer,
                                              const ::observer::GetFlowsRequest& request,
                                              Method method) {
  return StartReader(std::move(sink), id, peer, request,
                     method == kBatches ? kGetFlowBatches : kGetFlows);
}

}  // namespace flowscope::relay
