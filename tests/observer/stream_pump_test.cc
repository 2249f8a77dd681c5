// The observer service's streaming core without gRPC: StreamPumps over a real FlowQuery, a
// StreamNotifier, a writer publishing records and a transport of the test's own that completes
// writes and delivers cancellations on its own thread, as gRPC does. Every follower sees every
// record exactly once and in order; streams cancelled while parked, while writing or while
// being resumed finish and free themselves. Runs under ThreadSanitizer (label "tsan"): the
// hand-over between the parking thread and the notifier is what it checks.
#include "observer/stream_pump.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "observer/filter.h"
#include "observer/flow_builder.h"
#include "tests/testing/flow_records.h"

namespace flowscope::observer {
namespace {

// Runs reactions one at a time on its own thread, like gRPC's callback executor.
class Transport {
 public:
  Transport() : thread_([this] { Run(); }) {}
  ~Transport() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Post(std::function<void()> fn) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(fn));
    }
    cv_.notify_all();
  }

 private:
  void Run() {
    while (true) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
        if (queue_.empty()) return;
        fn = std::move(queue_.front());
        queue_.pop_front();
      }
      fn();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

// What a stream leaves behind for the test (it outlives the stream).
struct Outcome {
  std::mutex mu;
  std::condition_variable cv;
  uint64_t received = 0;
  uint64_t out_of_order = 0;
  bool finished = false;
  bool finished_ok = false;
  bool destroyed = false;
  uint64_t waits = 0;  // times the stream found nothing to send (each park and each wake-up)
};

class TestStream final : public StreamPump {
 public:
  TestStream(StreamNotifier& notifier, Transport& transport, FlowQuery query, Outcome& out,
             bool heartbeat = false)
      : StreamPump(notifier),
        transport_(transport),
        query_(std::move(query)),
        out_(out),
        heartbeat_(heartbeat) {}
  ~TestStream() override {
    std::lock_guard<std::mutex> lock(out_.mu);
    out_.destroyed = true;
    out_.cv.notify_all();
  }

  // As the service's reactor constructors: the first look runs on the caller's thread.
  void Start() { Pump(); }
  // As gRPC's OnCancel: a reaction, delivered by the transport.
  void RequestCancel() {
    transport_.Post([this] { Cancel(); });
  }
  bool wants_heartbeat() const override { return heartbeat_; }

 private:
  Produced Produce() override {
    switch (query_.Next(absl::Now(), &item_)) {
      case FlowQuery::Step::kFlow:
        return Produced::kMessage;
      case FlowQuery::Step::kLost:
        return Produced::kMessage;
      case FlowQuery::Step::kWait: {
        std::lock_guard<std::mutex> lock(out_.mu);
        ++out_.waits;
        out_.cv.notify_all();
        return Produced::kWait;
      }
      case FlowQuery::Step::kEnd:
        return Produced::kEnd;
    }
    return Produced::kEnd;
  }
  uint64_t ReadPosition() const override { return query_.position(); }
  void StartWriting() override {
    // The message is "sent": its content is read now, on the stream's current thread.
    {
      std::lock_guard<std::mutex> lock(out_.mu);
      if (item_.record.sport != expected_) ++out_.out_of_order;
      expected_ = static_cast<uint16_t>(item_.record.sport + 1);
      ++out_.received;
      out_.cv.notify_all();
    }
    transport_.Post([this] { WriteDone(true); });
  }
  void FinishStream(const absl::Status& status) override {
    {
      std::lock_guard<std::mutex> lock(out_.mu);
      out_.finished = true;
      out_.finished_ok = status.ok();
    }
    transport_.Post([this] { Done(); });
  }

  Transport& transport_;
  FlowQuery query_;
  FlowQuery::Item item_;
  Outcome& out_;
  const bool heartbeat_;
  uint16_t expected_ = 0;
};

class StreamPumpTest : public ::testing::Test {
 protected:
  StreamPumpTest()
      : ring_(std::move(Ring::Create(65535)).value()),
        table_("default"),
        builder_(table_, "node-1", nullptr, 1) {
    EndpointInfo tie;
    tie.ips = {"10.0.1.5"};
    tie.namespace_name = "default";
    tie.pod_name = "tiefighter";
    table_.Update({tie});
  }

  FlowQuery Follow(Ring& ring) {
    QueryOptions q;
    q.follow = true;
    auto pred = FlowPredicate::Compile({}, {}, table_, builder_);
    EXPECT_TRUE(pred.ok());
    auto query = FlowQuery::Create(ring, q, *std::move(pred));
    EXPECT_TRUE(query.ok());
    return *std::move(query);
  }
  FlowQuery Follow() { return Follow(*ring_); }

  // Writes `n` records with source ports 0..n-1, publishing every `batch`.
  void Write(Ring& ring, uint16_t n, int batch) {
    EndpointTable::Resolver res(table_);
    const uint64_t base = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
    for (uint16_t i = 0; i < n; ++i) {
      ring.Write(testing::DnsQueryRecord(base + i, "10.0.1.5", "10.0.3.2", i, res));
      if ((i + 1) % batch == 0) {
        ring.Publish();
        std::this_thread::yield();  // let parked streams catch up and park again
      }
    }
    ring.Publish();
  }
  void Write(uint16_t n, int batch) { Write(*ring_, n, batch); }

  static bool WaitFor(Outcome& o, const std::function<bool()>& done) {
    std::unique_lock<std::mutex> lock(o.mu);
    return o.cv.wait_for(lock, std::chrono::seconds(30), done);
  }

  std::unique_ptr<Ring> ring_;
  EndpointTable table_;
  FlowBuilder builder_;
};

TEST_F(StreamPumpTest, FollowersSeeEveryRecordOnceAndInOrderAcrossParks) {
  constexpr int kStreams = 6;
  constexpr uint16_t kRecords = 20000;
  std::vector<Outcome> outcomes(kStreams);
  {
    StreamNotifier notifier(*ring_, absl::Milliseconds(25));
    Transport transport;
    std::vector<TestStream*> streams;
    for (int i = 0; i < kStreams; ++i) {
      streams.push_back(new TestStream(notifier, transport, Follow(), outcomes[i]));
    }
    // Each query positions itself on its first look, before anything is written.
    for (TestStream* s : streams) s->Start();
    std::thread writer([&] { Write(kRecords, 7); });
    writer.join();
    for (int i = 0; i < kStreams; ++i) {
      SCOPED_TRACE(::testing::Message() << "stream " << i);
      Outcome& o = outcomes[i];
      EXPECT_TRUE(WaitFor(o, [&] { return o.received >= kRecords; }))
          << "got " << o.received << " of " << kRecords;
    }
    // Cancelled while parked (all of them have caught up): each finishes and frees itself.
    for (TestStream* s : streams) s->RequestCancel();
    for (int i = 0; i < kStreams; ++i) {
      Outcome& o = outcomes[i];
      EXPECT_TRUE(WaitFor(o, [&] { return o.destroyed; })) << "stream " << i << " never done";
    }
    notifier.Stop();
  }
  for (int i = 0; i < kStreams; ++i) {
    SCOPED_TRACE(::testing::Message() << "stream " << i);
    EXPECT_EQ(outcomes[i].received, kRecords);
    EXPECT_EQ(outcomes[i].out_of_order, 0u);
    EXPECT_TRUE(outcomes[i].finished);
    EXPECT_FALSE(outcomes[i].finished_ok) << "a cancelled stream ends CANCELLED";
  }
}

TEST_F(StreamPumpTest, StreamsCancelledMidFlightFinishAndFreeThemselves) {
  constexpr int kStreams = 8;
  std::vector<Outcome> outcomes(kStreams);
  {
    StreamNotifier notifier(*ring_, absl::Milliseconds(25));
    Transport transport;
    std::vector<TestStream*> streams;
    for (int i = 0; i < kStreams; ++i) {
      streams.push_back(new TestStream(notifier, transport, Follow(), outcomes[i]));
      streams.back()->Start();
    }
    // Cancellations race with the writer: some streams are writing, some parked, some being
    // resumed by the notifier when they are told.
    std::thread writer([&] { Write(30000, 3); });
    for (int i = 0; i < kStreams; ++i) {
      Outcome& o = outcomes[i];
      WaitFor(o, [&] { return o.received >= static_cast<uint64_t>(1000 * i); });
      streams[i]->RequestCancel();
    }
    writer.join();
    for (int i = 0; i < kStreams; ++i) {
      Outcome& o = outcomes[i];
      EXPECT_TRUE(WaitFor(o, [&] { return o.destroyed; })) << "stream " << i << " never done";
      EXPECT_EQ(o.out_of_order, 0u) << "stream " << i;
    }
    notifier.Stop();
  }
}

// The simulator's way: many rings, each with its notifier, all run by one driver thread. Every
// follower of every ring sees its ring's records once and in order; heartbeat streams are woken
// while the rings are idle; a stopped notifier is never run again.
TEST_F(StreamPumpTest, OneDriverRunsTheNotifiersOfManyRings) {
  constexpr int kRings = 4;
  constexpr int kPerRing = 2;
  constexpr uint16_t kRecords = 5000;
  std::vector<std::unique_ptr<Ring>> rings;
  for (int r = 0; r < kRings; ++r) rings.push_back(std::move(Ring::Create(16383)).value());
  std::vector<Outcome> outcomes(kRings * kPerRing);
  Outcome beat;
  {
    NotifierDriver driver(absl::Milliseconds(1));
    Transport transport;
    std::vector<std::unique_ptr<StreamNotifier>> notifiers;
    std::vector<TestStream*> streams;
    for (int r = 0; r < kRings; ++r) {
      notifiers.push_back(std::make_unique<StreamNotifier>(*rings[r], absl::Milliseconds(5),
                                                           Clock::Real(), &driver));
      for (int i = 0; i < kPerRing; ++i) {
        streams.push_back(new TestStream(*notifiers[r], transport, Follow(*rings[r]),
                                         outcomes[r * kPerRing + i]));
      }
    }
    for (TestStream* s : streams) s->Start();
    std::vector<std::thread> writers;
    for (int r = 0; r < kRings; ++r)
      writers.emplace_back([&, r] { Write(*rings[r], kRecords, 5); });
    for (std::thread& w : writers) w.join();
    for (size_t i = 0; i < outcomes.size(); ++i) {
      Outcome& o = outcomes[i];
      EXPECT_TRUE(WaitFor(o, [&] { return o.received >= kRecords; }))
          << "stream " << i << " got " << o.received << " of " << kRecords;
    }

    // A heartbeat stream on an idle ring: the driver wakes it every beat.
    notifiers[0]->AddHeartbeatStream();
    auto* beating = new TestStream(*notifiers[0], transport, Follow(*rings[0]), beat, true);
    beating->Start();
    EXPECT_TRUE(WaitFor(beat, [&] { return beat.waits >= 10; })) << "woken " << beat.waits;

    // Stopped: the driver no longer runs it, so its parked stream stays parked.
    notifiers[0]->Stop();
    uint64_t waits;
    {
      std::lock_guard<std::mutex> lock(beat.mu);
      waits = beat.waits;
    }
    // Twenty rounds of the driver: at least 20 ms, four beats.
    const uint64_t from = driver.rounds();
    const absl::Time deadline = absl::Now() + absl::Seconds(30);
    while (driver.rounds() < from + 20 && absl::Now() < deadline) {
      std::this_thread::yield();
    }
    ASSERT_GE(driver.rounds(), from + 20) << "the driver stopped going round";
    {
      std::lock_guard<std::mutex> lock(beat.mu);
      EXPECT_EQ(beat.waits, waits) << "a stopped notifier was run";
    }
    notifiers[0]->RemoveHeartbeatStream();
    streams.push_back(beating);
    for (TestStream* s : streams) s->RequestCancel();
    for (size_t i = 0; i < outcomes.size(); ++i) {
      Outcome& o = outcomes[i];
      EXPECT_TRUE(WaitFor(o, [&] { return o.destroyed; })) << "stream " << i << " never done";
    }
    EXPECT_TRUE(WaitFor(beat, [&] { return beat.destroyed; }));
    for (auto& n : notifiers) n->Stop();
  }
  for (size_t i = 0; i < outcomes.size(); ++i) {
    EXPECT_EQ(outcomes[i].received, kRecords) << "stream " << i;
    EXPECT_EQ(outcomes[i].out_of_order, 0u) << "stream " << i;
  }
}

}  // namespace
}  // namespace flowscope::observer
