// The relay's mergers: exact k-way order, global last-N / first-N, watermark release with
// stalled and leaving peers, and the sort-buffer fallback.
#include "relay/merge.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace flowscope::relay {
namespace {

using ::testing::ElementsAre;

const absl::Time kT0 = absl::FromUnixSeconds(1'800'000'000);

::observer::GetFlowsResponse DecodedFlow(const std::string& node, int ms) {
  ::observer::GetFlowsResponse r;
  r.mutable_flow()->set_node_name(node);
  const absl::Time t = kT0 + absl::Milliseconds(ms);
  const int64_t ns = absl::ToUnixNanos(t);
  r.mutable_time()->set_seconds(ns / 1'000'000'000);
  r.mutable_time()->set_nanos(static_cast<int32_t>(ns % 1'000'000'000));
  *r.mutable_flow()->mutable_time() = r.time();
  r.set_node_name(node);
  return r;
}

// A flow from `node` at kT0 + ms milliseconds, as the relay sees it.
Response Flow(const std::string& node, int ms) { return ToRaw(DecodedFlow(node, ms)); }

Response Lost(int ms) {
  ::observer::GetFlowsResponse r = DecodedFlow("x", ms);
  r.clear_flow();
  r.mutable_lost_events()->set_num_events_lost(1);
  return ToRaw(r);
}

std::vector<std::string> Labels(const std::vector<Response>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) {
    const int ms = static_cast<int>(absl::ToInt64Milliseconds(ResponseTime(r) - kT0));
    out.push_back((IsFlow(r) ? std::string(r.node_name()) : std::string("lost")) + "@" +
                  std::to_string(ms));
  }
  return out;
}

TEST(HistoricalMergeTest, ExactOrderAcrossNodes) {
  HistoricalMerge m(0, false);
  m.AddStream({Flow("a", 1), Flow("a", 4), Flow("a", 9)});
  m.AddStream({Flow("b", 2), Flow("b", 3), Flow("b", 10)});
  m.AddStream({});
  m.AddStream({Flow("c", 4)});
  EXPECT_THAT(Labels(m.Take()), ElementsAre("a@1", "b@2", "b@3", "a@4", "c@4", "a@9", "b@10"));
}

TEST(HistoricalMergeTest, LastNAndFirstNAreGlobal) {
  auto fill = [](HistoricalMerge& m) {
    m.AddStream({Flow("a", 1), Flow("a", 5), Flow("a", 6)});
    m.AddStream({Flow("b", 2), Lost(3), Flow("b", 7)});
  };
  HistoricalMerge last(3, false);
  fill(last);
  EXPECT_THAT(Labels(last.Take()), ElementsAre("a@5", "a@6", "b@7")) << "newest 3 in the cluster";
  HistoricalMerge first(2, true);
  fill(first);
  EXPECT_THAT(Labels(first.Take()), ElementsAre("a@1", "b@2")) << "oldest 2";
  HistoricalMerge with_lost(3, true);
  fill(with_lost);
  EXPECT_THAT(Labels(with_lost.Take()), ElementsAre("a@1", "b@2", "lost@3", "a@5"))
      << "lost events pass and do not count";
}

TEST(WatermarkMergeTest, ReleasesUpToTheSmallestPromise) {
  WatermarkMerge m(absl::Seconds(2), 1000);
  m.AddPeer("a", kT0);
  m.AddPeer("b", kT0);
  m.Push("a", Flow("a", 10), kT0);
  m.Push("a", Flow("a", 30), kT0);
  m.Push("b", Flow("b", 20), kT0);
  EXPECT_TRUE(m.Release(kT0).empty()) << "no promises yet";
  m.Watermark("a", kT0 + absl::Milliseconds(30), kT0);
  EXPECT_TRUE(m.Release(kT0).empty()) << "b has promised nothing";
  m.Watermark("b", kT0 + absl::Milliseconds(25), kT0);
  EXPECT_THAT(Labels(m.Release(kT0)), ElementsAre("a@10", "b@20"));
  m.Push("b", Flow("b", 28), kT0);
  m.Watermark("b", kT0 + absl::Milliseconds(40), kT0);
  EXPECT_THAT(Labels(m.Release(kT0)), ElementsAre("b@28", "a@30"));
  EXPECT_EQ(m.buffered(), 0u);
}

TEST(WatermarkMergeTest, ASilentPeerStopsHoldingOthersBackAndRejoins) {
  WatermarkMerge m(absl::Seconds(2), 1000);
  m.AddPeer("a", kT0);
  m.AddPeer("hung", kT0);
  m.Push("a", Flow("a", 100), kT0);
  m.Watermark("a", kT0 + absl::Seconds(1), kT0 + absl::Milliseconds(500));
  EXPECT_TRUE(m.Release(kT0 + absl::Seconds(1)).empty()) << "within the timeout it waits";
  const absl::Time later = kT0 + absl::Milliseconds(2100);
  m.Watermark("a", kT0 + absl::Seconds(2), later);
  EXPECT_THAT(m.Stalled(later), ElementsAre("hung"));
  EXPECT_THAT(Labels(m.Release(later)), ElementsAre("a@100"));
  // It answers again: it is waited for again.
  m.Push("hung", Flow("hung", 2500), later);
  m.Push("a", Flow("a", 2600), later);
  m.Watermark("a", kT0 + absl::Seconds(3), later);
  EXPECT_TRUE(m.Stalled(later).empty());
  EXPECT_TRUE(m.Release(later).empty()) << "hung has no promise yet";
  m.RemovePeer("hung");
  EXPECT_THAT(Labels(m.Release(later)), ElementsAre("hung@2500", "a@2600"))
      << "a peer that leaves holds nothing back";
}

TEST(WatermarkMergeTest, WhatComesBackAfterAStallOlderThanTheOutputIsCountedNotSent) {
  WatermarkMerge m(absl::Seconds(2), 1000);
  m.AddPeer("a", kT0);
  m.AddPeer("stopped", kT0);
  m.Push("stopped", Flow("stopped", 10), kT0);
  m.Watermark("stopped", kT0 + absl::Milliseconds(10), kT0);
  const absl::Time later = kT0 + absl::Seconds(3);
  m.Push("a", Flow("a", 20), later);
  m.Push("a", Flow("a", 2900), later);
  m.Watermark("a", kT0 + absl::Milliseconds(2900), later);
  EXPECT_THAT(Labels(m.Release(later)), ElementsAre("stopped@10", "a@20", "a@2900"))
      << "the stopped peer is not waited for; what it sent before still goes in order";
  EXPECT_EQ(m.floor(), kT0 + absl::Milliseconds(2900));
  // It comes back with what it saw while stopped: older than the output — dropped, counted.
  EXPECT_FALSE(m.Push("stopped", Flow("stopped", 1000), later));
  EXPECT_FALSE(m.Push("stopped", Flow("stopped", 2000), later));
  EXPECT_TRUE(m.Push("stopped", Flow("stopped", 3000), later));
  EXPECT_THAT(m.TakeLate(), ElementsAre(std::pair<const std::string, uint64_t>("stopped", 2)));
  EXPECT_TRUE(m.TakeLate().empty()) << "taken once";
  m.Watermark("stopped", kT0 + absl::Milliseconds(3000), later);
  m.Watermark("a", kT0 + absl::Milliseconds(3000), later);
  EXPECT_THAT(Labels(m.Release(later)), ElementsAre("stopped@3000"));
  // A promise passed on downstream moves the floor as well.
  m.Promise(kT0 + absl::Milliseconds(3500));
  EXPECT_FALSE(m.Push("a", Flow("a", 3400), later));
}

TEST(WatermarkMergeTest, LoadIsCountedPerPeerAndReleaseIsBounded) {
  WatermarkMerge m(absl::Seconds(2), 1000);
  m.AddPeer("a", kT0);
  m.AddPeer("b", kT0);
  for (int i = 0; i < 10; ++i) m.Push("a", Flow("a", i), kT0);
  m.Push("b", Flow("b", 3), kT0);
  EXPECT_EQ(m.load("a").responses, 10u);
  EXPECT_EQ(m.load("b").responses, 1u);
  EXPECT_GT(m.load("a").bytes, m.load("b").bytes);
  EXPECT_EQ(m.buffered_bytes(), m.load("a").bytes + m.load("b").bytes);
  m.RemovePeer("a");
  m.RemovePeer("b");
  EXPECT_EQ(m.Release(kT0, 4).size(), 4u) << "at most the limit at a time";
  EXPECT_EQ(m.load("a").responses, 6u) << "a@0..a@3 went (a@3 before b@3: it came first)";
  EXPECT_EQ(m.Release(kT0).size(), 7u);
  EXPECT_EQ(m.buffered_bytes(), 0u);
  EXPECT_EQ(m.load("a").responses, 0u) << "a peer that left is forgotten once emptied";
}

TEST(HistoricalMergeTest, TheNewestNAreKeptInNResponsesWhateverTheNodes) {
  HistoricalMerge m(3, false);
  for (int node = 0; node < 100; ++node) {
    for (int i = 0; i < 10; ++i) m.Add(Flow("n" + std::to_string(node), node + i * 100));
    EXPECT_LE(m.size(), 3u);
  }
  EXPECT_THAT(Labels(m.Take()), ElementsAre("n97@997", "n98@998", "n99@999"));
}

TEST(WatermarkMergeTest, HubblePeersAreASortBufferDrainedAfterTheirLag) {
  WatermarkMerge m(absl::Seconds(2), 3);
  m.AddPeer("flowscope", kT0);
  m.AddPeer("hubble", kT0);
  m.AssumeLag("hubble", absl::Seconds(1));
  m.Watermark("flowscope", kT0 + absl::Seconds(5), kT0);
  m.Push("hubble", Flow("hubble", 200), kT0);
  m.Push("hubble", Flow("hubble", 900), kT0);
  EXPECT_THAT(Labels(m.Release(kT0 + absl::Milliseconds(1500))), ElementsAre("hubble@200"))
      << "older than now - 1 s";
  ASSERT_TRUE(m.low_watermark().has_value());
  EXPECT_EQ(*m.low_watermark(), kT0 + absl::Milliseconds(500));
  const absl::Time much_later = kT0 + absl::Seconds(4);
  EXPECT_THAT(m.Stalled(much_later), ElementsAre("flowscope"))
      << "silent for 4 s; a Hubble peer never counts as stalled: it sends no heartbeats";
  m.Watermark("flowscope", kT0 + absl::Seconds(5), much_later);
  m.Push("flowscope", Flow("flowscope", 3000), much_later);
  m.Push("flowscope", Flow("flowscope", 3100), much_later);
  m.Push("flowscope", Flow("flowscope", 3200), much_later);
  EXPECT_THAT(Labels(m.Release(kT0 + absl::Milliseconds(1600))), ElementsAre("hubble@900"))
      << "the buffer holds at most 3: the oldest goes out when it is fuller";
  EXPECT_EQ(m.buffered(), 3u);
}

TEST(WatermarkMergeTest, APromiseThatDoesNotMoveIsNoSignOfLife) {
  WatermarkMerge m(absl::Seconds(2), 1000);
  m.AddPeer("a", kT0);
  m.AddPeer("stuck", kT0);
  for (int ms = 0; ms <= 3000; ms += 25) {
    const absl::Time now = kT0 + absl::Milliseconds(ms);
    m.Watermark("stuck", kT0, now);  // heartbeats, always the same promise
    m.Watermark("a", now, now);
  }
  EXPECT_THAT(m.Stalled(kT0 + absl::Seconds(3)), ElementsAre("stuck"));
}

TEST(RawResponseTest, IsWireIdenticalAndTimedWithoutDecodingTheFlow) {
  ::observer::GetFlowsResponse decoded = DecodedFlow("a", 42);
  decoded.mutable_flow()->mutable_l4()->mutable_tcp()->set_destination_port(80);
  const Response raw = ToRaw(decoded);
  EXPECT_EQ(raw.bytes(), decoded.SerializeAsString()) << "passed on byte for byte";
  EXPECT_EQ(Decode(raw).flow().l4().tcp().destination_port(), 80u);
  EXPECT_EQ(ResponseTime(raw), kT0 + absl::Milliseconds(42));
  EXPECT_EQ(raw.node_name(), "a");
  EXPECT_TRUE(raw.is_flow());
  decoded.clear_time();
  EXPECT_EQ(ResponseTime(ToRaw(decoded)), kT0 + absl::Milliseconds(42))
      << "the flow's own time, read from its encoding";
}

TEST(WatermarkMergeTest, WithNoLivePeerEverythingGoes) {
  WatermarkMerge m(absl::Seconds(2), 1000);
  m.AddPeer("a", kT0);
  m.Push("a", Flow("a", 10), kT0);
  m.RemovePeer("a");
  EXPECT_THAT(Labels(m.Release(kT0)), ElementsAre("a@10"));
  EXPECT_FALSE(m.low_watermark().has_value());
}

// Against a reference: whatever each peer's order (Hubble peers are not quite in time order),
// interleaved releases, limits and peers leaving, the output is every response in (time,
// arrival) order, nothing lost or repeated, and the counts agree.
TEST(WatermarkMergeTest, ReleasesInTimeThenArrivalOrderWhateverThePeersOrder) {
  std::mt19937_64 rng(11);
  for (int round = 0; round < 40; ++round) {
    WatermarkMerge m(absl::Hours(1), 1 << 20);
    const int peers = 1 + static_cast<int>(rng() % 6);
    for (int p = 0; p < peers; ++p) m.AddPeer("p" + std::to_string(p), kT0);
    struct Sent {
      int ms;
      uint64_t arrival;
      std::string peer;
    };
    std::vector<Sent> sent;
    std::vector<std::string> out;
    std::vector<int> clock(static_cast<size_t>(peers), 0);
    uint64_t arrival = 0;
    for (int step = 0; step < 300; ++step) {
      const int p = static_cast<int>(rng() % static_cast<uint64_t>(peers));
      const std::string name = "p" + std::to_string(p);
      // Mostly forward, sometimes back (as far as 50 ms), often the same time as before.
      const int r = static_cast<int>(rng() % 10);
      int& c = clock[static_cast<size_t>(p)];
      c = r < 5   ? c + static_cast<int>(rng() % 5)
          : r < 8 ? c
                  : std::max(0, c - static_cast<int>(rng() % 50));
      ASSERT_TRUE(m.Push(name, Flow(name, 1000 + c), kT0));
      sent.push_back({1000 + c, arrival++, name});
      if (rng() % 20 == 0) {  // a partial release: nothing is promised, so nothing goes ...
        EXPECT_TRUE(m.Release(kT0, 1 + rng() % 5).empty());
      }
    }
    for (int p = 0; p < peers; ++p) m.RemovePeer("p" + std::to_string(p));  // ... until they end
    EXPECT_EQ(m.buffered(), sent.size());
    while (m.buffered() > 0) {
      const size_t before = m.buffered();
      for (const std::string& l : Labels(m.Release(kT0, 1 + rng() % 40))) out.push_back(l);
      ASSERT_LT(m.buffered(), before);
    }
    std::stable_sort(sent.begin(), sent.end(),
                     [](const Sent& a, const Sent& b) { return a.ms < b.ms; });
    std::vector<std::string> expected;
    for (const Sent& e : sent) expected.push_back(e.peer + "@" + std::to_string(e.ms));
    ASSERT_EQ(out, expected) << "round " << round;
    EXPECT_EQ(m.buffered_bytes(), 0u);
    for (int p = 0; p < peers; ++p) EXPECT_EQ(m.load("p" + std::to_string(p)).responses, 0u);
  }
}

}  // namespace
}  // namespace flowscope::relay
