// B9, B11, B14: the on-disk flow history (observer/history.h).
//
// B9: flows/s the history writer stores (from a full ring to committed), against writing the
//     same keys and values in RocksDB WriteBatches of the same size directly; and the flows it
//     loses while the ring ingests 300,000 flows/s for 2 s (target 0).
// B11: `--since 1h --pod ns/name` over the stored flows: time to the first flow, and records
//     scanned per second when nothing matches (warm).
// B14: bytes on disk per stored flow once the memtables are written out.
#include <google/protobuf/text_format.h>
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "observer/flow_query.h"
#include "observer/history.h"
#include "tests/bench/figures.h"
#include "tests/bench/observer_fill.h"
#include "tests/testing/wait.h"

namespace flowscope::bench {
namespace {

using Clock = std::chrono::steady_clock;
using observer::FlowRecord;
using observer::HistoryStore;
using observer::HistoryWriter;

constexpr uint64_t kFlows = (1u << 20) - 1;  // a full ring per measurement
constexpr uint64_t kScanFlows = 10'000'000;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::filesystem::path TempDir(const std::string& name) {
  auto d = std::filesystem::temp_directory_path() /
           absl::StrCat("flowscope-bench-", name, "-", getpid());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// Flows as a busy node sees them: between 1,000 pods, packet and byte counts, lengths.
FlowRecord Realistic(observer::EndpointTable::Resolver& res, uint64_t i, uint64_t t) {
  FlowRecord r = BenchRecord(res, i, t);
  r.flow_packets = 1 + i % 16;
  r.flow_bytes = r.flow_packets * 1180;
  r.pkt_len = static_cast<uint32_t>(64 + (i * 7919) % 1400);
  r.ifindex = static_cast<uint32_t>(10 + (r.src_endpoint % 50));
  return r;
}

uint64_t SstBytes(const std::filesystem::path& dir) {
  uint64_t bytes = 0;
  for (const auto& f : std::filesystem::directory_iterator(dir)) {
    if (f.path().extension() == ".sst") bytes += f.file_size();
  }
  return bytes;
}

struct Setup {
  std::unique_ptr<observer::Ring> ring;
  std::unique_ptr<observer::EndpointTable> table;
  std::unique_ptr<HistoryStore> store;
};

Setup Open(const std::filesystem::path& dir, uint64_t ring_cap) {
  Setup s;
  s.ring = std::move(observer::Ring::Create(ring_cap)).value();
  s.table = std::make_unique<observer::EndpointTable>("default");
  AddPods(*s.table);
  auto store = HistoryStore::Open({.dir = dir.string(), .max_bytes = uint64_t{64} << 30});
  if (!store.ok()) return s;
  s.store = std::move(store).value();
  return s;
}

std::vector<FigureResult> RunB9B14(const Options& options) {
  std::vector<double> ours, raw, bytes_per_flow, lost;
  const int runs = std::min(options.runs, 3);
  for (int run = 0; run < runs; ++run) {
    const auto dir = TempDir("history");
    Setup s = Open(dir / "db", kFlows);
    if (!s.store) return {};
    {
      observer::EndpointTable::Resolver res(*s.table);
      const uint64_t t0 = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now())) - kFlows * 1000;
      for (uint64_t i = 0; i < kFlows; ++i) s.ring->Write(Realistic(res, i, t0 + i * 1000));
      s.ring->Publish();
    }
    // The writer, from a full ring to everything committed.
    {
      HistoryWriter writer(*s.store, *s.ring, *s.table, nullptr);
      const auto start = Clock::now();
      writer.Start();
      testing::WaitUntil([&] { return writer.persisted() == kFlows; }, absl::Seconds(120));
      ours.push_back(static_cast<double>(kFlows) / Seconds(start));
      writer.Stop();
    }
    (void)s.store->Flush();
    bytes_per_flow.push_back(static_cast<double>(SstBytes(dir / "db")) / kFlows);

    // The same keys and values (read back from what the writer stored) straight into RocksDB,
    // in batches of the writer's size.
    {
      s.store.reset();
      std::vector<std::pair<std::string, std::string>> kv;
      {
        std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {{rocksdb::kDefaultColumnFamilyName, {}},
                                                            {"flows", {}}};
        std::vector<rocksdb::ColumnFamilyHandle*> handles;
        rocksdb::DB* db = nullptr;
        if (!rocksdb::DB::OpenForReadOnly({}, (dir / "db").string(), cfs, &handles, &db).ok()) {
          return {};
        }
        std::unique_ptr<rocksdb::Iterator> it(db->NewIterator({}, handles[1]));
        for (it->SeekToFirst(); it->Valid(); it->Next()) {
          kv.emplace_back(it->key().ToString(), it->value().ToString());
        }
        it.reset();
        for (auto* h : handles) (void)db->DestroyColumnFamilyHandle(h);
        delete db;
      }
      rocksdb::Options o;
      o.create_if_missing = true;
      o.compression = rocksdb::kLZ4Compression;
      rocksdb::DB* db = nullptr;
      if (!rocksdb::DB::Open(o, (dir / "raw").string(), &db).ok()) return {};
      std::unique_ptr<rocksdb::DB> owned(db);
      const auto start = Clock::now();
      rocksdb::WriteBatch batch;
      size_t in_batch = 0;
      for (const auto& [key, value] : kv) {
        batch.Put(key, value);
        in_batch += value.size() / sizeof(FlowRecord);
        if (in_batch >= 4096) {
          (void)owned->Write(rocksdb::WriteOptions(), &batch);
          batch.Clear();
          in_batch = 0;
        }
      }
      (void)owned->Write(rocksdb::WriteOptions(), &batch);
      raw.push_back(static_cast<double>(kFlows) / Seconds(start));
      (void)owned->Close();
    }

    // Ingest at 300,000 flows/s for 2 s into a ring of 65,535 while the writer follows.
    {
      Setup live = Open(dir / "live", 65535);
      if (!live.store) return {};
      HistoryWriter writer(*live.store, *live.ring, *live.table, nullptr);
      writer.Start();
      observer::EndpointTable::Resolver res(*live.table);
      const auto start = Clock::now();
      uint64_t written = 0;
      while (written < 600'000) {
        const uint64_t due = static_cast<uint64_t>(Seconds(start) * 300'000);
        if (due <= written) {
          std::this_thread::sleep_for(std::chrono::microseconds(200));
          continue;
        }
        const uint64_t t = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
        for (; written < std::min<uint64_t>(due, 600'000); ++written) {
          live.ring->Write(Realistic(res, written, t));
        }
        live.ring->Publish();
      }
      testing::WaitUntil([&] { return writer.persisted() == written; }, absl::Seconds(30));
      writer.Stop();
      lost.push_back(static_cast<double>(writer.stats().lost));
    }
    std::filesystem::remove_all(dir);
  }
  return {MakeFigure("B9", "history_writer_flows_per_s", "flows/s", ours, raw,
                     {Target::AtLeastTimesBaseline(0.6)}),
          MakeFigure("B9", "history_lost_at_300k_flows_per_s", "flows", lost, std::nullopt,
                     {Target::AtMost(0, "flows")}),
          MakeFigure("B14", "history_bytes_per_stored_flow", "bytes", bytes_per_flow, std::nullopt,
                     {Target::AtMost(48, "bytes")})};
}

std::vector<FigureResult> RunB11(const Options& options) {
  const auto dir = TempDir("history-scan");
  Setup s = Open(dir / "db", 4095);
  if (!s.store) return {};
  // 10 M flows over the last hour, stored through the writer's batches by the run before this
  // one (this run's flows past the ring's oldest are read from the ring).
  const uint64_t now = static_cast<uint64_t>(absl::ToUnixNanos(absl::Now()));
  const uint64_t step = 3600ull * 1'000'000'000 / kScanFlows;
  const uint64_t t0 = now - kScanFlows * step;
  {
    observer::EndpointTable::Resolver res(*s.table);
    HistoryStore::Batch batch = s.store->NewBatch();
    for (uint64_t i = 0; i < kScanFlows; ++i) {
      batch.AddFlow(s.store->run(), i, Realistic(res, i, t0 + i * step));
      if (batch.flows() == 4096) (void)s.store->Commit(batch);
    }
    (void)s.store->Commit(batch);
    (void)s.store->Flush();
  }
  s.store.reset();
  s.store = std::move(HistoryStore::Open({.dir = (dir / "db").string()})).value_or(nullptr);
  if (!s.store) return {};
  observer::FlowBuilder builder(*s.table, "node-1", nullptr, 1);
  auto run_query = [&](const std::string& pod, bool first_only, uint64_t* matched) {
    google::protobuf::RepeatedPtrField<flow::FlowFilter> w, b;
    if (!pod.empty()) w.Add()->add_source_pod(pod);
    auto pred = observer::FlowPredicate::Compile(w, b, *s.table, builder);
    observer::QueryOptions q{.since_ns = t0, .history = s.store.get()};
    auto query = observer::FlowQuery::Create(*s.ring, q, *std::move(pred));
    observer::FlowQuery::Item item;
    uint64_t n = 0;
    for (;;) {
      const auto step_kind = query->Next(absl::Now(), &item);
      if (step_kind == observer::FlowQuery::Step::kFlow) {
        ++n;
        if (first_only) break;
      }
      if (step_kind == observer::FlowQuery::Step::kEnd ||
          step_kind == observer::FlowQuery::Step::kWait) {
        break;
      }
    }
    if (matched != nullptr) *matched = n;
  };
  std::vector<double> first_ms, scan_rate;
  const int runs = std::min(options.runs, 5);
  // Every stored flow comes back (and warms the cache): the scans below cover all of them.
  uint64_t all = 0;
  run_query("", false, &all);
  if (all != kScanFlows) return {};
  for (int run = 0; run < runs; ++run) {
    auto start = Clock::now();
    run_query("ns3/pod-3", true, nullptr);
    first_ms.push_back(Seconds(start) * 1000);
    start = Clock::now();
    run_query("ns0/nobody", false, nullptr);
    scan_rate.push_back(static_cast<double>(kScanFlows) / Seconds(start));
  }
  s.store.reset();
  std::filesystem::remove_all(dir);
  return {MakeFigure("B11", "history_since_1h_pod_first_flow_ms_10M", "ms", first_ms, std::nullopt,
                     {Target::AtMost(100, "ms")}),
          MakeFigure("B11", "history_scan_records_per_s", "records/s", scan_rate, std::nullopt,
                     {Target::AtLeast(5e6, "records/s")})};
}

}  // namespace

std::vector<Figure> HistoryFigures() {
  return {{"B9",
           "History: flows/s the writer stores vs raw RocksDB WriteBatches of the same keys and "
           "values; flows lost at 300k flows/s ingest; B14: bytes on disk per stored flow",
           RunB9B14},
          {"B11",
           "History: --since 1h --pod over 10 M stored flows: time to the first flow, records "
           "scanned per second",
           RunB11}};
}

}  // namespace flowscope::bench
