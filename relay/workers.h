// Workers: the relay's few threads for its client streams' merging — a fixed set, started
// once, whatever the number of streams and peers — and a tick that wakes the streams that keep
// time (heartbeats, peer timeouts, new peers) without a timer each.
//
//   Workers workers(2, absl::Milliseconds(10), [&] { ScheduleEveryStream(); });
//   workers.Post([stream] { stream->Run(); });
//   workers.Stop();  // joins; what was still queued is dropped
//
// Thread-safety: every method from any thread but Stop() from a worker.
#ifndef FLOWSCOPE_RELAY_WORKERS_H_
#define FLOWSCOPE_RELAY_WORKERS_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "absl/time/time.h"

namespace flowscope::relay {

class Workers {
 public:
  Workers(int threads, absl::Duration tick, std::function<void()> on_tick)
      : tick_(tick), on_tick_(std::move(on_tick)) {
    try {
      for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
      if (on_tick_) threads_.emplace_back([this] { Tick(); });
    } catch (const std::system_error& e) {
      error_ = e.what();  // running() says so; what did start still works
    }
  }
  Workers(const Workers&) = delete;
  Workers& operator=(const Workers&) = delete;
  ~Workers() { Stop(); }

  // Whether every thread started (else why not).
  bool running() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  size_t threads() const { return threads_.size(); }

  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      tasks_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

  void Stop() {
    std::deque<std::function<void()>> dropped;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      dropped.swap(tasks_);
    }
    cv_.notify_all();
    tick_cv_.notify_all();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void Work() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
        if (stopping_) return;
        task = std::move(tasks_.front());
        tasks_.pop_front();
      }
      task();
    }
  }

  void Tick() {
    std::unique_lock<std::mutex> lock(mu_);
    while (
        !tick_cv_.wait_for(lock, absl::ToChronoMicroseconds(tick_), [this] { return stopping_; })) {
      lock.unlock();
      on_tick_();
      lock.lock();
    }
  }

  const absl::Duration tick_;
  const std::function<void()> on_tick_;
  std::string error_;
  std::mutex mu_;
  std::condition_variable cv_;       // tasks
  std::condition_variable tick_cv_;  // the ticker's sleep
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_WORKERS_H_
