// The relay's time-ordered merging of per-node GetFlows streams (each already in time order):
//
//  * HistoricalMerge — an exact k-way merge of complete answers, with the relay's global
//    meaning of `number`: the newest N across the cluster (or, with `first`, the oldest N), not
//    N per node. The relay uses it for the newest N, which needs every node's answer first.
//  * WatermarkMerge — streams: each peer promises "nothing older than T will follow";
//    everything older than the smallest promise of the live peers is released in order.
//    Follow queries use the peers' watermarks; history queries that can stream (all, the
//    oldest N, since) use each peer's last event time, as each answer is in time order. A peer that
//    stays silent longer than the timeout stops holding the others back (and is reported), and
//    rejoins when it speaks again. Peers that only speak Hubble's API take part with an assumed lag
//    instead of promises: a sort buffer drained after a timeout (and bounded in length), as
//    Hubble's relay does.
//
// Each merger is used by one stream's thread; none is thread-safe.
#ifndef FLOWSCOPE_RELAY_MERGE_H_
#define FLOWSCOPE_RELAY_MERGE_H_

#include <cstdint>
#include <map>
#include <optional>
#include <queue>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "flowscope/v1/flowscope.pb.h"
#include "observer/observer.pb.h"

namespace flowscope::relay {

// The relay orders and forwards events without decoding their flows: a GetFlowsResponse seen
// through its wire-identical raw view.
using Response = ::flowscope::v1::RawFlowsResponse;

// The time a response is ordered by (its envelope time; the flow's if that is unset).
absl::Time ResponseTime(const Response& r);
inline bool IsFlow(const Response& r) { return !r.flow().empty(); }

// Between the raw view and the decoded message (for the relay's own notices, and tests).
Response ToRaw(const ::observer::GetFlowsResponse& r);
::observer::GetFlowsResponse Decode(const Response& r);

class HistoricalMerge {
 public:
  // `number` 0 means everything; `first` selects the oldest instead of the newest.
  HistoricalMerge(uint64_t number, bool first) : number_(number), first_(first) {}

  // Adds one node's stream, in the order the node sent it.
  void AddStream(std::vector<Response> stream);

  // The merged result, oldest first. Non-flow responses (lost events) are kept in time order
  // and never count toward `number`.
  std::vector<Response> Take();

 private:
  uint64_t number_;
  bool first_;
  std::vector<std::vector<Response>> streams_;
};

class WatermarkMerge {
 public:
  // `max_buffered` bounds memory: beyond it the oldest responses go out whatever the promises.
  WatermarkMerge(absl::Duration peer_timeout, size_t max_buffered)
      : timeout_(peer_timeout), max_buffered_(max_buffered) {}

  // A peer that takes part (its watermark starts unknown, holding everything back until it
  // either sends one or times out).
  void AddPeer(const std::string& peer, absl::Time now);
  // A peer that speaks only Hubble's API and sends no watermarks: its promise is taken to be
  // `now - lag` — a sort buffer drained after `lag`, as Hubble's relay does — and it never
  // counts as stalled.
  void AssumeLag(const std::string& peer, absl::Duration lag);
  // A peer whose stream ended or failed: it no longer holds anything back.
  void RemovePeer(const std::string& peer);

  // Responses from a peer, in its order, and its promise that nothing older will follow. A peer
  // is alive while it sends responses or moves its promise forward.
  void Push(const std::string& peer, Response r, absl::Time now);
  void Watermark(const std::string& peer, absl::Time watermark, absl::Time now);

  // Everything that can be released now, oldest first. Peers silent for longer than the
  // timeout are skipped for the minimum (and listed by Stalled()).
  std::vector<Response> Release(absl::Time now);

  // The smallest promise the last Release() went by (none when no live peer holds anything
  // back): a merged stream can pass it on as its own watermark.
  std::optional<absl::Time> low_watermark() const { return low_; }

  // Peers currently excluded from the minimum because they timed out.
  std::vector<std::string> Stalled(absl::Time now) const;

  void set_max_buffered(size_t n) { max_buffered_ = n; }
  size_t buffered() const { return heap_.size(); }

 private:
  struct Peer {
    std::optional<absl::Time> watermark;
    absl::Time last_heard;
    std::optional<absl::Duration> lag;
  };
  struct Item {
    absl::Time time;
    uint64_t seq;  // arrival order breaks ties, keeping each peer's order
    Response response;
  };
  struct Later {
    bool operator()(const Item& a, const Item& b) const {
      return a.time != b.time ? a.time > b.time : a.seq > b.seq;
    }
  };

  bool IsStalled(const Peer& p, absl::Time now) const {
    return !p.lag && now - p.last_heard > timeout_;
  }

  absl::Duration timeout_;
  size_t max_buffered_;
  std::map<std::string, Peer> peers_;
  std::priority_queue<Item, std::vector<Item>, Later> heap_;
  uint64_t seq_ = 0;
  std::optional<absl::Time> low_;
};

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_MERGE_H_
