#include "relay/relay_service.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "api/flows_request.h"
#include "api/grpc_status.h"
#include "api/grpc_util.h"
#include "api/logging.h"
#include "api/time_parse.h"
#include "relay/fan_out.h"
#include "relay/merge.h"

namespace flowscope::relay {
namespace {

Response MakeNodeStatus(::relay::NodeState state, const std::vector<std::string>& names,
                        const std::string& message, const std::string& relay_name,
                        absl::Time time) {
  ::relay::NodeStatusEvent s;
  s.set_state_change(state);
  for (const std::string& n : names) s.add_node_names(n);
  if (!message.empty()) s.set_message(message);
  Response r;
  s.SerializeToString(r.mutable_node_status());
  r.set_node_name(relay_name);
  *r.mutable_time() = ToTimestamp(time);
  return r;
}

using Batch = ::flowscope::v1::RawFlowBatch;

// Encodes a message for a raw write.
template <typename M>
grpc::ByteBuffer Encode(const M& m) {
  grpc::ByteBuffer bb;
  bool own = false;
  (void)grpc::SerializationTraits<M>::Serialize(m, &bb, &own);
  return bb;
}

// A server-streaming call on `channel` whose answers are read as `R` (a raw view of the
// method's response type).
template <typename R>
std::unique_ptr<grpc::ClientReader<R>> RawCall(grpc::Channel* channel, const char* method,
                                               grpc::ClientContext* ctx,
                                               const ::observer::GetFlowsRequest& req) {
  return std::unique_ptr<grpc::ClientReader<R>>(grpc::internal::ClientReaderFactory<R>::Create(
      channel, grpc::internal::RpcMethod(method, grpc::internal::RpcMethod::SERVER_STREAMING), ctx,
      req));
}

constexpr char kGetFlows[] = "/observer.Observer/GetFlows";
constexpr char kGetFlowBatches[] = "/flowscope.v1.FlowStream/GetFlowBatches";

}  // namespace

// One client's stream through the relay — observer.Observer/GetFlows (one event per message)
// or, kBatched, flowscope.v1.FlowStream/GetFlowBatches (with the merged watermark, so a relay
// can be another relay's peer). Events travel encoded: read as raw views, written as bytes. A
// producer thread talks to the peers and merges; the reactor writes what it queues, one write
// in flight.
template <bool kBatched>
class RelayStream final : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  RelayStream(RelayService* service, ::observer::GetFlowsRequest req)
      : service_(service), req_(std::move(req)) {
    // The stream slot was taken by OpenStream(); OnDone gives it back.
    // Owned by the service (joined at its shutdown), never by gRPC's callback threads, which
    // must not block on it. It holds one of the two references; OnDone holds the other.
    service_->threads().Start([this] {
      req_.follow() ? Follow() : Historical();
      Unref();  // after Close(): touches nothing but this stream
    });
  }

 private:
  absl::Time Now() const { return service_->clock().Now(); }
  Response NodeStatus(::relay::NodeState state, const std::vector<std::string>& names,
                      const std::string& message, const std::string& relay_name) const {
    return MakeNodeStatus(state, names, message, relay_name, Now());
  }

  // --- output (producer thread) ---

  // A node-status message: goes out now, or with the next batch.
  void EmitStatus(Response r) {
    if constexpr (kBatched) {
      *pending_.add_events() = std::move(r);
    } else {
      Enqueue(Encode(r), 1);
    }
  }

  // Merged responses in time order, and what the merge can promise after them.
  void Emit(std::vector<Response> rs, absl::Time watermark, absl::Time now) {
    if constexpr (kBatched) {
      for (Response& r : rs) {
        watermark_ = std::max(watermark_, ResponseTime(r));
        *pending_.add_events() = std::move(r);
        if (pending_.events_size() >= kMaxBatchEvents) SendBatch(now);
      }
      watermark_ = std::max(watermark_, watermark);
      if (pending_.events_size() > 0 || now - last_batch_ >= kHeartbeat) SendBatch(now);
    } else {
      for (Response& r : rs) Enqueue(Encode(r), 1);
    }
  }

  void SendBatch(absl::Time now) {
    *pending_.mutable_watermark() = ToTimestamp(watermark_);
    Enqueue(Encode(pending_), static_cast<uint64_t>(pending_.events_size()));
    pending_.Clear();
    last_batch_ = now;
  }

  // Node statuses not yet sent (batched mode), then the end.
  void Close(const grpc::Status& status) {
    if constexpr (kBatched) {
      if (pending_.events_size() > 0) SendBatch(Now());
    }
    std::unique_lock<std::mutex> lock(mu_);
    closed_ = true;
    status_ = status;
    if (writing_ || finished_) return;
    finished_ = true;
    lock.unlock();
    this->Finish(status);
  }

  // --- writing (any thread) ---
  // History waits for a slow client. Follow never does — the peers would have to buffer
  // without bound — it drops what does not fit and says how much (LostNotice()).
  void Enqueue(grpc::ByteBuffer message, uint64_t events) {
    std::unique_lock<std::mutex> lock(mu_);
    if (req_.follow()) {
      if (queue_.size() >= max_queued_) {
        dropped_ += events;
        service_->CountDropped(events);
        return;
      }
    } else if (queue_.size() >= max_queued_) {
      // Woken when the writes have taken it down to half: one wake-up per many messages.
      producer_waiting_ = true;
      queue_space_cv_.wait(
          lock, [this] { return cancelled_ || finished_ || queue_.size() <= max_queued_ / 2; });
      producer_waiting_ = false;
    }
    if (cancelled_ || finished_) return;
    queue_.push_back(std::move(message));
    service_->CountQueued(1);
    if (writing_) return;
    writing_ = true;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    service_->CountQueued(-1);
    lock.unlock();
    this->StartWrite(&current_);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!ok) {
      cancelled_ = true;
      writing_ = false;
      queue_space_cv_.notify_all();
      if (finished_) return;
      finished_ = true;
      lock.unlock();
      this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed"));
      return;
    }
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      service_->CountQueued(-1);
      const bool wake = producer_waiting_ && queue_.size() <= max_queued_ / 2;
      lock.unlock();
      if (wake) queue_space_cv_.notify_all();
      this->StartWrite(&current_);
      return;
    }
    writing_ = false;
    if (closed_ && !finished_) {
      finished_ = true;
      lock.unlock();
      this->Finish(status_);
    }
  }

  void OnCancel() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
    }
    queue_space_cv_.notify_all();
    CancelPeers();
    inbox_cv_.notify_all();
  }

  // After Finish (the producer's Close). The producer may still be on its way out: whoever
  // is last deletes the stream.
  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
      service_->CountQueued(-static_cast<int64_t>(queue_.size()));
      queue_.clear();
    }
    queue_space_cv_.notify_all();
    CancelPeers();
    inbox_cv_.notify_all();
    service_->active_streams().fetch_sub(1);
    Unref();
  }

  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  bool Cancelled() {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }

  // --- peers ---

  // What a peer's reader thread hands to the producer.
  struct Inbox {
    enum Kind { kEvents, kHubbleOnly, kEnded } kind = kEvents;
    std::string address;
    std::vector<Response> events;
    std::optional<absl::Time> watermark;
    std::string error;  // kEnded: why, if it failed
  };

  struct PeerCall {
    Peer peer;
    std::mutex mu;  // guards ctx (replaced when falling back to Hubble's API)
    std::unique_ptr<grpc::ClientContext> ctx;
    std::atomic<bool> cancelled{false};
    std::thread reader;
    std::atomic<int64_t> last_heard_ns{0};  // on the service's clock
    std::atomic<bool> done{false};
    std::atomic<bool> held_back{false};  // waiting for us, not for the peer
    bool timed_out = false;              // cancelled by us for silence (producer thread only)

    // A fresh context for the next call, or null when the call was cancelled.
    grpc::ClientContext* NewContext() {
      std::lock_guard<std::mutex> lock(mu);
      if (cancelled) return nullptr;
      ctx = std::make_unique<grpc::ClientContext>();
      return ctx.get();
    }
    void Cancel() {
      std::lock_guard<std::mutex> lock(mu);
      cancelled = true;
      if (ctx) ctx->TryCancel();
    }
  };

  void CancelPeers() {
    {
      std::lock_guard<std::mutex> lock(calls_mu_);
      for (auto& c : calls_) c->Cancel();
    }
    std::lock_guard<std::mutex> lock(inbox_mu_);
    inbox_space_cv_.notify_all();
  }

  // History: a reader waits while the producer has plenty to merge (gRPC's flow control then
  // holds the peer back), so memory stays bounded. Follow: never waits.
  void Deliver(PeerCall* c, Inbox item) {
    std::unique_lock<std::mutex> lock(inbox_mu_);
    if (!req_.follow() && inbox_.size() >= kMaxInbox) {
      c->held_back = true;
      inbox_space_cv_.wait(lock, [&] { return inbox_.size() < kMaxInbox || c->cancelled.load(); });
      c->last_heard_ns = absl::ToUnixNanos(Now());
      c->held_back = false;
    }
    inbox_.push_back(std::move(item));
    inbox_cv_.notify_all();
  }

  // Reads one peer's answer: flowscope's batches if it has them, else Hubble's GetFlows.
  // Runs on its own thread; ends with a kEnded item.
  void ReadPeer(PeerCall* c) {
    const std::string& address = c->peer.address;
    grpc::Status status;
    bool hubble_only = false;
    if (grpc::ClientContext* ctx = c->NewContext()) {
      auto reader = RawCall<Batch>(c->peer.channel.get(), kGetFlowBatches, ctx, req_);
      Batch b;
      bool any = false;
      while (reader->Read(&b)) {
        any = true;
        c->last_heard_ns = absl::ToUnixNanos(Now());
        Inbox item{Inbox::kEvents, address, {}, FromTimestamp(b.watermark()), ""};
        item.events.reserve(static_cast<size_t>(b.events_size()));
        for (Response& r : *b.mutable_events()) item.events.push_back(std::move(r));
        Deliver(c, std::move(item));
      }
      status = reader->Finish();
      hubble_only = !any && status.error_code() == grpc::StatusCode::UNIMPLEMENTED;
    }
    if (hubble_only) {
      Deliver(c, {Inbox::kHubbleOnly, address, {}, std::nullopt, ""});
      status = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
      if (grpc::ClientContext* ctx = c->NewContext()) {
        auto reader = RawCall<Response>(c->peer.channel.get(), kGetFlows, ctx, req_);
        Response r;
        while (reader->Read(&r)) {
          c->last_heard_ns = absl::ToUnixNanos(Now());
          Inbox item{Inbox::kEvents, address, {}, std::nullopt, ""};
          item.events.push_back(std::move(r));
          Deliver(c, std::move(item));
        }
        status = reader->Finish();
      }
    }
    Inbox end{Inbox::kEnded, address, {}, std::nullopt, ""};
    if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
      end.error = DescribeGrpcError(status);
      if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
        service_->pool().ReportOffline(address);
      }
    }
    c->done = true;
    Deliver(c, std::move(end));
  }

  void StartReading(const Peer& peer) {
    std::lock_guard<std::mutex> lock(calls_mu_);
    auto call = std::make_unique<PeerCall>();
    call->peer = peer;
    call->last_heard_ns = absl::ToUnixNanos(Now());
    PeerCall* c = call.get();
    call->reader = std::thread([this, c] { ReadPeer(c); });
    calls_.push_back(std::move(call));
  }

  void JoinReaders() {
    std::lock_guard<std::mutex> lock(calls_mu_);
    for (auto& c : calls_) {
      if (c->reader.joinable()) c->reader.join();
    }
  }

  std::deque<Inbox> TakeInbox(absl::Duration wait) {
    std::deque<Inbox> items;
    std::unique_lock<std::mutex> lock(inbox_mu_);
    inbox_cv_.wait_for(lock, absl::ToChronoMicroseconds(wait), [this] { return !inbox_.empty(); });
    items.swap(inbox_);
    inbox_space_cv_.notify_all();
    return items;
  }

  void SendStates(const std::vector<Peer>& peers) {
    std::vector<std::string> up, down;
    for (const Peer& p : peers) (p.available ? up : down).push_back(p.name);
    const std::string& me = service_->options().name;
    if (!up.empty()) EmitStatus(NodeStatus(::relay::NODE_CONNECTED, up, "", me));
    if (!down.empty()) EmitStatus(NodeStatus(::relay::NODE_UNAVAILABLE, down, "", me));
  }

  // History: the newest N across the cluster needs every node's answer before anything goes
  // out (at most N per node); everything else — all flows (--all too), the oldest N,
  // since/until — is merged as it streams in, with bounded memory.
  void Historical() {
    const std::vector<Peer> peers = service_->pool().Snapshot();
    SendStates(peers);
    std::map<std::string, std::string> open;  // address → name, answers not complete yet
    for (const Peer& p : peers) {
      if (!p.available) continue;
      open[p.address] = p.name;
      StartReading(p);
    }
    // With since, each node answers with its first N after it: the cluster's are the oldest N.
    const bool oldest = req_.first() || req_.has_since();
    // All of it (number 0, or --all's 2^64-1: the newest "all" are all) streams as well.
    const bool all = req_.number() == 0 || req_.number() == std::numeric_limits<uint64_t>::max();
    const bool streamed = all || oldest;
    WatermarkMerge merge(absl::InfiniteDuration(), std::numeric_limits<size_t>::max());
    std::map<std::string, std::vector<Response>> collected;
    for (const auto& [address, name] : open) merge.AddPeer(address, Now());
    uint64_t flows_out = 0;
    const std::string& me = service_->options().name;
    auto emit = [&](std::vector<Response> rs) {
      if (oldest && req_.number() > 0) {
        // The oldest N: stop at N flows.
        size_t keep = 0;
        while (keep < rs.size() && flows_out < req_.number()) flows_out += IsFlow(rs[keep++]);
        rs.resize(keep);
      }
      const absl::Time last = rs.empty() ? absl::UnixEpoch() : ResponseTime(rs.back());
      Emit(std::move(rs), last, Now());
    };
    while (!open.empty() && !Cancelled()) {
      for (Inbox& item : TakeInbox(absl::Milliseconds(50))) {
        if (!open.count(item.address)) continue;  // timed out: left out
        if (item.kind == Inbox::kEvents) {
          if (item.events.empty()) continue;
          // Each node answers in time order: nothing older than its last event will follow.
          const absl::Time last = ResponseTime(item.events.back());
          for (Response& r : item.events) {
            if (streamed) {
              merge.Push(item.address, std::move(r), Now());
            } else {
              collected[item.address].push_back(std::move(r));
            }
          }
          if (streamed) merge.Watermark(item.address, last, Now());
        } else if (item.kind == Inbox::kEnded) {
          if (!item.error.empty()) {
            EmitStatus(NodeStatus(::relay::NODE_ERROR, {open[item.address]}, item.error, me));
          }
          open.erase(item.address);
          merge.RemovePeer(item.address);
        }
      }
      for (const std::string& address : CancelSilentPeers()) {
        if (!open.count(address)) continue;
        EmitStatus(NodeStatus(
            ::relay::NODE_ERROR, {open[address]},
            absl::StrCat(
                "no answer for ", FormatGoDuration(service_->options().peer_timeout),
                streamed ? "; the rest of its flows are left out" : "; its flows are left out"),
            me));
        open.erase(address);
        merge.RemovePeer(address);
        collected.erase(address);  // a partial history would misplace the global newest N
      }
      if (streamed) {
        emit(merge.Release(Now()));
        if (oldest && req_.number() > 0 && flows_out >= req_.number()) break;
      }
    }
    CancelPeers();
    JoinReaders();
    if (Cancelled()) {
      Close(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
      return;
    }
    if (streamed) {
      emit(merge.Release(Now()));
    } else {
      HistoricalMerge newest(req_.number(), false);
      for (auto& [address, rs] : collected) newest.AddStream(std::move(rs));
      emit(newest.Take());
    }
    Close(grpc::Status::OK);
  }

  // Cancels the calls that sent nothing for peer_timeout, so one hung node never stalls the
  // cluster's answer for longer; returns their addresses.
  std::vector<std::string> CancelSilentPeers() {
    const absl::Duration timeout = service_->options().peer_timeout;
    const int64_t now = absl::ToUnixNanos(Now());
    std::vector<std::string> silent;
    std::lock_guard<std::mutex> lock(calls_mu_);
    for (auto& c : calls_) {
      if (c->done || c->timed_out || c->held_back) continue;
      if (now - c->last_heard_ns.load() <= absl::ToInt64Nanoseconds(timeout)) continue;
      c->timed_out = true;
      c->Cancel();
      silent.push_back(c->peer.address);
      FLOWSCOPE_LOG_WARN("{} ({}) sent nothing for {}; answering without it", c->peer.name,
                         c->peer.address, FormatGoDuration(timeout));
    }
    return silent;
  }

  void Follow() {
    const RelayOptions& options = service_->options();
    const std::string& me = options.name;
    SendStates(service_->pool().Snapshot());
    WatermarkMerge merge(options.peer_timeout, kMaxBuffered);
    std::map<std::string, std::string> streaming;  // address → node name, streams open
    std::set<std::string> stalled;                 // reported as stalled
    std::set<std::string> joining;                 // added after the start, not yet announced
    bool hubble_peers = false;
    bool first_round = true;
    absl::Time next_peer_check = absl::InfinitePast();
    while (!Cancelled()) {
      absl::Time now = Now();
      if (now >= next_peer_check) {
        next_peer_check = now + options.peer_update_interval;
        for (const Peer& p : service_->pool().Snapshot()) {
          if (!p.available || streaming.count(p.address)) continue;
          streaming[p.address] = p.name;
          merge.AddPeer(p.address, now);
          // Peers there at the start were announced with the others; later ones once their
          // stream is open (their flows from then on are part of it).
          if (!first_round) joining.insert(p.address);
          StartReading(p);
        }
        first_round = false;
      }
      std::deque<Inbox> items = TakeInbox(absl::Milliseconds(10));
      now = Now();
      for (Inbox& item : items) {
        if (item.kind != Inbox::kEnded && joining.erase(item.address) > 0) {
          EmitStatus(NodeStatus(::relay::NODE_CONNECTED, {streaming[item.address]}, "", me));
        }
        switch (item.kind) {
          case Inbox::kEvents:
            for (Response& r : item.events) merge.Push(item.address, std::move(r), now);
            if (item.watermark) merge.Watermark(item.address, *item.watermark, now);
            break;
          case Inbox::kHubbleOnly:
            merge.AssumeLag(item.address, options.sort_buffer_drain);
            if (!hubble_peers) merge.set_max_buffered(std::max<size_t>(options.sort_buffer_len, 1));
            hubble_peers = true;
            break;
          case Inbox::kEnded: {
            merge.RemovePeer(item.address);
            stalled.erase(item.address);
            joining.erase(item.address);
            const std::string name = streaming[item.address];
            streaming.erase(item.address);  // picked up again when it is back
            if (!item.error.empty()) {
              EmitStatus(NodeStatus(::relay::NODE_ERROR, {name}, item.error, me));
            }
            break;
          }
        }
      }
      ReportStalls(merge.Stalled(now), streaming, &stalled);
      if (const uint64_t dropped = TakeDroppedIfRoom()) EmitStatus(DroppedNotice(dropped, me));
      std::vector<Response> out = merge.Release(now);
      // No live peer holds anything back: promise only what cannot be waited for any more.
      const absl::Time promise = merge.low_watermark().value_or(now - options.peer_timeout);
      service_->ReportMergeLag(this, std::max(absl::ZeroDuration(), now - promise));
      Emit(std::move(out), promise, now);
    }
    service_->ForgetMergeLag(this);
    CancelPeers();
    JoinReaders();
    // The reactor must finish even when the client went away.
    Close(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  // A peer silent for the timeout no longer holds the stream back: said once, and said again
  // when it is back.
  void ReportStalls(const std::vector<std::string>& now_stalled,
                    const std::map<std::string, std::string>& names, std::set<std::string>* seen) {
    const RelayOptions& options = service_->options();
    const std::set<std::string> current(now_stalled.begin(), now_stalled.end());
    for (const std::string& address : current) {
      if (!seen->insert(address).second) continue;
      const std::string& name = names.at(address);
      FLOWSCOPE_LOG_WARN("{} ({}) sent nothing for {}; following without it", name, address,
                         FormatGoDuration(options.peer_timeout));
      EmitStatus(NodeStatus(::relay::NODE_ERROR, {name},
                            absl::StrCat("no data for ", FormatGoDuration(options.peer_timeout),
                                         "; the stream goes on without it until it answers"),
                            options.name));
    }
    for (auto it = seen->begin(); it != seen->end();) {
      if (current.count(*it)) {
        ++it;
        continue;
      }
      EmitStatus(NodeStatus(::relay::NODE_CONNECTED, {names.at(*it)}, "", options.name));
      it = seen->erase(it);
    }
  }

  // What the client did not read in time (follow), once there is room to say so.
  uint64_t TakeDroppedIfRoom() {
    std::lock_guard<std::mutex> lock(mu_);
    if (dropped_ == 0 || queue_.size() >= max_queued_ / 2) return 0;
    return std::exchange(dropped_, 0);
  }

  Response DroppedNotice(uint64_t count, const std::string& relay_name) {
    ::observer::GetFlowsResponse r;
    flow::LostEvent* lost = r.mutable_lost_events();
    lost->set_source(flow::HUBBLE_RING_BUFFER);
    lost->set_num_events_lost(count);
    lost->mutable_cpu()->set_value(0);
    r.set_node_name(relay_name);
    *r.mutable_time() = ToTimestamp(Now());
    return ToRaw(r);
  }

  static constexpr int kMaxBatchEvents = 1024;
  // Peer messages waiting for the merge (history).
  static constexpr size_t kMaxInbox = 256;
  static constexpr absl::Duration kHeartbeat = absl::Milliseconds(25);
  // Responses a follow merge may hold while waiting for promises (bounded memory).
  static constexpr size_t kMaxBuffered = 1 << 18;

  RelayService* service_;
  const ::observer::GetFlowsRequest req_;
  const size_t max_queued_ = std::max<size_t>(2, service_->options().max_queued);
  std::atomic<int> refs_{2};  // the producer's and gRPC's (OnDone)

  // Batched output (producer thread).
  Batch pending_;
  absl::Time watermark_ = absl::UnixEpoch();
  absl::Time last_batch_ = absl::InfinitePast();

  std::mutex mu_;  // writing state
  std::condition_variable queue_space_cv_;
  uint64_t dropped_ = 0;  // follow: responses the client was too slow for
  bool producer_waiting_ = false;
  std::deque<grpc::ByteBuffer> queue_;
  grpc::ByteBuffer current_;
  bool writing_ = false;
  bool closed_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
  grpc::Status status_;

  std::mutex calls_mu_;
  std::vector<std::unique_ptr<PeerCall>> calls_;

  std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  std::condition_variable inbox_space_cv_;
  std::deque<Inbox> inbox_;
};

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

RelayService::RelayService(PeerPool& pool, RelayOptions options)
    : pool_(pool),
      options_(std::move(options)),
      clock_(options_.clock ? *options_.clock : Clock::Real()),
      batch_service_(this) {}

RelayService::~RelayService() { threads_.JoinAll(); }

template <bool kBatched>
grpc::ServerWriteReactor<grpc::ByteBuffer>* RelayService::OpenStream(
    const grpc::ByteBuffer* request) {
  ::observer::GetFlowsRequest req;
  grpc::ByteBuffer copy(*request);
  if (!grpc::SerializationTraits<::observer::GetFlowsRequest>::Deserialize(&copy, &req).ok()) {
    return new FinishNow<grpc::ByteBuffer>(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, std::string(kUndecodableRequest)));
  }
  if (absl::Status s = CheckFlowsRequest(req); !s.ok()) {
    return new FinishNow<grpc::ByteBuffer>(ToGrpcStatus(s));
  }
  if (active_streams_.fetch_add(1) >= options_.max_streams) {
    active_streams_.fetch_sub(1);
    return new FinishNow<grpc::ByteBuffer>(
        grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                     absl::StrCat("too many concurrent flow streams (", options_.max_streams,
                                  "); try again later")));
  }
  return new RelayStream<kBatched>(this, std::move(req));
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* RelayService::GetFlows(
    grpc::CallbackServerContext*, const grpc::ByteBuffer* request) {
  return OpenStream<false>(request);
}

grpc::ServerWriteReactor<grpc::ByteBuffer>* RelayBatchService::GetFlowBatches(
    grpc::CallbackServerContext*, const grpc::ByteBuffer* request) {
  return relay_->OpenStream<true>(request);
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

namespace {

std::vector<const Peer*> Available(const std::vector<Peer>& peers) {
  std::vector<const Peer*> out;
  for (const Peer& p : peers) {
    if (p.available) out.push_back(&p);
  }
  return out;
}

using StatusAnswers = std::vector<PeerAnswer<::observer::ServerStatusResponse>>;

// ServerStatus of each peer, at once, within `timeout`; then `finish(answers)`.
void StatusOf(const std::vector<const Peer*>& peers, absl::Duration timeout,
              std::function<void(StatusAnswers&)> finish) {
  static const ::observer::ServerStatusRequest kRequest;
  FanOut<::observer::ServerStatusResponse>(
      peers, timeout,
      [](const Peer& p, grpc::ClientContext* ctx, ::observer::ServerStatusResponse* resp,
         std::function<void(grpc::Status)> done) -> std::shared_ptr<void> {
        std::shared_ptr<::observer::Observer::Stub> stub = ::observer::Observer::NewStub(p.channel);
        stub->async()->ServerStatus(ctx, &kRequest, resp, std::move(done));
        return stub;
      },
      std::move(finish));
}

}  // namespace

absl::Duration RelayService::unary_timeout() const {
  // A stopped peer holds a status or list answer up for the peer timeout at most.
  return std::min(options_.request_timeout, options_.peer_timeout);
}

grpc::ServerUnaryReactor* RelayService::ServerStatus(grpc::CallbackServerContext* ctx,
                                                     const ::observer::ServerStatusRequest*,
                                                     ::observer::ServerStatusResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const std::vector<Peer> peers = pool_.Snapshot();
  std::vector<std::string> unavailable;
  for (const Peer& p : peers) {
    if (!p.available) unavailable.push_back(p.name);
  }
  StatusOf(
      Available(peers), unary_timeout(),
      [reactor, resp, unavailable](StatusAnswers& answers) mutable {
        uint32_t connected = 0;
        for (const auto& a : answers) {
          if (!a.status.ok()) {
            // Reachable but not answering (stopped, overloaded): not connected now.
            unavailable.push_back(a.peer->name);
            continue;
          }
          ++connected;
          const ::observer::ServerStatusResponse& s = a.response;
          resp->set_num_flows(resp->num_flows() + s.num_flows());
          resp->set_max_flows(resp->max_flows() + s.max_flows());
          resp->set_seen_flows(resp->seen_flows() + s.seen_flows());
          resp->set_uptime_ns(std::max(resp->uptime_ns(), s.uptime_ns()));
          resp->set_flows_rate(resp->flows_rate() + s.flows_rate());
        }
        std::sort(unavailable.begin(), unavailable.end());
        resp->mutable_num_connected_nodes()->set_value(connected);
        resp->mutable_num_unavailable_nodes()->set_value(static_cast<uint32_t>(unavailable.size()));
        for (size_t i = 0; i < unavailable.size() && i < 10; ++i) {
          resp->add_unavailable_nodes(unavailable[i]);
        }
        resp->set_version(std::string(kRelayVersion));
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerUnaryReactor* RelayService::GetNodes(grpc::CallbackServerContext* ctx,
                                                 const ::observer::GetNodesRequest*,
                                                 ::observer::GetNodesResponse* resp) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const std::vector<Peer> peers = pool_.Snapshot();
  StatusOf(Available(peers), unary_timeout(), [reactor, resp, peers](StatusAnswers& answers) {
    std::map<std::string, const PeerAnswer<::observer::ServerStatusResponse>*> by_address;
    for (const auto& a : answers) by_address[a.peer->address] = &a;
    for (const Peer& p : peers) {
      ::observer::Node* n = resp->add_nodes();
      n->set_name(p.name);
      n->set_address(p.address);
      n->mutable_tls()->set_enabled(p.tls);
      if (p.tls) n->mutable_tls()->set_server_name(p.tls_server_name);
      auto it = by_address.find(p.address);
      if (it == by_address.end()) {
        n->set_state(::relay::NODE_UNAVAILABLE);
        continue;
      }
      const grpc::Status& st = it->second->status;
      if (!st.ok()) {
        // Unreachable, or no answer in time: unavailable; an answer that is an error: an error.
        const bool silent = st.error_code() == grpc::StatusCode::UNAVAILABLE ||
                            st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
                            st.error_code() == grpc::StatusCode::CANCELLED;
        n->set_state(silent ? ::relay::NODE_UNAVAILABLE : ::relay::NODE_ERROR);
        continue;
      }
      const ::observer::ServerStatusResponse& s = it->second->response;
      n->set_state(::relay::NODE_CONNECTED);
      n->set_version(s.version());
      n->set_uptime_ns(s.uptime_ns());
      n->set_num_flows(s.num_flows());
      n->set_max_flows(s.max_flows());
      n->set_seen_flows(s.seen_flows());
    }
    reactor->Finish(grpc::Status::OK);
  });
  return reactor;
}

grpc::ServerUnaryReactor* RelayHistoryService::GetHistoryStatus(
    grpc::CallbackServerContext* ctx, const ::flowscope::v1::HistoryStatusRequest*,
    ::flowscope::v1::HistoryStatusResponse* resp) {
  static const ::flowscope::v1::HistoryStatusRequest kRequest;
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  FanOut<::flowscope::v1::HistoryStatusResponse>(
      Available(relay_->pool().Snapshot()), relay_->options().request_timeout,
      [](const Peer& p, grpc::ClientContext* c, ::flowscope::v1::HistoryStatusResponse* r,
         std::function<void(grpc::Status)> done) -> std::shared_ptr<void> {
        std::shared_ptr<::flowscope::v1::History::Stub> stub =
            ::flowscope::v1::History::NewStub(p.channel);
        stub->async()->GetHistoryStatus(c, &kRequest, r, std::move(done));
        return stub;
      },
      [reactor, resp](std::vector<PeerAnswer<::flowscope::v1::HistoryStatusResponse>>& answers) {
        for (const auto& a : answers) {
          // A Hubble peer has no history service: it has no nodes to report.
          if (!a.status.ok()) continue;
          for (const auto& n : a.response.nodes()) *resp->add_nodes() = n;
        }
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

grpc::ServerUnaryReactor* RelayService::GetNamespaces(grpc::CallbackServerContext* ctx,
                                                      const ::observer::GetNamespacesRequest*,
                                                      ::observer::GetNamespacesResponse* resp) {
  static const ::observer::GetNamespacesRequest kRequest;
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  FanOut<::observer::GetNamespacesResponse>(
      Available(pool_.Snapshot()), unary_timeout(),
      [](const Peer& p, grpc::ClientContext* c, ::observer::GetNamespacesResponse* r,
         std::function<void(grpc::Status)> done) -> std::shared_ptr<void> {
        std::shared_ptr<::observer::Observer::Stub> stub = ::observer::Observer::NewStub(p.channel);
        stub->async()->GetNamespaces(c, &kRequest, r, std::move(done));
        return stub;
      },
      [reactor, resp](std::vector<PeerAnswer<::observer::GetNamespacesResponse>>& answers) {
        std::set<std::pair<std::string, std::string>> all;
        for (const auto& a : answers) {
          if (!a.status.ok()) continue;
          for (const auto& n : a.response.namespaces()) all.emplace(n.cluster(), n.namespace_());
        }
        for (const auto& [cluster, ns] : all) {
          ::observer::Namespace* n = resp->add_namespaces();
          n->set_cluster(cluster);
          n->set_namespace_(ns);
        }
        reactor->Finish(grpc::Status::OK);
      });
  return reactor;
}

}  // namespace flowscope::relay
