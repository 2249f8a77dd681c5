#include "api/peer_service.h"

#include <deque>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/logging.h"

namespace flowscope {

namespace {

peer::ChangeNotification Notification(const PeerEntry& e, peer::ChangeNotificationType type) {
  peer::ChangeNotification n;
  n.set_name(e.name);
  n.set_address(e.address);
  n.set_type(type);
  if (!e.tls_server_name.empty()) n.mutable_tls()->set_server_name(e.tls_server_name);
  return n;
}

}  // namespace

// One Notify call: notifications queue here and are written one at a time. gRPC is never
// called with mu_ held, and Finish waits for the write in flight.
class PeerNotifyService::Stream final : public grpc::ServerWriteReactor<peer::ChangeNotification> {
 public:
  Stream(PeerNotifyService* service, size_t max_queued)
      : service_(service), max_queued_(max_queued) {}

  void Enqueue(peer::ChangeNotification n) {
    std::unique_lock<std::mutex> lock(mu_);
    if (closed_) return;
    if (queue_.size() >= max_queued_) {
      // A client that stopped reading is ended, not buffered for without bound.
      CloseLocked(lock, grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                                     "peer notifications not read: stream ended"));
      return;
    }
    queue_.push_back(std::move(n));
    if (writing_) return;
    writing_ = true;
    current_ = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    StartWrite(&current_);
  }

  void End(const grpc::Status& status) {
    std::unique_lock<std::mutex> lock(mu_);
    CloseLocked(lock, status);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!ok || closed_) {
      writing_ = false;
      if (!closed_) status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "client gone");
      closed_ = true;
      FinishLocked(lock);
      return;
    }
    if (queue_.empty()) {
      writing_ = false;
      return;
    }
    current_ = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    StartWrite(&current_);
  }

  void OnCancel() override {
    std::unique_lock<std::mutex> lock(mu_);
    CloseLocked(lock, grpc::Status::CANCELLED);
  }

  // The service deletes it (under its own lock, so Poll never writes to a deleted stream).
  void OnDone() override { service_->Remove(this); }

 private:
  // No more writes; Finish now, or when the write in flight is done.
  void CloseLocked(std::unique_lock<std::mutex>& lock, const grpc::Status& status) {
    if (closed_) return;
    closed_ = true;
    status_ = status;
    queue_.clear();
    if (!writing_) FinishLocked(lock);
  }
  void FinishLocked(std::unique_lock<std::mutex>& lock) {
    if (finished_) return;
    finished_ = true;
    const grpc::Status status = status_;
    lock.unlock();
    Finish(status);
  }

  PeerNotifyService* const service_;
  const size_t max_queued_;
  std::mutex mu_;
  std::deque<peer::ChangeNotification> queue_;
  peer::ChangeNotification current_;
  bool writing_ = false;
  bool closed_ = false;  // nothing more is written
  bool finished_ = false;
  grpc::Status status_;
};

PeerNotifyService::PeerNotifyService(PeerSource source, absl::Duration poll, size_t max_queued)
    : source_(std::move(source)), poll_(poll), max_queued_(max_queued) {
  Poll();
  thread_ = std::thread([this] { Run(); });
}

PeerNotifyService::~PeerNotifyService() { Shutdown(); }

void PeerNotifyService::Run() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    wake_.wait_for(lock, absl::ToChronoNanoseconds(poll_));
    if (stop_) break;
    lock.unlock();
    Poll();
    lock.lock();
  }
}

void PeerNotifyService::Poll() {
  std::map<std::string, PeerEntry> now;
  for (PeerEntry& e : source_()) {
    if (!e.name.empty()) now.emplace(e.name, std::move(e));
  }
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<peer::ChangeNotification> changes;
  for (const auto& [name, e] : current_) {
    if (now.count(name) == 0) changes.push_back(Notification(e, peer::PEER_DELETED));
  }
  for (const auto& [name, e] : now) {
    auto it = current_.find(name);
    if (it == current_.end()) {
      changes.push_back(Notification(e, peer::PEER_ADDED));
    } else if (!(it->second == e)) {
      changes.push_back(Notification(e, peer::PEER_UPDATED));
    }
  }
  current_ = std::move(now);
  ReapLocked();
  for (Stream* s : streams_) {
    for (const auto& c : changes) s->Enqueue(c);
  }
}

grpc::ServerWriteReactor<peer::ChangeNotification>* PeerNotifyService::Notify(
    grpc::CallbackServerContext*, const peer::NotifyRequest*) {
  auto* s = new Stream(this, max_queued_);
  std::lock_guard<std::mutex> lock(mu_);
  ReapLocked();
  streams_.insert(s);
  if (stop_) {
    s->End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "shutting down"));
    return s;
  }
  // Everything known now, as Hubble's peer service starts a stream.
  for (const auto& [name, e] : current_) s->Enqueue(Notification(e, peer::PEER_ADDED));
  return s;
}

void PeerNotifyService::Remove(Stream* s) {
  // No other lock here: OnDone may run inside a Finish called with mu_ held.
  std::lock_guard<std::mutex> lock(done_mu_);
  done_.push_back(s);
  done_cv_.notify_all();
}

void PeerNotifyService::ReapLocked() {
  std::vector<Stream*> done;
  {
    std::lock_guard<std::mutex> lock(done_mu_);
    done.swap(done_);
  }
  for (Stream* s : done) {
    streams_.erase(s);
    delete s;
  }
}

void PeerNotifyService::Shutdown() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!stop_) {
      stop_ = true;
      wake_.notify_all();
      for (Stream* s : streams_) s->End(grpc::Status::OK);
    }
  }
  if (thread_.joinable()) thread_.join();
  // Each stream's OnDone runs once its Finish is sent (or the server cancels it).
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ReapLocked();
      if (streams_.empty()) return;
    }
    std::unique_lock<std::mutex> lock(done_mu_);
    done_cv_.wait(lock, [&] { return !done_.empty(); });
  }
}

size_t PeerNotifyService::streams() const {
  std::lock_guard<std::mutex> lock(mu_);
  const_cast<PeerNotifyService*>(this)->ReapLocked();
  return streams_.size();
}

// --- client ----------------------------------------------------------------------------------

std::string WithDefaultPeerPort(const std::string& address) {
  if (address.empty() || absl::StrContains(address, "://")) return address;
  if (address.front() == '[') {
    return absl::StrContains(address, "]:") ? address : absl::StrCat(address, ":4244");
  }
  const size_t colons = std::count(address.begin(), address.end(), ':');
  if (colons == 0) return absl::StrCat(address, ":4244");
  if (colons > 1) return absl::StrCat("[", address, "]:4244");  // a bare IPv6 address
  return address;
}

PeerNotifyClient::PeerNotifyClient(std::shared_ptr<grpc::Channel> channel, std::string target)
    : channel_(std::move(channel)), target_(std::move(target)) {}

PeerNotifyClient::~PeerNotifyClient() { Stop(); }

void PeerNotifyClient::Start() {
  thread_ = std::thread([this] { Run(); });
}

void PeerNotifyClient::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    if (ctx_ != nullptr) ctx_->TryCancel();
    wake_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void PeerNotifyClient::Run() {
  auto stub = peer::Peer::NewStub(channel_);
  absl::Duration backoff = absl::Milliseconds(100);
  while (true) {
    grpc::ClientContext ctx;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      ctx_ = &ctx;
    }
    auto reader = stub->Notify(&ctx, peer::NotifyRequest());
    peer::ChangeNotification n;
    bool first = true;
    while (reader->Read(&n)) {
      std::lock_guard<std::mutex> lock(mu_);
      if (first) {
        peers_.clear();  // what the last stream said may have changed while it was down
        first = false;
      }
      connected_ = true;
      answered_ = true;
      wake_.notify_all();
      backoff = absl::Milliseconds(100);
      PeerEntry e{n.name(), WithDefaultPeerPort(n.address()), n.tls().server_name()};
      switch (n.type()) {
        case peer::PEER_ADDED:
        case peer::PEER_UPDATED:
          if (!e.name.empty()) peers_[e.name] = std::move(e);
          break;
        case peer::PEER_DELETED:
          peers_.erase(n.name());
          break;
        default:
          break;
      }
    }
    const grpc::Status status = reader->Finish();
    std::unique_lock<std::mutex> lock(mu_);
    ctx_ = nullptr;
    connected_ = false;
    if (stop_) return;
    last_error_ = status.ok() ? "stream ended" : status.error_message();
    FLOWSCOPE_LOG_WARN("peer service {}: {}; reconnecting", target_, last_error_);
    // The last known set stays until a new stream says otherwise.
    wake_.wait_for(lock, absl::ToChronoNanoseconds(backoff), [&] { return stop_; });
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
}

std::vector<PeerEntry> PeerNotifyClient::Peers() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<PeerEntry> out;
  for (const auto& [name, e] : peers_) out.push_back(e);
  return out;
}

bool PeerNotifyClient::WaitForAnswer(absl::Duration timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  return wake_.wait_for(lock, absl::ToChronoNanoseconds(timeout), [&] {
    return answered_ || stop_;
  }) && answered_;
}

bool PeerNotifyClient::connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connected_;
}

std::string PeerNotifyClient::last_error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_error_;
}

}  // namespace flowscope
