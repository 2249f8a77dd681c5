// OwnedThreads: threads that run to their own end while their owner goes on — a relay stream's
// producer, an answer that must not block a gRPC callback thread — and that the owner still
// joins: finished ones whenever a new one starts, every one in JoinAll() (and the destructor).
// No thread is ever detached, so nothing runs after its owner is gone.
//
//   OwnedThreads threads;
//   threads.Start([this] { Produce(); });
//   ...
//   threads.JoinAll();  // at shutdown, after whatever ends the threads' work
//
// Thread-safety: all methods from any thread, except JoinAll() from a thread it does not join.
#ifndef FLOWSCOPE_API_OWNED_THREADS_H_
#define FLOWSCOPE_API_OWNED_THREADS_H_

#include <atomic>
#include <functional>
#include <list>
#include <mutex>
#include <thread>

namespace flowscope {

class OwnedThreads {
 public:
  OwnedThreads() = default;
  OwnedThreads(const OwnedThreads&) = delete;
  OwnedThreads& operator=(const OwnedThreads&) = delete;
  ~OwnedThreads() { JoinAll(); }

  void Start(std::function<void()> fn) {
    std::list<Entry> finished;  // joined as it goes, after the lock is released
    std::lock_guard<std::mutex> lock(mu_);
    ReapLocked(&finished);
    Entry& e = threads_.emplace_back();
    e.thread = std::thread([&e, fn = std::move(fn)] {
      fn();
      e.done.store(true, std::memory_order_release);
    });
  }

  // Joins every thread (waiting for those still running).
  void JoinAll() {
    std::list<Entry> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      all.splice(all.end(), threads_);
    }
    for (Entry& e : all) {
      if (e.thread.joinable()) e.thread.join();
    }
  }

  // Threads started and not yet joined (finished or not).
  size_t size() const {
    std::lock_guard<std::mutex> lock(mu_);
    return threads_.size();
  }

 private:
  struct Entry {
    std::thread thread;
    std::atomic<bool> done{false};
    ~Entry() {
      if (thread.joinable()) thread.join();
    }
  };

  // Moves finished threads to `out`, which joins them when it goes (they have returned).
  void ReapLocked(std::list<Entry>* out) {
    for (auto it = threads_.begin(); it != threads_.end();) {
      auto next = std::next(it);
      if (it->done.load(std::memory_order_acquire)) out->splice(out->end(), threads_, it);
      it = next;
    }
  }

  mutable std::mutex mu_;
  std::list<Entry> threads_;
};

}  // namespace flowscope

#endif  // FLOWSCOPE_API_OWNED_THREADS_H_
