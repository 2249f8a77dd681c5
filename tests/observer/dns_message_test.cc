// DNS messages as the passive DNS view parses them: queries, answers with CNAMEs and both
// address families, NXDOMAIN, compression; and every malformed shape refused with a reason —
// pointer loops, too many pointers, long names, bad label types, every truncation.
#include "observer/dns_message.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "tests/testing/dns_wire.h"

namespace flowscope::observer {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

using Msg = testing::DnsWire;

constexpr char kName[] = "deathstar.default.svc.cluster.local";

// Labels hold any bytes; names are text in presentation format (a flow's string fields must be
// valid UTF-8): other bytes as \DDD, the special characters escaped. fuzz_event_parser found a
// name of raw bytes that protobuf refused to serialize.
TEST(DnsMessageTest, NamesOfAnyBytesAreEscapedText) {
  Msg q;
  q.Header(0x0100, 1, 0);
  q.U8(6).U8('a').U8('.').U8(0xC3).U8(0x28).U8(' ').U8('\\').U8(3).U8('c').U8('o').U8('m').U8(0);
  q.Question(1);
  auto m = ParseDnsMessage(q.b, true);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->query, "a\\.\\195\\(\\032\\\\.com.");
}

TEST(DnsMessageTest, QueryNameAndTypes) {
  Msg q;
  q.Header(0x0100, 1, 0).Name(kName).Question(1);
  auto m = ParseDnsMessage(q.b, true);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_FALSE(m->response);
  EXPECT_EQ(m->id, 0x1234);
  EXPECT_EQ(m->query, "deathstar.default.svc.cluster.local.");
  EXPECT_THAT(m->qtypes, ElementsAre(1));
  EXPECT_TRUE(m->ips.empty());
  EXPECT_EQ(DnsTypeName(1), "A");
  EXPECT_EQ(DnsTypeName(28), "AAAA");
  EXPECT_EQ(DnsTypeName(99), "TYPE99");
}

TEST(DnsMessageTest, ResponseWithCnameAndAddressesOfBothFamilies) {
  Msg r;
  r.Header(0x8180, 1, 3).Name(kName).Question(1);
  // CNAME -> "ds.example." written out, then A and AAAA pointing at the question's name.
  Msg target;
  target.Name("ds.example");
  r.Answer(5, 300, target.b);
  r.Answer(1, 30, {10, 244, 1, 20});
  r.Answer(28, 60, {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20});
  auto m = ParseDnsMessage(r.b, true);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_TRUE(m->response);
  EXPECT_EQ(m->rcode, 0);
  EXPECT_THAT(m->cnames, ElementsAre("ds.example."));
  EXPECT_THAT(m->ips, ElementsAre("10.244.1.20", "fd00::20"));
  EXPECT_THAT(m->rrtypes, ElementsAre(5, 1, 28));
  EXPECT_EQ(m->ttl, 30u) << "the smallest";
}

TEST(DnsMessageTest, NxdomainAndTheRootName) {
  Msg r;
  r.Header(0x8183, 1, 0).Name("").Question(2);
  auto m = ParseDnsMessage(r.b, true);
  ASSERT_TRUE(m.ok()) << m.status();
  EXPECT_EQ(m->rcode, 3);
  EXPECT_EQ(m->query, ".");
}

TEST(DnsMessageTest, MalformedMessagesAreRefusedWithTheirReason) {
  auto error = [](const std::vector<uint8_t>& b) {
    auto m = ParseDnsMessage(b, true);
    EXPECT_FALSE(m.ok());
    return m.ok() ? std::string() : std::string(m.status().message());
  };
  EXPECT_THAT(error({1, 2, 3}), HasSubstr("shorter than a DNS header"));
  Msg none;
  none.Header(0, 0, 0);
  EXPECT_THAT(error(none.b), HasSubstr("no question"));
  Msg self;  // a pointer to itself
  self.Header(0, 1, 0).Pointer(12).Question(1);
  EXPECT_THAT(error(self.b), HasSubstr("loop"));
  Msg ahead;  // a pointer forwards
  ahead.Header(0, 1, 0).Pointer(20).Question(1).Name("a");
  EXPECT_THAT(error(ahead.b), HasSubstr("loop"));
  Msg big;  // a 300-byte name
  big.Header(0, 1, 0);
  for (int i = 0; i < 6; ++i) big.Name(std::string(50, 'a')).b.pop_back();
  big.U8(0).Question(1);
  EXPECT_THAT(error(big.b), HasSubstr("name too long"));
  Msg ext;  // label type 0x40
  ext.Header(0, 1, 0).U8(0x41).U8('a').U8(0).Question(1);
  EXPECT_THAT(error(ext.b), HasSubstr("unsupported label type"));
  Msg many;
  many.Header(0, 100, 0).Name("a").Question(1);
  EXPECT_THAT(error(many.b), HasSubstr("too many questions"));
  Msg bad_a;
  bad_a.Header(0x8180, 1, 1).Name(kName).Question(1).Answer(1, 5, {1, 2, 3});
  EXPECT_THAT(error(bad_a.b), HasSubstr("wrong length"));
}

// Pointers only go backwards and at most 16 per name: a name 16 hops deep is read, one of 18 is
// refused. The hops are bare pointers, each to the one before, kept in a TXT answer's data.
std::vector<uint8_t> ChainedResponse(int links) {
  Msg resp;
  resp.Header(0x8180, 1, 2).Name("x").Question(1);  // offset 12: "x."
  const size_t rdata = resp.b.size() + 12;          // after the answer's pointer and fields
  std::vector<uint8_t> data;
  size_t last = 12;
  for (int i = 0; i < links; ++i) {
    const size_t here = rdata + data.size();
    data.push_back(static_cast<uint8_t>(0xC0 | (last >> 8)));
    data.push_back(static_cast<uint8_t>(last));
    last = here;
  }
  resp.Answer(16, 10, data);
  // The second answer's name: a pointer to the last link (links + 1 hops in all).
  resp.Pointer(static_cast<uint16_t>(last)).U16(1).U16(1).U32(10).U16(4).U8(1).U8(2).U8(3).U8(4);
  return resp.b;
}

TEST(DnsMessageTest, LongPointerChainsAreRefused) {
  auto ok = ParseDnsMessage(ChainedResponse(15), true);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_THAT(ok->ips, ElementsAre("1.2.3.4"));
  auto refused = ParseDnsMessage(ChainedResponse(17), true);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("too many compression pointers"));
}

// Every prefix of a valid response: a whole-message parse refuses it (OutOfRange) or, for the
// prefixes that end exactly between answers, reads fewer answers; a prefix parse keeps the
// question and the answers that fit.
TEST(DnsMessageTest, EveryTruncationIsRefusedOrCutNeverACrash) {
  Msg r;
  r.Header(0x8180, 1, 3).Name(kName).Question(1);
  r.Answer(1, 30, {10, 244, 1, 20}).Answer(1, 30, {10, 244, 2, 20});
  Msg target;
  target.Name("ds.example");
  r.Answer(5, 300, target.b);
  const size_t question_end = 12 + sizeof(kName) + 1 + 4;
  for (size_t n = 0; n < r.b.size(); ++n) {
    const std::vector<uint8_t> prefix(r.b.begin(), r.b.begin() + static_cast<ptrdiff_t>(n));
    auto whole = ParseDnsMessage(prefix, true);
    EXPECT_FALSE(whole.ok()) << n;
    auto part = ParseDnsMessage(prefix, false);
    if (n < question_end) {
      EXPECT_FALSE(part.ok()) << n;
    } else {
      ASSERT_TRUE(part.ok()) << n << ": " << part.status();
      EXPECT_EQ(part->query, "deathstar.default.svc.cluster.local.");
      EXPECT_TRUE(part->answers_cut) << n;
      EXPECT_LE(part->ips.size(), 2u);
    }
  }
  auto all = ParseDnsMessage(r.b, false);
  ASSERT_TRUE(all.ok());
  EXPECT_FALSE(all->answers_cut);
  EXPECT_EQ(all->ips.size(), 2u);
}

}  // namespace
}  // namespace flowscope::observer
