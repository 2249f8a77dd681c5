#include "observer/stream_pump.h"

#include <algorithm>
#include <vector>

#include "absl/time/clock.h"

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

StreamNotifier::StreamNotifier(const Ring& ring, absl::Duration heartbeat, const Clock& clock,
                               NotifierDriver* driver)
    : ring_(ring),
      heartbeat_(heartbeat),
      clock_(clock),
      driver_(driver),
      seen_(ring.EndPosition()),
      next_tick_(clock.Now() + absl::Seconds(1)),
      next_beat_(clock.Now() + heartbeat) {
  if (driver_ != nullptr) {
    driver_->Add(this);
  } else {
    thread_ = std::thread([this] { Run(); });
  }
}

StreamNotifier::~StreamNotifier() { Stop(); }

void StreamNotifier::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  if (driver_ != nullptr) {
    driver_->Remove(this);
    return;
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
  if (heartbeat_streams_.fetch_add(1) > 0) return;
  ring_.Interrupt();  // the notifier may be in a long wait: let it shorten it
}

void StreamNotifier::RemoveHeartbeatStream() { heartbeat_streams_.fetch_sub(1); }

void StreamNotifier::Run() {
  absl::Time due = clock_.Now();
  while (true) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_) return;
    }
    ring_.WaitFor(seen_, absl::Now() + WaitSlice(clock_, due, absl::Milliseconds(200)));
    due = Poll();
  }
}

absl::Time StreamNotifier::Poll() {
  const uint64_t end = ring_.EndPosition();
  const absl::Time now = clock_.Now();
  const bool beating = heartbeat_streams_.load() > 0;
  const bool tick = now >= next_tick_;  // lets pending lost-event notices go out
  const bool beat = now >= next_beat_;
  if (beat) next_beat_ = now + heartbeat_;
  if (tick) next_tick_ = now + absl::Seconds(1);
  const bool everyone = end != seen_ || tick;
  seen_ = end;
  const absl::Time due = beating ? std::min(next_tick_, next_beat_) : next_tick_;
  if (!everyone && !(beat && beating)) return due;
  std::vector<ParkedStream*> wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stop_) return absl::InfiniteFuture();
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
  return due;
}

// --- driver ------------------------------------------------------------------------------------

NotifierDriver::NotifierDriver(absl::Duration period)
    : period_(period), thread_([this] { Run(); }) {}

NotifierDriver::~NotifierDriver() {
  stop_ = true;
  thread_.join();
}

void NotifierDriver::Add(StreamNotifier* n) {
  std::lock_guard<std::mutex> lock(mu_);
  notifiers_.push_back(n);
}

void NotifierDriver::Remove(StreamNotifier* n) {
  std::lock_guard<std::mutex> lock(mu_);
  notifiers_.erase(std::remove(notifiers_.begin(), notifiers_.end(), n), notifiers_.end());
}

void NotifierDriver::Run() {
  while (!stop_.load()) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (StreamNotifier* n : notifiers_) n->Poll();
    }
    rounds_.fetch_add(1);
    absl::SleepFor(period_);
  }
}

}  // namespace flowscope::observer
