// HistoryStore and HistoryWriter: the observer's flow history on disk, in RocksDB, so that
// queries reach past the ring and across restarts.
//
// Layout. Column family "flows": flows in chunks of up to 64 records consecutive in one run's
// ring, each chunk one key = big-endian key time (8 bytes) + big-endian sequence (8 bytes: the
// run number in the top 24 bits, the ring position of the chunk's first record below); value =
// the chunk's FlowRecords, compressed by RocksDB (LZ4, else ZSTD). The key time is the newest
// time among the chunk's first record and every record stored before it, so keys sort in the
// order the records were stored and every record before a chunk is no newer than its key time:
// `--since` is one seek. A scan pays RocksDB's per-key cost once per chunk, not per flow. FIFO
// compaction: files are written once and dropped whole, oldest first, by size
// (--history-max-bytes) and by age (--history-max-age, files whose newest key is older), so
// write amplification stays near 1. The default column family holds
// what the records refer to, each written in the same batch as (so before) the first flow that
// needs it: endpoints by table id ("e/"), services by id ("s/"), interface names per run
// ("i/"), each run's uuid seed ("r/"), the intervals the writer missed ("g/"), and DNS records'
// messages by DnsTable id ("d/"; ids go on across runs, and the ones below the oldest stored DNS
// record are dropped with retention). Endpoint and
// service ids are never reused across runs (the table starts above the stored ones), so a
// stored flow keeps its names after its pod is gone and after a restart.
//
// Faults. Open() refuses a directory another process holds (RocksDB's lock) with a message
// saying so; a database that cannot be opened (corrupt, unreadable) is moved aside to
// "<dir>.corrupt-<unix seconds>" and a new one started (recovery() says what happened). A failed
// write (a full disk) pauses the writer, which keeps reading the ring and counts what it cannot
// store as one gap; it retries every second and writes the gap first when space returns.
//
// Durability: the writer commits what it has read every pass — at most 4,096 flows, and at most
// ~50 ms after the drain published them — through the write-ahead log without fsync, so a
// `kill -9` of the observer loses nothing that was committed (the kernel holds the log); a
// machine crash can lose the last unsynced log writes.
//
//   auto store = HistoryStore::Open({.dir = "/var/lib/flowscope/history"}).value();
//   table.AttachArchive(store.get(), store->next_endpoint_id(), store->next_service_id());
//   HistoryWriter writer(*store, ring, table, names);
//   writer.Start();
//   auto cursor = store->Scan();
//   FlowRecord r;
//   for (cursor->Seek(since_ns); cursor->Valid(); cursor->Next()) {
//     if (cursor->time_ns() >= since_ns) use(cursor->Read(&r), cursor->run(), cursor->position());
//   }
#ifndef FLOWSCOPE_OBSERVER_HISTORY_H_
#define FLOWSCOPE_OBSERVER_HISTORY_H_

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "api/clock.h"
#include "observer/dns_table.h"
#include "observer/endpoint_table.h"
#include "observer/flow_builder.h"
#include "observer/flow_record.h"
#include "ringbuf/flow_ring.h"

namespace rocksdb {
class ColumnFamilyHandle;
class DB;
class Iterator;
class WriteBatch;
}  // namespace rocksdb

namespace flowscope::observer {

struct HistoryOptions {
  std::string dir = {};  // the database's directory (created if missing)
  absl::Duration max_age = absl::Hours(24);
  uint64_t max_bytes = uint64_t{1} << 30;
  uint64_t run_id = 0;           // this run's uuid seed (FlowBuilder's), kept for its flows
  const Clock* clock = nullptr;  // what age retention measures against; the real clock if null
};

// Flows the writer could not store: `count` of them, seen between first_ns and last_ns.
struct HistoryGap {
  uint64_t first_ns = 0;
  uint64_t last_ns = 0;
  uint64_t count = 0;
};

// The sequence half of a flow's key.
inline uint64_t HistorySeq(uint32_t run, uint64_t position) {
  return (static_cast<uint64_t>(run) << 40) | (position & ((uint64_t{1} << 40) - 1));
}

class HistoryStore final : public EndpointTable::Archive,
                           public RunArchive,
                           public DnsTable::Archive {
 public:
  // FailedPrecondition when another process holds the directory; other errors when neither the
  // database nor a fresh one can be opened.
  static absl::StatusOr<std::unique_ptr<HistoryStore>> Open(HistoryOptions options);
  ~HistoryStore() override;

  uint32_t run() const { return run_; }
  // Above every id stored: where the endpoint table starts its ids.
  uint32_t next_endpoint_id() const { return next_endpoint_id_; }
  uint32_t next_service_id() const { return next_service_id_; }
  // Above every DNS message id stored: where the DNS table starts its ids.
  uint64_t next_dns_id() const { return next_dns_id_; }
  // What Open() did with a database it could not open ("" when nothing happened).
  const std::string& recovery() const { return recovery_; }
  const HistoryOptions& options() const { return options_; }

  // --- writing (one thread) ---------------------------------------------------------------------

  class Batch {
   public:
    Batch();
    ~Batch();
    Batch(Batch&&) noexcept;
    void AddEndpoint(const Endpoint& e);
    void AddService(const Service& s);
    void AddInterface(uint32_t run, uint32_t ifindex, const std::string& name);
    // A DNS record's message (serialized flow.DNS), by its DnsTable id.
    void AddDns(uint64_t id, const std::string& message);
    // Flows go into the chunk being built while they follow each other in one run's ring.
    void AddFlow(uint32_t run, uint64_t position, const FlowRecord& r);
    void AddGap(const HistoryGap& gap);
    size_t flows() const { return flows_; }
    bool empty() const;

   private:
    friend class HistoryStore;
    void CloseChunk();
    std::unique_ptr<rocksdb::WriteBatch> batch_;
    rocksdb::ColumnFamilyHandle* flows_cf_ = nullptr;
    uint64_t* key_time_ = nullptr;  // the store's: the newest time stored
    size_t flows_ = 0;
    size_t chunks_ = 0;
    // The chunk being built.
    std::string chunk_;
    uint64_t chunk_time_ = 0;
    uint32_t chunk_run_ = 0;
    uint64_t chunk_first_ = 0;
  };
  // One writer at a time: a batch continues the keys of the one committed before it.
  Batch NewBatch();
  // Writes the batch atomically (write-ahead log, no fsync). An error (a full disk) leaves the
  // database refusing writes until Resume() succeeds.
  absl::Status Commit(Batch& batch);
  absl::Status Resume();
  // ResourceExhausted when the disk has less free space than the history keeps in reserve (two
  // memtables' worth, for the write-ahead log and the next file): the writer pauses before
  // RocksDB ever meets a full disk, which it does not recover from within a run.
  absl::Status CheckSpace() const;
  // Drops the flow files whose newest record is older than max_age, and older gaps.
  absl::Status Retain();
  // Writes the memtables out as files (tests, and Close).
  absl::Status Flush();

  // --- reading (any thread) ---------------------------------------------------------------------

  // Flows in the order they were stored (each run's ring order, runs one after the other), one
  // record at a time. A cursor must not outlive the store.
  class Cursor {
   public:
    explicit Cursor(std::unique_ptr<rocksdb::Iterator> it);
    ~Cursor();
    // At the first chunk that may hold a flow at or after time_ns: every flow before the cursor
    // is older (flows after it may still be, as in the ring: the caller skips them).
    void Seek(uint64_t time_ns);
    void SeekToFirst();
    // At the last flow stored before ring position `position` of `run`.
    void SeekBefore(uint32_t run, uint64_t position);
    bool Valid() const { return index_ < count_; }
    void Next() {
      if (++index_ >= count_) NextChunk();
    }
    void Prev() {
      if (index_ > 0) {
        --index_;
      } else {
        PrevChunk();
      }
    }
    uint32_t run() const { return run_; }
    uint64_t position() const { return first_ + index_; }
    uint64_t time_ns() const {
      uint64_t t;
      std::memcpy(&t, data_ + index_ * sizeof(FlowRecord) + offsetof(FlowRecord, time_ns),
                  sizeof t);
      return t;
    }
    const FlowRecord& Read(FlowRecord* out) const {
      std::memcpy(static_cast<void*>(out), data_ + index_ * sizeof(FlowRecord), sizeof(FlowRecord));
      return *out;
    }
    absl::Status status() const;

   private:
    // Takes the iterator's chunk, moving on (forward or back) over values that are not chunks.
    void Load(bool forward);
    void NextChunk();
    void PrevChunk();
    std::unique_ptr<rocksdb::Iterator> it_;
    const char* data_ = nullptr;  // the chunk's records, valid until the iterator moves
    size_t index_ = 0;
    size_t count_ = 0;
    uint32_t run_ = 0;
    uint64_t first_ = 0;
  };
  std::unique_ptr<Cursor> Scan() const;

  std::vector<HistoryGap> Gaps(uint64_t from_ns, uint64_t to_ns) const;
  // The uuid seed of a run (0 when unknown) and an interface's name in that run.
  uint64_t RunId(uint32_t run) const override;
  std::string InterfaceName(uint32_t run, uint32_t ifindex) const override;

  std::shared_ptr<const Endpoint> FindEndpoint(uint32_t id) const override;
  std::shared_ptr<const Service> FindService(uint32_t id) const override;
  std::shared_ptr<const std::string> FindDns(uint64_t id) const override;

  // Policy rule names by id ("p/"), so an earlier run's drops keep the names of the rules that
  // denied them (EndpointTable::RestorePolicies). Store writes every name given.
  std::vector<PolicyName> LoadPolicies() const;
  absl::Status StorePolicies(const std::vector<PolicyName>& policies);

  struct Stats {
    uint64_t flows = 0;  // estimated flows stored
    uint64_t bytes = 0;  // files in the directory
    std::optional<uint64_t> oldest_ns;
  };
  Stats stats() const;

 private:
  HistoryStore(HistoryOptions options, std::unique_ptr<rocksdb::DB> db,
               std::vector<rocksdb::ColumnFamilyHandle*> handles);
  absl::Status Init();
  std::optional<std::string> GetMeta(const std::string& key) const;

  const HistoryOptions options_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::ColumnFamilyHandle* meta_cf_ = nullptr;
  rocksdb::ColumnFamilyHandle* flows_cf_ = nullptr;
  uint32_t run_ = 0;
  uint32_t next_endpoint_id_ = 3;
  uint32_t next_service_id_ = 1;
  uint64_t next_dns_id_ = 1;
  uint64_t reserve_bytes_ = 0;
  uint64_t key_time_ = 0;  // the newest flow time stored (writer)
  std::atomic<uint64_t> flows_committed_{0}, chunks_committed_{0};  // by this run
  std::string recovery_;
  mutable std::mutex cache_mu_;
  mutable absl::flat_hash_map<uint32_t, std::shared_ptr<const Endpoint>> endpoints_;
  mutable absl::flat_hash_map<uint32_t, std::shared_ptr<const Service>> services_;
  mutable absl::flat_hash_map<uint32_t, uint64_t> run_ids_;
};

struct HistoryWriterOptions {
  uint64_t from = 0;  // the ring position to start at (0: this run's first record)
  size_t batch_flows = 4096;
  absl::Duration retry_interval = absl::Seconds(1);    // after a failed write
  absl::Duration retain_interval = absl::Seconds(10);  // age retention
};

// Follows the ring on a thread of its own and stores every record it reads, with what the record
// refers to. Never blocks the drain: if the ring laps it, it records the interval it missed.
class HistoryWriter {
 public:
  HistoryWriter(HistoryStore& store, const ringbuf::FlowRing<FlowRecord>& ring,
                const EndpointTable& table, const InterfaceNames* names,
                HistoryWriterOptions options = {});
  ~HistoryWriter();
  // The DNS messages DNS records refer to: stored with the first record that needs each. Call
  // before Start().
  void SetDns(const DnsTable* dns) { dns_ = dns; }
  void Start();
  void Stop();  // commits what it has read, then returns

  struct Stats {
    uint64_t written = 0;  // flows committed by this run
    uint64_t lost = 0;     // flows this run could not store
    uint64_t batches = 0;
    uint64_t write_errors = 0;
    std::string error;  // why writes are paused ("" when they are not)
  };
  Stats stats() const;
  // Ring position below which every record is committed or counted lost.
  uint64_t persisted() const { return persisted_.load(std::memory_order_acquire); }

 private:
  void Run();
  // Reads what the ring has (up to a batch) into `batch`; returns the records read.
  size_t Fill(ringbuf::RingReader<FlowRecord>& reader, HistoryStore::Batch& batch);
  void Refer(uint32_t endpoint, HistoryStore::Batch& batch);
  void Lose(uint64_t count, uint64_t first_ns, uint64_t last_ns);

  HistoryStore& store_;
  const ringbuf::FlowRing<FlowRecord>& ring_;
  const EndpointTable& table_;
  const InterfaceNames* names_;
  const DnsTable* dns_ = nullptr;
  uint64_t dns_stored_ = 0;  // DNS ids grow in ring order: every one up to this is stored
  const HistoryWriterOptions options_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> persisted_{0};
  // What this run has stored already (ids are immutable), and what the batch being built adds.
  absl::flat_hash_set<uint32_t> endpoints_stored_, services_stored_, interfaces_stored_;
  absl::flat_hash_set<uint32_t> endpoints_added_, services_added_, interfaces_added_;
  std::optional<HistoryGap> gap_;  // missed and not yet stored
  uint64_t last_time_ns_ = 0;      // of the last record read
  uint64_t batch_first_ns_ = 0;    // of the first record in the batch being built
  mutable std::mutex mu_;
  Stats stats_;
};

}  // namespace flowscope::observer

#endif  // FLOWSCOPE_OBSERVER_HISTORY_H_
