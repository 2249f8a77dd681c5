#include "relay/merge.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/wire_format_lite.h>

#include <algorithm>

#include "api/grpc_util.h"

namespace flowscope::relay {

namespace {

// flow.Flow's `time` (field 1), read from the encoded flow without decoding the rest.
google::protobuf::Timestamp EncodedFlowTime(const std::string& flow) {
  google::protobuf::Timestamp ts;
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(flow.data()),
                                            static_cast<int>(flow.size()));
  while (const uint32_t tag = in.ReadTag()) {
    using google::protobuf::internal::WireFormatLite;
    if (WireFormatLite::GetTagFieldNumber(tag) == 1 &&
        WireFormatLite::GetTagWireType(tag) == WireFormatLite::WIRETYPE_LENGTH_DELIMITED) {
      uint32_t len = 0;
      std::string bytes;
      if (!in.ReadVarint32(&len) || !in.ReadString(&bytes, static_cast<int>(len))) break;
      ts.ParseFromString(bytes);
      break;
    }
    if (!WireFormatLite::SkipField(&in, tag)) break;
  }
  return ts;
}

}  // namespace

absl::Time ResponseTime(const Response& r) {
  if (r.has_time()) return FromTimestamp(r.time());
  if (IsFlow(r)) return FromTimestamp(EncodedFlowTime(r.flow()));
  return absl::UnixEpoch();
}

Response ToRaw(const ::observer::GetFlowsResponse& r) {
  Response raw;
  raw.ParseFromString(r.SerializeAsString());
  return raw;
}

::observer::GetFlowsResponse Decode(const Response& r) {
  ::observer::GetFlowsResponse out;
  out.ParseFromString(r.SerializeAsString());
  return out;
}

// --- historical --------------------------------------------------------------------------------

void HistoricalMerge::AddStream(std::vector<Response> stream) {
  streams_.push_back(std::move(stream));
}

std::vector<Response> HistoricalMerge::Take() {
  // k-way merge with a heap of stream heads; ties keep stream order.
  struct Head {
    absl::Time time;
    size_t stream;
    size_t index;
  };
  auto later = [](const Head& a, const Head& b) {
    return a.time != b.time ? a.time > b.time : a.stream > b.stream;
  };
  std::priority_queue<Head, std::vector<Head>, decltype(later)> heap(later);
  for (size_t s = 0; s < streams_.size(); ++s) {
    if (!streams_[s].empty()) heap.push({ResponseTime(streams_[s][0]), s, 0});
  }
  std::vector<Response> merged;
  uint64_t flows = 0;
  while (!heap.empty()) {
    if (first_ && number_ != 0 && flows == number_) break;  // the oldest N are out
    Head h = heap.top();
    heap.pop();
    Response& r = streams_[h.stream][h.index];
    if (IsFlow(r)) ++flows;
    merged.push_back(std::move(r));
    if (h.index + 1 < streams_[h.stream].size()) {
      heap.push({ResponseTime(streams_[h.stream][h.index + 1]), h.stream, h.index + 1});
    }
  }
  streams_.clear();
  if (!first_ && number_ != 0 && flows > number_) {
    // The newest N across all nodes: drop the oldest flows (and what came before them).
    uint64_t drop = flows - number_;
    size_t cut = 0;
    while (drop > 0 && cut < merged.size()) {
      if (IsFlow(merged[cut])) --drop;
      ++cut;
    }
    while (cut < merged.size() && !IsFlow(merged[cut])) ++cut;  // older than what is kept
    merged.erase(merged.begin(), merged.begin() + static_cast<std::ptrdiff_t>(cut));
  }
  return merged;
}

// --- watermark ---------------------------------------------------------------------------------

void WatermarkMerge::AddPeer(const std::string& peer, absl::Time now) {
  peers_.emplace(peer, Peer{std::nullopt, now, std::nullopt});
}

void WatermarkMerge::AssumeLag(const std::string& peer, absl::Duration lag) {
  auto it = peers_.find(peer);
  if (it != peers_.end()) it->second.lag = lag;
}

void WatermarkMerge::RemovePeer(const std::string& peer) { peers_.erase(peer); }

void WatermarkMerge::Push(const std::string& peer, Response r, absl::Time now) {
  auto it = peers_.find(peer);
  if (it != peers_.end()) it->second.last_heard = now;
  const absl::Time t = ResponseTime(r);
  heap_.push({t, seq_++, std::move(r)});
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
    if (IsStalled(p, now)) out.push_back(name);
  }
  return out;
}

std::vector<Response> WatermarkMerge::Release(absl::Time now) {
  // The smallest promise among peers that are alive; with none alive, everything goes.
  low_.reset();
  for (const auto& [name, p] : peers_) {
    if (IsStalled(p, now)) continue;  // not waited for
    absl::Time w = p.watermark.value_or(absl::InfinitePast());
    if (p.lag) w = std::max(w, now - *p.lag);
    if (!low_ || w < *low_) low_ = w;
  }
  std::vector<Response> out;
  while (!heap_.empty() && (!low_ || heap_.top().time <= *low_ || heap_.size() > max_buffered_)) {
    out.push_back(std::move(const_cast<Item&>(heap_.top()).response));
    heap_.pop();
  }
  return out;
}

}  // namespace flowscope::relay
