// FlowQuery: one GetFlows request's walk over the FlowRing, with Hubble's semantics (the
// reference §3.2): `since` (a binary search, then the first `number` matches), `first` (from
// the oldest), follow without `number` (from the newest), otherwise "last N" (walk back over N
// matching flows, then forward); `until` ends the stream (a follow one too, once it has
// passed); `follow` waits for new records. Records the writer overwrote before this reader got to
// them are reported as one aggregated HUBBLE_RING_BUFFER lost event at most once per second, and
// never count toward `number`. Used by one stream (thread) at a time.
//
//   FLOWSCOPE_ASSIGN_OR_RETURN(auto q, FlowQuery::Create(ring, options, std::move(pred)));
//   for (;;) {
//     FlowQuery::Item item;
//     switch (q.Next(absl::Now(), &item)) {
//       case FlowQuery::Step::kFlow: send(item.record, item.position); break;
//       case FlowQuery::Step::kLost: send(item.lost); break;
//       case FlowQuery::Step::kWait: q.Wait(deadline); break;
//       case FlowQuery::Step::kEnd: return;
//     }
//   }
#ifndef FLOWSCOPE_OBSERVER_FLOW_QUERY_H_
#define FLOWSCOPE_OBSERVER_FLOW_QUERY_H_

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "observer/filter.h"
#include "observer/flow_record.h"
#include "observer/history.h"
#include "observer/lost_events.h"
#include "ringbuf/flow_ring.h"

namespace flowscope::observer {

using Ring = ringbuf::FlowRing<FlowRecord>;

struct QueryOptions {
  uint64_t number = 0;
  bool first = false;
  bool follow = false;
  std::optional<uint64_t> since_ns = std::nullopt;
  std::optional<uint64_t> until_ns = std::nullopt;
  absl::Duration lost_report_interval = absl::Seconds(1);
  // Losses outside the ring (the datapath's ring buffer), reported by follow queries.
  const LostEventLog* lost_log = nullptr;
  // The on-disk history (history.h), read for what the ring does not hold any more, and its
  // writer (how far the ring is stored). Null: the ring only.
  const HistoryStore* history = nullptr;
  const HistoryWriter* history_writer = nullptr;
};

struct LostNotice {
  flow::LostEventSource source = flow::HUBBLE_RING_BUFFER;
  uint64_t count = 0;
  absl::Time first;
  absl::Time last;
};

// For a ring reader on a thread of its own that polls rather than waits on the ring (a waiter
// costs the drain a wake-up per publish): sleeps between passes, 1 ms while records keep
// coming, twice as long after each empty pass, up to 50 ms.
class PollPause {
 public:
  void After(size_t records_read) {
    pause_ = records_read > 0 ? kShortest : std::min(pause_ * 2, kLongest);
    absl::SleepFor(pause_);
  }

 private:
  static constexpr absl::Duration kShortest = absl::Milliseconds(1);
  static constexpr absl::Duration kLongest = absl::Milliseconds(50);
  absl::Duration pause_ = kShortest;
};

class FlowQuery {
 public:
  enum class Step { kFlow, kLost, kWait, kEnd };
  struct Item {
    FlowRecord record;
    uint64_t position = 0;
    uint32_t run = 0;  // the run of a record read from the history; 0: this run (the ring)
    LostNotice lost;
  };

  // A follow query with `until` ends at the first record after it, or once caught up and
  // `until` is this long past (records reach the ring a little after their time).
  static constexpr absl::Duration kLateRecords = absl::Seconds(1);

  // InvalidArgument for first together with follow.
  static absl::StatusOr<FlowQuery> Create(const Ring& ring, const QueryOptions& options,
                                          FlowPredicate predicate);
  FlowQuery(FlowQuery&&) noexcept;
  FlowQuery& operator=(FlowQuery&&) noexcept;
  ~FlowQuery();

  // A history scan checks this between records and ends the query once it is set.
  void SetCancelFlag(const std::atomic<bool>* cancelled) { cancelled_ = cancelled; }
  // Whether the query read the history (tests: "--last N never touches the disk").
  bool read_history() const { return read_history_; }

  // The next thing to send, or kWait (follow, caught up) / kEnd.
  Step Next(absl::Time now, Item* item);

  // Blocks until a record may be there, `deadline` passes or Interrupt() on the ring.
  void Wait(absl::Time deadline) { reader_.Wait(deadline); }

  uint64_t delivered() const { return delivered_; }

  // The ring position this query reads next: records at or after it are not looked at yet.
  uint64_t position() const { return reader_.position(); }

 private:
  FlowQuery(const Ring& ring, const QueryOptions& options, FlowPredicate predicate);
  void Position();
  // Where the ring takes over from the history: a ring position every record below which (in
  // this run) is stored, and that record's key.
  void PlaceSeam();
  // Positions the history cursor before the last `want` matching stored flows; returns how
  // many it found.
  uint64_t WalkBackHistory(uint64_t want);
  void OpenHistory();
  // The next history flow (kFlow/kLost), or kEnd once the seam is reached.
  Step NextFromHistory(absl::Time now, Item* item);
  bool FlushLost(absl::Time now, bool force, Item* item);
  void AddLost(flow::LostEventSource source, uint64_t count, absl::Time first, absl::Time last);

  const Ring* ring_;
  QueryOptions options_;
  FlowPredicate predicate_;
  ringbuf::RingReader<FlowRecord> reader_;
  uint64_t limit_ = 0;  // flows to deliver before ending (0: no limit)
  uint64_t delivered_ = 0;
  bool positioned_ = false;
  bool done_ = false;
  // Per LostEventSource (0..3): what waits to be reported and when it last was.
  std::array<LostNotice, 4> pending_lost_;
  std::array<absl::Time, 4> last_lost_sent_;
  uint64_t log_seen_ = 0;
  // The history phase.
  std::unique_ptr<HistoryStore::Cursor> cursor_;
  bool in_history_ = false;
  bool read_history_ = false;
  uint64_t seam_position_ = 0;
  uint64_t seam_time_ = 0;
  std::vector<HistoryGap> gaps_;  // to report as the scan passes them
  size_t next_gap_ = 0;
  const std::atomic<bool>* cancelled_ = nullptr;
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_FLOW_QUERY_H_
