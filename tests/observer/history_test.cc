// The on-disk flow history: the writer stores what the ring holds, with the endpoints the records
// refer to; queries continue from the history into the ring with every flow exactly once and in
// order; names survive the pods and a restart; retention by age and size; a held or unreadable
// database; losses reported where they happened; a long scan stops when its stream is cancelled.
#include "observer/history.h"

#include <gmock/gmock.h>
#include <google/protobuf/text_format.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "absl/strings/str_cat.h"
#include "observer/flow_query.h"
#include "tests/testing/flow_records.h"
#include "tests/testing/wait.h"

namespace flowscope::observer {
namespace {

constexpr uint64_t kT0 = 1'700'000'000'000'000'000ULL;
uint64_t TimeOf(uint64_t seq) { return kT0 + seq * 1'000'000; }  // 1 ms apart

class HistoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("fs-history-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    Restart();
  }
  void TearDown() override {
    Close();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);  // the database and any moved aside
  }

  std::string DbDir() const { return (dir_ / "db").string(); }

  // A new "run": a new ring and table, the store reopened, a writer following the ring.
  void Restart(uint64_t ring_cap = 63, HistoryOptions options = {}) {
    Close();
    options.dir = DbDir();
    options.run_id = 1000 + runs_;
    auto store = HistoryStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(store).value();
    ring_ = std::move(Ring::Create(ring_cap)).value();
    table_ = std::make_unique<EndpointTable>("default");
    table_->AttachArchive(store_.get(), store_->next_endpoint_id(), store_->next_service_id());
    builder_ = std::make_unique<FlowBuilder>(*table_, "node-1", nullptr, 1000 + runs_);
    builder_->AttachRuns(store_.get(), store_->run());
    dns_ = std::make_unique<DnsTable>(8);
    dns_->AttachArchive(store_.get(), store_->next_dns_id());
    builder_->AttachDns(dns_.get());
    writer_ = std::make_unique<HistoryWriter>(*store_, *ring_, *table_, nullptr);
    writer_->SetDns(dns_.get());
    writer_->Start();
    ++runs_;
  }
  void Close() {
    writer_.reset();
    builder_.reset();
    dns_.reset();
    table_.reset();
    store_.reset();
  }

  void SetPods(const std::string& a_name, const std::string& b_name) {
    EndpointInfo a{.ips = {"10.0.1.5"}, .namespace_name = "default", .pod_name = a_name};
    EndpointInfo b{.ips = {"10.0.1.6"}, .namespace_name = "default", .pod_name = b_name};
    ASSERT_TRUE(table_->Update({a, b}).empty());
  }

  // Records `from`..`from+n-1` (the number in the source port), even ones from 10.0.1.5, odd
  // ones from 10.0.1.6, written to the ring in batches the writer follows.
  void Fill(uint64_t from, uint64_t n, bool wait_stored = true) {
    EndpointTable::Resolver res(*table_);
    for (uint64_t s = from; s < from + n; ++s) {
      ring_->Write(testing::DnsQueryRecord(TimeOf(s), s % 2 == 0 ? "10.0.1.5" : "10.0.1.6",
                                           "10.0.2.7", static_cast<uint16_t>(s), res));
      // Never more than the ring holds between two looks of the writer.
      if ((s + 1) % 16 == 0) {
        ring_->Publish();
        if (wait_stored) WaitStored();
      }
    }
    ring_->Publish();
    if (wait_stored) WaitStored();
  }
  void WaitStored() {
    ASSERT_TRUE(testing::WaitUntil([&] { return writer_->persisted() == ring_->Written(); }));
  }

  FlowPredicate Pred(const std::string& whitelist = "") {
    google::protobuf::RepeatedPtrField<flow::FlowFilter> w, b;
    if (!whitelist.empty()) {
      EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(whitelist, w.Add()));
    }
    return std::move(FlowPredicate::Compile(w, b, *table_, *builder_)).value();
  }

  struct Result {
    std::vector<uint64_t> ports;       // of the flows, in the order delivered
    std::vector<uint64_t> lost;        // counts of lost-event notices
    std::vector<std::string> sources;  // source pod of each flow
    bool read_history = false;
  };
  Result Run(QueryOptions o, const std::string& filter = "") {
    o.history = store_.get();
    o.history_writer = writer_.get();
    auto q = FlowQuery::Create(*ring_, o, Pred(filter));
    EXPECT_TRUE(q.ok()) << q.status();
    Result r;
    FlowQuery::Item item;
    for (int guard = 0; guard < 1000000; ++guard) {
      const auto step = q->Next(absl::Now(), &item);
      if (step == FlowQuery::Step::kFlow) {
        r.ports.push_back(item.record.sport);
        flow::Flow f;
        builder_->Build(item.record, item.position, &f, item.run);
        r.sources.push_back(f.source().pod_name());
      }
      if (step == FlowQuery::Step::kLost) r.lost.push_back(item.lost.count);
      if (step == FlowQuery::Step::kEnd || step == FlowQuery::Step::kWait) break;
    }
    r.read_history = q->read_history();
    return r;
  }

  static std::vector<uint64_t> Range(uint64_t from, uint64_t to, uint64_t step = 1) {
    std::vector<uint64_t> v;
    for (uint64_t i = from; i < to; i += step) v.push_back(i);
    return v;
  }

  std::filesystem::path dir_;
  int runs_ = 0;
  std::unique_ptr<HistoryStore> store_;
  std::unique_ptr<Ring> ring_;
  std::unique_ptr<EndpointTable> table_;
  std::unique_ptr<FlowBuilder> builder_;
  std::unique_ptr<DnsTable> dns_;
  std::unique_ptr<HistoryWriter> writer_;
};

TEST_F(HistoryTest, QueriesReadTheHistoryThenTheRingEveryFlowOnceInOrder) {
  SetPods("tiefighter", "xwing");
  Fill(0, 1000);  // the ring holds the last 63
  EXPECT_EQ(writer_->stats().written, 1000u);
  EXPECT_EQ(writer_->stats().lost, 0u);

  // since: all of it, history then ring, no duplicate and no gap at the seam.
  EXPECT_EQ(Run({.since_ns = TimeOf(0)}).ports, Range(0, 1000));
  EXPECT_EQ(Run({.since_ns = TimeOf(500)}).ports, Range(500, 1000));
  EXPECT_EQ(Run({.number = 10, .since_ns = TimeOf(950)}).ports, Range(950, 960));
  EXPECT_EQ(Run({.since_ns = TimeOf(100), .until_ns = TimeOf(199)}).ports, Range(100, 200));
  // With a filter: only tiefighter's (even) flows, named.
  const Result even = Run({.since_ns = TimeOf(0)}, "source_pod: 'default/tiefighter'");
  EXPECT_EQ(even.ports, Range(0, 1000, 2));
  EXPECT_THAT(even.sources, ::testing::Each(std::string("tiefighter")));
  // first N from the oldest stored flow, across the seam.
  EXPECT_EQ(Run({.number = 5, .first = true}).ports, Range(0, 5));
  EXPECT_EQ(Run({.number = 1000, .first = true}).ports, Range(0, 1000));
  // last N: within the ring the history is never read; beyond it, it continues on disk.
  const Result last10 = Run({.number = 10});
  EXPECT_EQ(last10.ports, Range(990, 1000));
  EXPECT_FALSE(last10.read_history);
  const Result last300 = Run({.number = 300});
  EXPECT_EQ(last300.ports, Range(700, 1000));
  EXPECT_TRUE(last300.read_history);
  EXPECT_EQ(Run({.number = 200}, "source_pod: 'default/xwing'").ports, Range(601, 1000, 2));
  EXPECT_EQ(Run({.number = 5000}).ports, Range(0, 1000)) << "all there is";
}

// Busy passes store chunks of 64 records; the seam falls inside one; some records arrive late
// (older than the one before them, as from another CPU): every query reads the records in ring
// order with the ring's since/until rule, whether they come from disk or memory.
TEST_F(HistoryTest, ChunksAcrossTheSeamAndLateRecordsReadAsTheRingWould) {
  Restart(4095);
  SetPods("tiefighter", "xwing");
  constexpr uint64_t kN = 20000;
  std::vector<uint64_t> times(kN);
  {
    EndpointTable::Resolver res(*table_);
    for (uint64_t s = 0; s < kN; ++s) {
      times[s] = s % 10 == 9 ? TimeOf(s) - 5'000'000 : TimeOf(s);  // 5 ms late
      ring_->Write(testing::DnsQueryRecord(times[s], s % 2 == 0 ? "10.0.1.5" : "10.0.1.6",
                                           "10.0.2.7", static_cast<uint16_t>(s), res));
      if ((s + 1) % 1000 == 0) {
        ring_->Publish();
        WaitStored();
      }
    }
  }
  ASSERT_EQ(writer_->stats().written, kN);
  // What the ring's rule gives: in order, skip what is before since, end at the first after until.
  auto expect = [&](uint64_t since, std::optional<uint64_t> until, uint64_t step = 1) {
    std::vector<uint64_t> v;
    for (uint64_t s = 0; s < kN; ++s) {
      if (times[s] < since) continue;
      if (until && times[s] > *until) break;
      if (s % step == 0) v.push_back(s);
    }
    return v;
  };
  EXPECT_EQ(Run({.since_ns = TimeOf(0)}).ports, Range(0, kN));
  for (uint64_t from : {uint64_t{3}, uint64_t{64}, uint64_t{1003}, uint64_t{12345}}) {
    EXPECT_EQ(Run({.since_ns = TimeOf(from)}).ports, expect(TimeOf(from), std::nullopt))
        << "since " << from;
    EXPECT_EQ(Run({.since_ns = TimeOf(from), .until_ns = TimeOf(from + 500)}).ports,
              expect(TimeOf(from), TimeOf(from + 500)))
        << "since " << from << " until +500";
  }
  EXPECT_EQ(Run({.since_ns = TimeOf(0)}, "source_pod: 'default/tiefighter'").ports,
            Range(0, kN, 2));
  EXPECT_EQ(Run({.number = 7000}).ports, Range(kN - 7000, kN));
  EXPECT_EQ(Run({.number = 3000}, "source_pod: 'default/xwing'").ports, Range(kN - 5999, kN, 2));
  EXPECT_EQ(Run({.number = 4200, .first = true}).ports, Range(0, 4200));
  FlowRecord r;
  auto cursor = store_->Scan();
  for (uint64_t p : {uint64_t{0}, uint64_t{64}, uint64_t{999}, uint64_t{1000}, kN}) {
    cursor->SeekBefore(store_->run(), p);
    if (p == 0) {
      EXPECT_FALSE(cursor->Valid());
      continue;
    }
    ASSERT_TRUE(cursor->Valid());
    EXPECT_EQ(cursor->position(), p - 1);
    EXPECT_EQ(cursor->Read(&r).sport, p - 1);
  }
}

TEST_F(HistoryTest, StoredFlowsKeepTheirNamesAfterThePodsAndARestart) {
  SetPods("tiefighter", "xwing");
  Fill(0, 100);
  const uint32_t first_run = store_->run();
  const std::string uuid = builder_->Uuid(0);
  Restart();  // a new table that knows other pods at the same addresses
  EXPECT_EQ(store_->run(), first_run + 1);
  SetPods("deathstar-0", "deathstar-1");
  Fill(100, 100);
  const Result all = Run({.since_ns = TimeOf(0)});
  ASSERT_EQ(all.ports, Range(0, 200));
  EXPECT_EQ(all.sources[0], "tiefighter");
  EXPECT_EQ(all.sources[1], "xwing");
  EXPECT_EQ(all.sources[100], "deathstar-0");
  EXPECT_EQ(all.sources[101], "deathstar-1");
  // The first run's flows keep their uuids.
  auto cursor = store_->Scan();
  cursor->SeekToFirst();
  ASSERT_TRUE(cursor->Valid());
  EXPECT_EQ(cursor->run(), first_run);
  EXPECT_EQ(builder_->Uuid(cursor->position(), cursor->run()), uuid);
  // Filters match the stored names too.
  EXPECT_EQ(Run({.since_ns = TimeOf(0)}, "source_pod: 'default/tiefighter'").ports,
            Range(0, 100, 2));
}

// A DNS record's message is stored with it: a flow read back from the history has its name and
// answers after the in-memory DNS table has moved on and after a restart; ids go on across runs;
// retention drops the messages of flows no longer stored and keeps the others'.
TEST_F(HistoryTest, DnsMessagesOfStoredFlowsOutliveTheTableAndARestart) {
  auto fill = [&](uint64_t from, uint64_t n) {
    EndpointTable::Resolver res(*table_);
    for (uint64_t s = from; s < from + n; ++s) {
      FlowRecord r =
          testing::DnsQueryRecord(TimeOf(s), "10.0.1.5", "10.0.2.7", static_cast<uint16_t>(s), res);
      DnsMessage m;
      m.query = absl::StrCat("n", s, ".example.");
      m.qtypes = {1};
      r.emit_reason = FS_EMIT_DNS;
      r.is_reply = FS_REPLY_NO;
      r.flow_bytes = dns_->Add(EncodeDns(m));
      ring_->Write(r);
      if ((s + 1) % 8 == 0) {  // the table holds 8: the writer keeps up with it
        ring_->Publish();
        WaitStored();
      }
    }
    ring_->Publish();
    WaitStored();
  };
  fill(0, 40);
  const uint64_t next = dns_->next_id();
  Restart();
  EXPECT_EQ(dns_->next_id(), next) << "ids go on above the stored ones";
  fill(40, 8);
  auto summaries = [&] {
    std::vector<std::string> out;
    auto cursor = store_->Scan();
    FlowRecord r;
    for (cursor->SeekToFirst(); cursor->Valid(); cursor->Next()) {
      flow::Flow f;
      builder_->Build(cursor->Read(&r), cursor->position(), &f, cursor->run());
      out.push_back(f.summary());
    }
    return out;
  };
  std::vector<std::string> all = summaries();
  ASSERT_EQ(all.size(), 48u);
  for (uint64_t s = 0; s < 48; ++s) {
    EXPECT_EQ(all[s], absl::StrCat("DNS Query n", s, ".example. A")) << s;
  }
  // Retention: once the first run's flows are gone, so are their messages.
  auto cursor = store_->Scan();
  cursor->SeekToFirst();
  FlowRecord first;
  cursor->Read(&first);
  EXPECT_NE(store_->FindDns(DnsIdOf(first)), nullptr);
  ASSERT_TRUE(store_->Retain().ok());  // the first run's file is older than --history-max-age
  cursor = store_->Scan();
  cursor->SeekToFirst();
  ASSERT_TRUE(cursor->Valid());
  FlowRecord now;
  cursor->Read(&now);
  EXPECT_EQ(cursor->run(), store_->run()) << "the first run's flows are gone";
  EXPECT_EQ(store_->FindDns(DnsIdOf(first)), nullptr) << "gone with its flow";
  EXPECT_NE(store_->FindDns(DnsIdOf(now)), nullptr) << "its flow is still stored";
}

TEST_F(HistoryTest, PolicyNamesSurviveARestart) {
  EXPECT_TRUE(store_->LoadPolicies().empty());
  const uint8_t a = table_->InternPolicy(PolicyName{0, "no-web", "default", "FlowscopePolicy", 2});
  const uint8_t b = table_->InternPolicy(PolicyName{0, "no-ping", "", "CiliumNetworkPolicy", 6});
  ASSERT_TRUE(store_->StorePolicies(table_->Policies()).ok());
  Restart();
  const std::vector<PolicyName> loaded = store_->LoadPolicies();
  ASSERT_EQ(loaded.size(), 2u);
  EXPECT_EQ(loaded[0].id, a);
  EXPECT_EQ(loaded[0].name, "no-web");
  EXPECT_EQ(loaded[0].namespace_name, "default");
  EXPECT_EQ(loaded[0].match_type, 2);
  EXPECT_EQ(loaded[1].id, b);
  EXPECT_EQ(loaded[1].kind, "CiliumNetworkPolicy");
  table_->RestorePolicies(loaded);
  EXPECT_EQ(table_->GetPolicy(b)->name, "no-ping");
  EXPECT_EQ(table_->InternPolicy(PolicyName{0, "no-web", "default", "FlowscopePolicy", 2}), a);
}

TEST_F(HistoryTest, FlowsTheWriterMissedAreReportedWhereTheyWere) {
  SetPods("tiefighter", "xwing");
  Fill(0, 100);
  // The writer stops (as if stalled) while 300 records pass through a ring of 63: when it goes
  // on from where it was, it has been lapped.
  const uint64_t stopped_at = writer_->persisted();
  writer_.reset();
  EndpointTable::Resolver res(*table_);
  for (uint64_t s = 100; s < 400; ++s) {
    ring_->Write(
        testing::DnsQueryRecord(TimeOf(s), "10.0.1.5", "10.0.2.7", static_cast<uint16_t>(s), res));
  }
  ring_->Publish();
  writer_ = std::make_unique<HistoryWriter>(*store_, *ring_, *table_, nullptr,
                                            HistoryWriterOptions{.from = stopped_at});
  writer_->Start();
  WaitStored();
  EXPECT_GT(writer_->stats().lost, 0u);
  const Result r = Run({.since_ns = TimeOf(0)});
  // Everything stored comes back, and one notice for what is not.
  ASSERT_EQ(r.lost.size(), 1u);
  EXPECT_EQ(r.lost[0] + r.ports.size(), 400u);
  EXPECT_EQ(r.ports.back(), 399u);
}

TEST_F(HistoryTest, AgeRetentionDropsWholeOldFilesByTheInjectedClock) {
  ManualClock clock(absl::FromUnixNanos(static_cast<int64_t>(TimeOf(0))));
  Restart(63, {.max_age = absl::Hours(1), .clock = &clock});
  SetPods("tiefighter", "xwing");
  Fill(0, 500);
  ASSERT_TRUE(store_->Flush().ok());  // one file of old flows
  // Two hours later, newer flows in a file of their own.
  EndpointTable::Resolver res(*table_);
  const uint64_t later = TimeOf(0) + 2 * 3600 * uint64_t{1'000'000'000};
  for (uint64_t s = 0; s < 50; ++s) {
    ring_->Write(testing::DnsQueryRecord(later + s, "10.0.1.5", "10.0.2.7",
                                         static_cast<uint16_t>(1000 + s), res));
  }
  ring_->Publish();
  WaitStored();
  ASSERT_TRUE(store_->Flush().ok());
  EXPECT_EQ(Run({.since_ns = TimeOf(0)}).ports.size(), 550u);
  clock.Advance(absl::Hours(2) + absl::Minutes(30));
  ASSERT_TRUE(store_->Retain().ok());
  EXPECT_EQ(store_->stats().oldest_ns, later) << "the old file is gone";
  // The ring (63) still holds the newest old flows in memory; the query seam starts 3 past its
  // oldest (487), so what went from the disk is not read from it either.
  std::vector<uint64_t> want = Range(490, 500);
  for (uint64_t p : Range(1000, 1050)) want.push_back(p);
  EXPECT_EQ(Run({.since_ns = TimeOf(0)}).ports, want);
}

TEST_F(HistoryTest, SizeRetentionKeepsTheNewestFlowsWithinTheBudget) {
  Restart(4095, {.max_bytes = 8 << 20});
  SetPods("tiefighter", "xwing");
  // Flows that do not compress well: random addresses and counters.
  std::mt19937_64 rng(7);
  EndpointTable::Resolver res(*table_);
  const uint64_t n = 600'000;
  for (uint64_t s = 0; s < n; ++s) {
    FlowRecord r =
        testing::DnsQueryRecord(TimeOf(s), "10.0.1.5", "10.0.2.7", static_cast<uint16_t>(s), res);
    r.saddr[0] = static_cast<uint32_t>(rng());
    r.flow_bytes = rng();
    r.flow_packets = rng();
    ring_->Write(r);
    if ((s + 1) % 2048 == 0) {
      ring_->Publish();
      WaitStored();
    }
  }
  ring_->Publish();
  WaitStored();
  ASSERT_TRUE(store_->Flush().ok());
  const HistoryStore::Stats st = store_->stats();
  EXPECT_LE(st.bytes, uint64_t{10} << 20) << "within the budget (and its logs)";
  ASSERT_TRUE(st.oldest_ns.has_value());
  EXPECT_GT(*st.oldest_ns, TimeOf(0)) << "the oldest flows went first";
  // The newest are all there.
  const Result r = Run({.number = 5000});
  EXPECT_EQ(r.ports.size(), 5000u);
  EXPECT_EQ(r.ports.back(), (n - 1) % 65536);
}

TEST_F(HistoryTest, ASecondObserverOnTheSameDirectoryIsRefused) {
  auto second = HistoryStore::Open({.dir = DbDir()});
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              ::testing::HasSubstr("in use by another flowscope-observer"));
}

TEST_F(HistoryTest, AnUnreadableDatabaseIsMovedAsideAndANewOneStarted) {
  SetPods("tiefighter", "xwing");
  Fill(0, 100);
  Close();
  for (const auto& f : std::filesystem::directory_iterator(DbDir())) {
    if (f.path().filename().string().rfind("MANIFEST", 0) == 0) {
      std::ofstream(f.path(), std::ios::trunc) << "not a manifest";
    }
  }
  auto store = HistoryStore::Open({.dir = DbDir()});
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_THAT((*store)->recovery(),
              ::testing::HasSubstr("moved it aside to " + DbDir() + ".corrupt-"));
  EXPECT_FALSE((*store)->stats().oldest_ns.has_value()) << "a new, empty history";
  bool kept = false;
  for (const auto& e : std::filesystem::directory_iterator(dir_)) {
    kept = kept || e.path().filename().string().rfind("db.corrupt-", 0) == 0;
  }
  EXPECT_TRUE(kept) << "the unreadable one is kept for inspection";
}

TEST_F(HistoryTest, ALongScanEndsWhenItsStreamIsCancelled) {
  SetPods("tiefighter", "xwing");
  Fill(0, 20000);
  QueryOptions o{.since_ns = TimeOf(0), .history = store_.get(), .history_writer = writer_.get()};
  auto q = FlowQuery::Create(*ring_, o, Pred("source_pod: 'default/nobody'"));
  ASSERT_TRUE(q.ok());
  std::atomic<bool> cancelled{true};
  q->SetCancelFlag(&cancelled);
  FlowQuery::Item item;
  EXPECT_EQ(q->Next(absl::Now(), &item), FlowQuery::Step::kEnd);
}

}  // namespace
}  // namespace flowscope::observer

namespace flowscope::observer {
namespace {

// A full disk: history writes pause with a clear error and live flows go on; when space returns
// the writer goes on by itself and the flows it could not store are reported as lost. In a child
// process (a death test) with a private mount namespace and a 16 MiB tmpfs, so that RocksDB's
// own threads see the same small disk and nothing outlives the test.
TEST(HistoryDiskTest, AFullDiskPausesHistoryWritesUntilSpaceReturns) {
  if (geteuid() != 0) GTEST_SKIP() << "mounting a tmpfs needs root";
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("fs-history-disk-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir / "small");
  GTEST_FLAG_SET(death_test_style, "fast");
  auto scenario = [&]() {
    auto fail = [](const std::string& why) {
      fprintf(stderr, "FAILED: %s\n", why.c_str());
      _exit(1);
    };
    if (unshare(CLONE_NEWNS) != 0) fail("unshare");
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) fail("private /");
    const std::string mnt = (dir / "small").string();
    if (mount("tmpfs", mnt.c_str(), "tmpfs", 0, "size=16m") != 0) fail("mount");
    auto store = HistoryStore::Open({.dir = mnt + "/db", .max_bytes = 64 << 20});
    if (!store.ok()) fail(std::string(store.status().message()));
    auto ring = std::move(Ring::Create(4095)).value();
    EndpointTable table("default");
    HistoryWriter writer(**store, *ring, table, nullptr,
                         {.retry_interval = absl::Milliseconds(50)});
    writer.Start();
    std::mt19937_64 rng(1);
    EndpointTable::Resolver res(table);
    uint64_t n = 0;
    auto write = [&](uint64_t count) {
      for (uint64_t i = 0; i < count; ++i, ++n) {
        FlowRecord r = testing::DnsQueryRecord(TimeOf(n), "10.0.1.5", "10.0.2.7",
                                               static_cast<uint16_t>(n), res);
        r.flow_bytes = rng();  // incompressible: the disk fills fast
        r.flow_packets = rng();
        r.saddr[0] = static_cast<uint32_t>(rng());
        ring->Write(r);
        if ((n + 1) % 1024 == 0) {
          ring->Publish();
          if (!testing::WaitUntil([&] { return writer.persisted() == ring->Written(); })) {
            fail("the writer fell behind");
          }
        }
      }
      ring->Publish();
    };
    // Until the disk is full.
    while (writer.stats().error.empty() && n < 500'000) write(1024);
    const HistoryWriter::Stats full = writer.stats();
    if (full.error.find("No space left") == std::string::npos) fail("error: " + full.error);
    write(20'000);  // live flows go on into the ring; the writer counts what it cannot store
    if (!testing::WaitUntil([&] { return writer.persisted() == ring->Written(); })) {
      fail("the writer stopped following the ring");
    }
    if (writer.stats().lost <= full.lost) fail("lost flows not counted");
    // Space returns: writes resume by themselves.
    if (mount("tmpfs", mnt.c_str(), "tmpfs", MS_REMOUNT, "size=128m") != 0) fail("remount");
    const uint64_t written_before = writer.stats().written;
    if (!testing::WaitUntil([&] {
          write(1024);
          return writer.stats().error.empty() && writer.stats().written > written_before;
        })) {
      fail("writes did not resume: " + writer.stats().error);
    }
    fprintf(stderr, "paused after %lu flows, lost %lu, resumed\n",
            static_cast<unsigned long>(full.written),
            static_cast<unsigned long>(writer.stats().lost));
    _exit(0);
  };
  EXPECT_EXIT(scenario(), ::testing::ExitedWithCode(0), "resumed");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace flowscope::observer

namespace flowscope::observer {
namespace {

// kill -9 during heavy ingest: every flow the writer had reported stored (its persisted ring
// position, sent to the parent as it went) is there when the history is opened again.
TEST(HistoryKillTest, AKill9LosesNothingTheWriterReportedStored) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("fs-history-kill-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    close(fds[0]);
    auto store = HistoryStore::Open({.dir = dir.string()});
    if (!store.ok()) _exit(2);
    auto ring = std::move(Ring::Create(65535)).value();
    EndpointTable table("default");
    HistoryWriter writer(**store, *ring, table, nullptr);
    writer.Start();
    EndpointTable::Resolver res(table);
    for (uint64_t n = 0;;) {
      for (int i = 0; i < 4096; ++i, ++n) {
        ring->Write(testing::DnsQueryRecord(TimeOf(n), "10.0.1.5", "10.0.2.7",
                                            static_cast<uint16_t>(n), res));
      }
      ring->Publish();
      // As fast as the writer keeps up without being lapped.
      if (!testing::WaitUntil([&] { return ring->Written() - writer.persisted() <= 32768; })) {
        _exit(4);
      }
      const uint64_t p = writer.persisted();
      if (write(fds[1], &p, sizeof p) != sizeof p) _exit(3);
    }
  }
  close(fds[1]);
  uint64_t reported = 0;
  while (reported < 300'000) {
    uint64_t p = 0;
    ASSERT_EQ(read(fds[0], &p, sizeof p), static_cast<ssize_t>(sizeof p));
    reported = std::max(reported, p);
  }
  ASSERT_EQ(kill(child, SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  for (uint64_t p = 0; read(fds[0], &p, sizeof p) == sizeof p;) reported = std::max(reported, p);
  close(fds[0]);

  auto store = HistoryStore::Open({.dir = dir.string()});
  ASSERT_TRUE(store.ok()) << store.status();
  auto cursor = (*store)->Scan();
  uint64_t next = 0;
  FlowRecord r;
  for (cursor->SeekToFirst(); cursor->Valid() && next < reported; cursor->Next()) {
    ASSERT_EQ(cursor->position(), next) << "a flow reported stored is missing";
    ASSERT_EQ(cursor->Read(&r).time_ns, TimeOf(next));
    ++next;
  }
  EXPECT_EQ(next, reported) << "every flow reported stored is there";
  cursor.reset();  // before the database it reads
  store->reset();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace flowscope::observer
