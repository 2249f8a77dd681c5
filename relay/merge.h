// The relay's time-ordered merging of per-node GetFlows streams (each already in time order):
//
//  * HistoricalMerge — the relay's global meaning of `number`: the newest N across the cluster
//    (or, with `first`, the oldest N), not N per node, kept as the answers stream in (memory:
//    N responses, whatever the number of nodes). The relay uses it for the newest N, which
//    cannot go out before every node has answered.
//  * WatermarkMerge — streams: each peer promises "nothing older than T will follow";
//    everything older than the smallest promise of the live peers is released in order.
//    Follow queries use the peers' watermarks; history queries that can stream (all, the
//    oldest N, since) use each peer's last event time, as each answer is in time order. A peer that
//    stays silent longer than the timeout stops holding the others back (and is reported), and
//    rejoins when it speaks again. Peers that only speak Hubble's API take part with an assumed lag
//    instead of promises: a sort buffer drained after a timeout (and bounded in length), as
//    Hubble's relay does. The output never goes back in time: what arrives older than what
//    has been released (a node that stalled and came back, a Hubble peer later than its lag)
//    is dropped and counted per peer (TakeLate()), for the stream to report.
//
// Each merger is used by one stream's thread; none is thread-safe.
#ifndef FLOWSCOPE_RELAY_MERGE_H_
#define FLOWSCOPE_RELAY_MERGE_H_

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <queue>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "observer/observer.pb.h"
#include "relay/raw_event.h"

namespace flowscope::relay {

// The relay orders and forwards events without decoding them (raw_event.h).
using Response = RawEvent;

// The time a response is ordered by (its envelope time; the flow's if that is unset).
inline absl::Time ResponseTime(const Response& r) { return r.time(); }
inline bool IsFlow(const Response& r) { return r.is_flow(); }
// Roughly what a response holds in memory (for the relay's budgets).
inline size_t ResponseBytes(const Response& r) { return 64 + r.bytes().size(); }

// Between the raw view and the decoded message (for the relay's own notices, and tests).
Response ToRaw(const ::observer::GetFlowsResponse& r);
::observer::GetFlowsResponse Decode(const Response& r);

class HistoricalMerge {
 public:
  // `number` 0 means everything; `first` selects the oldest instead of the newest.
  HistoricalMerge(uint64_t number, bool first) : number_(number), first_(first) {}

  // One response of a node's answer (each node's in its order), or a whole answer.
  void Add(Response r);
  void AddStream(std::vector<Response> stream);

  // The merged result, oldest first. Non-flow responses (lost events) are kept in time order
  // and never count toward `number`; those outside the kept flows' span are left out.
  std::vector<Response> Take();

  size_t size() const { return flows_.size() + others_.size(); }
  size_t bytes() const { return bytes_; }

 private:
  struct Item {
    absl::Time time;
    uint64_t seq;  // arrival order breaks ties, keeping each node's order
    Response response;
  };
  // The heap's top is the flow to give up first: the oldest (newest N) or the newest (first N).
  struct WorseFirst {
    bool first;
    bool operator()(const Item& a, const Item& b) const {
      const bool a_older = a.time != b.time ? a.time < b.time : a.seq < b.seq;
      return first ? a_older : !a_older;
    }
  };

  uint64_t number_;
  bool first_;
  uint64_t seq_ = 0;
  bool cut_ = false;  // flows were given up
  size_t bytes_ = 0;
  std::priority_queue<Item, std::vector<Item>, WorseFirst> flows_{WorseFirst{first_}};
  std::vector<Item> others_;
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
  // A peer whose stream ended or failed: it no longer holds anything back (what it sent still
  // goes out in order).
  void RemovePeer(const std::string& peer);

  // Responses from a peer, in its order, and its promise that nothing older will follow. A peer
  // is alive while it sends responses or moves its promise forward. A response older than what
  // has been released is dropped and counted (returns false).
  bool Push(const std::string& peer, Response r, absl::Time now);
  void Watermark(const std::string& peer, absl::Time watermark, absl::Time now);
  // A peer that is alive although it sends nothing (held back by the stream itself).
  void Touch(const std::string& peer, absl::Time now) {
    auto it = peers_.find(peer);
    if (it != peers_.end()) it->second.last_heard = now;
  }

  // Everything that can be released now, oldest first, at most `limit`. Peers silent for
  // longer than the timeout are skipped for the minimum (and listed by Stalled()).
  std::vector<Response> Release(absl::Time now, size_t limit = std::numeric_limits<size_t>::max());

  // The smallest promise the last Release() went by (none when no live peer holds anything
  // back): a merged stream can pass it on as its own watermark.
  std::optional<absl::Time> low_watermark() const { return low_; }
  // What the output has reached: nothing older will be released (nor is promised to
  // follow). InfinitePast before anything went.
  absl::Time floor() const { return floor_; }
  // Moves the floor up to a promise the stream passed on (its own watermark).
  void Promise(absl::Time t) { floor_ = std::max(floor_, t); }
  // Responses dropped for arriving too late since the last call, per peer.
  std::map<std::string, uint64_t> TakeLate() { return std::exchange(late_, {}); }

  // Peers currently excluded from the minimum because they timed out.
  std::vector<std::string> Stalled(absl::Time now) const;

  void set_max_buffered(size_t n) { max_buffered_ = n; }
  size_t buffered() const { return buffered_; }
  // What one peer has waiting in the merge: responses and their encoded bytes (roughly).
  struct Load {
    size_t responses = 0;
    size_t bytes = 0;
  };
  Load load(const std::string& peer) const {
    auto it = peers_.find(peer);
    return it == peers_.end() ? Load{} : it->second.load;
  }
  size_t buffered_bytes() const { return bytes_; }

 private:
  // A response waiting, with its place in the output: by time, then arrival (which keeps each
  // peer's order among equal times).
  struct Queued {
    absl::Time time;
    uint64_t seq;
    Response response;
  };
  struct Peer {
    std::optional<absl::Time> watermark;
    absl::Time last_heard;
    std::optional<absl::Duration> lag;
    bool removed = false;  // kept while it has responses waiting
    Load load;
    // Its responses waiting, in output order from `head` (a peer's stream is mostly in time
    // order already: appended; an older one is put in its place).
    std::vector<Queued> queue;
    size_t head = 0;
    uint64_t version = 0;     // of its current entry in the heap; older entries are stale
    size_t heap_entries = 0;  // stale ones included: the peer is kept while any remain
  };
  // The heap orders the peers by their oldest response (a k-way merge: log(peers) per
  // response, moving 32-byte entries).
  struct Head {
    absl::Time time;
    uint64_t seq;
    Peer* peer;  // map nodes are stable
    uint64_t version;
  };
  struct Later {
    bool operator()(const Head& a, const Head& b) const {
      return a.time != b.time ? a.time > b.time : a.seq > b.seq;
    }
  };

  void PushHead(Peer& p);
  static constexpr size_t kKeptQueue = 256;  // a drained queue keeps room for this many
  bool IsStalled(const Peer& p, absl::Time now) const {
    return !p.lag && now - p.last_heard > timeout_;
  }
  void Forget(std::map<std::string, Peer>::iterator it);

  absl::Duration timeout_;
  size_t max_buffered_;
  std::map<std::string, Peer> peers_;
  std::priority_queue<Head, std::vector<Head>, Later> heap_;
  size_t buffered_ = 0;
  uint64_t seq_ = 0;
  size_t bytes_ = 0;
  std::optional<absl::Time> low_;
  absl::Time floor_ = absl::InfinitePast();
  std::map<std::string, uint64_t> late_;
};

}  // namespace flowscope::relay

#endif  // FLOWSCOPE_RELAY_MERGE_H_
