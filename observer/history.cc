#include "observer/history.h"

#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/metadata.h>
#include <rocksdb/options.h>
#include <rocksdb/table.h>
#include <rocksdb/write_batch.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "api/logging.h"
#include "observer/flow_query.h"

namespace flowscope::observer {
namespace {

using nlohmann::json;

constexpr size_t kKeyBytes = 16;
constexpr size_t kChunkFlows = 64;
constexpr uint64_t kPositionMask = (uint64_t{1} << 40) - 1;

void PutBe64(uint64_t v, char* out) {
  for (int i = 7; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
}
void PutBe32(uint32_t v, char* out) {
  for (int i = 3; i >= 0; --i, v >>= 8) out[i] = static_cast<char>(v & 0xff);
}
uint64_t Be64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
uint32_t Be32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string FlowKey(uint64_t time_ns, uint64_t seq) {
  std::string k(kKeyBytes, '\0');
  PutBe64(time_ns, k.data());
  PutBe64(seq, k.data() + 8);
  return k;
}

// A flows value holds whole records.
bool IsChunk(const rocksdb::Slice& key, const rocksdb::Slice& value) {
  return key.size() == kKeyBytes && !value.empty() && value.size() % sizeof(FlowRecord) == 0;
}

// The oldest and newest times in a chunk.
std::pair<uint64_t, uint64_t> ChunkTimes(const rocksdb::Slice& value) {
  uint64_t lo = std::numeric_limits<uint64_t>::max(), hi = 0;
  for (size_t off = 0; off + sizeof(FlowRecord) <= value.size(); off += sizeof(FlowRecord)) {
    uint64_t t;
    std::memcpy(&t, value.data() + off + offsetof(FlowRecord, time_ns), sizeof t);
    lo = std::min(lo, t);
    hi = std::max(hi, t);
  }
  return {lo, hi};
}

// Metadata keys: a prefix and big-endian numbers, so each kind sorts by id.
std::string MetaKey(absl::string_view prefix, uint32_t a) {
  std::string k(prefix);
  k.resize(prefix.size() + 4);
  PutBe32(a, k.data() + prefix.size());
  return k;
}
std::string MetaKey(absl::string_view prefix, uint32_t a, uint32_t b) {
  std::string k = MetaKey(prefix, a);
  k.resize(k.size() + 4);
  PutBe32(b, k.data() + k.size() - 4);
  return k;
}

constexpr absl::string_view kEndpointPrefix = "e/";
constexpr absl::string_view kServicePrefix = "s/";
constexpr absl::string_view kInterfacePrefix = "i/";
constexpr absl::string_view kRunPrefix = "r/";
constexpr absl::string_view kGapPrefix = "g/";
constexpr absl::string_view kPolicyPrefix = "p/";
constexpr absl::string_view kDnsPrefix = "d/";

std::string DnsKey(uint64_t id) {
  std::string k(kDnsPrefix);
  k.resize(kDnsPrefix.size() + 8);
  PutBe64(id, k.data() + kDnsPrefix.size());
  return k;
}
constexpr absl::string_view kRunsKey = "runs";

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat(what, ": ", s.ToString());
  if (s.IsNoSpace() || absl::StrContains(s.ToString(), "No space left")) {
    return absl::ResourceExhaustedError(msg);
  }
  if (s.IsCorruption()) return absl::DataLossError(msg);
  return absl::UnavailableError(msg);
}

// The largest id stored under `prefix` (0 when none).
uint32_t LastId(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf, absl::string_view prefix) {
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
  const std::string past = MetaKey(prefix, 0xffffffffu) + "\xff";
  it->SeekForPrev(past);
  if (!it->Valid()) return 0;
  const rocksdb::Slice k = it->key();
  if (k.size() < prefix.size() + 4 ||
      !k.starts_with(rocksdb::Slice(prefix.data(), prefix.size()))) {
    return 0;
  }
  return Be32(k.data() + prefix.size());
}

rocksdb::CompressionType BestCompression() {
  const std::vector<rocksdb::CompressionType> have = rocksdb::GetSupportedCompressions();
  for (rocksdb::CompressionType t :
       {rocksdb::kLZ4Compression, rocksdb::kZSTD, rocksdb::kSnappyCompression}) {
    if (std::find(have.begin(), have.end(), t) != have.end()) return t;
  }
  return rocksdb::kNoCompression;
}

struct DbOptions {
  rocksdb::DBOptions db;
  rocksdb::ColumnFamilyOptions meta;
  rocksdb::ColumnFamilyOptions flows;
};

DbOptions MakeOptions(const HistoryOptions& o) {
  DbOptions d;
  d.db.create_if_missing = true;
  d.db.create_missing_column_families = true;
  d.db.max_background_jobs = 2;
  d.db.keep_log_file_num = 3;
  d.db.max_log_file_size = 1 << 20;
  // A memtable is at most a sixteenth of the budget (1..64 MiB), and the write-ahead log is cut
  // once it holds two of them, so files on disk stay within max_bytes.
  const uint64_t buffer =
      std::clamp<uint64_t>(o.max_bytes / 16, uint64_t{1} << 20, uint64_t{64} << 20);
  d.db.max_total_wal_size = 2 * buffer;
  d.flows.write_buffer_size = buffer;
  d.flows.max_write_buffer_number = 2;
  d.flows.compaction_style = rocksdb::kCompactionStyleFIFO;
  d.flows.compaction_options_fifo.allow_compaction = false;
  d.flows.compaction_options_fifo.max_table_files_size =
      o.max_bytes > 4 * buffer ? o.max_bytes - 3 * buffer : o.max_bytes / 2;
  d.flows.compression = BestCompression();
  d.flows.level0_file_num_compaction_trigger = 1 << 20;  // FIFO: never merge files
  d.flows.level0_slowdown_writes_trigger = 1 << 20;
  d.flows.level0_stop_writes_trigger = 1 << 20;
  rocksdb::BlockBasedTableOptions table;
  table.block_size = 32 << 10;
  d.flows.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  d.meta.write_buffer_size = 1 << 20;
  d.meta.compression = d.flows.compression;
  return d;
}

absl::StatusOr<std::pair<std::unique_ptr<rocksdb::DB>, std::vector<rocksdb::ColumnFamilyHandle*>>>
OpenDb(const HistoryOptions& o, rocksdb::Status* raw) {
  const DbOptions opts = MakeOptions(o);
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, opts.meta}, {"flows", opts.flows}};
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  *raw = rocksdb::DB::Open(opts.db, o.dir, cfs, &handles, &db);
  if (!raw->ok()) return FromRocks(*raw, absl::StrCat("opening the history in ", o.dir));
  return std::make_pair(std::unique_ptr<rocksdb::DB>(db), std::move(handles));
}

bool IsLockError(const rocksdb::Status& s) {
  const std::string m = s.ToString();
  return s.IsIOError() && absl::StrContains(m, "lock") &&
         (absl::StrContains(m, "Resource temporarily unavailable") ||
          absl::StrContains(m, "lock hold by current process") ||
          absl::StrContains(m, "No locks available"));
}

json EndpointJson(const Endpoint& e) {
  return {{"id", e.id},
          {"identity", e.identity},
          {"namespace", e.namespace_name},
          {"pod", e.pod_name},
          {"labels", e.labels.get()},
          {"workload", e.workload_name},
          {"workload_kind", e.workload_kind},
          {"node", e.node_name},
          {"cluster", e.cluster_name},
          {"reserved", e.reserved}};
}

std::shared_ptr<const Endpoint> EndpointFromJson(const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return nullptr;
  try {
    auto e = std::make_shared<Endpoint>();
    e->id = j.at("id").get<uint32_t>();
    e->identity = j.at("identity").get<uint32_t>();
    e->namespace_name = j.at("namespace").get<std::string>();
    e->pod_name = j.at("pod").get<std::string>();
    e->labels = LabelSet(j.at("labels").get<std::vector<std::string>>());
    e->workload_name = j.at("workload").get<std::string>();
    e->workload_kind = j.at("workload_kind").get<std::string>();
    e->node_name = j.at("node").get<std::string>();
    e->cluster_name = j.at("cluster").get<std::string>();
    e->reserved = j.at("reserved").get<bool>();
    return e;
  } catch (const json::exception&) {
    return nullptr;
  }
}

}  // namespace

// --- HistoryStore -------------------------------------------------------------------------------

absl::StatusOr<std::unique_ptr<HistoryStore>> HistoryStore::Open(HistoryOptions options) {
  std::error_code ec;
  std::filesystem::create_directories(options.dir, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot create the history directory ", options.dir, ": ", ec.message()));
  }
  rocksdb::Status raw;
  auto opened = OpenDb(options, &raw);
  std::string recovery;
  if (!opened.ok()) {
    if (IsLockError(raw)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the history in ", options.dir,
          " is in use by another flowscope-observer (its lock is held); give each observer its "
          "own --data-dir"));
    }
    // Unreadable: keep it for inspection, start a new one.
    const std::string aside =
        absl::StrCat(options.dir, ".corrupt-", absl::ToUnixSeconds(absl::Now()));
    std::filesystem::rename(options.dir, aside, ec);
    if (ec) {
      return absl::Status(opened.status().code(),
                          absl::StrCat(opened.status().message(), "; moving it aside to ", aside,
                                       " failed: ", ec.message()));
    }
    recovery = absl::StrCat(opened.status().message(), "; moved it aside to ", aside,
                            " and started a new history");
    FLOWSCOPE_LOG_WARN("history: {}", recovery);
    std::filesystem::create_directories(options.dir, ec);
    opened = OpenDb(options, &raw);
    if (!opened.ok()) return opened.status();
  }
  const uint64_t reserve = 2 * MakeOptions(options).flows.write_buffer_size + (1 << 20);
  auto store = std::unique_ptr<HistoryStore>(
      new HistoryStore(std::move(options), std::move(opened->first), std::move(opened->second)));
  store->reserve_bytes_ = reserve;
  store->recovery_ = std::move(recovery);
  if (absl::Status s = store->Init(); !s.ok()) return s;
  return store;
}

HistoryStore::HistoryStore(HistoryOptions options, std::unique_ptr<rocksdb::DB> db,
                           std::vector<rocksdb::ColumnFamilyHandle*> handles)
    : options_(std::move(options)),
      db_(std::move(db)),
      meta_cf_(handles.at(0)),
      flows_cf_(handles.at(1)) {}

HistoryStore::~HistoryStore() {
  if (!db_) return;
  (void)db_->DestroyColumnFamilyHandle(flows_cf_);
  (void)db_->DestroyColumnFamilyHandle(meta_cf_);
  (void)db_->Close();
}

absl::Status HistoryStore::Init() {
  uint32_t runs = 0;
  if (auto v = GetMeta(std::string(kRunsKey)); v && v->size() == 4) runs = Be32(v->data());
  run_ = runs + 1;
  next_endpoint_id_ = std::max<uint32_t>(3, LastId(db_.get(), meta_cf_, kEndpointPrefix) + 1);
  next_service_id_ = LastId(db_.get(), meta_cf_, kServicePrefix) + 1;
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
    it->SeekForPrev(DnsKey(~uint64_t{0}));
    if (it->Valid() && it->key().size() == kDnsPrefix.size() + 8 &&
        it->key().starts_with(rocksdb::Slice(kDnsPrefix.data(), kDnsPrefix.size()))) {
      next_dns_id_ = Be64(it->key().data() + kDnsPrefix.size()) + 1;
    }
  }
  {
    // Keys go on from the newest stored, even if the clock went back over the restart.
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), flows_cf_));
    for (it->SeekToLast(); it->Valid(); it->Prev()) {
      if (!IsChunk(it->key(), it->value())) continue;
      key_time_ = std::max(Be64(it->key().data()), ChunkTimes(it->value()).second);
      break;
    }
  }
  rocksdb::WriteBatch b;
  char be[8];
  PutBe32(run_, be);
  b.Put(meta_cf_, std::string(kRunsKey), rocksdb::Slice(be, 4));
  PutBe64(options_.run_id, be);
  b.Put(meta_cf_, MetaKey(kRunPrefix, run_), rocksdb::Slice(be, 8));
  rocksdb::WriteOptions wo;
  wo.sync = true;  // a run number is never handed out twice
  return FromRocks(db_->Write(wo, &b), "starting a history run");
}

std::optional<std::string> HistoryStore::GetMeta(const std::string& key) const {
  std::string v;
  if (!db_->Get(rocksdb::ReadOptions(), meta_cf_, key, &v).ok()) return std::nullopt;
  return v;
}

HistoryStore::Batch::Batch() : batch_(std::make_unique<rocksdb::WriteBatch>()) {}
HistoryStore::Batch::~Batch() = default;
HistoryStore::Batch::Batch(Batch&&) noexcept = default;

bool HistoryStore::Batch::empty() const { return batch_->Count() == 0 && chunk_.empty(); }

void HistoryStore::Batch::AddEndpoint(const Endpoint& e) {
  batch_->Put(MetaKey(kEndpointPrefix, e.id), EndpointJson(e).dump());
}

void HistoryStore::Batch::AddService(const Service& s) {
  batch_->Put(MetaKey(kServicePrefix, s.id),
              json{{"namespace", s.namespace_name}, {"name", s.name}}.dump());
}

void HistoryStore::Batch::AddInterface(uint32_t run, uint32_t ifindex, const std::string& name) {
  batch_->Put(MetaKey(kInterfacePrefix, run, ifindex), name);
}

void HistoryStore::Batch::AddDns(uint64_t id, const std::string& message) {
  batch_->Put(DnsKey(id), message);
}

void HistoryStore::Batch::AddFlow(uint32_t run, uint64_t position, const FlowRecord& r) {
  if (!chunk_.empty() &&
      (run != chunk_run_ || position != chunk_first_ + chunk_.size() / sizeof(FlowRecord) ||
       chunk_.size() == kChunkFlows * sizeof(FlowRecord))) {
    CloseChunk();
  }
  if (chunk_.empty()) {
    chunk_.reserve(kChunkFlows * sizeof(FlowRecord));
    chunk_time_ = std::max(*key_time_, r.time_ns);
    chunk_run_ = run;
    chunk_first_ = position;
  }
  chunk_.append(reinterpret_cast<const char*>(&r), sizeof r);
  *key_time_ = std::max(*key_time_, r.time_ns);
  ++flows_;
}

void HistoryStore::Batch::CloseChunk() {
  if (chunk_.empty()) return;
  batch_->Put(flows_cf_, FlowKey(chunk_time_, HistorySeq(chunk_run_, chunk_first_)), chunk_);
  chunk_.clear();
  ++chunks_;
}

void HistoryStore::Batch::AddGap(const HistoryGap& gap) {
  std::string key(kGapPrefix);
  key.resize(key.size() + 16);
  PutBe64(gap.first_ns, key.data() + 2);
  PutBe64(gap.last_ns, key.data() + 10);
  batch_->Put(key,
              json{{"first", gap.first_ns}, {"last", gap.last_ns}, {"count", gap.count}}.dump());
}

HistoryStore::Batch HistoryStore::NewBatch() {
  Batch b;
  b.flows_cf_ = flows_cf_;
  b.key_time_ = &key_time_;
  return b;
}

absl::Status HistoryStore::Commit(Batch& batch) {
  batch.CloseChunk();
  if (batch.empty()) return absl::OkStatus();
  const absl::Status s =
      FromRocks(db_->Write(rocksdb::WriteOptions(), batch.batch_.get()), "writing the history");
  if (s.ok()) {
    flows_committed_.fetch_add(batch.flows_, std::memory_order_relaxed);
    chunks_committed_.fetch_add(batch.chunks_, std::memory_order_relaxed);
  }
  batch.batch_->Clear();
  batch.flows_ = 0;
  batch.chunks_ = 0;
  return s;
}

absl::Status HistoryStore::CheckSpace() const {
  struct statvfs fs {};
  if (statvfs(options_.dir.c_str(), &fs) != 0) return absl::OkStatus();  // let the write say
  const uint64_t free = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  if (free >= reserve_bytes_) return absl::OkStatus();
  return absl::ResourceExhaustedError(
      absl::StrCat("No space left on device: ", free >> 10, " KiB free in ", options_.dir,
                   ", the history keeps ", reserve_bytes_ >> 10, " KiB in reserve"));
}

absl::Status HistoryStore::Resume() { return FromRocks(db_->Resume(), "resuming the history"); }

absl::Status HistoryStore::Flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return FromRocks(db_->Flush(fo, {meta_cf_, flows_cf_}), "flushing the history");
}

absl::Status HistoryStore::Retain() {
  const Clock& clock = options_.clock != nullptr ? *options_.clock : Clock::Real();
  const int64_t cutoff = absl::ToUnixNanos(clock.Now() - options_.max_age);
  if (cutoff <= 0) return absl::OkStatus();
  // Whole files only, oldest first, while a file's newest flow is older than the cutoff: nothing
  // is rewritten. (FIFO keeps every file in level 0, where RocksDB deletes only the oldest.)
  for (;;) {
    std::vector<rocksdb::LiveFileMetaData> files;
    db_->GetLiveFilesMetaData(&files);
    const rocksdb::LiveFileMetaData* oldest = nullptr;
    for (const rocksdb::LiveFileMetaData& f : files) {
      if (f.column_family_name != "flows" || f.level != 0) continue;
      if (oldest == nullptr || f.smallest_seqno < oldest->smallest_seqno) oldest = &f;
    }
    if (oldest == nullptr || oldest->largestkey.size() != kKeyBytes ||
        Be64(oldest->largestkey.data()) >= static_cast<uint64_t>(cutoff)) {
      break;
    }
    if (absl::Status s = FromRocks(db_->DeleteFile(oldest->name), "dropping an old history file");
        !s.ok()) {
      return s;
    }
  }
  // DNS messages no stored flow refers to any more: ids grow in storage order, so everything
  // below the first DNS record still stored goes (looked for in the oldest chunks only).
  {
    std::unique_ptr<Cursor> cursor = Scan();
    FlowRecord r;
    cursor->SeekToFirst();
    for (int i = 0; i < 64 * 64 && cursor->Valid(); ++i, cursor->Next()) {
      if (!IsDns(cursor->Read(&r))) continue;
      if (absl::Status s = FromRocks(
              db_->DeleteRange(rocksdb::WriteOptions(), meta_cf_, DnsKey(0), DnsKey(DnsIdOf(r))),
              "dropping old DNS messages");
          !s.ok()) {
        return s;
      }
      break;
    }
  }
  std::string gap_end(kGapPrefix);
  gap_end.resize(gap_end.size() + 8);
  PutBe64(static_cast<uint64_t>(cutoff), gap_end.data() + 2);
  return FromRocks(
      db_->DeleteRange(rocksdb::WriteOptions(), meta_cf_, std::string(kGapPrefix), gap_end),
      "dropping old history gaps");
}

std::unique_ptr<HistoryStore::Cursor> HistoryStore::Scan() const {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;  // a scan reads each block once
  return std::make_unique<Cursor>(
      std::unique_ptr<rocksdb::Iterator>(db_->NewIterator(ro, flows_cf_)));
}

std::vector<HistoryGap> HistoryStore::Gaps(uint64_t from_ns, uint64_t to_ns) const {
  std::vector<HistoryGap> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
  for (it->Seek(std::string(kGapPrefix)); it->Valid() && it->key().starts_with("g/"); it->Next()) {
    if (it->key().size() != 18) continue;
    const uint64_t first = Be64(it->key().data() + 2);
    const uint64_t last = Be64(it->key().data() + 10);
    if (first > to_ns) break;
    if (last < from_ns) continue;
    const json j = json::parse(it->value().ToString(), nullptr, false);
    if (!j.is_object() || !j.contains("count") || !j["count"].is_number_unsigned()) continue;
    out.push_back({first, last, j["count"].get<uint64_t>()});
  }
  return out;
}

uint64_t HistoryStore::RunId(uint32_t run) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = run_ids_.find(run); it != run_ids_.end()) return it->second;
  }
  auto v = GetMeta(MetaKey(kRunPrefix, run));
  const uint64_t id = v && v->size() == 8 ? Be64(v->data()) : 0;
  std::lock_guard<std::mutex> lock(cache_mu_);
  run_ids_[run] = id;
  return id;
}

std::string HistoryStore::InterfaceName(uint32_t run, uint32_t ifindex) const {
  return GetMeta(MetaKey(kInterfacePrefix, run, ifindex)).value_or("");
}

std::shared_ptr<const std::string> HistoryStore::FindDns(uint64_t id) const {
  auto v = GetMeta(DnsKey(id));
  if (!v) return nullptr;
  return std::make_shared<const std::string>(*std::move(v));
}

std::shared_ptr<const Endpoint> HistoryStore::FindEndpoint(uint32_t id) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = endpoints_.find(id); it != endpoints_.end()) return it->second;
  }
  auto v = GetMeta(MetaKey(kEndpointPrefix, id));
  std::shared_ptr<const Endpoint> e = v ? EndpointFromJson(*v) : nullptr;
  if (e == nullptr) return nullptr;
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (endpoints_.size() >= 65536) endpoints_.clear();  // bounded: a scan over many old pods
  endpoints_[id] = e;
  return e;
}

std::vector<PolicyName> HistoryStore::LoadPolicies() const {
  std::vector<PolicyName> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), meta_cf_));
  const rocksdb::Slice prefix(kPolicyPrefix.data(), kPolicyPrefix.size());
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    if (it->key().size() != kPolicyPrefix.size() + 4) continue;
    const uint32_t id = Be32(it->key().data() + kPolicyPrefix.size());
    const json j = json::parse(it->value().ToString(), nullptr, false);
    if (id == 0 || id > 255 || !j.is_object()) continue;  // never a name for the wrong rule
    PolicyName p;
    p.id = static_cast<uint8_t>(id);
    p.name = j.value("name", "");
    p.namespace_name = j.value("namespace", "");
    p.kind = j.value("kind", "");
    p.match_type = j.value("match_type", 0);
    out.push_back(std::move(p));
  }
  return out;
}

absl::Status HistoryStore::StorePolicies(const std::vector<PolicyName>& policies) {
  rocksdb::WriteBatch b;
  for (const PolicyName& p : policies) {
    b.Put(meta_cf_, MetaKey(kPolicyPrefix, p.id),
          json{{"name", p.name},
               {"namespace", p.namespace_name},
               {"kind", p.kind},
               {"match_type", p.match_type}}
              .dump());
  }
  return FromRocks(db_->Write(rocksdb::WriteOptions(), &b), "storing policy names");
}

std::shared_ptr<const Service> HistoryStore::FindService(uint32_t id) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (auto it = services_.find(id); it != services_.end()) return it->second;
  }
  auto v = GetMeta(MetaKey(kServicePrefix, id));
  if (!v) return nullptr;
  const json j = json::parse(*v, nullptr, false);
  if (!j.is_object() || !j.contains("name") || !j["name"].is_string() || !j.contains("namespace") ||
      !j["namespace"].is_string()) {
    return nullptr;
  }
  auto s = std::make_shared<Service>();
  s->id = id;
  s->namespace_name = j["namespace"].get<std::string>();
  s->name = j["name"].get<std::string>();
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (services_.size() >= 65536) services_.clear();
  services_[id] = s;
  return s;
}

HistoryStore::Stats HistoryStore::stats() const {
  Stats s;
  // Files know their flows exactly (the bytes of their values); memtables only their chunks,
  // which hold as many flows on average as this run's chunks have.
  rocksdb::TablePropertiesCollection tables;
  if (db_->GetPropertiesOfAllTables(flows_cf_, &tables).ok()) {
    for (const auto& [name, props] : tables) s.flows += props->raw_value_size / sizeof(FlowRecord);
  }
  uint64_t active = 0, immutable = 0;
  (void)db_->GetIntProperty(flows_cf_, "rocksdb.num-entries-active-mem-table", &active);
  (void)db_->GetIntProperty(flows_cf_, "rocksdb.num-entries-imm-mem-tables", &immutable);
  const uint64_t chunks = chunks_committed_.load(std::memory_order_relaxed);
  const double per_chunk =
      chunks > 0 ? static_cast<double>(flows_committed_.load(std::memory_order_relaxed)) /
                       static_cast<double>(chunks)
                 : 1.0;
  s.flows += static_cast<uint64_t>(static_cast<double>(active + immutable) * per_chunk);
  std::error_code ec;
  for (const auto& f : std::filesystem::directory_iterator(options_.dir, ec)) {
    std::error_code fec;
    if (f.is_regular_file(fec)) s.bytes += f.file_size(fec);
  }
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), flows_cf_));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    if (!IsChunk(it->key(), it->value())) continue;
    s.oldest_ns = ChunkTimes(it->value()).first;
    break;
  }
  return s;
}

// --- Cursor -------------------------------------------------------------------------------------

HistoryStore::Cursor::Cursor(std::unique_ptr<rocksdb::Iterator> it) : it_(std::move(it)) {}
HistoryStore::Cursor::~Cursor() = default;

void HistoryStore::Cursor::Load(bool forward) {
  count_ = 0;
  index_ = 0;
  for (; it_->Valid(); forward ? it_->Next() : it_->Prev()) {
    const rocksdb::Slice k = it_->key();
    const rocksdb::Slice v = it_->value();
    if (!IsChunk(k, v)) continue;  // not written by this version: skipped
    const uint64_t seq = Be64(k.data() + 8);
    run_ = static_cast<uint32_t>(seq >> 40);
    first_ = seq & kPositionMask;
    data_ = v.data();
    count_ = v.size() / sizeof(FlowRecord);
    index_ = forward ? 0 : count_ - 1;
    return;
  }
}

void HistoryStore::Cursor::NextChunk() {
  if (!it_->Valid()) return;
  it_->Next();
  Load(true);
}

void HistoryStore::Cursor::PrevChunk() {
  if (!it_->Valid()) return;
  it_->Prev();
  Load(false);
}

void HistoryStore::Cursor::Seek(uint64_t time_ns) {
  // The last chunk keyed before time_ns may hold newer flows; every chunk before it does not.
  it_->SeekForPrev(FlowKey(time_ns, 0));
  if (!it_->Valid()) it_->SeekToFirst();
  Load(true);
}

void HistoryStore::Cursor::SeekToFirst() {
  it_->SeekToFirst();
  Load(true);
}

void HistoryStore::Cursor::SeekBefore(uint32_t run, uint64_t position) {
  // From the newest chunk back, by key alone, over the run's chunks at or past the position.
  for (it_->SeekToLast(); it_->Valid(); it_->Prev()) {
    const rocksdb::Slice k = it_->key();
    if (k.size() != kKeyBytes) continue;
    const uint64_t seq = Be64(k.data() + 8);
    if (static_cast<uint32_t>(seq >> 40) != run || (seq & kPositionMask) < position) break;
  }
  Load(false);
  if (Valid() && run_ == run && first_ + index_ >= position) index_ = position - 1 - first_;
}

absl::Status HistoryStore::Cursor::status() const {
  return FromRocks(it_->status(), "reading the history");
}

// --- HistoryWriter ------------------------------------------------------------------------------

HistoryWriter::HistoryWriter(HistoryStore& store, const Ring& ring, const EndpointTable& table,
                             const InterfaceNames* names, HistoryWriterOptions options)
    : store_(store), ring_(ring), table_(table), names_(names), options_(options) {
  persisted_.store(options_.from);
}

HistoryWriter::~HistoryWriter() { Stop(); }

void HistoryWriter::Start() {
  stop_.store(false);
  thread_ = std::thread([this] { Run(); });
}

void HistoryWriter::Stop() {
  stop_.store(true, std::memory_order_release);
  if (thread_.joinable()) thread_.join();
}

HistoryWriter::Stats HistoryWriter::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

namespace {

// True the first time this run meets `id`: not stored yet, nor added to the batch being built.
bool Novel(uint32_t id, const absl::flat_hash_set<uint32_t>& stored,
           absl::flat_hash_set<uint32_t>& added) {
  return id != 0 && !stored.contains(id) && added.insert(id).second;
}

}  // namespace

void HistoryWriter::Refer(uint32_t endpoint, HistoryStore::Batch& batch) {
  if (!Novel(endpoint, endpoints_stored_, endpoints_added_)) return;
  // An id the table no longer holds (nor the archive) comes back as the world entry: not this.
  if (std::shared_ptr<const Endpoint> e = table_.Get(endpoint); e->id == endpoint) {
    batch.AddEndpoint(*e);
  }
}

void HistoryWriter::Lose(uint64_t count, uint64_t first_ns, uint64_t last_ns) {
  if (count == 0) return;
  if (!gap_) gap_ = HistoryGap{.first_ns = first_ns, .last_ns = last_ns, .count = 0};
  gap_->first_ns = std::min(gap_->first_ns, first_ns);
  gap_->last_ns = std::max(gap_->last_ns, last_ns);
  gap_->count += count;
  std::lock_guard<std::mutex> lock(mu_);
  stats_.lost += count;
}

size_t HistoryWriter::Fill(ringbuf::RingReader<FlowRecord>& reader, HistoryStore::Batch& batch) {
  size_t read = 0;
  FlowRecord r;
  uint64_t lapped = 0;
  while (read < options_.batch_flows) {
    const uint64_t position = reader.position();
    const ringbuf::ReadStatus s = reader.Next(&r);
    if (s == ringbuf::ReadStatus::kEnd) break;
    if (s == ringbuf::ReadStatus::kLost) {
      lapped += reader.TakeLost();
      continue;
    }
    if (lapped > 0) {
      // Between the last record read and this one.
      Lose(lapped, last_time_ns_, r.time_ns);
      lapped = 0;
    }
    if (read++ == 0) batch_first_ns_ = r.time_ns;
    last_time_ns_ = r.time_ns;
    Refer(r.src_endpoint, batch);
    Refer(r.dst_endpoint, batch);
    for (uint32_t id : {r.src_service, r.dst_service}) {
      if (!Novel(id, services_stored_, services_added_)) continue;
      if (auto svc = table_.GetService(id)) batch.AddService(*svc);
    }
    if (dns_ != nullptr && DnsIdOf(r) > dns_stored_) {
      // Gone from the table already (the writer fell far behind): the flow is kept without it.
      if (auto m = dns_->Get(DnsIdOf(r))) batch.AddDns(DnsIdOf(r), *m);
      dns_stored_ = DnsIdOf(r);
    }
    if (names_ != nullptr && Novel(r.ifindex, interfaces_stored_, interfaces_added_)) {
      batch.AddInterface(store_.run(), r.ifindex, names_->Get(r.ifindex));
    }
    batch.AddFlow(store_.run(), position, r);
  }
  if (lapped > 0) Lose(lapped, last_time_ns_, last_time_ns_);
  return read;
}

void HistoryWriter::Run() {
  ringbuf::RingReader<FlowRecord> reader(ring_, options_.from);
  PollPause pause;
  absl::Time retry_at = absl::InfinitePast();
  absl::Time retain_at = absl::Now() + options_.retain_interval;
  bool paused = false;
  bool broken = false;  // a write failed: this database instance takes no more
  for (bool last = false; !last;) {
    last = stop_.load(std::memory_order_acquire);  // one more pass after Stop: commit the rest
    HistoryStore::Batch batch = store_.NewBatch();
    const size_t read = Fill(reader, batch);
    const uint64_t position = reader.position();
    if (paused && !broken && absl::Now() >= retry_at) {
      paused = !store_.CheckSpace().ok() || !store_.Resume().ok();
      retry_at = absl::Now() + options_.retry_interval;
    }
    const uint64_t first_ns = batch_first_ns_;
    if (paused) {
      if (read > 0) Lose(batch.flows(), first_ns, last_time_ns_);
    } else if (!batch.empty() || gap_) {
      if (gap_) batch.AddGap(*gap_);
      const size_t flows = batch.flows();
      // Never into a full disk: RocksDB does not recover from a failed log write in this run.
      absl::Status s = store_.CheckSpace();
      if (s.ok()) {
        s = store_.Commit(batch);
        if (!s.ok()) {
          broken = true;
          s = absl::Status(
              s.code(),
              absl::StrCat(s.message(), "; history writes stopped until the observer restarts"));
        }
      }
      if (s.ok()) {
        gap_.reset();
        endpoints_stored_.insert(endpoints_added_.begin(), endpoints_added_.end());
        services_stored_.insert(services_added_.begin(), services_added_.end());
        interfaces_stored_.insert(interfaces_added_.begin(), interfaces_added_.end());
      } else {
        paused = true;
        retry_at = absl::Now() + options_.retry_interval;
        Lose(flows, first_ns, last_time_ns_);
      }
      std::lock_guard<std::mutex> lock(mu_);
      if (s.ok()) {
        stats_.written += flows;
        ++stats_.batches;
        if (!stats_.error.empty()) {
          FLOWSCOPE_LOG_INFO("history: writing again after: {}", stats_.error);
          stats_.error.clear();
        }
      } else {
        ++stats_.write_errors;
        if (stats_.error.empty()) {
          FLOWSCOPE_LOG_WARN("history: writes paused, live flows go on: {}",
                             std::string(s.message()));
        }
        stats_.error = std::string(s.message());
      }
    }
    endpoints_added_.clear();
    services_added_.clear();
    interfaces_added_.clear();
    persisted_.store(position, std::memory_order_release);
    if (absl::Now() >= retain_at) {
      retain_at = absl::Now() + options_.retain_interval;
      if (absl::Status s = store_.Retain(); !s.ok()) {
        FLOWSCOPE_LOG_WARN("history: retention: {}", std::string(s.message()));
      }
    }
    if (!last && read < options_.batch_flows) pause.After(read);
  }
}

}  // namespace flowscope::observer
