#include "observer/flow_query.h"

#include <algorithm>
#include <limits>

#include "api/flows_request.h"

namespace flowscope::observer {

absl::StatusOr<FlowQuery> FlowQuery::Create(const Ring& ring, const QueryOptions& options,
                                            FlowPredicate predicate) {
  if (absl::Status s =
          CheckQueryWindow(options.first, options.follow, options.since_ns, options.until_ns);
      !s.ok()) {
    return s;
  }
  return FlowQuery(ring, options, std::move(predicate));
}

FlowQuery::FlowQuery(const Ring& ring, const QueryOptions& options, FlowPredicate predicate)
    : ring_(&ring),
      options_(options),
      predicate_(std::move(predicate)),
      reader_(ring, ring.EndPosition()) {
  last_lost_sent_.fill(absl::InfinitePast());
  // Only losses after the query started concern it.
  if (options_.lost_log != nullptr) log_seen_ = options_.lost_log->seq();
}

FlowQuery::FlowQuery(FlowQuery&&) noexcept = default;
FlowQuery& FlowQuery::operator=(FlowQuery&&) noexcept = default;
FlowQuery::~FlowQuery() = default;

void FlowQuery::AddLost(flow::LostEventSource source, uint64_t count, absl::Time first,
                        absl::Time last) {
  LostNotice& p = pending_lost_[static_cast<size_t>(source) & 3];
  if (p.count == 0) p.first = first;
  p.source = source;
  p.count += count;
  p.last = last;
}

void FlowQuery::PlaceSeam() {
  // A little past the ring's oldest record, so that the writer does not overwrite the seam
  // while the history is read; never past what the history writer has stored.
  const uint64_t oldest = ring_->OldestPosition();
  const uint64_t end = ring_->EndPosition();
  const uint64_t stored =
      options_.history_writer != nullptr ? options_.history_writer->persisted() : oldest;
  seam_position_ = std::max(oldest, std::min({oldest + ring_->Cap() / 16, stored, end}));
  FlowRecord r;
  seam_time_ = ring_->ReadAt(seam_position_, &r) == ringbuf::ReadStatus::kRecord
                   ? r.time_ns
                   : std::numeric_limits<uint64_t>::max();
}

void FlowQuery::OpenHistory() {
  in_history_ = true;
  read_history_ = true;
  gaps_ =
      options_.history->Gaps(options_.since_ns.value_or(0), options_.until_ns.value_or(seam_time_));
  reader_.Seek(seam_position_);
}

uint64_t FlowQuery::WalkBackHistory(uint64_t want) {
  cursor_ = options_.history->Scan();
  cursor_->SeekBefore(options_.history->run(), seam_position_);
  uint64_t found = 0;
  FlowRecord r;
  bool at_match = false;
  for (uint64_t scanned = 0; cursor_->Valid(); cursor_->Prev()) {
    if (++scanned % 4096 == 0 && cancelled_ != nullptr && cancelled_->load()) break;
    if (predicate_.MatchesAll() || predicate_.Match(cursor_->Read(&r), cursor_->position())) {
      at_match = true;
      if (++found == want) break;
    }
  }
  // Ran off the start, or found nothing: read forward from the first stored flow.
  if (!cursor_->Valid() || !at_match) cursor_->SeekToFirst();
  return found;
}

void FlowQuery::Position() {
  positioned_ = true;
  const bool history = options_.history != nullptr;
  if (history) PlaceSeam();
  if (options_.since_ns) {
    // The first `number` matching flows at or after `since`.
    limit_ = options_.number;
    if (history && *options_.since_ns < seam_time_) {
      cursor_ = options_.history->Scan();
      cursor_->Seek(*options_.since_ns);
      OpenHistory();
      return;
    }
    reader_.Seek(ring_->SeekTime(*options_.since_ns));
    return;
  }
  if (options_.first) {
    limit_ = options_.number;
    if (history) {
      cursor_ = options_.history->Scan();
      cursor_->SeekToFirst();
      OpenHistory();
      return;
    }
    reader_.Seek(ring_->OldestPosition());
    return;
  }
  reader_.Seek(ring_->EndPosition());
  if (options_.follow && options_.number == 0) return;  // from now on
  // Last N: walk back over N matching flows (all of the ring's when number is 0).
  const auto walk_back = [&](uint64_t floor) {
    uint64_t found = 0;
    FlowRecord r;
    while (options_.number == 0 || found < options_.number) {
      if (reader_.position() <= floor || reader_.Prev(&r) != ringbuf::ReadStatus::kRecord) break;
      if (predicate_.MatchesAll() || predicate_.Match(r, reader_.position())) ++found;
    }
    return found;
  };
  uint64_t found = walk_back(0);
  if (history && options_.number > 0 && found < options_.number) {
    // The ring holds fewer: the rest come from the history, before the seam.
    reader_.Seek(ring_->EndPosition());
    found = walk_back(seam_position_);
    if (found < options_.number) {
      found += WalkBackHistory(options_.number - found);
      OpenHistory();
    }
  }
  if (!options_.follow) limit_ = found;
  if (!options_.follow && found == 0) done_ = true;
}

FlowQuery::Step FlowQuery::NextFromHistory(absl::Time now, Item* item) {
  const uint32_t run = options_.history->run();
  for (uint64_t scanned = 1; cursor_->Valid(); cursor_->Next(), ++scanned) {
    if (scanned % 4096 == 0 && cancelled_ != nullptr && cancelled_->load()) {
      done_ = true;
      return Step::kEnd;
    }
    // This run's flows from the seam on are read from the ring.
    if (cursor_->run() == run && cursor_->position() >= seam_position_) break;
    const uint64_t t = cursor_->time_ns();
    if (options_.since_ns && t < *options_.since_ns) continue;
    if (options_.until_ns && t > *options_.until_ns) {
      done_ = true;
      break;
    }
    // Flows the writer could not store are reported where they belong in time.
    if (next_gap_ < gaps_.size() && gaps_[next_gap_].first_ns <= t) {
      const HistoryGap& g = gaps_[next_gap_++];
      AddLost(flow::HUBBLE_RING_BUFFER, g.count,
              absl::FromUnixNanos(static_cast<int64_t>(g.first_ns)),
              absl::FromUnixNanos(static_cast<int64_t>(g.last_ns)));
      if (FlushLost(now, true, item)) return Step::kLost;
    }
    const FlowRecord& r = cursor_->Read(&item->record);
    if (!predicate_.MatchesAll() && !predicate_.Match(r, cursor_->position())) continue;
    item->position = cursor_->position();
    item->run = cursor_->run();
    cursor_->Next();
    ++delivered_;
    if (!options_.follow && limit_ != 0 && delivered_ >= limit_) done_ = true;
    return Step::kFlow;
  }
  in_history_ = false;
  cursor_.reset();
  // Gaps up to the seam not passed yet.
  while (next_gap_ < gaps_.size() && !done_) {
    const HistoryGap& g = gaps_[next_gap_++];
    AddLost(flow::HUBBLE_RING_BUFFER, g.count,
            absl::FromUnixNanos(static_cast<int64_t>(g.first_ns)),
            absl::FromUnixNanos(static_cast<int64_t>(g.last_ns)));
  }
  return Step::kEnd;
}

bool FlowQuery::FlushLost(absl::Time now, bool force, Item* item) {
  for (size_t i = 0; i < pending_lost_.size(); ++i) {
    if (pending_lost_[i].count == 0) continue;
    if (!force && now - last_lost_sent_[i] < options_.lost_report_interval) continue;
    item->lost = pending_lost_[i];
    pending_lost_[i] = {};
    last_lost_sent_[i] = now;
    return true;
  }
  return false;
}

FlowQuery::Step FlowQuery::Next(absl::Time now, Item* item) {
  if (!positioned_) Position();
  if (options_.follow && options_.lost_log != nullptr && options_.lost_log->seq() != log_seen_) {
    for (const LostEventLog::Entry& e : options_.lost_log->Since(log_seen_)) {
      AddLost(e.source, e.count, e.time, e.time);
      log_seen_ = e.seq;
    }
  }
  if (options_.follow && FlushLost(now, false, item)) return Step::kLost;
  if (in_history_ && !done_) {
    const Step step = NextFromHistory(now, item);
    if (step != Step::kEnd) return step;
  }
  item->run = 0;
  // The loop every ring scan runs per record: what it consults, in locals.
  const bool all = predicate_.MatchesAll();
  const uint64_t since = options_.since_ns.value_or(0);
  const uint64_t until = options_.until_ns.value_or(std::numeric_limits<uint64_t>::max());
  FlowRecord r;
  while (!done_) {
    const uint64_t position = reader_.position();
    const ringbuf::ReadStatus s = reader_.Next(&r);
    if (s == ringbuf::ReadStatus::kLost) {
      AddLost(flow::HUBBLE_RING_BUFFER, reader_.TakeLost(), now, now);
      if (FlushLost(now, false, item)) return Step::kLost;
      continue;
    }
    if (s == ringbuf::ReadStatus::kEnd) {
      if (options_.follow && options_.until_ns &&
          static_cast<uint64_t>(absl::ToUnixNanos(now - kLateRecords)) > *options_.until_ns) {
        // Nothing published from now on can be before `until`: the follow is over.
        done_ = true;
        break;
      }
      if (options_.follow) {
        if (FlushLost(now, false, item)) return Step::kLost;
        return Step::kWait;
      }
      done_ = true;
      break;
    }
    if (r.time_ns < since) continue;
    if (r.time_ns > until) {
      done_ = true;
      break;
    }
    if (!all && !predicate_.Match(r, position)) continue;
    item->record = r;
    item->position = position;
    ++delivered_;
    if (!options_.follow && limit_ != 0 && delivered_ >= limit_) done_ = true;
    return Step::kFlow;
  }
  if (FlushLost(now, true, item)) return Step::kLost;
  return Step::kEnd;
}

}  // namespace flowscope::observer
