#include "observer/name_cache.h"

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "bpf/flow_event.h"

namespace flowscope::observer {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr uint64_t kSecond = 1'000'000'000;

std::array<uint32_t, 4> Addr(const char* text) {
  std::array<uint32_t, 4> a{};
  if (inet_pton(AF_INET, text, a.data()) != 1) inet_pton(AF_INET6, text, a.data());
  return a;
}

NameCache::Client Pod(uint32_t endpoint) { return NameCache::Client{.endpoint = endpoint}; }

std::vector<std::string> Names(const NameCache& c, const NameCache::Client& client,
                               const char* addr, uint64_t t) {
  const auto a = Addr(addr);
  const uint8_t family =
      std::string(addr).find(':') == std::string::npos ? FS_FAMILY_IPV4 : FS_FAMILY_IPV6;
  return c.Lookup(client, family, a.data(), t);
}

TEST(NameCacheTest, AClientsNamesForAnAddressSortedWithoutTheTrailingDot) {
  NameCache c;
  EXPECT_TRUE(c.empty());
  c.Add(Pod(7), "www.Example.com.", {"93.184.216.34", "2606:2800:220:1::1"}, 300, 10 * kSecond);
  c.Add(Pod(7), "example.com.", {"93.184.216.34"}, 300, 11 * kSecond);
  c.Add(Pod(7), "example.com.", {"93.184.216.34"}, 300, 12 * kSecond);  // once
  c.Add(Pod(7), "bad.example.", {"not-an-address", ""}, 300, 12 * kSecond);
  EXPECT_EQ(c.size(), 2u);
  EXPECT_THAT(Names(c, Pod(7), "93.184.216.34", 20 * kSecond),
              ElementsAre("example.com", "www.example.com"));
  EXPECT_THAT(Names(c, Pod(7), "2606:2800:220:1::1", 20 * kSecond), ElementsAre("www.example.com"));
  EXPECT_THAT(Names(c, Pod(8), "93.184.216.34", 20 * kSecond), IsEmpty()) << "another client's";
  EXPECT_THAT(Names(c, Pod(7), "93.184.216.35", 20 * kSecond), IsEmpty());
  EXPECT_THAT(Names(c, Pod(7), "93.184.216.34", 10 * kSecond - 1), IsEmpty())
      << "not before the answer";
}

TEST(NameCacheTest, ANameHoldsForItsTtlButAtLeastTheMinimumAndAgainWhenAnsweredAgain) {
  NameCache c(NameCache::Options{.min_ttl = absl::Seconds(60)});
  c.Add(Pod(7), "short.example.", {"192.0.2.1"}, 5, 100 * kSecond);
  c.Add(Pod(7), "long.example.", {"192.0.2.1"}, 600, 100 * kSecond);
  EXPECT_THAT(Names(c, Pod(7), "192.0.2.1", 159 * kSecond),
              ElementsAre("long.example", "short.example"))
      << "a 5 s TTL held for the minimum";
  EXPECT_THAT(Names(c, Pod(7), "192.0.2.1", 160 * kSecond), ElementsAre("long.example"));
  EXPECT_THAT(Names(c, Pod(7), "192.0.2.1", 700 * kSecond), IsEmpty());
  // Answered again while it holds: extended; after it lapsed: holds anew, not in the gap.
  c.Add(Pod(7), "long.example.", {"192.0.2.1"}, 600, 650 * kSecond);
  EXPECT_THAT(Names(c, Pod(7), "192.0.2.1", 1200 * kSecond), ElementsAre("long.example"));
  c.Add(Pod(7), "short.example.", {"192.0.2.1"}, 5, 1000 * kSecond);
  EXPECT_THAT(Names(c, Pod(7), "192.0.2.1", 500 * kSecond), ElementsAre("long.example"))
      << "an earlier flow keeps the names it had";
  EXPECT_THAT(Names(c, Pod(7), "192.0.2.1", 1001 * kSecond),
              ElementsAre("long.example", "short.example"));
}

TEST(NameCacheTest, ClientsAreEndpointsOrOutsideThemAddresses) {
  FlowRecord r;
  r.family = FS_FAMILY_IPV4;
  const auto pod = Addr("10.0.1.5");
  const auto host = Addr("10.0.0.1");
  std::copy(pod.begin(), pod.end(), r.saddr);
  std::copy(host.begin(), host.end(), r.daddr);
  r.src_endpoint = 42;
  r.dst_endpoint = 1;  // the host
  EXPECT_EQ(NameCache::ClientOf(r, true), Pod(42));
  const NameCache::Client h = NameCache::ClientOf(r, false);
  EXPECT_EQ(h.endpoint, 0u);
  EXPECT_EQ(h.family, FS_FAMILY_IPV4);
  EXPECT_EQ(h.addr, host);

  // destination_names: the source's names for the destination; source_names the other way.
  NameCache c;
  const auto server = Addr("192.0.2.9");
  c.Add(Pod(42), "api.example.", {"192.0.2.9"}, 30, kSecond);
  r.time_ns = 2 * kSecond;
  std::copy(server.begin(), server.end(), r.daddr);
  EXPECT_THAT(c.DestinationNames(r), ElementsAre("api.example"));
  EXPECT_THAT(c.SourceNames(r), IsEmpty());
  FlowRecord reply = r;
  std::swap(reply.saddr, reply.daddr);
  std::swap(reply.src_endpoint, reply.dst_endpoint);
  reply.src_endpoint = 2;  // world
  EXPECT_THAT(c.SourceNames(reply), ElementsAre("api.example"));
  EXPECT_THAT(c.DestinationNames(reply), IsEmpty());
}

TEST(NameCacheTest, BoundedInAddressesAndInNamesPerAddress) {
  NameCache c(NameCache::Options{.max_entries = 100, .max_names_per_entry = 4});
  for (int i = 0; i < 250; ++i) {
    c.Add(Pod(7), absl::StrCat("n", i, ".example."), {absl::StrCat("198.51.100.", i)}, 30, kSecond);
  }
  EXPECT_EQ(c.size(), 100u);
  EXPECT_THAT(Names(c, Pod(7), "198.51.100.0", 2 * kSecond), IsEmpty()) << "the oldest left";
  EXPECT_THAT(Names(c, Pod(7), "198.51.100.249", 2 * kSecond), ElementsAre("n249.example"));
  for (int i = 0; i < 10; ++i) {
    c.Add(Pod(7), absl::StrCat("cdn", i, ".example."), {"203.0.113.1"}, 100 + i, kSecond);
  }
  EXPECT_EQ(Names(c, Pod(7), "203.0.113.1", 2 * kSecond).size(), 4u)
      << "the ones holding longest stay";
  EXPECT_THAT(Names(c, Pod(7), "203.0.113.1", 2 * kSecond),
              ElementsAre("cdn6.example", "cdn7.example", "cdn8.example", "cdn9.example"));
}

TEST(NameCacheTest, LookupsWhileTheDrainAdds) {
  NameCache c(NameCache::Options{.max_entries = 512});
  std::thread adder([&] {
    for (int i = 0; i < 20000; ++i) {
      c.Add(Pod(7), "svc.example.", {absl::StrCat("10.1.", (i / 256) % 256, ".", i % 256)}, 30,
            kSecond);
    }
  });
  size_t seen = 0;
  for (int i = 0; i < 20000; ++i) {
    seen +=
        Names(c, Pod(7), absl::StrCat("10.1.", (i / 256) % 256, ".", i % 256).c_str(), 2 * kSecond)
            .size();
  }
  adder.join();
  EXPECT_LE(seen, 20000u);
  EXPECT_EQ(c.size(), 512u);
}

}  // namespace
}  // namespace flowscope::observer
