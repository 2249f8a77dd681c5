#include "observer/flow_query.h"

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

void FlowQuery::AddLost(flow::LostEventSource source, uint64_t count, absl::Time first,
                        absl::Time last) {
  LostNotice& p = pending_lost_[static_cast<size_t>(source) & 3];
  if (p.count == 0) p.first = first;
  p.source = source;
  p.count += count;
  p.last = last;
}

void FlowQuery::Position() {
  positioned_ = true;
  if (options_.since_ns) {
    // The first `number` matching flows at or after `since`.
    reader_.Seek(ring_->SeekTime(*options_.since_ns));
    limit_ = options_.number;
    return;
  }
  if (options_.first) {
    reader_.Seek(ring_->OldestPosition());
    limit_ = options_.number;
    return;
  }
  reader_.Seek(ring_->EndPosition());
  if (options_.follow && options_.number == 0) return;  // from now on
  // Last N: walk back over N matching flows (all of them when number is 0).
  uint64_t found = 0;
  FlowRecord r;
  while (options_.number == 0 || found < options_.number) {
    if (reader_.Prev(&r) != ringbuf::ReadStatus::kRecord) break;
    if (predicate_.MatchesAll() || predicate_.Match(r, reader_.position())) ++found;
  }
  if (!options_.follow) limit_ = found;
  if (!options_.follow && found == 0) done_ = true;
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
  while (!done_) {
    const uint64_t position = reader_.position();
    const ringbuf::ReadStatus s = reader_.Next(&item->record);
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
    const FlowRecord& r = item->record;
    if (options_.since_ns && r.time_ns < *options_.since_ns) continue;
    if (options_.until_ns && r.time_ns > *options_.until_ns) {
      done_ = true;
      break;
    }
    if (!predicate_.MatchesAll() && !predicate_.Match(r, position)) continue;
    item->position = position;
    ++delivered_;
    if (!options_.follow && limit_ != 0 && delivered_ >= limit_) done_ = true;
    return Step::kFlow;
  }
  if (FlushLost(now, true, item)) return Step::kLost;
  return Step::kEnd;
}

}  // namespace flowscope::observer
