#include "relay/relay_service.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "api/grpc_status.h"
#include "api/logging.h"
#include "api/time_parse.h"
#include "relay/merge.h"

namespace flowscope::relay {
namespace {

google::protobuf::Timestamp Now() {
  google::protobuf::Timestamp ts;
  const int64_t ns = absl::ToUnixNanos(absl::Now());
  ts.set_seconds(ns / 1'000'000'000);
  ts.set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
  return ts;
}

Response NodeStatus(::relay::NodeState state, const std::vector<std::string>& names,
                    const std::string& message, const std::string& relay_name) {
  Response r;
  ::relay::NodeStatusEvent* s = r.mutable_node_status();
  s->set_state_change(state);
  for (const std::string& n : names) s->add_node_names(n);
  if (!message.empty()) s->set_message(message);
  r.set_node_name(relay_name);
  *r.mutable_time() = Now();
  return r;
}

template <typename T>
class FinishNow final : public grpc::ServerWriteReactor<T> {
 public:
  explicit FinishNow(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

// One client's GetFlows through the relay: a producer thread talks to the peers and merges;
// the reactor writes what it queues, one write in flight.
class RelayFlowStream final : public grpc::ServerWriteReactor<Response> {
 public:
  RelayFlowStream(RelayService* service, ::observer::GetFlowsRequest req)
      : service_(service), req_(std::move(req)) {
    service_->active_streams().fetch_add(1);
    producer_ = std::thread([this] { req_.follow() ? Follow() : Historical(); });
  }

 private:
  // --- writing (any thread) ---
  void Enqueue(Response r) {
    std::unique_lock<std::mutex> lock(mu_);
    if (cancelled_ || finished_) return;
    queue_.push_back(std::move(r));
    if (writing_) return;
    writing_ = true;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    StartWrite(&current_);
  }

  void Close(const grpc::Status& status) {
    std::unique_lock<std::mutex> lock(mu_);
    closed_ = true;
    status_ = status;
    if (writing_ || finished_) return;
    finished_ = true;
    lock.unlock();
    Finish(status);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!ok) {
      cancelled_ = true;
      writing_ = false;
      if (finished_) return;
      finished_ = true;
      lock.unlock();
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed"));
      return;
    }
    if (!queue_.empty()) {
      current_ = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      StartWrite(&current_);
      return;
    }
    writing_ = false;
    if (closed_ && !finished_) {
      finished_ = true;
      lock.unlock();
      Finish(status_);
    }
  }

  void OnCancel() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
    }
    CancelPeers();
    inbox_cv_.notify_all();
  }

  void OnDone() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      cancelled_ = true;
    }
    CancelPeers();
    inbox_cv_.notify_all();
    producer_.join();
    service_->active_streams().fetch_sub(1);
    delete this;
  }

  bool Cancelled() {
    std::lock_guard<std::mutex> lock(mu_);
    return cancelled_;
  }

  // --- peers ---
  struct PeerCall {
    Peer peer;
    grpc::ClientContext ctx;
    std::thread reader;
    std::atomic<int64_t> last_heard_ns{absl::GetCurrentTimeNanos()};
    std::atomic<bool> done{false};
    bool timed_out = false;  // cancelled by us for silence (producer thread only)
  };

  void CancelPeers() {
    std::lock_guard<std::mutex> lock(calls_mu_);
    for (auto& c : calls_) c->ctx.TryCancel();
  }

  void SendStates(const std::vector<Peer>& peers) {
    std::vector<std::string> up, down;
    for (const Peer& p : peers) (p.available ? up : down).push_back(p.name);
    const std::string& me = service_->options().name;
    if (!up.empty()) Enqueue(NodeStatus(::relay::NODE_CONNECTED, up, "", me));
    if (!down.empty()) Enqueue(NodeStatus(::relay::NODE_UNAVAILABLE, down, "", me));
  }

  void Historical() {
    const std::vector<Peer> peers = service_->pool().Snapshot();
    SendStates(peers);
    std::vector<std::vector<Response>> results(peers.size());
    std::vector<std::string> errors(peers.size());
    {
      std::lock_guard<std::mutex> lock(calls_mu_);
      for (size_t i = 0; i < peers.size(); ++i) {
        if (!peers[i].available) continue;
        auto call = std::make_unique<PeerCall>();
        call->peer = peers[i];
        PeerCall* c = call.get();
        call->reader = std::thread([this, c, i, &results, &errors] {
          auto stub = ::observer::Observer::NewStub(c->peer.channel);
          auto reader = stub->GetFlows(&c->ctx, req_);
          Response r;
          while (reader->Read(&r)) {
            c->last_heard_ns = absl::GetCurrentTimeNanos();
            results[i].push_back(r);
          }
          const grpc::Status s = reader->Finish();
          if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) {
            errors[i] = DescribeGrpcError(s);
            if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
              service_->pool().ReportOffline(c->peer.address);
            }
          }
          std::lock_guard<std::mutex> lock(inbox_mu_);
          c->done = true;
          inbox_cv_.notify_all();
        });
        calls_.push_back(std::move(call));
      }
    }
    WaitOrTimeOut();
    for (auto& c : calls_) c->reader.join();
    if (Cancelled()) {
      Close(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
      return;
    }
    for (const auto& c : calls_) {
      if (!c->timed_out) continue;
      for (size_t i = 0; i < peers.size(); ++i) {
        if (peers[i].address != c->peer.address) continue;
        errors[i] =
            absl::StrCat("no answer for ", FormatGoDuration(service_->options().peer_timeout),
                         "; its flows are left out");
        results[i].clear();  // a partial history would misplace the global last/first N
      }
    }
    for (size_t i = 0; i < peers.size(); ++i) {
      if (!errors[i].empty()) {
        Enqueue(
            NodeStatus(::relay::NODE_ERROR, {peers[i].name}, errors[i], service_->options().name));
      }
    }
    HistoricalMerge merge(req_.number(), req_.first());
    for (auto& r : results) merge.AddStream(std::move(r));
    for (Response& r : merge.Take()) Enqueue(std::move(r));
    Close(grpc::Status::OK);
  }

  // Waits for every history call to end, cancelling any that stays silent for peer_timeout.
  void WaitOrTimeOut() {
    const int64_t timeout_ns = absl::ToInt64Nanoseconds(service_->options().peer_timeout);
    std::unique_lock<std::mutex> lock(inbox_mu_);
    while (true) {
      bool all_done = true;
      const int64_t now = absl::GetCurrentTimeNanos();
      for (auto& c : calls_) {
        if (c->done || c->timed_out) continue;
        if (now - c->last_heard_ns.load() > timeout_ns) {
          c->timed_out = true;
          c->ctx.TryCancel();
          FLOWSCOPE_LOG_WARN("{} ({}) sent nothing for {}; answering without it", c->peer.name,
                             c->peer.address, FormatGoDuration(service_->options().peer_timeout));
          continue;
        }
        all_done = false;
      }
      if (all_done) return;
      inbox_cv_.wait_for(lock, std::chrono::milliseconds(50));
    }
  }

  void Follow() {
    SendStates(service_->pool().Snapshot());
    std::set<std::string> streaming;  // peer addresses with a stream open
    const size_t peers_hint = std::max<size_t>(1, service_->pool().Snapshot().size());
    size_t len = service_->options().sort_buffer_len;
    if (req_.number() > 0 && req_.number() * peers_hint < len) len = req_.number() * peers_hint;
    SortBufferMerge merge(std::max<size_t>(len, 1), service_->options().sort_buffer_drain);
    absl::Time next_peer_check = absl::InfinitePast();
    while (!Cancelled()) {
      if (absl::Now() >= next_peer_check) {
        next_peer_check = absl::Now() + service_->options().peer_update_interval;
        for (const Peer& p : service_->pool().Snapshot()) {
          if (!p.available || streaming.count(p.address)) continue;
          streaming.insert(p.address);
          StartFollowing(p);
        }
      }
      std::deque<Inbox> items;
      {
        std::unique_lock<std::mutex> lock(inbox_mu_);
        inbox_cv_.wait_for(lock, std::chrono::milliseconds(100),
                           [this] { return !inbox_.empty(); });
        items.swap(inbox_);
      }
      const absl::Time now = absl::Now();
      for (Inbox& item : items) {
        if (item.ended) {
          streaming.erase(item.address);  // it may be picked up again when it is back
          if (!item.error.empty()) {
            Enqueue(
                NodeStatus(::relay::NODE_ERROR, {item.name}, item.error, service_->options().name));
          }
          continue;
        }
        for (Response& r : merge.Push(std::move(item.response), now)) Enqueue(std::move(r));
      }
      for (Response& r : merge.Drain(now)) Enqueue(std::move(r));
    }
    CancelPeers();
    {
      std::lock_guard<std::mutex> lock(calls_mu_);
      for (auto& c : calls_) {
        if (c->reader.joinable()) c->reader.join();
      }
    }
    // The reactor must finish even when the client went away.
    Close(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
  }

  struct Inbox {
    std::string address;
    std::string name;
    bool ended = false;
    std::string error;
    Response response;
  };

  void StartFollowing(const Peer& peer) {
    std::lock_guard<std::mutex> lock(calls_mu_);
    auto call = std::make_unique<PeerCall>();
    call->peer = peer;
    PeerCall* c = call.get();
    call->reader = std::thread([this, c] {
      auto stub = ::observer::Observer::NewStub(c->peer.channel);
      auto reader = stub->GetFlows(&c->ctx, req_);
      Response r;
      while (reader->Read(&r)) {
        std::lock_guard<std::mutex> lock(inbox_mu_);
        inbox_.push_back({c->peer.address, c->peer.name, false, "", std::move(r)});
        inbox_cv_.notify_one();
      }
      const grpc::Status s = reader->Finish();
      Inbox end{c->peer.address, c->peer.name, true, "", {}};
      if (!s.ok() && s.error_code() != grpc::StatusCode::CANCELLED) {
        end.error = DescribeGrpcError(s);
        service_->pool().ReportOffline(c->peer.address);
      }
      std::lock_guard<std::mutex> lock(inbox_mu_);
      inbox_.push_back(std::move(end));
      inbox_cv_.notify_one();
    });
    calls_.push_back(std::move(call));
  }

  RelayService* service_;
  const ::observer::GetFlowsRequest req_;
  std::thread producer_;

  std::mutex mu_;  // writing state
  std::deque<Response> queue_;
  Response current_;
  bool writing_ = false;
  bool closed_ = false;
  bool finished_ = false;
  bool cancelled_ = false;
  grpc::Status status_;

  std::mutex calls_mu_;
  std::vector<std::unique_ptr<PeerCall>> calls_;

  std::mutex inbox_mu_;
  std::condition_variable inbox_cv_;
  std::deque<Inbox> inbox_;
};

RelayService::RelayService(PeerPool& pool, RelayOptions options)
    : pool_(pool), options_(std::move(options)) {}

grpc::ServerWriteReactor<Response>* RelayService::GetFlows(grpc::CallbackServerContext* ctx,
                                                           const ::observer::GetFlowsRequest* req) {
  if (req->first() && req->follow()) {
    return new FinishNow<Response>(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "first cannot be specified with follow"));
  }
  return new RelayFlowStream(this, *req);
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

grpc::ServerUnaryReactor* RelayService::ServerStatus(grpc::CallbackServerContext* ctx,
                                                     const ::observer::ServerStatusRequest*,
                                                     ::observer::ServerStatusResponse* resp) {
  const std::vector<Peer> peers = pool_.Snapshot();
  std::vector<std::future<std::optional<::observer::ServerStatusResponse>>> calls;
  uint32_t connected = 0;
  std::vector<std::string> unavailable;
  for (const Peer& p : peers) {
    if (!p.available) {
      unavailable.push_back(p.name);
      continue;
    }
    ++connected;
    calls.push_back(std::async(
        std::launch::async, [p, this]() -> std::optional<::observer::ServerStatusResponse> {
          auto stub = ::observer::Observer::NewStub(p.channel);
          grpc::ClientContext c;
          c.set_deadline(std::chrono::system_clock::now() +
                         absl::ToChronoMilliseconds(options_.request_timeout));
          ::observer::ServerStatusResponse s;
          if (!stub->ServerStatus(&c, {}, &s).ok()) return std::nullopt;
          return s;
        }));
  }
  for (auto& f : calls) {
    auto s = f.get();
    if (!s) continue;  // counted as connected, contributes nothing
    resp->set_num_flows(resp->num_flows() + s->num_flows());
    resp->set_max_flows(resp->max_flows() + s->max_flows());
    resp->set_seen_flows(resp->seen_flows() + s->seen_flows());
    resp->set_uptime_ns(std::max(resp->uptime_ns(), s->uptime_ns()));
    resp->set_flows_rate(resp->flows_rate() + s->flows_rate());
  }
  resp->mutable_num_connected_nodes()->set_value(connected);
  resp->mutable_num_unavailable_nodes()->set_value(static_cast<uint32_t>(unavailable.size()));
  for (size_t i = 0; i < unavailable.size() && i < 10; ++i)
    resp->add_unavailable_nodes(unavailable[i]);
  resp->set_version(kRelayVersion);
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RelayService::GetNodes(grpc::CallbackServerContext* ctx,
                                                 const ::observer::GetNodesRequest*,
                                                 ::observer::GetNodesResponse* resp) {
  const std::vector<Peer> peers = pool_.Snapshot();
  std::vector<std::future<::observer::Node>> calls;
  for (const Peer& p : peers) {
    calls.push_back(std::async(std::launch::async, [p, this] {
      ::observer::Node n;
      n.set_name(p.name);
      n.set_address(p.address);
      n.mutable_tls()->set_enabled(false);
      if (!p.available) {
        n.set_state(::relay::NODE_UNAVAILABLE);
        return n;
      }
      auto stub = ::observer::Observer::NewStub(p.channel);
      grpc::ClientContext c;
      c.set_deadline(std::chrono::system_clock::now() +
                     absl::ToChronoMilliseconds(options_.request_timeout));
      ::observer::ServerStatusResponse s;
      if (!stub->ServerStatus(&c, {}, &s).ok()) {
        n.set_state(::relay::NODE_ERROR);
        return n;
      }
      n.set_state(::relay::NODE_CONNECTED);
      n.set_version(s.version());
      n.set_uptime_ns(s.uptime_ns());
      n.set_num_flows(s.num_flows());
      n.set_max_flows(s.max_flows());
      n.set_seen_flows(s.seen_flows());
      return n;
    }));
  }
  for (auto& f : calls) *resp->add_nodes() = f.get();
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* RelayService::GetNamespaces(grpc::CallbackServerContext* ctx,
                                                      const ::observer::GetNamespacesRequest*,
                                                      ::observer::GetNamespacesResponse* resp) {
  std::set<std::pair<std::string, std::string>> all;
  std::vector<std::future<std::vector<std::pair<std::string, std::string>>>> calls;
  for (const Peer& p : pool_.Snapshot()) {
    if (!p.available) continue;
    calls.push_back(std::async(std::launch::async, [p, this] {
      std::vector<std::pair<std::string, std::string>> out;
      auto stub = ::observer::Observer::NewStub(p.channel);
      grpc::ClientContext c;
      c.set_deadline(std::chrono::system_clock::now() +
                     absl::ToChronoMilliseconds(options_.request_timeout));
      ::observer::GetNamespacesResponse r;
      if (stub->GetNamespaces(&c, {}, &r).ok()) {
        for (const auto& n : r.namespaces()) out.emplace_back(n.cluster(), n.namespace_());
      }
      return out;
    }));
  }
  for (auto& f : calls) {
    for (auto& n : f.get()) all.insert(std::move(n));
  }
  for (const auto& [cluster, ns] : all) {
    ::observer::Namespace* n = resp->add_namespaces();
    n->set_cluster(cluster);
    n->set_namespace_(ns);
  }
  auto* reactor = ctx->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace flowscope::relay
