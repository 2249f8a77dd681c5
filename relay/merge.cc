#include "relay/merge.h"

#include <algorithm>
#include <iterator>
#include <utility>

namespace flowscope::relay {

Response ToRaw(const ::observer::GetFlowsResponse& r) {
  std::optional<Response> raw = RawEvent::Parse(r.SerializeAsString());
  return raw ? *std::move(raw) : Response();
}

::observer::GetFlowsResponse Decode(const Response& r) {
  ::observer::GetFlowsResponse out;
  out.ParseFromArray(r.bytes().data(), static_cast<int>(r.bytes().size()));
  return out;
}

// --- historical --------------------------------------------------------------------------------

void HistoricalMerge::Add(Response r) {
  bytes_ += ResponseBytes(r);
  Item item{ResponseTime(r), seq_++, std::move(r)};
  if (!IsFlow(item.response)) {
    others_.push_back(std::move(item));
    return;
  }
  flows_.push(std::move(item));
  if (number_ != 0 && flows_.size() > number_) {
    bytes_ -= ResponseBytes(flows_.top().response);
    flows_.pop();
    cut_ = true;
  }
}

void HistoricalMerge::AddStream(std::vector<Response> stream) {
  for (Response& r : stream) Add(std::move(r));
}

std::vector<Response> HistoricalMerge::Take() {
  std::vector<Item> items;
  items.reserve(flows_.size() + others_.size());
  while (!flows_.empty()) {
    items.push_back(std::move(const_cast<Item&>(flows_.top())));
    flows_.pop();
  }
  const auto older = [](const Item& a, const Item& b) {
    return a.time != b.time ? a.time < b.time : a.seq < b.seq;
  };
  // Notices outside the kept flows' span went with the flows given up.
  const bool have_flows = !items.empty();
  // The span's ends as keys (the notices go into `items`, which may move).
  Item lo{}, hi{};
  if (have_flows) {
    const auto [min, max] = std::minmax_element(items.begin(), items.end(), older);
    lo = Item{min->time, min->seq, {}};
    hi = Item{max->time, max->seq, {}};
  }
  for (Item& o : others_) {
    if (cut_ && have_flows && (first_ ? older(hi, o) : older(o, lo))) continue;
    items.push_back(std::move(o));
  }
  others_.clear();
  bytes_ = 0;
  std::stable_sort(items.begin(), items.end(), older);
  std::vector<Response> merged;
  merged.reserve(items.size());
  for (Item& i : items) merged.push_back(std::move(i.response));
  cut_ = false;
  return merged;
}

// --- watermark ---------------------------------------------------------------------------------

void WatermarkMerge::AddPeer(const std::string& peer, absl::Time now) {
  auto [it, added] = peers_.try_emplace(peer);
  Peer& p = it->second;
  if (!added && !p.removed) return;
  // New, or back while what it sent before is still waiting: a fresh start either way.
  p.watermark.reset();
  p.last_heard = now;
  p.lag.reset();
  p.removed = false;
}

void WatermarkMerge::AssumeLag(const std::string& peer, absl::Duration lag) {
  auto it = peers_.find(peer);
  if (it != peers_.end()) it->second.lag = lag;
}

void WatermarkMerge::RemovePeer(const std::string& peer) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  it->second.removed = true;
  Forget(it);
}

void WatermarkMerge::Forget(std::map<std::string, Peer>::iterator it) {
  const Peer& p = it->second;
  if (p.removed && p.load.responses == 0 && p.heap_entries == 0) peers_.erase(it);
}

void WatermarkMerge::PushHead(Peer& p) {
  const Queued& q = p.queue[p.head];
  heap_.push({q.time, q.seq, &p, ++p.version});
  ++p.heap_entries;
}

bool WatermarkMerge::Push(const std::string& peer, Response r, absl::Time now) {
  const absl::Time t = ResponseTime(r);
  if (t < floor_) {
    ++late_[peer];
    return false;
  }
  auto [it, added] = peers_.try_emplace(peer);
  Peer& p = it->second;
  if (added) p.removed = true;  // not taking part: it holds nothing back
  p.last_heard = now;
  const size_t bytes = ResponseBytes(r);
  p.load.responses += 1;
  p.load.bytes += bytes;
  bytes_ += bytes;
  ++buffered_;
  const uint64_t seq = seq_++;
  std::vector<Queued>& q = p.queue;
  const bool was_empty = p.head == q.size();
  if (was_empty || !(t < q.back().time)) {
    q.push_back({t, seq, std::move(r)});
    if (was_empty) PushHead(p);
  } else {
    // Older than what it sent before (a Hubble peer's ring is not quite in time order): after
    // the waiting ones of its time or older.
    auto at = std::upper_bound(q.begin() + static_cast<ptrdiff_t>(p.head), q.end(), t,
                               [](absl::Time a, const Queued& b) { return a < b.time; });
    const bool new_head = at == q.begin() + static_cast<ptrdiff_t>(p.head);
    q.insert(at, {t, seq, std::move(r)});
    if (new_head) PushHead(p);  // its earlier entry is stale now
  }
  return true;
}

void WatermarkMerge::Watermark(const std::string& peer, absl::Time watermark, absl::Time now) {
  auto it = peers_.find(peer);
  if (it == peers_.end()) return;
  // Only a promise that moves counts as a sign of life: a node whose drain is stuck keeps
  // sending the same one and must not hold the others back.
  if (it->second.watermark && watermark <= *it->second.watermark) return;
  it->second.watermark = watermark;
  it->second.last_heard = now;
}

std::vector<std::string> WatermarkMerge::Stalled(absl::Time now) const {
  std::vector<std::string> out;
  for (const auto& [name, p] : peers_) {
    if (!p.removed && IsStalled(p, now)) out.push_back(name);
  }
  return out;
}

std::vector<Response> WatermarkMerge::Release(absl::Time now, size_t limit) {
  // The smallest promise among peers that are alive; with none alive, everything goes.
  low_.reset();
  for (const auto& [name, p] : peers_) {
    if (p.removed || IsStalled(p, now)) continue;  // not waited for
    absl::Time w = p.watermark.value_or(absl::InfinitePast());
    if (p.lag) w = std::max(w, now - *p.lag);
    if (!low_ || w < *low_) low_ = w;
  }
  std::vector<Response> out;
  while (!heap_.empty() && out.size() < limit) {
    const Head top = heap_.top();
    Peer& p = *top.peer;
    if (top.version != p.version) {  // stale: the peer has a newer entry
      heap_.pop();
      --p.heap_entries;
      continue;
    }
    if (low_ && top.time > *low_ && buffered_ <= max_buffered_) break;
    heap_.pop();
    --p.heap_entries;
    floor_ = std::max(floor_, top.time);
    Queued& q = p.queue[p.head++];
    const size_t bytes = ResponseBytes(q.response);
    p.load.responses -= 1;
    p.load.bytes -= bytes;
    bytes_ -= bytes;
    --buffered_;
    out.push_back(std::move(q.response));
    if (p.head == p.queue.size()) {
      // Drained: a long queue's memory goes (a thousand idle peers keep nothing).
      if (p.queue.capacity() > kKeptQueue) {
        std::vector<Queued>().swap(p.queue);
      } else {
        p.queue.clear();
      }
      p.head = 0;
      continue;
    }
    if (p.head >= 1024 && p.head * 2 >= p.queue.size()) {  // the gone ones make up half
      p.queue.erase(p.queue.begin(), p.queue.begin() + static_cast<ptrdiff_t>(p.head));
      p.head = 0;
    }
    PushHead(p);
  }
  // Removed peers whose last responses just went.
  for (auto it = peers_.begin(); it != peers_.end();) {
    auto next = std::next(it);
    Forget(it);
    it = next;
  }
  return out;
}

}  // namespace flowscope::relay
