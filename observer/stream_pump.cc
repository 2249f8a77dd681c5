#include "observer/stream_pump.h"

#include <vector>

namespace flowscope::observer {

// --- pump ------------------------------------------------------------------------------------

void StreamPump::Pump() {
  while (true) {
    if (cancelled_.load()) {
      FinishOnce(absl::CancelledError("cancelled"));
      return;
    }
    switch (Produce()) {
      case Produced::kEnd:
        FinishOnce(absl::OkStatus());
        return;
      case Produced::kWait: {
        // Read before parking: once parked, the notifier may resume (pump) this stream on its
        // thread at any moment, so nothing of the stream is touched here after the park.
        const uint64_t position = ReadPosition();
        Ref();  // the notifier's, released by Resume() or by whoever unparks us
        Ref();  // ours: a resumed stream may finish (and be done) while we are still here
        if (notifier_.ParkUnlessPublished(this, position)) {
          Unref();
          return;
        }
        Unref();
        Unref();
        continue;
      }
      case Produced::kMessage:
        StartWriting();
        return;
    }
  }
}

void StreamPump::WriteDone(bool ok) {
  if (!ok) {
    FinishOnce(absl::CancelledError("stream closed"));
    return;
  }
  Pump();
}

void StreamPump::Cancel() {
  cancelled_.store(true);
  // If parked, nothing else will run us: finish here. Otherwise the write in flight (or the
  // notifier resuming us) sees the flag.
  if (notifier_.Unpark(this)) {
    FinishOnce(absl::CancelledError("cancelled"));
    Unref();
  }
}

void StreamPump::Done() {
  if (notifier_.Unpark(this)) Unref();
  Unref();
}

// --- notifier ----------------------------------------------------------------------------------

StreamNotifier::StreamNotifier(const Ring& ring, absl::Duration heartbeat, const Clock& clock)
    : ring_(ring), heartbeat_(heartbeat), clock_(clock), thread_([this] { Run(); }) {}

StreamNotifier::~StreamNotifier() { Stop(); }

void StreamNotifier::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  ring_.Interrupt();
  if (thread_.joinable()) thread_.join();
}

bool StreamNotifier::ParkUnlessPublished(ParkedStream* r, uint64_t position) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    parked_.insert(r);
  }
  // Records published between the stream's last look and the park would wait for the next
  // wake-up: look again, and hand the stream back if there is something.
  return !(ring_.EndPosition() > position && Unpark(r));
}

bool StreamNotifier::Unpark(ParkedStream* r) {
  std::lock_guard<std::mutex> lock(mu_);
  return parked_.erase(r) > 0;
}

size_t StreamNotifier::parked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return parked_.size();
}

void StreamNotifier::AddHeartbeatStream() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (heartbeat_streams_++ > 0) return;
  }
  ring_.Interrupt();  // the notifier may be in a long wait: let it shorten it
}

void StreamNotifier::RemoveHeartbeatStream() {
  std::lock_guard<std::mutex> lock(mu_);
  --heartbeat_streams_;
}

void StreamNotifier::Run() {
  uint64_t seen = ring_.EndPosition();
  absl::Time next_tick = clock_.Now() + absl::Seconds(1);
  absl::Time next_beat = clock_.Now() + heartbeat_;
  while (true) {
    bool beating;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      beating = heartbeat_streams_ > 0;
    }
    const absl::Time due = beating ? std::min(next_tick, next_beat) : next_tick;
    ring_.WaitFor(seen, absl::Now() + WaitSlice(clock_, due, absl::Milliseconds(200)));
    const uint64_t end = ring_.EndPosition();
    const absl::Time now = clock_.Now();
    const bool tick = now >= next_tick;  // lets pending lost-event notices go out
    const bool beat = now >= next_beat;
    if (beat) next_beat = now + heartbeat_;
    if (end == seen && !tick && !beat) continue;
    const bool everyone = end != seen || tick;
    seen = end;
    if (tick) next_tick = now + absl::Seconds(1);
    std::vector<ParkedStream*> wake;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
      for (auto it = parked_.begin(); it != parked_.end();) {
        if (everyone || (*it)->wants_heartbeat()) {
          wake.push_back(*it);
          it = parked_.erase(it);
        } else {
          ++it;
        }
      }
    }
    // Each parked stream holds a reference for us; Resume() releases it.
    for (ParkedStream* r : wake) r->Resume();
  }
}

}  // namespace flowscope::observer
