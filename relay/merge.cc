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
  if (it->second.removed && it->second.load.responses == 0) peers_.erase(it);
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
  uint32_t slot;
  if (free_.empty()) {
    slot = static_cast<uint32_t>(held_.size());
    held_.push_back({std::move(r), &p});
  } else {
    slot = free_.back();
    free_.pop_back();
    held_[slot] = {std::move(r), &p};
  }
  heap_.push({t, seq_++, slot});
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
  while (!heap_.empty() && out.size() < limit &&
         (!low_ || heap_.top().time <= *low_ || heap_.size() > max_buffered_)) {
    const Item& top = heap_.top();
    floor_ = std::max(floor_, top.time);
    Held& held = held_[top.slot];
    const size_t bytes = ResponseBytes(held.response);
    held.peer->load.responses -= 1;
    held.peer->load.bytes -= bytes;
    bytes_ -= bytes;
    out.push_back(std::exchange(held.response, Response()));
    held.peer = nullptr;
    free_.push_back(top.slot);
    heap_.pop();
  }
  if (heap_.empty()) {  // nothing waits: slots start over from the first
    held_.clear();
    free_.clear();
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
