// The relay's time-ordered merging of per-node GetFlows streams (each already in time order):
//
//  * HistoricalMerge — an exact k-way merge for queries without follow, with the relay's
//    global meaning of `number`: the newest N across the cluster (or, with `first`, the
//    oldest N), not N per node.
//  * WatermarkMerge — follow queries from flowscope peers: each peer promises "nothing older
//    than T will follow"; everything older than the smallest promise of the live peers is
//    released in order. A peer that stays silent longer than the timeout stops holding the
//    others back (and is reported), and rejoins when it speaks again.
//  * SortBufferMerge — follow queries from peers that only speak Hubble's API: a bounded
//    min-heap released when full or after a drain timeout, as Hubble's relay does.
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
#include "observer/observer.pb.h"

namespace flowscope::relay {

using Response = ::observer::GetFlowsResponse;

// The time a response is ordered by (its envelope time; the flow's if that is unset).
absl::Time ResponseTime(const Response& r);

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
  explicit WatermarkMerge(absl::Duration peer_timeout) : timeout_(peer_timeout) {}

  // A peer that takes part (its watermark starts unknown, holding everything back until it
  // either sends one or times out).
  void AddPeer(const std::string& peer, absl::Time now);
  // A peer whose stream ended or failed: it no longer holds anything back.
  void RemovePeer(const std::string& peer);

  // Responses from a peer, in its order, and its promise that nothing older will follow.
  void Push(const std::string& peer, Response r, absl::Time now);
  void Watermark(const std::string& peer, absl::Time watermark, absl::Time now);

  // Everything that can be released now, oldest first. Peers silent for longer than the
  // timeout are skipped for the minimum (and listed by Stalled()).
  std::vector<Response> Release(absl::Time now);

  // Peers currently excluded from the minimum because they timed out.
  std::vector<std::string> Stalled(absl::Time now) const;

  size_t buffered() const { return heap_.size(); }

 private:
  struct Peer {
    std::optional<absl::Time> watermark;
    absl::Time last_heard;
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

  absl::Duration timeout_;
  std::map<std::string, Peer> peers_;
  std::priority_queue<Item, std::vector<Item>, Later> heap_;
  uint64_t seq_ = 0;
};

class SortBufferMerge {
 public:
  SortBufferMerge(size_t max_len, absl::Duration drain_timeout)
      : max_len_(max_len), drain_timeout_(drain_timeout) {}

  // Adds a response; returns what must go out now (the oldest, when the buffer is full).
  std::vector<Response> Push(Response r, absl::Time now);
  // After `drain_timeout` without new responses, everything older than now - timeout.
  std::vector<Response> Drain(absl::Time now);
  // Everything, oldest first (the streams ended).
  std::vector<Response> Flush();

 private:
  struct Item {
    absl::Time time;
    uint64_t seq;
    Response response;
  };
  struct Later {
    bool operator()(const Item& a, const Item& b) const {
      return a.time != b.time ? a.time > b.time : a.seq > b.seq;
    }
  };
  size_t max_len_;
  absl::Duration drain_timeout_;
  absl::Time last_push_ = absl::InfinitePast();
  std::priority_queue<Item, std::vector<Item>, Later> heap_;
  uint64_t seq_ = 0;
};

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_MERGE_H_
