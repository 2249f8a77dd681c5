// StreamNotifier and StreamPump: how a streaming answer over the FlowRing runs without ever
// blocking a thread. A StreamPump produces one message at a time and has at most one write in
// flight; when it has caught up with the ring (follow) it parks with the StreamNotifier, whose
// one thread resumes parked streams when the drain thread publishes more, once a second (so
// pending lost-event notices go out) and, for streams that want it, every heartbeat (so
// watermarks go out while the node is idle). A stalled or slow client therefore never holds a
// thread, the drain thread or another stream.
//
// The pump knows nothing of gRPC: the service's reactors plug their StartWrite/Finish into it
// (observer_service.cc), and the ThreadSanitizer test drives it with a transport of its own.
//
// Thread-safety: a pump's reactions (WriteDone, Cancel, Done) come from its transport, one at
// a time but on any thread; Resume() from the notifier's thread. Pump() runs on whichever of
// them holds the stream: the transport while a write is in flight or before the first park,
// the notifier while parked. The hand-over is the notifier's lock; the parking thread touches
// nothing of the stream after it has parked it.
#ifndef FLOWSCOPE_OBSERVER_STREAM_PUMP_H_
#define FLOWSCOPE_OBSERVER_STREAM_PUMP_H_

#include <atomic>
#include <cstdint>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "api/clock.h"
#include "observer/flow_query.h"

namespace flowscope::observer {

class StreamNotifier;

// One thread that runs many notifiers' wake-ups instead of a thread each: the simulator's
// thousand nodes in one process (a node's observer has one notifier, on its own thread). It
// looks at every notifier each `period`, so a publish is noticed within it.
class NotifierDriver {
 public:
  explicit NotifierDriver(absl::Duration period = absl::Milliseconds(2));
  NotifierDriver(const NotifierDriver&) = delete;
  NotifierDriver& operator=(const NotifierDriver&) = delete;
  ~NotifierDriver();
  // After Remove() returns, the notifier is not run any more.
  void Add(StreamNotifier* n);
  void Remove(StreamNotifier* n);
  // Rounds over the notifiers so far (each at least `period` after the one before).
  uint64_t rounds() const { return rounds_.load(); }

 private:
  void Run();

  const absl::Duration period_;
  std::atomic<uint64_t> rounds_{0};
  std::mutex mu_;  // held while the notifiers run
  std::vector<StreamNotifier*> notifiers_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// A stream that caught up and waits for the ring.
class ParkedStream {
 public:
  virtual ~ParkedStream() = default;
  // Called by the notifier, which holds a reference the stream releases.
  virtual void Resume() = 0;
  // Also resumed every heartbeat interval while the ring is idle (watermarked streams).
  virtual bool wants_heartbeat() const = 0;
};

class StreamNotifier {
 public:
  // With a `driver`, the driver's thread runs it; else a thread of its own.
  StreamNotifier(const Ring& ring, absl::Duration heartbeat, const Clock& clock = Clock::Real(),
                 NotifierDriver* driver = nullptr);
  ~StreamNotifier();
  // Parks `r`, which has read the ring up to `position` (taken before the call). Returns false,
  // with `r` not parked, when records at or after `position` were published meanwhile: the
  // caller goes on producing. Once this returns true, `r` may already be resumed on the
  // notifier's thread.
  bool ParkUnlessPublished(ParkedStream* r, uint64_t position);
  // Returns false if `r` was not parked (it is being resumed, or never was).
  bool Unpark(ParkedStream* r);
  // Streams that want heartbeats, counted from their start: while there are any, the notifier
  // wakes every heartbeat interval.
  // How many streams are parked now (each has read everything published before it parked).
  size_t parked() const;
  void AddHeartbeatStream();
  void RemoveHeartbeatStream();
  void Stop();

 private:
  friend class NotifierDriver;
  void Run();
  // Resumes the streams due (published records, the once-a-second tick, heartbeats) and returns
  // when it is next due if nothing is published meanwhile. One caller at a time.
  absl::Time Poll();

  const Ring& ring_;
  const absl::Duration heartbeat_;
  const Clock& clock_;
  NotifierDriver* const driver_;
  mutable std::mutex mu_;
  std::set<ParkedStream*> parked_;
  std::atomic<int> heartbeat_streams_{0};
  bool stop_ = false;
  // Poll()'s.
  uint64_t seen_;
  absl::Time next_tick_;
  absl::Time next_beat_;
  std::thread thread_;
};

// The life of one streaming answer. Subclasses produce messages and plug in the transport; the
// object deletes itself once the transport is done with it (Done()) and nobody else holds it.
class StreamPump : public ParkedStream {
 public:
  void Resume() final {
    Pump();
    Unref();
  }

 protected:
  enum class Produced { kMessage, kWait, kEnd };

  explicit StreamPump(StreamNotifier& notifier) : notifier_(notifier) {}

  // Builds the next message (kMessage), or says there is nothing yet, or the end.
  virtual Produced Produce() = 0;
  // The ring position the producer reads next (what a park waits to see published past).
  virtual uint64_t ReadPosition() const = 0;
  // Starts writing what Produce() built; the transport calls WriteDone() when it completed.
  virtual void StartWriting() = 0;
  // Ends the stream; the transport calls Done() afterwards. Called once.
  virtual void FinishStream(const absl::Status& status) = 0;

  // Produces the next message and starts writing it, or parks, or finishes. Never blocks.
  void Pump();

  // Set once the client went away (a long read can check it and stop early).
  const std::atomic<bool>& cancelled_flag() const { return cancelled_; }

  // The transport's reactions.
  void WriteDone(bool ok);
  void Cancel();
  void Done();

 private:
  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }
  void FinishOnce(const absl::Status& status) {
    if (!finished_.exchange(true)) FinishStream(status);
  }

  StreamNotifier& notifier_;
  std::atomic<bool> cancelled_{false};
  std::atomic<bool> finished_{false};
  std::atomic<int> refs_{1};  // the transport's, released in Done()
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_STREAM_PUMP_H_
