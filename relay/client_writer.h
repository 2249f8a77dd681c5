// QueuedWriter: the client side of a relay stream — a server write reactor with a queue of
// encoded messages and one write in flight. Bounded by messages and bytes: a follow stream
// drops what does not fit and counts it (the producer reports it in-stream); a history stream's
// producer stops while Full() and is told OnRoom() when the writes have taken the queue down to
// half, so a slow client holds its peers back through flow control instead of growing memory.
//
// Thread-safety: Enqueue/Close/Full/TakeDroppedIfRoom from any thread; the hooks run on gRPC's
// callback threads and must not block.
#ifndef FLOWSCOPE_RELAY_CLIENT_WRITER_H_
#define FLOWSCOPE_RELAY_CLIENT_WRITER_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <utility>

namespace flowscope::relay {

// Figures shared by every stream of a service (for its metrics and budget).
struct WriterCounters {
  std::atomic<int64_t> queued_messages{0};
  std::atomic<int64_t> buffered_bytes{0};  // also counts what the streams' merges hold
  std::atomic<uint64_t> dropped{0};
};

class QueuedWriter : public grpc::ServerWriteReactor<grpc::ByteBuffer> {
 public:
  struct Limits {
    size_t max_messages = 8192;
    size_t max_bytes = 8 << 20;
    bool drop_when_full = false;  // follow
  };
  QueuedWriter(Limits limits, WriterCounters* counters) : limits_(limits), counters_(counters) {}

  // Queues `message`, which holds `events` responses. When full: dropped and counted
  // (drop_when_full) unless `keep` (node notices: few, and the client must hear them), else
  // queued all the same (the producer looks at Full() first).
  void Enqueue(grpc::ByteBuffer message, uint64_t events, bool keep = false) {
    std::unique_lock<std::mutex> lock(mu_);
    if (gone_ || finished_) return;
    if (limits_.drop_when_full && !keep && FullLocked()) {
      dropped_ += events;
      counters_->dropped.fetch_add(events, std::memory_order_relaxed);
      return;
    }
    const size_t bytes = message.Length();
    queued_bytes_ += bytes;
    counters_->queued_messages.fetch_add(1, std::memory_order_relaxed);
    counters_->buffered_bytes.fetch_add(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    queue_.push_back(std::move(message));
    if (writing_) return;
    StartNextLocked(lock);
  }

  bool Full() const {
    std::lock_guard<std::mutex> lock(mu_);
    return FullLocked();
  }
  // The client cancelled or a write failed: nothing more goes out.
  bool Gone() const {
    std::lock_guard<std::mutex> lock(mu_);
    return gone_;
  }

  // What was dropped since the last call, once the queue has room to say so (follow).
  uint64_t TakeDroppedIfRoom() {
    std::lock_guard<std::mutex> lock(mu_);
    if (dropped_ == 0 || queue_.size() >= limits_.max_messages / 2 ||
        queued_bytes_ >= limits_.max_bytes / 2) {
      return 0;
    }
    return std::exchange(dropped_, 0);
  }

  // Finishes with `status` once the queue is written (at once when the client is gone).
  void Close(const grpc::Status& status) {
    std::unique_lock<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    status_ = status;
    if (gone_) status_ = grpc::Status(grpc::StatusCode::CANCELLED, "cancelled");
    if (writing_ || finished_) return;
    finished_ = true;
    lock.unlock();
    this->Finish(status_);
  }

 protected:
  ~QueuedWriter() override { ClearQueue(); }

  // The queue went down to half after being full.
  virtual void OnRoom() {}
  // The client went away (cancelled, or a write failed); called once.
  virtual void OnGone() {}
  // gRPC is done with the call (after Finish): the last hook.
  virtual void OnFinished() = 0;

 private:
  bool FullLocked() const {
    return queue_.size() >= limits_.max_messages || queued_bytes_ >= limits_.max_bytes;
  }

  // With the lock held and nothing in flight: the next write, or the end.
  void StartNextLocked(std::unique_lock<std::mutex>& lock) {
    if (queue_.empty()) {
      writing_ = false;
      if (closed_ && !finished_) {
        finished_ = true;
        lock.unlock();
        this->Finish(status_);
      }
      return;
    }
    const bool was_full = FullLocked();
    current_ = std::move(queue_.front());
    queue_.pop_front();
    const size_t bytes = current_.Length();
    queued_bytes_ -= bytes;
    counters_->queued_messages.fetch_sub(1, std::memory_order_relaxed);
    counters_->buffered_bytes.fetch_sub(static_cast<int64_t>(bytes), std::memory_order_relaxed);
    if (was_full) waiting_for_room_ = true;
    const bool room = waiting_for_room_ && queue_.size() <= limits_.max_messages / 2 &&
                      queued_bytes_ <= limits_.max_bytes / 2;
    if (room) waiting_for_room_ = false;
    writing_ = true;
    lock.unlock();
    this->StartWrite(&current_);
    if (room) OnRoom();
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (ok) {
      StartNextLocked(lock);
      return;
    }
    writing_ = false;
    const bool first = !gone_;
    gone_ = true;
    const bool finish = !finished_;
    finished_ = true;
    lock.unlock();
    ClearQueue();
    if (finish) this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream closed"));
    if (first) OnGone();
  }

  void OnCancel() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (gone_) return;
      gone_ = true;
    }
    OnGone();
  }

  void OnDone() override {
    ClearQueue();
    OnFinished();
  }

  void ClearQueue() {
    std::lock_guard<std::mutex> lock(mu_);
    counters_->queued_messages.fetch_sub(static_cast<int64_t>(queue_.size()),
                                         std::memory_order_relaxed);
    counters_->buffered_bytes.fetch_sub(static_cast<int64_t>(queued_bytes_),
                                        std::memory_order_relaxed);
    queue_.clear();
    queued_bytes_ = 0;
  }

  const Limits limits_;
  WriterCounters* counters_;
  mutable std::mutex mu_;
  std::deque<grpc::ByteBuffer> queue_;
  size_t queued_bytes_ = 0;
  grpc::ByteBuffer current_;
  uint64_t dropped_ = 0;
  bool writing_ = false;
  bool waiting_for_room_ = false;
  bool closed_ = false;
  bool finished_ = false;
  bool gone_ = false;
  grpc::Status status_;
};

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_CLIENT_WRITER_H_
