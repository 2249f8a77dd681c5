#include "relay/flow_stream.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "api/grpc_status.h"
#include "api/grpc_util.h"
#include "api/logging.h"
#include "api/time_parse.h"
#include "relay/client_writer.h"
#include "relay/merge.h"
#include "relay/peer_stream.h"
#include "relay/relay_service.h"

namespace flowscope::relay {
namespace {

Response MakeNodeStatus(::relay::NodeState state, const std::vector<std::string>& names,
                        const std::string& message, const std::string& relay_name,
                        absl::Time time) {
  ::observer::GetFlowsResponse r;
  ::relay::NodeStatusEvent* s = r.mutable_node_status();
  s->set_state_change(state);
  for (const std::string& n : names) s->add_node_names(n);
  if (!message.empty()) s->set_message(message);
  r.set_node_name(relay_name);
  *r.mutable_time() = ToTimestamp(time);
  return ToRaw(r);
}

Response MakeLost(uint64_t count, const std::string& node, absl::Time time) {
  ::observer::GetFlowsResponse r;
  flow::LostEvent* lost = r.mutable_lost_events();
  lost->set_source(flow::HUBBLE_RING_BUFFER);
  lost->set_num_events_lost(count);
  lost->mutable_cpu()->set_value(0);
  r.set_node_name(node);
  *r.mutable_time() = ToTimestamp(time);
  return ToRaw(r);
}

class Stream final : public QueuedWriter,
                     public PeerSink,
                     public RelayService::StreamHandle,
                     public std::enable_shared_from_this<Stream> {
 public:
  Stream(RelayService* service, ::observer::GetFlowsRequest req, bool batched)
      : QueuedWriter(
            Limits{std::max<size_t>(2, service->options().max_queued),
                   std::max<size_t>(1 << 16, service->options().max_queued_bytes), req.follow()},
            &service->counters()),
        service_(service),
        req_(std::move(req)),
        batched_(batched),
        follow_(req_.follow()),
        merge_(follow_ ? service->options().peer_timeout : absl::InfiniteDuration(),
               follow_ ? kMaxBuffered : std::numeric_limits<size_t>::max()),
        newest_(req_.number(), false) {
    // Newest N: every node's answer first. Everything else streams: all of it (number 0, or
    // --all's 2^64-1: the newest "all" are all), the oldest N, and since (each node answers
    // with its first N after it: the cluster's are the oldest N).
    oldest_ = req_.first() || req_.has_since();
    const bool all = req_.number() == 0 || req_.number() == std::numeric_limits<uint64_t>::max();
    streamed_ = follow_ || all || oldest_;
  }

  ~Stream() override {
    service_->counters().buffered_bytes.fetch_sub(accounted_bytes_, std::memory_order_relaxed);
    service_->StreamGone(this);
  }

  void Begin() {
    self_ = shared_from_this();
    service_->Register(self_);
    Wake();
  }

  // --- RelayService::StreamHandle ---

  // Asks for a step (coalesced: at most one queued or running, plus one more if asked while
  // running).
  void Wake() override {
    int s = sched_.load(std::memory_order_acquire);
    for (;;) {
      if (s == kAgain) return;
      const int next = s == kIdle ? kQueued : kAgain;
      if (sched_.compare_exchange_weak(s, next, std::memory_order_acq_rel)) break;
    }
    if (s != kIdle) return;
    service_->workers().Post([self = shared_from_this()] { self->Run(); });
  }

  void CancelPeers() override {
    std::vector<std::shared_ptr<PeerStream>> calls;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_peers_ = true;
      for (auto& [id, slot] : slots_) {
        if (slot.call) calls.push_back(slot.call);
        slot.paused = false;
      }
    }
    for (auto& c : calls) c->Cancel();
  }

 private:
  enum { kIdle = 0, kQueued = 1, kAgain = 2 };

  // --- PeerSink (gRPC's callback threads) ---

  bool OnPeerMessage(uint64_t id, PeerMessage m) override {
    bool more = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = slots_.find(id);
      if (it == slots_.end() || stopping_peers_) return true;  // on its way out
      Slot& slot = it->second;
      slot.last_heard_ns = absl::ToUnixNanos(Now());
      slot.inbox_responses += m.events.size();
      slot.inbox_bytes += m.bytes;
      inbox_bytes_ += m.bytes;
      accounted_bytes_ += static_cast<int64_t>(m.bytes);
      service_->counters().buffered_bytes.fetch_add(static_cast<int64_t>(m.bytes),
                                                    std::memory_order_relaxed);
      inbox_.push_back({id, false, std::move(m), grpc::Status::OK, false});
      more = !ShouldPauseLocked(slot);
      slot.paused = !more;
    }
    // A follow stream over many peers hears from each every heartbeat: a step per message would
    // cost more than it brings. Within kMinStepGap of the last step, the tick (or the step
    // already asked for) takes it; a paused peer always asks.
    const int64_t now_ns = absl::ToUnixNanos(absl::Now());
    if (!follow_ || !more ||
        now_ns - last_step_ns_.load(std::memory_order_relaxed) >= kMinStepGapNs) {
      Wake();
    }
    return more;
  }

  void OnPeerEnded(uint64_t id, const grpc::Status& status, bool any) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = slots_.find(id);
      if (it == slots_.end()) return;
      it->second.ended = true;
      it->second.paused = false;
      inbox_.push_back({id, true, {}, status, any});
    }
    Wake();
  }

  // --- QueuedWriter (gRPC's callback threads) ---
  void OnRoom() override { Wake(); }
  void OnGone() override {
    CancelPeers();
    Wake();
  }
  void OnFinished() override {
    std::shared_ptr<Stream> self;
    std::lock_guard<std::mutex> lock(mu_);
    self = std::move(self_);  // gRPC is done with it; peers and queued steps may still hold it
  }

  // --- steps (a worker; one at a time) ---

  void Run() {
    for (;;) {
      last_step_ns_.store(absl::ToUnixNanos(absl::Now()), std::memory_order_relaxed);
      Step();
      int s = kQueued;
      if (sched_.compare_exchange_strong(s, kIdle, std::memory_order_acq_rel)) return;
      sched_.store(kQueued, std::memory_order_release);  // asked again meanwhile
    }
  }

  absl::Time Now() const { return service_->clock().Now(); }

  struct Slot {
    std::string address;
    std::shared_ptr<PeerStream> call;
    size_t inbox_responses = 0;
    size_t merge_responses = 0;
    size_t inbox_bytes = 0;
    size_t merge_bytes = 0;
    int64_t last_heard_ns = 0;
    bool paused = false;
    bool ended = false;
  };
  struct InboxItem {
    uint64_t id;
    bool ended;
    PeerMessage message;
    grpc::Status status;  // ended
    bool any;             // ended: whether it had sent anything
  };
  // A peer taking part (strand only).
  struct PeerInfo {
    std::string name;
    uint64_t id = 0;
    PeerStream::Method method = PeerStream::kBatches;
    bool joining = false;   // follow: added after the start, announced when it answers
    bool answered = false;  // history: sent something
  };

  // A peer reads on while what it has waiting is under the cap and the relay is within its
  // memory budget — or while the merge has nothing of it (it may be the one waited for).
  bool ShouldPauseLocked(const Slot& slot) const {
    const size_t waiting = slot.inbox_responses + slot.merge_responses;
    if (waiting >= kPeerHigh || slot.inbox_bytes + slot.merge_bytes >= kPeerHighBytes) return true;
    return waiting > 0 && OverBudget();
  }
  bool OverBudget() const {
    return service_->counters().buffered_bytes.load(std::memory_order_relaxed) >
           static_cast<int64_t>(service_->options().stream_memory_budget);
  }

  void OpenPeer(const Peer& peer, PeerStream::Method method) {
    uint64_t id;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_peers_) return;
      id = next_id_++;
      Slot& slot = slots_[id];
      slot.address = peer.address;
      slot.last_heard_ns = absl::ToUnixNanos(Now());
    }
    PeerInfo& info = peers_[peer.address];
    info.name = peer.name;
    info.id = id;
    info.method = method;
    std::shared_ptr<PeerStream> call =
        PeerStream::Start(shared_from_this(), id, peer, req_, method);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = slots_.find(id);
    if (it == slots_.end()) return;
    it->second.call = std::move(call);
    if (stopping_peers_) it->second.call->Cancel();
  }

  // The peer's messages and ends since the last step.
  std::deque<InboxItem> TakeInbox() {
    std::deque<InboxItem> items;
    std::lock_guard<std::mutex> lock(mu_);
    items.swap(inbox_);
    inbox_bytes_ = 0;
    for (auto& [id, slot] : slots_) {
      slot.inbox_responses = 0;
      slot.inbox_bytes = 0;
    }
    return items;
  }

  // After a step: what each peer has in the merge, the calls that may read on, the bytes held.
  void Settle(absl::Time now) {
    std::vector<std::shared_ptr<PeerStream>> resume;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, slot] : slots_) {
        const WatermarkMerge::Load load = merge_.load(slot.address);
        slot.merge_responses = load.responses;
        slot.merge_bytes = load.bytes;
        if (!slot.paused) continue;
        // Held back by us, not silent: alive for the merge and the timeouts.
        slot.last_heard_ns = absl::ToUnixNanos(now);
        if (follow_) merge_.Touch(slot.address, now);
        const size_t waiting = slot.inbox_responses + slot.merge_responses;
        if (waiting == 0 ||
            (waiting < kPeerLow && slot.inbox_bytes + slot.merge_bytes < kPeerHighBytes / 2 &&
             !OverBudget())) {
          slot.paused = false;
          if (slot.call) resume.push_back(slot.call);
        }
      }
      const int64_t held =
          static_cast<int64_t>(inbox_bytes_ + merge_.buffered_bytes() + newest_.bytes());
      service_->counters().buffered_bytes.fetch_add(held - accounted_bytes_,
                                                    std::memory_order_relaxed);
      accounted_bytes_ = held;
    }
    for (auto& c : resume) c->Resume();
  }

  void Step() {
    if (done_) return;
    if (Gone() || service_->stopping()) {
      End(Gone() ? grpc::Status(grpc::StatusCode::CANCELLED, "cancelled")
                 : grpc::Status(grpc::StatusCode::UNAVAILABLE, "the relay is shutting down"));
      return;
    }
    const absl::Time now = Now();
    if (!started_) {
      started_ = true;
      const std::vector<Peer> peers = service_->pool().Snapshot();
      SendStates(peers);
      if (follow_) {
        next_peer_check_ = now + service_->options().peer_update_interval;
      }
      for (const Peer& p : peers) {
        if (!p.available) continue;
        merge_.AddPeer(p.address, now);
        OpenPeer(p, PeerStream::kBatches);
      }
    }
    follow_ ? FollowStep(now) : HistoryStep(now);
  }

  void End(const grpc::Status& status) {
    done_ = true;
    service_->ForgetMergeLag(this);
    CancelPeers();
    if (batched_ && pending_events_ > 0) SendBatch(Now());
    Close(status);
  }

  // --- history ---

  void HistoryStep(absl::Time now) {
    // A client that does not read holds the merge, and through it the peers, back.
    if (streamed_ && Full()) return;
    const std::string& me = service_->options().name;
    for (InboxItem& item : TakeInbox()) {
      const auto info = Current(item.id);
      if (!info) continue;
      const std::string address = (*info)->first;
      if (!item.ended) {
        (*info)->second.answered = true;
        std::optional<absl::Time> last;
        for (Response& r : item.message.events) {
          if (r.is_node_status()) {
            // A relay below tells of its nodes: passed on as it comes, outside the order (it is
            // stamped with when it was said, not with a place among the flows that follow).
            EmitStatus(std::move(r));
            continue;
          }
          last = ResponseTime(r);
          if (streamed_) {
            merge_.Push(address, std::move(r), now);
          } else {
            newest_.Add(std::move(r));
          }
        }
        // Each node answers in time order: nothing older than its last event will follow.
        if (streamed_ && last) merge_.Watermark(address, *last, now);
        continue;
      }
      if (ReopenAsHubble(item, address)) continue;
      // Calls the stream cancels itself are dropped before their end comes: any failure here,
      // CANCELLED too (a node shutting down cancels its streams), is the node's.
      if (!item.status.ok()) {
        PeerFailed(address, item.status);
        EmitStatus(NodeStatus(::relay::NODE_ERROR, {(*info)->second.name},
                              DescribeGrpcError(item.status), me));
      }
      ForgetPeer(item.id, address);
    }
    CancelSilentPeers(now);
    if (streamed_) {
      std::vector<Response> out = merge_.Release(now, kMaxReleasePerStep);
      const bool more = out.size() == kMaxReleasePerStep;
      EmitHistory(std::move(out), now);
      if (oldest_ && req_.number() > 0 && flows_out_ >= req_.number()) {
        End(grpc::Status::OK);  // the oldest N are out
        return;
      }
      if (more) Wake();
    }
    if (peers_.empty()) {
      if (streamed_) {
        if (merge_.buffered() > 0) {
          Settle(now);
          Wake();  // the rest, a step at a time
          return;
        }
      } else {
        EmitHistory(newest_.Take(), now);
      }
      End(grpc::Status::OK);
      return;
    }
    Settle(now);
  }

  void EmitHistory(std::vector<Response> rs, absl::Time now) {
    if (oldest_ && req_.number() > 0) {
      size_t keep = 0;
      while (keep < rs.size() && flows_out_ < req_.number()) flows_out_ += IsFlow(rs[keep++]);
      rs.resize(keep);
    }
    const absl::Time last = rs.empty() ? absl::UnixEpoch() : ResponseTime(rs.back());
    Emit(std::move(rs), last, now);
  }

  // Cancels the calls that sent nothing for the peer timeout, so one hung node never stalls the
  // cluster's answer for longer (what it sent is kept).
  void CancelSilentPeers(absl::Time now) {
    const absl::Duration timeout = service_->options().peer_timeout;
    std::vector<std::pair<uint64_t, std::shared_ptr<PeerStream>>> silent;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, slot] : slots_) {
        if (slot.ended || slot.paused || slot.inbox_responses > 0) continue;
        if (absl::ToUnixNanos(now) - slot.last_heard_ns <= absl::ToInt64Nanoseconds(timeout)) {
          continue;
        }
        silent.emplace_back(id, slot.call);
      }
    }
    const std::string& me = service_->options().name;
    for (auto& [id, call] : silent) {
      const auto info = Current(id);
      if (!info) continue;
      const std::string address = (*info)->first;
      const std::string name = (*info)->second.name;
      const bool answered = (*info)->second.answered;
      FLOWSCOPE_LOG_WARN("{} ({}) sent nothing for {}; answering without it", name, address,
                         FormatGoDuration(timeout));
      EmitStatus(NodeStatus(::relay::NODE_ERROR, {name},
                            absl::StrCat("no answer for ", FormatGoDuration(timeout),
                                         answered ? "; the rest of its flows are left out"
                                                  : "; its flows are left out"),
                            me));
      ForgetPeer(id, address);
      if (call) call->Cancel();
    }
  }

  // --- follow ---

  void FollowStep(absl::Time now) {
    const RelayOptions& options = service_->options();
    const std::string& me = options.name;
    if (now >= next_peer_check_) {
      next_peer_check_ = now + options.peer_update_interval;
      for (const Peer& p : service_->pool().Snapshot()) {
        if (!p.available || peers_.count(p.address)) continue;
        merge_.AddPeer(p.address, now);
        OpenPeer(p, PeerStream::kBatches);
        // Its flows from now on are part of the stream: announced once it answers.
        peers_[p.address].joining = true;
      }
    }
    for (InboxItem& item : TakeInbox()) {
      const auto info = Current(item.id);
      if (!info) continue;
      const std::string address = (*info)->first;
      PeerInfo& peer = (*info)->second;
      if (!item.ended) {
        if (peer.joining) {
          peer.joining = false;
          failed_.erase(peer.name);
          EmitStatus(NodeStatus(::relay::NODE_CONNECTED, {peer.name}, "", me));
        }
        for (Response& r : item.message.events) merge_.Push(address, std::move(r), now);
        if (item.message.watermark) merge_.Watermark(address, *item.message.watermark, now);
        continue;
      }
      if (ReopenAsHubble(item, address)) {
        merge_.AssumeLag(address, options.sort_buffer_drain);
        if (!hubble_peers_) merge_.set_max_buffered(std::max<size_t>(options.sort_buffer_len, 1));
        hubble_peers_ = true;
        continue;
      }
      merge_.RemovePeer(address);
      stalled_.erase(address);
      const std::string name = peer.name;
      ForgetPeer(item.id, address);  // picked up again when it is back
      // Not cancelled by the stream (those calls are dropped before their end comes): a follow
      // stream ends only when the node goes (shutting down, it cancels its streams).
      PeerFailed(address, item.status);
      // Said once: retries of a node that stays down are not news until it is back.
      if (failed_.insert(name).second) {
        EmitStatus(NodeStatus(
            ::relay::NODE_ERROR, {name},
            item.status.ok() ? "the node ended its stream" : DescribeGrpcError(item.status), me));
      }
    }
    ReportStalls(merge_.Stalled(now));
    if (const uint64_t dropped = TakeDroppedIfRoom()) {
      EmitStatus(MakeLost(dropped, me, OutputTime(now)));
    }
    std::vector<Response> out = merge_.Release(now, kMaxReleasePerStep);
    const bool more = out.size() == kMaxReleasePerStep;
    // No live peer holds anything back: promise only what cannot be waited for any more.
    absl::Time promise = merge_.low_watermark().value_or(now - options.peer_timeout);
    if (more) promise = std::min(promise, merge_.floor());
    if (batched_) merge_.Promise(promise);  // passed on: nothing older may follow it
    ReportLate(now);
    service_->ReportMergeLag(this, std::max(absl::ZeroDuration(), now - promise));
    Emit(std::move(out), promise, now);
    Settle(now);
    if (more) Wake();
  }

  // Flows that came after the stream had gone past their time (a node that stalled and came
  // back): never sent out of order — counted, and said in-stream with the node's name.
  void ReportLate(absl::Time now) {
    for (const auto& [address, count] : merge_.TakeLate()) {
      auto it = peers_.find(address);
      const std::string name = it != peers_.end() ? it->second.name : address;
      late_total_ += count;
      FLOWSCOPE_LOG_WARN(
          "{} ({}): {} response(s) arrived after the stream had passed their time; "
          "reported as lost",
          name, address, count);
      EmitStatus(MakeLost(count, name, OutputTime(now)));
    }
  }

  // The time of a notice: where the output is, so it never goes back.
  absl::Time OutputTime(absl::Time now) const {
    const absl::Time floor = merge_.floor();
    return floor == absl::InfinitePast() ? now : floor;
  }

  // A peer silent for the timeout no longer holds the stream back: said once, and said again
  // when it is back.
  void ReportStalls(const std::vector<std::string>& now_stalled) {
    const RelayOptions& options = service_->options();
    const std::set<std::string> current(now_stalled.begin(), now_stalled.end());
    for (const std::string& address : current) {
      if (!stalled_.insert(address).second) continue;
      const std::string& name = NameOf(address);
      FLOWSCOPE_LOG_WARN("{} ({}) sent nothing for {}; following without it", name, address,
                         FormatGoDuration(options.peer_timeout));
      EmitStatus(NodeStatus(::relay::NODE_ERROR, {name},
                            absl::StrCat("no data for ", FormatGoDuration(options.peer_timeout),
                                         "; the stream goes on without it until it answers"),
                            options.name));
    }
    for (auto it = stalled_.begin(); it != stalled_.end();) {
      if (current.count(*it)) {
        ++it;
        continue;
      }
      EmitStatus(NodeStatus(::relay::NODE_CONNECTED, {NameOf(*it)}, "", options.name));
      it = stalled_.erase(it);
    }
  }

  // --- peers (strand) ---

  // The peer whose current call `id` is (none for a call that has been replaced or dropped).
  std::optional<std::map<std::string, PeerInfo>::iterator> Current(uint64_t id) {
    std::string address;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = slots_.find(id);
      if (it == slots_.end()) return std::nullopt;
      address = it->second.address;
    }
    auto it = peers_.find(address);
    if (it == peers_.end() || it->second.id != id) return std::nullopt;
    return it;
  }

  const std::string& NameOf(const std::string& address) const {
    auto it = peers_.find(address);
    return it != peers_.end() ? it->second.name : address;
  }

  // A flowscope call that a Hubble peer did not know: the same query through Hubble's API.
  bool ReopenAsHubble(const InboxItem& item, const std::string& address) {
    PeerInfo& info = peers_[address];
    if (item.any || info.method != PeerStream::kBatches ||
        item.status.error_code() != grpc::StatusCode::UNIMPLEMENTED) {
      return false;
    }
    DropSlot(item.id);
    for (const Peer& p : service_->pool().Snapshot()) {
      if (p.address != address) continue;
      OpenPeer(p, PeerStream::kHubbleFlows);
      return true;
    }
    return false;
  }

  void PeerFailed(const std::string& address, const grpc::Status& status) {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
      service_->pool().ReportOffline(address);
    }
  }

  void ForgetPeer(uint64_t id, std::string address) {  // a copy: it may be peers_'s key
    peers_.erase(address);
    merge_.RemovePeer(address);
    DropSlot(id);
  }

  void DropSlot(uint64_t id) {
    std::shared_ptr<PeerStream> call;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = slots_.find(id);
      if (it == slots_.end()) return;
      if (!it->second.ended) call = it->second.call;  // still running: ended here
      slots_.erase(it);
    }
    if (call) call->Cancel();
  }

  // --- output (strand) ---

  Response NodeStatus(::relay::NodeState state, const std::vector<std::string>& names,
                      const std::string& message, const std::string& relay_name) const {
    return MakeNodeStatus(state, names, message, relay_name, Now());
  }

  void SendStates(const std::vector<Peer>& peers) {
    std::vector<std::string> up, down;
    for (const Peer& p : peers) (p.available ? up : down).push_back(p.name);
    const std::string& me = service_->options().name;
    if (!up.empty()) EmitStatus(NodeStatus(::relay::NODE_CONNECTED, up, "", me));
    if (!down.empty()) EmitStatus(NodeStatus(::relay::NODE_UNAVAILABLE, down, "", me));
  }

  // A notice: goes out now, or with the next batch.
  void EmitStatus(Response r) {
    if (batched_) {
      AppendBatchEvent(&pending_, r.bytes());
      ++pending_events_;
      pending_notices_ = true;
    } else {
      Enqueue(ToByteBuffer(r.bytes()), 1, /*keep=*/true);
    }
  }

  // Merged responses in time order, and what the merge can promise after them.
  void Emit(std::vector<Response> rs, absl::Time watermark, absl::Time now) {
    if (!batched_) {
      for (const Response& r : rs) Enqueue(ToByteBuffer(r.bytes()), 1);
      return;
    }
    for (const Response& r : rs) {
      watermark_ = std::max(watermark_, ResponseTime(r));
      AppendBatchEvent(&pending_, r.bytes());
      if (++pending_events_ >= kMaxBatchEvents || pending_.size() >= kMaxBatchBytes) {
        SendBatch(now);
      }
    }
    watermark_ = std::max(watermark_, watermark);
    if (pending_events_ > 0 || now - last_batch_ >= kHeartbeat) SendBatch(now);
  }

  void SendBatch(absl::Time now) {
    AppendBatchWatermark(&pending_, watermark_);
    if (pending_events_ >= kMaxBatchEvents || pending_.size() >= kMaxBatchBytes) {
      full_batch_bytes_ = pending_.size() + pending_.size() / 8;
    }
    Enqueue(TakeByteBuffer(&pending_), static_cast<uint64_t>(pending_events_), pending_notices_);
    // Room for a whole batch (and some) once one was sent: grown once, not doubled up.
    if (pending_.capacity() < full_batch_bytes_) pending_.reserve(full_batch_bytes_);
    pending_events_ = 0;
    pending_notices_ = false;
    last_batch_ = now;
  }

  // A batch closes at this many events or bytes (well under gRPC's 4 MiB receive default).
  static constexpr int kMaxBatchEvents = 4096;
  static constexpr size_t kMaxBatchBytes = size_t{1} << 20;
  static constexpr size_t kMaxReleasePerStep = 8192;
  // Responses one peer may have waiting in a stream before its reads pause (and resume below
  // the low mark).
  static constexpr size_t kPeerHigh = 4096;
  static constexpr size_t kPeerLow = kPeerHigh / 2;
  static constexpr size_t kPeerHighBytes = size_t{1} << 20;  // and bytes
  static constexpr absl::Duration kHeartbeat = absl::Milliseconds(25);
  // Responses a follow merge may hold while waiting for promises.
  static constexpr size_t kMaxBuffered = 1 << 18;

  RelayService* const service_;
  const ::observer::GetFlowsRequest req_;
  const bool batched_;
  const bool follow_;
  bool oldest_ = false;
  bool streamed_ = true;
  std::atomic<int> sched_{kIdle};
  std::atomic<int64_t> last_step_ns_{0};  // wall clock, when the last step began
  static constexpr int64_t kMinStepGapNs = 5'000'000;

  // Strand state (one step at a time).
  bool started_ = false;
  bool done_ = false;
  WatermarkMerge merge_;
  HistoricalMerge newest_;
  std::map<std::string, PeerInfo> peers_;  // by address: the ones taking part
  std::set<std::string> stalled_;          // follow: reported as stalled
  std::set<std::string> failed_;           // follow: reported failed, not back yet
  absl::Time next_peer_check_ = absl::InfinitePast();
  bool hubble_peers_ = false;
  uint64_t flows_out_ = 0;
  uint64_t late_total_ = 0;
  std::string pending_;          // the encoded batch being built
  size_t full_batch_bytes_ = 0;  // the size of the last batch of kMaxBatchEvents
  int pending_events_ = 0;
  bool pending_notices_ = false;  // the batch carries node notices: never dropped
  absl::Time watermark_ = absl::UnixEpoch();
  absl::Time last_batch_ = absl::InfinitePast();

  // Shared with the callbacks.
  std::mutex mu_;
  std::map<uint64_t, Slot> slots_;
  std::deque<InboxItem> inbox_;
  size_t inbox_bytes_ = 0;
  int64_t accounted_bytes_ = 0;  // what this stream adds to the service's buffered bytes
  uint64_t next_id_ = 1;
  bool stopping_peers_ = false;
  std::shared_ptr<Stream> self_;  // gRPC's reference, until OnDone
};

}  // namespace

grpc::ServerWriteReactor<grpc::ByteBuffer>* StartFlowStream(RelayService* service,
                                                            ::observer::GetFlowsRequest request,
                                                            bool batched) {
  auto stream = std::make_shared<Stream>(service, std::move(request), batched);
  stream->Begin();
  return stream.get();
}

}  // namespace flowscope::relay
